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
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"

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
	// credentials, no bucket): 5 minutes if 0. Such incidents are kept and
	// tried again, never dropped.
	ProblemRetry time.Duration
	// Shipped, if set, is called on Run's goroutine after an incident is in
	// the bucket and its local copy is gone.
	Shipped func(m outbox.Manifest, object string)
	// Clock times every wait (retries, the bandwidth limit, the idle poll)
	// and the times Status shows: clock.Real() if nil.
	Clock clock.Clock

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
}

func (u *Uploader) clock() clock.Clock {
	if u.Clock == nil {
		return clock.Real()
	}
	return u.Clock
}

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
	attempt := 0
	skip := map[string]error{} // clips that no longer match their manifest
	for {
		next, ok := u.next(skip)
		if !ok {
			if !u.idle(ctx, c, 30*time.Second) {
				return nil
			}
			continue
		}
		err := u.ship(ctx, next, limit)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			attempt = 0
			continue
		}
		var problem *bucket.Problem
		isProblem := errors.As(err, &problem)
		if errors.Is(err, ErrClipMismatch) {
			// Kept for a person to look at; the others go on.
			skip[next.Manifest.Incident] = err
			isProblem = true
		}
		u.update(func(s *Status) {
			s.LastError, s.LastErrorAt, s.Problem = fmt.Sprintf("incident %s: %v", next.Manifest.Incident, err), c.Now(), isProblem
			s.Uploading, s.SentBytes = "", 0
		})
		var wait time.Duration
		if isProblem && !errors.Is(err, ErrClipMismatch) {
			wait = u.ProblemRetry
			u.Log.Error("upload cannot succeed until this is fixed; retrying slowly", "incident", next.Manifest.Incident, "err", err, "retry_in", wait)
		} else if !isProblem {
			wait = u.Backoff.Delay(attempt)
			attempt++
			u.Log.Warn("upload failed; retrying", "incident", next.Manifest.Incident, "err", err, "retry_in", wait.Round(time.Millisecond))
		} else {
			u.Log.Error("clip no longer matches its manifest; kept on disk, not uploaded", "incident", next.Manifest.Incident, "err", err)
			continue
		}
		// A poke (another incident ready) does not cut a retry's wait
		// short: the server failed, not the incident.
		if !clock.Sleep(ctx, c, wait) {
			return nil
		}
	}
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

// next returns the oldest incident ready to ship, and refreshes the
// pending counts.
func (u *Uploader) next(skip map[string]error) (outbox.Incident, bool) {
	incidents, _, err := u.Outbox.List()
	if err != nil {
		u.Log.Error("cannot list the outbox", "err", err)
	}
	pending, bytes := outbox.CountPending(incidents)
	u.update(func(s *Status) { s.Pending, s.PendingBytes = pending, bytes })
	for _, in := range incidents {
		if _, bad := skip[in.Manifest.Incident]; in.Manifest.Finished() && !bad {
			return in, true
		}
	}
	return outbox.Incident{}, false
}

// ship uploads one incident and deletes it locally.
func (u *Uploader) ship(ctx context.Context, in outbox.Incident, limit *Limiter) error {
	m := in.Manifest
	dir := bucket.ObjectDir(u.Storage.Prefix, m, u.Location)
	u.update(func(s *Status) { s.Uploading, s.SentBytes = m.Incident, 0 })
	c := u.clock()
	started := c.Now()
	sh := &shipper{
		client: u.Client, bucket: u.Storage.Bucket, dir: in.Dir, object: dir, manifest: m,
		partSize: int64(u.Storage.PartSizeMB) << 20, limit: limit, key: u.SigningKey,
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

// removeShipped finishes deletions a power cut interrupted.
func (u *Uploader) removeShipped() {
	entries, _ := os.ReadDir(u.Outbox.Dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), shippedPrefix) {
			os.RemoveAll(filepath.Join(u.Outbox.Dir, e.Name()))
		}
	}
}
