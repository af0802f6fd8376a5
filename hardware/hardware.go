// Package hardware drives the counter: the "recording in progress"
// indicator and the incident button. The recorder depends only on the
// Indicator and Button interfaces; Sim implements them in a terminal for
// the demo and the tests, and the GPIO driver (periph.io) on a Pi.
package hardware

import (
	"context"
	"errors"
	"time"
)

// ErrIndicatorFault means the indicator could not be driven or did not read
// back the state it was set to: the recorder must not capture.
var ErrIndicatorFault = errors.New("hardware: indicator fault")

// Indicator is the light (and sign) that tells customers recording is in
// progress.
type Indicator interface {
	// Set drives the indicator and confirms it by reading it back where the
	// hardware allows. An error wraps ErrIndicatorFault.
	Set(on bool) error
	// Lit reads the indicator's state back from the hardware.
	Lit() (bool, error)
	// Halt turns the indicator off and leaves it inert.
	Halt() error
}

// A Press is one press of the incident button.
type Press struct {
	Time time.Time
	// Source says where it came from: "button", "cli", "sim".
	Source string
	Kind   PressKind
}

// PressKind tells a press from what a held button reports later.
type PressKind int

const (
	PressShort    PressKind = iota // the button went down: an incident
	PressLong                      // held for long_press_seconds: the incident is urgent
	PressStuck                     // held for 30 s: reported once, nothing more until released
	PressReleased                  // a stuck button was released
)

func (k PressKind) String() string {
	return [...]string{"press", "long press", "stuck", "released"}[k]
}

// Button delivers incident button presses.
type Button interface {
	// Run sends each press to presses until ctx ends.
	Run(ctx context.Context, presses chan<- Press) error
}
