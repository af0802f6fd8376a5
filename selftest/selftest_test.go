package selftest

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"mamoru/bucket"
	"mamoru/bucket/s3test"
	"mamoru/capture/pulsetest"
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

// The microphone's check reads loudness through the real capture path as
// BS.1770 says: a 1 kHz sine at -23 dBFS played into a real PulseAudio
// sink reads -26.0 LUFS in mono (the reference, EBU Tech 3341's, is
// -23 LUFS in both channels of a stereo pair), next to the usual level the
// recorder saved for this hour.
func TestSelfTestLoudness(t *testing.T) {
	pulsetest.Start(t)
	tone := filepath.Join(t.TempDir(), "tone.wav")
	if out, err := exec.Command("sox", "-n", "-r", "48000", "-c", "1", "-b", "16", tone, "synth", "8", "sine", "1000", "vol", "-23dB").CombinedOutput(); err != nil {
		t.Fatalf("sox: %v\n%s", err, out)
	}
	cfg := testConfig(t)
	cfg.Audio.Backend, cfg.Audio.Device = config.BackendPulse, pulsetest.Monitor
	// A saved baseline, as a recorder that has heard this counter leaves.
	if err := os.WriteFile(filepath.Join(cfg.Device.StateDir, "listen-baseline.json"), []byte(learnedBaseline), 0o640); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	st := &Test{Config: cfg, Out: &out, In: bufio.NewReader(strings.NewReader("y\n")), Quick: true,
		Indicator: &hardware.Sim{Out: io.Discard}, Measure: 4 * time.Second}
	done := make(chan Check, 1)
	go func() {
		for _, c := range st.Run(context.Background()) {
			if c.Name == "microphone" {
				done <- c
			}
		}
	}()
	time.Sleep(500 * time.Millisecond) // the microphone opens behind the indicator
	pulsetest.Play(t, tone)
	c := <-done
	m := regexp.MustCompile(`, (-?\d+\.\d) LUFS at most \(usual voices -41\.5 LUFS \(learned\)`).FindStringSubmatch(c.Details)
	if c.Result != "PASS" || m == nil {
		t.Fatalf("microphone: %+v; want the loudest loudness next to the saved usual level\n%s", c, out.String())
	}
	t.Log(c.Details)
	if got, _ := strconv.ParseFloat(m[1], 64); math.Abs(got-(-26)) > 0.3 {
		t.Errorf("a -23 dBFS 1 kHz sine read %s LUFS, want -26.0 ± 0.3", m[1])
	}
}

// learnedBaseline is a saved baseline learned at -41.5 LUFS over all
// hours.
var learnedBaseline = `{"version":1,"all":{"lufs":-41.5,"steps":5000},"hours":[` + strings.TrimSuffix(strings.Repeat(`{"lufs":0,"steps":0},`, 24), ",") + `]}`
