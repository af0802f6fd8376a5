package uploader

import (
	"mamoru/bucket"
	"mamoru/bucket/s3test"
	"mamoru/outbox"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

// max_bandwidth_kbps holds an upload to the shop's share of its uplink: a
// clip cannot arrive faster than the cap allows, and still arrives whole.
func TestBandwidthCap(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	srv.Bucket("clips")
	box := t.TempDir()
	const size = 300 << 10
	m := makeIncident(t, box, "20261123-083000-000001", size)
	st := srv.Storage("clips")
	st.MaxBandwidthKbps = 800 // 100 kB/s: the clip takes at least 3 s
	shipped := make(chan struct{})
	u := &Uploader{Outbox: outbox.Outbox{Dir: box}, Storage: st, Location: tokyo, Log: testLog(t),
		Shipped: func(outbox.Manifest, string) { close(shipped) }}
	started := time.Now()
	runUntil(t, u, func() bool {
		select {
		case <-shipped:
			return true
		default:
			return false
		}
	})
	took := time.Since(started)
	if least := time.Duration(float64(size) / 100e3 * float64(time.Second)); took < least*9/10 {
		t.Errorf("a %d-byte clip capped at 800 kbit/s arrived in %v, want at least %v", size, took.Round(time.Millisecond), least)
	}
	got := objectSHA256(t, srv.Root(), "clips", bucket.ObjectDir("", m, tokyo)+"/"+outbox.ClipFile, minio.GetObjectOptions{})
	if got != m.Clip.SHA256 {
		t.Errorf("the capped clip arrived with SHA-256 %s, want %s", got, m.Clip.SHA256)
	}
	t.Logf("%d bytes at 800 kbit/s: %v", size, took.Round(time.Millisecond))
}
