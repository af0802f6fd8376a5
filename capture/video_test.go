package capture

import (
	"context"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"testing"
	"time"

	"mamoru/policy"
)

// runVideo runs a "command" video source until cond holds on its health.
func runVideo(t *testing.T, command string, cond func(Health) bool) (Health, *Ring) {
	t.Helper()
	cfg := policy.Default().Video
	cfg.Source, cfg.Command = policy.SourceCommand, command
	ring := NewRing(4<<20, 10*time.Second, 4096)
	v := &VideoSource{
		Config: cfg, Timeline: NewTimeline(SystemClock{}), Ring: ring,
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Backoff:  policy.Backoff{Min: 50 * time.Millisecond, Max: 200 * time.Millisecond},
		FirstIDR: 700 * time.Millisecond, Stall: 700 * time.Millisecond,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- v.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		h := v.Health()
		if cond(h) {
			return h, ring
		}
		if time.Now().After(deadline) {
			t.Fatalf("source health never met the condition: %+v", h)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestVideoSourceRestartsAndSaysWhy(t *testing.T) {
	tests := []struct {
		name, command, why string
	}{
		{"dies", "echo 'camera not found' >&2; exit 3", "camera not found"},
		{"garbage", "yes garbage | head -c 3000000; sleep 5", "no start code"},
		// Non-IDR slices only, forever: a stream a clip could never start from.
		{"no IDR", `while :; do printf '\000\000\000\001\101\232\000\000\000\001\101\232'; sleep 0.03; done`, "no IDR frame"},
		{"stalls", "ffmpeg -v error -f lavfi -i testsrc2=size=64x64:rate=30 -frames:v 15 -c:v libx264 -bf 0 -f h264 -; sleep 30", "no frame for"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := runVideo(t, tt.command, func(h Health) bool { return h.Restarts >= 2 })
			if !strings.Contains(h.LastError, tt.why) {
				t.Errorf("last error %q, want it to say %q", h.LastError, tt.why)
			}
		})
	}
}

func TestVideoSourceFillsRing(t *testing.T) {
	cfg := policy.Default().Video
	cfg.Source = policy.SourceTestsrc
	cfg.Width, cfg.Height, cfg.BitrateKbps, cfg.KeyframeInterval = 160, 120, 200, 15
	argv, err := VideoCommand(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmd := strings.Join(quoteAll(argv), " ")
	_, ring := runVideo(t, cmd, func(h Health) bool { return h.Frames >= 45 })
	start, _, ok := ring.Start(time.Hour)
	if !ok || start <= 0 {
		t.Errorf("ring has no key frame after 45 frames: start %v ok %v", start, ok)
	}
}

func quoteAll(argv []string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return out
}

// A command whose child ignores SIGTERM leaves nothing behind when it is
// stopped: a child left running could hold the camera.
func TestVideoSourceStopsAStubbornCommand(t *testing.T) {
	cfg := policy.Default().Video
	cfg.Source = policy.SourceCommand
	// The child is a sleep with a duration no other test uses, to find it.
	cfg.Command = `trap '' TERM; sleep 86399 & exec ffmpeg -nostdin -v error -re -f lavfi -i testsrc2=size=64x64:rate=30 -c:v libx264 -bf 0 -g 15 -f h264 -`
	v := &VideoSource{
		Config: cfg, Timeline: NewTimeline(SystemClock{}), Ring: NewRing(4<<20, 10*time.Second, 4096),
		Log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Backoff: policy.Backoff{Min: 50 * time.Millisecond, Max: 200 * time.Millisecond},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx) }()
	for deadline := time.Now().Add(30 * time.Second); v.Health().Frames < 30; {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no frames from the command: %+v", v.Health())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return within 15 s of the end of its context")
	}
	if out, err := exec.Command("pgrep", "-f", "sleep 86399").Output(); err == nil {
		exec.Command("pkill", "-KILL", "-f", "sleep 86399").Run() // it ignores SIGTERM
		t.Errorf("the command's child outlived it: pid %s", strings.TrimSpace(string(out)))
	}
}
