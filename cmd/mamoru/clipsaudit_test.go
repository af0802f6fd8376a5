package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/minio/minio-go/v7"

	"mamoru/audit"
	"mamoru/bucket"
	"mamoru/bucket/s3test"
	"mamoru/outbox"
	"mamoru/signing"
	"mamoru/uploader"
)

// auditRig is one device's audit log, outbox and uploader, against a
// real MinIO.
type auditRig struct {
	t      *testing.T
	srv    *s3test.Server
	device string
	state  string
	log    *audit.Log
	key    signing.Key
	pub    string
	n      int // incidents made
}

func newAuditRig(t *testing.T, srv *s3test.Server, device string) *auditRig {
	t.Helper()
	r := &auditRig{t: t, srv: srv, device: device, state: t.TempDir()}
	var err error
	keyPath := filepath.Join(t.TempDir(), "signing.key")
	if r.pub, err = signing.NewKey(keyPath); err != nil {
		t.Fatal(err)
	}
	if r.key, err = signing.ReadKey(keyPath); err != nil {
		t.Fatal(err)
	}
	r.open()
	return r
}

func (r *auditRig) logPath() string { return filepath.Join(r.state, "audit.log") }

func (r *auditRig) open() {
	var err error
	if r.log, err = audit.Open(r.logPath(), clockwork.NewFakeClockAt(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { r.log.Close() })
}

// record writes n entries: capture started and stopped behind the light.
func (r *auditRig) record(n int) {
	for i := range n {
		ev := [][]string{{"indicator", "on", "true"}, {"capture", "state", "started"}, {"capture", "state", "stopped"}, {"indicator", "on", "false"}}[i%4]
		if err := r.log.Record(ev[0], ev[1:]...); err != nil {
			r.t.Fatal(err)
		}
	}
}

// cut keeps the log's first n entries, as someone with the card might.
func (r *auditRig) cut(n int) {
	r.log.Close()
	b, _ := os.ReadFile(r.logPath())
	os.WriteFile(r.logPath(), bytes.Join(bytes.SplitAfter(b, []byte("\n"))[:n], nil), 0o640)
	r.open()
}

// incident seals an incident whose manifest holds the log's head now.
func (r *auditRig) incident() {
	r.n++
	id := "20261123-0900" + string(rune('0'+r.n/10)) + string(rune('0'+r.n%10)) + "-0000" + string(rune('0'+r.n/10)) + string(rune('0'+r.n%10))
	dir := filepath.Join(r.state, "incidents", id)
	os.MkdirAll(dir, 0o750)
	clip := []byte("clip of " + id)
	os.WriteFile(filepath.Join(dir, outbox.ClipFile), clip, 0o640)
	sum := sha256.Sum256(clip)
	h, _ := r.log.Head()
	press := time.Date(2026, 11, 23, 9, 0, r.n, 0, time.UTC)
	m := outbox.Manifest{Version: 1, Store: "shop-1", Device: r.device, Incident: id, State: outbox.StateComplete, PressTime: press,
		ClipStart: press, ClipEnd: press.Add(time.Second), Clip: outbox.ClipDigest{File: outbox.ClipFile, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(clip))},
		AuditHead: &h}
	if err := outbox.WriteManifest(dir, m); err != nil {
		r.t.Fatal(err)
	}
}

// upload runs the device's uploader until the outbox is empty and the
// log's entries are in the bucket as far as they go.
func (r *auditRig) upload() {
	r.t.Helper()
	st := r.srv.Storage("clips")
	st.Prefix = "mamoru"
	u := &uploader.Uploader{Outbox: outbox.Outbox{Dir: filepath.Join(r.state, "incidents")}, Storage: st, SigningKey: r.key,
		Log: slog.New(slog.NewTextHandler(r.t.Output(), nil)), Clock: clockwork.NewFakeClock(),
		Store: "shop-1", Device: r.device, AuditLog: r.logPath()}
	ctx, cancel := context.WithCancel(r.t.Context())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		n, _, _ := (outbox.Outbox{Dir: filepath.Join(r.state, "incidents")}).Pending()
		p, _ := uploader.ReadAuditProgress(r.logPath())
		h, _ := r.log.Head()
		es, _ := audit.ReadAll(r.logPath())
		if n == 0 && p.Pending == nil && len(es) > 0 && p.Chain == audit.Chain(es[0]) && p.Head == h && u.Status().AuditError == "" {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("upload not done: status %+v, progress %+v", u.Status(), p)
		}
	}
}

func (r *auditRig) segment(first, last uint64) string {
	es, _ := audit.ReadAll(r.logPath())
	return path.Join("mamoru", bucket.AuditDir("shop-1", r.device), audit.SegmentOf(audit.Chain(es[0]), first, es[last]).Name())
}

// clips audit reports a device's log cut, emptied, rewritten, or a
// segment replaced or missing in the bucket, each with exit 1, and passes
// one that is whole. (Before the segments and heads, nothing could.)
func TestClipsAudit(t *testing.T) {
	srv, cfg := managerConfig(t)
	for _, tc := range []struct {
		name   string
		tamper func(r *auditRig)
		code   int
		want   []string
	}{
		{"whole", func(r *auditRig) {
			r.record(5)
			r.incident()
			r.upload()
			r.record(3)
			r.upload()
		}, 0, []string{"8 entries (to entry 7) in 2 segments", "1 signed manifests' audit heads checked", "whole, signed, and holds every manifest's head"}},
		{"end cut before upload", func(r *auditRig) {
			r.record(5)
			r.upload()
			r.record(5)
			r.incident() // head: entry 9
			r.cut(5)
			r.upload()
		}, 1, []string{"CUT: its signed manifest recorded the log up to entry 9, and the bucket's log ends at entry 4"}},
		{"emptied", func(r *auditRig) {
			r.record(5)
			r.incident()
			r.upload()
			r.cut(0)
			r.record(2)
			r.upload()
		}, 1, []string{"RESTARTED: the log began again as chain", "after chain", "entry 4"}},
		{"rewritten", func(r *auditRig) {
			r.record(5)
			r.upload()
			r.cut(3)
			r.log.Record("start")
			r.record(3)
			r.upload()
		}, 1, []string{"REPLACED: entry 3 of chain"}},
		{"segment missing", func(r *auditRig) {
			r.record(5)
			r.upload()
			r.record(2)
			r.upload()
			r.record(1)
			r.upload()
			if err := srv.Root().RemoveObject(t.Context(), "clips", r.segment(5, 6), minio.RemoveObjectOptions{}); err != nil {
				t.Fatal(err)
			}
		}, 1, []string{"GAP: entries 5 to 6 of chain", ".jsonl.sig is there and its segment is not"}},
		{"segment replaced", func(r *auditRig) {
			r.record(5)
			r.upload()
			other := newAuditRig(t, srv, r.device+"-other")
			other.record(5)
			b, _ := os.ReadFile(other.logPath())
			if _, err := srv.Root().PutObject(t.Context(), "clips", r.segment(0, 4), bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
		}, 1, []string{"BAD SEGMENT: mamoru/shop-1/", "SIGNATURE INVALID"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newAuditRig(t, srv, "counter-"+strings.ReplaceAll(tc.name, " ", "-"))
			tc.tamper(r)
			code, stdout, stderr := runCmd(t, "clips", "audit", "shop-1/"+r.device, "--pubkey", r.pub, "--config", cfg)
			if code != tc.code {
				t.Errorf("clips audit = %d, want %d\n%s%s", code, tc.code, stdout, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout+stderr, w) {
					t.Errorf("clips audit output does not say %q:\n%s%s", w, stdout, stderr)
				}
			}
		})
	}
}

// clips audit refuses, before asking the bucket, a name that is not
// STORE/DEVICE and a bad key.
func TestClipsAuditUsage(t *testing.T) {
	cfg := writeConfig(t, t.TempDir(), "manager.toml", "[storage]\nendpoint = \"127.0.0.1:1\"\nbucket = \"clips\"\nsecure = false\n"+keyFiles(t, "a", "b"))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"../x", "--pubkey", "k"}, "is not STORE/DEVICE"},
		{[]string{"shop-1", "--pubkey", "k"}, "is not STORE/DEVICE"},
		{[]string{"shop-1/counter-1/x", "--pubkey", "k"}, "is not STORE/DEVICE"},
		{[]string{"shop-1/counter-1", "--pubkey", "not-a-key"}, "--pubkey: public key"},
		{nil, "want one STORE/DEVICE"},
	} {
		code, _, stderr := runCmd(t, append([]string{"clips", "audit", "--config", cfg}, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("clips audit %q = %d, %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}

// Without --pubkey, clips audit checks a device's segments and manifests
// by the manager's keyring, and a device the keyring does not hold is
// UNKNOWN DEVICE: nothing shows its segments are its own.
func TestClipsAuditByKeyring(t *testing.T) {
	srv, cfg := managerConfig(t)
	known, stranger := newAuditRig(t, srv, "counter-1"), newAuditRig(t, srv, "counter-2")
	for _, r := range []*auditRig{known, stranger} {
		r.record(5)
		r.incident()
		r.upload()
	}
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("\n" + keyringEntry("shop-1", "counter-1", known.pub, time.Now()))
	f.Close()
	if code, out, errOut := runCmd(t, "clips", "audit", "shop-1/counter-1", "--config", cfg); code != 0 || !strings.Contains(out, "1 signed manifests' audit heads checked") {
		t.Errorf("clips audit of a device in the keyring = %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := runCmd(t, "clips", "audit", "shop-1/counter-2", "--config", cfg); code != 1 || !strings.Contains(errOut, "UNKNOWN DEVICE") {
		t.Errorf("clips audit of a device not in the keyring = %d, want 1 and UNKNOWN DEVICE\n%s%s", code, out, errOut)
	}
}
