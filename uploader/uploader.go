// Package uploader ships the outbox to S3-compatible storage: each finished
// incident exactly once and intact, oldest first, resuming a multipart upload
// where a power cut or an outage left it, checked against the manifest's
// SHA-256, manifest last; only then is the local copy deleted. Failures are
// retried with backoff; those a person must fix (bucket.Problem) are shown
// and retried slowly, never dropped.
package uploader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"

	"mamoru/audit"
	"mamoru/backoff"
	"mamoru/bucket"
	"mamoru/clock"
	"mamoru/config"
	"mamoru/outbox"
	"mamoru/signing"
)

// Uploader ships the outbox's finished incidents to the bucket, oldest
// first, each exactly once: the clip in parts that survive restarts, checked
// against the manifest's SHA-256, then manifest.json. Only then is the
// local copy deleted. Set the fields, then call Run once.
type Uploader struct {
	Outbox   outbox.Outbox
	Storage  config.Storage
	Location *time.Location // for the date in object names
	Log      *slog.Logger
	// Client, if nil, is made from Storage.
	Client *minio.Core
	// SigningKey, if valid, signs each manifest (manifest.sig beside it).
	SigningKey signing.Key
	// Backoff paces retries after a network or server failure.
	Backoff backoff.Backoff
	// ProblemRetry is the wait after a failure no retry will fix soon (bad
	// credentials, no bucket, access denied): 5 minutes if 0. Such an
	// incident is held: kept, tried again after this long, never dropped,
	// while the incidents after it go on.
	ProblemRetry time.Duration
	// Store and Device are this device's, if set: a held incident made
	// under another (the device was provisioned anew) is said to be so.
	Store, Device string
	// Shipped, if set, is called on Run's goroutine after an incident is in
	// the bucket and its local copy is gone.
	Shipped func(m outbox.Manifest, object string)
	// Clock times every wait (retries, the bandwidth limit, the idle poll)
	// and the times Status shows: clock.Real() if nil. Its Now also dates
	// each object's lock, once NTP has set it.
	Clock clock.Clock
	// Lock is the object lock each object is written with
	// (bucket.LockFor(policy)); the zero Lock locks nothing.
	Lock bucket.Lock
	// ClockSynced reports whether NTP has set the clock (clock.Synced if
	// nil). While it has not, and Lock is on, locks are dated by the
	// server's clock (bucket.ServerTime): a lock's date reckoned from a
	// clock that may read 1970 would lock nothing.
	ClockSynced func() bool
	// AuditLog, if set, is the audit log's path: the entries written since
	// the last upload go to the bucket as a signed, write-once segment
	// after each incident shipped, and every AuditEvery while the log
	// grows (segments.go). It needs Store and Device.
	AuditLog string
	// AuditEvery is 10 minutes if 0.
	AuditEvery time.Duration
	// AuditSynced, if set, returns the last entry of the audit log known
	// to be on the card (synced), or nil: no segment goes beyond it. A
	// line written but not yet synced could be lost to a power cut and
	// its number taken by another entry, which the bucket would then show
	// as a replacement. nil sends every whole line in the file.
	AuditSynced func() *audit.Head

	once sync.Once
	wake chan struct{}

	mu sync.Mutex // guards st
	st Status
}

// Status is what the uploader shows in `mamoru status`.
type Status struct {
	Pending      int       `json:"pending"`
	PendingBytes int64     `json:"pending_bytes"`
	Uploading    string    `json:"uploading,omitempty"`
	SentBytes    int64     `json:"sent_bytes,omitempty"` // of the clip being uploaded, in this attempt
	LastError    string    `json:"last_error,omitempty"`
	LastErrorAt  time.Time `json:"last_error_at,omitzero"`
	// Problem is set while the last error is one a person must fix.
	Problem       bool      `json:"problem,omitempty"`
	LastSuccess   string    `json:"last_success,omitempty"`
	LastSuccessAt time.Time `json:"last_success_at,omitzero"`
	Shipped       int       `json:"shipped"` // incidents shipped since start
	// Held are the incidents set aside after an error a person must fix,
	// oldest first: each is tried again at RetryAt, and the others go on.
	Held []Held `json:"held,omitempty"`
	// AuditSegment is the last audit segment sent, AuditError why the
	// last attempt to send one failed.
	AuditSegment string `json:"audit_segment,omitempty"`
	AuditError   string `json:"audit_error,omitempty"`
}

// Held is an incident the uploader has set aside.
type Held struct {
	Incident string    `json:"incident"`
	Error    string    `json:"error"`
	Since    time.Time `json:"since"`
	RetryAt  time.Time `json:"retry_at"`
}

func (u *Uploader) clock() clock.Clock { return clock.Or(u.Clock) }

func (u *Uploader) init() {
	u.once.Do(func() { u.wake = make(chan struct{}, 1) })
}

// Poke tells the uploader that an incident may be ready.
func (u *Uploader) Poke() {
	u.init()
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// Status returns the uploader's state now.
func (u *Uploader) Status() Status {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.st
}

func (u *Uploader) update(f func(*Status)) {
	u.mu.Lock()
	defer u.mu.Unlock()
	f(&u.st)
}

// shippedPrefix marks a directory being deleted after its upload, so that
// a power cut halfway through the deletion leaves nothing that looks like a
// broken incident.
const shippedPrefix = ".shipped-"

// Run ships incidents until ctx ends.
func (u *Uploader) Run(ctx context.Context) error {
	u.init()
	if u.Client == nil {
		c, err := bucket.NewClient(u.Storage)
		if err != nil {
			return err
		}
		u.Client = c
	}
	if u.ProblemRetry <= 0 {
		u.ProblemRetry = 5 * time.Minute
	}
	if u.Location == nil {
		u.Location = time.UTC
	}
	c := u.clock()
	u.removeShipped()
	limit := NewLimiter(ctx, c, u.Storage.MaxBandwidthKbps)
	if u.AuditEvery <= 0 {
		u.AuditEvery = 10 * time.Minute
	}
	attempt := 0
	skip := map[string]error{} // clips that no longer match their manifest
	held := map[string]*Held{} // incidents waiting out a problem
	auditDue := c.Now()        // catch up at start
	for {
		if u.AuditLog != "" && !c.Now().Before(auditDue) {
			auditDue = u.auditNow(ctx, limit)
		}
		next, ok, retryAt := u.next(skip, held, c.Now())
		if !ok {
			wait := 30 * time.Second
			if !retryAt.IsZero() {
				wait = min(wait, retryAt.Sub(c.Now()))
			}
			if u.AuditLog != "" {
				wait = min(wait, auditDue.Sub(c.Now()))
			}
			if !u.idle(ctx, c, wait) {
				return nil
			}
			continue
		}
		id := next.Manifest.Incident
		err := u.ship(ctx, next, limit)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			attempt = 0
			delete(held, id)
			u.showHeld(held)
			if u.AuditLog != "" {
				auditDue = u.auditNow(ctx, limit) // the log as far as this incident, and its upload
			}
			continue
		}
		var problem *bucket.Problem
		var first *WrittenFirst
		isProblem := errors.As(err, &problem) || errors.As(err, &first)
		retry := u.ProblemRetry
		if errors.Is(err, ErrClockUnsynced) {
			isProblem, retry = true, min(retry, clockRetry)
		}
		if errors.Is(err, ErrClipMismatch) {
			// Kept for a person to look at; the others go on.
			skip[id] = err
			isProblem = true
		}
		u.update(func(s *Status) {
			s.LastError, s.LastErrorAt, s.Problem = fmt.Sprintf("incident %s: %v", id, err), c.Now(), isProblem
			s.Uploading, s.SentBytes = "", 0
		})
		switch {
		case errors.Is(err, ErrClipMismatch):
			u.Log.Error("clip no longer matches its manifest; kept on disk, not uploaded", "incident", id, "err", err)
		case isProblem:
			// Held, not waited for: an incident the server refuses (made
			// under another store or device, say) must not keep the
			// incidents after it from going.
			h := held[id]
			if h == nil {
				h = &Held{Incident: id, Since: c.Now()}
				held[id] = h
			}
			h.Error, h.RetryAt = u.heldWhy(next.Manifest, err), c.Now().Add(retry)
			u.showHeld(held)
			u.Log.Error("upload cannot succeed until this is fixed; the incident is held and retried slowly, the next ones go on",
				"incident", id, "err", h.Error, "retry_in", retry)
		default:
			wait := u.Backoff.Delay(attempt)
			attempt++
			u.Log.Warn("upload failed; retrying", "incident", id, "err", err, "retry_in", wait.Round(time.Millisecond))
			// A poke (another incident ready) does not cut a retry's wait
			// short: the server failed, not the incident.
			if !clock.Sleep(ctx, c, wait) {
				return nil
			}
		}
	}
}

// ErrClockUnsynced means an incident waits for a clock to date its
// objects' locks by: NTP has not set the device's, and the server did not
// tell its own.
var ErrClockUnsynced = errors.New("waiting for NTP to set the clock: each object is locked until a date reckoned from it (policy.object_lock)")

// clockRetry is how soon an incident held for the clock is tried again.
const clockRetry = 30 * time.Second

// auditNow sends the audit log's new entries, and returns when to look
// again: AuditEvery from now, or a minute if it failed.
func (u *Uploader) auditNow(ctx context.Context, limit *Limiter) time.Time {
	c := u.clock()
	sent, err := u.shipAudit(ctx, limit)
	u.update(func(s *Status) {
		if sent != "" {
			s.AuditSegment = sent
		}
		s.AuditError = ""
		if err != nil {
			s.AuditError = err.Error()
		}
	})
	if err != nil && ctx.Err() == nil {
		u.Log.Warn("cannot upload the audit log; trying again in a minute", "err", err)
		return c.Now().Add(min(time.Minute, u.AuditEvery))
	}
	if sent != "" {
		u.Log.Info("audit log uploaded", "segment", sent)
	}
	return c.Now().Add(u.AuditEvery)
}

// heldWhy says why an incident is held: the error, and whether it was made
// under another store or device than this one's.
func (u *Uploader) heldWhy(m outbox.Manifest, err error) string {
	why := err.Error()
	if u.Store != "" && (m.Store != u.Store || m.Device != u.Device) {
		why = fmt.Sprintf("made as %s/%s, and this device is now %s/%s: %s", m.Store, m.Device, u.Store, u.Device, why)
	}
	return why
}

// showHeld puts the held incidents in Status, oldest first.
func (u *Uploader) showHeld(held map[string]*Held) {
	var hs []Held
	for _, h := range held {
		hs = append(hs, *h)
	}
	slices.SortFunc(hs, func(a, b Held) int { return strings.Compare(a.Incident, b.Incident) })
	u.update(func(s *Status) { s.Held = hs })
}

// idle waits d on c for an incident to be ready, or less if poked. It
// reports false if ctx ended.
func (u *Uploader) idle(ctx context.Context, c clock.Clock, d time.Duration) bool {
	t := c.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.Chan():
	case <-u.wake:
	}
	return true
}

// next returns the oldest incident ready to ship: finished, matching its
// manifest, and not held past now. Otherwise it returns when the first held
// incident is due, if any. It refreshes the pending counts, and forgets
// held incidents no longer in the outbox.
func (u *Uploader) next(skip map[string]error, held map[string]*Held, now time.Time) (in outbox.Incident, ok bool, retryAt time.Time) {
	incidents, _, err := u.Outbox.List()
	if err != nil {
		u.Log.Error("cannot list the outbox", "err", err)
	}
	pending, bytes := outbox.CountPending(incidents)
	u.update(func(s *Status) { s.Pending, s.PendingBytes = pending, bytes })
	there := map[string]bool{}
	for _, in := range incidents {
		there[in.Manifest.Incident] = true
	}
	for id := range held {
		if !there[id] {
			delete(held, id)
		}
	}
	u.showHeld(held)
	for _, in := range incidents {
		id := in.Manifest.Incident
		if _, bad := skip[id]; bad || !in.Manifest.Finished() {
			continue
		}
		if h := held[id]; h != nil && h.RetryAt.After(now) {
			if retryAt.IsZero() || h.RetryAt.Before(retryAt) {
				retryAt = h.RetryAt
			}
			continue
		}
		return in, true, time.Time{}
	}
	return outbox.Incident{}, false, retryAt
}

// ship uploads one incident and deletes it locally.
func (u *Uploader) ship(ctx context.Context, in outbox.Incident, limit *Limiter) error {
	m := in.Manifest
	dir := bucket.ObjectDir(u.Storage.Prefix, m, u.Location)
	u.update(func(s *Status) { s.Uploading, s.SentBytes = m.Incident, 0 })
	c := u.clock()
	started := c.Now()
	lockAt, err := u.lockTime(ctx)
	if err != nil {
		return err
	}
	sh := &shipper{
		client: u.Client, bucket: u.Storage.Bucket, dir: in.Dir, object: dir, manifest: m,
		partSize: int64(u.Storage.PartSizeMB) << 20, limit: limit, key: u.SigningKey,
		lock: u.Lock, now: lockAt,
		sent: func(n int64) { u.update(func(s *Status) { s.SentBytes += n }) },
	}
	if err := sh.ship(ctx); err != nil {
		return err
	}
	// In the bucket and checked: the local copy may go.
	gone := filepath.Join(filepath.Dir(in.Dir), shippedPrefix+filepath.Base(in.Dir))
	if err := os.Rename(in.Dir, gone); err != nil {
		return fmt.Errorf("remove the shipped incident: %w", err)
	}
	outbox.SyncDir(filepath.Dir(in.Dir))
	os.RemoveAll(gone)
	u.Log.Info("incident uploaded", "incident", m.Incident, "object", path.Join(dir, outbox.ClipFile), "bytes", m.Clip.Size,
		"checked", sh.checked, "took", c.Since(started).Round(time.Millisecond))
	u.update(func(s *Status) {
		s.LastSuccess, s.LastSuccessAt = m.Incident, c.Now()
		s.Uploading, s.SentBytes, s.LastError, s.LastErrorAt, s.Problem = "", 0, "", time.Time{}, false
		s.Shipped++
	})
	if u.Shipped != nil {
		u.Shipped(m, dir)
	}
	return nil
}

// lockTime is the time an upload's locks are dated from: the clock's, once
// NTP has set it; before that (a Pi has no battery clock) the server's,
// which the lock is held against anyway. A date reckoned from a clock that
// may read 1970 would lock nothing.
func (u *Uploader) lockTime(ctx context.Context) (time.Time, error) {
	synced := u.ClockSynced
	if synced == nil {
		synced = clock.Synced
	}
	if !u.Lock.On() || synced() {
		return u.clock().Now(), nil
	}
	t, err := bucket.ServerTime(ctx, u.Storage)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w, and the server's time cannot be had: %w", ErrClockUnsynced, err)
	}
	return t, nil
}

// removeShipped finishes deletions a power cut interrupted.
func (u *Uploader) removeShipped() {
	entries, _ := os.ReadDir(u.Outbox.Dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), shippedPrefix) {
			os.RemoveAll(filepath.Join(u.Outbox.Dir, e.Name()))
		}
	}
}
