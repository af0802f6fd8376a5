package bucket

import (
	"errors"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"mamoru/bucket/s3test"
	"mamoru/config"
	"mamoru/outbox"
)

// lockedAndPlain sets up two buckets as storage init does on srv: "locked",
// with object lock (governance, 30 days), and "plain", without.
func lockedAndPlain(t *testing.T, srv *s3test.Server) {
	t.Helper()
	for _, b := range []struct{ name, lock string }{{"locked", config.LockGovernance}, {"plain", config.LockNone}} {
		st := srv.Storage(b.name)
		st.Prefix = "mamoru"
		if steps, err := SetupBucket(t.Context(), srv.Root(), st, "shop-1", config.Policy{RetentionDays: 30, ObjectLock: b.lock}); err != nil {
			t.Fatalf("SetupBucket %s: %v (did %q)", b.name, err, steps)
		}
	}
}

// governance locks each object for 30 days in governance mode, as a
// device's upload does.
func governance(string) minio.PutObjectOptions {
	var o minio.PutObjectOptions
	Lock{Mode: minio.Governance, Days: 30}.Retain(&o, time.Now())
	return o
}

// entryAt is the incident putIncident put at dir.
func entryAt(t *testing.T, c Clips, dir string) Entry {
	t.Helper()
	e, err := c.Find(t.Context(), ref(dir))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// A legal hold goes on the current version of the clip, the manifest and
// the signature, keeps even the root user from deleting them, and comes
// off again; a bucket without object lock says so, and how to get one.
func TestLegalHold(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	lockedAndPlain(t, srv)
	root := srv.Root()
	c := Clips{Client: root, Bucket: "locked", Prefix: "mamoru"}
	pressed := time.Date(2026, 11, 23, 15, 45, 2, 0, tokyo)
	signed := entryAt(t, c, putIncident(t, root, incidentSpec{store: "shop-1", device: "counter-1", id: "20261123-154502-000001", pressed: pressed,
		signer: seeded(1), bucket: "locked", opts: governance}))
	unsigned := entryAt(t, c, putIncident(t, root, incidentSpec{store: "shop-1", device: "counter-1", id: "20261123-154502-000002", pressed: pressed,
		bucket: "locked", opts: governance}))

	holds := func(e Entry) []string {
		t.Helper()
		var got []string
		for _, name := range []string{outbox.ClipFile, outbox.ManifestFile, outbox.SignatureFile} {
			st, err := root.GetObjectLegalHold(t.Context(), "locked", path.Join(e.Dir, name), minio.GetObjectLegalHoldOptions{})
			switch {
			case err != nil:
				got = append(got, minio.ToErrorResponse(err).Code)
			default:
				got = append(got, string(*st))
			}
		}
		return got
	}
	for _, tc := range []struct {
		name string
		e    Entry
		on   bool
		want string // each object's hold, or the server's error code
	}{
		{"hold a signed incident", signed, true, "ON ON ON"},
		{"release it", signed, false, "OFF OFF OFF"},
		{"hold an unsigned incident", unsigned, true, "ON ON NoSuchKey"},
	} {
		if err := c.SetHold(t.Context(), tc.e, tc.on); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := strings.Join(holds(tc.e), " "); got != tc.want {
			t.Errorf("%s: holds %s, want %s", tc.name, got, tc.want)
		}
		if held, err := c.Held(t.Context(), tc.e); err != nil || held != tc.on {
			t.Errorf("%s: Held = %v, %v; want %v", tc.name, held, err, tc.on)
		}
	}
	info, err := root.StatObject(t.Context(), "locked", unsigned.Clip(), minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := root.RemoveObject(t.Context(), "locked", unsigned.Clip(), minio.RemoveObjectOptions{VersionID: info.VersionID, GovernanceBypass: true}); err == nil {
		t.Errorf("root deleted a held clip, bypassing governance")
	}

	// A bucket without object lock.
	plain := Clips{Client: root, Bucket: "plain", Prefix: "mamoru"}
	e := entryAt(t, plain, putIncident(t, root, incidentSpec{store: "shop-1", device: "counter-1", id: "20261123-154502-000003", pressed: pressed, bucket: "plain"}))
	_, heldErr := plain.Held(t.Context(), e)
	for name, err := range map[string]error{"SetHold": plain.SetHold(t.Context(), e, true), "Held": heldErr} {
		var p *Problem
		if !errors.Is(err, ErrNoObjectLock) || !errors.As(err, &p) || !strings.Contains(err.Error(), "bucket plain: the bucket has no object lock") ||
			!strings.Contains(p.Fix, "run 'mamoru storage init' again, which creates it with object lock") || !strings.Contains(p.Fix, `"mamoru/"`) {
			t.Errorf("%s in a bucket without object lock: %v; want a *Problem wrapping ErrNoObjectLock saying how to get one", name, err)
		}
	}
}

// Delete erases every version of an incident's objects, bypassing a
// governance lock, and lists no more; it deletes nothing while any version
// is held or locked in compliance mode, and names it.
func TestDelete(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	lockedAndPlain(t, srv)
	root := srv.Root()
	pressed := time.Date(2026, 11, 23, 15, 45, 2, 0, tokyo)
	complianceUntil := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	for i, tc := range []struct {
		name   string
		bucket string
		opts   func(name string) minio.PutObjectOptions
		before func(c Clips, e Entry) // what is done to the incident first
		check  func(err error) bool   // nil: deleted
	}{
		{name: "governance-locked, its clip written over", bucket: "locked", opts: governance, before: func(c Clips, e Entry) {
			if _, err := root.PutObject(t.Context(), "locked", e.Clip(), strings.NewReader("over"), 4, governance("")); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "no object lock", bucket: "plain"},
		{name: "held", bucket: "locked", opts: governance, before: func(c Clips, e Entry) {
			if err := c.SetHold(t.Context(), e, true); err != nil {
				t.Fatal(err)
			}
		}, check: func(err error) bool {
			return errors.Is(err, ErrHeld) && strings.Contains(err.Error(), "clip.mp4") && strings.Contains(err.Error(), "nothing deleted")
		}},
		{name: "manifest compliance-locked", bucket: "locked", opts: func(name string) minio.PutObjectOptions {
			o := governance(name)
			if name == outbox.ManifestFile {
				o.Mode, o.RetainUntilDate = minio.Compliance, complianceUntil
			}
			return o
		}, check: func(err error) bool {
			var l *LockedError
			return errors.As(err, &l) && path.Base(l.Object) == outbox.ManifestFile && l.Until.Equal(complianceUntil) &&
				strings.Contains(err.Error(), complianceUntil.Format(time.RFC3339)) && strings.Contains(err.Error(), "nothing deleted")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Clips{Client: root, Bucket: tc.bucket, Prefix: "mamoru"}
			id := idFor(i)
			e := entryAt(t, c, putIncident(t, root, incidentSpec{store: "shop-1", device: "counter-1", id: id, pressed: pressed,
				signer: seeded(1), bucket: tc.bucket, opts: tc.opts}))
			if tc.before != nil {
				tc.before(c, e)
			}
			before, err := c.Versions(t.Context(), e)
			if err != nil {
				t.Fatal(err)
			}
			err = c.Delete(t.Context(), e)
			after, verr := c.Versions(t.Context(), e)
			if verr != nil {
				t.Fatal(verr)
			}
			listed, lerr := c.List(t.Context(), Filter{ID: id})
			if lerr != nil {
				t.Fatal(lerr)
			}
			if tc.check == nil {
				if err != nil || len(after) != 0 || len(listed) != 0 {
					t.Errorf("Delete = %v; %d versions left (of %d), listed %d; want all gone", err, len(after), len(before), len(listed))
				}
				return
			}
			if !tc.check(err) {
				t.Errorf("Delete = %v; want it refused", err)
			}
			if len(after) != len(before) || len(listed) != 1 {
				t.Errorf("a refused Delete left %d versions of %d, listed %d; want nothing deleted", len(after), len(before), len(listed))
			}
		})
	}
}
