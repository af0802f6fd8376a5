package listen

import (
	"fmt"
	"math"
	"testing"
	"time"
)

// TestDecideExact drives the state machine with short-term levels at exact
// 100 ms steps, so sustain, hysteresis and cooldown are checked to the step.
// Baseline -40, RaiseDB 15 (start at -25), HysteresisDB 6 (end below -31),
// Sustain 1 s, Cooldown 60 s.
func TestDecideExact(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 14, 0, 0, 0, time.UTC)
	at := func(step int) time.Time { return t0.Add(time.Duration(step) * 100 * time.Millisecond) }
	type run struct {
		from, to int     // steps [from, to)
		lufs     float64 // level over them
		voiced   bool
	}
	tests := []struct {
		name string
		runs []run
		want []string // "confirmed|ended start=step dur=ms"
	}{
		{"sustained exactly 1 s: confirmed at the 11th step above",
			[]run{{0, 10, -40, true}, {10, 21, -25, true}, {21, 40, -40, true}},
			[]string{"confirmed start=10 dur=1000ms", "ended start=10 dur=1100ms"}},
		{"one step short of sustain: nothing",
			[]run{{0, 10, -40, true}, {10, 20, -25, true}, {20, 40, -40, true}},
			nil},
		{"just under the threshold: nothing",
			[]run{{0, 100, -25.01, true}},
			nil},
		{"loud but not voiced: nothing",
			[]run{{0, 100, -10, false}},
			nil},
		{"hysteresis: -30.9 holds it, -31.1 ends it",
			[]run{{0, 20, -25, true}, {20, 50, -30.9, true}, {50, 60, -31.1, true}},
			[]string{"confirmed start=0 dur=1000ms", "ended start=0 dur=5000ms"}},
		{"voice stopping ends it",
			[]run{{0, 20, -20, true}, {20, 30, -20, false}},
			[]string{"confirmed start=0 dur=1000ms", "ended start=0 dur=2000ms"}},
		{"cooldown: a second raise 59.9 s after the end waits, at 60 s it starts",
			[]run{{0, 20, -20, true}, {20, 21, -40, true}, // ends at step 20
				{21, 619, -40, true},
				{619, 620, -20, true}, // step 619 is 59.9 s after the end: refused
				{620, 640, -20, true}},
			[]string{"confirmed start=0 dur=1000ms", "ended start=0 dur=2000ms",
				"confirmed start=620 dur=1000ms"}},
		{"repeated shouts within the cooldown: one detection",
			[]run{{0, 20, -20, true}, {20, 100, -40, true}, {100, 130, -20, true},
				{130, 300, -40, true}, {300, 330, -20, true}},
			[]string{"confirmed start=0 dur=1000ms", "ended start=0 dur=2000ms"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			d, err := NewDetector(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			var dst []Detection
			for _, r := range tt.runs {
				for s := r.from; s < r.to; s++ {
					dst = d.decide(dst[:0], at(s), r.lufs, r.voiced, -40, true)
					for _, det := range dst {
						kind := "confirmed"
						if det.Ended {
							kind = "ended"
						}
						start := int(det.Start.Sub(t0) / (100 * time.Millisecond))
						got = append(got, fmt.Sprintf("%s start=%d dur=%dms", kind, start, det.Duration.Milliseconds()))
					}
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("detections = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDecideFigures(t *testing.T) {
	d, _ := NewDetector(DefaultConfig())
	t0 := time.Date(2026, 11, 30, 14, 0, 0, 0, time.UTC)
	var dst []Detection
	levels := []float64{-20, -16, -24, -20, -20, -20, -20, -20, -20, -20, -20, -45}
	for i, l := range levels {
		dst = d.decide(dst, t0.Add(time.Duration(i)*100*time.Millisecond), l, true, -40, false)
	}
	if len(dst) != 2 {
		t.Fatalf("got %d detections, want 2", len(dst))
	}
	end := dst[1]
	// Mean of power over the 11 steps above: 9 at -20, one each at -16 and -24.
	wantMean := 10 * math.Log10((9*math.Pow(10, -2)+math.Pow(10, -1.6)+math.Pow(10, -2.4))/11)
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"peak", end.PeakLUFS, -16}, {"mean", end.MeanLUFS, wantMean},
		{"baseline", end.BaselineLUFS, -40}, {"above", end.AboveDB, 24},
	} {
		if math.Abs(c.got-c.want) > 1e-9 {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if end.Learned {
		t.Error("Learned = true for a default baseline")
	}
}

func TestFlush(t *testing.T) {
	d, _ := NewDetector(DefaultConfig())
	t0 := time.Date(2026, 11, 30, 14, 0, 0, 0, time.UTC)
	var dst []Detection
	for i := range 15 {
		dst = d.decide(dst, t0.Add(time.Duration(i)*100*time.Millisecond), -20, true, -40, true)
	}
	if got := d.Flush(nil, t0.Add(2*time.Second)); len(got) != 1 || !got[0].Ended || got[0].Duration != 2*time.Second {
		t.Errorf("Flush during a detection = %+v, want one ended report lasting 2s", got)
	}
	if got := d.Flush(nil, t0.Add(3*time.Second)); len(got) != 0 {
		t.Errorf("second Flush = %+v, want nothing", got)
	}
	// The cooldown runs from the flush.
	if got := d.decide(nil, t0.Add(61900*time.Millisecond), -20, true, -40, true); len(got) != 0 || d.state != quiet {
		t.Errorf("59.9 s after the flush a raise began: state %d", d.state)
	}
	d.decide(nil, t0.Add(62*time.Second), -20, true, -40, true)
	if d.state != pending {
		t.Errorf("60 s after the flush: state %d, want pending", d.state)
	}
}
