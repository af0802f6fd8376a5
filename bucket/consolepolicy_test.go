package bucket

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/lifecycle"

	"mamoru/bucket/s3test"
	"mamoru/config"
)

// The console's key, under exactly the policy storage init prints, does
// what the console does (list, read, hold, release, record custody, delete
// a governance-locked incident) and nothing more: it cannot write a clip,
// delete a custody record or anything but an incident's objects, list
// outside the prefix, or change the bucket's settings.
func TestConsolePolicy(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	st := srv.Storage("clips")
	st.Prefix = "mamoru"
	if steps, err := SetupBucket(t.Context(), srv.Root(), st, "shop-1", config.Policy{RetentionDays: 30, ObjectLock: config.LockGovernance}); err != nil {
		t.Fatalf("SetupBucket: %v (did %q)", err, steps)
	}
	srv.AddUser("console", "console-secret", ConsolePolicy(st))
	console, err := minio.New(srv.Endpoint, &minio.Options{Creds: credentials.NewStaticV4("console", "console-secret", "")})
	if err != nil {
		t.Fatal(err)
	}
	root := srv.Root()
	pressed := time.Date(2026, 11, 23, 15, 45, 2, 0, tokyo)
	kept := putIncident(t, root, incidentSpec{store: "shop-1", device: "counter-1", id: idFor(1), pressed: pressed, signer: seeded(1), opts: governance})
	erased := putIncident(t, root, incidentSpec{store: "shop-1", device: "counter-1", id: idFor(2), pressed: pressed, signer: seeded(1), opts: governance})
	const health, audit = "mamoru/shop-1/counter-1/health.json", "mamoru/shop-1/counter-1/audit/1/1-2-ab.jsonl"
	for _, key := range []string{health, audit} {
		putObject(t, root, key, []byte("{}"))
	}

	c := Clips{Client: console, Bucket: "clips", Prefix: "mamoru"}
	es, err := c.List(t.Context(), Filter{})
	if err != nil || len(es) != 2 {
		t.Fatalf("the console lists %d incidents, %v; want 2", len(es), err)
	}
	e := entryAt(t, c, kept)
	if _, err := c.Versions(t.Context(), e); err != nil {
		t.Errorf("the console lists an incident's versions: %v", err)
	}
	o, err := console.GetObject(t.Context(), "clips", e.Clip(), minio.GetObjectOptions{})
	if err == nil {
		_, err = io.ReadAll(o)
	}
	if err != nil {
		t.Errorf("the console reads a clip: %v", err)
	}
	for _, on := range []bool{true, false} {
		if err := c.SetHold(t.Context(), e, on); err != nil {
			t.Errorf("the console sets the legal hold %v: %v", on, err)
		}
		if held, err := c.Held(t.Context(), e); err != nil || held != on {
			t.Errorf("the console reads the legal hold: %v, %v; want %v", held, err, on)
		}
	}
	record := "mamoru/.custody/shop-1/counter-1/" + idFor(1) + "/2026-11-23T07:00:00Z-view-1.json"
	opts := IfAbsent()
	if _, err := console.PutObject(t.Context(), "clips", record, strings.NewReader("{}"), 2, opts); err != nil {
		t.Errorf("the console writes a custody record: %v", err)
	}
	if err := c.Delete(t.Context(), entryAt(t, c, erased)); err != nil {
		t.Errorf("the console deletes a governance-locked incident: %v", err)
	}
	if es, err := c.List(t.Context(), Filter{}); err != nil || len(es) != 1 {
		t.Errorf("after the deletion the console lists %d incidents, %v; want 1", len(es), err)
	}

	denied := func(what string, err error) {
		t.Helper()
		if !IsAccessDenied(err) {
			t.Errorf("the console %s: %v; want AccessDenied", what, err)
		}
	}
	put := func(key string) error {
		_, err := console.PutObject(t.Context(), "clips", key, bytes.NewReader([]byte("x")), 1, minio.PutObjectOptions{})
		return err
	}
	denied("writes over a clip", put(e.Clip()))
	denied("writes a new clip", put("mamoru/shop-1/counter-1/2026/11/23/"+idFor(3)+"/clip.mp4"))
	denied("writes outside .custody", put("mamoru/x.json"))
	denied("deletes a custody record", console.RemoveObject(t.Context(), "clips", record, minio.RemoveObjectOptions{}))
	denied("deletes a health report", console.RemoveObject(t.Context(), "clips", health, minio.RemoveObjectOptions{}))
	denied("deletes an audit segment", console.RemoveObject(t.Context(), "clips", audit, minio.RemoveObjectOptions{}))
	for o := range console.ListObjects(t.Context(), "clips", minio.ListObjectsOptions{Prefix: "elsewhere/", Recursive: true}) {
		denied("lists outside the prefix", o.Err)
		break
	}
	denied("sets the lifecycle", console.SetBucketLifecycle(t.Context(), "clips", lifecycle.NewConfiguration()))
	denied("suspends versioning", console.SuspendVersioning(t.Context(), "clips"))
	denied("changes the object lock", console.SetObjectLockConfig(t.Context(), "clips", nil, nil, nil))
	denied("sets a bucket policy", console.SetBucketPolicy(t.Context(), "clips", ""))
	denied("makes a bucket", console.MakeBucket(t.Context(), "other", minio.MakeBucketOptions{}))

	// On AWS, a custody record must be written with If-None-Match.
	aws := ConsolePolicy(config.Storage{Endpoint: "s3.ap-northeast-1.amazonaws.com", Bucket: "clips", Prefix: "mamoru"})
	if !strings.Contains(aws, `"s3:if-none-match": "false"`) || strings.Contains(ConsolePolicy(st), "if-none-match") {
		t.Errorf("the console's policy demands If-None-Match on AWS only; AWS:\n%s", aws)
	}
}
