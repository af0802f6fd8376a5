// Package backoff says how long to wait before retrying: exponential, capped,
// with jitter so that many devices do not retry in step.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Backoff is how long to wait before retrying something that failed: it
// doubles from Min up to Max, with up to Jitter (a fraction) of each delay
// added at random so that retries of many devices do not align. The zero
// value waits 1 s to 1 min with 20% jitter.
type Backoff struct {
	Min, Max time.Duration
	Jitter   float64
}

// Delay returns the wait before retry number attempt (0 for the first).
func (b Backoff) Delay(attempt int) time.Duration {
	lo, hi, jitter := b.Min, b.Max, b.Jitter
	if lo <= 0 {
		lo = time.Second
	}
	if hi <= 0 {
		hi = time.Minute
	}
	if b == (Backoff{}) {
		jitter = 0.2
	}
	d := lo
	for range min(attempt, 62) {
		if d >= hi/2 {
			d = hi
			break
		}
		d *= 2
	}
	d = min(d, hi)
	if jitter > 0 {
		d += time.Duration(rand.Float64() * jitter * float64(d))
	}
	return d
}
