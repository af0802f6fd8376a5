package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"mamoru/alert"
	"mamoru/alert/mqtttest"
)

// mamoru check tries to reach each alert target without alerting anyone:
// one that answers is said with its events; one that cannot be reached,
// and one that would refuse the login, are errors naming the target's key
// and line, and the exit status is 1. --no-probe tries none.
func TestCheckProbesAlertTargets(t *testing.T) {
	var requests atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { requests.Add(1) }))
	defer hook.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := l.Addr().String()
	l.Close()
	broker := mqtttest.Start(t, map[string]string{"mamoru": "right"})
	dir := t.TempDir()
	secret := filepath.Join(dir, "hook.secret")
	password := filepath.Join(dir, "mqtt.password")
	os.WriteFile(secret, []byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"), 0o600)
	os.WriteFile(password, []byte("wrong\n"), 0o600)
	cfg := writeConfig(t, dir, "mamoru.toml", fmt.Sprintf(validConfig, t.TempDir())+fmt.Sprintf(`
[[alerts.target]]
kind = "webhook"
label = "本部"
url = "%s/hook"
secret_file = %q

[[alerts.target]]
kind = "ntfy"
label = "店長のスマホ"
url = "http://%s"
topic = "shop1-Zq8rT2kd7VwX"

[[alerts.target]]
kind = "mqtt"
label = "Home Assistant"
url = "mqtt://%s"
username = "mamoru"
password_file = %q
`, hook.URL, secret, down, broker.Addr, password))

	code, stdout, stderr := runCmd(t, "check", "--config", cfg)
	if code != 1 {
		t.Errorf("mamoru check exited %d, want 1; stderr:\n%s", code, stderr)
	}
	if want := "alerts: 本部 (webhook) reached in "; !strings.Contains(stdout, want) || !strings.Contains(stdout, "it is told of incident.started, press.refused, device.*") {
		t.Errorf("stdout:\n%s\nwant %q and its events", stdout, want)
	}
	src, _ := os.ReadFile(cfg)
	line := func(prefix string) int {
		for i, l := range strings.Split(string(src), "\n") {
			if strings.HasPrefix(l, prefix) {
				return i + 1
			}
		}
		t.Fatalf("no line starts with %q", prefix)
		return 0
	}
	for _, want := range []string{
		fmt.Sprintf("%s:%d: 'alerts.target[2].url' of 店長のスマホ (ntfy) cannot be reached: ", cfg, line(`url = "http://`+down)),
		fmt.Sprintf("%s:%d: 'alerts.target[3].url' of Home Assistant (mqtt) was reached but would not take alerts: ", cfg, line(`url = "mqtt://`)),
		"check the target's username and password_file",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr:\n%s\nwant it to contain %q", stderr, want)
		}
	}
	if strings.Contains(stdout+stderr, "Zq8rT2kd7VwX") || strings.Contains(stdout+stderr, "wrong") {
		t.Errorf("the output shows a secret:\n%s%s", stdout, stderr)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("the webhook took %d requests from check; want none", n)
	}

	if code, stdout, stderr := runCmd(t, "check", "--config", cfg, "--no-probe"); code != 0 || strings.Contains(stdout, "alerts:") {
		t.Errorf("check --no-probe exited %d, stdout %q, stderr %q; want 0 and no probe", code, stdout, stderr)
	}
}

// mamoru check --send-test sends each target a test alert: a webhook gets
// alert.test, ntfy a title saying it is a test, and an MQTT broker the
// event on the events topic only, with no availability or state.
func TestCheckSendsTestAlerts(t *testing.T) {
	got := make(chan string, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e alert.Event
		json.NewDecoder(r.Body).Decode(&e)
		got <- "webhook " + string(e.Name) + " " + e.Source
	}))
	defer hook.Close()
	ntfy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		title, _ := new(mime.WordDecoder).DecodeHeader(r.Header.Get("Title"))
		got <- "ntfy " + title
	}))
	defer ntfy.Close()
	broker := mqtttest.Start(t, nil)
	topics := broker.Subscribe("mamoru/test-store/test-counter/#")
	dir := t.TempDir()
	secret := filepath.Join(dir, "hook.secret")
	os.WriteFile(secret, []byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"), 0o600)
	cfg := writeConfig(t, dir, "mamoru.toml", strings.Replace(fmt.Sprintf(validConfig, t.TempDir()), "[device]\n", "[device]\nlabel = \"カウンター1\"\n", 1)+fmt.Sprintf(`
[[alerts.target]]
kind = "webhook"
label = "本部"
url = "%s/hook"
secret_file = %q

[[alerts.target]]
kind = "ntfy"
label = "店長のスマホ"
url = %q
topic = "shop1-Zq8rT2kd7VwX"

[[alerts.target]]
kind = "mqtt"
label = "Home Assistant"
url = "mqtt://%s"
`, hook.URL, secret, ntfy.URL, broker.Addr))

	code, stdout, stderr := runCmd(t, "check", "--config", cfg, "--send-test")
	if code != 0 {
		t.Fatalf("mamoru check --send-test exited %d; stderr:\n%s", code, stderr)
	}
	if n := strings.Count(stdout, "took the test alert in "); n != 3 {
		t.Errorf("stdout:\n%s\nwant three targets that took the test alert", stdout)
	}
	want := []string{"webhook alert.test check", "ntfy カウンター1からのテスト通知 "}
	for range 2 {
		g := <-got
		if !slices.ContainsFunc(want, func(w string) bool { return strings.HasPrefix(g, w) }) {
			t.Errorf("a receiver took %q; want one of %v", g, want)
		}
	}
	for m := range topics {
		if !strings.HasSuffix(m.Topic, "/events") {
			t.Errorf("the test alert published on %s (%s); want the events topic only", m.Topic, m.Payload)
			continue
		}
		if !strings.Contains(m.Payload, `"name":"alert.test"`) {
			t.Errorf("events: %s, want alert.test", m.Payload)
		}
		break
	}
}

// siteAlerts are the storage keys and three alert targets of a shop, each
// key file named at its path on the device.
const siteAlerts = `
[storage]
endpoint = "s3.example.com"
bucket = "clips"
access_key_file = "/etc/mamoru/s3-access-key"
secret_key_file = "/etc/mamoru/s3-secret-key"
` + siteTargets

// siteTargets are a webhook, an ntfy and an e-mail target, the e-mail
// last.
const siteTargets = `
[[alerts.target]]
kind = "webhook"
label = "本部"
url = "https://hooks.example.com/mamoru"
secret_file = "/etc/mamoru/webhook.secret"

[[alerts.target]]
kind = "ntfy"
label = "店長のスマホ"
topic = "shop1-Zq8rT2kd7VwX"
token_file = "/etc/mamoru/ntfy.token"

[[alerts.target]]
kind = "email"
label = "本部のメール"
url = "smtps://smtp.example.jp:465"
username = "mamoru"
password_file = "/etc/mamoru/smtp.password"
from = "mamoru@shop.example.jp"
to = ["manager@shop.example.jp"]
`

// siteKeys are the key files an installer keeps beside siteAlerts's
// configuration, by base name.
var siteKeys = map[string]string{
	"s3-access-key":  "AKIA\n",
	"s3-secret-key":  "s3cr3t\n",
	"webhook.secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n",
	"ntfy.token":     "tk_ntfyt0ken\n",
	"smtp.password":  "pa55word\n",
}

// writeSite writes a site's folder: the configuration (with a signing
// key at its device path, as provision writes it) and the key files in
// keys, each of mode 0600. It returns the configuration's path.
func writeSite(t *testing.T, keys map[string]string) string {
	t.Helper()
	site := t.TempDir()
	src := strings.Replace(fmt.Sprintf(validConfig, t.TempDir()), "\n\n[capture]", "\nsigning_key_file = \"/etc/mamoru/signing.key\"\n\n[capture]", 1) + siteAlerts
	for name, text := range keys {
		if err := os.WriteFile(filepath.Join(site, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return writeConfig(t, site, "mamoru.toml", src)
}

// check --key-dir validates a site's configuration on the installer's
// machine with its key files taken from beside it; the signing key, made
// on the device, is not asked for; a file missing, loose or wrong is named
// with its key, line and the file looked for.
func TestCheckKeyDir(t *testing.T) {
	without := func(name string) map[string]string {
		m := maps.Clone(siteKeys)
		delete(m, name)
		return m
	}
	with := func(name, text string) map[string]string {
		m := maps.Clone(siteKeys)
		m[name] = text
		return m
	}
	for _, tc := range []struct {
		name   string
		keys   map[string]string
		loose  string // a key file made readable by others
		code   int
		stdout string
		at     string   // what the line at fault holds
		stderr []string // each must be in stderr; %[1]s is the site's folder, %[2]d the line
	}{
		{name: "complete", keys: siteKeys, code: 0, stdout: "configuration OK: device test-counter in store test-store"},
		{name: "token missing", keys: without("ntfy.token"), code: 2, at: "token_file =",
			stderr: []string{"mamoru.toml:%[2]d: 'alerts.target[2].token_file' cannot be read from %[1]s/ntfy.token (the file for /etc/mamoru/ntfy.token on the device): no such file or directory"}},
		{name: "password missing", keys: without("smtp.password"), code: 2, at: "password_file =",
			stderr: []string{"mamoru.toml:%[2]d: 'alerts.target[3].password_file' cannot be read from %[1]s/smtp.password"}},
		{name: "webhook secret readable by others", keys: siteKeys, loose: "webhook.secret", code: 2, at: "secret_file =",
			stderr: []string{"mamoru.toml:%[2]d: 'alerts.target[1].secret_file' %[1]s/webhook.secret must have mode 0600 or 0400"}},
		{name: "webhook secret not a secret", keys: with("webhook.secret", "hunter2\n"), code: 2, at: "secret_file =",
			stderr: []string{"mamoru.toml:%[2]d: 'alerts.target[1].secret_file' %[1]s/webhook.secret must hold a Standard Webhooks secret"}},
		{name: "storage key missing", keys: without("s3-secret-key"), code: 2, at: "secret_key_file =",
			stderr: []string{"mamoru.toml:%[2]d: 'storage.secret_key_file' cannot be read from %[1]s/s3-secret-key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeSite(t, tc.keys)
			site := filepath.Dir(cfg)
			if tc.loose != "" {
				os.Chmod(filepath.Join(site, tc.loose), 0o644)
			}
			code, stdout, stderr := runCmd(t, "check", "--no-probe", "--key-dir", site, "--config", cfg)
			if code != tc.code || !strings.Contains(stdout, tc.stdout) {
				t.Errorf("check --key-dir exited %d, stdout %q, stderr %q; want %d and %q", code, stdout, stderr, tc.code, tc.stdout)
			}
			for _, want := range tc.stderr {
				if want := fmt.Sprintf(want, site, lineIn(t, cfg, tc.at)); !strings.Contains(stderr, want) {
					t.Errorf("stderr:\n%s\nwant it to contain %q", stderr, want)
				}
			}
			if strings.Contains(stdout+stderr, "signing") {
				t.Errorf("check --key-dir asked for the signing key, which the device makes:\n%s%s", stdout, stderr)
			}
			for _, secret := range []string{"s3cr3t", "tk_ntfyt0ken", "pa55word", "MfKQ9r8G", "hunter2"} {
				if strings.Contains(stdout+stderr, secret) {
					t.Errorf("the output shows the secret %q:\n%s%s", secret, stdout, stderr)
				}
			}
		})
	}
	// Without --key-dir the files are looked for at their device paths,
	// which this machine does not have.
	cfg := writeSite(t, siteKeys)
	if code, _, stderr := runCmd(t, "check", "--no-probe", "--config", cfg); code != 2 || !strings.Contains(stderr, "'alerts.target[2].token_file' cannot be read: no such file or directory") {
		t.Errorf("check without --key-dir exited %d, stderr:\n%s\nwant the device paths missing", code, stderr)
	}
}

// check --list-key-files prints, for the installer's scripts, the key and
// device path of each file the device needs with the configuration, one
// a line, reading none of them (none exists here); a path the scripts
// could not carry is refused, naming its key and line.
func TestCheckListKeyFiles(t *testing.T) {
	for _, tc := range []struct {
		name     string
		from, to string // a change to the site's configuration
		code     int
		stdout   string
		stderr   string
	}{
		{name: "site", code: 0, stdout: "storage.access_key_file\t/etc/mamoru/s3-access-key\n" +
			"storage.secret_key_file\t/etc/mamoru/s3-secret-key\n" +
			"alerts.target[1].secret_file\t/etc/mamoru/webhook.secret\n" +
			"alerts.target[2].token_file\t/etc/mamoru/ntfy.token\n" +
			"alerts.target[3].password_file\t/etc/mamoru/smtp.password\n"},
		{name: "a CA and a path with a space", from: "password_file = \"/etc/mamoru/smtp.password\"\n",
			to: "password_file = \"/etc/mamoru/smtp password\"\nca_file = \"/etc/mamoru/nas-ca.pem\"\n", code: 0,
			stdout: "storage.access_key_file\t/etc/mamoru/s3-access-key\n" +
				"storage.secret_key_file\t/etc/mamoru/s3-secret-key\n" +
				"alerts.target[1].secret_file\t/etc/mamoru/webhook.secret\n" +
				"alerts.target[2].token_file\t/etc/mamoru/ntfy.token\n" +
				"alerts.target[3].password_file\t/etc/mamoru/smtp password\n" +
				"alerts.target[3].ca_file\t/etc/mamoru/nas-ca.pem\n"},
		{name: "no key files", from: siteAlerts, to: "", code: 0, stdout: ""},
		{name: "relative path", from: `"/etc/mamoru/ntfy.token"`, to: `"ntfy.token"`, code: 2,
			stderr: "mamoru.toml:%d: 'alerts.target[2].token_file' must be the absolute path of a file"},
		{name: "one base name twice", from: `"/etc/mamoru/smtp.password"`, to: `"/etc/mail/ntfy.token"`, code: 2,
			stderr: "mamoru.toml:%d: 'alerts.target[3].password_file' \"/etc/mail/ntfy.token\" has the base name \"ntfy.token\" of 'alerts.target[2].token_file'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeSite(t, nil)
			src, _ := os.ReadFile(cfg)
			os.WriteFile(cfg, []byte(strings.Replace(string(src), tc.from, tc.to, 1)), 0o644)
			code, stdout, stderr := runCmd(t, "check", "--list-key-files", "--config", cfg)
			wantErr := tc.stderr
			if strings.Contains(wantErr, "%d") {
				wantErr = fmt.Sprintf(wantErr, lineIn(t, cfg, tc.to))
			}
			if code != tc.code || stdout != tc.stdout || !strings.Contains(stderr, wantErr) {
				t.Errorf("check --list-key-files exited %d\nstdout:\n%s\nstderr:\n%s\nwant %d, stdout\n%s\nstderr holding %q", code, stdout, stderr, tc.code, tc.stdout, wantErr)
			}
		})
	}
}

// lineIn is the 1-based line of the file at path that holds s.
func lineIn(t *testing.T, path, s string) int {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(string(src), "\n") {
		if strings.Contains(l, s) {
			return i + 1
		}
	}
	t.Fatalf("no line of %s holds %q", path, s)
	return 0
}
