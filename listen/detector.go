package listen

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// ErrConfig is wrapped by every error Config.Validate returns.
var ErrConfig = errors.New("listen: invalid configuration")

// Config sets a Detector's format and rules. Start from DefaultConfig; the
// zero Config is refused by Validate.
type Config struct {
	// SampleRate in Hz and Channels (1 or 2) of the PCM fed in.
	SampleRate int // listen.sample_rate
	Channels   int // listen.channels
	// RaiseDB is how far above the baseline voiced short-term loudness must
	// rise to count. The default, 15 dB, sits between the steps of vocal
	// effort that ANSI S3.5 tabulates for "loud" (+12 dB over normal) and
	// "shouted" (+18 dB) speech: ordinary raised talk (+6) and a loud but
	// calm voice stay under it, shouting goes over it with 3 dB to spare for
	// the baseline's own spread.
	RaiseDB float64 // listen.raise_db, 6..40
	// HysteresisDB: a detection ends when the level falls below
	// baseline + RaiseDB - HysteresisDB, so a voice hovering at the
	// threshold is one detection, not many.
	HysteresisDB float64 // listen.hysteresis_db, 1..RaiseDB
	// Sustain is how long the level must stay at or above the threshold at
	// every 100 ms step before a detection is reported. The short-term
	// window is itself 3 s long, so a sound must last longer than Sustain
	// to hold it there: with the defaults a voice 18 dB over the baseline
	// must last about 1.5 s, and a 1 s shout at +18 dB reads at most
	// +13.4 dB and is not reported.
	Sustain time.Duration // listen.sustain, 100 ms..30 s
	// Cooldown is how long after a detection ends before another may begin.
	Cooldown time.Duration // listen.cooldown, 0..1 h
	// MinVoiced is the share of the short-term window's 20 ms frames the
	// VAD must call voice for its loudness to count as a voice's (for
	// detection and for learning the baseline).
	MinVoiced float64 // listen.min_voiced, 0.05..1
	// DefaultBaselineLUFS stands in for the baseline until one is learned.
	DefaultBaselineLUFS float64 // listen.default_baseline_lufs, -70..-10
}

// DefaultConfig is mono at 48 kHz with the defaults each field's comment
// gives. The default baseline, -40 LUFS, is a guess at calm talk at a
// counter through a microphone set for it; it serves only until the first
// minute of talk has been heard.
func DefaultConfig() Config {
	return Config{
		SampleRate:          48000,
		Channels:            1,
		RaiseDB:             15,
		HysteresisDB:        6,
		Sustain:             time.Second,
		Cooldown:            60 * time.Second,
		MinVoiced:           0.3,
		DefaultBaselineLUFS: -40,
	}
}

// Validate reports every field out of range at once, each naming its key,
// all wrapping ErrConfig.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, want string, got any) {
		errs = append(errs, fmt.Errorf("%w: 'listen.%s' must be %s (got %v)", ErrConfig, key, want, got))
	}
	if c.SampleRate < 8000 || c.SampleRate > 192000 || c.SampleRate%50 != 0 {
		bad("sample_rate", "a multiple of 50 between 8000 and 192000", c.SampleRate)
	}
	if c.Channels < 1 || c.Channels > maxChannels {
		bad("channels", "1 or 2", c.Channels)
	}
	if !(c.RaiseDB >= 6 && c.RaiseDB <= 40) {
		bad("raise_db", "between 6 and 40", c.RaiseDB)
	}
	upper := 40.0 // an invalid raise_db is reported once, above
	if c.RaiseDB >= 6 && c.RaiseDB <= 40 {
		upper = c.RaiseDB
	}
	if !(c.HysteresisDB >= 1 && c.HysteresisDB <= upper) {
		bad("hysteresis_db", "between 1 and raise_db", c.HysteresisDB)
	}
	if c.Sustain < 100*time.Millisecond || c.Sustain > 30*time.Second {
		bad("sustain", "between 100ms and 30s", c.Sustain)
	}
	if c.Cooldown < 0 || c.Cooldown > time.Hour {
		bad("cooldown", "between 0s and 1h", c.Cooldown)
	}
	if !(c.MinVoiced >= 0.05 && c.MinVoiced <= 1) {
		bad("min_voiced", "between 0.05 and 1", c.MinVoiced)
	}
	if !(c.DefaultBaselineLUFS >= -70 && c.DefaultBaselineLUFS <= -10) {
		bad("default_baseline_lufs", "between -70 and -10", c.DefaultBaselineLUFS)
	}
	return errors.Join(errs...)
}

// A Detection is a raised voice: voiced short-term loudness at or above the
// baseline plus RaiseDB for at least Sustain. Each is reported twice: once
// when it is confirmed (Ended false, Duration = Sustain or a step more), so
// an alert need not wait, and once when it ends (Ended true).
type Detection struct {
	// Start is the end of the first 100 ms step whose short-term loudness
	// reached the threshold. The raised voice itself began up to 3 s
	// before (the short-term window), typically 1–1.5 s before.
	Start time.Time
	// Duration runs from Start to the step that confirmed it (Ended false)
	// or to the first step below the hysteresis level (Ended true).
	Duration time.Duration
	Ended    bool
	// PeakLUFS and MeanLUFS are over the steps from Start on; the mean is
	// of power, as loudness is.
	PeakLUFS, MeanLUFS float64
	// BaselineLUFS is the baseline at Start, used throughout; Learned is
	// false when it was still Config.DefaultBaselineLUFS.
	BaselineLUFS float64
	Learned      bool
	// AboveDB is PeakLUFS - BaselineLUFS.
	AboveDB float64
}

// Levels is a snapshot for a live meter, as of the last 100 ms step.
type Levels struct {
	Time                         time.Time
	MomentaryLUFS, ShortTermLUFS float64 // -Inf until 400 ms / 3 s were fed
	// VoicedLUFS is the short-term loudness of voice alone (see Detector),
	// the level the detector compares with the baseline.
	VoicedLUFS   float64
	BaselineLUFS float64
	Learned      bool
	Voiced       bool    // the VAD's last frame, hangover included
	VoicedShare  float64 // of the last 3 s
	Raised       bool    // a detection is pending or under way
}

type raiseState uint8

const (
	quiet   raiseState = iota
	pending            // above the threshold, for less than Sustain
	active             // reported, not yet ended
)

// Detector turns PCM blocks into Detections; see the package doc. Feed it
// from one goroutine; Levels and Baseline may be called from any.
//
// The level it watches is voiced short-term loudness: the K-weighted power
// of each 100 ms step, scaled by the share of that step's 20 ms frames the
// VAD called voice, averaged over 3 s as BS.1770's short-term loudness is.
// Audio the VAD does not call voice counts as silence, so a hum or a
// passing trolley after the talk stops does not carry on the talk's level;
// but anything loud while someone talks is counted with the voice.
type Detector struct {
	cfg   Config
	meter *Meter
	vad   *VAD

	// voicedFrames counts voiced 20 ms frames per 100 ms step, over the
	// short-term window; voicedNow is the current step's count.
	voicedFrames [shortTermSteps]uint8
	voicedNext   int
	voicedNow    uint8
	// voicedPower is each step's K-weighted power times the share of its
	// frames that were voice: unvoiced audio counts as silence.
	voicedPower [shortTermSteps]float64

	state         raiseState
	start         time.Time
	base          float64
	learned       bool
	peak, sumPow  float64
	steps         int
	cooldownUntil time.Time

	mu       sync.Mutex // guards baseline and levels: read by Baseline and Levels
	baseline Baseline
	levels   Levels
}

// NewDetector validates cfg and returns a Detector with an empty baseline.
func NewDetector(cfg Config) (*Detector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := NewMeter(cfg.SampleRate, cfg.Channels)
	if err != nil {
		return nil, err
	}
	v, err := NewVAD(cfg.SampleRate, cfg.Channels)
	if err != nil {
		return nil, err
	}
	d := &Detector{cfg: cfg, meter: m, vad: v}
	d.levels = Levels{MomentaryLUFS: math.Inf(-1), ShortTermLUFS: math.Inf(-1), VoicedLUFS: math.Inf(-1), BaselineLUFS: cfg.DefaultBaselineLUFS}
	return d, nil
}

// SetBaseline replaces what the detector has learned, as when a recorder
// restores a saved baseline at start.
func (d *Detector) SetBaseline(b Baseline) {
	d.mu.Lock()
	d.baseline = b
	d.mu.Unlock()
}

// Baseline returns a copy of what the detector has learned, to save.
func (d *Detector) Baseline() Baseline {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.baseline
}

// Levels returns the levels as of the last 100 ms step.
func (d *Detector) Levels() Levels {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.levels
}

// Feed takes a block of interleaved PCM whose first sample was captured at
// at, and appends to dst any Detections (confirmed or ended) the block
// completes, in order; it returns the extended dst. Times within the block
// are at plus the sample offset at the sample rate, so blocks should carry
// the capture times of their first samples; blocks may be any whole number
// of frames. Feed does not retain pcm and, given a dst with room, does not
// allocate. A block that is not whole frames is refused with
// ErrPartialFrame and changes nothing.
func (d *Detector) Feed(dst []Detection, at time.Time, pcm []int16) ([]Detection, error) {
	ch := d.cfg.Channels
	if len(pcm)%ch != 0 {
		return dst, ErrPartialFrame
	}
	frames := len(pcm) / ch
	for off := 0; off < frames; {
		// The VAD's 20 ms frames divide the meter's 100 ms steps and both
		// start at the first sample, so the meter takes all n frames.
		n, decided := d.vad.feed(pcm[off*ch:])
		_, stepped := d.meter.feed(pcm[off*ch : (off+n)*ch])
		off += n
		if decided && d.vad.voiced {
			d.voicedNow++
		}
		if stepped {
			t := at.Add(time.Duration(int64(off) * int64(time.Second) / int64(d.cfg.SampleRate)))
			dst = d.stepped(dst, t)
		}
	}
	return dst, nil
}

// Flush ends a detection under way at at, as when the recorder stops
// listening, appending its ended report to dst; a pending one is dropped.
// The cooldown starts at at. Feeding may go on afterwards.
func (d *Detector) Flush(dst []Detection, at time.Time) []Detection {
	if d.state == active {
		dst = append(dst, d.detection(at, true))
		d.cooldownUntil = at.Add(d.cfg.Cooldown)
	}
	d.state = quiet
	return dst
}

// stepped runs once per 100 ms of audio, at t, the end of that step.
func (d *Detector) stepped(dst []Detection, t time.Time) []Detection {
	m := d.meter
	d.voicedFrames[d.voicedNext] = d.voicedNow
	d.voicedPower[d.voicedNext] = m.power[(m.next+len(m.power)-1)%len(m.power)] * float64(d.voicedNow) / 5
	d.voicedNext = (d.voicedNext + 1) % len(d.voicedFrames)
	d.voicedNow = 0
	var voicedFrames int
	var power float64
	for i, n := range d.voicedFrames {
		voicedFrames += int(n)
		power += d.voicedPower[i]
	}
	share := float64(voicedFrames) / float64(5*len(d.voicedFrames))
	st := math.Inf(-1)
	if m.steps >= shortTermSteps {
		st = lufs(power / shortTermSteps)
	}
	voiced := share >= d.cfg.MinVoiced && !math.IsInf(st, -1)
	hour := t.Hour()

	d.mu.Lock()
	// While a raised voice is pending or under way it does not teach the
	// baseline, once that is learned: an incident is not the norm. An
	// unlearned baseline learns from everything voiced, so a default far
	// below the counter's real level cannot lock learning out.
	if _, learned := d.baseline.At(hour, 0); voiced && (d.state == quiet || !learned) {
		d.baseline.observe(hour, st)
	}
	base, learned := d.baseline.At(hour, d.cfg.DefaultBaselineLUFS)
	d.mu.Unlock()

	dst = d.decide(dst, t, st, voiced, base, learned)

	d.mu.Lock()
	d.levels = Levels{
		Time:          t,
		MomentaryLUFS: m.Momentary(),
		ShortTermLUFS: m.ShortTerm(),
		VoicedLUFS:    st,
		BaselineLUFS:  base,
		Learned:       learned,
		Voiced:        d.vad.voiced,
		VoicedShare:   share,
		Raised:        d.state != quiet,
	}
	d.mu.Unlock()
	return dst
}

// decide is the detection state machine, one call per 100 ms step at t with
// voiced short-term loudness st. base is the current baseline; a pending or active
// detection keeps the one it started with.
func (d *Detector) decide(dst []Detection, t time.Time, st float64, voiced bool, base float64, learned bool) []Detection {
	if d.state == quiet {
		if !voiced || st < base+d.cfg.RaiseDB || t.Before(d.cooldownUntil) {
			return dst
		}
		d.state, d.start, d.base, d.learned = pending, t, base, learned
		d.peak, d.sumPow, d.steps = st, 0, 0
	}
	threshold := d.base + d.cfg.RaiseDB
	if d.state == active {
		threshold -= d.cfg.HysteresisDB
	}
	if !voiced || st < threshold {
		if d.state == active {
			dst = append(dst, d.detection(t, true))
			d.cooldownUntil = t.Add(d.cfg.Cooldown)
		}
		d.state = quiet
		return dst
	}
	d.peak = max(d.peak, st)
	d.sumPow += math.Pow(10, st/10)
	d.steps++
	if d.state == pending && t.Sub(d.start) >= d.cfg.Sustain {
		d.state = active
		dst = append(dst, d.detection(t, false))
	}
	return dst
}

func (d *Detector) detection(t time.Time, ended bool) Detection {
	mean := 10 * math.Log10(d.sumPow/float64(d.steps))
	return Detection{
		Start:        d.start,
		Duration:     t.Sub(d.start),
		Ended:        ended,
		PeakLUFS:     d.peak,
		MeanLUFS:     mean,
		BaselineLUFS: d.base,
		Learned:      d.learned,
		AboveDB:      d.peak - d.base,
	}
}
