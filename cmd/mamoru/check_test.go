package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

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
