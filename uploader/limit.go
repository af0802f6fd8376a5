package uploader

import (
	"context"
	"io"
	"sync"
	"time"

	"mamoru/clock"
)

// Limiter caps the rate of the bytes read through its readers, so that a
// shop's uplink is not filled by a clip. A nil *Limiter does not limit.
type Limiter struct {
	bytesPerSecond float64
	ctx            context.Context
	clock          clock.Clock

	mu   sync.Mutex // guards next
	next time.Time  // when the bytes granted so far have been paid for
}

// NewLimiter returns a Limiter for kbps kilobits per second on c
// (clock.Real() if nil), or nil for 0. Its readers stop waiting when ctx
// ends.
func NewLimiter(ctx context.Context, c clock.Clock, kbps int) *Limiter {
	if kbps <= 0 {
		return nil
	}
	c = clock.Or(c)
	return &Limiter{bytesPerSecond: float64(kbps) * 1000 / 8, ctx: ctx, clock: c}
}

// Reader returns r, limited.
func (l *Limiter) Reader(r io.Reader) io.Reader {
	if l == nil {
		return r
	}
	return &limitedReader{r: r, l: l}
}

// wait blocks until n more bytes may pass.
func (l *Limiter) wait(n int) error {
	l.mu.Lock()
	now := l.clock.Now()
	if l.next.Before(now) {
		l.next = now
	}
	l.next = l.next.Add(time.Duration(float64(n) / l.bytesPerSecond * float64(time.Second)))
	d := l.next.Sub(now)
	l.mu.Unlock()
	clock.Sleep(l.ctx, l.clock, d)
	return l.ctx.Err()
}

type limitedReader struct {
	r io.Reader
	l *Limiter
}

func (lr *limitedReader) Read(p []byte) (int, error) {
	// Small reads keep the rate smooth: a 32 KiB burst at most.
	if len(p) > 32<<10 {
		p = p[:32<<10]
	}
	n, err := lr.r.Read(p)
	if n > 0 {
		if werr := lr.l.wait(n); werr != nil {
			return n, werr
		}
	}
	return n, err
}
