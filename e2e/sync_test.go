package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"mamoru/capture/pulsetest"
	"mamoru/capture/synctest"
	"mamoru/config"
	"mamoru/device"
	"mamoru/outbox"
)

// TestSyncTee is the sync rig's tee on the camera pipe; it does nothing
// unless the rig runs it.
func TestSyncTee(t *testing.T) { synctest.Tee(t) }

// TestSoundAndPictureInSync records 30 s (MAMORU_SYNC_SECONDS, make
// sync-long: 600) from the sync rig, whose flashes and beeps happen
// together, and checks that in the clip each beep starts within 40 ms of
// its flash, at the start, the middle and the end, less the rig's own skew
// for that beep, measured outside the recorder.
func TestSoundAndPictureInSync(t *testing.T) {
	seconds := 30
	if n, err := strconv.Atoi(os.Getenv("MAMORU_SYNC_SECONDS")); err == nil && n >= 30 {
		seconds = min(n, 600)
	}
	pulsetest.Start(t)
	ear := synctest.Listen(t)
	frameLog := filepath.Join(t.TempDir(), "frames")
	cfg := testConfig(t)
	cfg.Video.Source, cfg.Video.Command = config.SourceCommand, synctest.Command("320x240", frameLog)
	cfg.Audio.Backend, cfg.Audio.Device = "pulse", pulsetest.Monitor
	cfg.Capture.PreSeconds, cfg.Capture.PostSeconds = 10, seconds-10
	start(t, cfg)
	waitFor(t, cfg, "a full pre-roll", func(s device.Status) bool {
		return s.BufferedSeconds >= 11 && s.Sources["audio"].Frames > 500
	})
	res, err := device.Trigger(context.Background(), cfg.Device.StateDir, "cli")
	if err != nil {
		t.Fatal(err)
	}
	waitWithin(t, cfg, "the clip", time.Duration(seconds+60)*time.Second, func(s device.Status) bool {
		return len(s.Incidents) == 1 && s.Incidents[0].State == outbox.StateComplete
	})
	clip := filepath.Clean(res.Clip)
	m, err := outbox.ReadManifest(filepath.Dir(clip))
	if err != nil {
		t.Fatal(err)
	}
	sync := synctest.Measure(t, clip, m.ClipStart, synctest.LoadFrames(t, frameLog), ear.Stop())
	if n := len(sync.Samples); n < seconds/2-3 {
		t.Fatalf("found %d flashes in a %d s clip with one every 2 s", n, seconds)
	}
	t.Logf("beep minus flash in a %d s clip:\n\t%s", seconds, sync.Report())
	for _, p := range sync.Problems(40*time.Millisecond, 10*time.Millisecond) {
		t.Error(p)
	}
	worst, over := sync.Worst(40 * time.Millisecond)
	good := len(sync.Good())
	t.Logf("the rig's skew: median %+.1f ms; the recorder's: largest %.1f ms, %d of %d flashes beyond 40 ms, %d left out",
		float64(sync.RigSkew)/1e6, float64(worst)/1e6, over, good, len(sync.Samples)-good)
}
