package capture

import "time"

// Clock tells the time. Tests give a fake one.
type Clock interface {
	Now() time.Time
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// Timeline is the one clock that audio and video are stamped on: a media
// time is the monotonic time since the Timeline began, so a wall-clock jump
// (NTP setting the Pi's clock after boot) never moves media against each
// other.
type Timeline struct {
	clock Clock
	start time.Time
}

// NewTimeline starts a timeline now.
func NewTimeline(c Clock) *Timeline {
	return &Timeline{clock: c, start: c.Now()}
}

// Now returns the current media time.
func (tl *Timeline) Now() time.Duration {
	return tl.clock.Now().Sub(tl.start)
}

// Wall converts media time d to the wall-clock time it happened at, as the
// wall clock reads now.
func (tl *Timeline) Wall(d time.Duration) time.Time {
	now := tl.clock.Now()
	return now.Add(d - now.Sub(tl.start)).Round(0)
}

// Of returns the media time of a wall-clock reading taken from the same
// Clock (one that carries a monotonic reading).
func (tl *Timeline) Of(t time.Time) time.Duration {
	return t.Sub(tl.start)
}

// stamper gives each unit of a periodic stream (a video frame, an audio
// block) its media time. A unit arrives some latency after it was captured:
// a fixed part (exposure, encoding, the device's buffer) and a variable part
// (scheduling, pipe buffering; seconds when the machine is starved). The
// fixed part is the same for every unit, so a loop follows the earliest
// arrivals, the lower envelope: an arrival earlier than predicted pulls its
// phase quickly, a late one only slowly, and a burst of late frames after a
// stall keeps the regular spacing the source captured them at. The loop
// learns the source's true rate within ±0.5% of nominal, so a camera at 29.97
// instead of 30 fps, or a sound card whose crystal is 100 ppm off, does not
// drift against the other track; no more, because a backlog growing in a
// starved machine's pipe looks just like a slower source, and a loop that
// learned it would put the picture behind the sound. A unit later than resync
// (the source stopped, a block was dropped) starts the loop again at its
// arrival.
//
// The stamps themselves run a learned period apart and follow the loop's
// phase only when it has moved more than an eighth of a period away: the
// phase wanders with the jitter by a few milliseconds, and stamps that
// wandered with it would not sit on a grid of the frame rate. Players and FFmpeg put frames
// on such a grid (FFmpeg guesses the rate from the first frames' times), so
// a clip whose frames wander can be read as 29.97 fps when it is 30, and
// two of its frames then collide on one tick.
//
// Stamps always increase, and never by less than 7/8 of the nominal period:
// when they must move back (the arrivals after a resync come earlier than
// predicted, as a backlog drains), they move an eighth of a period per unit
// rather than squeezing units together.
//
// Arrivals alone cannot tell a source that dropped a frame from a pipeline
// whose backlog grew by one: both look like units arriving a period late. The
// stamper takes the second reading, the one a starved machine produces: the
// stamps keep to the earliest arrivals, and a dropped frame costs at most a
// period of offset, pulled in over a few seconds.
type stamper struct {
	nominal time.Duration
	period  time.Duration // learned
	resync  time.Duration
	started bool
	// phase is when the loop expects the next unit to arrive if it has no
	// variable latency.
	phase time.Duration
	last  time.Duration // the previous unit's stamp
	// draining is set by a resync and cleared by the first unit that
	// arrives no earlier than predicted: the units queued behind the one
	// resynced to were captured a period apart, and are stamped so, not
	// squeezed together.
	draining bool
	// The rate is learned from the phase corrections of rateBlock units
	// together: one correction is mostly jitter, and the period would wander
	// with it; their sum over a block is what the period is off by.
	sum time.Duration // phase corrections in this block
	n   int           // units in this block
}

// rateBlock is how many units' phase corrections make one correction of the
// period, and rateGain how much of the measured error it corrects.
const (
	rateBlock = 64
	rateGain  = 4
)

func newStamper(period time.Duration) stamper {
	return stamper{nominal: period, period: period, resync: max(time.Second, 8*period)}
}

// stamp returns the media time of the unit that arrived at arrival, and
// whether the stream was discontinuous just before it.
func (s *stamper) stamp(arrival time.Duration) (t time.Duration, jumped bool) {
	err := arrival - s.phase
	first := !s.started
	switch {
	case first || err > s.resync:
		jumped = !first
		s.started = true
		s.phase, s.period = arrival, s.nominal
		s.sum, s.n = 0, 0
		s.draining = jumped
	default:
		// Early arrivals pull hard; late ones gently, and a very late one
		// (a stall) no harder than a quarter period would.
		c := err / 2
		if err > 0 {
			c = min(err, s.nominal/4) / 64
		}
		s.phase += c
		s.sum += max(c, -s.nominal/4)
		if s.n++; s.n == rateBlock {
			s.period += s.sum / rateBlock / rateGain
			s.sum, s.n = 0, 0
		}
		s.period = min(max(s.period, s.nominal-s.nominal/200), s.nominal+s.nominal/200)
	}
	if err >= 0 && !jumped {
		s.draining = false
	}

	switch {
	case first || jumped:
		t = s.phase
	default:
		t = s.last + s.period
		if d := s.phase - t; d > s.nominal/8 || d < -s.nominal/8 {
			t += min(max(d, -s.nominal/8), s.nominal/8)
		}
	}
	// Never backwards, not even across a resync: a burst stamped ahead of
	// its arrival before the source restarted must not be overtaken.
	if !first {
		floor := s.nominal * 7 / 8
		if s.draining && !jumped {
			floor = s.period
		}
		t = max(t, s.last+floor)
	}
	s.last = t
	s.phase += s.period
	return t, jumped
}
