// Package clock is mamoru's one notion of time. The recorder and every part
// it runs (the timeline, the sources, the uploader, the audit log, the GPIO
// driver) are handed a Clock: the real one in production, a
// clockwork.FakeClock in tests, which then decide exactly when a timer fires
// and never sleep for real. Only what measures the world as it is (the
// installer's self-test timing a real camera, a probe object's name) reads
// the system clock itself.
//
// Two clocks are kept apart. A Clock measures intervals and runs timers; it
// never jumps. The wall clock (also a Clock, handed in separately) is read
// only where the time of day is the point: recording hours, incident ids,
// manifest times. NTP really does set a Pi's wall clock hours or years
// forward after boot (it has no battery clock), and a test must be able to
// make it jump without moving any timer.
package clock

import (
	"context"
	"time"

	"github.com/jonboulle/clockwork"
)

// Clock tells the time and makes timers and tickers. It is clockwork's, so
// that tests can use clockwork.NewFakeClock.
type Clock = clockwork.Clock

// Real returns the system clock.
func Real() Clock { return clockwork.NewRealClock() }

// Or returns c, or the system clock if c is nil: what a part whose Clock
// field was left unset runs on.
func Or(c Clock) Clock {
	if c == nil {
		return Real()
	}
	return c
}

// Sleep waits d on c, and reports whether it did: false if ctx ended first.
func Sleep(ctx context.Context, c Clock, d time.Duration) bool {
	if ctx.Err() != nil {
		return false
	}
	if d <= 0 {
		return true
	}
	t := c.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.Chan():
		return true
	}
}
