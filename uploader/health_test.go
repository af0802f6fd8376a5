package uploader

import (
	"errors"
	"io"
	"testing"

	"github.com/minio/minio-go/v7"

	"mamoru/bucket"
	"mamoru/bucket/s3test"
	"mamoru/health"
)

// The device writes its health report over and over with its own
// write-only keys, in a bucket whose clips are locked: each write is a new
// version carrying the tag the lifecycle deletes older versions by, none
// is locked, and another device's keys are refused as a problem to fix.
func TestHealthObjectWritesOver(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	root := srv.Root()
	if err := root.MakeBucket(t.Context(), "clips", minio.MakeBucketOptions{ObjectLocking: true}); err != nil {
		t.Fatal(err)
	}
	st := srv.Storage("clips")
	st.Prefix = "m"
	srv.AddUser("counter-1", "counter-1-secret", bucket.DevicePolicy(st, "shibuya", "counter-1"))
	st.AccessKey, st.SecretKey = "counter-1", "counter-1-secret"
	c, err := bucket.NewClient(st)
	if err != nil {
		t.Fatal(err)
	}
	h := HealthObject{Client: c, Bucket: "clips"}
	key := health.Key("m", "shibuya", "counter-1")
	for _, body := range []string{`{"first":1}`, `{"second":2}`} {
		if err := h.Put(t.Context(), key, []byte(body)); err != nil {
			t.Fatalf("write %s: %v", body, err)
		}
	}
	obj, err := root.GetObject(t.Context(), "clips", key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(obj)
	if err != nil || string(got) != `{"second":2}` {
		t.Errorf("health.json holds %q (%v), want the second write", got, err)
	}
	var versions int
	for v := range root.ListObjects(t.Context(), "clips", minio.ListObjectsOptions{Prefix: key, WithVersions: true}) {
		if v.Err != nil {
			t.Fatal(v.Err)
		}
		versions++
		tags, err := root.GetObjectTagging(t.Context(), "clips", key, minio.GetObjectTaggingOptions{VersionID: v.VersionID})
		if err != nil || tags.ToMap()[bucket.HealthTag.Key] != bucket.HealthTag.Value {
			t.Errorf("version %s has tags %v (%v), want %s=%s", v.VersionID, tags, err, bucket.HealthTag.Key, bucket.HealthTag.Value)
		}
		if _, _, err := root.GetObjectRetention(t.Context(), "clips", key, v.VersionID); err == nil {
			t.Errorf("version %s of health.json is locked", v.VersionID)
		}
	}
	if versions != 2 {
		t.Errorf("%d versions of health.json, want 2", versions)
	}

	elsewhere := HealthObject{Client: c, Bucket: "clips"}
	var problem *bucket.Problem
	if err := elsewhere.Put(t.Context(), health.Key("m", "shibuya", "counter-2"), []byte("{}")); !errors.As(err, &problem) {
		t.Errorf("writing another device's report: %v, want a problem to fix", err)
	}
}
