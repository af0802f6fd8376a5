package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"mamoru/backoff"
	"mamoru/clock"
)

// guard bounds a test's wait for something that must happen without any
// real time passing; only a broken restarter makes a test wait that long.
const guard = 10 * time.Second

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// A session that fails is started again after exactly the backoff, measured
// on the restarter's clock; each failure is a restart in Health; a session
// that ran over healthyRun starts the backoff over.
func TestRestarterWaitsTheBackoff(t *testing.T) {
	// Each session runs for runs on the clock and fails; the restarter must
	// then wait exactly wait before the next.
	sessions := []struct{ runs, wait time.Duration }{
		{0, time.Second},
		{0, 2 * time.Second},
		{0, 4 * time.Second},
		{0, 4 * time.Second}, // Max
		{healthyRun, 4 * time.Second},
		{healthyRun + time.Millisecond, time.Second}, // it ran well: a new failure
		{0, 2 * time.Second},
	}
	fc := clockwork.NewFakeClock()
	var h healthBox
	r := &restarter{clock: fc, backoff: backoff.Backoff{Min: time.Second, Max: 4 * time.Second}, health: &h, log: discard, what: "test source"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	entered := make(chan time.Time)
	n := 0 // sessions started; used by the restarter's goroutine only
	session := func(ctx context.Context) error {
		i := n
		n++
		select {
		case entered <- fc.Now():
		case <-ctx.Done():
			return nil
		}
		if i == len(sessions) || !clock.Sleep(ctx, fc, sessions[i].runs) {
			<-ctx.Done()
			return nil
		}
		return fmt.Errorf("session %d failed", i)
	}
	done := make(chan error, 1)
	go func() { done <- r.run(ctx, session) }()

	gctx, gcancel := context.WithTimeout(ctx, guard)
	defer gcancel()
	// timerSet waits until the restarter or the session waits on fc.
	timerSet := func(what string) {
		t.Helper()
		if err := fc.BlockUntilContext(gctx, 1); err != nil {
			t.Fatalf("%s: nothing waits on the clock", what)
		}
	}
	begin := fc.Now()
	want := begin
	for i, s := range sessions {
		select {
		case at := <-entered:
			if !at.Equal(want) {
				t.Fatalf("session %d started at %v, want %v", i, at.Sub(begin), want.Sub(begin))
			}
		case <-gctx.Done():
			t.Fatalf("session %d never started", i)
		}
		if s.runs > 0 {
			timerSet(fmt.Sprintf("session %d", i))
			fc.Advance(s.runs)
		}
		timerSet(fmt.Sprintf("after session %d", i))
		if got := h.get().Restarts; got != i+1 {
			t.Errorf("after session %d: Health().Restarts = %d, want %d", i, got, i+1)
		}
		fc.Advance(s.wait - time.Nanosecond)
		// A nanosecond short of the backoff the restarter still waits on its
		// timer; one that woke would start a session instead.
		waiting := make(chan error, 1)
		go func() { waiting <- fc.BlockUntilContext(gctx, 1) }()
		select {
		case <-entered:
			t.Fatalf("session %d started before the backoff of %v ended", i+1, s.wait)
		case err := <-waiting:
			if err != nil {
				t.Fatalf("after session %d: nothing waits on the clock", i)
			}
		}
		fc.Advance(time.Nanosecond)
		want = want.Add(s.runs + s.wait)
	}
	select {
	case <-entered:
	case <-gctx.Done():
		t.Fatal("the last session never started")
	}
	if got, want := h.get().LastError, fmt.Sprintf("session %d failed", len(sessions)-1); got != want {
		t.Errorf("Health().LastError = %q, want %q", got, want)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run = %v after its context ended, want nil", err)
		}
	case <-time.After(guard):
		t.Fatal("run did not return after its context ended")
	}
}

var errTest = errors.New("the test's failure")

// The restarter stops when its context ends, whatever it is doing then,
// without waiting on its clock, and at once on a fatal error.
func TestRestarterStops(t *testing.T) {
	tests := []struct {
		name string
		// session fails or waits for ctx; stop ends the run once the
		// session has been entered for the first time.
		session      func(ctx context.Context) error
		stop         func(cancel context.CancelFunc, fc *clockwork.FakeClock, gctx context.Context) error
		wantErr      error
		wantRestarts int
		wantLast     string
	}{{
		name:    "during a session",
		session: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() },
		stop: func(cancel context.CancelFunc, _ *clockwork.FakeClock, _ context.Context) error {
			cancel()
			return nil
		},
	}, {
		name:    "during the backoff",
		session: func(ctx context.Context) error { return errTest },
		stop: func(cancel context.CancelFunc, fc *clockwork.FakeClock, gctx context.Context) error {
			err := fc.BlockUntilContext(gctx, 1) // the backoff's timer
			cancel()
			return err
		},
		wantRestarts: 1,
		wantLast:     errTest.Error(),
	}, {
		name:    "a fatal error",
		session: func(ctx context.Context) error { return fatalError{fmt.Errorf("wrapped: %w", errTest)} },
		stop: func(context.CancelFunc, *clockwork.FakeClock, context.Context) error {
			return nil
		},
		wantErr:  errTest,
		wantLast: "wrapped: " + errTest.Error(),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc := clockwork.NewFakeClock()
			var h healthBox
			r := &restarter{clock: fc, backoff: backoff.Backoff{Min: time.Hour, Max: time.Hour}, health: &h, log: discard, what: "test source"}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			gctx, gcancel := context.WithTimeout(context.Background(), guard)
			defer gcancel()
			entered := make(chan struct{}, 1)
			done := make(chan error, 1)
			go func() {
				done <- r.run(ctx, func(ctx context.Context) error {
					h.running(true)
					select {
					case entered <- struct{}{}:
					default:
					}
					return tt.session(ctx)
				})
			}()
			<-entered
			if err := tt.stop(cancel, fc, gctx); err != nil {
				t.Fatalf("the restarter never waited on its clock: %v", err)
			}
			select {
			case err := <-done:
				if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
					t.Errorf("run = %v, want %v", err, tt.wantErr)
				}
			case <-gctx.Done():
				t.Fatal("run did not return")
			}
			got := h.get()
			if got.Running || got.Restarts != tt.wantRestarts || got.LastError != tt.wantLast {
				t.Errorf("Health() = %+v, want not running, %d restarts, last error %q", got, tt.wantRestarts, tt.wantLast)
			}
		})
	}
}

// A source with a required part missing is refused at once.
func TestSourcesNeedTheirParts(t *testing.T) {
	tl, ring := NewTimeline(clockwork.NewFakeClock(), nil), NewRing(1<<20, time.Second, 64)
	sources := map[string]Source{
		"video without a ring":     &VideoSource{Timeline: tl},
		"video without a timeline": &VideoSource{Ring: ring},
		"audio without a ring":     &AudioSource{Timeline: tl},
		"audio without a timeline": &AudioSource{Ring: ring},
	}
	for name, s := range sources {
		if err := s.Run(context.Background()); err == nil {
			t.Errorf("%s: Run = nil, want an error", name)
		}
	}
}
