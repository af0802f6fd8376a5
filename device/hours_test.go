package device

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"mamoru/audit"
	"mamoru/hardware"
)

// fakeWall is a wall clock a test sets, as NTP or the hours passing would.
type fakeWall struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func (w *fakeWall) Now() time.Time  { w.mu.Lock(); defer w.mu.Unlock(); return w.t }
func (w *fakeWall) Set(t time.Time) { w.mu.Lock(); defer w.mu.Unlock(); w.t = t }

func TestRecordingHours(t *testing.T) {
	cfg := testConfig(t)
	cfg.Policy.RecordingHours = []string{"daily 09:00-21:00"}
	tokyo := cfg.Location()
	wall := &fakeWall{t: time.Date(2026, 11, 23, 20, 59, 0, 0, tokyo)}
	var out syncWriter
	sim := &hardware.Sim{Out: &out}
	rec := &Recorder{Config: cfg, Indicator: sim, Log: testLogger(t), Version: "test", Now: wall.Now, ClockSynced: func() bool { return true }}
	stop := runRecorder(t, rec)

	st := waitFor(t, cfg, "buffering within the hours", func(s Status) bool { return s.State == StateBuffering && s.BufferedSeconds > 0.5 })
	if st.Hours != "open until 21:00" || !st.ClockSynced {
		t.Errorf("status hours %q, clock synced %v", st.Hours, st.ClockSynced)
	}

	// 21:00: capture stops, the ring is wiped, the indicator goes off.
	wall.Set(time.Date(2026, 11, 23, 21, 0, 0, 0, tokyo))
	st = waitFor(t, cfg, "closing time", func(s Status) bool { return s.State == StateIdle })
	if st.Indicator || st.BufferedSeconds != 0 || st.Sources["video"].Running || st.Sources["audio"].Running || !strings.HasPrefix(st.Hours, "closed until") {
		t.Errorf("after hours: %+v; want nothing captured, the ring empty, the indicator off", st)
	}
	// A press is refused, logged, and answered with its own pattern.
	_, err := Trigger(context.Background(), cfg.Device.StateDir, "cli")
	if err == nil || !strings.Contains(err.Error(), "outside recording hours") {
		t.Errorf("a press after hours: %v", err)
	}
	if !strings.Contains(out.String(), "outside recording hours") {
		t.Errorf("the counter did not show the press refused for the hours:\n%s", out.String())
	}

	// The clock jumps back to 1970 (a reboot before NTP): still closed, and
	// said why.
	wall.Set(time.Unix(0, 0))
	waitFor(t, cfg, "the clock's state", func(s Status) bool { return strings.Contains(s.Closed, "clock is not set") })
	// The next morning, capture comes back behind the indicator.
	wall.Set(time.Date(2026, 11, 24, 9, 0, 0, 0, tokyo))
	waitFor(t, cfg, "opening time", func(s Status) bool { return s.State == StateBuffering && s.Indicator })

	stop()
	entries, err := audit.ReadAll(cfg.Device.StateDir + "/" + auditFile)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		switch e.Event {
		case "hours":
			got = append(got, e.Fields["state"]+":"+e.Fields["why"])
		case "press":
			got = append(got, "press:"+e.Fields["why"])
		}
	}
	want := "closed:outside recording hours press:outside recording hours closed:the clock is not set, so the recording hours cannot be applied open:"
	if strings.Join(got, " ") != want {
		t.Errorf("audit log hours and presses:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	auditOrder(t, cfg)
}

// syncWriter is a strings.Builder safe for the counter's goroutines.
type syncWriter struct {
	mu sync.Mutex // guards b
	b  strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
func (w *syncWriter) String() string { w.mu.Lock(); defer w.mu.Unlock(); return w.b.String() }
