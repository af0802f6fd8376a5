package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"mamoru/alert"
	"mamoru/alert/mqtttest"
)

// The running recorder (a child process, as in TestPowerCuts) says online
// on a real broker with a login as it starts, a press reaches the broker's events topic
// as incident.started, and when the recorder is killed with SIGKILL the
// broker says offline for it: its Last Will.
func TestAlertsMQTTEndToEnd(t *testing.T) {
	b := mqtttest.Start(t, map[string]string{"mamoru": "s3cret-pass"})
	got := b.Subscribe("mamoru/test-store/test-counter/#")
	dir := t.TempDir()
	passFile := filepath.Join(dir, "mqtt.password")
	if err := os.WriteFile(passFile, []byte("s3cret-pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, dir, "mamoru.toml", fmt.Sprintf(validConfig, t.TempDir())+fmt.Sprintf(`
[[alerts.target]]
kind = "mqtt"
label = "Home Assistant"
url = "mqtt://%s"
username = "mamoru"
password_file = %q
events = ["incident.started"]
`, b.Addr, passFile))

	rec := newRecorders(t, cfg)
	rec.start()
	next := func(topic string) string {
		t.Helper()
		for {
			select {
			case m := <-got:
				if m.Topic == "mamoru/test-store/test-counter/"+topic {
					return m.Payload
				}
			case <-time.After(60 * time.Second):
				rec.fail("no message on %s within 60 s", topic)
			}
		}
	}

	// The target connects at start, before any event.
	if a := next("availability"); a != "online" {
		t.Errorf("availability at start: got %q, want online", a)
	}
	id, out := triggerWhenUp(t, cfg)
	if id == "" {
		rec.fail("mamoru trigger never succeeded: %s", out)
	}
	var e alert.Event
	if p := next("events"); json.Unmarshal([]byte(p), &e) != nil || e.Name != alert.IncidentStarted || e.Incident != "test-store/test-counter/"+id || e.Source != "cli" {
		t.Errorf("events: got %s, want incident.started for test-store/test-counter/%s from cli", p, id)
	}

	rec.kill()
	if a := next("availability"); a != "offline" {
		t.Errorf("availability after SIGKILL: got %q, want offline (the Last Will)", a)
	}
}
