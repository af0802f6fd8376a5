// Package pulsetest runs a real PulseAudio daemon for tests, with a null
// sink named "counter" whose monitor the recorder captures from, so that
// miniaudio's real capture path is used rather than its null backend.
package pulsetest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Sink is the null sink's name; Monitor is its monitor as miniaudio names
// it, for audio.device.
const (
	Sink    = "counter"
	Monitor = "Monitor of Null Output"
)

// Start starts a daemon in a fresh XDG_RUNTIME_DIR (set for the test), with
// the sink, and a low-latency stream kept open on its monitor: an idle null
// sink renders in 2 s blocks, and a new stream could start 2 s late. The
// daemon stops when the test ends.
func Start(t *testing.T) {
	t.Helper()
	if os.Getenv("MAMORU_TEST_EXEC") != "" {
		// make test-arm64: this binary runs under qemu-user, with no arm
		// libpulse for miniaudio to load. The native run covers it.
		t.Skip("under qemu-user there are no arm audio libraries")
	}
	for _, tool := range []string{"pulseaudio", "pactl", "parec", "paplay"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing (apt-get install pulseaudio pulseaudio-utils)", tool)
		}
	}
	dir, err := os.MkdirTemp("", "pulse")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_RUNTIME_DIR", dir)
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %q: %v\n%s", name, args, err, out)
		}
	}
	run("pulseaudio", "-D", "-n", "--exit-idle-time=-1", "--load=module-native-protocol-unix")
	t.Cleanup(func() {
		if b, err := os.ReadFile(filepath.Join(dir, "pulse", "pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				syscall.Kill(pid, syscall.SIGTERM)
				for range 50 {
					if syscall.Kill(pid, 0) != nil {
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		}
		os.RemoveAll(dir)
	})
	run("pactl", "load-module", "module-null-sink", "sink_name="+Sink, "rate=48000", "channels=1")
	keep := exec.Command("parec", "--latency-msec=10", "-d", Sink+".monitor")
	keep.Stdout = nil
	if err := keep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keep.Process.Kill(); keep.Wait() })
	time.Sleep(2 * time.Second) // the sink settles into small blocks
}

// Play plays a WAV file into the sink and returns when it has been handed
// over; the error output of paplay is in the failure. paplay hands the
// server half a second at once, so playback starts as soon as the stream
// connects, and a starved paplay (a loaded CI machine) cannot underrun and
// put silence into the middle of the sound. The sink still renders in small
// blocks, held there by the low-latency monitor stream Start keeps open.
func Play(t *testing.T, wav string) {
	t.Helper()
	var errOut bytes.Buffer
	cmd := exec.Command("paplay", "--latency-msec=500", "-d", Sink, wav)
	cmd.Stderr = &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("paplay %s: %v\n%s", wav, err, errOut.Bytes())
	}
}
