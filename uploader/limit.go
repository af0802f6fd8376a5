package uploader

import (
	"context"
	"io"
	"sync"
	"time"
)

// Limiter caps the rate of the bytes read through its readers, so that a
// shop's uplink is not filled by a clip. A nil *Limiter does not limit.
type Limiter struct {
	bytesPerSecond float64
	ctx            context.Context

	mu    sync.Mutex // guards next
	next  time.Time  // when the bytes granted so far have been paid for
	sleep func(context.Context, time.Duration)
}

// NewLimiter returns a Limiter for kbps kilobits per second, or nil for 0.
// Its readers stop waiting when ctx ends.
func NewLimiter(ctx context.Context, kbps int) *Limiter {
	if kbps <= 0 {
		return nil
	}
	return &Limiter{bytesPerSecond: float64(kbps) * 1000 / 8, ctx: ctx, sleep: sleepCtx}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
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
	now := time.Now()
	if l.next.Before(now) {
		l.next = now
	}
	l.next = l.next.Add(time.Duration(float64(n) / l.bytesPerSecond * float64(time.Second)))
	d := l.next.Sub(now)
	l.mu.Unlock()
	if d > 0 {
		l.sleep(l.ctx, d)
	}
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
