package listen

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
)

// ErrBadBaseline means saved baseline bytes could not be used; the error
// wrapping it says why. A recorder that gets it starts from an empty
// Baseline: it relearns within minutes of talk.
var ErrBadBaseline = errors.New("listen: saved baseline is not valid")

// MaxBaselineSize bounds what ParseBaseline reads; a full baseline is under
// 2 KiB.
const MaxBaselineSize = 8 << 10

// The baseline estimator's schedule, in 100 ms steps of voiced short-term
// loudness. Each hour's estimate moves towards each new value by a fixed
// step in dB (up if the value is above it, down if below), so it settles on
// the median: the level the counter is above half the time it is talking.
// Large steps first so a new recorder finds its level in seconds, small
// steps after so one incident barely moves it: 0.005 dB a step is at most
// 3 dB a minute of talk, 0.5 dB for a 10 s shout.
const (
	learnedSteps = 600 // 60 s of voiced audio in an hour bucket: learned
	fastSteps    = 50
	fastDB       = 1.0
	midDB        = 0.1
	slowDB       = 0.005
	lowestLUFS   = -100.0
)

// estimate is one running median of voiced short-term loudness.
type estimate struct {
	lufs  float64
	steps uint32 // voiced 100 ms steps observed, saturating
}

func (e *estimate) observe(x float64) {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return
	}
	x = max(lowestLUFS, min(0, x))
	var step float64
	switch {
	case e.steps == 0:
		e.lufs = x
	case e.steps < fastSteps:
		step = fastDB
	case e.steps < learnedSteps:
		step = midDB
	default:
		step = slowDB
	}
	switch {
	case x > e.lufs:
		e.lufs = min(x, e.lufs+step)
	case x < e.lufs:
		e.lufs = max(x, e.lufs-step)
	}
	if e.steps < math.MaxUint32 {
		e.steps++
	}
}

func (e estimate) learned() bool { return e.steps >= learnedSteps }

// Baseline is what a counter's voiced short-term loudness normally is, for
// each hour of the day (0–23, in whatever local time the caller's block
// times carry), and over all hours. The zero Baseline has learned nothing.
//
// An hour is learned after 60 s of voiced audio in that hour (600 steps of
// 100 ms); until then the all-hours estimate stands in for it once that is
// learned, and before that the caller's default. A recorder at a counter
// where people talk a fifth of the time thus learns its all-hours level in
// its first five minutes, and each hour on its first day.
type Baseline struct {
	hours [24]estimate
	all   estimate
}

func (b *Baseline) observe(hour int, lufs float64) {
	if hour >= 0 && hour < len(b.hours) {
		b.hours[hour].observe(lufs)
	}
	b.all.observe(lufs)
}

// At returns the baseline for an hour of the day in LUFS and whether it was
// learned; def is returned, with false, when neither the hour nor all hours
// have been learned.
func (b *Baseline) At(hour int, def float64) (lufs float64, learned bool) {
	if hour >= 0 && hour < len(b.hours) && b.hours[hour].learned() {
		return b.hours[hour].lufs, true
	}
	if b.all.learned() {
		return b.all.lufs, true
	}
	return def, false
}

// baselineFile is the saved form: small, versioned, readable.
type baselineFile struct {
	Version int            `json:"version"`
	All     estimateFile   `json:"all"`
	Hours   []estimateFile `json:"hours"`
}

type estimateFile struct {
	LUFS  float64 `json:"lufs"`
	Steps uint32  `json:"steps"`
}

// MarshalJSON saves the baseline as {"version":1,"all":{...},"hours":[24]},
// each estimate as its level in LUFS (rounded to 0.01 dB) and how many
// steps it has seen.
func (b Baseline) MarshalJSON() ([]byte, error) {
	f := baselineFile{Version: 1, Hours: make([]estimateFile, len(b.hours))}
	round := func(e estimate) estimateFile {
		return estimateFile{LUFS: math.Round(e.lufs*100) / 100, Steps: e.steps}
	}
	f.All = round(b.all)
	for i, e := range b.hours {
		f.Hours[i] = round(e)
	}
	return json.Marshal(f)
}

// ParseBaseline reads what MarshalJSON wrote. It reads at most
// MaxBaselineSize bytes, refuses unknown fields, trailing data, any version
// but 1, a count of hours other than 24 and levels outside -100..0 LUFS, all
// with an error wrapping ErrBadBaseline.
func ParseBaseline(data []byte) (Baseline, error) {
	if len(data) > MaxBaselineSize {
		return Baseline{}, fmt.Errorf("%w: %d bytes, more than %d", ErrBadBaseline, len(data), MaxBaselineSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f baselineFile
	if err := dec.Decode(&f); err != nil {
		return Baseline{}, fmt.Errorf("%w: %v", ErrBadBaseline, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Baseline{}, fmt.Errorf("%w: data after the baseline", ErrBadBaseline)
	}
	if f.Version != 1 {
		return Baseline{}, fmt.Errorf("%w: version %d, want 1", ErrBadBaseline, f.Version)
	}
	var b Baseline
	if len(f.Hours) != len(b.hours) {
		return Baseline{}, fmt.Errorf("%w: %d hours, want 24", ErrBadBaseline, len(f.Hours))
	}
	check := func(name string, e estimateFile) (estimate, error) {
		if !(e.LUFS >= lowestLUFS && e.LUFS <= 0) {
			return estimate{}, fmt.Errorf("%w: %s level %g LUFS is outside -100..0", ErrBadBaseline, name, e.LUFS)
		}
		return estimate{lufs: e.LUFS, steps: e.Steps}, nil
	}
	var err error
	if b.all, err = check("all hours'", f.All); err != nil {
		return Baseline{}, err
	}
	for i, e := range f.Hours {
		if b.hours[i], err = check(fmt.Sprintf("hour %d's", i), e); err != nil {
			return Baseline{}, err
		}
	}
	return b, nil
}
