package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/tags"

	"mamoru/bucket"
	"mamoru/bucket/s3test"
	"mamoru/device"
	"mamoru/health"
)

// awaitStatus asks the recorder at cfg for its status until cond holds,
// for up to 90 s.
func awaitStatus(t *testing.T, cfg, what string, cond func(device.Status) bool, stderr *syncBuffer) device.Status {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		code, out, _ := runCmd(t, "status", "--config", cfg, "--json")
		var st device.Status
		if code == 0 && json.Unmarshal([]byte(out), &st) == nil && cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: last status %s\nrecorder stderr: %s", what, out, stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestHealthInTheBucket is the real recorder with the device policy that
// storage init prints: it writes health.json for real, parseable, sent on
// its clock within seconds of the server's Last-Modified, and writes it
// at once on a press while a clip's upload is held up by the bandwidth
// cap. The device's keys write over health.json and still cannot delete a
// clip.
func TestHealthInTheBucket(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	// 16 kbit/s: the first clip takes well over a minute to go.
	storage := fmt.Sprintf("\n[storage]\nendpoint = %q\nbucket = \"clips\"\nsecure = false\nprefix = \"mamoru\"\npart_size_mb = 5\nmax_bandwidth_kbps = 16\n", srv.Endpoint)
	device0 := fmt.Sprintf(validConfig, t.TempDir()) + storage
	// Clips kept until someone deletes them: health.json's older versions
	// have a lifecycle rule of their own.
	admin := writeConfig(t, t.TempDir(), "admin.toml", device0+keyFiles(t, s3test.RootUser, s3test.RootPassword)+
		"\n[policy]\nretention_days = 0\nobject_lock = \"none\"\n")
	code, out, errOut := runCmd(t, "storage", "init", "--config", admin)
	if code != 0 {
		t.Fatalf("mamoru storage init exited %d: %s%s", code, out, errOut)
	}
	if !strings.Contains(out, "health.json, written over every minute, go a day after") {
		t.Errorf("storage init does not say what becomes of health.json's older versions:\n%s", out)
	}
	// The policy exactly as printed, up to the note after it.
	policyJSON := out[strings.Index(out, "{"):]
	var policy json.RawMessage
	if err := json.NewDecoder(strings.NewReader(policyJSON)).Decode(&policy); err != nil {
		t.Fatalf("storage init printed no policy: %v\n%s", err, out)
	}
	const devSecret = "device-secret-never-shown"
	srv.AddUser("test-counter", devSecret, string(policy))

	cfg := writeConfig(t, t.TempDir(), "device.toml", device0+keyFiles(t, "test-counter", devSecret)+"\n[policy]\nobject_lock = \"none\"\n")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"run", "--config", cfg}, strings.NewReader(""), &stdout, &stderr) }()
	stop := sync.OnceFunc(func() { cancel(); <-done })
	defer stop()

	root := srv.Root()
	key := health.Key("mamoru", "test-store", "test-counter")
	// report reads health.json as a manager does, with its Last-Modified.
	report := func() (health.Report, time.Time, error) {
		obj, err := root.GetObject(t.Context(), "clips", key, minio.GetObjectOptions{})
		if err != nil {
			return health.Report{}, time.Time{}, err
		}
		defer obj.Close()
		b, err := io.ReadAll(obj)
		if err != nil {
			return health.Report{}, time.Time{}, err
		}
		info, err := obj.Stat()
		if err != nil {
			return health.Report{}, time.Time{}, err
		}
		r, err := health.Parse(b)
		return r, info.LastModified, err
	}
	// awaitReport reads health.json until cond holds, for up to 30 s.
	awaitReport := func(what string, cond func(health.Report) bool) (health.Report, time.Time) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			r, modified, err := report()
			if err == nil && cond(r) {
				return r, modified
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiting for health.json with %s: last %+v, %v\nrecorder stderr: %s", what, r, err, stderr.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	first, _ := awaitReport("the recorder's first report", func(health.Report) bool { return true })
	if first.Store != "test-store" || first.Device != "test-counter" || first.Software != version || first.DiskFree <= 0 {
		t.Errorf("first report %+v; want the device's names, version and free bytes", first)
	}
	awaitStatus(t, cfg, "a pre-roll", func(s device.Status) bool { return s.BufferedSeconds >= 2 }, &stderr)
	held, out := triggerWhenUp(t, cfg)
	if held == "" {
		t.Fatalf("mamoru trigger: %s", out)
	}
	awaitStatus(t, cfg, "the clip's upload under way", func(s device.Status) bool {
		return s.Uploads != nil && s.Uploads.Uploading == held && s.Uploads.SentBytes > 0
	}, &stderr)

	// A press while the clip crawls out: the report says so at once.
	code, out, errOut = runCmd(t, "trigger", "--config", cfg)
	if code != 0 {
		t.Fatalf("mamoru trigger exited %d: %s%s", code, out, errOut)
	}
	pressed, answered := strings.Fields(out)[1], time.Now()
	r, modified := awaitReport("the second press", func(r health.Report) bool { return strings.HasSuffix(r.LastIncident, "/"+pressed) })
	took := time.Since(answered)
	t.Logf("health.json said the press %v after trigger answered; sent %v, Last-Modified %v",
		took.Round(time.Millisecond), r.Sent.Format(time.RFC3339Nano), modified.Format(time.RFC3339Nano))
	// At once, not at the next of the minutes the recorder keeps.
	if took > 10*time.Second {
		t.Errorf("health.json said the press %v after it, want at once", took)
	}
	st := awaitStatus(t, cfg, "the status", func(device.Status) bool { return true }, &stderr)
	if st.Uploads.Uploading != held || st.Uploads.Shipped != 0 {
		t.Fatalf("the clip's upload was not held up by the cap while the report went: uploads %+v", st.Uploads)
	}
	// The incident lasts a second: a report of its end may have followed.
	if r.State != string(device.StateIncident) && r.State != string(device.StateBuffering) || !r.Indicator || !r.RecordingExpected || r.PendingUploads < 1 {
		t.Errorf("report after the press %+v; want incident (or buffering once it ended), indicator lit, recording expected, the held clip pending", r)
	}
	if _, offset := r.Sent.Zone(); offset != 9*3600 {
		t.Errorf("report sent %v; want it in the device's zone, Asia/Tokyo", r.Sent)
	}
	if d := r.Sent.Sub(modified).Abs(); d > 5*time.Second {
		t.Errorf("report sent %v, Last-Modified %v: %v apart, want within seconds", r.Sent, modified, d)
	}
	if st.Health == nil || st.Health.Written < 2 || st.Health.LastError != "" {
		t.Errorf("status shows health %+v; want at least 2 written and no error", st.Health)
	}

	// The device's keys wrote over health.json each time, without
	// If-None-Match; they may still not delete a clip, nor a version of it.
	var versions int
	for v := range root.ListObjects(t.Context(), "clips", minio.ListObjectsOptions{Prefix: key, WithVersions: true}) {
		if v.Err != nil {
			t.Fatal(v.Err)
		}
		versions++
	}
	if versions < 2 {
		t.Errorf("%d versions of health.json; want the device to have written it over", versions)
	}
	dev, err := minio.New(srv.Endpoint, &minio.Options{Creds: credentials.NewStaticV4("test-counter", devSecret, "")})
	if err != nil {
		t.Fatal(err)
	}
	clip := "mamoru/test-store/test-counter/2026/11/30/20261130-140000-000001/clip.mp4"
	info, err := dev.PutObject(t.Context(), "clips", clip, bytes.NewReader([]byte("clip")), 4, bucket.IfAbsent())
	if err != nil {
		t.Fatalf("the device cannot write a new clip: %v", err)
	}
	for _, opts := range []minio.RemoveObjectOptions{{}, {VersionID: info.VersionID}} {
		if err := dev.RemoveObject(t.Context(), "clips", clip, opts); minio.ToErrorResponse(err).Code != "AccessDenied" {
			t.Errorf("the device deleting a clip (version %q): %v, want AccessDenied", opts.VersionID, err)
		}
	}
	// Nor tag it for the lifecycle rule that deletes health.json's older
	// versions.
	tag, err := tags.NewTags(map[string]string{bucket.HealthTag.Key: bucket.HealthTag.Value}, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.PutObjectTagging(t.Context(), "clips", clip, tag, minio.PutObjectTaggingOptions{}); minio.ToErrorResponse(err).Code != "AccessDenied" {
		t.Errorf("the device tagging a clip: %v, want AccessDenied", err)
	}
	if err := dev.RemoveObject(t.Context(), "clips", key, minio.RemoveObjectOptions{}); minio.ToErrorResponse(err).Code != "AccessDenied" {
		t.Errorf("the device deleting health.json: %v, want AccessDenied", err)
	}
	// A manager's fleet ls reads what the recorder wrote: up, recording,
	// its clock right; stopped, offline once its report is older than
	// --offline-after (3 minutes unless told).
	row := func(offlineAfter string) fleetRow {
		t.Helper()
		code, out, errOut := runCmd(t, "fleet", "ls", "--config", admin, "--offline-after", offlineAfter, "--json")
		var got struct{ Devices []fleetRow }
		if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil || len(got.Devices) != 1 {
			t.Fatalf("fleet ls: exit %d, %v, %s%s", code, err, out, errOut)
		}
		return got.Devices[0]
	}
	if d := row("3m"); d.Store != "test-store" || d.Device != "test-counter" || d.Offline || d.NotRecording || d.ClockOff || d.Error != "" {
		t.Errorf("fleet ls of the running recorder: %+v; want it up, recording, its clock right", d)
	}
	stop()
	time.Sleep(3 * time.Second)
	if d := row("2s"); !d.Offline || d.Closed {
		t.Errorf("fleet ls 3 s after the recorder stopped, offline after 2 s: %+v; want it offline", d)
	}
}

// The text status says when health.json cannot be written, and since when.
func TestHealthStatusText(t *testing.T) {
	at := time.Date(2026, 11, 30, 14, 0, 0, 0, time.UTC)
	var b bytes.Buffer
	writeStatus(&b, device.Status{State: device.StateBuffering, ClockSynced: true,
		Health: &health.WriterStatus{LastError: "health: write x: AccessDenied", FailingSince: at}})
	if want := "health:     NOT WRITTEN to the bucket since 2026-11-30 14:00:00: health: write x: AccessDenied"; !strings.Contains(b.String(), want) {
		t.Errorf("status text lacks %q:\n%s", want, b.String())
	}
	b.Reset()
	writeStatus(&b, device.Status{State: device.StateBuffering, ClockSynced: true, Health: &health.WriterStatus{Written: 3, LastWritten: at}})
	if want := "health:     written to the bucket 3 times, last 2026-11-30 14:00:00"; !strings.Contains(b.String(), want) || strings.Contains(b.String(), "NOT") {
		t.Errorf("status text of a device whose report is written:\n%s\nwant %q", b.String(), want)
	}
}
