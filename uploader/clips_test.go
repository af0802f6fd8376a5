package uploader

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"mamoru/uploader/s3test"
)

// A manager lists the incidents of every store and device, newest first,
// and narrows them by store, device, time and id.
func TestClipsList(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	srv.Bucket("clips")
	root := srv.Root()
	now := time.Now().In(tokyo)
	put := func(store, device, id string, pressed time.Time) {
		m := Manifest{Version: 1, Store: store, Device: device, Incident: id, State: StateComplete, PressTime: pressed}
		b, _ := json.Marshal(m)
		object := ObjectDir("mamoru", m, tokyo) + "/" + ManifestFile
		if _, err := root.PutObject(t.Context(), "clips", object, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Put in an order that is neither the newest-first one nor its reverse.
	put("shibuya", "counter-1", "b", now.Add(-2*time.Hour))
	put("shinjuku", "counter-1", "a", now.Add(-30*time.Minute))
	put("shibuya", "counter-2", "d", now.Add(-72*time.Hour))
	put("shibuya", "counter-1", "c", now.Add(-5*time.Minute))
	// A clip whose manifest has not arrived is not an incident yet.
	if _, err := root.PutObject(t.Context(), "clips", "mamoru/shibuya/counter-1/2026/01/01/e/clip.mp4", bytes.NewReader([]byte("x")), 1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}

	c := Clips{Client: root, Bucket: "clips", Prefix: "mamoru"}
	for _, tc := range []struct {
		name string
		f    Filter
		want []string
	}{
		{"all", Filter{}, []string{"c", "a", "b", "d"}},
		{"one store", Filter{Store: "shibuya"}, []string{"c", "b", "d"}},
		{"one device of a store", Filter{Store: "shibuya", Device: "counter-1"}, []string{"c", "b"}},
		{"a device name in every store", Filter{Device: "counter-1"}, []string{"c", "a", "b"}},
		{"the last 24 hours", Filter{Since: now.Add(-24 * time.Hour)}, []string{"c", "a", "b"}},
		{"the last hour of one store", Filter{Store: "shinjuku", Since: now.Add(-time.Hour)}, []string{"a"}},
		{"one id", Filter{ID: "b"}, []string{"b"}},
		{"no such store", Filter{Store: "ikebukuro"}, nil},
	} {
		entries, err := c.List(t.Context(), tc.f)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var got []string
		for _, e := range entries {
			got = append(got, e.Manifest.Incident)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: listed %v, want %v", tc.name, got, tc.want)
		}
	}
}

// max_bandwidth_kbps holds an upload to the shop's share of its uplink: a
// clip cannot arrive faster than the cap allows, and still arrives whole.
func TestBandwidthCap(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	srv.Bucket("clips")
	outbox := t.TempDir()
	const size = 300 << 10
	m := makeIncident(t, outbox, "20261123-083000-000001", size)
	st := srv.Storage("clips")
	st.MaxBandwidthKbps = 800 // 100 kB/s: the clip takes at least 3 s
	shipped := make(chan struct{})
	u := &Uploader{Outbox: Outbox{Dir: outbox}, Storage: st, Location: tokyo, Log: testLog(t),
		Shipped: func(Manifest, string) { close(shipped) }}
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
	got := objectSHA256(t, srv.Root(), "clips", ObjectDir("", m, tokyo)+"/"+ClipFile, minio.GetObjectOptions{})
	if got != m.Clip.SHA256 {
		t.Errorf("the capped clip arrived with SHA-256 %s, want %s", got, m.Clip.SHA256)
	}
	t.Logf("%d bytes at 800 kbit/s: %v", size, took.Round(time.Millisecond))
}
