package capture

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"mamoru/backoff"
	"mamoru/clock"
)

// A Source is a capture device the recorder runs: the camera (*VideoSource)
// or the microphone (*AudioSource).
//
// Run opens the device and captures into the source's Ring until ctx ends.
// A device that fails, stops or stalls is closed and opened again after a
// backoff, for as long as ctx lasts; each failure is logged and counted in
// Health, not returned. When ctx ends, Run closes the device and returns
// nil; for the camera, once its encoder and every other process of the
// encoder's process group have exited (one that SIGKILL cannot end within
// 2 s, stuck in the kernel, is logged and left). Run returns a non-nil error
// only when the source can never capture as it is built or configured
// (ErrNoMicrophone, a missing Ring): at once, with nothing left open. Run
// must not be called again before an earlier call has returned.
//
// Health may be called from any goroutine at any time, also while Run runs.
type Source interface {
	Run(ctx context.Context) error
	Health() Health
}

var (
	_ Source = (*VideoSource)(nil)
	_ Source = (*AudioSource)(nil)
)

// Health is what a source reports about itself for status and the watchdog.
type Health struct {
	Running   bool          `json:"running"`
	Frames    uint64        `json:"frames"`
	LastFrame time.Duration `json:"-"` // media time of the newest frame
	Restarts  int           `json:"restarts"`
	LastError string        `json:"last_error,omitempty"`
}

// healthBox is a Health shared between a source's goroutine and readers.
type healthBox struct {
	mu sync.Mutex // guards h
	h  Health
}

func (b *healthBox) get() Health {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.h
}

func (b *healthBox) frame(t time.Duration) {
	b.mu.Lock()
	b.h.Frames++
	b.h.LastFrame = t
	b.mu.Unlock()
}

func (b *healthBox) running(on bool) {
	b.mu.Lock()
	b.h.Running = on
	b.mu.Unlock()
}

// failed records a session's failure; restart says whether another session
// follows.
func (b *healthBox) failed(err error, restart bool) {
	b.mu.Lock()
	b.h.Running = false
	if restart {
		b.h.Restarts++
	}
	b.h.LastError = err.Error()
	b.mu.Unlock()
}

// healthyRun is how long a session must have run for its failure to count as
// a new one, the backoff starting again from its minimum: a camera that fails
// once an hour waits the shortest delay, not the longest.
const healthyRun = time.Minute

// errSessionEnded stands in for the error of a session that ended by itself
// without saying why.
var errSessionEnded = errors.New("the device stopped")

// fatalError marks a session's error as one no restart can cure: the source
// cannot run as it is built or configured.
type fatalError struct{ err error }

func (e fatalError) Error() string { return e.err.Error() }
func (e fatalError) Unwrap() error { return e.err }

// restarter runs a source's sessions one after another until its context
// ends: a session opens the device, captures until ctx ends or the device
// fails, closes the device and returns why it ended (nil once ctx has
// ended). Between a failed session and the next it waits the backoff.
type restarter struct {
	clock   clock.Clock
	backoff backoff.Backoff
	health  *healthBox
	log     *slog.Logger
	what    string // the source, in log messages: "video source"
}

// run returns nil once ctx has ended and the session running then has
// returned, or at once the error of a session that wraps a fatalError.
func (r *restarter) run(ctx context.Context, session func(context.Context) error) error {
	defer r.health.running(false)
	for attempt := 0; ; attempt++ {
		began := r.clock.Now()
		err := session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = errSessionEnded
		}
		if fatal, ok := errors.AsType[fatalError](err); ok {
			r.health.failed(err, false)
			r.log.Error(r.what+" cannot run", "err", err)
			return fatal.err
		}
		r.health.failed(err, true)
		if r.clock.Since(began) > healthyRun {
			attempt = 0
		}
		wait := r.backoff.Delay(attempt)
		r.log.Error(r.what+" failed; restarting", "err", err, "retry_in", wait)
		if !clock.Sleep(ctx, r.clock, wait) {
			return nil
		}
	}
}

// orDefault returns l, or slog's default logger if l is nil.
func orDefault(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.Default()
	}
	return l
}
