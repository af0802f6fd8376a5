//go:build linux

package uploader

import (
	"encoding/json"
	"errors"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"mamoru/bucket"
	"mamoru/bucket/s3test"
	"mamoru/outbox"
)

func readProgressFile(t *testing.T, dir string) progress {
	t.Helper()
	var p progress
	b, err := os.ReadFile(filepath.Join(dir, ProgressFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// An upload that never reached the server (the network down), or that the
// server refused, begins nothing: an object someone else writes under its
// key meanwhile is theirs, and the incident is held and kept, never
// counted as shipped and deleted.
func TestOnlyASentRequestBegins(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	st, rules := lockedBucket(t, srv, "clips")
	for _, name := range []string{"network down", "refused by the server"} {
		t.Run(name, func(t *testing.T) {
			box := t.TempDir()
			m := makeIncident(t, box, "20261123-233000-000001", 100<<10)
			dir := filepath.Join(box, m.Incident)
			bad := st
			if name == "network down" {
				bad.Endpoint = "127.0.0.1:1"
			} else {
				bad.SecretKey = "not-the-secret"
			}
			first := &Uploader{Storage: bad, Location: tokyo, Log: testLog(t), Client: mustClient(t, bad), SigningKey: testKey(t),
				Lock: bucket.LockFor(rules), ClockSynced: synced}
			if err := first.ship(t.Context(), outbox.Incident{Dir: dir, Manifest: m}, nil); err == nil {
				t.Fatal("the first attempt succeeded")
			}
			if p := readProgressFile(t, dir); len(p.Began) != 0 {
				t.Fatalf("upload.json began %q after a request that created nothing", p.Began)
			}
			// Someone holding a key writes a clip of the same size there.
			object := path.Join(bucket.ObjectDir("", m, tokyo), outbox.ClipFile)
			planted := strings.Repeat("x", int(m.Clip.Size))
			if _, err := srv.Root().PutObject(t.Context(), "clips", path.Join(st.Prefix, object), strings.NewReader(planted), m.Clip.Size, minio.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
			u := &Uploader{Storage: st, Location: tokyo, Log: testLog(t), Client: mustClient(t, st), SigningKey: testKey(t),
				Lock: bucket.LockFor(rules), ClockSynced: synced}
			err := u.ship(t.Context(), outbox.Incident{Dir: dir, Manifest: m}, nil)
			if _, theirs := errors.AsType[*WrittenFirst](err); !theirs {
				t.Errorf("the retry: %v; want someone else's object, held", err)
			}
			if _, err := os.Stat(filepath.Join(dir, outbox.ClipFile)); err != nil {
				t.Errorf("the clip is gone from the card: %v", err)
			}
		})
	}
}

// An object found there from this device's own earlier request, but not
// what it sent (overwritten since, where the key may read it back), is
// someone else's: held and kept, not shipped.
func TestEarlierUploadReplacedIsHeld(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	st, rules := lockedBucket(t, srv, "clips")
	box := t.TempDir()
	m := makeIncident(t, box, "20261123-233000-000001", 100<<10)
	dir := filepath.Join(box, m.Incident)
	sh := &shipper{client: mustClient(t, st), bucket: "clips", dir: dir, object: bucket.ObjectDir("", m, tokyo), manifest: m,
		partSize: 5 << 20, key: testKey(t), lock: bucket.LockFor(rules), now: time.Now()}
	if err := sh.ship(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The answers were lost to a power cut; then someone wrote over the clip.
	p := readProgressFile(t, dir)
	p.ClipDone, p.Checked = false, ""
	b, _ := json.Marshal(p)
	os.WriteFile(filepath.Join(dir, ProgressFile), b, 0o640)
	object := path.Join(bucket.ObjectDir("", m, tokyo), outbox.ClipFile)
	if _, err := srv.Root().PutObject(t.Context(), "clips", object, strings.NewReader("not the clip"), 12, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	u := &Uploader{Storage: st, Location: tokyo, Log: testLog(t), Client: mustClient(t, st), SigningKey: testKey(t),
		Lock: bucket.LockFor(rules), ClockSynced: synced}
	err := u.ship(t.Context(), outbox.Incident{Dir: dir, Manifest: m}, nil)
	if first, theirs := errors.AsType[*WrittenFirst](err); !theirs || first.Object != object {
		t.Errorf("the retry: %v; want %s held as someone else's", err, object)
	}
	if _, err := os.Stat(filepath.Join(dir, outbox.ClipFile)); err != nil {
		t.Errorf("the clip is gone from the card: %v", err)
	}
}
