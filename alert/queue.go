package alert

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"mamoru/backoff"
	"mamoru/clock"
	"mamoru/outbox"
)

// MaxEventBytes bounds an event's JSON, and so a queue file: Put refuses a
// larger event, and a larger file is not one Put wrote.
const MaxEventBytes = 16 << 10

// Queue file names: <sequence, 20 digits>-<event id>.json, so that names
// sort oldest first; a file that makes no sense is renamed with
// asideSuffix and left for a person to look at.
const (
	queueSuffix = ".json"
	asideSuffix = ".corrupt"
	seqDigits   = 20
)

// maxLate is the most an event is said to be late. Beyond it the figure
// means nothing: the wall clock read 1970 when the event was raised, before
// NTP set it (a Pi has no battery clock), and it would say decades.
const maxLate = 7 * 24 * time.Hour

// QueueOptions configure a Queue. The zero value is usable.
type QueueOptions struct {
	Label string // the target's label, for status and the log; never its URL
	// Clock runs the timers between retries; nil is the system clock.
	Clock clock.Clock
	// Wall reads the time of day, to tell how late an event is; nil is
	// Clock.
	Wall clock.Clock
	// Backoff spaces retries after an error worth retrying; the zero
	// value waits 1 s doubling to 1 min, with jitter.
	Backoff backoff.Backoff
	// LateAfter is how long after its Time an event is late: sent later
	// (but less than a week later, see maxLate), it carries Late. Zero is
	// 30 s.
	LateAfter time.Duration
	// MaxPending bounds the events kept for a target that takes none:
	// beyond it, Put drops the oldest, since a manager needs the newest
	// press most. Zero is 1000.
	MaxPending int
	// Accepted, if set, is called on Run's goroutine with each event the
	// target accepted, as sent (with Late). It must not block.
	Accepted func(Event)
	Log      *slog.Logger // nil: slog.Default()
}

// Status is a queue's state, for status and the health report.
type Status struct {
	Label   string `json:"label"`
	Pending int    `json:"pending"` // events waiting on the card
	// LastError is the last attempt's error, "" once one succeeds.
	LastError string `json:"last_error,omitempty"`
	// NeedsFix is set while the target refuses in a way retrying will not
	// fix; Fix says what to do. The queue keeps its events meanwhile.
	NeedsFix  bool   `json:"needs_fix,omitempty"`
	Fix       string `json:"fix,omitempty"`
	Delivered int    `json:"delivered"` // events the target accepted since the queue opened
	// LastDelivered is the id of the last event the target accepted, at
	// LastDeliveredAt (the wall clock), Late after its Time (0 when it was
	// not late).
	LastDelivered   string        `json:"last_delivered,omitempty"`
	LastDeliveredAt time.Time     `json:"last_delivered_at,omitzero"`
	Late            time.Duration `json:"late_ns,omitempty"`
	SetAside        int           `json:"set_aside,omitempty"` // queue files that made no sense, renamed *.corrupt
	Dropped         int           `json:"dropped,omitempty"`   // events dropped by Put because MaxPending were waiting
}

// Queue keeps one target's events on the card and delivers them: oldest
// first, at least once, one at a time. Each event is a small file written
// whole or not at all (a temporary file, fsynced, renamed, the directory
// fsynced), so a power cut loses none that Put returned; one is removed
// only once the target has accepted it, so an event whose acceptance
// coincided with a power cut is sent again, with the same id.
//
// An error worth retrying is retried with backoff, for as long as it
// takes, honouring a receiver's Retry-After. A *Permanent error stops the
// retries: the event is kept, Status says what to fix, and the queue tries
// again only when Put brings another event, or when it is opened again
// (after a restart with the configuration fixed).
type Queue struct {
	dir          string
	target       Target
	opts         QueueOptions
	clock, wall  clock.Clock
	log          *slog.Logger
	wake         chan struct{} // Put's nudge to Run; holds at most one
	put          sync.Mutex    // serializes Put, so files appear in the order of their names
	mu           sync.Mutex    // guards seq and status
	seq          uint64
	status       Status
	lastLoggedAs string // the last error logged at warning level; Run's only
}

// OpenQueue opens (making it if need be) the queue in dir, a directory for
// this target alone, and returns it with whatever events it already holds
// pending. Temporary files a power cut left are removed: Put never
// returned for them.
func OpenQueue(dir string, target Target, o QueueOptions) (*Queue, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("alert: queue %s: %w", o.Label, err)
	}
	if o.LateAfter <= 0 {
		o.LateAfter = 30 * time.Second
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 1000
	}
	q := &Queue{dir: dir, target: target, opts: o, clock: clock.Or(o.Clock), log: o.Log, wake: make(chan struct{}, 1)}
	q.wall = q.clock
	if o.Wall != nil {
		q.wall = o.Wall
	}
	if q.log == nil {
		q.log = slog.Default()
	}
	q.status.Label = o.Label
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("alert: queue %s: %w", o.Label, err)
	}
	for _, de := range entries {
		name := de.Name()
		switch {
		case strings.HasSuffix(name, ".tmp"):
			os.Remove(filepath.Join(dir, name))
		case strings.HasSuffix(name, queueSuffix):
			q.status.Pending++
			if seq, _, ok := parseQueueName(name); ok {
				q.seq = max(q.seq, seq)
			}
		}
	}
	return q, nil
}

// QueueDir is the directory under root for the queue of the target
// labelled label. It depends on the label alone, so that a target keeps its
// queue when the configuration lists targets in another order or fixes a
// target's URL or token; labels must therefore be unique. The name is a
// hash: a label may hold any character, "/" and ".." included.
func QueueDir(root, label string) string {
	sum := sha256.Sum256([]byte(label))
	return filepath.Join(root, hex.EncodeToString(sum[:8]))
}

// queueName is the file name of the event id put as number seq.
func queueName(seq uint64, id string) string {
	return fmt.Sprintf("%0*d-%s%s", seqDigits, seq, id, queueSuffix)
}

// parseQueueName undoes queueName.
func parseQueueName(name string) (seq uint64, id string, ok bool) {
	rest, ok := strings.CutSuffix(name, queueSuffix)
	if !ok || len(rest) < seqDigits+1 || rest[seqDigits] != '-' {
		return 0, "", false
	}
	seq, err := strconv.ParseUint(rest[:seqDigits], 10, 64)
	if err != nil {
		return 0, "", false
	}
	return seq, rest[seqDigits+1:], true
}

// ErrTooLarge means an event's JSON is over MaxEventBytes.
var ErrTooLarge = errors.New("alert: event larger than MaxEventBytes")

// Put adds e to the queue, durably: once it returns nil, e survives a
// power cut. An event already pending (the same id) is not added twice.
// Put does disk I/O and fsyncs: it belongs on the Dispatcher's goroutine,
// never on a press's.
func (q *Queue) Put(e Event) error {
	if err := e.check(); err != nil {
		return err
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("alert: queue %s: %w", q.opts.Label, err)
	}
	if len(b) > MaxEventBytes {
		return fmt.Errorf("%w: %s is %d bytes", ErrTooLarge, e.Name, len(b))
	}
	q.put.Lock()
	defer q.put.Unlock()
	names, err := q.pending()
	if err != nil {
		return err
	}
	for _, n := range names {
		if _, id, _ := parseQueueName(n); id == e.ID {
			return nil
		}
	}
	for len(names) >= q.opts.MaxPending {
		if err := os.Remove(filepath.Join(q.dir, names[0])); err == nil || errors.Is(err, os.ErrNotExist) {
			q.log.Warn("alert: too many events waiting; dropped the oldest", "target", q.opts.Label, "file", names[0], "max_pending", q.opts.MaxPending)
			q.mu.Lock()
			q.status.Dropped++
			q.mu.Unlock()
		}
		names = names[1:]
	}
	q.mu.Lock()
	q.seq++
	name := queueName(q.seq, e.ID)
	q.mu.Unlock()
	if err := outbox.WriteFileAtomic(filepath.Join(q.dir, name), b); err != nil {
		return fmt.Errorf("alert: queue %s: %w", q.opts.Label, err)
	}
	q.mu.Lock()
	q.status.Pending = len(names) + 1
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return nil
}

// Status returns a snapshot of the queue's state.
func (q *Queue) Status() Status {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.status
}

// pending returns the queue's files, oldest first.
func (q *Queue) pending() ([]string, error) {
	entries, err := os.ReadDir(q.dir)
	if err != nil {
		return nil, fmt.Errorf("alert: queue %s: %w", q.opts.Label, err)
	}
	var names []string
	for _, de := range entries {
		if strings.HasSuffix(de.Name(), queueSuffix) {
			names = append(names, de.Name())
		}
	}
	slices.Sort(names) // ReadDir sorts already; the order is the contract
	return names, nil
}

// Run delivers the queue's events until ctx ends, and then returns. A
// queue has one Run at a time.
func (q *Queue) Run(ctx context.Context) {
	attempt := 0 // failures in a row
	// pause waits after a failure: the backoff's delay, or longer if the
	// receiver asked for it.
	pause := func(atLeast time.Duration) {
		d := max(q.opts.Backoff.Delay(attempt), atLeast)
		attempt++
		clock.Sleep(ctx, q.clock, d)
	}
	for ctx.Err() == nil {
		names, err := q.pending()
		if err != nil {
			q.failed(err)
			pause(0)
			continue
		}
		q.mu.Lock()
		q.status.Pending = len(names)
		q.mu.Unlock()
		if len(names) == 0 {
			select {
			case <-ctx.Done():
			case <-q.wake:
			}
			continue
		}
		name := names[0]
		e, err := q.read(name)
		switch {
		case errors.Is(err, os.ErrNotExist):
			continue // Put dropped it, MaxPending being reached
		case errors.Is(err, ErrBadEvent):
			if !q.setAside(name, err) {
				pause(0)
			}
			continue
		case err != nil: // the card failed to read: it may not next time
			q.failed(fmt.Errorf("alert: queue %s: %w", q.opts.Label, err))
			pause(0)
			continue
		}
		late := q.wall.Now().Sub(e.Time)
		if late > q.opts.LateAfter && late < maxLate {
			e.Late = int(late / time.Second)
		} else {
			late = 0
		}
		err = q.target.Send(ctx, e)
		if ctx.Err() != nil {
			return // the event stays; it goes at the next start
		}
		if err == nil {
			attempt = 0
			q.delivered(name, e, late)
			continue
		}
		var p *Permanent
		if errors.As(err, &p) {
			attempt = 0
			q.refused(p)
			select {
			case <-ctx.Done():
			case <-q.wake:
			}
			continue
		}
		q.failed(err)
		var asked time.Duration
		if rl := (*RetryLater)(nil); errors.As(err, &rl) {
			asked = rl.After
		}
		pause(asked)
	}
}

// read returns the event in the queue file name.
func (q *Queue) read(name string) (Event, error) {
	_, id, ok := parseQueueName(name)
	if !ok {
		return Event{}, fmt.Errorf("%w: the file's name is not <sequence>-<id>.json", ErrBadEvent)
	}
	f, err := os.Open(filepath.Join(q.dir, name))
	if err != nil {
		return Event{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxEventBytes+1))
	if err != nil {
		return Event{}, err
	}
	e, err := decodeEvent(b)
	if err == nil && e.ID != id {
		err = fmt.Errorf("%w: the file's name says id %s, its event %s", ErrBadEvent, id, e.ID)
	}
	return e, err
}

// decodeEvent parses a queue file's bytes.
func decodeEvent(b []byte) (Event, error) {
	if len(b) > MaxEventBytes {
		return Event{}, fmt.Errorf("%w: over %d bytes", ErrBadEvent, MaxEventBytes)
	}
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrBadEvent, err)
	}
	return e, e.check()
}

// setAside renames a queue file that makes no sense so that it holds up
// nothing, and reports it. It returns false when that failed too.
func (q *Queue) setAside(name string, why error) bool {
	path := filepath.Join(q.dir, name)
	err := os.Rename(path, path+asideSuffix)
	if err == nil {
		err = outbox.SyncDir(q.dir)
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		q.failed(fmt.Errorf("alert: queue %s: set aside %s: %w", q.opts.Label, name, err))
		return false
	}
	q.mu.Lock()
	q.status.SetAside++
	q.status.Pending = max(q.status.Pending-1, 0)
	q.status.LastError = fmt.Sprintf("set aside %s: %v", name+asideSuffix, why)
	q.mu.Unlock()
	q.log.Error("alert: a queue file makes no sense; set it aside", "target", q.opts.Label, "file", name+asideSuffix, "err", why)
	return true
}

// delivered removes the file of an event the target accepted.
func (q *Queue) delivered(name string, e Event, late time.Duration) {
	err := os.Remove(filepath.Join(q.dir, name))
	if err == nil {
		err = outbox.SyncDir(q.dir)
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		// It will be sent again: at least once, never lost.
		q.log.Error("alert: delivered, but its queue file stays", "target", q.opts.Label, "id", e.ID, "err", err)
	}
	if late > 0 {
		q.log.Warn("alert: delivered late", "target", q.opts.Label, "event", e.Name, "id", e.ID, "late", late.Round(time.Second))
	} else {
		q.log.Info("alert: delivered", "target", q.opts.Label, "event", e.Name, "id", e.ID)
	}
	q.lastLoggedAs = ""
	q.mu.Lock()
	q.status.Pending = max(q.status.Pending-1, 0)
	q.status.LastError, q.status.NeedsFix, q.status.Fix = "", false, ""
	q.status.Delivered++
	q.status.LastDelivered, q.status.LastDeliveredAt, q.status.Late = e.ID, q.wall.Now(), late
	q.mu.Unlock()
	if q.opts.Accepted != nil {
		q.opts.Accepted(e)
	}
}

// refused reports a target's permanent refusal.
func (q *Queue) refused(p *Permanent) {
	q.mu.Lock()
	q.status.LastError, q.status.NeedsFix, q.status.Fix = p.Error(), true, p.Fix
	q.mu.Unlock()
	if msg := p.Error(); msg != q.lastLoggedAs {
		q.lastLoggedAs = msg
		q.log.Error("alert: the target refuses; its events wait until it is fixed", "target", q.opts.Label, "err", p.Err, "fix", p.Fix)
	}
}

// failed reports an error worth retrying: at warning level when it is new,
// so that an outage of hours logs a line, not thousands.
func (q *Queue) failed(err error) {
	q.mu.Lock()
	q.status.LastError, q.status.NeedsFix, q.status.Fix = err.Error(), false, ""
	q.mu.Unlock()
	level := slog.LevelDebug
	if msg := err.Error(); msg != q.lastLoggedAs {
		q.lastLoggedAs, level = msg, slog.LevelWarn
	}
	q.log.Log(context.Background(), level, "alert: delivery failed; retrying", "target", q.opts.Label, "err", err)
}
