package device

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mamoru/capture"
	"mamoru/health"
	"mamoru/uploader"
)

// healthLog is a HealthWriter that keeps every report it is handed, with
// the recorder's clock when it was.
type healthLog struct {
	m *machine

	mu      sync.Mutex // guards reports and at
	reports []health.Report
	at      []time.Time
}

func (h *healthLog) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (h *healthLog) Status() health.WriterStatus   { return health.WriterStatus{} }
func (h *healthLog) Send(r health.Report) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reports, h.at = append(h.reports, r), append(h.at, h.m.clk.Now())
}

// since returns the reports handed over from the n-th on, with their
// times as offsets from from.
func (h *healthLog) since(n int, from time.Time) ([]health.Report, []time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var offsets []time.Duration
	for _, at := range h.at[n:] {
		offsets = append(offsets, at.Sub(from))
	}
	return append([]health.Report(nil), h.reports[n:]...), offsets
}

func (h *healthLog) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.reports)
}

// A report at start, then one every health.Interval exactly while nothing
// changes; a press sends one at once, and so does the incident's end.
func TestMachineHealthEveryIntervalAndAtOnce(t *testing.T) {
	hl := &healthLog{}
	m := newMachine(t, machineConfig(t), monday, func(m *machine) { hl.m = m; m.rec.Health = hl })
	start := time.Unix(1000, 0)
	m.advance(150 * time.Second)
	reports, at := hl.since(0, start)
	want := []time.Duration{0, health.Interval, 2 * health.Interval}
	if len(at) != len(want) {
		t.Fatalf("reports at %v, want at %v", at, want)
	}
	for i := range want {
		if at[i] != want[i] || reports[i].State != string(StateBuffering) || !reports[i].Indicator || !reports[i].RecordingExpected {
			t.Errorf("report %d at %v: %+v; want at %v, buffering, indicator lit, recording expected", i, at[i], reports[i], want[i])
		}
	}
	r := reports[0]
	if r.Store != "test-store" || r.Device != "test-counter" || r.Label != "test-counter" || r.Software != "test" || r.Hours.Zone != "Asia/Tokyo" || r.DiskFree <= 0 {
		t.Errorf("report %+v; want the device's names, version, zone and the card's free bytes", r)
	}
	if r := reports[2]; r.UptimeSeconds != 120 || r.BufferedSeconds <= 0 {
		t.Errorf("third report: uptime %v s, buffered %v s; want 120 s and a pre-roll", r.UptimeSeconds, r.BufferedSeconds)
	}

	n := hl.count()
	pressed := m.clk.Now()
	res, err := m.trigger()
	if err != nil {
		t.Fatal(err)
	}
	m.eventually("a report of the incident", func() bool { return hl.count() > n })
	reports, at = hl.since(n, pressed)
	if reports[0].State != string(StateIncident) || at[0] != 0 || reports[0].LastIncident != "test-store/test-counter/"+res.Incident {
		t.Errorf("after a press: %s at %v, last incident %q; want incident at once, %s", reports[0].State, at[0], reports[0].LastIncident, res.Incident)
	}
	n = hl.count()
	m.saved(res.Incident, res.Until)
	m.advance(time.Second)
	reports, _ = hl.since(n, pressed)
	if len(reports) == 0 || reports[0].State != string(StateBuffering) || reports[0].PendingUploads != 1 {
		t.Errorf("after the incident: %+v; want buffering at once, its clip pending", reports)
	}
}

// Without a bucket, and so without a health writer, Reports is still
// handed the reports (an MQTT target's state follows them): every
// health.Interval, and at once on a press.
func TestMachineReportsWithoutAWriter(t *testing.T) {
	hl := &healthLog{}
	m := newMachine(t, machineConfig(t), monday, func(m *machine) { hl.m = m; m.rec.Reports = hl.Send })
	m.advance(90 * time.Second)
	if n := hl.count(); n != 2 {
		t.Errorf("%d reports in 90 s, want 2 (at start, and a minute on)", n)
	}
	n := hl.count()
	if _, err := m.trigger(); err != nil {
		t.Fatal(err)
	}
	m.eventually("a report of the incident", func() bool { return hl.count() > n })
	if reports, _ := hl.since(n, m.clk.Now()); reports[0].State != string(StateIncident) {
		t.Errorf("after a press: %s, want incident", reports[0].State)
	}
}

// Closing time sends a report at once, saying recording is not expected
// and why, with the hours it comes from; the clock losing its sync does
// too.
func TestMachineHealthAtClosingTime(t *testing.T) {
	cfg := machineConfig(t)
	cfg.Policy.RecordingHours = []string{"daily 09:00-21:00"}
	hl := &healthLog{}
	var synced atomic.Bool
	synced.Store(true)
	m := newMachine(t, cfg, time.Date(2026, 11, 23, 20, 59, 30, 0, cfg.Location()), func(m *machine) {
		hl.m, m.rec.Health = m, hl
		m.rec.ClockSynced = synced.Load
	})
	start := m.clk.Now()
	m.advance(30 * time.Second)
	reports, at := hl.since(0, start)
	if len(reports) != 2 || at[1] != 30*time.Second {
		t.Fatalf("reports at %v, want at start and at closing time, 30 s on", at)
	}
	if r := reports[1]; r.RecordingExpected || r.Indicator || r.State != string(StateIdle) || r.Closed != "outside recording hours" ||
		len(r.Hours.Recording) != 1 || r.Hours.Recording[0] != "daily 09:00-21:00" {
		t.Errorf("report at closing time %+v; want idle, indicator off, recording not expected, outside recording hours, with the hours", r)
	}
	synced.Store(false)
	m.advance(time.Second)
	reports, _ = hl.since(2, start)
	if len(reports) != 1 || reports[0].ClockSynced {
		t.Errorf("after the clock lost its sync: %+v; want one report saying so", reports)
	}
}

// hangingBucket never answers a write until its context ends.
type hangingBucket struct {
	mu    sync.Mutex // guards calls
	calls int
}

func (b *hangingBucket) Put(ctx context.Context, _ string, _ []byte) error {
	b.mu.Lock()
	b.calls++
	b.mu.Unlock()
	<-ctx.Done()
	return ctx.Err()
}

func (b *hangingBucket) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls
}

// A bucket that never answers holds up neither a press nor the loop: the
// press is answered, the incident is saved, and the status says the
// health report cannot be written.
func TestMachineHealthNeverWaitsForTheBucket(t *testing.T) {
	b := &hangingBucket{}
	var w *health.Writer
	m := newMachine(t, machineConfig(t), monday, func(m *machine) {
		w = &health.Writer{Bucket: b, Key: "test-store/test-counter/health.json", Clock: m.clk, Wall: m.wall, Log: m.rec.Log}
		m.rec.Health = w
	})
	m.eventually("the first write to hang", func() bool { return b.count() == 1 })
	m.advance(2 * time.Second)
	done := make(chan error, 1)
	var res TriggerResult
	go func() {
		var err error
		res, err = m.trigger()
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("a press waited for the health report; goroutines:\n%s", goroutines())
	}
	m.saved(res.Incident, res.Until)
	m.advance(15 * time.Second)
	// The writer's timeout fires on the fake clock, but the writer takes
	// it on its own goroutine: wait for it rather than read the status the
	// instant the clock moved (under qemu it had not yet, and this failed).
	var st Status
	m.eventually("the hanging write to time out", func() bool {
		st = m.status()
		return st.Health != nil && strings.Contains(st.Health.LastError, "no answer within 15s")
	})
	if st.Health.Replaced == 0 {
		t.Errorf("status shows health %+v; want reports replaced while the write hung", st.Health)
	}
}

// The report says what the status says, in the agreed format: sources
// down with their errors, the last upload under store/device/id, the
// hours as configured.
func TestHealthReportOfStatus(t *testing.T) {
	cfg := machineConfig(t)
	cfg.Policy.RecordingHours, cfg.Policy.ClosedDates = []string{"mon-fri 09:00-21:00"}, []string{"2026-12-31"}
	at := time.Date(2026, 11, 30, 14, 0, 0, 0, time.UTC)
	st := Status{State: StateBuffering, Indicator: true, Device: "test-counter", Store: "test-store", Label: "カウンター1", Version: "1.2.3",
		Sources:     map[string]capture.Health{"video": {LastError: "rpicam-vid exited"}, "audio": {}},
		SourcesDown: []string{"video"}, DiskFree: 1 << 30, UptimeSeconds: 60, RecordingExpected: true, ClockSynced: true,
		Uploads: &uploader.Status{LastSuccess: "20261130-140000-000001", LastSuccessAt: at, LastError: "timeout", LastErrorAt: at}}
	r := healthReport(st, cfg)
	r.Sent = at
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := health.Parse(b)
	if err != nil {
		t.Fatalf("the report does not parse: %v\n%s", err, b)
	}
	if len(got.SourcesDown) != 1 || got.SourcesDown["video"] != "rpicam-vid exited" {
		t.Errorf("sources down %v, want video with its error", got.SourcesDown)
	}
	if got.LastUploadIncident != "test-store/test-counter/20261130-140000-000001" || !got.LastUpload.Equal(at) || got.LastUpload.Hour() != 23 || got.LastError != "timeout" {
		t.Errorf("last upload %q at %v, error %q; want it in Asia/Tokyo", got.LastUploadIncident, got.LastUpload, got.LastError)
	}
	if got.Hours.Recording[0] != "mon-fri 09:00-21:00" || got.Hours.Closed[0] != "2026-12-31" || got.Hours.Zone != "Asia/Tokyo" {
		t.Errorf("hours %+v, want the configured ones", got.Hours)
	}
	if got.Label != "カウンター1" || got.Software != "1.2.3" || !got.RecordingExpected || got.State != "buffering" {
		t.Errorf("report %+v", got)
	}
}
