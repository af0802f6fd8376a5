package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"mamoru/bucket"
	"mamoru/bucket/s3test"
	"mamoru/device"
	"mamoru/outbox"
)

// BenchmarkUploadLatency records 60 s clips of 720p30 at 2.5 Mbit/s (30 s
// before the press, 30 s after) and reports the time from the end of the
// post window to manifest.json being visible in MinIO on loopback. Target:
// at most 2 s. Each iteration takes over a minute of real time.
func BenchmarkUploadLatency(b *testing.B) {
	srv := s3test.Start(b, s3test.Options{})
	srv.Bucket("clips")
	stateDir := b.TempDir()
	cfg := fmt.Sprintf(`[device]
id = "bench"
store = "bench"
state_dir = %q
[capture]
pre_seconds = 30
post_seconds = 30
[video]
source = "testsrc"
[audio]
backend = "null"
[storage]
endpoint = %q
bucket = "clips"
secure = false
`, stateDir, srv.Endpoint)
	path0 := b.TempDir() + "/bench.toml"
	if err := os.WriteFile(path0, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	b.Setenv("MAMORU_POLICY_OBJECT_LOCK", "none") // a plain bucket
	b.Setenv("MAMORU_S3_ACCESS_KEY", s3test.RootUser)
	b.Setenv("MAMORU_S3_SECRET_KEY", s3test.RootPassword)
	ctx, cancel := context.WithCancel(b.Context())
	done := make(chan int, 1)
	var out, errOut syncBuffer
	go func() { done <- run(ctx, []string{"run", "--config", path0}, strings.NewReader(""), &out, &errOut) }()
	defer func() { cancel(); <-done }()
	status := func() device.Status {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		st, _ := device.GetStatus(c, stateDir)
		return st
	}
	clips := bucket.Clips{Client: srv.Root(), Bucket: "clips"}
	var total, worst time.Duration
	for b.Loop() {
		for status().BufferedSeconds < 30 {
			time.Sleep(200 * time.Millisecond)
		}
		res, err := device.Trigger(ctx, stateDir, "bench")
		if err != nil {
			b.Fatal(err)
		}
		var m outbox.Manifest
		for {
			// The manifest is uploaded last: once it is listed, the
			// incident is complete in the bucket.
			if e, err := clips.Find(ctx, bucket.Ref{ID: res.Incident}); err == nil {
				m = e.Manifest
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		seen := time.Now()
		postEnd := m.PressTime.Add(30 * time.Second)
		lat := seen.Sub(postEnd)
		total += lat
		worst = max(worst, lat)
		b.Logf("incident %s: %.1f s clip, %d bytes: manifest in MinIO %v after the post window ended", m.Incident, m.DurationSeconds, m.Clip.Size, lat.Round(time.Millisecond))
	}
	b.ReportMetric((total / time.Duration(b.N)).Seconds(), "s-post-end-to-manifest")
	b.ReportMetric(worst.Seconds(), "s-worst")
}
