package bucket

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"mamoru/bucket/s3test"
	"mamoru/outbox"
)

// A manager lists the incidents of every store and device, newest first,
// and narrows them by store, device, time and id.
func TestClipsList(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	srv.Bucket("clips")
	root := srv.Root()
	now := time.Now().In(tokyo)
	put := func(store, device, id string, pressed time.Time) {
		m := outbox.Manifest{Version: 1, Store: store, Device: device, Incident: id, State: outbox.StateComplete, PressTime: pressed}
		b, _ := json.Marshal(m)
		object := ObjectDir("mamoru", m, tokyo) + "/" + outbox.ManifestFile
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

var tokyo, _ = time.LoadLocation("Asia/Tokyo")
