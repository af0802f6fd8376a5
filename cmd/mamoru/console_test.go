package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// A console on an address beyond this machine refuses to start without
// users, and makes no certificate for a console that will not start.
func TestConsoleRefusesTheNetworkWithoutUsers(t *testing.T) {
	_, cfg := managerConfig(t)
	code, _, stderr := runCmd(t, "console", "--config", cfg, "--listen", "0.0.0.0:0", "--no-browser")
	if code != 2 || !strings.Contains(stderr, "needs users") || !strings.Contains(stderr, "mamoru console adduser") {
		t.Errorf("console on 0.0.0.0 without users: exit %d, %q; want 2 naming 'mamoru console adduser'", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(cfg), "console-tls.crt")); err == nil {
		t.Error("a certificate was made for a console that did not start")
	}
}

// With a user, a console on the network makes its certificate beside the
// configuration, prints the fingerprint the browser will show, serves
// HTTPS only, and sends a request without a session to the login page.
func TestConsoleOnTheNetwork(t *testing.T) {
	_, cfg := managerConfig(t)
	var out, errOut syncBuffer
	if code := consoleAddUser(t.Context(), []string{"sato", "--role", "manager", "--config", cfg, "--password-stdin"},
		strings.NewReader("a-long-password-1\n"), &out, &errOut); code != 0 {
		t.Fatalf("adduser: exit %d: %s", code, errOut.String())
	}
	ctx, cancel := context.WithCancel(t.Context())
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"console", "--config", cfg, "--listen", "0.0.0.0:0", "--no-browser"}, strings.NewReader(""), &stdout, &stderr)
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("console exited %d: %s", code, stderr.String())
		}
	}()
	var url, fingerprint string
	deadline := time.Now().Add(30 * time.Second)
	for url == "" {
		if m := regexp.MustCompile(`(?s)fingerprint.*?\n  (\S+)\n.*mamoru console: (https://\S+)`).FindStringSubmatch(stdout.String()); m != nil {
			fingerprint, url = m[1], m[2]
		}
		select {
		case code := <-done:
			t.Fatalf("console exited %d: %s%s", code, stdout.String(), stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("console printed no https URL: %s%s", stdout.String(), stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(stdout.String(), "made a TLS certificate") {
		t.Errorf("no word of the certificate made: %s", stdout.String())
	}
	host, _ := os.Hostname()
	if !strings.HasPrefix(url, "https://"+host+":") {
		t.Errorf("the console on every address printed %s, want this machine's name, %s", url, host)
	}
	url = strings.Replace(url, host, "127.0.0.1", 1)
	var seen string
	client := &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, VerifyConnection: func(cs tls.ConnectionState) error {
			sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
			seen = fmt.Sprintf("% X", sum[:])
			return nil
		}}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Errorf("GET / without a session: %d to %q, want 303 to /login", resp.StatusCode, resp.Header.Get("Location"))
	}
	if strings.ReplaceAll(seen, " ", ":") != fingerprint {
		t.Errorf("the browser sees fingerprint %s, the console printed %s", strings.ReplaceAll(seen, " ", ":"), fingerprint)
	}
	plain, err := http.Get(strings.Replace(url, "https://", "http://", 1))
	if err == nil {
		plain.Body.Close()
		if plain.StatusCode < 400 {
			t.Errorf("plain HTTP answered %d", plain.StatusCode)
		}
	}
}

// The console's downloads are built without cgo: they build for Windows,
// and such a build says plainly that it cannot record with a microphone
// (miniaudio needs cgo) rather than start a recorder without sound.
func TestBuildWithoutCgo(t *testing.T) {
	if os.Getenv("MAMORU_TEST_EXEC") != "" {
		t.Skip("builds with the host's toolchain; not under emulation")
	}
	if testing.Short() {
		t.Skip("builds mamoru twice")
	}
	dir := t.TempDir()
	build := func(goos, out string) {
		t.Helper()
		cmd := exec.Command("go", "build", "-o", out, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH=amd64")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("CGO_ENABLED=0 GOOS=%s go build: %v\n%s", goos, err, b)
		}
	}
	build("windows", filepath.Join(dir, "mamoru-console-windows-amd64.exe"))
	bin := filepath.Join(dir, "mamoru-console-linux-amd64")
	build("linux", bin)

	cfg, _ := validConfigFile(t)
	out, err := exec.Command(bin, "run", "--config", cfg).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 || !strings.Contains(string(out), "without cgo") || !strings.Contains(string(out), "audio.enabled = false") {
		t.Errorf("run without cgo: %v\n%s\nwant a failure saying the build has no microphone and how to record without one", err, out)
	}
	out, err = exec.Command(bin, "console", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "managers' console") {
		t.Errorf("console --help without cgo: %v\n%s", err, out)
	}
}
