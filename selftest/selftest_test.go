package selftest

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mamoru/bucket"
	"mamoru/bucket/s3test"
	"mamoru/config"
	"mamoru/hardware"
)

func TestSelfTest(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	srv.Bucket("clips")
	cfg := testConfig(t)
	cfg.Storage = srv.Storage("clips")
	// The device's own write-only user: the self-test's probe is the one
	// object it may delete.
	srv.AddUser("test-counter", "test-counter-secret", bucket.DevicePolicy(cfg.Storage, cfg.Device.Store, cfg.Device.ID))
	cfg.Storage.AccessKey, cfg.Storage.SecretKey = "test-counter", "test-counter-secret"

	run := func(answers string, synced bool) (map[string]Check, string) {
		in := bufio.NewReader(strings.NewReader(answers))
		var out strings.Builder
		sim := &hardware.Sim{In: in, Out: &out}
		st := &Test{Config: cfg, Indicator: sim, Button: sim, In: in, Out: &out,
			ButtonTimeout: 2 * time.Second, Measure: 2 * time.Second, ClockSynced: func() bool { return synced }}
		got := map[string]Check{}
		for _, c := range st.Run(context.Background()) {
			got[c.Name] = c
		}
		return got, out.String()
	}

	got, out := run("y\n\n", true)
	for _, name := range []string{"indicator", "button", "microphone", "camera", "clock", "storage"} {
		if got[name].Result != "PASS" {
			t.Errorf("%s: %+v, want PASS\n%s", name, got[name], out)
		}
	}
	if d := got["camera"].Details; !strings.HasPrefix(d, "320x240 at ") {
		t.Errorf("camera: %q, want the configured 320x240", d)
	}
	if !strings.Contains(out, "CHECK") || !strings.Contains(out, "mic [") {
		t.Errorf("no table or level meter in the output:\n%s", out)
	}

	// The installer saw nothing, nobody pressed, the clock is not set.
	got, out = run("n\n", false)
	for _, name := range []string{"indicator", "button", "clock"} {
		if got[name].Result != "FAIL" {
			t.Errorf("%s: %+v, want FAIL\n%s", name, got[name], out)
		}
	}
}

// testConfig is a device with the test pattern camera and the null
// microphone.
func testConfig(t testing.TB) config.Config {
	c := config.Default()
	c.Device.ID, c.Device.Store = "test-counter", "test-store"
	c.Device.StateDir = t.TempDir()
	c.Video.Source = config.SourceTestsrc
	c.Video.Width, c.Video.Height, c.Video.FPS = 320, 240, 30
	c.Video.BitrateKbps, c.Video.KeyframeInterval = 500, 15
	c.Audio.Backend = config.BackendNull
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// The self-test opens the microphone and camera only behind the indicator,
// as the recorder does: with a dead indicator they fail, saying why, and
// the camera's encoder never starts.
func TestSelfTestCaptureBehindTheIndicator(t *testing.T) {
	cfg := testConfig(t)
	started := filepath.Join(t.TempDir(), "camera-started")
	cfg.Video.Source = config.SourceCommand
	cfg.Video.Command = "touch " + started + "; exec sleep 60"
	sim := &hardware.Sim{}
	sim.Fail(errors.New("LED driver unplugged"))
	var out strings.Builder
	st := &Test{Config: cfg, Indicator: sim, In: bufio.NewReader(strings.NewReader("")), Out: &out, Quick: true,
		Measure: 100 * time.Millisecond, ClockSynced: func() bool { return true }}
	got := map[string]Check{}
	for _, c := range st.Run(context.Background()) {
		got[c.Name] = c
	}
	for _, name := range []string{"microphone", "camera"} {
		if c := got[name]; c.Result != "FAIL" || !strings.Contains(c.Details, "indicator is not confirmed lit") {
			t.Errorf("%s: %+v, want FAIL for the dead indicator", name, c)
		}
	}
	if _, err := os.Stat(started); err == nil {
		t.Error("the camera started with the indicator dead")
	}
}
