package bucket

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"

	"mamoru/audit"
)

// AuditDir is the folder of a device's audit log segments below the
// prefix: <store>/<device>/audit. It holds no manifest.json, so List
// passes it by.
func AuditDir(store, device string) string { return path.Join(store, device, "audit") }

// What a manager's audit of a device's log in the bucket can find. Each
// problem wraps one of these.
var (
	// ErrAuditGap: entries of a chain are not in the bucket while later
	// ones are, or a head names entries never uploaded.
	ErrAuditGap = errors.New("GAP")
	// ErrAuditReplaced: the bucket holds two different entries under one
	// number, an entry that does not follow the one before, or a signed
	// manifest's head that the uploaded log contradicts.
	ErrAuditReplaced = errors.New("REPLACED")
	// ErrAuditCut: a signed manifest's head lies beyond the uploaded log's
	// end: the entries up to it were never sent, or were removed.
	ErrAuditCut = errors.New("CUT")
	// ErrAuditRestarted: the device's log began a new chain: the old one
	// was set aside, emptied or replaced on the device.
	ErrAuditRestarted = errors.New("RESTARTED")
	// ErrAuditSegment: an object in the audit folder is not a segment
	// signed by the device.
	ErrAuditSegment = errors.New("BAD SEGMENT")
)

// AuditReport is what Audit found for one device.
type AuditReport struct {
	Chains []ChainSummary
	// Heads is how many signed manifests' heads were checked.
	Heads int
	// Problems: any one means the device's log cannot be shown whole.
	Problems []error
}

// ChainSummary describes one chain of a device's log in the bucket.
type ChainSummary struct {
	Name     string
	Entries  int // entries in the bucket
	Last     uint64
	Segments int
	From, To time.Time // the first and last entries' times
}

// chainEntries gathers the entries of one chain from its segments.
type chainEntries struct {
	name     string
	bySeq    map[uint64]audit.Entry
	from     map[uint64]string // which segment each entry came from
	segments int
}

// Audit reads every audit segment store/device uploaded and the heads its
// signed manifests recorded, and reports what does not hold together: a
// segment not signed by a key the keyring holds for the device, or not
// what its name says, entries missing
// between segments (a gap), two different entries under one number or an
// entry that does not follow the one before (a replacement), a head beyond
// the uploaded log (a cut) or contradicting it, a log that began again as
// a new chain. It cannot see a last segment removed with no manifest after
// it: the bucket's write-once rules must keep it.
func (c Clips) Audit(ctx context.Context, store, device string) (AuditReport, error) {
	var r AuditReport
	rel := AuditDir(store, device)
	root := path.Join(c.Prefix, rel) + "/"
	type object struct{ key, name string }
	var segs []object
	sigs := map[string]bool{}
	for o := range c.Client.ListObjects(ctx, c.Bucket, minio.ListObjectsOptions{Prefix: root, Recursive: true}) {
		if o.Err != nil {
			return r, Classify(o.Err)
		}
		name := strings.TrimPrefix(o.Key, root)
		if s, ok := strings.CutSuffix(name, ".sig"); ok {
			sigs[s] = true
			continue
		}
		if _, ok := audit.ParseSegmentName(name); !ok {
			r.Problems = append(r.Problems, fmt.Errorf("%w: %s is not named as a segment", ErrAuditSegment, o.Key))
			continue
		}
		segs = append(segs, object{o.Key, name})
	}
	// The signature is sent first: one whose segment is not there is a
	// segment removed (or an upload cut short, which the device finishes).
	there := make(map[string]bool, len(segs))
	for _, o := range segs {
		there[o.name] = true
	}
	for name := range sigs {
		if !there[name] {
			r.Problems = append(r.Problems, fmt.Errorf("%w: %s%s.sig is there and its segment is not", ErrAuditGap, root, name))
		}
	}
	// Fetched eight at a time: a device sends one every 10 minutes or so.
	type fetched struct {
		b, sig []byte
		err    error
	}
	got := make([]fetched, len(segs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, s := range segs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			f := &got[i]
			if f.b, f.err = c.readAtMost(ctx, s.key, audit.SegmentMaxBytes); errors.Is(f.err, errTooLarge) {
				f.err = fmt.Errorf("%w: %w", ErrAuditSegment, f.err)
			}
			if f.err == nil && sigs[s.name] {
				f.sig, f.err = c.small(ctx, s.key+".sig")
			}
		})
	}
	wg.Wait()
	chains := map[string]*chainEntries{}
	for i, s := range segs {
		id, _ := audit.ParseSegmentName(s.name)
		chain := id.Chain
		b, sig, err := got[i].b, got[i].sig, got[i].err
		if errors.Is(err, ErrAuditSegment) {
			r.Problems = append(r.Problems, err)
			continue
		}
		if err != nil {
			return r, err
		}
		es, err := audit.ParseSegment(b)
		if err != nil {
			r.Problems = append(r.Problems, fmt.Errorf("%w: %s: %w", ErrAuditSegment, s.key, err))
			continue
		}
		if err := c.checkSegmentSignature(store, device, path.Join(rel, s.name), b, sig, es); err != nil {
			r.Problems = append(r.Problems, fmt.Errorf("%w: %s: %w", ErrAuditSegment, s.key, err))
			continue
		}
		if !id.Holds(es) {
			r.Problems = append(r.Problems, fmt.Errorf("%w: %s holds entries %d to %d ending in %.16s…, not what its name says", ErrAuditSegment, s.key, es[0].Seq, es[len(es)-1].Seq, es[len(es)-1].Hash))
			continue
		}
		ch := chains[chain]
		if ch == nil {
			ch = &chainEntries{name: chain, bySeq: map[uint64]audit.Entry{}, from: map[uint64]string{}}
			chains[chain] = ch
		}
		ch.segments++
		for _, e := range es {
			if had, ok := ch.bySeq[e.Seq]; ok && had.Hash != e.Hash {
				r.Problems = append(r.Problems, fmt.Errorf("%w: entry %d of chain %s is one entry in %s and another in %s", ErrAuditReplaced, e.Seq, chain, ch.from[e.Seq], s.key))
				continue
			}
			ch.bySeq[e.Seq], ch.from[e.Seq] = e, s.key
		}
	}

	ordered := make([]*chainEntries, 0, len(chains))
	for _, ch := range chains {
		ordered = append(ordered, ch)
		r.Problems = append(r.Problems, ch.check()...)
	}
	// Oldest chain first, by its first entry in the bucket.
	slices.SortFunc(ordered, func(a, b *chainEntries) int { return a.first().Time.Compare(b.first().Time) })
	for i, ch := range ordered {
		seqs := ch.seqs()
		r.Chains = append(r.Chains, ChainSummary{Name: ch.name, Entries: len(seqs), Last: seqs[len(seqs)-1], Segments: ch.segments,
			From: ch.first().Time, To: ch.bySeq[seqs[len(seqs)-1]].Time})
		if i > 0 {
			prev := ordered[i-1]
			why := ""
			for _, s := range seqs[:min(len(seqs), 5)] {
				if e := ch.bySeq[s]; e.Event == "audit_broken" {
					why = fmt.Sprintf(" (the device kept the broken log as %s: %s)", e.Fields["kept"], e.Fields["err"])
				}
			}
			r.Problems = append(r.Problems, fmt.Errorf("%w: the log began again as chain %s at %s, after chain %s's entry %d: the device's log was set aside, emptied or replaced%s",
				ErrAuditRestarted, ch.name, ch.first().Time.Format(time.RFC3339), prev.name, prev.seqs()[len(prev.seqs())-1], why))
		}
	}

	// The heads in the signed manifests.
	var unreadable []error
	entries, err := c.List(ctx, Filter{Store: store, Device: device, Unreadable: func(_ string, err error) { unreadable = append(unreadable, err) }})
	if err != nil {
		return r, err
	}
	r.Problems = append(r.Problems, unreadable...)
	for _, e := range entries {
		h := e.Manifest.AuditHead
		if h == nil || e.Manifest.Store != store || e.Manifest.Device != device {
			continue
		}
		a, err := c.Authenticate(ctx, e)
		if err == nil && a.Verdict != VerdictVerified && a.Verdict != VerdictLegacy {
			err = fmt.Errorf("%s: the keyring holds no key for %s/%s", a.Verdict, store, device)
		}
		if err != nil {
			r.Problems = append(r.Problems, fmt.Errorf("%s: its head is not taken as evidence: %w", path.Join(e.Dir, "manifest.json"), err))
			continue
		}
		r.Heads++
		if err := headIn(ordered, *h); err != nil {
			r.Problems = append(r.Problems, fmt.Errorf("incident %s (sealed %s): %w", e.Manifest.Incident, e.Manifest.ClipEnd.Format(time.RFC3339), err))
		}
	}
	return r, nil
}

// headIn reports whether a chain holds the head h, and if none does, how
// the uploaded log disagrees with it.
func headIn(chains []*chainEntries, h audit.Head) error {
	var last uint64
	for _, ch := range chains {
		if e, ok := ch.bySeq[h.Seq]; ok && e.Hash == h.Hash {
			return nil
		}
	}
	for _, ch := range chains {
		if e, ok := ch.bySeq[h.Seq]; ok {
			return fmt.Errorf("%w: its signed manifest recorded entry %d with hash %.16s…, and the bucket's log (chain %s) holds another there (%.16s…)", ErrAuditReplaced, h.Seq, h.Hash, ch.name, e.Hash)
		}
		seqs := ch.seqs()
		last = max(last, seqs[len(seqs)-1])
	}
	if len(chains) == 0 {
		return fmt.Errorf("%w: its signed manifest recorded the log up to entry %d, and the bucket holds none of the log", ErrAuditCut, h.Seq)
	}
	if h.Seq < last {
		return fmt.Errorf("%w: its signed manifest recorded entry %d, which is missing from the bucket's log", ErrAuditGap, h.Seq)
	}
	return fmt.Errorf("%w: its signed manifest recorded the log up to entry %d, and the bucket's log ends at entry %d: the rest was never uploaded, or was removed", ErrAuditCut, h.Seq, last)
}

func (ch *chainEntries) seqs() []uint64 {
	s := make([]uint64, 0, len(ch.bySeq))
	for k := range ch.bySeq {
		s = append(s, k)
	}
	slices.Sort(s)
	return s
}

func (ch *chainEntries) first() audit.Entry { return ch.bySeq[ch.seqs()[0]] }

// check reports the chain's gaps and its entries that do not follow the
// one before, and, when it is whole, capture with the indicator off.
func (ch *chainEntries) check() []error {
	var errs []error
	seqs := ch.seqs()
	next := uint64(0)
	whole := true
	for _, s := range seqs {
		if s > next {
			whole = false
			errs = append(errs, fmt.Errorf("%w: entries %d to %d of chain %s are not in the bucket (the next is in %s)", ErrAuditGap, next, s-1, ch.name, ch.from[s]))
		} else if s > 0 {
			if e := ch.bySeq[s]; e.Prev != ch.bySeq[s-1].Hash {
				whole = false
				errs = append(errs, fmt.Errorf("%w: entry %d of chain %s (in %s) does not follow entry %d (in %s)", ErrAuditReplaced, s, ch.name, ch.from[s], s-1, ch.from[s-1]))
			}
		}
		next = s + 1
	}
	if whole {
		es := make([]audit.Entry, len(seqs))
		for i, s := range seqs {
			es[i] = ch.bySeq[s]
		}
		if err := audit.CheckInterlock(es); err != nil {
			errs = append(errs, fmt.Errorf("chain %s: %w", ch.name, err))
		}
	}
	return errs
}

// checkSegmentSignature verifies sig (the segment's .sig) over the
// segment's place below the prefix and its bytes b, by the keys the
// keyring holds for store/device valid when its last entry es was written
// (the device signs after it).
func (c Clips) checkSegmentSignature(store, device, place string, b, sig []byte, es []audit.Entry) error {
	if sig == nil {
		return fmt.Errorf("%w: it has no .sig", ErrSignatureInvalid)
	}
	_, err := c.Keyring.Verify(store, device, es[len(es)-1].Time, audit.SegmentMessage(place, b), sig)
	switch {
	case errors.Is(err, ErrUnknownDevice):
		return fmt.Errorf("%w: the keyring holds no key for %s/%s", ErrUnknownDevice, store, device)
	case err != nil:
		return fmt.Errorf("%w: its .sig does not match its bytes and its place under any key of %s/%s valid at %s", ErrSignatureInvalid, store, device, es[len(es)-1].Time.Format(time.RFC3339))
	}
	return nil
}
