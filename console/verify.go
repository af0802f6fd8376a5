package console

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"

	"mamoru/bucket"
)

// State is the one word a manager reads of an incident's verification.
type State string

// The states, from worst to best. An incident is Verified only when its
// manifest is signed by a key of its device in the keyring, names the
// place it is in, and the clip's SHA-256 and size are the manifest's, and
// no object of the incident was ever written over.
const (
	Tampered  State = "tampered"  // the clip is not the manifest's, or an object was written over
	Misplaced State = "misplaced" // the manifest names another place than where it lies
	Invalid   State = "invalid"   // the signature does not verify
	Unknown   State = "unknown"   // signed by a device the keyring does not list
	Unsigned  State = "unsigned"  // no signature
	Failed    State = "failed"    // could not be checked (the bucket refused, a manifest unreadable)
	Checking  State = "checking"  // not judged yet
	Legacy    State = "legacy"    // signed by its device, from before manifests named their place
	Verified  State = "verified"
)

// Verification is what the console found when it checked an incident.
type Verification struct {
	State State `json:"state"`
	// Signature is the verdict on manifest.sig, in the words 'mamoru clips
	// verify' uses ("verified: signed by shop-1/counter-1", "UNSIGNED", ...);
	// SignatureError says why it is not verified.
	Signature      string `json:"signature"`
	SignatureError string `json:"signature_error,omitempty"`
	// Place is where the incident lies below the prefix; Signed is the
	// place its manifest names ("" for a legacy manifest).
	Place  string `json:"place"`
	Signed string `json:"signed_for,omitempty"`
	// ClipSHA256 and ClipBytes are the clip's as read from the bucket;
	// ClipMatches is whether they are the manifest's.
	ClipSHA256  string `json:"clip_sha256,omitempty"`
	ClipBytes   int64  `json:"clip_bytes,omitempty"`
	ClipMatches bool   `json:"clip_matches"`
	// Overwritten says, per object, that it was written more than once.
	Overwritten []string `json:"overwritten,omitempty"`
	// AuditHead is the audit log entry the signed manifest names, and
	// AuditFound whether a segment in the bucket holds it.
	AuditHead  string `json:"audit_head,omitempty"`
	AuditFound bool   `json:"audit_found"`
	// Error says why the incident could not be checked (State Failed).
	Error   string    `json:"error,omitempty"`
	Checked time.Time `json:"checked"`
}

// verifier checks incidents and remembers each result for the bytes it
// judged (Item.version): a clip does not change, and one that does is
// checked again.
type verifier struct {
	clips bucket.Clips
	// read returns an item's manifest: the server's, which reads each
	// once per ETag.
	read func(context.Context, Item) (bucket.Entry, error)
	now  func() time.Time
	sem  chan struct{} // bounds the checks running at once

	mu      sync.Mutex // guards done and running
	done    map[string]verdict
	running map[string]chan struct{}
}

type verdict struct {
	version string
	v       Verification
}

func newVerifier(c bucket.Clips, read func(context.Context, Item) (bucket.Entry, error), now func() time.Time, parallel int) *verifier {
	return &verifier{clips: c, read: read, now: now, sem: make(chan struct{}, parallel), done: map[string]verdict{}, running: map[string]chan struct{}{}}
}

// known returns what is known of it without checking it.
func (v *verifier) known(it Item) (Verification, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	d, ok := v.done[it.Dir]
	return d.v, ok && d.version == it.version()
}

// check returns it's verification, checking it if it has not been (once,
// however many ask at the same time).
func (v *verifier) check(ctx context.Context, it Item) Verification {
	for {
		v.mu.Lock()
		if d, ok := v.done[it.Dir]; ok && d.version == it.version() {
			v.mu.Unlock()
			return d.v
		}
		if ch, ok := v.running[it.Dir]; ok {
			v.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return Verification{State: Checking}
			}
		}
		ch := make(chan struct{})
		v.running[it.Dir] = ch
		v.mu.Unlock()

		var res Verification
		select {
		case v.sem <- struct{}{}:
			res = v.verify(ctx, it)
			<-v.sem
		case <-ctx.Done():
			res = Verification{State: Checking}
		}
		v.mu.Lock()
		// A check cut short by its asker (a page closed, the console
		// stopping) says nothing of the incident: it is not kept.
		if ctx.Err() == nil {
			v.done[it.Dir] = verdict{version: it.version(), v: res}
		}
		delete(v.running, it.Dir)
		close(ch)
		v.mu.Unlock()
		return res
	}
}

// verify judges it: the signature and place (bucket.Clips.Authenticate),
// every version of its objects, the clip's bytes, and the audit head.
func (v *verifier) verify(ctx context.Context, it Item) Verification {
	res := Verification{Place: v.place(it), Checked: v.now()}
	failed := func(err error) Verification {
		res.State, res.Error = Failed, err.Error()
		return res
	}
	e, err := v.read(ctx, it)
	if err != nil {
		return failed(err)
	}
	m := e.Manifest
	res.Signed = m.Object
	a, aerr := v.clips.Authenticate(ctx, e)
	res.Signature = a.String()
	if aerr != nil {
		res.SignatureError = aerr.Error()
	}
	if a.Verdict == "" { // the manifest's words disagree with its key
		res.Signature = bucket.VerdictInvalid
	}

	vs, err := v.clips.Versions(ctx, e)
	if err != nil {
		return failed(fmt.Errorf("list the versions of %s: %w", it.Dir, err))
	}
	for _, t := range bucket.CheckVersions(vs) {
		res.Overwritten = append(res.Overwritten, t.Error())
	}

	o, err := v.clips.Client.GetObject(ctx, v.clips.Bucket, e.Clip(), minio.GetObjectOptions{})
	if err != nil {
		return failed(bucket.Classify(err))
	}
	h := sha256.New()
	n, err := io.Copy(h, o)
	o.Close()
	if err != nil {
		return failed(fmt.Errorf("read %s: %w", e.Clip(), bucket.Classify(err)))
	}
	res.ClipSHA256, res.ClipBytes = hex.EncodeToString(h.Sum(nil)), n
	res.ClipMatches = res.ClipSHA256 == m.Clip.SHA256 && n == m.Clip.Size

	if m.AuditHead != nil {
		res.AuditHead = fmt.Sprintf("%d %s", m.AuditHead.Seq, m.AuditHead.Hash)
		ex, err := v.clips.AuditExcerpt(ctx, m.Store, m.Device, *m.AuditHead)
		if err != nil {
			return failed(err)
		}
		res.AuditFound = len(ex) > 0
	}

	switch {
	case !res.ClipMatches || len(res.Overwritten) > 0:
		res.State = Tampered
	case m.Object != "" && m.Object != res.Place:
		res.State = Misplaced
	case a.Verdict == bucket.VerdictVerified && aerr == nil:
		res.State = Verified
	case a.Verdict == bucket.VerdictLegacy && aerr == nil:
		res.State = Legacy
	case a.Verdict == bucket.VerdictUnknown:
		res.State = Unknown
	case a.Verdict == bucket.VerdictUnsigned:
		res.State = Unsigned
	case errors.Is(aerr, bucket.ErrSignatureInvalid) || a.Verdict == bucket.VerdictInvalid || a.Verdict == "":
		res.State = Invalid
	default:
		return failed(aerr)
	}
	return res
}

// place is the incident's folder below the prefix.
func (v *verifier) place(it Item) string {
	if p := strings.Trim(v.clips.Prefix, "/"); p != "" {
		return strings.TrimPrefix(it.Dir, p+"/")
	}
	return it.Dir
}
