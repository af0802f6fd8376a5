package uploader

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/minio/minio-go/v7"

	"mamoru/bucket"
	"mamoru/bucket/s3test"
	"mamoru/outbox"
)

// drive moves fc on by step each time something waits on it, until done is
// closed, and returns how far it moved fc.
func drive(t *testing.T, fc *clockwork.FakeClock, step time.Duration, done <-chan struct{}) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	waiting, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		select {
		case <-done:
			stop()
		case <-waiting.Done():
		}
	}()
	var moved time.Duration
	for {
		err := fc.BlockUntilContext(waiting, 1)
		select {
		case <-done:
			return moved
		default:
		}
		if err != nil {
			t.Fatalf("not done after 60 s, the clock moved %v", moved)
		}
		fc.Advance(step)
		moved += step
	}
}

// A Limiter lets bytes through at its rate on its clock, to the
// millisecond, and stops waiting when its context ends.
func TestLimiter(t *testing.T) {
	const size = 250_000
	for _, tc := range []struct {
		name   string
		kbps   int
		reads  int // the reader's reads: each may overshoot the rate by a step
		want   time.Duration
		cancel bool
	}{
		{"100 kB/s", 800, 8, 2500 * time.Millisecond, false},
		{"1 MB/s", 8000, 8, 250 * time.Millisecond, false},
		{"cancelled", 800, 1, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc := clockwork.NewFakeClock()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			r := NewLimiter(ctx, fc, tc.kbps).Reader(bytes.NewReader(make([]byte, size)))
			done := make(chan struct{})
			var n int64
			var err error
			go func() {
				defer close(done)
				// Neither side may pick the buffer: reads of 32 KiB.
				n, err = io.CopyBuffer(struct{ io.Writer }{io.Discard}, struct{ io.Reader }{r}, make([]byte, 32<<10))
			}()
			if tc.cancel {
				waitForClock(t, fc)
				cancel()
				<-done
				if !errors.Is(err, context.Canceled) || n >= size {
					t.Errorf("after cancel: read %d bytes, err %v; want context.Canceled before the end", n, err)
				}
				return
			}
			const step = time.Millisecond
			moved := drive(t, fc, step, done)
			if err != nil || n != size {
				t.Fatalf("read %d bytes, err %v; want %d, nil", n, err, size)
			}
			if moved < tc.want || moved > tc.want+time.Duration(tc.reads)*step {
				t.Errorf("%d bytes at %d kbit/s took %v on the clock, want %v (within %v)", size, tc.kbps, moved, tc.want, time.Duration(tc.reads)*step)
			}
		})
	}
	if l := NewLimiter(t.Context(), nil, 0); l != nil {
		t.Errorf("NewLimiter for 0 kbit/s = %v, want nil (no limit)", l)
	}
}

// max_bandwidth_kbps holds an upload to the shop's share of its uplink: a
// clip cannot arrive faster than the cap allows on the uploader's clock,
// and still arrives whole.
func TestBandwidthCap(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	srv.Bucket("clips")
	box := t.TempDir()
	const size = 300 << 10
	m := makeIncident(t, box, "20261123-083000-000001", size)
	st := srv.Storage("clips")
	st.MaxBandwidthKbps = 800 // 100 kB/s: the clip takes at least 3 s
	shipped := make(chan struct{})
	fc := clockwork.NewFakeClock()
	u := &Uploader{Outbox: outbox.Outbox{Dir: box}, Storage: st, Location: tokyo, Log: testLog(t), Clock: fc,
		Shipped: func(outbox.Manifest, string) { close(shipped) }}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	took := drive(t, fc, 10*time.Millisecond, shipped)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if least := time.Duration(float64(size) / 100e3 * float64(time.Second)); took < least {
		t.Errorf("a %d-byte clip capped at 800 kbit/s arrived after %v on the clock, want at least %v", size, took, least)
	}
	got := objectSHA256(t, srv.Root(), "clips", bucket.ObjectDir("", m, tokyo)+"/"+outbox.ClipFile, minio.GetObjectOptions{})
	if got != m.Clip.SHA256 {
		t.Errorf("the capped clip arrived with SHA-256 %s, want %s", got, m.Clip.SHA256)
	}
	t.Logf("%d bytes at 800 kbit/s: %v on the clock", size, took)
}
