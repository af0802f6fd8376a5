package capture

import (
	"time"

	"mamoru/clock"
)

// Timeline is the one clock that audio and video are stamped on: a media
// time is the time on a monotonic clock since the Timeline began, so a
// wall-clock jump (NTP setting the Pi's clock after boot) never moves media
// against each other.
type Timeline struct {
	clock clock.Clock // measures media time; never jumps
	wall  clock.Clock // tells the time of day a media time happened at
	start time.Time
}

// NewTimeline starts a timeline now on c. wall is read only to say when a
// media time happened; nil is c.
func NewTimeline(c, wall clock.Clock) *Timeline {
	if wall == nil {
		wall = c
	}
	return &Timeline{clock: c, wall: wall, start: c.Now()}
}

// Now returns the current media time.
func (tl *Timeline) Now() time.Duration {
	return tl.clock.Since(tl.start)
}

// Wall converts media time d to the wall-clock time it happened at, as the
// wall clock reads now.
func (tl *Timeline) Wall(d time.Duration) time.Time {
	return tl.wall.Now().Add(d - tl.Now()).Round(0)
}

// Of returns the media time of a reading taken from the Timeline's clock,
// such as a button press's time.
func (tl *Timeline) Of(t time.Time) time.Duration {
	return t.Sub(tl.start)
}

// stamper gives each unit of a periodic stream (a video frame, an audio
// block) its media time. A unit arrives some latency after it was captured:
// a fixed part (exposure, encoding, the device's buffer) and a variable part
// (scheduling, pipe buffering; seconds when the machine is starved). The
// fixed part is the same for every unit, so the stamps follow the earliest
// arrivals, the lower envelope: an arrival earlier than predicted pulls the
// phase quickly, a late one only slowly, and a burst of late frames after a
// stall keeps the regular spacing the source captured them at. The period
// learns the source's true rate within ±0.5% of nominal, so a camera at 29.97
// instead of 30 fps, or a sound card whose crystal is 100 ppm off, does not
// drift against the other track; no more, because a backlog growing in a
// starved machine's pipe looks just like a slower source, and a loop that
// learned it would put the picture behind the sound. A unit later than
// resync (the source stopped, a block was dropped) starts the loop again at
// its arrival.
//
// Stamps always increase, and never by less than 7/8 of the nominal period:
// when the phase must move back (the arrivals after a resync come earlier
// than predicted, as a backlog drains), it moves an eighth of a period per
// unit rather than squeezing units together. Players and FFmpeg put frames
// on a grid of the clip's frame rate, and frames closer than that grid
// collide on it.
//
// Arrivals alone cannot tell a source that dropped a frame from a pipeline
// whose backlog grew by one: both look like units arriving a period late. The
// stamper takes the second reading, the one a starved machine produces: the
// stamps keep to the earliest arrivals, and a dropped frame costs at most a
// period of offset, pulled in over a few seconds.
type stamper struct {
	nominal time.Duration
	period  time.Duration
	next    time.Duration
	last    time.Duration
	started bool
	resync  time.Duration
	// draining is set by a resync and cleared by the first unit that
	// arrives no earlier than predicted: the units queued behind the one
	// resynced to were captured a period apart, and are stamped so, not
	// squeezed together (two frames inside one frame interval trouble
	// players).
	draining bool
}

func newStamper(period time.Duration) stamper {
	return stamper{nominal: period, period: period, resync: max(time.Second, 8*period)}
}

// stamp returns the media time of the unit that arrived at arrival, and
// whether the stream was discontinuous just before it.
func (s *stamper) stamp(arrival time.Duration) (t time.Duration, jumped bool) {
	err := arrival - s.next
	switch {
	case !s.started || err > s.resync:
		s.next, s.period = arrival, s.nominal
		jumped = s.started
		s.started = true
		s.draining = jumped
	default:
		// Early arrivals pull hard (the floor below spreads a big pull over
		// several units); late ones gently, and a very late one (a stall) no
		// harder than a quarter period would.
		c := err / 2
		if err > 0 {
			c = min(err, s.nominal/4) / 64
		}
		s.next += c
		s.period += max(c, -s.nominal/4) / 64
	}
	s.period = min(max(s.period, s.nominal-s.nominal/200), s.nominal+s.nominal/200)
	// Never backwards, not even across a resync: a burst stamped ahead of
	// its arrival before the source restarted must not be overtaken.
	if err >= 0 && !jumped {
		s.draining = false
	}
	t = s.next
	if s.last != 0 || jumped {
		floor := s.nominal * 7 / 8
		if s.draining && !jumped {
			floor = s.period
		}
		t = max(t, s.last+floor)
	}
	s.last = t
	s.next = t + s.period
	return t, jumped
}
