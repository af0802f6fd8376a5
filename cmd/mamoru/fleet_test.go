//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"mamoru/alert"
	"mamoru/bucket/s3test"
	"mamoru/config"
	"mamoru/health"
)

// plantHealth writes a device's health.json under prefix "mamoru", as the
// device would: b, or r's bytes when b is nil.
func plantHealth(t *testing.T, srv *s3test.Server, r health.Report, b []byte) {
	t.Helper()
	if b == nil {
		var err error
		if b, err = r.Marshal(); err != nil {
			t.Fatal(err)
		}
	}
	key := health.Key("mamoru", r.Store, r.Device)
	if _, err := srv.Root().PutObject(context.Background(), "clips", key, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{ContentType: "application/json"}); err != nil {
		t.Fatalf("plant %s: %v", key, err)
	}
}

// healthReport is a report of store/device recording, always, sent now.
func healthReport(store, dev string) health.Report {
	return health.Report{Store: store, Device: dev, Label: dev + "のカメラ", State: "buffering", Indicator: true,
		RecordingExpected: true, Hours: health.Hours{Zone: "UTC"}, PendingUploads: 2, ClockSynced: true, Sent: time.Now()}
}

// closedNow gives r recording hours that are closed at this moment:
// every day, but yesterday, today and tomorrow are closed dates.
func closedNow(r health.Report) health.Report {
	now := time.Now().UTC()
	r.Hours = health.Hours{Recording: []string{"daily 00:00-24:00"}, Zone: "UTC",
		Closed: []string{now.AddDate(0, 0, -1).Format(time.DateOnly), now.Format(time.DateOnly), now.AddDate(0, 0, 1).Format(time.DateOnly)}}
	r.RecordingExpected, r.State, r.Closed = false, "idle", "closed date"
	return r
}

// fleet ls lists every device under the prefix, each marked as it should
// be, with a report that does not parse listed by its key.
func TestFleetLs(t *testing.T) {
	srv, cfg := managerConfig(t)
	// Silent: written first, then left alone past --offline-after.
	plantHealth(t, srv, healthReport("shop-1", "stale"), nil)
	plantHealth(t, srv, closedNow(healthReport("shop-2", "closed")), nil)
	time.Sleep(3 * time.Second)
	plantHealth(t, srv, healthReport("shop-1", "fresh"), nil)
	off := healthReport("shop-1", "clock-off")
	off.Sent = time.Now().Add(-time.Minute)
	plantHealth(t, srv, off, nil)
	fault := healthReport("shop-2", "fault")
	fault.State, fault.Fault = "fault", "camera gone"
	plantHealth(t, srv, fault, nil)
	elsewhere := healthReport("shop-9", "counter-9")
	b, _ := elsewhere.Marshal()
	plantHealth(t, srv, healthReport("shop-3", "moved"), b)
	plantHealth(t, srv, health.Report{Store: "shop-2", Device: "malformed"}, []byte(`{"version": 1, "store": "shop-2", "state": "idle\x1b[2J"`))
	// A device folder with no report (an older device): listed too.
	plantBytes(t, srv, "mamoru/shop-3/old/2026/11/30/20261130-120000-000001/manifest.json", []byte("{}"))
	// The managers' custody records are no store's.
	plantBytes(t, srv, "mamoru/.custody/shop-3/old/20261130-120000-000001/2026-11-30T12:00:00Z-view-1.json", []byte("{}"))

	code, out, errOut := runCmd(t, "fleet", "ls", "--config", cfg, "--offline-after", "2s", "--json")
	if code != 0 {
		t.Fatalf("fleet ls --json: exit %d, stderr %q", code, errOut)
	}
	var got struct {
		Clock      string     `json:"clock"`
		ServerTime time.Time  `json:"server_time"`
		Devices    []fleetRow `json:"devices"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("fleet ls --json: %v\n%s", err, out)
	}
	if got.Clock != "server" || time.Since(got.ServerTime).Abs() > time.Minute {
		t.Errorf("clock %q at %v: want the server's, now", got.Clock, got.ServerTime)
	}
	type marks struct{ offline, closed, notRecording, clockOff, err bool }
	want := map[string]marks{
		"shop-1/clock-off": {clockOff: true},
		"shop-1/fresh":     {},
		"shop-1/stale":     {offline: true},
		"shop-2/closed":    {closed: true},
		"shop-2/fault":     {notRecording: true},
		"shop-2/malformed": {err: true},
		"shop-3/old":       {err: true},
		"shop-3/moved":     {},
	}
	if len(got.Devices) != len(want) {
		t.Errorf("%d devices listed, want %d:\n%s", len(got.Devices), len(want), out)
	}
	for _, d := range got.Devices {
		name := d.Store + "/" + d.Device
		w, ok := want[name]
		if !ok {
			t.Errorf("listed %s, which is no device", name)
			continue
		}
		if g := (marks{d.Offline, d.Closed, d.NotRecording, d.ClockOff, d.Error != ""}); g != w {
			t.Errorf("%s: marks %+v, want %+v (error %q)", name, g, w, d.Error)
		}
		if w.err && !strings.Contains(d.Error, d.Key) {
			t.Errorf("%s: error %q does not name the object %s", name, d.Error, d.Key)
		}
		if name == "shop-1/fresh" && (d.AgeSeconds == nil || *d.AgeSeconds > 2 || d.AgeClock != "server" || d.PendingUploads == nil || *d.PendingUploads != 2) {
			t.Errorf("%s: %+v, want a fresh age on the server's clock and 2 pending uploads", name, d)
		}
	}

	code, out, errOut = runCmd(t, "fleet", "ls", "--config", cfg, "--offline-after", "2s")
	if code != 0 {
		t.Fatalf("fleet ls: exit %d, stderr %q", code, errOut)
	}
	for _, s := range []string{"shop-1/stale", "OFFLINE", "closed", "NOT RECORDING (camera gone)", "CLOCK OFF by -", "mamoru/shop-2/malformed/health.json", "freshのカメラ", "REPORT NAMES shop-9/counter-9"} {
		if !strings.Contains(out, s) {
			t.Errorf("fleet ls does not say %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "\x1b") {
		t.Errorf("fleet ls printed a control character:\n%q", out)
	}
}

// plantBytes puts b at key in bucket "clips".
func plantBytes(t *testing.T, srv *s3test.Server, key string, b []byte) {
	t.Helper()
	if _, err := srv.Root().PutObject(context.Background(), "clips", key, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
}

// fleet watch says device.offline once when a device's report stops being
// refreshed, and device.online once when it comes back, to a signed
// webhook; a device closed for the day pages nobody, and a restart of the
// watch says nothing again.
func TestFleetWatchAlertsOnce(t *testing.T) {
	srv, cfg := managerConfig(t)
	hook, hooked := receiver(t)
	dir := t.TempDir()
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("a secret of thirty-two bytes....."))
	secretFile := filepath.Join(dir, "webhook.secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := mustRead(t, cfg) + fmt.Sprintf(`
[[alerts.target]]
kind = "webhook"
label = "本部"
url = %q
secret_file = %q
events = ["device.*"]
`, hook.URL+"/hook", secretFile)
	cfg = writeConfig(t, dir, "manager.toml", src)

	plantHealth(t, srv, closedNow(healthReport("shop-1", "closed")), nil)
	// counter-1 reports every 300 ms while refreshing is set.
	var mu sync.Mutex // guards refreshing
	refreshing := true
	stopRefresh := make(chan struct{})
	refresher := make(chan struct{})
	go func() {
		defer close(refresher)
		for {
			mu.Lock()
			on := refreshing
			mu.Unlock()
			if on {
				plantHealth(t, srv, healthReport("shop-1", "counter-1"), nil)
			}
			select {
			case <-stopRefresh:
				return
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	defer func() { close(stopRefresh); <-refresher }()
	setRefreshing := func(on bool) { mu.Lock(); refreshing = on; mu.Unlock() }

	stateDir := t.TempDir()
	watch := func() (stop func() string) {
		ctx, cancel := context.WithCancel(t.Context())
		var stdout, stderr syncBuffer
		done := make(chan int, 1)
		go func() {
			done <- run(ctx, []string{"fleet", "watch", "--config", cfg, "--state-dir", stateDir, "--interval", "300ms", "--offline-after", "2s"}, strings.NewReader(""), &stdout, &stderr)
		}()
		return func() string {
			cancel()
			select {
			case code := <-done:
				if code != 0 {
					t.Errorf("fleet watch: exit %d\n%s", code, stderr.String())
				}
			case <-time.After(30 * time.Second):
				t.Error("fleet watch did not stop within 30 s of its context ending")
			}
			return stdout.String() + stderr.String()
		}
	}
	next := func(within time.Duration) (alert.Event, bool) {
		t.Helper()
		select {
		case r := <-hooked:
			if err := verifyStandardWebhook(secret, r.header, r.body); err != nil {
				t.Errorf("the webhook's signature: %v", err)
			}
			var e alert.Event
			if err := json.Unmarshal(r.body, &e); err != nil {
				t.Fatalf("the webhook's body %q: %v", r.body, err)
			}
			return e, true
		case <-time.After(within):
			return alert.Event{}, false
		}
	}

	stop := watch()
	if e, ok := next(4 * time.Second); ok {
		t.Fatalf("while counter-1 reports and the other is closed: %s about %s/%s", e.Name, e.Store, e.Device)
	}
	setRefreshing(false)
	offline, ok := next(15 * time.Second)
	if !ok || offline.Name != alert.DeviceOffline || offline.Device != "counter-1" || offline.Label != "counter-1のカメラ" {
		t.Fatalf("after counter-1 stopped reporting: %+v (%v), want device.offline about it\n%s", offline, ok, stop())
	}
	if e, ok := next(2 * time.Second); ok {
		t.Fatalf("a second event while counter-1 stays silent: %+v", e)
	}
	setRefreshing(true)
	online, ok := next(10 * time.Second)
	if !ok || online.Name != alert.DeviceOnline || online.Device != "counter-1" {
		t.Fatalf("after counter-1 reported again: %+v (%v), want device.online about it\n%s", online, ok, stop())
	}
	if e, ok := next(2 * time.Second); ok {
		t.Fatalf("an event after device.online: %+v", e)
	}
	out := stop()
	if !strings.Contains(out, "device.offline shop-1/counter-1") || !strings.Contains(out, "device.online shop-1/counter-1") {
		t.Errorf("fleet watch does not say what it sent:\n%s", out)
	}

	// A restart, with its state on disk, says nothing again.
	stop = watch()
	if e, ok := next(3 * time.Second); ok {
		t.Errorf("the restarted watch said %s about %s", e.Name, e.Device)
	}
	stop()
}

// fleetPolicy is the least a manager's fleet commands need, as
// docs/security.md gives it, for bucket "clips" and prefix "mamoru".
const fleetPolicy = `{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": ["arn:aws:s3:::clips"],
     "Condition": {"StringLike": {"s3:prefix": ["mamoru/", "mamoru/*/"]}}},
    {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::clips/mamoru/*/*/health.json"]}
  ]
}`

// fleet ls works with credentials that may list the folders and read the
// health reports and nothing else: no clip, no manifest.
func TestFleetLsWithItsOwnPolicy(t *testing.T) {
	srv, _ := managerConfig(t)
	srv.AddUser("fleet-reader", "fleet-reader-secret", fleetPolicy)
	cfg := writeConfig(t, t.TempDir(), "fleet.toml", fmt.Sprintf("[storage]\nendpoint = %q\nbucket = \"clips\"\nsecure = false\nprefix = \"mamoru\"\n", srv.Endpoint)+keyFiles(t, "fleet-reader", "fleet-reader-secret"))
	plantHealth(t, srv, healthReport("shop-1", "counter-1"), nil)
	plantHealth(t, srv, healthReport("shop-2", "counter-1"), nil)
	manifest := "mamoru/shop-1/counter-1/2026/11/30/20261130-120000-000001/manifest.json"
	plantBytes(t, srv, manifest, []byte("{}"))

	code, out, errOut := runCmd(t, "fleet", "ls", "--config", cfg)
	if code != 0 || strings.Contains(out, "ERROR") || !strings.Contains(out, "shop-1/counter-1") || !strings.Contains(out, "shop-2/counter-1") {
		t.Fatalf("fleet ls with the fleet policy: exit %d\n%s%s", code, out, errOut)
	}
	c, err := minio.New(srv.Endpoint, &minio.Options{Creds: credentials.NewStaticV4("fleet-reader", "fleet-reader-secret", "")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.StatObject(t.Context(), "clips", manifest, minio.StatObjectOptions{}); minio.ToErrorResponse(err).StatusCode != 403 {
		t.Errorf("the fleet policy lets its user read a manifest: %v", err)
	}
}

// The manager's example file is one fleet watch takes.
func TestFleetWatchExampleConfig(t *testing.T) {
	a, err := config.LoadAlerts("../../docs/manager.example.toml", nil)
	if err != nil || len(a.Targets) != 1 || !a.Targets[0].Wants("device.offline") || !a.Targets[0].Wants("device.online") {
		t.Errorf("docs/manager.example.toml: %+v, %v; want one target of device.offline and device.online", a.Targets, err)
	}
}
