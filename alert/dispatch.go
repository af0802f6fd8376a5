package alert

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mamoru/health"
	"sync"
	"sync/atomic"
)

// Route is one target's place in a Dispatcher: the events it takes, and
// its queue.
type Route struct {
	Filter Filter
	Queue  *Queue
}

// DispatcherOptions configure a Dispatcher. The zero value is usable.
type DispatcherOptions struct {
	// Buffer is how many events Publish may hand over before Run has
	// queued them; beyond it, Publish drops events. Zero is 256.
	Buffer int
	Log    *slog.Logger // nil: slog.Default()
}

// Dispatcher hands each event to the queue of every target whose filter
// matches it. Publish never blocks and never touches the disk: the
// recorder calls it from the press's path. Run owns the goroutines that
// write events into the queues and deliver them.
//
// To learn that a target accepted an incident.started (the indicator's
// sign that the call went out), the caller sets QueueOptions.Accepted on
// the queues it builds.
type Dispatcher struct {
	routes  []Route
	in      chan Event
	reports chan health.Report // the newest report not yet passed on (Follow)
	log     *slog.Logger
	dropped atomic.Int64 // events Publish dropped, the buffer being full
	lost    atomic.Int64 // events a queue could not take (its Put failed)
}

// NewDispatcher returns a dispatcher over routes.
func NewDispatcher(routes []Route, o DispatcherOptions) *Dispatcher {
	if o.Buffer <= 0 {
		o.Buffer = 256
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return &Dispatcher{routes: routes, in: make(chan Event, o.Buffer), reports: make(chan health.Report, 1), log: o.Log}
}

// Publish hands e over to be queued for every target that takes it, and
// returns at once. It reports false, and counts a drop, when the buffer is
// full (Run is not keeping up, or not running): it never waits. The caller
// must not change e.Details afterwards: the map is not copied.
//
// An event is durable only once Run has put it in the queues, moments
// later. One the recorder can derive again from the card (incident.started
// from an incident's directory) can survive a crash in between by being
// published again at the next start with the same id, kept beside it:
// queues drop an id they already hold.
func (d *Dispatcher) Publish(e Event) bool {
	select {
	case d.in <- e:
		return true
	default:
		d.dropped.Add(1)
		return false
	}
}

// DispatcherStatus is a dispatcher's state: its queues', and what it lost.
type DispatcherStatus struct {
	Targets []Status `json:"targets"`
	Dropped int64    `json:"dropped,omitempty"` // events Publish dropped, its buffer full
	Lost    int64    `json:"lost,omitempty"`    // events a queue could not take (a full or failing card)
}

// Status returns a snapshot of the dispatcher's and every queue's state.
func (d *Dispatcher) Status() DispatcherStatus {
	st := DispatcherStatus{Dropped: d.dropped.Load(), Lost: d.lost.Load()}
	for _, r := range d.routes {
		st.Targets = append(st.Targets, r.Queue.Status())
	}
	return st
}

// Follower is a target that says the device's state (MQTT): the
// dispatcher hands it each report the recorder makes (Follow).
type Follower interface {
	Follow(health.Report)
}

// Follow hands r, the recorder's newest report, to every target that is
// a Follower, and returns at once: it never waits and never blocks, as it
// is called from the recorder's goroutine. Of reports handed over faster
// than Run passes them on, the newest wins.
func (d *Dispatcher) Follow(r health.Report) {
	for {
		select {
		case d.reports <- r:
			return
		default:
		}
		select {
		case <-d.reports: // an older one, not yet passed on
		default:
		}
	}
}

// follow passes each report on to the targets that follow the state,
// until ctx ends.
func (d *Dispatcher) follow(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-d.reports:
			for _, rt := range d.routes {
				if f, ok := rt.Queue.target.(Follower); ok {
					f.Follow(r)
				}
			}
		}
	}
}

// Connector is a target that keeps a connection (MQTT): Run connects it
// at start, before its queue runs, so that it is seen online before its
// first event. An error is logged; Send connects again.
type Connector interface {
	Connect(ctx context.Context) error
}

// Run queues what Publish hands over and runs every queue, until ctx ends;
// then it queues what Publish had handed over by then, closes each target
// that is an io.Closer (an MQTT target says offline), and returns when all
// its goroutines have. A target that is a Connector is connected first.
func (d *Dispatcher) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, r := range d.routes {
		wg.Go(func() {
			if c, ok := r.Queue.target.(Connector); ok {
				if err := c.Connect(ctx); err != nil && ctx.Err() == nil {
					d.log.Warn("alert: connecting a target", "target", r.Queue.opts.Label, "err", err)
				}
			}
			r.Queue.Run(ctx)
		})
	}
	wg.Go(func() { d.follow(ctx) })
	d.intake(ctx)
	wg.Wait()
	for _, r := range d.routes {
		if c, ok := r.Queue.target.(io.Closer); ok {
			if err := c.Close(); err != nil {
				d.log.Warn("alert: closing a target", "target", r.Queue.opts.Label, "err", err)
			}
		}
	}
}

// intake puts each event published into the matching queues.
func (d *Dispatcher) intake(ctx context.Context) {
	var reported int64 // drops already logged
	for {
		select {
		case <-ctx.Done():
			// What was published before the end goes on the card, for
			// the next start: a stop is often a press's power cut coming.
			for {
				select {
				case e := <-d.in:
					d.queue(e)
				default:
					return
				}
			}
		case e := <-d.in:
			d.queue(e)
		}
		if n := d.dropped.Load(); n != reported {
			d.log.Error("alert: events dropped, the dispatcher being behind", "dropped", n-reported, "total", n)
			reported = n
		}
	}
}

// Put puts e in the queue of every target that takes it, as Run does with
// what Publish hands over, and returns once it is on the card. It does
// disk I/O and fsyncs: for an event that must be durable before the
// caller goes on, never on a press's path: an interrupted incident's
// press, said again at start before recovery changes the incident, and
// fleet watch's events, which it records as raised only once they are.
// Its error joins every queue's that could not take e (each counted as
// lost, and logged).
func (d *Dispatcher) Put(e Event) error {
	var errs []error
	for _, r := range d.routes {
		if !r.Filter.Match(e.Name) {
			continue
		}
		if err := r.Queue.Put(e); err != nil {
			d.lost.Add(1)
			d.log.Error("alert: could not queue an event", "target", r.Queue.opts.Label, "event", e.Name, "id", e.ID, "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", r.Queue.opts.Label, err))
		}
	}
	return errors.Join(errs...)
}

// queue puts e in the queue of every target that takes it.
func (d *Dispatcher) queue(e Event) { _ = d.Put(e) }
