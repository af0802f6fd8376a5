package capture

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mamoru/backoff"
	"mamoru/clock"
	"mamoru/config"
)

// A command whose child ignores SIGTERM leaves nothing behind when it is
// stopped, whatever the child holds of the command's output: a child left
// running could hold the camera.
func TestVideoSourceStopsAStubbornCommand(t *testing.T) {
	tests := []struct{ name, redirect string }{
		{"the child holds stdout and stderr", ""},
		{"the child holds stderr", ">/dev/null"},
		{"the child holds neither", ">/dev/null 2>&1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pidFile := filepath.Join(t.TempDir(), "pid")
			cfg := config.Default().Video
			cfg.Source = config.SourceCommand
			cfg.Command = fmt.Sprintf(`trap '' TERM; sleep 86399 %s & echo $! >%s; exec ffmpeg -nostdin -v error -re -f lavfi -i testsrc2=size=64x64:rate=30 -c:v libx264 -bf 0 -g 15 -f h264 -`,
				tt.redirect, pidFile)
			v := &VideoSource{
				Config: cfg, Timeline: NewTimeline(clock.Real(), nil), Ring: NewRing(4<<20, 10*time.Second, 4096),
				Log:     discard,
				Backoff: backoff.Backoff{Min: 50 * time.Millisecond, Max: 200 * time.Millisecond},
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- v.Run(ctx) }()
			// Frames come from ffmpeg, started after the child's pid was
			// written.
			for deadline := time.Now().Add(30 * time.Second); v.Health().Frames < 1; {
				if time.Now().After(deadline) {
					cancel()
					t.Fatalf("no frames from the command: %+v", v.Health())
				}
				time.Sleep(20 * time.Millisecond)
			}
			b, err := os.ReadFile(pidFile)
			if err != nil {
				cancel()
				t.Fatal(err)
			}
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				cancel()
				t.Fatalf("pid file: %v", err)
			}
			before, err := readProcStat(pid)
			if err != nil || before.state == 'Z' {
				cancel()
				t.Fatalf("the child is not running before the source stops: %+v, %v", before, err)
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
			// Gone: reaped, or exited and awaiting init (a zombie holds no
			// device), or its pid taken by another process since.
			after, err := readProcStat(pid)
			if errors.Is(err, os.ErrNotExist) || err == nil && (after.starttime != before.starttime || after.state == 'Z' || after.state == 'X') {
				return
			}
			if err == nil {
				syscall.Kill(pid, syscall.SIGKILL) // the same process: its start time says so
			}
			t.Errorf("the command's child outlived Run: /proc/%d/stat: %+v, %v", pid, after, err)
		})
	}
}

func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	st, ok := parseProcStat(b)
	if !ok {
		return procStat{}, fmt.Errorf("cannot parse /proc/%d/stat: %q", pid, b)
	}
	return st, nil
}

func TestParseProcStat(t *testing.T) {
	// A real line, of cat reading its own, with its command name replaced.
	line := func(pid, comm, rest string) string {
		return pid + " (" + comm + ") " + rest + " 3133440 393 18446744073709551615 94879172939776 94879172959657 140736948834528 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 94879172975664 94879172977280"
	}
	const fields3to22 = "R 27971 27971 27654 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 80367"
	tests := []struct {
		line string
		want procStat
		ok   bool
	}{
		{line("27973", "cat", fields3to22), procStat{pid: 27973, pgrp: 27971, state: 'R', starttime: 80367}, true},
		{line("77", "a) Z 1 2 (b", "Z 1 70 70 0 -1 0 1 0 0 0 0 0 0 0 20 0 1 0 123"), procStat{pid: 77, pgrp: 70, state: 'Z', starttime: 123}, true},
		{"77 (a) R 1 70 70", procStat{}, false}, // cut short
		{line("x", "a", fields3to22), procStat{}, false},
		{"", procStat{}, false},
	}
	for _, tt := range tests {
		got, ok := parseProcStat([]byte(tt.line))
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseProcStat(%q) = %+v, %v; want %+v, %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
	// And this process's own, which the kernel wrote; not under qemu-user,
	// which writes /proc/self/stat itself (pgrp 0, state '0'). A child's
	// it leaves to the kernel.
	if os.Getenv("MAMORU_TEST_EXEC") != "" {
		return
	}
	self, err := readProcStat(os.Getpid())
	if err != nil || self.pid != os.Getpid() || self.pgrp != syscall.Getpgrp() || self.state != 'R' && self.state != 'S' {
		t.Errorf("own stat: %+v, %v; want pid %d, pgrp %d, running", self, err, os.Getpid(), syscall.Getpgrp())
	}
}
