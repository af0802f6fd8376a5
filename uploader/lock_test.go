package uploader

import (
	"context"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"mamoru/bucket"
	"mamoru/bucket/s3test"
	"mamoru/config"
	"mamoru/outbox"
)

// TestObjectLock prepares a bucket with object lock, ships a clip into it,
// and checks that not even the root user can delete the clip.
func TestObjectLock(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	st := srv.Storage("locked")
	root := srv.Root()
	steps, err := bucket.SetupBucket(t.Context(), root, st, config.Policy{RetentionDays: 30, ObjectLockDays: 7})
	if err != nil {
		t.Fatalf("SetupBucket: %v (did %q)", err, steps)
	}
	if got := strings.Join(steps, "\n"); !strings.Contains(got, "object lock on") || !strings.Contains(got, "locked (compliance mode) for 7 days") {
		t.Errorf("steps: %s", got)
	}
	// Running it again is harmless.
	if _, err := bucket.SetupBucket(t.Context(), root, st, config.Policy{RetentionDays: 30, ObjectLockDays: 7}); err != nil {
		t.Errorf("SetupBucket again: %v", err)
	}

	box := t.TempDir()
	for i, size := range []int{100 << 10, 11 << 20} { // one PUT, and multipart
		m := makeIncident(t, box, "20261123-233000-00000"+string(rune('1'+i)), size)
		u := &Uploader{Storage: st, Location: tokyo, Log: testLog(t), Client: mustClient(t, st)}
		if err := u.ship(t.Context(), outbox.Incident{Dir: filepath.Join(box, m.Incident), Manifest: m}, nil); err != nil {
			t.Fatalf("ship %d bytes into a locked bucket: %v", size, err)
		}
		object := path.Join(bucket.ObjectDir("", m, tokyo), outbox.ClipFile)
		info, err := root.StatObject(t.Context(), "locked", object, minio.StatObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if info.VersionID == "" {
			t.Fatalf("%s has no version", object)
		}
		err = root.RemoveObject(context.Background(), "locked", object, minio.RemoveObjectOptions{VersionID: info.VersionID})
		if err == nil {
			t.Errorf("root deleted the locked clip %s", object)
		}
	}

	// A bucket made without lock cannot get it later: say so.
	srv.Bucket("plain")
	st.Bucket = "plain"
	if _, err := bucket.SetupBucket(t.Context(), root, st, config.Policy{RetentionDays: 30, ObjectLockDays: 7}); err == nil || !strings.Contains(err.Error(), "created without object lock") {
		t.Errorf("SetupBucket on a bucket without lock: %v", err)
	}
}

func mustClient(t testing.TB, st config.Storage) *minio.Core {
	c, err := bucket.NewClient(st)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
