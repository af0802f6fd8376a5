//go:build unix

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

// Record records the sink's monitor as 48 kHz mono 16-bit samples, as any
// client of the daemon hears it, until stop is called; stop returns the
// samples. A recorder's capture of the monitor can be held against it:
// anything the sound lost on its way into the sink (a starved player's
// stream that PulseAudio skipped ahead) is lost in this recording too.
func Record(t *testing.T) (stop func() []int16) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "monitor.raw"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("parec", "--latency-msec=100", "--format=s16le", "--rate=48000", "--channels=1", "-d", Sink+".monitor")
	cmd.Stdout = f
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatal(err)
	}
	var samples []int16
	done := false
	stop = func() []int16 {
		if done {
			return samples
		}
		done = true
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		f.Close()
		b, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 {
			t.Fatalf("parec recorded nothing from %s.monitor: %s", Sink, errOut.Bytes())
		}
		samples = make([]int16, len(b)/2)
		for i := range samples {
			samples[i] = int16(uint16(b[2*i]) | uint16(b[2*i+1])<<8)
		}
		return samples
	}
	t.Cleanup(func() { stop() })
	return stop
}
