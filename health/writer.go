package health

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"mamoru/clock"
)

// Putter stores body at key in the bucket, replacing whatever is there.
// It must return once ctx ends. The device's is uploader.HealthObject.
type Putter interface {
	Put(ctx context.Context, key string, body []byte) error
}

// Writer keeps a device's newest report in the bucket. Send hands it a
// report and never waits; Run, on its own goroutine, writes the newest
// report it was handed, each with at most Timeout to do it. A report
// handed over while another is being written replaces any that waits: only
// the newest is worth writing. One that fails is not tried again: the next
// report, which the recorder sends every Interval, is.
//
// It goes around the clip uploads and their bandwidth cap: a report is a
// few hundred bytes, and a manager must hear of a device while a long clip
// is on its way.
type Writer struct {
	Bucket Putter
	Key    string // Key(prefix, store, device)
	// Clock times each write's Timeout; Wall stamps each report's Sent as
	// it is written. nil is the system clock.
	Clock, Wall clock.Clock
	// Zone is the device's time zone (device.timezone), which Sent is
	// given in; nil leaves it in the wall clock's.
	Zone *time.Location
	// Timeout bounds one write: 15 s if 0, so that one the network holds
	// up does not delay the next report much.
	Timeout time.Duration
	Log     *slog.Logger

	once sync.Once
	wake chan struct{} // a report waits

	mu      sync.Mutex // guards next, waiting and st
	next    Report
	waiting bool
	st      WriterStatus
}

// WriterStatus is what Writer has done, for `mamoru status`.
type WriterStatus struct {
	Written     int       `json:"written"`
	LastWritten time.Time `json:"last_written,omitzero"` // by Clock
	// Replaced counts reports a newer one replaced before they were
	// written.
	Replaced int `json:"replaced,omitempty"`
	// LastError is why the last write failed, while writes fail;
	// FailingSince is when they began to.
	LastError    string    `json:"last_error,omitempty"`
	FailingSince time.Time `json:"failing_since,omitzero"`
}

func (w *Writer) init() { w.once.Do(func() { w.wake = make(chan struct{}, 1) }) }

// Send hands w the newest report, replacing any not yet written. It never
// waits.
func (w *Writer) Send(r Report) {
	w.init()
	w.mu.Lock()
	if w.waiting {
		w.st.Replaced++
	}
	w.next, w.waiting = r, true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Status returns what w has done.
func (w *Writer) Status() WriterStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.st
}

// Run writes each newest report until ctx ends.
func (w *Writer) Run(ctx context.Context) error {
	w.init()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.wake:
		}
		w.mu.Lock()
		r, ok := w.next, w.waiting
		w.waiting = false
		w.mu.Unlock()
		if ok {
			w.write(ctx, r)
		}
	}
}

// write stamps r with the wall clock and writes it, and keeps the outcome.
// A failure is logged as writes begin to fail, not every time.
func (w *Writer) write(ctx context.Context, r Report) {
	clk := clock.Or(w.Clock)
	r.Sent = clock.Or(w.Wall).Now()
	if w.Zone != nil {
		r.Sent = r.Sent.In(w.Zone)
	}
	err := w.put(ctx, clk, r)
	if ctx.Err() != nil {
		return // shutting down: not a failure of the bucket
	}
	w.mu.Lock()
	failing := w.st.LastError != ""
	if err == nil {
		w.st.Written++
		w.st.LastWritten = clk.Now()
		w.st.LastError, w.st.FailingSince = "", time.Time{}
	} else {
		w.st.LastError = err.Error()
		if !failing {
			w.st.FailingSince = clk.Now()
		}
	}
	w.mu.Unlock()
	switch {
	case err != nil && !failing:
		w.log().Error("cannot write the health report to the bucket; trying again with the next", "key", w.Key, "err", err)
	case err == nil && failing:
		w.log().Info("the health report is written to the bucket again", "key", w.Key)
	}
}

func (w *Writer) put(ctx context.Context, clk clock.Clock, r Report) error {
	b, err := r.Marshal()
	if err != nil {
		return err
	}
	timeout := w.Timeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	expired := make(chan struct{})
	t := clk.AfterFunc(timeout, func() { close(expired); cancel() })
	defer t.Stop()
	err = w.Bucket.Put(ctx, w.Key, b)
	select {
	case <-expired:
		if err != nil {
			return fmt.Errorf("health: write %s: no answer within %s", w.Key, timeout)
		}
	default:
	}
	if err != nil {
		return fmt.Errorf("health: write %s: %w", w.Key, err)
	}
	return nil
}

func (w *Writer) log() *slog.Logger {
	if w.Log == nil {
		return slog.Default()
	}
	return w.Log
}
