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

// recorders runs the real recorder on one configuration as child processes
// (TestRecorderChild), one at a time, each in a process group of its own so
// that a kill takes its ffmpeg too, as a power cut would. Every run's
// output goes to one log, shown when a test fails. Only the pids it started
// are ever signalled.
type recorders struct {
	t    *testing.T
	cfg  string
	log  *os.File
	cmd  *exec.Cmd     // the run started last
	done chan struct{} // closed once it has exited, with its Wait's result in err
	err  error
}

// newRecorders returns recorders for cfg, none running yet. Whatever still
// runs when the test ends is killed.
func newRecorders(t *testing.T, cfg string) *recorders {
	t.Helper()
	log, err := os.Create(filepath.Join(t.TempDir(), "recorder.log"))
	if err != nil {
		t.Fatal(err)
	}
	r := &recorders{t: t, cfg: cfg, log: log}
	t.Cleanup(func() {
		if r.running() {
			r.kill()
		}
		log.Close()
	})
	return r
}

// start starts a recorder; the previous one must have exited.
func (r *recorders) start() {
	r.t.Helper()
	fmt.Fprintf(r.log, "=== start %s\n", time.Now().Format(time.StampMilli))
	// Under make test-arm64 this binary runs in qemu-user, and so must its
	// child: there is no binfmt to do it for us.
	argv := append(strings.Fields(os.Getenv("MAMORU_TEST_EXEC")), os.Args[0], "-test.run=^TestRecorderChild$", "-test.v")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "MAMORU_CHILD_CONFIG="+r.cfg)
	cmd.Stdout, cmd.Stderr = r.log, r.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.cmd, r.done = cmd, make(chan struct{})
	go func() { defer close(r.done); r.err = cmd.Wait() }()
}

// running reports whether the recorder started last has yet to exit.
func (r *recorders) running() bool {
	if r.cmd == nil {
		return false
	}
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// kill cuts the power: SIGKILL to the recorder's process group. It returns
// once the recorder has exited.
func (r *recorders) kill() {
	syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
	<-r.done
}

// stop stops the recorder as systemd does, with SIGTERM, and returns once
// it has exited.
func (r *recorders) stop() {
	r.cmd.Process.Signal(syscall.SIGTERM)
	<-r.done
}

// fail ends the test with the recorders' output, the running one's
// goroutines included.
func (r *recorders) fail(format string, args ...any) {
	r.t.Helper()
	if r.running() {
		syscall.Kill(-r.cmd.Process.Pid, syscall.SIGQUIT) // its goroutines, for the log
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
		}
	}
	r.t.Fatalf(format+"\nthe recorders' output:\n%s", append(args, mustRead(r.t, r.log.Name()))...)
}

// await polls cond until it holds, failing the test if the recorder exits
// first or timeout passes; what says what is awaited, and cond what it saw
// last.
func (r *recorders) await(what string, timeout time.Duration, cond func() (ok bool, saw string)) {
	r.t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		ok, saw := cond()
		if ok {
			return
		}
		if !r.running() {
			r.fail("waiting for %s: the recorder exited (%v); last seen: %s", what, r.err, saw)
		}
		if time.Now().After(deadline) {
			r.fail("waited %v for %s; last seen: %s", timeout, what, saw)
		}
	}
}

// awaitStatus polls `mamoru status --json` until cond holds, as await.
func (r *recorders) awaitStatus(what string, timeout time.Duration, cond func(device.Status) bool) {
	r.t.Helper()
	r.await(what, timeout, func() (bool, string) {
		code, out, errOut := runCmd(r.t, "status", "--config", r.cfg, "--json")
		var st device.Status
		return code == 0 && json.Unmarshal([]byte(out), &st) == nil && cond(st), fmt.Sprintf("status %d: %s%s", code, out, errOut)
	})
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

	rec := newRecorders(t, cfg)
	buffering := func() {
		t.Helper()
		rec.awaitStatus("a pre-roll", 90*time.Second, func(s device.Status) bool { return s.State == device.StateBuffering && s.BufferedSeconds >= 1 })
	}

	var pressed []string
	type cut struct {
		id string
		at time.Time
	}
	var postCuts []cut
	phases := map[string]int{}
	for i := range kills {
		rec.start()
		buffering()
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
		rec.kill()
		if i%3 == 1 && len(postCuts) > 0 && postCuts[len(postCuts)-1].at.IsZero() {
			postCuts[len(postCuts)-1].at = time.Now() // after the kill: the loss is not understated
		}
	}
	// The last run is left to finish its work: every incident, and the
	// audit log as far as every incident's head (it is sent just after
	// each incident, so it may take a moment more).
	rec.start()
	rec.awaitStatus("every upload", 90*time.Second, func(s device.Status) bool { return s.State == device.StateBuffering && s.PendingUploads == 0 })
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
	rec.stop()

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
