package hardware

import "time"

// Pattern is what the counter shows beyond "recording" and "not
// recording": an acknowledgement that staff can see, and states the
// installer and staff must notice. The customer-facing sign never shows
// patterns: it is lit exactly while capture runs.
type Pattern int

const (
	// Steady: the indicator is on while capturing and off otherwise.
	Steady Pattern = iota
	// Ack answers a press that raised or extended an incident: a fast
	// blink for 2 s, then steady; one short beep.
	Ack
	// Refused answers a press that could not be recorded (outside
	// recording hours, a fault, a full spool): three slow blinks, three
	// beeps. Outside hours the indicator stays dark between them.
	Refused
	// Closed answers a press outside recording hours: two long blinks and
	// a long beep. Nothing is recorded; the press is logged.
	Closed
	// Pending says an incident waits to be uploaded: a short dark blip
	// every 3 s while capturing.
	Pending
	// Fault says capture has stopped because something failed: a double
	// flash every 2 s and a long beep when it starts.
	Fault
	// Alerted says an alert target accepted the press's alert: one long
	// dark of 1.5 s, longer than any other pattern's, with two short beeps,
	// then steady. It means a target took the alert, not that a person is
	// on the way.
	Alerted
)

func (p Pattern) String() string {
	switch p {
	case Ack:
		return "ack"
	case Refused:
		return "refused"
	case Closed:
		return "closed"
	case Pending:
		return "pending"
	case Fault:
		return "fault"
	case Alerted:
		return "alerted"
	}
	return "steady"
}

// Signaler is an indicator that can show patterns. The recorder shows
// them where the indicator is one.
type Signaler interface {
	// Signal shows p. Ack, Refused, Closed and Alerted run once and then fall back to the
	// lasting pattern (Steady, Pending or Fault) last signalled.
	Signal(p Pattern)
}

// step is one stretch of a pattern: the indicator inverted from its steady
// state (or not) and the buzzer on (or not), for d.
type step struct {
	invert bool
	buzz   bool
	d      time.Duration
}

// steps returns p's steps and whether they repeat. Steady has none.
func (p Pattern) steps() (steps []step, repeat bool) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	switch p {
	case Ack:
		for i := range 32 { // 8 Hz for 2 s
			steps = append(steps, step{invert: i%2 == 0, buzz: i < 2, d: ms(62) + ms(i%2)})
		}
		return steps, false
	case Refused:
		for range 3 {
			steps = append(steps, step{invert: true, buzz: true, d: ms(250)}, step{d: ms(250)})
		}
		return steps, false
	case Closed:
		return []step{{invert: true, buzz: true, d: ms(600)}, {d: ms(300)}, {invert: true, d: ms(600)}, {d: ms(300)}}, false
	case Pending:
		return []step{{invert: true, d: ms(150)}, {d: ms(2850)}}, true
	case Fault:
		return []step{{invert: true, buzz: true, d: ms(80)}, {d: ms(120)}, {invert: true, d: ms(80)}, {d: ms(1720)}}, true
	case Alerted:
		return []step{{invert: true, buzz: true, d: ms(100)}, {invert: true, d: ms(100)}, {invert: true, buzz: true, d: ms(100)}, {invert: true, d: ms(1200)}}, false
	}
	return nil, false
}
