package uploader

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"io"
	"os"
	"path"
	"path/filepath"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/minio/minio-go/v7"

	"mamoru/audit"
	"mamoru/bucket"
	"mamoru/bucket/s3test"
	"mamoru/outbox"
	"mamoru/signing"
)

// The audit log reaches the bucket in signed segments: what was there at
// start, what is new as soon as an incident is shipped (its "uploaded"
// entry included), then every 10 minutes on the clock (not before); a
// segment cut short by a power cut is sent again whole under its own
// name; and clips ls passes them by.
func TestAuditSegmentsShipped(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	srv.Bucket("clips")
	st := srv.Storage("clips")
	st.Prefix = "mamoru"
	box, state := t.TempDir(), t.TempDir()
	makeIncident(t, box, "20261123-233000-000001", 1<<10)
	logPath := filepath.Join(state, "audit.log")
	wall := clockwork.NewFakeClockAt(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	log, err := audit.Open(logPath, wall)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	record := func(n int) {
		for range n {
			if err := log.Record("press", "source", "button"); err != nil {
				t.Fatal(err)
			}
		}
	}
	record(3)
	pub, key := newKey(t)
	fc := clockwork.NewFakeClock()
	u := &Uploader{Outbox: outbox.Outbox{Dir: box}, Storage: st, Location: tokyo, Log: testLog(t), Clock: fc,
		SigningKey: key, Store: "shibuya", Device: "counter-1", AuditLog: logPath,
		// As the recorder does: the upload is recorded in the log.
		Shipped: func(m outbox.Manifest, _ string) { log.Record("uploaded", "id", m.Incident) }}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitForClock(t, fc)

	entries, _ := audit.ReadAll(logPath)
	chain := audit.Chain(entries[0])
	entryAt := func(seq int) audit.Entry { all, _ := audit.ReadAll(logPath); return all[seq] }
	root := srv.Root()
	dir := path.Join("mamoru", bucket.AuditDir("shibuya", "counter-1"))
	segment := func(first, last uint64) []byte {
		t.Helper()
		all, _ := audit.ReadAll(logPath)
		name := audit.SegmentOf(chain, first, all[last]).Name()
		b := get(t, root, path.Join(dir, name))
		sig, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(get(t, root, path.Join(dir, name)+".sig"))))
		if err != nil || !ed25519.Verify(pub, audit.SegmentMessage(path.Join(bucket.AuditDir("shibuya", "counter-1"), name), b), sig) {
			t.Errorf("%s: signature does not verify (%v)", name, err)
		}
		return b
	}
	lines := func(from, to int) []byte {
		b, _ := os.ReadFile(logPath)
		ls := bytes.SplitAfter(b, []byte("\n"))
		return bytes.Join(ls[from:to+1], nil)
	}
	if got := segment(0, 2); !bytes.Equal(got, lines(0, 2)) {
		t.Errorf("segment 0-2 = %q, want the log's first 3 lines", got)
	}
	if got := segment(3, 3); !bytes.Equal(got, lines(3, 3)) || !bytes.Contains(got, []byte(`"event":"uploaded"`)) {
		t.Errorf("segment 3 = %q, want the incident's upload, sent with it", got)
	}
	if got := u.Status().AuditSegment; got != audit.SegmentOf(chain, 3, entryAt(3)).Name() {
		t.Errorf("status audit_segment %q", got)
	}

	// New entries wait for the 10 minutes, then go.
	record(2)
	for range 19 {
		fc.Advance(30 * time.Second)
		waitForClock(t, fc)
	}
	if got := u.Status().AuditSegment; got != audit.SegmentOf(chain, 3, entryAt(3)).Name() {
		t.Fatalf("after 9.5 minutes a segment %q was sent", got)
	}
	fc.Advance(30 * time.Second)
	waitForClock(t, fc)
	if got := segment(4, 5); !bytes.Equal(got, lines(4, 5)) {
		t.Errorf("segment 4-5 = %q, want the log's lines 4-5", got)
	}

	// A power cut after 4-5 was sent, before it was recorded as done: it
	// goes again, the same, and then what is new.
	p, err := ReadAuditProgress(logPath)
	if err != nil || p.Seq != 5 || p.Chain != chain || p.Pending != nil {
		t.Fatalf("progress %+v, %v; want entry 5 of %s done", p, err, chain)
	}
	p.Pending = &PendingSegment{Chain: chain, First: 4, Last: 5, Hash: p.Hash}
	all, _ := audit.ReadAll(logPath)
	p.Head = audit.Head{Seq: 3, Hash: all[3].Hash}
	u.saveAuditProgress(p)
	record(1)
	fc.Advance(10 * time.Minute)
	waitForClock(t, fc)
	if got := segment(6, 6); !bytes.Equal(got, lines(6, 6)) {
		t.Errorf("segment 6 = %q, want the log's line 6", got)
	}
	if p, _ := ReadAuditProgress(logPath); p.Seq != 6 {
		t.Errorf("progress %+v, want entry 6 done", p)
	}

	// clips ls sees the incident only.
	es, err := bucket.Clips{Client: root, Bucket: "clips", Prefix: "mamoru"}.List(t.Context(), bucket.Filter{})
	if err != nil || len(es) != 1 {
		t.Errorf("clips ls: %d entries, %v; want the one incident", len(es), err)
	}
}

func get(t *testing.T, c *minio.Client, object string) []byte {
	t.Helper()
	o, err := c.GetObject(t.Context(), "clips", object, minio.GetObjectOptions{})
	if err != nil {
		t.Fatalf("get %s: %v", object, err)
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	if err != nil {
		t.Fatalf("get %s: %v", object, err)
	}
	return b
}

// newKey makes a signing key and returns it with its public half.
func newKey(t *testing.T) (ed25519.PublicKey, signing.Key) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "signing.key")
	pubText, err := signing.NewKey(p)
	if err != nil {
		t.Fatal(err)
	}
	key, err := signing.ReadKey(p)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := signing.ParsePublicKey(pubText)
	if err != nil {
		t.Fatal(err)
	}
	return pub, key
}

// No segment goes beyond the last entry synced: a line not yet on the
// card could be lost to a power cut and its number reused.
func TestSegmentStopsAtTheSyncedEntry(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "audit.log")
	log, err := audit.Open(logPath, clockwork.NewFakeClock())
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	for range 5 {
		log.Record("press")
	}
	es, _ := audit.ReadAll(logPath)
	for _, tc := range []struct {
		name   string
		synced func() *audit.Head
		last   uint64
		ok     bool
	}{
		{"all synced", func() *audit.Head { return &audit.Head{Seq: 4, Hash: es[4].Hash} }, 4, true},
		{"synced to entry 2", func() *audit.Head { return &audit.Head{Seq: 2, Hash: es[2].Hash} }, 2, true},
		{"nothing known synced", func() *audit.Head { return nil }, 0, false},
	} {
		s, ok, _, err := nextSegment(logPath, AuditProgress{}, tc.synced)
		if err != nil || ok != tc.ok || ok && (s.first.Seq != 0 || s.last.Seq != tc.last) {
			t.Errorf("%s: segment %d-%d, %v, %v; want 0-%d, %v", tc.name, s.first.Seq, s.last.Seq, ok, err, tc.last, tc.ok)
		}
	}
}

// Audit segments are evidence as the clips are: written once and locked
// by their own upload, dated by the server's clock while the device's is
// unset, and a segment sent again after a power cut meets the first
// (412) and counts as sent, leaving one version.
func TestAuditSegmentsWriteOnceAndLocked(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	st, rules := lockedBucket(t, srv, "clips")
	root := srv.Root()
	logPath := filepath.Join(t.TempDir(), "audit.log")
	log, err := audit.Open(logPath, clockwork.NewFakeClock())
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	for range 3 {
		log.Record("press", "source", "button")
	}
	// The device's clock reads 1970: the locks are dated by the server's.
	u := &Uploader{Storage: st, Location: tokyo, Log: testLog(t), Client: mustClient(t, st), SigningKey: testKey(t),
		Store: "shibuya", Device: "counter-1", AuditLog: logPath, Clock: clockwork.NewFakeClockAt(time.Unix(0, 0)),
		Lock: bucket.LockFor(rules), ClockSynced: func() bool { return false }}
	before := time.Now()
	sent, err := u.shipAudit(t.Context(), nil)
	if err != nil || sent == "" {
		t.Fatalf("shipAudit: %q, %v", sent, err)
	}
	dir := bucket.AuditDir("shibuya", "counter-1")
	for _, name := range []string{sent, sent + ".sig"} {
		object := path.Join(dir, name)
		mode, until, err := root.GetObjectRetention(t.Context(), "clips", object, "")
		if err != nil || mode == nil || *mode != minio.Governance {
			t.Errorf("%s: retention %v, %v; want governance, as the clips", object, mode, err)
		} else if lo := before.AddDate(0, 0, rules.RetentionDays).Add(-time.Second); until.Before(lo) {
			t.Errorf("%s locked until %v, want %d days after its upload", object, until, rules.RetentionDays)
		}
	}

	// A power cut after the segment was sent, before it was recorded.
	p, err := ReadAuditProgress(logPath)
	if err != nil {
		t.Fatal(err)
	}
	p.Pending = &PendingSegment{Chain: p.Chain, First: 0, Last: p.Seq, Hash: p.Hash}
	p.Head = audit.Head{}
	if err := u.saveAuditProgress(p); err != nil {
		t.Fatal(err)
	}
	if again, err := u.shipAudit(t.Context(), nil); err != nil || again != sent {
		t.Fatalf("the segment sent again: %q, %v; want %q, taken as sent", again, err, sent)
	}
	n := 0
	for o := range root.ListObjects(t.Context(), "clips", minio.ListObjectsOptions{Prefix: path.Join(dir, sent), WithVersions: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		n++
	}
	if n != 2 {
		t.Errorf("%d versions of the segment and its signature, want 2: the second send must write nothing", n)
	}
}
