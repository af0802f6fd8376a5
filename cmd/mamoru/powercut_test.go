package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mamoru/bucket/s3test"
	"mamoru/capture/cliptest"
	"mamoru/device"
	"mamoru/outbox"
	"mamoru/signing"
)

// TestRecorderChild is the recorder TestPowerCuts kills. It does nothing
// unless run by it.
func TestRecorderChild(t *testing.T) {
	cfg := os.Getenv("MAMORU_CHILD_CONFIG")
	if cfg == "" {
		t.Skip("run by TestPowerCuts only")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if code := run(ctx, []string{"run", "--config", cfg}, strings.NewReader(""), os.Stdout, os.Stderr); code != 0 {
		t.Fatalf("mamoru run exited %d", code)
	}
}

// TestPowerCuts kills the whole recorder with SIGKILL at random moments,
// while buffering, in the post window and while uploading, and restarts it
// each time. Every press it acknowledged must end up in the bucket and
// verify, and the audit log's chain must hold. A clip cut in its post
// window must be recovered, decode cleanly and hold everything up to 1 s
// before the cut.
//
// SIGKILL leaves the page cache as it was, so this proves what the recorder
// had written at the cut, not what an SD card kept: that rests on the
// fsync of every fragment, at most 0.5 s apart (capture.Clip).
func TestPowerCuts(t *testing.T) {
	kills := 10
	if n := os.Getenv("MAMORU_POWER_CUTS"); n != "" {
		fmt.Sscan(n, &kills)
	}
	srv := s3test.Start(t, s3test.Options{})
	srv.Bucket("clips")
	stateDir := t.TempDir()
	const post = 4 * time.Second // long enough to cut well inside it
	conf := strings.Replace(fmt.Sprintf(validConfig, stateDir), "post_seconds = 1", "post_seconds = 4", 1)
	cfg := writeConfig(t, t.TempDir(), "mamoru.toml", conf+
		fmt.Sprintf("\n[storage]\nendpoint = %q\nbucket = \"clips\"\nsecure = false\npart_size_mb = 5\n", srv.Endpoint))
	t.Setenv("MAMORU_S3_ACCESS_KEY", s3test.RootUser)
	t.Setenv("MAMORU_S3_SECRET_KEY", s3test.RootPassword)
	// A plain bucket, and this machine's clock may not be set by NTP:
	// the uploader tests prove the lock.
	t.Setenv("MAMORU_POLICY_OBJECT_LOCK", "none")
	// Signed, so that clips audit can check the log the recorder uploads.
	keyFile := filepath.Join(t.TempDir(), "signing.key")
	pub, err := signing.NewKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("MAMORU_DEVICE_SIGNING_KEY_FILE", keyFile)

	// Every run's output goes to one log, shown if the test fails.
	childLog, err := os.Create(filepath.Join(t.TempDir(), "recorder.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer childLog.Close()
	var cmd *exec.Cmd
	exited := make(chan error, 1)
	start := func() {
		fmt.Fprintf(childLog, "=== start %s\n", time.Now().Format(time.StampMilli))
		argv := append(strings.Fields(os.Getenv("MAMORU_TEST_EXEC")), os.Args[0], "-test.run=^TestRecorderChild$", "-test.v")
		cmd = exec.Command(argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), "MAMORU_CHILD_CONFIG="+cfg)
		cmd.Stdout, cmd.Stderr = childLog, childLog
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a kill takes its ffmpeg too, as a power cut would
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func(cmd *exec.Cmd) { exited <- cmd.Wait() }(cmd)
	}
	fail := func(format string, args ...any) {
		t.Helper()
		syscall.Kill(-cmd.Process.Pid, syscall.SIGQUIT) // its goroutines, for the log
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
		}
		log, _ := os.ReadFile(childLog.Name())
		t.Fatalf(format+"\nthe recorder's output:\n%s", append(args, log)...)
	}
	status := func(cond func(device.Status) bool) device.Status {
		t.Helper()
		var code int
		var out, errOut string
		for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			code, out, errOut = runCmd(t, "status", "--config", cfg, "--json")
			var st device.Status
			if code == 0 && json.Unmarshal([]byte(out), &st) == nil && cond(st) {
				return st
			}
			select {
			case err := <-exited:
				exited <- err
				fail("the recorder exited (%v); last status %d: %s%s", err, code, out, errOut)
			default:
			}
			if time.Now().After(deadline) {
				fail("waited 90 s; last status %d: %s%s", code, out, errOut)
			}
		}
	}
	kill := func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}

	var pressed []string
	type cut struct {
		id string
		at time.Time
	}
	var postCuts []cut
	phases := map[string]int{}
	for i := range kills {
		start()
		status(func(s device.Status) bool { return s.State == device.StateBuffering && s.BufferedSeconds >= 1 })
		switch i % 3 { // each phase in turn, at a random moment within it
		case 0: // while buffering
			phases["buffering"]++
			time.Sleep(time.Duration(rand.IntN(1000)) * time.Millisecond)
		case 1: // in the post window
			phases["post window"]++
			// The cut falls inside the post window, counted from before
			// the press (its pre-roll's fsync may take a while).
			pressedAt := time.Now()
			code, out, _ := runCmd(t, "trigger", "--config", cfg)
			time.Sleep(time.Until(pressedAt.Add(300*time.Millisecond + rand.N(post-1500*time.Millisecond))))
			if code == 0 {
				id := strings.Fields(out)[1]
				pressed = append(pressed, id)
				postCuts = append(postCuts, cut{id: id})
			}
		default: // after the clip, while it uploads
			phases["upload"]++
			code, out, _ := runCmd(t, "trigger", "--config", cfg)
			if code == 0 {
				pressed = append(pressed, strings.Fields(out)[1])
			}
			time.Sleep(post + rand.N(1500*time.Millisecond))
		}
		kill()
		if i%3 == 1 && len(postCuts) > 0 && postCuts[len(postCuts)-1].at.IsZero() {
			postCuts[len(postCuts)-1].at = time.Now() // after the kill: the loss is not understated
		}
	}
	// The last run is left to finish its work: every incident, and the
	// audit log as far as every incident's head (it is sent just after
	// each incident, so it may take a moment more).
	start()
	status(func(s device.Status) bool { return s.State == device.StateBuffering && s.PendingUploads == 0 })
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		code, out, errOut := runCmd(t, "clips", "audit", "test-store/test-counter", "--pubkey", pub, "--config", cfg)
		if code == 0 {
			t.Logf("clips audit after %d power cuts: %s", kills, strings.TrimSpace(out))
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("clips audit after %d power cuts, for 60 s: %d\n%s%s", kills, code, out, errOut)
			break
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	<-exited

	verified := 0
	for _, id := range pressed {
		// Signed by the device, for its place, and checked for the
		// clip's SHA-256 and size.
		code, out, errOut := runCmd(t, "clips", "verify", id, "--pubkey", pub, "--config", cfg)
		if code != 0 || !strings.Contains(out, "verified: signed by test-store/test-counter") || !strings.Contains(out, "matches its manifest") {
			t.Errorf("incident %s, acknowledged before a power cut: %s%s", id, out, errOut)
			continue
		}
		verified++
	}
	var worst time.Duration
	for _, c := range postCuts {
		dir := t.TempDir()
		if code, out, errOut := runCmd(t, "clips", "get", c.id, "-o", dir, "--pubkey", pub, "--config", cfg); code != 0 {
			t.Errorf("incident %s, cut in its post window: %s%s", c.id, out, errOut)
			continue
		}
		m, err := outbox.ReadManifest(filepath.Join(dir, c.id))
		if err != nil {
			t.Error(err)
			continue
		}
		lost := c.at.Sub(m.ClipEnd)
		worst = max(worst, lost)
		if m.State != outbox.StateRecovered || lost > time.Second {
			t.Errorf("incident %s, cut in its post window at %s: state %q, clip ends %v before the cut; want recovered, at most 1 s",
				c.id, c.at.Format(time.StampMilli), m.State, lost)
		}
		if out := cliptest.DecodeErrors(t, filepath.Join(dir, c.id, "clip.mp4")); out != "" {
			t.Errorf("incident %s, recovered after a cut: decode errors: %s", c.id, out)
		}
	}
	t.Logf("%d clips cut in their post window: each recovered and decodes; at most %v lost before the cut", len(postCuts), worst.Round(time.Millisecond))

	code, out, errOut := runCmd(t, "audit", "--config", cfg)
	if code != 0 || !strings.Contains(out, "hash chain intact") {
		t.Errorf("audit log after %d power cuts: %s%s", kills, out, errOut)
	}
	t.Logf("%d power cuts (%v); %d presses acknowledged, %d in the bucket and verified; %s", kills, phases, len(pressed), verified, strings.TrimSpace(out))
}
