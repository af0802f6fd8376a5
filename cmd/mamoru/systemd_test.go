package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestSystemdNotify runs the recorder as systemd would start it (Type=notify)
// and reads what it tells systemd: READY once capture is up, WATCHDOG while
// healthy, STOPPING at the end.
func TestSystemdNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	cfg, _ := validConfigFile(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	var stdout, stderr syncBuffer
	go func() { done <- run(ctx, []string{"run", "--config", cfg}, strings.NewReader(""), &stdout, &stderr) }()

	var got []string
	buf := make([]byte, 4096)
	read := func(want string) {
		t.Helper()
		for {
			conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("waiting for %s: %v; got %q\nstderr: %s", want, err, got, stderr.String())
			}
			msg := string(buf[:n])
			got = append(got, msg)
			if strings.Contains(msg, want) {
				return
			}
		}
	}
	read("READY=1")
	if len(got) != 1 {
		t.Errorf("messages before READY: %q", got[:len(got)-1])
	}
	read("WATCHDOG=1")
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("mamoru run exited %d: %s", code, stderr.String())
	}
	read("STOPPING=1")
}

// Under systemd each log line carries its priority for journald, from
// every logger derived from the first, and from goroutines logging at once.
func TestJournalPriorities(t *testing.T) {
	var b syncBuffer
	log := slog.New(newJournalHandler(&b, slog.LevelInfo)).With("device", "counter-1")
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				log.Error("indicator fault")
				log.Warn("video frames arrived late")
				log.WithGroup("upload").Info("incident uploaded")
				log.Debug("not shown at info")
			}
		})
	}
	wg.Wait()
	want := map[string]string{"<3>": "indicator fault", "<4>": "video frames arrived late", "<6>": "incident uploaded"}
	counts := map[string]int{}
	for _, line := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		prefix, rest, _ := strings.Cut(line, "time=")
		if msg, ok := want[prefix]; !ok || !strings.Contains(rest, msg) || !strings.Contains(rest, "device=counter-1") {
			t.Fatalf("line %q: want a priority prefix matching its message, then the text handler's line", line)
		}
		counts[prefix]++
	}
	if counts["<3>"] != 200 || counts["<4>"] != 200 || counts["<6>"] != 200 {
		t.Errorf("lines by priority %v, want 200 of each", counts)
	}
}

// Only the stream $JOURNAL_STREAM names goes to journald: a child that
// inherited the variable with another stderr logs plain lines.
func TestToJournal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	sys := st.Sys().(*syscall.Stat_t)
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", sys.Dev, sys.Ino))
	if !toJournal(f) {
		t.Error("the stream JOURNAL_STREAM names is not taken for the journal")
	}
	other, _ := os.Create(filepath.Join(t.TempDir(), "other"))
	defer other.Close()
	if toJournal(other) || toJournal(&bytes.Buffer{}) {
		t.Error("another stream is taken for the journal")
	}
	t.Setenv("JOURNAL_STREAM", "")
	if toJournal(f) {
		t.Error("with no JOURNAL_STREAM, stderr is taken for the journal")
	}
}
