package e2e

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"mamoru/audit"
	"mamoru/capture"
	"mamoru/capture/cliptest"
	"mamoru/clock"
	"mamoru/config"
	"mamoru/device"
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
	rec  *device.Recorder
	sim  *hardware.Sim
	done chan error
	stop context.CancelFunc
}

func start(t *testing.T, cfg config.Config) *started {
	t.Helper()
	sim := &hardware.Sim{}
	ctx, cancel := context.WithCancel(context.Background())
	s := &started{sim: sim, done: make(chan error, 1), stop: cancel}
	s.rec = withParts(t, &device.Recorder{Config: cfg, Indicator: sim, Log: testLogger(t), Version: "test"})
	go func() { s.done <- s.rec.Run(ctx) }()
	t.Cleanup(func() { s.shutdown(t) })
	return s
}

// withParts hands rec the real capture parts on the system clock and, with
// storage, the real uploader, as cmd does.
func withParts(t testing.TB, rec *device.Recorder) *device.Recorder {
	t.Helper()
	c, err := device.NewCapture(rec.Config, clock.Real(), clock.Real(), rec.Log)
	if err != nil {
		t.Fatal(err)
	}
	rec.Capture = c
	if rec.Config.Storage.Enabled() && rec.Uploader == nil {
		rec.Uploader = device.NewUploader(rec)
	}
	return rec
}

// runRecorder runs rec in the background until the test ends, or until
// the returned stop is called. A rec without capture parts gets the real
// ones.
func runRecorder(t testing.TB, rec *device.Recorder) (stop func()) {
	if rec.Capture.Ring == nil {
		withParts(t, rec)
	}
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
func waitFor(t testing.TB, cfg config.Config, what string, cond func(device.Status) bool) device.Status {
	t.Helper()
	return waitWithin(t, cfg, what, 60*time.Second, cond)
}

// waitWithin is waitFor with its own bound, for clips longer than a minute.
func waitWithin(t testing.TB, cfg config.Config, what string, limit time.Duration, cond func(device.Status) bool) device.Status {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := device.GetStatus(ctx, cfg.Device.StateDir)
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
	waitFor(t, cfg, "a full pre-roll of video", func(s device.Status) bool {
		return s.Sources["video"].Frames > uint64((pre+2)*float64(cfg.Video.FPS))
	})

	res, err := device.Trigger(context.Background(), cfg.Device.StateDir, "cli")
	if err != nil {
		t.Fatal(err)
	}
	st := waitFor(t, cfg, "the incident to finish", func(s device.Status) bool {
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
	path := filepath.Join(cfg.Device.StateDir, "audit.log")
	if _, err := audit.Verify(path); err != nil {
		t.Fatal(err)
	}
	entries, _ := audit.ReadAll(path)
	if err := audit.CheckInterlock(entries); err != nil {
		t.Error(err)
	}
}

func TestAudioOnlyAndVideoOnly(t *testing.T) {
	for _, tc := range []struct{ name, kind string }{{"audio only", "audio"}, {"video only", "video"}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Capture.PreSeconds, cfg.Capture.PostSeconds = 1, 1
			cfg.Video.Enabled = tc.kind == "video"
			cfg.Audio.Enabled = tc.kind == "audio"
			start(t, cfg)
			waitFor(t, cfg, "a pre-roll", func(s device.Status) bool { return s.BufferedSeconds >= 1.5 })
			res, err := device.Trigger(context.Background(), cfg.Device.StateDir, "cli")
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, cfg, "the clip", func(s device.Status) bool {
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

// syncWriter is a strings.Builder safe for the recorder's goroutines.
type syncWriter struct {
	mu sync.Mutex // guards b
	b  strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string { w.mu.Lock(); defer w.mu.Unlock(); return w.b.String() }
