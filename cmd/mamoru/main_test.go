package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"mamoru/device"
	"mamoru/outbox"
	"mamoru/uploader"
)

// validConfig is a small real recorder: ffmpeg's test pattern, miniaudio's
// null microphone and the simulated counter. %s is the state directory.
const validConfig = `[device]
id = "test-counter"
store = "test-store"
state_dir = %q

[capture]
post_seconds = 1
pre_seconds = 2

[video]
source = "testsrc"
width = 320
height = 240
fps = 30
bitrate_kbps = 500
keyframe_interval = 15

[audio]
backend = "null"

[hardware]
driver = "sim"
`

// writeConfig writes src to dir/name and returns its path.
func writeConfig(t *testing.T, dir, name, src string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// validConfigFile writes a valid configuration whose state directory is a
// fresh temporary directory, and returns its path and the state directory.
func validConfigFile(t *testing.T) (path, stateDir string) {
	t.Helper()
	stateDir = t.TempDir()
	return writeConfig(t, t.TempDir(), "mamoru.toml", fmt.Sprintf(validConfig, stateDir)), stateDir
}

// syncBuffer is a bytes.Buffer that the recorder's goroutines may write while
// the test reads it.
type syncBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runCmd runs the command line args with empty stdin and returns its exit
// status, stdout and stderr.
func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(t.Context(), args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUsage(t *testing.T) {
	cfg, _ := validConfigFile(t)
	for _, tc := range []struct {
		name       string
		args       []string
		code       int
		stdout     string // must be contained in stdout
		stderr     string // must be contained in stderr
		emptyOut   bool   // stdout must be empty
		emptyError bool   // stderr must be empty
	}{
		{name: "no command", args: nil, code: 2, stderr: "Usage:", emptyOut: true},
		{name: "--help", args: []string{"--help"}, code: 0, stdout: "Usage:", emptyError: true},
		{name: "help", args: []string{"help"}, code: 0, stdout: "mamoru run", emptyError: true},
		{name: "version", args: []string{"version"}, code: 0, stdout: "mamoru ", emptyError: true},
		{name: "run --help", args: []string{"run", "--help"}, code: 0, stderr: "mamoru run --config FILE", emptyOut: true},
		{name: "trigger --help", args: []string{"trigger", "--help"}, code: 0, stderr: "mamoru trigger --config FILE", emptyOut: true},
		{name: "status --help", args: []string{"status", "--help"}, code: 0, stderr: "mamoru status --config FILE", emptyOut: true},
		{name: "audit --help", args: []string{"audit", "--help"}, code: 0, stderr: "mamoru audit --config FILE", emptyOut: true},
		{name: "clips --help", args: []string{"clips", "--help"}, code: 0, stdout: "mamoru clips share INCIDENT", emptyError: true},
		{name: "clips get --help", args: []string{"clips", "get", "--help"}, code: 0, stderr: "mamoru clips get INCIDENT [-o DIR]", emptyOut: true},
		{name: "clips unknown", args: []string{"clips", "delete"}, code: 2, stderr: `unknown command "delete"`, emptyOut: true},
		{name: "clips without storage", args: []string{"clips", "ls", "--config", cfg}, code: 2, stderr: "'storage.endpoint' is required", emptyOut: true},
		{name: "storage --help", args: []string{"storage", "--help"}, code: 0, stdout: "mamoru storage init --config FILE", emptyError: true},
		{name: "storage init without endpoint", args: []string{"storage", "init", "--config", cfg}, code: 2, stderr: "'storage.endpoint' is not set", emptyOut: true},
		{name: "policy --help", args: []string{"policy", "--help"}, code: 0, stdout: "mamoru policy render --config FILE", emptyError: true},
		{name: "policy render without operator", args: []string{"policy", "render", "--config", cfg, "--out", t.TempDir()}, code: 2, stderr: "'policy.operator_name' is required", emptyOut: true},
		{name: "policy render bad lang", args: []string{"policy", "render", "--config", cfg, "--lang", "fr"}, code: 2, stderr: "--lang must be ja or en", emptyOut: true},
		{name: "selftest --help", args: []string{"selftest", "--help"}, code: 0, stderr: "mamoru selftest --config FILE [--quick]", emptyOut: true},
		{name: "unknown command", args: []string{"record"}, code: 2, stderr: `unknown command "record"`, emptyOut: true},
		{name: "unknown flag", args: []string{"status", "--config", cfg, "--colour"}, code: 2, stderr: "-colour", emptyOut: true},
		{name: "extra argument", args: []string{"trigger", "--config", cfg, "now"}, code: 2, stderr: `unexpected argument "now"`, emptyOut: true},
		{name: "run without --config", args: []string{"run"}, code: 2, stderr: "--config FILE is required", emptyOut: true},
		{name: "trigger without --config", args: []string{"trigger"}, code: 2, stderr: "--config FILE is required", emptyOut: true},
		{name: "bad --log-level", args: []string{"run", "--config", cfg, "--log-level", "loud"}, code: 2, stderr: `--log-level "loud"`, emptyOut: true},
		{name: "missing config file", args: []string{"audit", "--config", filepath.Join(t.TempDir(), "none.toml")}, code: 2, stderr: "none.toml: cannot read", emptyOut: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, tc.args...)
			if code != tc.code {
				t.Errorf("mamoru %q exited %d, want %d\nstdout: %s\nstderr: %s", tc.args, code, tc.code, stdout, stderr)
			}
			if !strings.Contains(stdout, tc.stdout) {
				t.Errorf("mamoru %q stdout = %q, want it to contain %q", tc.args, stdout, tc.stdout)
			}
			if !strings.Contains(stderr, tc.stderr) {
				t.Errorf("mamoru %q stderr = %q, want it to contain %q", tc.args, stderr, tc.stderr)
			}
			if tc.emptyOut && stdout != "" {
				t.Errorf("mamoru %q stdout = %q, want nothing", tc.args, stdout)
			}
			if tc.emptyError && stderr != "" {
				t.Errorf("mamoru %q stderr = %q, want nothing", tc.args, stderr)
			}
		})
	}
}

// TestConfigErrors checks that a bad configuration stops every command with
// exit status 2 and an error naming the key and its line.
func TestConfigErrors(t *testing.T) {
	// Line 7 of validConfig is "post_seconds = 1"; line 14 is "fps = 30".
	valid := fmt.Sprintf(validConfig, t.TempDir())
	lines := strings.Split(valid, "\n")
	if lines[6] != "post_seconds = 1" || lines[13] != "fps = 30" {
		t.Fatalf("validConfig has moved: line 7 is %q, line 14 is %q", lines[6], lines[13])
	}
	// replace replaces the lines given by number.
	replace := func(with map[int]string) string {
		l := append([]string(nil), lines...)
		for n, line := range with {
			l[n-1] = line
		}
		return strings.Join(l, "\n")
	}
	for _, tc := range []struct {
		name string
		src  string
		want []string // each must be in stderr
	}{
		{"unknown key", replace(map[int]string{7: "post_secs = 1"}), []string{"'capture.post_secs'", "f.toml:7", "not a known key"}},
		{"unknown section", replace(map[int]string{14: "[camera]"}), []string{"'camera'", "f.toml:14", "not a known key"}},
		{"wrong type", replace(map[int]string{7: `post_seconds = "ten"`}), []string{"'capture.post_seconds'", "f.toml:7", "integer"}},
		{"out of range", replace(map[int]string{7: "post_seconds = 0"}), []string{"'capture.post_seconds'", "f.toml:7", "between 1 and 600"}},
		{"out of range later", replace(map[int]string{14: "fps = 1000"}), []string{"'video.fps'", "f.toml:14", "between 1 and 120"}},
		// An unknown key does not hide a bad value elsewhere.
		{"unknown key and out of range", replace(map[int]string{7: "post_secs = 1", 14: "fps = 1000"}),
			[]string{"f.toml:7: 'capture.post_secs' is not a known key", "f.toml:14: 'video.fps' must be between 1 and 120"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, t.TempDir(), "f.toml", tc.src)
			for _, cmd := range []string{"run", "trigger", "status", "audit"} {
				code, stdout, stderr := runCmd(t, cmd, "--config", path)
				if code != 2 {
					t.Errorf("mamoru %s exited %d, want 2\nstdout: %s\nstderr: %s", cmd, code, stdout, stderr)
				}
				for _, want := range tc.want {
					if !strings.Contains(stderr, want) {
						t.Errorf("mamoru %s stderr = %q, want it to contain %q", cmd, stderr, want)
					}
				}
				if strings.Contains(stdout, "[counter]") {
					t.Errorf("mamoru %s started the counter with a bad configuration: %q", cmd, stdout)
				}
			}
		})
	}
}

func TestNoRecorderRunning(t *testing.T) {
	cfg, _ := validConfigFile(t)
	for _, args := range [][]string{
		{"trigger", "--config", cfg},
		{"status", "--config", cfg},
		{"status", "--config", cfg, "--json"},
	} {
		code, stdout, stderr := runCmd(t, args...)
		if code != 1 {
			t.Errorf("mamoru %q exited %d, want 1\nstdout: %s\nstderr: %s", args, code, stdout, stderr)
		}
		if want := device.ErrNotRunning.Error(); !strings.Contains(stderr, want) {
			t.Errorf("mamoru %q stderr = %q, want it to say %q", args, stderr, want)
		}
	}
}

// TestRunEndToEnd runs the recorder as `mamoru run` does, raises one incident
// with `mamoru trigger` and one with the simulated button, stops it, and
// audits what it logged.
func TestRunEndToEnd(t *testing.T) {
	cfg, stateDir := validConfigFile(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	button, press := io.Pipe()
	defer press.Close()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"run", "--config", cfg}, button, &stdout, &stderr) }()
	// If the test fails before it stops the recorder, stop it anyway.
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Error("mamoru run did not stop within 60 s of its context ending")
		}
	}()

	// status polls `mamoru status --json` until cond holds, failing if the
	// recorder exits or 60 s pass.
	status := func(what string, cond func(device.Status) bool) device.Status {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			select {
			case code := <-done:
				done <- code
				t.Fatalf("waiting for %s: mamoru run exited %d\nstdout: %s\nstderr: %s", what, code, stdout.String(), stderr.String())
			default:
			}
			code, out, errOut := runCmd(t, "status", "--config", cfg, "--json")
			var st device.Status
			if code == 0 {
				if err := json.Unmarshal([]byte(out), &st); err != nil {
					t.Fatalf("mamoru status --json printed %q: %v", out, err)
				}
				if cond(st) {
					return st
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s: last status (exit %d) %s %s\nrecorder stderr: %s", what, code, out, errOut, stderr.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	incident := func(st device.Status, id string) (device.IncidentStatus, bool) {
		for _, in := range st.Incidents {
			if in.ID == id {
				return in, true
			}
		}
		return device.IncidentStatus{}, false
	}

	st := status("a full pre-roll", func(s device.Status) bool {
		return s.State == device.StateBuffering && s.BufferedSeconds >= 2
	})
	if !st.Indicator || st.Device != "test-counter" || st.Store != "test-store" || len(st.Incidents) != 0 {
		t.Errorf("status while buffering = %+v, want the indicator on, the device named and no incidents", st)
	}

	code, out, errOut := runCmd(t, "trigger", "--config", cfg)
	if code != 0 {
		t.Fatalf("mamoru trigger exited %d: %s", code, errOut)
	}
	m := regexp.MustCompile(`^incident (\S+) raised: recording until \S+\nclip: (\S+)\n$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("mamoru trigger printed %q, want the incident and its clip", out)
	}
	cliID, clip := m[1], m[2]
	if want := filepath.Join(stateDir, "incidents", cliID, outbox.ClipFile); clip != want {
		t.Errorf("mamoru trigger named the clip %s, want %s", clip, want)
	}
	st = status("the triggered incident to complete", func(s device.Status) bool {
		in, ok := incident(s, cliID)
		return ok && in.State == outbox.StateComplete
	})
	if in, _ := incident(st, cliID); in.Trigger != "cli" || in.Clip != clip || in.Size == 0 {
		t.Errorf("status of incident %s = %+v, want trigger cli, clip %s, a size", cliID, in, clip)
	}

	// Enter on the simulated counter is the button.
	if _, err := io.WriteString(press, "\n"); err != nil {
		t.Fatal(err)
	}
	var simID string
	status("an incident from the button to complete", func(s device.Status) bool {
		for _, in := range s.Incidents {
			if in.ID != cliID && in.State == outbox.StateComplete {
				simID = in.ID
				return true
			}
		}
		return false
	})
	man, err := outbox.ReadManifest(filepath.Join(stateDir, "incidents", simID))
	if err != nil {
		t.Fatal(err)
	}
	if man.Trigger != "sim" || len(man.Presses) != 1 || man.Presses[0].Source != "sim" {
		t.Errorf("manifest of %s: trigger %q, presses %+v; want one press from \"sim\"", simID, man.Trigger, man.Presses)
	}

	cancel()
	select {
	case code := <-done:
		done <- code
		if code != 0 {
			t.Errorf("mamoru run exited %d after its context ended, want 0\nstderr: %s", code, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("mamoru run did not stop within 60 s of its context ending")
	}
	counter := stdout.String()
	lines := strings.Split(strings.TrimSpace(counter), "\n")
	if last := lines[len(lines)-1]; !strings.Contains(last, "indicator off") {
		t.Errorf("the counter's last line is %q, want the indicator off\nstdout:\n%s", last, counter)
	}
	if !strings.Contains(counter, "indicator ON") {
		t.Errorf("the counter never showed the indicator on\nstdout:\n%s", counter)
	}
	for _, id := range []string{cliID, simID} {
		if want := "incident " + id + " saved (complete): "; !strings.Contains(counter, want) {
			t.Errorf("the counter does not say %q\nstdout:\n%s", want, counter)
		}
	}

	code, out, errOut = runCmd(t, "audit", "--config", cfg)
	if code != 0 || !strings.Contains(out, "hash chain intact") {
		t.Errorf("mamoru audit exited %d: stdout %q, stderr %q; want 0 and the chain intact", code, out, errOut)
	}
	// Once the recorder has stopped, the CLI says so.
	code, _, errOut = runCmd(t, "status", "--config", cfg)
	if code != 1 || !strings.Contains(errOut, device.ErrNotRunning.Error()) {
		t.Errorf("mamoru status after the recorder stopped exited %d: %q; want 1 and %q", code, errOut, device.ErrNotRunning)
	}
}

// The text status tells a person at the device what is wrong with uploads,
// not only how many wait.
func TestStatusText(t *testing.T) {
	at := time.Date(2026, 11, 24, 10, 30, 0, 0, time.UTC)
	st := device.Status{
		State: device.StateBuffering, Indicator: true, BufferedSeconds: 29.5, ClockSynced: false,
		Storage: "clips at s3.example.com", PendingUploads: 3, PendingBytes: 30 << 20, SpoolFull: true, SpoolBytes: 30 << 20,
		Uploads: &uploader.Status{
			LastError: "access denied: the device's key may not write here", LastErrorAt: at, Problem: true,
			LastSuccess: "20261124-101500-01", LastSuccessAt: at.Add(-time.Hour),
		},
		ButtonStuck: true,
		Listen: &device.ListenStatus{Enabled: true, Action: "alert", RaiseDB: 15, BaselineLUFS: -41.26, Learned: true,
			Sounds: []device.SoundStatus{{Sound: outbox.Sound{Start: at.Add(-time.Minute), AboveDB: 18.24}}}},
	}
	var b bytes.Buffer
	writeStatus(&b, st)
	for _, want := range []string{
		"indicator:  ON",
		"listening:  ON, action alert: a raised voice is 15 dB over the usual voices, -41.3 LUFS (learned); last raised voice 2026-11-24 10:29:00, +18.2 dB",
		"clock:      NOT SYNCED",
		"button:     STUCK",
		"storage:    clips at s3.example.com",
		"pending:    3 uploads (31457280 bytes)",
		"spool:      FULL",
		"UPLOAD PROBLEM (needs fixing): access denied: the device's key may not write here (2026-11-24 10:30:00)",
		"last upload: 20261124-101500-01 (2026-11-24 09:30:00)",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status text lacks %q:\n%s", want, b.String())
		}
	}
	st = device.Status{State: device.StateBuffering, ClockSynced: true, Uploads: &uploader.Status{}, Listen: &device.ListenStatus{RaiseDB: 15}}
	b.Reset()
	writeStatus(&b, st)
	for _, not := range []string{"NOT SYNCED", "STUCK", "FULL", "error", "PROBLEM", "last upload", "listening"} {
		if strings.Contains(b.String(), not) {
			t.Errorf("a healthy device's status says %q:\n%s", not, b.String())
		}
	}
}
