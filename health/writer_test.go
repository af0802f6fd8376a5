package health

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

// bucket is a Putter whose writes wait for the test: each call shows up on
// calls, and returns what is sent on its answer, or when its ctx ends.
type bucket struct {
	calls chan put
}

type put struct {
	ctx    context.Context
	key    string
	report Report
	answer chan error
}

func (b *bucket) Put(ctx context.Context, key string, body []byte) error {
	r, err := Parse(body)
	if err != nil {
		return err
	}
	p := put{ctx: ctx, key: key, report: r, answer: make(chan error)}
	b.calls <- p
	select {
	case err := <-p.answer:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// syncLog is a log the writer's goroutine writes while the test reads it.
type syncLog struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func startWriter(t *testing.T) (*Writer, *bucket, *clockwork.FakeClock, *syncLog) {
	t.Helper()
	b := &bucket{calls: make(chan put)}
	clk := clockwork.NewFakeClockAt(time.Unix(1000, 0))
	wall := clockwork.NewFakeClockAt(time.Date(2026, 11, 30, 14, 3, 0, 0, time.UTC))
	log := &syncLog{}
	w := &Writer{Bucket: b, Key: "m/shop-1/counter-1/health.json", Clock: clk, Wall: wall, Zone: time.FixedZone("JST", 9*3600),
		Log: slog.New(slog.NewTextHandler(log, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return w, b, clk, log
}

func (b *bucket) next(t *testing.T) put {
	t.Helper()
	select {
	case p := <-b.calls:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("no write to the bucket")
	}
	panic("unreachable")
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s", what)
		}
	}
}

// While a write is held up, Send does not wait, and of the reports sent
// meanwhile only the newest is written next.
func TestWriterLatestWins(t *testing.T) {
	w, b, _, _ := startWriter(t)
	report := func(state string) Report { r := sample(); r.State = state; return r }
	w.Send(report("idle"))
	first := b.next(t)
	if first.key != w.Key || first.report.State != "idle" {
		t.Fatalf("first write: %s %s, want %s idle", first.key, first.report.State, w.Key)
	}
	// The report is stamped as it is written, by the wall clock, in the
	// device's zone.
	if want := time.Date(2026, 11, 30, 14, 3, 0, 0, time.UTC); !first.report.Sent.Equal(want) || first.report.Sent.Hour() != 23 {
		t.Errorf("sent %v, want the wall clock's %v in JST", first.report.Sent, want)
	}
	sent := make(chan struct{})
	go func() {
		for _, s := range []string{"buffering", "incident", "fault"} {
			w.Send(report(s))
		}
		close(sent)
	}()
	select {
	case <-sent:
	case <-time.After(10 * time.Second):
		t.Fatal("Send waited for a write held up")
	}
	first.answer <- nil
	second := b.next(t)
	if second.report.State != "fault" {
		t.Errorf("written after the held-up write: %s, want the newest, fault", second.report.State)
	}
	second.answer <- nil
	waitFor(t, "two writes counted", func() bool { return w.Status().Written == 2 })
	if st := w.Status(); st.Replaced != 2 || st.LastError != "" {
		t.Errorf("status %+v, want 2 replaced and no error", st)
	}
}

// A write with no answer is given up after Timeout on the clock; failures
// show in the status while they last and are logged once, and the next
// write that works says so.
func TestWriterTimeoutAndFailures(t *testing.T) {
	w, b, clk, log := startWriter(t)
	w.Send(sample())
	b.next(t) // never answered
	clk.Advance(15*time.Second - time.Millisecond)
	select {
	case p := <-b.calls:
		t.Fatalf("a second write (%s) began before the first timed out", p.report.State)
	default:
	}
	clk.Advance(time.Millisecond)
	waitFor(t, "the timeout in the status", func() bool { return w.Status().LastError != "" })
	st := w.Status()
	if !strings.Contains(st.LastError, "no answer within 15s") || !st.FailingSince.Equal(clk.Now()) {
		t.Errorf("status after a timeout: %+v; want no answer within 15s, failing since %v", st, clk.Now())
	}
	for range 3 {
		clk.Advance(Interval)
		w.Send(sample())
		b.next(t).answer <- errors.New("503 Service Unavailable")
	}
	waitFor(t, "the last failure", func() bool { return strings.Contains(w.Status().LastError, "503") })
	if st := w.Status(); !st.FailingSince.Equal(time.Unix(1015, 0)) || st.Written != 0 {
		t.Errorf("status after 4 failures: %+v; want failing since the first, none written", st)
	}
	if n := strings.Count(log.String(), "cannot write the health report"); n != 1 {
		t.Errorf("4 failures logged %d times, want once:\n%s", n, log)
	}
	w.Send(sample())
	b.next(t).answer <- nil
	waitFor(t, "a write", func() bool { return w.Status().Written == 1 })
	if st := w.Status(); st.LastError != "" || !st.FailingSince.IsZero() {
		t.Errorf("status after a write that worked: %+v, want no error", st)
	}
	waitFor(t, "the log to say it works again", func() bool { return strings.Contains(log.String(), "written to the bucket again") })
}
