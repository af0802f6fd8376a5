package uploader

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"

	"mamoru/audit"
	"mamoru/bucket"
	"mamoru/outbox"
)

// The audit log goes to the bucket in segments: the entries written since
// the last upload, as one write-once object under the device's folder,
// with its signature beside it:
//
//	<prefix>/<store>/<device>/audit/<chain>/<first>-<last>-<hash>.jsonl
//	<prefix>/<store>/<device>/audit/<chain>/<first>-<last>-<hash>.jsonl.sig
//
// (no manifest.json there, so clips ls passes them by). Once sent, a
// segment is beyond the reach of whoever holds the card: a log cut,
// emptied or rewritten on the device no longer matches what the bucket
// holds, and `mamoru clips audit` says so.

// AuditProgressPath is where the uploader records, beside the audit log at
// logPath, how far the log has been uploaded.
func AuditProgressPath(logPath string) string { return logPath + ".uploaded" }

// AuditProgress is how far the audit log has been uploaded, kept durably
// so that a power cut neither loses nor repeats a segment. It is also a
// local anchor: a log that no longer holds the entry named here was cut or
// replaced after it was uploaded.
type AuditProgress struct {
	Chain string `json:"chain"`
	audit.Head
	// Pending is a segment being sent: after a power cut the same entries
	// go again under the same name, and a server that already has them
	// (412 with If-None-Match) has them from this device.
	Pending *PendingSegment `json:"pending,omitempty"`
}

// PendingSegment is a segment begun and not yet known to be in the bucket:
// sent again as it was, rather than with what was added since, so that the
// bucket does not hold the same entries twice.
type PendingSegment struct {
	Chain string `json:"chain"`
	First uint64 `json:"first"`
	Last  uint64 `json:"last"`
	Hash  string `json:"hash"` // the last entry's
}

// ReadAuditProgress reads the progress beside the audit log at logPath;
// none (no file) is the zero progress, nothing uploaded.
func ReadAuditProgress(logPath string) (AuditProgress, error) {
	var p AuditProgress
	b, err := os.ReadFile(AuditProgressPath(logPath))
	if errors.Is(err, os.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%s: %w", AuditProgressPath(logPath), err)
	}
	return p, nil
}

// segment is the next run of entries to send.
type segment struct {
	chain       string
	first, last audit.Entry
	b           []byte
}

func (s segment) name() string { return audit.SegmentOf(s.chain, s.first.Seq, s.last).Name() }

// nextSegment reads the log and returns the entries to send next: the
// pending segment's again, else those after the last uploaded, at most
// audit.SegmentMaxEntries; ok is false when there are none. A log that no
// longer holds the last entry uploaded (cut, emptied or replaced) is sent
// again from its start, under its own names: the bucket keeps both, and
// clips audit shows the difference. why then says so.
// Nothing beyond synced is sent, if it is set.
func nextSegment(logPath string, p AuditProgress, synced func() *audit.Head) (s segment, ok bool, why string, err error) {
	var limit *audit.Head
	if synced != nil {
		if limit = synced(); limit == nil {
			return s, false, "", nil
		}
	}
	f, err := os.Open(logPath)
	if errors.Is(err, os.ErrNotExist) {
		return s, false, "", nil
	}
	if err != nil {
		return s, false, "", err
	}
	defer f.Close()
	// First pass: the chain's name and whether it still holds what was
	// uploaded. The log only grows while the recorder runs; its entries
	// never change.
	var from uint64
	var held, pendingHeld bool
	var chain string
	var end uint64
	err = audit.Walk(f, func(e audit.Entry, _ []byte) error {
		if limit != nil && e.Seq > limit.Seq {
			return errSynced
		}
		if e.Seq == 0 {
			chain = audit.Chain(e)
		}
		held = held || p.Chain == chain && p.Hash != "" && e.Seq == p.Seq && e.Hash == p.Hash
		pendingHeld = pendingHeld || p.Pending != nil && p.Pending.Chain == chain && e.Seq == p.Pending.Last && e.Hash == p.Pending.Hash
		end = e.Seq + 1
		return nil
	})
	if errors.Is(err, errSynced) {
		err = nil
	}
	if err != nil {
		// A chain broken under a running recorder: send what is intact;
		// the recorder sets the log aside at its next start.
		if !errors.Is(err, audit.ErrChain) {
			return s, false, "", fmt.Errorf("read the audit log %s: %w", logPath, err)
		}
		why = err.Error()
	}
	if end == 0 {
		return s, false, why, nil
	}
	to := end - 1
	switch {
	case pendingHeld:
		from, to = p.Pending.First, p.Pending.Last
	case held:
		from = p.Seq + 1
	case p.Chain == chain && p.Hash != "":
		why = fmt.Sprintf("the audit log no longer holds entry %d as uploaded (it ends at entry %d, or holds another there): sending it again from entry 0", p.Seq, end-1)
	case p.Chain != "" && p.Chain != chain:
		why = fmt.Sprintf("the audit log is a new chain %s (the last uploaded was %s at entry %d): sending it from entry 0", chain, p.Chain, p.Seq)
	}
	if from > to {
		return s, false, why, nil
	}
	to = min(to, from+audit.SegmentMaxEntries-1)
	if _, err := f.Seek(0, 0); err != nil {
		return s, false, why, err
	}
	var buf bytes.Buffer
	s.chain = chain
	err = audit.Walk(f, func(e audit.Entry, line []byte) error {
		if e.Seq < from || e.Seq > to {
			return nil
		}
		if e.Seq == from {
			s.first = e
		}
		s.last = e
		buf.Write(line)
		return nil
	})
	if err != nil && !errors.Is(err, audit.ErrChain) {
		return s, false, why, fmt.Errorf("read the audit log %s: %w", logPath, err)
	}
	s.b = buf.Bytes()
	return s, len(s.b) > 0, why, nil
}

// errSynced stops a walk at the last entry synced.
var errSynced = errors.New("past the last entry synced")

// shipAudit sends the audit log's new entries as segments until the bucket
// has them all. It returns the name of the last segment sent, if any.
func (u *Uploader) shipAudit(ctx context.Context, limit *Limiter) (sent string, err error) {
	if u.AuditLog == "" {
		return "", nil
	}
	if u.Store == "" || u.Device == "" {
		return "", errors.New("uploader: AuditLog needs Store and Device")
	}
	for {
		p, err := ReadAuditProgress(u.AuditLog)
		if err != nil {
			// A progress file the card corrupted: send the log again from
			// its start; the bucket keeps what was sent before.
			u.Log.Warn("audit upload progress unreadable; sending the log from its start", "err", err)
			p = AuditProgress{}
		}
		s, ok, why, err := nextSegment(u.AuditLog, p, u.AuditSynced)
		if err != nil {
			return sent, err
		}
		if why != "" {
			u.Log.Warn("audit log", "problem", why)
		}
		if !ok {
			return sent, nil
		}
		if err := u.putSegment(ctx, limit, p, s); err != nil {
			return sent, fmt.Errorf("audit segment %s: %w", s.name(), err)
		}
		sent = s.name()
	}
}

// putSegment sends one segment (signature first, the segment last: its
// presence means it is whole), recording it as pending before and as
// uploaded after.
func (u *Uploader) putSegment(ctx context.Context, limit *Limiter, p AuditProgress, s segment) error {
	p.Pending = &PendingSegment{Chain: s.chain, First: s.first.Seq, Last: s.last.Seq, Hash: s.last.Hash}
	if err := u.saveAuditProgress(p); err != nil {
		return err
	}
	// A segment's name commits to its entries (the last one's hash), so
	// one the server already has under it (an overwrite refused, with
	// If-None-Match) holds these very entries: this device's attempt cut
	// short by a power cut. Anything else planted there fails clips audit.
	mine := func(err error) error {
		if _, there := errors.AsType[*bucket.Exists](err); there {
			return nil
		}
		return err
	}
	lockAt, err := u.lockTime(ctx)
	if err != nil {
		return err
	}
	dir := bucket.AuditDir(u.Store, u.Device)
	// Written once and locked as the clips are.
	sh := &shipper{client: u.Client, bucket: u.Storage.Bucket, object: path.Join(u.Storage.Prefix, dir), limit: limit,
		lock: u.Lock, now: lockAt}
	name := s.name()
	if u.SigningKey.Valid() {
		sig := []byte(base64.StdEncoding.EncodeToString(u.SigningKey.Sign(audit.SegmentMessage(path.Join(dir, name), s.b))) + "\n")
		if err := mine(sh.putSmall(ctx, name+".sig", "text/plain", sig)); err != nil {
			return err
		}
	}
	if err := mine(sh.putSmall(ctx, name, "application/jsonl", s.b)); err != nil {
		return err
	}
	return u.saveAuditProgress(AuditProgress{Chain: s.chain, Head: audit.Head{Seq: s.last.Seq, Hash: s.last.Hash}})
}

func (u *Uploader) saveAuditProgress(p AuditProgress) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := outbox.WriteFileAtomic(AuditProgressPath(u.AuditLog), append(b, '\n')); err != nil {
		return fmt.Errorf("record the audit upload's progress: %w", err)
	}
	return nil
}
