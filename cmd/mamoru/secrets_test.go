package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mamoru/audit"
	"mamoru/clock"
	"mamoru/config"
	"mamoru/device"
)

// lockedOutConfig writes a configuration with a bucket and a signing key
// whose key files this user cannot use: the signing key and the access key
// are missing, the secret key is readable by others. extra is appended.
// It returns the configuration's path and the state directory.
func lockedOutConfig(t *testing.T, extra string) (path, stateDir string) {
	t.Helper()
	stateDir, keys := t.TempDir(), t.TempDir()
	loose := filepath.Join(keys, "s3-secret-key")
	if err := os.WriteFile(loose, []byte("secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf(validConfig, stateDir)
	src = strings.Replace(src, "\n\n[capture]", fmt.Sprintf("\nsigning_key_file = %q\n\n[capture]", filepath.Join(keys, "signing.key")), 1)
	src += fmt.Sprintf("\n[storage]\nendpoint = \"127.0.0.1:1\"\nbucket = \"clips\"\nsecure = false\naccess_key_file = %q\nsecret_key_file = %q\n",
		filepath.Join(keys, "s3-access-key"), loose)
	src += "\n[policy]\noperator_name = \"Test Shop K.K.\"\ncontact = \"03-0000-0000\"\n" + extra
	return writeConfig(t, t.TempDir(), "mamoru.toml", src), stateDir
}

// Commands that never talk to the bucket nor sign read no key file: an
// installer who may not read the device's 0600 keys can still see its
// state. Those that do refuse, naming every key at fault.
func TestSecretsOnlyWhereNeeded(t *testing.T) {
	cfg, stateDir := lockedOutConfig(t, "")
	a, err := audit.Open(filepath.Join(stateDir, "audit.log"), clock.Real())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Record("test"); err != nil {
		t.Fatal(err)
	}
	a.Close()
	out := t.TempDir()
	secrets := []string{"'device.signing_key_file'", "'storage.access_key_file'", "'storage.secret_key_file'", "mode 0600"}

	for _, tc := range []struct {
		args   []string
		code   int
		stdout string   // must be contained in stdout
		stderr []string // each must be in stderr
	}{
		// No recorder runs: these get as far as the control socket.
		{args: []string{"status", "--config", cfg}, code: 1, stderr: []string{device.ErrNotRunning.Error()}},
		{args: []string{"status", "--config", cfg, "--json"}, code: 1, stderr: []string{device.ErrNotRunning.Error()}},
		{args: []string{"trigger", "--config", cfg}, code: 1, stderr: []string{device.ErrNotRunning.Error()}},
		{args: []string{"audit", "--config", cfg}, code: 0, stdout: "1 entries, hash chain intact"},
		{args: []string{"policy", "render", "--config", cfg, "--out", out}, code: 0, stdout: filepath.Join(out, config.NoticeFile)},

		{args: []string{"run", "--config", cfg}, code: 2, stderr: secrets},
		{args: []string{"check", "--config", cfg}, code: 2, stderr: secrets},
		{args: []string{"selftest", "--config", cfg, "--quick"}, code: 2, stderr: secrets},
		{args: []string{"storage", "init", "--config", cfg}, code: 2, stderr: secrets},
	} {
		t.Run(strings.Join(tc.args[:2], " "), func(t *testing.T) {
			code, stdout, stderr := runCmd(t, tc.args...)
			if code != tc.code {
				t.Errorf("mamoru %q exited %d, want %d\nstdout: %s\nstderr: %s", tc.args, code, tc.code, stdout, stderr)
			}
			if !strings.Contains(stdout, tc.stdout) {
				t.Errorf("mamoru %q stdout = %q, want it to contain %q", tc.args, stdout, tc.stdout)
			}
			for _, want := range tc.stderr {
				if !strings.Contains(stderr, want) {
					t.Errorf("mamoru %q stderr = %q, want it to contain %q", tc.args, stderr, want)
				}
			}
			if tc.code != 2 && strings.Contains(stderr, "configuration") {
				t.Errorf("mamoru %q refused the configuration: %s", tc.args, stderr)
			}
			if strings.Contains(stdout, "[counter]") {
				t.Errorf("mamoru %q started the counter without its keys: %q", tc.args, stdout)
			}
		})
	}
}

// check reports a key file it cannot read along with every other problem,
// each with its file, line and key.
func TestCheckReportsEverything(t *testing.T) {
	cfg, _ := lockedOutConfig(t, "retention_days = -1\n")
	src, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(src), "\n")
	lineOf := func(prefix string) string {
		for i, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return fmt.Sprintf("%s:%d: '", cfg, i+1)
			}
		}
		t.Fatalf("no line starts with %q", prefix)
		return ""
	}
	code, stdout, stderr := runCmd(t, "check", "--config", cfg)
	if code != 2 || stdout != "" {
		t.Errorf("mamoru check exited %d, stdout %q; want 2 and nothing", code, stdout)
	}
	for _, want := range []string{
		lineOf("signing_key_file") + "device.signing_key_file' cannot be read",
		lineOf("access_key_file") + "storage.access_key_file' cannot be read",
		lineOf("secret_key_file") + "storage.secret_key_file' ",
		lineOf("retention_days") + "policy.retention_days' must be between 0 (keep) and 36500 (got -1)",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("mamoru check stderr = %q, want it to contain %q", stderr, want)
		}
	}
}
