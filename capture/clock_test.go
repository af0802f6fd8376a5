package capture

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestStamperFollowsJitterAndDrift(t *testing.T) {
	const latency = 5 * time.Millisecond // the fixed part of every arrival
	tests := []struct {
		name    string
		nominal time.Duration
		actual  time.Duration // the source's true period
		jitter  time.Duration // extra delay, uniform in [0, jitter)
	}{
		{"steady 30fps", time.Second / 30, time.Second / 30, 0},
		{"jittery 30fps", time.Second / 30, time.Second / 30, 15 * time.Millisecond},
		{"camera at 29.97", time.Second / 30, time.Second * 1001 / 30000, 5 * time.Millisecond},
		{"sound card 100ppm fast", 20 * time.Millisecond, 20 * time.Millisecond * 9999 / 10000, 3 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			s := newStamper(tt.nominal)
			var prev time.Duration
			lo, hi := time.Hour, -time.Hour
			for i := range 30000 { // over ten minutes
				truth := time.Duration(i) * tt.actual
				extra := time.Duration(0)
				if tt.jitter > 0 {
					extra = time.Duration(rng.Int64N(int64(tt.jitter)))
				}
				got, jumped := s.stamp(truth + latency + extra)
				if jumped {
					t.Fatalf("unit %d: stamper resynced on a continuous stream", i)
				}
				if i > 0 && got <= prev {
					t.Fatalf("unit %d: stamp %v not after %v", i, got, prev)
				}
				prev = got
				if i > 500 {
					e := got - truth - latency
					lo, hi = min(lo, e), max(hi, e)
				}
			}
			// Once locked, the stamps sit on the earliest arrivals, a steady
			// offset from the truth that neither wanders nor drifts: far
			// inside the 40 ms A/V budget.
			t.Logf("error after lock: %v to %v", lo, hi)
			if lo < -2*time.Millisecond || hi > tt.jitter/2+2*time.Millisecond {
				t.Errorf("error after lock %v to %v, want within [-2ms, %v]", lo, hi, tt.jitter/2+2*time.Millisecond)
			}
		})
	}
}

// A starved machine delivers frames late and then in a burst: the stamps
// keep the spacing the frames were captured at.
func TestStamperBurstAfterStall(t *testing.T) {
	period := time.Second / 30
	s := newStamper(period)
	var stamps []time.Duration
	for i := range 300 {
		truth := time.Duration(i) * period
		arrival := truth
		if i >= 100 && i < 120 { // 20 frames held up, then all at once
			arrival = 120 * period
		}
		got, jumped := s.stamp(arrival)
		if jumped {
			t.Fatalf("frame %d: resynced", i)
		}
		stamps = append(stamps, got)
	}
	for i := 1; i < len(stamps); i++ {
		if gap := stamps[i] - stamps[i-1]; gap < period/2 || gap > 2*period {
			t.Errorf("frames %d-%d stamped %v apart, want about %v", i-1, i, gap, period)
		}
	}
	if e := stamps[299] - 299*period; e > 2*time.Millisecond || e < -2*time.Millisecond {
		t.Errorf("after the burst the stamps are %v off", e)
	}
}

func TestStamperResyncsAfterGap(t *testing.T) {
	s := newStamper(20 * time.Millisecond)
	for i := range 100 {
		s.stamp(time.Duration(i) * 20 * time.Millisecond)
	}
	got, jumped := s.stamp(5 * time.Second)
	if !jumped || got != 5*time.Second {
		t.Errorf("after a 3 s gap: stamp = %v, jumped = %v; want 5s, true", got, jumped)
	}
}

// TestStampsNeverGoBack stalls a source, lets a burst of late frames run
// its stamps ahead of their arrivals, then restarts the source at once: its
// first frames arrive before the burst's stamps, and must still be stamped
// after them, or the clip would hold two samples at one decode time. (The
// sources keep one stamper across restarts for this.)
func TestStampsNeverGoBack(t *testing.T) {
	const period = 33 * time.Millisecond
	s := newStamper(period)
	last := time.Duration(-1)
	check := func(arrival time.Duration) {
		t.Helper()
		got, _ := s.stamp(arrival)
		if got <= last {
			t.Fatalf("stamp %v at arrival %v is not after the previous %v", got, arrival, last)
		}
		last = got
	}
	for i := range 30 {
		check(time.Duration(i) * period)
	}
	// A two-second stall, then 90 frames at once: stamped a period apart,
	// they run a second ahead of the burst's arrival.
	burst := 30*period + 2*time.Second
	for range 90 {
		check(burst)
	}
	if last < burst+500*time.Millisecond {
		t.Fatalf("the burst's stamps end at %v, not ahead of its arrival %v: the test does not test", last, burst)
	}
	// The restarted source, 100 ms later, and after a resync.
	for i := range 30 {
		check(burst + 100*time.Millisecond + time.Duration(i)*period)
	}
	resync := last + 3*time.Second
	for i := range 30 {
		check(resync + time.Duration(i)*period)
	}
}

// TestBurstAfterResyncKeepsItsSpacing stalls a source for longer than the
// resync limit; the frames queued behind the first are stamped a period
// apart, not squeezed into one frame interval.
func TestBurstAfterResyncKeepsItsSpacing(t *testing.T) {
	const period = 33333 * time.Microsecond
	s := newStamper(period)
	for i := range 60 {
		s.stamp(time.Duration(i) * period)
	}
	resume := 60*period + 3*time.Second
	prev, _ := s.stamp(resume)
	for i := range 20 { // queued in the pipe: they all arrive at once
		got, _ := s.stamp(resume + time.Duration(i)*time.Millisecond)
		if got-prev < period*95/100 {
			t.Fatalf("burst frame %d stamped %v after the previous, less than a frame interval", i, got-prev)
		}
		prev = got
	}
}

// TestStarvedSourceCatchesUp is what a starved machine does to a camera's
// pipe: the frames arrive later and later until the backlog passes the
// resync limit, then the backlog drains at three times the frame rate. No
// two stamps may come closer than 7/8 of a frame interval (FFmpeg and the
// players put frames on the nominal grid, where closer frames collide), and
// once the backlog is gone the stamps must be back on the frames' true
// times.
func TestStarvedSourceCatchesUp(t *testing.T) {
	const period = time.Second / 30
	s := newStamper(period)
	backlog := time.Duration(0)
	var prev time.Duration
	resynced, worst := false, time.Duration(0)
	for i := range 3000 { // 100 s
		truth := time.Duration(i) * period
		switch {
		case i >= 300 && i < 900: // 20 s of growing lateness, to 1.2 s
			backlog += 2 * time.Millisecond
		case i >= 900: // then the backlog drains at 3x the frame rate
			backlog = max(0, backlog-period*2/3)
		}
		got, jumped := s.stamp(truth + backlog)
		resynced = resynced || jumped
		if i > 0 && got-prev < period*7/8 {
			t.Fatalf("frame %d stamped %v after the previous, less than 7/8 of a frame interval", i, got-prev)
		}
		prev = got
		e := got - truth
		if i < 600 {
			worst = max(worst, e.Abs())
		}
		if i >= 1800 && e.Abs() > 2*time.Millisecond {
			t.Fatalf("frame %d, 30 s after the backlog drained: stamp is %v off its true time", i, e)
		}
	}
	if !resynced {
		t.Fatal("the backlog never passed the resync limit: the test does not test the catch-up")
	}
	// Growing lateness looks like a slow source, and a loop that followed
	// it would put the picture behind the sound by the backlog. The learned
	// rate is held within 0.5% of nominal, so the stamps stay near the
	// frames' true times.
	t.Logf("worst error over the first 10 s of growing lateness (to 600 ms): %v", worst)
	if worst > 100*time.Millisecond {
		t.Errorf("worst error over the first 10 s of growing lateness: %v, want under 100 ms", worst)
	}
}
