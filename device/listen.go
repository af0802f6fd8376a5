package device

// Listening for a raised voice ([listen], package listen) in the
// microphone's blocks as they are captured: never a capture of its own, so
// it hears only what the lit indicator and the recording hours already
// allow.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"mamoru/atomicfile"
	"mamoru/capture"
	"mamoru/config"
	"mamoru/listen"
	"mamoru/outbox"
)

// baselineFile holds, in the state directory, the counter's usual loudness
// of voices per hour that the Ear has learned (listen.Baseline).
const baselineFile = "listen-baseline.json"

// Ear measures the microphone's blocks as the audio source captures them
// (put Hear in capture.AudioSource.PCM) and hands each raised voice the
// detector reports to the recorder, which acts on it as Config.Action
// says. When listening is off it measures only while someone watches the
// levels (`mamoru listen`, Watch), and the recorder acts on nothing it
// hears then. NewEar builds one.
type Ear struct {
	Config config.Listen
	// detector is fed by the audio source's goroutine while capture runs;
	// the recorder's loop replaces it while capture is stopped (restart),
	// and Levels may be read from any goroutine.
	detector atomic.Pointer[listen.Detector]
	detCfg   listen.Config
	tl       *capture.Timeline
	zone     *time.Location
	// watchUntil is the timeline time (ns) until which the detector is fed
	// though listening is off: someone watches the levels.
	watchUntil atomic.Int64
	heard      chan listen.Detection // from Hear to the recorder's loop
	dropped    atomic.Uint64         // detections the loop was too busy to take
	found      []listen.Detection    // Hear's, reused for each block

	mu    sync.Mutex // guards saved
	saved listen.Baseline
}

// NewEar builds the Ear for cfg's microphone on tl, with the baseline the
// last run saved in the state directory. A saved baseline that cannot be
// read is logged and set aside, and learning starts again: it takes
// minutes of talk.
func NewEar(cfg config.Config, tl *capture.Timeline, log *slog.Logger) (*Ear, error) {
	dc := cfg.Listen.Detector(cfg.Audio)
	det, err := listen.NewDetector(dc)
	if err != nil {
		return nil, fmt.Errorf("device: listen: %w", err)
	}
	e := &Ear{Config: cfg.Listen, detCfg: dc, tl: tl, zone: cfg.Location(), heard: make(chan listen.Detection, 8),
		found: make([]listen.Detection, 0, 4)}
	path := filepath.Join(cfg.Device.StateDir, baselineFile)
	switch b, err := readBaseline(path); {
	case err == nil:
		det.SetBaseline(b)
		e.saved = b
	case errors.Is(err, fs.ErrNotExist):
	default:
		aside := path + ".bad"
		os.Rename(path, aside)
		if log == nil {
			log = slog.Default()
		}
		log.Warn("cannot use the saved loudness baseline; learning it again", "file", path, "kept_as", aside, "err", err)
	}
	e.detector.Store(det)
	return e, nil
}

// readBaseline reads a saved baseline, no more of it than ParseBaseline
// takes (and a byte more, for it to refuse).
func readBaseline(path string) (listen.Baseline, error) {
	f, err := os.Open(path)
	if err != nil {
		return listen.Baseline{}, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, listen.MaxBaselineSize+1))
	if err != nil {
		return listen.Baseline{}, err
	}
	return listen.ParseBaseline(data)
}

// Hear takes one block of the microphone's samples and the timeline time
// of its first (capture.AudioSource.PCM). It runs on the audio source's
// goroutine and allocates nothing.
func (e *Ear) Hear(t time.Duration, pcm []int16) {
	if !e.Config.Enabled && time.Duration(e.watchUntil.Load()) < t {
		return
	}
	// The detector's hours are the device's: its baseline is per hour of
	// the counter's day.
	e.found, _ = e.detector.Load().Feed(e.found[:0], e.tl.Wall(t).In(e.zone), pcm)
	for _, d := range e.found {
		select {
		case e.heard <- d:
		default:
			e.dropped.Add(1)
		}
	}
}

// Heard delivers each raised voice Hear found, confirmed and then ended.
func (e *Ear) Heard() <-chan listen.Detection { return e.heard }

// Watch has the detector measure until the timeline time until even when
// listening is off, for someone watching the levels.
func (e *Ear) Watch(until time.Duration) {
	for {
		old := e.watchUntil.Load()
		if int64(until) <= old || e.watchUntil.CompareAndSwap(old, int64(until)) {
			return
		}
	}
}

// Levels are the detector's levels as of its last 100 ms step.
func (e *Ear) Levels() listen.Levels { return e.detector.Load().Levels() }

// restart ends a raised voice under way at at, as capture stops, and
// returns its ended report if there was one; the next capture starts with
// a fresh detector that keeps what was learned, so that it does not
// measure across the gap. Call it only while the audio source is stopped.
func (e *Ear) restart(at time.Time) []listen.Detection {
	old := e.detector.Load()
	ended := old.Flush(nil, at)
	det, err := listen.NewDetector(e.detCfg)
	if err != nil { // cannot happen: NewEar made one from the same config
		return ended
	}
	det.SetBaseline(old.Baseline())
	e.detector.Store(det)
	return ended
}

// save writes the baseline to the state directory if it has changed since
// it was last saved: a restart, or a power cut, keeps what the counter
// taught it.
func (e *Ear) save(stateDir string) error {
	b := e.detector.Load().Baseline()
	e.mu.Lock()
	defer e.mu.Unlock()
	if b == e.saved {
		return nil
	}
	data, err := json.Marshal(b)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(stateDir, baselineFile), data, atomicfile.Options{Mode: 0o640}); err != nil {
		return err
	}
	e.saved = b
	return nil
}

// soundOf is what a manifest, the status and the log keep of a
// detection.
func (e *Ear) soundOf(d listen.Detection) outbox.Sound {
	return outbox.Sound{
		Start: d.Start.Round(time.Millisecond), Seconds: round1(d.Duration.Seconds()),
		PeakLUFS: round1(d.PeakLUFS), BaselineLUFS: round1(d.BaselineLUFS), Learned: d.Learned,
		AboveDB: round1(d.AboveDB), RaiseDB: e.Config.RaiseDB,
	}
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }

// baselineEvery is how often the recorder saves what listening has
// learned, if it has changed: often enough that a power cut loses little,
// rarely enough to spare the card.
const baselineEvery = 10 * time.Minute

// maxSounds is how many of the latest raised voices the status keeps.
const maxSounds = 10

// heard acts on a raised voice the ear reported: with listening on, it is
// recorded in the audit log and alerted (Alerts), and with action
// "incident" its confirmation presses for an incident as staff would,
// never an urgent one. With listening off it was heard only because
// someone watches the levels: it is shown to them, and nothing is done.
func (ru *run) heard(ctx context.Context, d listen.Detection) {
	ear := ru.r.Capture.Ear
	sound := ear.soundOf(d)
	s := SoundStatus{Sound: sound, Ended: d.Ended, Acted: ear.Config.Enabled}
	if len(ru.sounds) == maxSounds {
		ru.sounds = append(ru.sounds[:0], ru.sounds[1:]...)
	}
	ru.sounds = append(ru.sounds, s)
	if !ear.Config.Enabled {
		ru.log.Info("a raised voice, heard while the levels are watched (listening is off: nothing is done)",
			"above_db", sound.AboveDB, "seconds", sound.Seconds, "ended", d.Ended)
		return
	}
	ru.emit(Event{Kind: EventSound, Sound: &d, Action: ear.Config.Action})
	if d.Ended {
		return
	}
	ru.log.Warn("a raised voice", "above_db", sound.AboveDB, "peak_lufs", sound.PeakLUFS,
		"baseline_lufs", sound.BaselineLUFS, "seconds", sound.Seconds, "action", ear.Config.Action)
	if ear.Config.Action != config.ListenIncident {
		return
	}
	if _, err := ru.press(ctx, ru.clock.Now(), config.SoundSource, &sound); err != nil {
		ru.log.Warn("the raised voice's incident was not recorded", "err", err)
	}
}

// saveBaseline saves what listening has learned, if anything.
func (ru *run) saveBaseline() {
	if ear := ru.r.Capture.Ear; ear != nil {
		if err := ear.save(ru.r.Config.Device.StateDir); err != nil {
			ru.log.Warn("cannot save the loudness baseline", "err", err)
		}
	}
}

// listening answers `mamoru listen`: the levels and the latest raised
// voices; watch keeps the detector measuring that much longer even when
// listening is off. nil: there is no microphone.
func (ru *run) listening(watch time.Duration) *ListenStatus {
	ear := ru.r.Capture.Ear
	if ear == nil {
		return nil
	}
	if watch > 0 {
		ear.Watch(ru.tl.Of(ru.clock.Now()) + min(watch, maxWatch))
	}
	lv := ear.Levels()
	return &ListenStatus{
		Enabled: ear.Config.Enabled, Action: ear.Config.Action, RaiseDB: ear.Config.RaiseDB, HysteresisDB: ear.Config.HysteresisDB,
		SustainSeconds: ear.Config.SustainSeconds, Capturing: ru.interlock.Capturing(),
		Time: lv.Time, Momentary: finite(lv.MomentaryLUFS), ShortTerm: finite(lv.ShortTermLUFS), Voiced: finite(lv.VoicedLUFS),
		BaselineLUFS: lv.BaselineLUFS, Learned: lv.Learned, Voice: lv.Voiced, VoicedShare: lv.VoicedShare, Raised: lv.Raised,
		Sounds: slices.Clone(ru.sounds), Dropped: ear.dropped.Load(),
	}
}

// maxWatch bounds how long one request keeps the detector measuring: a
// watcher that goes away stops it soon after.
const maxWatch = 30 * time.Second

// finite is x, or nil for a level not yet measured (-Inf), which JSON
// cannot carry.
func finite(x float64) *float64 {
	if math.IsInf(x, 0) || math.IsNaN(x) {
		return nil
	}
	x = round1(x)
	return &x
}

// ListenStatus is what `mamoru listen` shows: the levels the recorder
// hears, in LUFS, against the baseline and the threshold, and the latest
// raised voices.
type ListenStatus struct {
	Enabled        bool    `json:"enabled"`
	Action         string  `json:"action"`
	RaiseDB        float64 `json:"raise_db"`
	HysteresisDB   float64 `json:"hysteresis_db"`
	SustainSeconds float64 `json:"sustain_seconds"`
	// Capturing: the microphone is open (behind the lit indicator, in the
	// recording hours); without it there is nothing to hear.
	Capturing bool `json:"capturing"`
	// Time is the end of the 100 ms step the levels are of.
	Time time.Time `json:"time,omitzero"`
	// Momentary (400 ms), ShortTerm (3 s) and Voiced (short-term loudness
	// of voice alone, which the detector compares) are nil until measured.
	Momentary    *float64      `json:"momentary_lufs"`
	ShortTerm    *float64      `json:"short_term_lufs"`
	Voiced       *float64      `json:"voiced_lufs"`
	BaselineLUFS float64       `json:"baseline_lufs"`
	Learned      bool          `json:"baseline_learned"`
	Voice        bool          `json:"voice"`
	VoicedShare  float64       `json:"voiced_share"`
	Raised       bool          `json:"raised"`
	Sounds       []SoundStatus `json:"sounds"`
	// Dropped counts raised voices the recorder was too busy to take.
	Dropped uint64 `json:"dropped,omitempty"`
}

// SoundStatus is one raised voice the recorder heard, confirmed or ended,
// in the figures a manifest keeps of one. Acted is false for one heard
// while listening is off (someone watched the levels): nothing was done
// about it.
type SoundStatus struct {
	outbox.Sound
	Ended bool `json:"ended"`
	Acted bool `json:"acted"`
}
