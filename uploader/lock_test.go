package uploader

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/minio/minio-go/v7"

	"mamoru/bucket"
	"mamoru/bucket/s3test"
	"mamoru/config"
	"mamoru/outbox"
	"mamoru/signing"
)

func testKey(t testing.TB) signing.Key {
	t.Helper()
	p := filepath.Join(t.TempDir(), "signing.key")
	if _, err := signing.NewKey(p); err != nil {
		t.Fatal(err)
	}
	k, err := signing.ReadKey(p)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func synced() bool { return true }

// lockedBucket prepares bucket name on srv as 'storage init' does, with
// the default rules (governance, 30 days).
func lockedBucket(t testing.TB, srv *s3test.Server, name string) (config.Storage, config.Policy) {
	t.Helper()
	st := srv.Storage(name)
	rules := config.Policy{RetentionDays: 30, ObjectLock: config.LockGovernance}
	if steps, err := bucket.SetupBucket(t.Context(), srv.Root(), st, "shibuya", rules); err != nil {
		t.Fatalf("SetupBucket: %v (did %q)", err, steps)
	}
	return st, rules
}

// server is a real S3 server with a bucket "clips" prepared as 'storage
// init' prepares it, and its root client.
type server struct {
	name  string
	st    config.Storage
	rules config.Policy
	root  *minio.Client
}

// writeOnceServers are MinIO and versitygw, each with its bucket. versitygw
// has no lifecycle rules: storage init says so, and the rest is done.
func writeOnceServers(t *testing.T) []server {
	srv := s3test.Start(t, s3test.Options{})
	st, rules := lockedBucket(t, srv, "clips")
	gw := s3test.StartGateway(t)
	gst := gw.Storage("clips")
	if steps, err := bucket.SetupBucket(t.Context(), gw.Root(), gst, "shibuya", rules); err == nil || !strings.Contains(err.Error(), "this server cannot expire objects") ||
		!strings.Contains(strings.Join(steps, "\n"), "versioning is on") || !strings.Contains(strings.Join(steps, "\n"), "locked as it is uploaded") {
		t.Fatalf("SetupBucket on versitygw: %v (did %q); want versioning and lock on, and no lifecycle said so", err, steps)
	}
	return []server{{"minio", st, rules, srv.Root()}, {"versitygw", gst, rules, gw.Root()}}
}

// TestObjectLock prepares a bucket as 'storage init' does and ships into
// it: every clip (one PUT or multipart), manifest and signature carries
// its own lock until its retention ends, and nothing else is locked.
func TestObjectLock(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	st := srv.Storage("locked")
	root := srv.Root()
	rules := config.Policy{RetentionDays: 30, ObjectLock: config.LockGovernance}
	steps, err := bucket.SetupBucket(t.Context(), root, st, "shibuya", rules)
	if err != nil {
		t.Fatalf("SetupBucket: %v (did %q)", err, steps)
	}
	got := strings.Join(steps, "\n")
	for _, want := range []string{"object lock on", "versioning is on", "locked as it is uploaded (governance mode) for 30 days", "older versions of any written over, expire 30 days after upload"} {
		if !strings.Contains(got, want) {
			t.Errorf("steps do not say %q:\n%s", want, got)
		}
	}
	// Running it again is harmless.
	if _, err := bucket.SetupBucket(t.Context(), root, st, "shibuya", rules); err != nil {
		t.Errorf("SetupBucket again: %v", err)
	}
	if mode, _, _, err := root.GetBucketObjectLockConfig(t.Context(), "locked"); err != nil || mode != nil {
		t.Errorf("the bucket has a default retention %v (%v); each object must carry its own", mode, err)
	}

	box := t.TempDir()
	for i, size := range []int{100 << 10, 11 << 20} { // one PUT, and multipart
		m := makeIncident(t, box, "20261123-233000-00000"+string(rune('1'+i)), size)
		u := &Uploader{Storage: st, Location: tokyo, Log: testLog(t), Client: mustClient(t, st), SigningKey: testKey(t),
			Lock: bucket.LockFor(rules), ClockSynced: synced}
		before := time.Now()
		if err := u.ship(t.Context(), outbox.Incident{Dir: filepath.Join(box, m.Incident), Manifest: m}, nil); err != nil {
			t.Fatalf("ship %d bytes into a locked bucket: %v", size, err)
		}
		for _, name := range []string{outbox.ClipFile, outbox.ManifestFile, outbox.SignatureFile} {
			object := path.Join(bucket.ObjectDir("", m, tokyo), name)
			mode, until, err := root.GetObjectRetention(t.Context(), "locked", object, "")
			if err != nil || mode == nil || *mode != minio.Governance {
				t.Errorf("%s: retention %v, %v; want governance", object, mode, err)
				continue
			}
			if lo, hi := before.AddDate(0, 0, 30).Add(-time.Second), time.Now().AddDate(0, 0, 30); until.Before(lo) || until.After(hi) {
				t.Errorf("%s locked until %v, want 30 days after its upload (%v to %v)", object, until, lo, hi)
			}
			info, err := root.StatObject(t.Context(), "locked", object, minio.StatObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := root.RemoveObject(context.Background(), "locked", object, minio.RemoveObjectOptions{VersionID: info.VersionID}); err == nil {
				t.Errorf("root deleted the locked version of %s", object)
			}
		}
	}
	// What governance mode does not stop: a user with
	// s3:BypassGovernanceRetention (root) who asks to.
	object := path.Join(bucket.ObjectDir("", makeIncident(t, t.TempDir(), "20261123-233000-000001", 1), tokyo), outbox.ClipFile)
	info, err := root.StatObject(t.Context(), "locked", object, minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := root.RemoveObject(t.Context(), "locked", object, minio.RemoveObjectOptions{VersionID: info.VersionID, GovernanceBypass: true}); err != nil {
		t.Errorf("root with the governance bypass could not delete %s: %v", object, err)
	}
	// Other objects (health.json, probes) are not locked.
	if _, err := root.PutObject(t.Context(), "locked", "health.json", strings.NewReader("{}"), 2, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	info, err = root.StatObject(t.Context(), "locked", "health.json", minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := root.RemoveObject(t.Context(), "locked", "health.json", minio.RemoveObjectOptions{VersionID: info.VersionID}); err != nil {
		t.Errorf("health.json is locked: %v", err)
	}

	// A bucket made without lock cannot get it later: say so, and how to move.
	srv.Bucket("plain")
	st.Bucket = "plain"
	if _, err := bucket.SetupBucket(t.Context(), root, st, "shibuya", rules); err == nil || !strings.Contains(err.Error(), "created without object lock") ||
		!strings.Contains(err.Error(), "set storage.bucket to a new name") {
		t.Errorf("SetupBucket on a bucket without lock: %v", err)
	}
}

// A device key, under exactly the policy 'storage init' prints, cannot
// destroy what its device sent: its delete is refused, its overwrite (a
// stolen key that skips If-None-Match) leaves the original version, locked,
// and 'clips verify' reports the overwrite, saying when each was written.
func TestDeviceKeyCannotDestroyAClip(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	st, rules := lockedBucket(t, srv, "clips")
	srv.AddUser("counter-1", "counter-1-secret", bucket.DevicePolicy(st, "shibuya", "counter-1"))
	st.AccessKey, st.SecretKey = "counter-1", "counter-1-secret"

	box := t.TempDir()
	m := makeIncident(t, box, "20261123-233000-000001", 100<<10)
	u := &Uploader{Storage: st, Location: tokyo, Log: testLog(t), Client: mustClient(t, st), SigningKey: testKey(t),
		Lock: bucket.LockFor(rules), ClockSynced: synced}
	if err := u.ship(t.Context(), outbox.Incident{Dir: filepath.Join(box, m.Incident), Manifest: m}, nil); err != nil {
		t.Fatalf("ship with the device's key: %v", err)
	}
	dir := bucket.ObjectDir("", m, tokyo)
	object := path.Join(dir, outbox.ClipFile)
	device := mustClient(t, st).Client
	root := srv.Root()
	clips := bucket.Clips{Client: root, Bucket: "clips"}
	e, err := clips.Find(t.Context(), bucket.Ref{ID: m.Incident})
	if err != nil {
		t.Fatal(err)
	}
	if vs, err := clips.Versions(t.Context(), e); err != nil || len(bucket.CheckVersions(vs)) != 0 {
		t.Fatalf("versions of an untouched incident: %v, %v; want no tampering", vs, err)
	}

	// The device's own write-once upload is refused.
	opts := bucket.IfAbsent()
	_, err = device.PutObject(t.Context(), "clips", object, bytes.NewReader(nil), 0, opts)
	var exists *bucket.Exists
	if !errors.As(bucket.Classify(err), &exists) {
		t.Errorf("a write-once PUT over %s: %v; want *bucket.Exists", object, err)
	}
	// Its delete is refused.
	if err := device.RemoveObject(t.Context(), "clips", object, minio.RemoveObjectOptions{}); !bucket.IsAccessDenied(err) {
		t.Errorf("the device's key deleting %s: %v; want AccessDenied", object, err)
	}
	// A stolen key that omits If-None-Match writes over the clip (MinIO's
	// policies cannot demand the header): the original stays, as an older
	// version, locked, and its deletion is refused.
	if _, err := device.PutObject(t.Context(), "clips", object, bytes.NewReader(nil), 0, minio.PutObjectOptions{}); err != nil {
		t.Logf("the server refused the 0-byte overwrite: %v", err)
	}
	vs, err := clips.Versions(t.Context(), e)
	if err != nil {
		t.Fatal(err)
	}
	var first bucket.Version
	for _, v := range vs {
		if v.Object == object {
			first = v
			break
		}
	}
	if first.Size != m.Clip.Size {
		t.Fatalf("the clip's first version has %d bytes, want the original's %d (versions %+v)", first.Size, m.Clip.Size, vs)
	}
	if got := objectSHA256(t, root, "clips", object, minio.GetObjectOptions{VersionID: first.ID}); got != m.Clip.SHA256 {
		t.Errorf("the original version's SHA-256 is %s, want %s", got, m.Clip.SHA256)
	}
	if err := device.RemoveObject(t.Context(), "clips", object, minio.RemoveObjectOptions{VersionID: first.ID}); err == nil {
		t.Errorf("the device's key deleted the original version of %s", object)
	}
	if err := root.RemoveObject(t.Context(), "clips", object, minio.RemoveObjectOptions{VersionID: first.ID}); err == nil {
		t.Errorf("root, without the governance bypass, deleted the original version of %s", object)
	}
	tampered := bucket.CheckVersions(vs)
	if len(tampered) != 1 || tampered[0].Object != object || len(tampered[0].Versions) != 2 ||
		!strings.Contains(tampered[0].Error(), "TAMPERED: "+object+" was written 2 times") ||
		!strings.Contains(tampered[0].Error(), first.Written.UTC().Format(time.RFC3339)) {
		t.Errorf("CheckVersions = %v; want the clip reported written twice, with when", tampered)
	}
}

// A retry of an upload whose first attempt succeeded (its answer lost to
// a crash or a timeout) is refused by the server as already written; since
// upload.json shows this device began it, the incident counts as shipped,
// and nothing in the bucket was written twice.
func TestReplayedUploadCountsAsOwn(t *testing.T) {
	for _, srv := range writeOnceServers(t) {
		t.Run(srv.name, func(t *testing.T) { testReplay(t, srv.st, srv.rules, srv.root) })
	}
}

func testReplay(t *testing.T, st config.Storage, rules config.Policy, root *minio.Client) {
	box := t.TempDir()
	for i, size := range []int{100 << 10, 11 << 20} { // one PUT, and multipart
		m := makeIncident(t, box, "20261123-233000-00000"+string(rune('1'+i)), size)
		dir := filepath.Join(box, m.Incident)
		key := testKey(t)
		sh := &shipper{client: mustClient(t, st), bucket: "clips", dir: dir, object: bucket.ObjectDir("", m, tokyo), manifest: m,
			partSize: 5 << 20, key: key, lock: bucket.LockFor(rules), now: time.Now()}
		if err := sh.ship(t.Context()); err != nil {
			t.Fatal(err)
		}
		// The power was cut as the answers came back: upload.json says the
		// clip was begun, not done.
		var p progress
		b, _ := os.ReadFile(filepath.Join(dir, ProgressFile))
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatal(err)
		}
		if len(p.Began) != 3 {
			t.Errorf("upload.json began %q; want the clip, signature and manifest", p.Began)
		}
		p.ClipDone, p.Checked = false, ""
		b, _ = json.Marshal(p)
		os.WriteFile(filepath.Join(dir, ProgressFile), b, 0o640)

		u := &Uploader{Storage: st, Location: tokyo, Log: testLog(t), Client: mustClient(t, st), SigningKey: key,
			Lock: bucket.LockFor(rules), ClockSynced: synced}
		if err := u.ship(t.Context(), outbox.Incident{Dir: dir, Manifest: m}, nil); err != nil {
			t.Fatalf("%d bytes: the retry: %v; want it counted as this device's own upload", size, err)
		}
		e, err := bucket.Clips{Client: root, Bucket: "clips"}.Find(t.Context(), bucket.Ref{ID: m.Incident})
		if err != nil {
			t.Fatal(err)
		}
		vs, err := bucket.Clips{Client: root, Bucket: "clips"}.Versions(t.Context(), e)
		if err != nil {
			t.Fatal(err)
		}
		if tampered := bucket.CheckVersions(vs); len(tampered) != 0 || len(vs) != 3 {
			t.Errorf("%d bytes: the retry wrote again: %v (versions %+v)", size, tampered, vs)
		}
	}
}

// An incident whose object someone else wrote first (never begun by this
// device, says upload.json) is set aside, kept on the card, and status
// says who wrote what; the incidents after it still go.
func TestWrittenFirstIsHeldAndKept(t *testing.T) {
	for _, srv := range writeOnceServers(t) {
		t.Run(srv.name, func(t *testing.T) { testWrittenFirst(t, srv.st, srv.rules, srv.root) })
	}
}

func testWrittenFirst(t *testing.T, st config.Storage, rules config.Policy, root *minio.Client) {
	box := t.TempDir()
	taken := makeIncident(t, box, "20261123-233000-000001", 100<<10)
	next := makeIncident(t, box, "20261123-233100-000002", 100<<10)
	object := path.Join(bucket.ObjectDir("", taken, tokyo), outbox.ClipFile)
	if _, err := root.PutObject(t.Context(), "clips", object, strings.NewReader("not the clip"), 12, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	shipped := make(chan string, 2)
	u := &Uploader{Outbox: outbox.Outbox{Dir: box}, Storage: st, Location: tokyo, Log: testLog(t), ProblemRetry: time.Hour,
		Lock: bucket.LockFor(rules), ClockSynced: synced, Shipped: func(m outbox.Manifest, _ string) { shipped <- m.Incident }}
	runUntil(t, u, func() bool { return len(shipped) > 0 && len(u.Status().Held) > 0 })
	if got := <-shipped; got != next.Incident {
		t.Errorf("shipped %s, want %s", got, next.Incident)
	}
	s := u.Status()
	if len(s.Held) != 1 || s.Held[0].Incident != taken.Incident || !strings.Contains(s.Held[0].Error, "someone else wrote "+object+" first") {
		t.Errorf("held %+v; want %s, saying someone else wrote %s first", s.Held, taken.Incident, object)
	}
	if _, err := os.Stat(filepath.Join(box, taken.Incident, outbox.ClipFile)); err != nil {
		t.Errorf("the held incident's clip is gone: %v", err)
	}
	// Tried again, as a held incident is, it is still someone else's (the
	// device has begun it by now, but found it written at its first try).
	err := u.ship(t.Context(), outbox.Incident{Dir: filepath.Join(box, taken.Incident), Manifest: taken}, nil)
	var first *WrittenFirst
	if !errors.As(err, &first) || first.Object != object {
		t.Errorf("the held incident tried again: %v; want someone else's %s still", err, object)
	}
	if _, err := os.Stat(filepath.Join(box, taken.Incident, outbox.ClipFile)); err != nil {
		t.Errorf("the held incident's clip is gone after a retry: %v", err)
	}
	if got := objectSHA256(t, root, "clips", object, minio.GetObjectOptions{}); got == taken.Clip.SHA256 {
		t.Errorf("the device wrote over %s", object)
	}
}

// While NTP has not set the clock, nothing is locked with a date reckoned
// from it: the device's clock reads 1970, and each object is locked for
// its retention from the server's time, which the lock is held against.
func TestUnsyncedClockDatesLocksByTheServer(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	st, rules := lockedBucket(t, srv, "clips")
	box := t.TempDir()
	m := makeIncident(t, box, "20261123-233000-000001", 100<<10)
	u := &Uploader{Storage: st, Location: tokyo, Log: testLog(t), Client: mustClient(t, st), SigningKey: testKey(t),
		Clock: clockwork.NewFakeClockAt(time.Unix(0, 0)), Lock: bucket.LockFor(rules), ClockSynced: func() bool { return false }}
	before := time.Now()
	if err := u.ship(t.Context(), outbox.Incident{Dir: filepath.Join(box, m.Incident), Manifest: m}, nil); err != nil {
		t.Fatalf("ship with the clock unset: %v", err)
	}
	for _, name := range []string{outbox.ClipFile, outbox.ManifestFile, outbox.SignatureFile} {
		object := path.Join(bucket.ObjectDir("", m, tokyo), name)
		mode, until, err := srv.Root().GetObjectRetention(t.Context(), "clips", object, "")
		if err != nil || mode == nil || *mode != minio.Governance {
			t.Errorf("%s: retention %v, %v; want governance", object, mode, err)
			continue
		}
		if lo, hi := before.AddDate(0, 0, 30).Add(-2*time.Second), time.Now().AddDate(0, 0, 30).Add(2*time.Second); until.Before(lo) || until.After(hi) {
			t.Errorf("%s locked until %v, want 30 days after the server's now (%v to %v)", object, until, lo, hi)
		}
	}

	// A server that will not tell the time: the incident waits, kept.
	st.Endpoint = "127.0.0.1:1"
	u = &Uploader{Outbox: outbox.Outbox{Dir: box}, Storage: st, Location: tokyo, Log: testLog(t),
		Lock: bucket.LockFor(rules), ClockSynced: func() bool { return false }}
	m2 := makeIncident(t, box, "20261123-233000-000002", 100<<10)
	if err := u.ship(t.Context(), outbox.Incident{Dir: filepath.Join(box, m2.Incident), Manifest: m2}, nil); !errors.Is(err, ErrClockUnsynced) {
		t.Errorf("ship with neither clock: %v; want %v", err, ErrClockUnsynced)
	}
	if _, err := os.Stat(filepath.Join(box, m2.Incident, outbox.ClipFile)); err != nil {
		t.Errorf("the waiting incident's clip is gone: %v", err)
	}
}

func mustClient(t testing.TB, st config.Storage) *minio.Core {
	c, err := bucket.NewClient(st)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// versitygw keeps what it is sent as MinIO does, short of IAM policies:
// it refuses a write-once PUT and a multipart completion over an object,
// and an overwrite without the header (here by root, as versitygw's users
// have roles, not policies) leaves the original as a locked older version,
// which even root cannot delete and 'clips verify' reports.
func TestVersitygwKeepsTheOriginal(t *testing.T) {
	srv := writeOnceServers(t)[1]
	box := t.TempDir()
	m := makeIncident(t, box, "20261123-233000-000001", 100<<10)
	u := &Uploader{Storage: srv.st, Location: tokyo, Log: testLog(t), Client: mustClient(t, srv.st), SigningKey: testKey(t),
		Lock: bucket.LockFor(srv.rules), ClockSynced: synced}
	if err := u.ship(t.Context(), outbox.Incident{Dir: filepath.Join(box, m.Incident), Manifest: m}, nil); err != nil {
		t.Fatalf("ship: %v", err)
	}
	object := path.Join(bucket.ObjectDir("", m, tokyo), outbox.ClipFile)
	root := srv.root
	var exists *bucket.Exists
	if _, err := root.PutObject(t.Context(), "clips", object, bytes.NewReader(nil), 0, bucket.IfAbsent()); !errors.As(bucket.Classify(err), &exists) {
		t.Errorf("a write-once PUT over %s: %v; want *bucket.Exists", object, err)
	}
	core := &minio.Core{Client: root}
	id, err := core.NewMultipartUpload(t.Context(), "clips", object, minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	part, err := core.PutObjectPart(t.Context(), "clips", object, id, 1, bytes.NewReader([]byte("x")), 1, minio.PutObjectPartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = core.CompleteMultipartUpload(t.Context(), "clips", object, id, []minio.CompletePart{{PartNumber: 1, ETag: part.ETag}}, bucket.IfAbsent())
	if !errors.As(bucket.Classify(err), &exists) {
		t.Errorf("a write-once multipart completion over %s: %v; want *bucket.Exists", object, err)
	}
	if _, err := root.PutObject(t.Context(), "clips", object, bytes.NewReader(nil), 0, minio.PutObjectOptions{}); err != nil {
		t.Fatalf("root's overwrite without If-None-Match: %v", err)
	}
	clips := bucket.Clips{Client: root, Bucket: "clips"}
	e, err := clips.Find(t.Context(), bucket.Ref{ID: m.Incident})
	if err != nil {
		t.Fatal(err)
	}
	vs, err := clips.Versions(t.Context(), e)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bucket.CheckVersions(vs)
	if len(tampered) != 1 || tampered[0].Object != object || len(tampered[0].Versions) != 2 || tampered[0].Versions[0].Size != m.Clip.Size {
		t.Fatalf("CheckVersions = %v (versions %+v); want the clip written twice, the original first", tampered, vs)
	}
	first := tampered[0].Versions[0]
	if got := objectSHA256(t, root, "clips", object, minio.GetObjectOptions{VersionID: first.ID}); got != m.Clip.SHA256 {
		t.Errorf("the original version's SHA-256 is %s, want %s", got, m.Clip.SHA256)
	}
	if err := root.RemoveObject(t.Context(), "clips", object, minio.RemoveObjectOptions{VersionID: first.ID}); err == nil {
		t.Errorf("root deleted the locked original of %s", object)
	}
}

// A device told to lock, uploading into a bucket made without object lock
// (an old bucket, storage init not run again), is told what to fix rather
// than retrying for ever.
func TestLockIntoAPlainBucketIsAProblem(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	srv.Bucket("plain")
	st := srv.Storage("plain")
	box := t.TempDir()
	m := makeIncident(t, box, "20261123-233000-000001", 100<<10)
	u := &Uploader{Storage: st, Location: tokyo, Log: testLog(t), Client: mustClient(t, st),
		Lock: bucket.Lock{Mode: minio.Governance, Days: 30}, ClockSynced: synced}
	err := u.ship(t.Context(), outbox.Incident{Dir: filepath.Join(box, m.Incident), Manifest: m}, nil)
	var problem *bucket.Problem
	if !errors.As(err, &problem) || !strings.Contains(problem.Fix, "policy.object_lock") {
		t.Errorf("a locked upload into a plain bucket: %v; want a problem naming policy.object_lock", err)
	}
	if _, err := os.Stat(filepath.Join(box, m.Incident, outbox.ClipFile)); err != nil {
		t.Errorf("the clip is gone: %v", err)
	}
}
