// Package selftest is the installer's check of a device: the indicator, the
// button, the microphone, the camera, the clock and the storage, each PASS,
// FAIL or SKIP in a table.
package selftest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"mamoru/bucket"
	"mamoru/capture"
	"mamoru/capture/h264"
	"mamoru/clock"
	"mamoru/config"
	"mamoru/device"
	"mamoru/hardware"
	"mamoru/listen"
)

// Test checks a device as an installer sets it up: the indicator, the
// button, the microphone, the camera, the clock and the storage. Set the
// fields, then call Run.
type Test struct {
	Config    config.Config
	Indicator hardware.Indicator
	Button    hardware.Button // may be nil: the button step fails
	// In answers the installer's questions; Out shows the steps.
	In  *bufio.Reader
	Out io.Writer
	Log *slog.Logger
	// Quick skips the steps that need a person at the counter (the
	// indicator's confirmation and the button press), for a remote check.
	Quick bool
	// ButtonTimeout is how long to wait for the press: 30 s if 0.
	ButtonTimeout time.Duration
	// Measure is how long the microphone's level is shown and the camera's
	// frames counted: 5 s if 0.
	Measure time.Duration
	// ClockSynced reports whether NTP has set the clock; nil asks the
	// kernel.
	ClockSynced func() bool
}

// Check is one line of the self-test's table.
type Check struct {
	Name    string
	Result  string // "PASS", "FAIL" or "SKIP"
	Details string
}

// Run runs every step, prints the table, and returns the checks; any FAIL
// means the device is not ready.
func (st *Test) Run(ctx context.Context) []Check {
	if st.Log == nil {
		st.Log = slog.New(slog.DiscardHandler)
	}
	if st.Measure <= 0 {
		st.Measure = 5 * time.Second
	}
	steps := []struct {
		name string
		run  func(context.Context) (string, error)
		live bool // needs a person at the counter
	}{
		{"indicator", st.indicator, true},
		{"button", st.button, true},
		{"microphone", st.microphone, false},
		{"camera", st.camera, false},
		{"clock", st.clock, false},
		{"storage", st.storage, false},
	}
	var checks []Check
	for _, s := range steps {
		c := Check{Name: s.name, Result: "PASS"}
		switch {
		case s.live && st.Quick:
			c.Result, c.Details = "SKIP", "--quick: needs a person at the counter"
		default:
			fmt.Fprintf(st.Out, "== %s\n", s.name)
			d, err := s.run(ctx)
			c.Details = d
			if errors.Is(err, errSkip) {
				c.Result = "SKIP"
			} else if err != nil {
				c.Result, c.Details = "FAIL", err.Error()
			}
		}
		checks = append(checks, c)
	}
	tw := tabwriter.NewWriter(st.Out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nCHECK\tRESULT\tDETAILS")
	for _, c := range checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Name, c.Result, c.Details)
	}
	tw.Flush()
	return checks
}

var errSkip = errors.New("skipped")

// ask asks the installer a yes/no question.
func (st *Test) ask(q string) (bool, error) {
	fmt.Fprintf(st.Out, "%s [y/N] ", q)
	line, err := st.In.ReadString('\n')
	if err != nil && line == "" {
		return false, fmt.Errorf("no answer (%v)", err)
	}
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes" || a == "はい", nil
}

// indicator blinks the indicator three times, reading it back each time,
// and asks the installer whether they saw it.
func (st *Test) indicator(ctx context.Context) (string, error) {
	defer st.Indicator.Set(false)
	for range 3 {
		for _, on := range []bool{true, false} {
			if err := st.Indicator.Set(on); err != nil {
				return "", err
			}
			lit, err := st.Indicator.Lit()
			if err != nil {
				return "", err
			}
			if lit != on {
				return "", fmt.Errorf("%w: set %v, reads back %v", hardware.ErrIndicatorFault, on, lit)
			}
			if !clock.Sleep(ctx, clock.Real(), 400*time.Millisecond) {
				return "", ctx.Err()
			}
		}
	}
	seen, err := st.ask("Did the indicator (and the sign) blink three times?")
	if err != nil {
		return "", err
	}
	if !seen {
		return "", errors.New("the installer did not see it blink: check the wiring and hardware.indicator_pin")
	}
	return "blinked 3 times, read back each time, seen by the installer", nil
}

// button waits for a press.
func (st *Test) button(ctx context.Context) (string, error) {
	if st.Button == nil {
		return "", errors.New("no button configured")
	}
	timeout := st.ButtonTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	fmt.Fprintf(st.Out, "Press the incident button within %s.\n", timeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	presses := make(chan hardware.Press, 1)
	errc := make(chan error, 1)
	go func() { errc <- st.Button.Run(ctx, presses) }()
	defer func() { cancel(); <-errc }()
	start := time.Now()
	select {
	case p := <-presses:
		if s, ok := st.Indicator.(hardware.Signaler); ok {
			s.Signal(hardware.Ack)
		}
		return fmt.Sprintf("pressed after %.1f s (%s)", time.Since(start).Seconds(), p.Source), nil
	case <-ctx.Done():
		return "", fmt.Errorf("no press within %s: check the wiring and hardware.button_pin", timeout)
	}
}

// microphone shows a level meter for st.Measure: the peak in dBFS, and
// the loudness in LUFS that listening compares ([listen]) next to the
// usual level of voices the recorder has learned for this hour.
func (st *Test) microphone(ctx context.Context) (string, error) {
	cfg := st.Config
	if !cfg.Audio.Enabled {
		return "audio.enabled = false", errSkip
	}
	ring := capture.NewRing(4<<20, 10*time.Second, 1024)
	tl := capture.NewTimeline(clock.Real(), nil)
	src := &capture.AudioSource{Config: cfg.Audio, Timeline: tl, Ring: ring, Log: st.Log}
	// The recorder's own ear, from the baseline it saved, measuring
	// whether or not listening is on.
	ear, err := device.NewEar(cfg, tl, st.Log)
	if err != nil {
		return "", err
	}
	ear.Watch(math.MaxInt64)
	src.PCM = ear.Hear
	stop, err := st.open(ctx, device.SourceMicrophone, src)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, st.Measure)
	defer cancel()
	loudest, loudestLUFS := math.Inf(-1), math.Inf(-1)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for loop := true; loop; {
		select {
		case <-ctx.Done():
			loop = false
		case <-tick.C:
			db := src.Peak()
			loudest = max(loudest, db)
			n := 0
			if !math.IsInf(db, -1) {
				n = int(max(0, min(40, (db+60)/60*40)))
			}
			lv := ear.Levels()
			loudestLUFS = max(loudestLUFS, lv.MomentaryLUFS)
			fmt.Fprintf(st.Out, "\rmic [%-40s] %6.1f dBFS %s, usual voices %s ", strings.Repeat("#", n), db, lufs(lv.MomentaryLUFS), usual(lv))
		}
	}
	stop()
	fmt.Fprintln(st.Out)
	h := src.Health()
	if h.Frames == 0 {
		return "", fmt.Errorf("no sound from the microphone in %s (backend %s): %s", st.Measure, cfg.Audio.Backend, h.LastError)
	}
	lv := ear.Levels()
	detail := fmt.Sprintf("%d blocks of 20 ms, loudest %.1f dBFS, %s at most (usual voices %s; a raised voice is %.0f dB over)",
		h.Frames, loudest, strings.TrimSpace(lufs(loudestLUFS)), usual(lv), cfg.Listen.RaiseDB)
	if math.IsInf(loudest, -1) || loudest < -70 {
		detail += " (silent: speak near the microphone, or check audio.device)"
	}
	return detail, nil
}

// lufs writes a loudness, or that none was measured yet.
func lufs(x float64) string {
	if math.IsInf(x, 0) || math.IsNaN(x) {
		return "  -   LUFS"
	}
	return fmt.Sprintf("%6.1f LUFS", x)
}

// usual says the baseline and whether it was learned at this counter.
func usual(lv listen.Levels) string {
	if !lv.Learned {
		return fmt.Sprintf("%.1f LUFS (not yet learned: the default)", lv.BaselineLUFS)
	}
	return fmt.Sprintf("%.1f LUFS (learned)", lv.BaselineLUFS)
}

// camera grabs frames for st.Measure and reports their rate and size.
func (st *Test) camera(ctx context.Context) (string, error) {
	cfg := st.Config
	if !cfg.Video.Enabled {
		return "video.enabled = false", errSkip
	}
	ring := capture.NewRing(64<<20, 10*time.Second, 1024)
	src := &capture.VideoSource{Config: cfg.Video, Timeline: capture.NewTimeline(clock.Real(), nil), Ring: ring, Log: st.Log}
	stop, err := st.open(ctx, device.SourceCamera, src)
	if err != nil {
		return "", err
	}
	defer stop()
	// Measure from the first frame on, so the camera's start-up is not
	// counted against its rate.
	deadline := time.Now().Add(15 * time.Second)
	var first time.Time
	var firstFrames uint64
	for time.Now().Before(deadline) {
		h := src.Health()
		if h.Frames > 0 && first.IsZero() {
			first, firstFrames = time.Now(), h.Frames
		}
		if !first.IsZero() && time.Since(first) >= st.Measure {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	h := src.Health()
	if first.IsZero() {
		return "", fmt.Errorf("no frame from the camera in 15 s (video.source %s): %s", cfg.Video.Source, h.LastError)
	}
	fps := float64(h.Frames-firstFrames) / time.Since(first).Seconds()
	w, hgt, err := frameSize(ring)
	if err != nil {
		return "", err
	}
	detail := fmt.Sprintf("%dx%d at %.1f fps", w, hgt, fps)
	if w != cfg.Video.Width || hgt != cfg.Video.Height {
		return "", fmt.Errorf("%s, but the configuration asks for %dx%d", detail, cfg.Video.Width, cfg.Video.Height)
	}
	if fps < 0.8*float64(cfg.Video.FPS) {
		return "", fmt.Errorf("%s, below the configured %d fps", detail, cfg.Video.FPS)
	}
	return detail, nil
}

// open starts src behind the indicator, as the recorder does: the
// indicator is lit and read back before src opens, and stop closes src
// before the indicator goes off.
func (st *Test) open(ctx context.Context, name string, src capture.Source) (stop func(), err error) {
	l := &device.Interlock{Indicator: st.Indicator, Sources: map[string]capture.Source{name: src}, Clock: clock.Real()}
	if err := l.Start(ctx); err != nil {
		return nil, fmt.Errorf("the %s was not opened: the indicator is not confirmed lit (%w)", name, err)
	}
	return func() {
		if err := l.Stop("self-test"); err != nil {
			st.Log.Error("the self-test could not stop capture", "source", name, "err", err)
		}
	}, nil
}

// frameSize reads the picture size from the first SPS in the ring.
func frameSize(ring *capture.Ring) (int, int, error) {
	frames := make([]capture.Frame, 64)
	buf := make([]byte, 8<<20)
	st := ring.Stats()
	for seq := st.NextSeq - uint64(st.Frames); ; {
		n, next, err := ring.Read(seq, frames, buf)
		if err != nil {
			return 0, 0, err
		}
		if n == 0 {
			return 0, 0, errors.New("the camera sent no sequence parameter set")
		}
		for _, f := range frames[:n] {
			if f.Track != capture.Video || !f.Key {
				continue
			}
			for nal, err := range h264.AVCCUnits(f.Data) {
				if err != nil {
					break
				}
				if h264.NALType(nal) == h264.NALSPS {
					sps, err := h264.ParseSPS(nal)
					if err != nil {
						return 0, 0, err
					}
					return sps.Width, sps.Height, nil
				}
			}
		}
		seq = next
	}
}

// clock checks that NTP has set the clock.
func (st *Test) clock(context.Context) (string, error) {
	synced := st.ClockSynced
	if synced == nil {
		synced = clock.Synced
	}
	now := time.Now().In(st.Config.Location())
	if !synced() {
		return "", fmt.Errorf("the clock (%s) is not synchronised by NTP: check the network and systemd-timesyncd; incident times and recording hours depend on it", now.Format(time.DateTime))
	}
	return "synchronised: " + now.Format(time.DateTime+" MST"), nil
}

// storage writes a test object into the device's own folder and deletes
// it.
func (st *Test) storage(ctx context.Context) (string, error) {
	s := st.Config.Storage
	if !s.Enabled() {
		return "no storage.endpoint: clips stay on the device", errSkip
	}
	c, err := bucket.NewClient(s)
	if err != nil {
		return "", err
	}
	object, err := bucket.Probe(ctx, c, s, st.Config.Device.Store, st.Config.Device.ID)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("wrote and deleted %s in bucket %s", object, s.Bucket), nil
}
