package device

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mamoru/audit"
	"mamoru/capture"
	"mamoru/capture/cliptest"
	"mamoru/config"
	"mamoru/hardware"
	"mamoru/outbox"
)

// testConfig is a small real recorder: ffmpeg's test pattern and miniaudio's
// null microphone.
func testConfig(t testing.TB) config.Config {
	c := config.Default()
	c.Device.ID, c.Device.Store = "test-counter", "test-store"
	c.Device.StateDir = t.TempDir()
	c.Capture.PreSeconds, c.Capture.PostSeconds = 3, 2
	c.Video.Source = config.SourceTestsrc
	c.Video.Width, c.Video.Height, c.Video.FPS = 320, 240, 30
	c.Video.BitrateKbps, c.Video.KeyframeInterval = 500, 15
	c.Audio.Backend = config.BackendNull
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// started runs a recorder in the background and stops it at the test's end.
type started struct {
	rec  *Recorder
	sim  *hardware.Sim
	done chan error
	stop context.CancelFunc
}

func start(t *testing.T, cfg config.Config) *started {
	t.Helper()
	sim := &hardware.Sim{}
	ctx, cancel := context.WithCancel(context.Background())
	s := &started{sim: sim, done: make(chan error, 1), stop: cancel}
	s.rec = &Recorder{Config: cfg, Indicator: sim, Log: testLogger(t), Version: "test"}
	go func() { s.done <- s.rec.Run(ctx) }()
	t.Cleanup(func() { s.shutdown(t) })
	return s
}

// runRecorder runs rec in the background until the test ends, or until
// the returned stop is called.
func runRecorder(t testing.TB, rec *Recorder) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rec.Run(ctx) }()
	stop = sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(stop)
	return stop
}

func (s *started) shutdown(t *testing.T) {
	s.stop()
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		s.done <- nil
	case <-time.After(30 * time.Second):
		t.Fatalf("recorder did not stop within 30 s; its goroutines:\n%s", goroutines())
	}
}

// goroutines returns every goroutine's stack, to show where a recorder that
// stopped answering is stuck.
func goroutines() string {
	var b strings.Builder
	pprof.Lookup("goroutine").WriteTo(&b, 2)
	return b.String()
}

// testLogger logs to stderr under -v; otherwise it keeps the log and shows it
// only if the test fails.
func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	var log syncWriter
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the recorder's log:\n%s", log.String())
		}
	})
	return slog.New(slog.NewTextHandler(&log, nil))
}

// waitFor polls the recorder's status until cond holds. It waits on real
// media arriving, so it is bounded generously and never asserts a time.
func waitFor(t testing.TB, cfg config.Config, what string, cond func(Status) bool) Status {
	t.Helper()
	return waitWithin(t, cfg, what, 60*time.Second, cond)
}

// waitWithin is waitFor with its own bound, for clips longer than a minute.
func waitWithin(t testing.TB, cfg config.Config, what string, limit time.Duration, cond func(Status) bool) Status {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := GetStatus(ctx, cfg.Device.StateDir)
		cancel()
		if err == nil && cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			if err != nil {
				t.Logf("the recorder does not answer; its goroutines:\n%s", goroutines())
			}
			t.Fatalf("waiting for %s: last status %+v, err %v", what, st, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestIncidentClip(t *testing.T) {
	cfg := testConfig(t)
	start(t, cfg)
	pre, post := float64(cfg.Capture.PreSeconds), float64(cfg.Capture.PostSeconds)
	waitFor(t, cfg, "a full pre-roll of video", func(s Status) bool {
		return s.Sources["video"].Frames > uint64((pre+2)*float64(cfg.Video.FPS))
	})

	res, err := Trigger(context.Background(), cfg.Device.StateDir, "cli")
	if err != nil {
		t.Fatal(err)
	}
	st := waitFor(t, cfg, "the incident to finish", func(s Status) bool {
		return len(s.Incidents) == 1 && s.Incidents[0].State == outbox.StateComplete
	})
	if st.PendingUploads != 1 {
		t.Errorf("pending_uploads = %d, want 1", st.PendingUploads)
	}
	dir := filepath.Dir(res.Clip)
	m, err := outbox.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.Trigger != "cli" || m.Device != "test-counter" || m.Store != "test-store" || m.Incident != res.Incident {
		t.Errorf("manifest = %+v", m)
	}
	if _, off := m.PressTime.Zone(); off != 9*3600 {
		t.Errorf("press time %v is not in Asia/Tokyo", m.PressTime)
	}
	gop := float64(cfg.Video.KeyframeInterval) / float64(cfg.Video.FPS)
	frame := 1 / float64(cfg.Video.FPS)

	// The clip starts at the key frame at or before press − pre (within one
	// GOP of it) and ends at or after press + post − one frame.
	if lead := m.PressTime.Sub(m.ClipStart).Seconds(); lead < pre || lead > pre+gop+frame {
		t.Errorf("clip starts %.3f s before the press, want between %.1f and %.3f", lead, pre, pre+gop+frame)
	}
	if tail := m.ClipEnd.Sub(m.PressTime).Seconds(); tail < post-frame {
		t.Errorf("clip ends %.3f s after the press, want at least %.3f", tail, post-frame)
	}
	if len(m.Indicator) == 0 || !m.Indicator[0].On {
		t.Errorf("manifest indicator log = %+v, want lit from the clip's start", m.Indicator)
	}

	// The judges.
	info := cliptest.Probe(t, res.Clip)
	v, okV := info.Stream("video")
	a, okA := info.Stream("audio")
	if !okV || v.CodecName != "h264" || v.Width != 320 || v.Height != 240 {
		t.Errorf("video stream = %+v, want h264 320x240", v)
	}
	if !okA || a.CodecName != "flac" || a.SampleRate != 48000 || a.Channels != 1 {
		t.Errorf("audio stream = %+v, want flac 48000 Hz mono", a)
	}
	if want := m.DurationSeconds; info.Duration < want-gop || info.Duration > want+gop {
		t.Errorf("ffprobe duration %.3f, manifest %.3f: more than a GOP apart", info.Duration, want)
	}
	if want := pre + post; info.Duration < want-frame || info.Duration > want+gop+0.5 {
		t.Errorf("clip lasts %.3f s, want pre+post = %.0f s within a GOP", info.Duration, want)
	}
	if out := cliptest.DecodeErrors(t, res.Clip); out != "" {
		t.Errorf("ffmpeg decode errors:\n%s", out)
	}
	checkGaps(t, res.Clip, frame)
	pb := cliptest.Play(t, res.Clip)
	if !pb.Ended || pb.VideoDecodedBytes == 0 || pb.AudioDecodedBytes == 0 {
		t.Errorf("Chromium playback = %+v, want ended with both tracks decoded", pb)
	}
	if m.Clip.Size != info.Size || len(m.Clip.SHA256) != 64 {
		t.Errorf("manifest clip = %+v, file is %d bytes", m.Clip, info.Size)
	}

	auditOrder(t, cfg)
}

// checkGaps fails if a video frame is missing (a gap over 1.5 frame
// intervals) or audio has a hole over 10 ms, or if two frames or blocks are
// squeezed closer than the stamper ever puts them (7/8 of their interval,
// less a millisecond of rounding).
func checkGaps(t *testing.T, clip string, frame float64) {
	t.Helper()
	for _, kind := range []string{"video", "audio"} {
		period, limit := frame, 1.5*frame
		if kind == "audio" {
			period = capture.AudioBlock.Seconds()
			limit = period + 0.010 // one block plus at most 10 ms of hole
		}
		shortest, longest := cliptest.Spacing(t, clip, kind)
		if longest.Length > limit {
			t.Errorf("%s gap of %.1f ms at %.3f s", kind, longest.Length*1000, longest.At)
		}
		if shortest.Length < period*7/8-0.001 {
			t.Errorf("%s packets %.1f ms apart at %.3f s, want at least 7/8 of %.1f ms", kind, shortest.Length*1000, shortest.At, period*1000)
		}
	}
}

// auditOrder checks the interlock in the audit log: the indicator went on
// before capture started, and capture stopped before it went off.
func auditOrder(t *testing.T, cfg config.Config) {
	t.Helper()
	path := filepath.Join(cfg.Device.StateDir, auditFile)
	if _, err := audit.Verify(path); err != nil {
		t.Fatal(err)
	}
	entries, _ := audit.ReadAll(path)
	lit, capturing := false, false
	for _, e := range entries {
		switch {
		case e.Event == "indicator":
			lit = e.Fields["on"] == "true"
			if !lit && capturing {
				t.Errorf("audit %d: indicator off while capturing", e.Seq)
			}
		case e.Event == "capture" && e.Fields["state"] == "started":
			if !lit {
				t.Errorf("audit %d: capture started with the indicator off", e.Seq)
			}
			capturing = true
		case e.Event == "capture" && e.Fields["state"] == "stopped":
			capturing = false
		}
	}
}

func TestIndicatorFaultStopsCapture(t *testing.T) {
	cfg := testConfig(t)
	s := start(t, cfg)
	waitFor(t, cfg, "buffering", func(s Status) bool { return s.State == StateBuffering && s.BufferedSeconds > 0.5 })

	s.sim.Fail(errors.New("LED driver unplugged"))
	st := waitFor(t, cfg, "fault", func(s Status) bool { return s.State == StateFault })
	if st.Indicator || !strings.Contains(st.Fault, "LED driver unplugged") {
		t.Errorf("status = %+v, want indicator off and the fault named", st)
	}
	st = waitFor(t, cfg, "sources closed", func(s Status) bool {
		return !s.Sources["video"].Running && !s.Sources["audio"].Running && s.BufferedSeconds == 0
	})
	if _, err := Trigger(context.Background(), cfg.Device.StateDir, "cli"); err == nil {
		t.Error("a press during a fault raised an incident with the indicator off")
	}

	// Once the indicator works again, capture resumes behind it.
	s.sim.Fail(nil)
	waitFor(t, cfg, "capture to resume", func(s Status) bool { return s.State == StateBuffering && s.Indicator })
	s.shutdown(t)
	auditOrder(t, cfg)
}

func TestAudioOnlyAndVideoOnly(t *testing.T) {
	for _, tc := range []struct{ name, kind string }{{"audio only", "audio"}, {"video only", "video"}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Capture.PreSeconds, cfg.Capture.PostSeconds = 1, 1
			cfg.Video.Enabled = tc.kind == "video"
			cfg.Audio.Enabled = tc.kind == "audio"
			start(t, cfg)
			waitFor(t, cfg, "a pre-roll", func(s Status) bool { return s.BufferedSeconds >= 1.5 })
			res, err := Trigger(context.Background(), cfg.Device.StateDir, "cli")
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, cfg, "the clip", func(s Status) bool {
				return len(s.Incidents) == 1 && s.Incidents[0].State == outbox.StateComplete
			})
			info := cliptest.Probe(t, res.Clip)
			if len(info.Streams) != 1 || info.Streams[0].CodecType != tc.kind {
				t.Errorf("streams = %+v, want only %s", info.Streams, tc.kind)
			}
			if out := cliptest.DecodeErrors(t, res.Clip); out != "" {
				t.Errorf("decode errors: %s", out)
			}
		})
	}
}

func TestPressDuringIncidentExtendsIt(t *testing.T) {
	cfg := testConfig(t)
	cfg.Capture.PreSeconds, cfg.Capture.PostSeconds, cfg.Capture.MaxIncidentSeconds = 1, 2, 5
	start(t, cfg)
	waitFor(t, cfg, "a pre-roll", func(s Status) bool { return s.BufferedSeconds >= 1.5 })
	first, err := Trigger(context.Background(), cfg.Device.StateDir, "cli")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the second press comes a second later, as a person's would
	second, err := Trigger(context.Background(), cfg.Device.StateDir, "cli")
	if err != nil {
		t.Fatal(err)
	}
	if !second.Extended || second.Incident != first.Incident || !second.Until.After(first.Until) {
		t.Errorf("second press = %+v, want it to extend %+v", second, first)
	}
	waitFor(t, cfg, "the clip", func(s Status) bool {
		return len(s.Incidents) == 1 && s.Incidents[0].State == outbox.StateComplete
	})
	m, _ := outbox.ReadManifest(filepath.Dir(first.Clip))
	if len(m.Presses) != 2 {
		t.Errorf("manifest presses = %+v, want 2", m.Presses)
	}
	// pre + 1 s + post, within a GOP, and never over max_incident_seconds.
	if m.DurationSeconds < 3.9 || m.DurationSeconds > float64(cfg.Capture.MaxIncidentSeconds) {
		t.Errorf("extended clip lasts %.2f s, want about 4 and at most %d", m.DurationSeconds, cfg.Capture.MaxIncidentSeconds)
	}
}

// Presses that keep coming stop extending the clip at max_incident_seconds
// from its start: a button held down by a bag cannot make a clip without end.
func TestPressesStopAtTheCap(t *testing.T) {
	cfg := testConfig(t)
	cfg.Capture.PreSeconds, cfg.Capture.PostSeconds, cfg.Capture.MaxIncidentSeconds = 1, 2, 4
	start(t, cfg)
	waitFor(t, cfg, "a pre-roll", func(s Status) bool { return s.BufferedSeconds >= 1.5 })
	var replies []TriggerResult
	for i := range 3 {
		if i > 0 {
			time.Sleep(time.Second)
		}
		r, err := Trigger(context.Background(), cfg.Device.StateDir, "cli")
		if err != nil {
			t.Fatal(err)
		}
		replies = append(replies, r)
	}
	for _, r := range replies[1:] {
		if r.Incident != replies[0].Incident {
			t.Fatalf("presses = %+v, want one incident", replies)
		}
	}
	waitFor(t, cfg, "the clip", func(s Status) bool {
		return len(s.Incidents) == 1 && s.Incidents[0].State == outbox.StateComplete
	})
	m, err := outbox.ReadManifest(filepath.Dir(replies[0].Clip))
	if err != nil {
		t.Fatal(err)
	}
	// Uncapped, the last press would have made it at least pre + 2 s + post = 5 s.
	if m.DurationSeconds < 3.9 || m.DurationSeconds > 4.05 {
		t.Errorf("clip lasts %.3f s, want the cap of %d s", m.DurationSeconds, cfg.Capture.MaxIncidentSeconds)
	}
	if len(m.Presses) != 3 {
		t.Errorf("manifest presses = %+v, want all 3", m.Presses)
	}
	// Until is on the wall clock, mapped afresh for each answer.
	if d := replies[2].Until.Sub(replies[1].Until); d > time.Millisecond || d < -time.Millisecond {
		t.Errorf("the last press moved the end from %v to %v past the cap", replies[1].Until, replies[2].Until)
	}
}

// Until NTP has set the clock (a Pi has no battery clock), status and every
// manifest say the times may be off.
func TestUnsyncedClockIsSaid(t *testing.T) {
	cfg := testConfig(t)
	cfg.Capture.PreSeconds, cfg.Capture.PostSeconds = 1, 1
	var synced atomic.Bool
	rec := &Recorder{Config: cfg, Indicator: &hardware.Sim{}, Log: testLogger(t), Version: "test", ClockSynced: synced.Load}
	runRecorder(t, rec)
	waitFor(t, cfg, "a pre-roll, the clock unsynced", func(s Status) bool { return s.BufferedSeconds >= 1.5 && !s.ClockSynced })
	r, err := Trigger(context.Background(), cfg.Device.StateDir, "cli")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, cfg, "the clip", func(s Status) bool {
		return len(s.Incidents) == 1 && s.Incidents[0].State == outbox.StateComplete
	})
	m, err := outbox.ReadManifest(filepath.Dir(r.Clip))
	if err != nil {
		t.Fatal(err)
	}
	if m.ClockSynced {
		t.Error("manifest says clock_synced although NTP had not set the clock")
	}
	synced.Store(true)
	waitFor(t, cfg, "the clock synced", func(s Status) bool { return s.ClockSynced })
}

// Incident ids sort by time and stay unique across restarts, even with the
// clock at the same second each time (a Pi before NTP).
func TestIncidentIDs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "incident-counter")
	at := time.Date(1970, 1, 1, 0, 0, 42, 0, time.UTC)
	var ids []string
	for range 3 { // three boots, each pressed at the same second
		id, err := incidentIDs{path: path, loc: time.UTC}.next(at)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	later, _ := incidentIDs{path: path, loc: time.UTC}.next(at.Add(time.Hour))
	ids = append(ids, later)
	want := []string{"19700101-000042-000001", "19700101-000042-000002", "19700101-000042-000003", "19700101-010042-000004"}
	if !slices.Equal(ids, want) {
		t.Errorf("ids %v, want %v", ids, want)
	}
}

// A damaged counter file starts the count again; a press whose id is
// already taken in the outbox moves on to the next, and is recorded.
func TestIncidentIDTakenMovesOn(t *testing.T) {
	cfg := testConfig(t)
	cfg.Capture.PreSeconds, cfg.Capture.PostSeconds = 1, 1
	os.WriteFile(filepath.Join(cfg.Device.StateDir, "incident-counter"), []byte("garbage\n"), 0o640)
	start(t, cfg)
	waitFor(t, cfg, "a pre-roll", func(s Status) bool { return s.BufferedSeconds >= 1.5 })
	// Taken: the id the restarted count gives, at every second the press
	// could fall on.
	loc, _ := time.LoadLocation(cfg.Device.Timezone)
	now := time.Now()
	for d := -2 * time.Second; d <= 30*time.Second; d += time.Second {
		os.Mkdir(filepath.Join(cfg.Device.StateDir, "incidents", now.Add(d).In(loc).Format("20060102-150405")+"-000001"), 0o750)
	}
	r, err := Trigger(context.Background(), cfg.Device.StateDir, "cli")
	if err != nil {
		t.Fatalf("a press whose id was taken: %v", err)
	}
	if !strings.HasSuffix(r.Incident, "-000002") {
		t.Errorf("incident %s, want the next count, 000002", r.Incident)
	}
}
