package alert

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

// logSignal is a slog handler that passes each record whose message
// contains a text to a channel, so a test waits for what the code says it
// did instead of sleeping.
type logSignal struct {
	text string
	ch   chan slog.Record
}

func newLogSignal(text string) (*slog.Logger, <-chan slog.Record) {
	h := &logSignal{text: text, ch: make(chan slog.Record, 100)}
	return slog.New(h), h.ch
}

func (h *logSignal) Enabled(context.Context, slog.Level) bool { return true }
func (h *logSignal) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.text) {
		select {
		case h.ch <- r:
		default:
		}
	}
	return nil
}
func (h *logSignal) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logSignal) WithGroup(string) slog.Handler      { return h }

// wait returns the next value from ch, or fails the test when it has waited
// far longer than anything here takes.
func wait[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(20 * time.Second):
		t.Fatalf("waited 20 s for %s", what)
		panic("unreachable")
	}
}

// runQueue runs q until the test ends, and returns a function that stops
// it and waits until Run returns.
func runQueue(t testing.TB, q *Queue) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		q.Run(ctx)
	}()
	stop = func() {
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return stop
}

func webhookTo(t testing.TB, url string, wall clockwork.Clock) *Webhook {
	t.Helper()
	w, err := NewWebhook(WebhookOptions{Label: "本部", URL: url, Secret: testSecret, Wall: wall})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// events returns n new events, a second apart from start.
func events(n int, start time.Time) []Event {
	var es []Event
	for i := range n {
		es = append(es, origin.IncidentEvent(IncidentStarted, start.Add(time.Duration(i)*time.Second), "id", start))
	}
	return es
}

func ids(es []Event) []string {
	var s []string
	for _, e := range es {
		s = append(s, e.ID)
	}
	return s
}

// receivedEvents decodes what a receiver took, checking each signature.
func receivedEvents(t testing.TB, r *receiver, now time.Time) []Event {
	t.Helper()
	var es []Event
	for _, got := range r.received() {
		if err := verifyStandardWebhook(got.header, got.body, testSecret, now); err != nil {
			t.Errorf("signature: %v", err)
		}
		var e Event
		if err := json.Unmarshal(got.body, &e); err != nil {
			t.Fatal(err)
		}
		es = append(es, e)
	}
	return es
}

func TestQueueDeliversInOrder(t *testing.T) {
	r := newReceiver(t)
	accepted := make(chan Event, 100)
	dir := t.TempDir()
	q, err := OpenQueue(dir, webhookTo(t, r.URL, nil), QueueOptions{Label: "本部", Accepted: func(e Event) { accepted <- e }})
	if err != nil {
		t.Fatal(err)
	}
	want := events(5, time.Now())
	for _, e := range want {
		if err := q.Put(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Put(want[0]); err != nil { // pending already: not twice
		t.Fatal(err)
	}
	if got := q.Status().Pending; got != 5 {
		t.Errorf("Pending = %d after 5 puts, want 5", got)
	}
	runQueue(t, q)
	for range want {
		wait(t, accepted, "an event accepted")
	}
	got := receivedEvents(t, r, time.Now())
	if !slices.Equal(ids(got), ids(want)) {
		t.Errorf("received %v, want %v, once each in order", ids(got), ids(want))
	}
	for _, e := range got {
		if e.Late != 0 {
			t.Errorf("event %s marked %d s late, want on time", e.ID, e.Late)
		}
	}
	st := q.Status()
	if st.Pending != 0 || st.Delivered != 5 || st.LastDelivered != want[4].ID || st.LastError != "" || st.NeedsFix {
		t.Errorf("Status = %+v, want 5 delivered, the last %s, none pending", st, want[4].ID)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("the queue holds %d files after delivering all, want none", len(left))
	}
}

// TestQueueOutage cuts the network to the receiver for 5 minutes with 10
// presses in it: when it returns, every event arrives once, in order,
// marked late.
func TestQueueOutage(t *testing.T) {
	r := newReceiver(t)
	r.setCut(true)
	fc := clockwork.NewFakeClockAt(time.Date(2026, 11, 30, 5, 0, 0, 0, time.UTC))
	accepted := make(chan Event, 100)
	q, err := OpenQueue(t.TempDir(), webhookTo(t, r.URL, fc), QueueOptions{Label: "本部", Clock: fc, Accepted: func(e Event) { accepted <- e }})
	if err != nil {
		t.Fatal(err)
	}
	runQueue(t, q)
	var want []Event
	for range 10 {
		e := origin.Event(IncidentStarted, fc.Now())
		if err := q.Put(e); err != nil {
			t.Fatal(err)
		}
		want = append(want, e)
		fc.Advance(30 * time.Second)
	}
	fc.Advance(time.Minute)
	// No attempt in flight (it would be late from before): the queue waits
	// to retry.
	if err := fc.BlockUntilContext(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	back := fc.Now()
	r.setCut(false)
	acceptAll(t, fc, accepted, len(want))
	got := receivedEvents(t, r, fc.Now())
	if !slices.Equal(ids(got), ids(want)) {
		t.Fatalf("received %v, want %v, once each in order", ids(got), ids(want))
	}
	for i, e := range got {
		if least := int(back.Sub(want[i].Time) / time.Second); e.Late < least {
			t.Errorf("event %d: late = %d s, want at least %d", i, e.Late, least)
		}
	}
	if st := q.Status(); st.Late < 90*time.Second || st.LastDelivered != want[9].ID {
		t.Errorf("Status = %+v, want the last event delivered over 90 s late", st)
	}
}

// acceptAll advances fc past every wait between retries until n events
// are accepted, and returns them.
func acceptAll(t testing.TB, fc *clockwork.FakeClock, accepted <-chan Event, n int) []Event {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	sleeping := make(chan struct{}, 1)
	watch := func() {
		go func() {
			if fc.BlockUntilContext(ctx, 1) == nil {
				sleeping <- struct{}{}
			}
		}()
	}
	watch()
	var got []Event
	for len(got) < n {
		select {
		case e := <-accepted:
			got = append(got, e)
		case <-sleeping:
			fc.Advance(2 * time.Minute) // past the longest backoff
			watch()
		case <-time.After(20 * time.Second):
			t.Fatalf("waited 20 s for events accepted: have %d of %d", len(got), n)
		}
	}
	return got
}

func TestQueueLateness(t *testing.T) {
	r := newReceiver(t)
	fc := clockwork.NewFakeClockAt(time.Date(2026, 11, 30, 5, 0, 0, 0, time.UTC))
	accepted := make(chan Event, 10)
	q, err := OpenQueue(t.TempDir(), webhookTo(t, r.URL, fc), QueueOptions{Clock: fc, Log: quiet, Accepted: func(e Event) { accepted <- e }})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ago  time.Duration
		want int
	}{
		{0, 0},
		{30 * time.Second, 0},
		{31 * time.Second, 31},
		{5 * time.Minute, 300},
		{fc.Now().Sub(time.Unix(3, 0)), 0}, // raised while the clock read 1970
	}
	for _, tt := range tests {
		if err := q.Put(origin.Event(DeviceFault, fc.Now().Add(-tt.ago))); err != nil {
			t.Fatal(err)
		}
	}
	runQueue(t, q)
	for _, tt := range tests {
		if e := wait(t, accepted, "an event"); e.Late != tt.want {
			t.Errorf("an event %v old: Late = %d, want %d", tt.ago, e.Late, tt.want)
		}
	}
}

func TestQueueRetryAfter(t *testing.T) {
	r := newReceiver(t)
	r.answer(http.StatusTooManyRequests, "120")
	fc := clockwork.NewFakeClock()
	accepted := make(chan Event, 1)
	q, err := OpenQueue(t.TempDir(), webhookTo(t, r.URL, fc), QueueOptions{Clock: fc, Accepted: func(e Event) { accepted <- e }})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Put(origin.Event(DeviceFault, fc.Now())); err != nil {
		t.Fatal(err)
	}
	runQueue(t, q)
	if err := fc.BlockUntilContext(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	r.answer(0, "")
	fc.Advance(119 * time.Second)
	if err := fc.BlockUntilContext(t.Context(), 1); err != nil { // still waiting
		t.Fatal(err)
	}
	if n := len(r.received()); n != 0 {
		t.Fatalf("the receiver took %d before its Retry-After, want none", n)
	}
	fc.Advance(time.Second)
	wait(t, accepted, "the event accepted after Retry-After")
}

// TestQueuePermanent: a target that refuses (401) is reported with what to
// fix and keeps its event; another target delivers regardless.
func TestQueuePermanent(t *testing.T) {
	bad, good := newReceiver(t), newReceiver(t)
	bad.answer(http.StatusUnauthorized, "")
	log, refusals := newLogSignal("refuses")
	badDir := t.TempDir()
	badQ, err := OpenQueue(badDir, webhookTo(t, bad.URL+"/s3cr3t", nil), QueueOptions{Label: "本部", Log: log})
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan Event, 1)
	goodQ, err := OpenQueue(t.TempDir(), webhookTo(t, good.URL, nil), QueueOptions{Label: "店長", Accepted: func(e Event) { accepted <- e }})
	if err != nil {
		t.Fatal(err)
	}
	e := pressEvent()
	for _, q := range []*Queue{badQ, goodQ} {
		if err := q.Put(e); err != nil {
			t.Fatal(err)
		}
		runQueue(t, q)
	}
	if got := wait(t, accepted, "the good target's event"); got.ID != e.ID {
		t.Errorf("the good target got %s, want %s", got.ID, e.ID)
	}
	rec := wait(t, refusals, "the refusal logged")
	var fix string
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "fix" {
			fix = a.Value.String()
		}
		if strings.Contains(a.Value.String(), "s3cr3t") {
			t.Errorf("the log shows the URL: %s=%s", a.Key, a.Value)
		}
		return true
	})
	st := badQ.Status()
	if !st.NeedsFix || st.Fix == "" || st.Fix != fix || st.Pending != 1 || !strings.Contains(st.LastError, "401") {
		t.Errorf("Status = %+v, want it to need fixing, say how, and keep the event", st)
	}
	if names, _ := filepath.Glob(filepath.Join(badDir, "*-"+e.ID+".json")); len(names) != 1 {
		t.Errorf("the refused event's file: %v, want it kept", names)
	}
	if n := len(bad.received()); n != 0 {
		t.Errorf("the refusing receiver recorded %d", n)
	}
}

// TestQueueRestart: what a queue held when its process stopped goes at the
// next start, in order, and a write cut short is dropped.
func TestQueueRestart(t *testing.T) {
	r := newReceiver(t)
	r.answer(http.StatusServiceUnavailable, "")
	dir := t.TempDir()
	log, failures := newLogSignal("delivery failed")
	q, err := OpenQueue(dir, webhookTo(t, r.URL, nil), QueueOptions{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	want := events(3, time.Now())
	for _, e := range want {
		if err := q.Put(e); err != nil {
			t.Fatal(err)
		}
	}
	stop := runQueue(t, q)
	wait(t, failures, "a failed attempt")
	stop()
	// A write the power cut short: never renamed, never promised.
	if err := os.WriteFile(filepath.Join(dir, queueName(99, want[0].ID)+".tmp"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}

	r.answer(0, "")
	accepted := make(chan Event, 10)
	q, err = OpenQueue(dir, webhookTo(t, r.URL, nil), QueueOptions{Accepted: func(e Event) { accepted <- e }})
	if err != nil {
		t.Fatal(err)
	}
	if got := q.Status().Pending; got != 3 {
		t.Errorf("Pending after a restart = %d, want 3", got)
	}
	runQueue(t, q)
	for range want {
		wait(t, accepted, "an event accepted after the restart")
	}
	if got := receivedEvents(t, r, time.Now()); !slices.Equal(ids(got), ids(want)) {
		t.Errorf("received %v, want %v", ids(got), ids(want))
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left in the queue: %v", left)
	}
}

func TestQueueSetsAsideCorrupt(t *testing.T) {
	r := newReceiver(t)
	dir := t.TempDir()
	es := events(3, time.Now())
	other, _ := json.Marshal(es[2])
	good, _ := json.Marshal(es[1])
	files := map[string][]byte{
		queueName(1, es[0].ID): []byte(`{"id": "` + es[0].ID + `", "name": `), // cut short
		queueName(2, es[0].ID): other,                                         // another event than its name says
		"notes.json":           []byte("{}"),
		queueName(3, es[1].ID): good,
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	log, asides := newLogSignal("set it aside")
	accepted := make(chan Event, 10)
	q, err := OpenQueue(dir, webhookTo(t, r.URL, nil), QueueOptions{Log: log, Accepted: func(e Event) { accepted <- e }})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Put(es[2]); err != nil {
		t.Fatal(err)
	}
	runQueue(t, q)
	for range 3 {
		wait(t, asides, "a file set aside")
	}
	for _, want := range es[1:] {
		if got := wait(t, accepted, "a good event"); got.ID != want.ID {
			t.Errorf("delivered %s, want %s", got.ID, want.ID)
		}
	}
	if st := q.Status(); st.SetAside != 3 || st.Pending != 0 {
		t.Errorf("Status = %+v, want 3 set aside, none pending", st)
	}
	aside, _ := filepath.Glob(filepath.Join(dir, "*"+asideSuffix))
	if len(aside) != 3 {
		t.Errorf("set aside: %v, want 3 files", aside)
	}
}

func TestQueueDropsOldestWhenFull(t *testing.T) {
	dir := t.TempDir()
	q, err := OpenQueue(dir, nil, QueueOptions{MaxPending: 3})
	if err != nil {
		t.Fatal(err)
	}
	es := events(5, time.Now())
	for _, e := range es {
		if err := q.Put(e); err != nil {
			t.Fatal(err)
		}
	}
	names, _ := q.pending()
	var got []string
	for _, n := range names {
		_, id, _ := parseQueueName(n)
		got = append(got, id)
	}
	if want := ids(es[2:]); !slices.Equal(got, want) {
		t.Errorf("kept %v, want the newest %v", got, want)
	}
	if st := q.Status(); st.Dropped != 2 || st.Pending != 3 {
		t.Errorf("Status = %+v, want 2 dropped, 3 pending", st)
	}
}

func TestQueuePutRejects(t *testing.T) {
	q, err := OpenQueue(t.TempDir(), nil, QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e := origin.Event(DeviceFault, time.Now())
	e.ID = "../../escape"
	if err := q.Put(e); err == nil {
		t.Error("Put of an event whose id is a path = nil error")
	}
	e = origin.Event(DeviceFault, time.Now())
	e.Details = map[string]string{"error": strings.Repeat("x", MaxEventBytes)}
	if err := q.Put(e); err == nil {
		t.Error("Put of an event over MaxEventBytes = nil error")
	}
}

func TestQueueDir(t *testing.T) {
	labels := []string{"店長のスマホ", "本部", "..", "a/b", ""}
	seen := map[string]string{}
	for _, l := range labels {
		dir := QueueDir("/state/alerts", l)
		if filepath.Dir(dir) != "/state/alerts" {
			t.Errorf("QueueDir(%q) = %q, want a directory right under the root", l, dir)
		}
		if other, ok := seen[dir]; ok {
			t.Errorf("labels %q and %q share %s", l, other, dir)
		}
		seen[dir] = l
		if again := QueueDir("/state/alerts", l); again != dir {
			t.Errorf("QueueDir(%q) = %q, then %q", l, dir, again)
		}
	}
}

func FuzzDecodeEvent(f *testing.F) {
	good, _ := json.Marshal(pressEvent())
	f.Add(good)
	f.Add([]byte(`{"id":"0b7e4c1a-8a53-4f0e-9d35-6c1b2f0e9a41","name":"device.fault","time":"2026-11-30T14:02:05+09:00","details":{"a":"b"}}`))
	f.Add([]byte(`{"id":"0b7e4c1a-8a53-4f0e-9d35-6c1b2f0e9a41","name":"device.fault","time":"0001-01-01T00:00:00Z"}`))
	f.Add([]byte(`{`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEvent(b)
		if err != nil {
			return
		}
		if err := e.check(); err != nil {
			t.Fatalf("decodeEvent accepted an event check refuses: %v", err)
		}
		again, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		e2, err := decodeEvent(again)
		if err != nil {
			t.Fatalf("an accepted event, encoded again, is refused: %v\n%s", err, again)
		}
		if third, _ := json.Marshal(e2); string(third) != string(again) {
			t.Fatalf("encoding is not stable:\n%s\n%s", again, third)
		}
		_ = Render(e, Japanese) // never panics on what a file may hold
	})
}

func FuzzParseQueueName(f *testing.F) {
	f.Add(queueName(42, "0b7e4c1a-8a53-4f0e-9d35-6c1b2f0e9a41"))
	f.Add("notes.json")
	f.Add("00000000000000000001-.json")
	f.Add("-0000000000000000001-x.json")
	f.Fuzz(func(t *testing.T, name string) {
		seq, id, ok := parseQueueName(name)
		if !ok {
			return
		}
		if back := queueName(seq, id); back != name {
			t.Errorf("parseQueueName(%q) = %d, %q; queueName of that is %q", name, seq, id, back)
		}
	})
}
