package main

import (
	"context"
	"net"
	"path/filepath"
	"strings"
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
