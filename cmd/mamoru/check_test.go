package main

import (
	"encoding/json"
	"fmt"
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
