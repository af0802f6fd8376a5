package device

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"mamoru/capture"
	"mamoru/clock"
	"mamoru/hardware"
)

// ErrCaptureStuck is returned when the camera or microphone did not stop
// when told to.
var ErrCaptureStuck = errors.New("capture did not stop")

// Interlock keeps the operating rules' promise: the camera and microphone
// run only while the "recording" indicator is lit.
//
//   - Start turns the indicator on and reads it back, and only then starts
//     the sources.
//   - Stop stops the sources and waits until they have, and only then turns
//     the indicator off. A source that does not stop leaves the indicator on
//     (capture may still be running) and Stop returns ErrCaptureStuck: the
//     process must exit, which closes the devices.
//   - Check reads the indicator back while capturing; if it is not lit, it
//     says so, and the caller must Stop.
//
// An Interlock is used from one goroutine.
type Interlock struct {
	Indicator hardware.Indicator
	// Sources are started and stopped together, named for messages
	// ("camera", "microphone").
	Sources map[string]capture.Source
	Clock   clock.Clock // times StopTimeout; nil is the system clock
	// StopTimeout is how long the sources may take to stop; 0 means 15 s.
	StopTimeout time.Duration
	// Note, if set, is told of every indicator and capture change.
	Note func(Event)
	// Log, if set, says why a source ended before it was told to stop.
	Log *slog.Logger

	cancel context.CancelFunc
	done   map[string]chan struct{} // closed when each source's Run returns
}

// Capturing reports whether the sources run.
func (l *Interlock) Capturing() bool { return l.cancel != nil }

// Start lights the indicator, confirms it, then starts the sources under
// ctx. An error wraps hardware.ErrIndicatorFault: nothing was started, and
// the indicator was told to go off again.
func (l *Interlock) Start(ctx context.Context) error {
	if l.Capturing() {
		return nil
	}
	err := l.Indicator.Set(true)
	if err == nil {
		err = l.confirmLit("set on, reads back off")
	}
	if err != nil {
		l.Indicator.Set(false) // a light that is half on says nothing true
		return err
	}
	l.note(Event{Kind: EventIndicator, On: true})

	ctx, l.cancel = context.WithCancel(ctx)
	l.done = make(map[string]chan struct{}, len(l.Sources))
	for name, s := range l.Sources {
		done := make(chan struct{})
		l.done[name] = done
		go func() {
			defer close(done)
			// A source that cannot run at all (a build without a
			// microphone, an unknown camera) returns at once; its Health
			// says so in status, and the indicator stays as the rules say.
			if err := s.Run(ctx); err != nil && l.Log != nil {
				l.Log.Error("capture source cannot run", "source", name, "err", err)
			}
		}()
	}
	_, video := l.Sources[SourceCamera]
	_, audio := l.Sources[SourceMicrophone]
	l.note(Event{Kind: EventCapture, Capture: CaptureStarted, Video: video, Audio: audio})
	return nil
}

// Stop stops the sources, waits for them, and then turns the indicator off.
// It returns an error wrapping ErrCaptureStuck, with the indicator still on,
// if a source did not stop within StopTimeout.
func (l *Interlock) Stop(reason string) error {
	if l.Capturing() {
		if err := l.stopSources(); err != nil {
			l.note(Event{Kind: EventCapture, Capture: CaptureStuck, Reason: reason, Err: err})
			return err
		}
		l.note(Event{Kind: EventCapture, Capture: CaptureStopped, Reason: reason})
	}
	if err := l.Indicator.Set(false); err != nil {
		l.note(Event{Kind: EventIndicator, Err: err})
		return nil // capture is closed: the rules hold, whatever the light says
	}
	l.note(Event{Kind: EventIndicator, On: false})
	return nil
}

// Check reads the indicator back while capturing. If it does not read lit,
// it returns an error wrapping hardware.ErrIndicatorFault and the caller
// must Stop.
func (l *Interlock) Check() error {
	if !l.Capturing() {
		return nil
	}
	return l.confirmLit("reads back off while capturing")
}

func (l *Interlock) confirmLit(what string) error {
	lit, err := l.Indicator.Lit()
	if err == nil && !lit {
		err = fmt.Errorf("%w: %s", hardware.ErrIndicatorFault, what)
	}
	return err
}

func (l *Interlock) stopSources() error {
	l.cancel()
	limit := l.StopTimeout
	if limit <= 0 {
		limit = 15 * time.Second
	}
	timer := clock.Or(l.Clock).NewTimer(limit)
	defer timer.Stop()
	expired := false
	var stuck []string
	for name, done := range l.done {
		if expired {
			select {
			case <-done:
			default:
				stuck = append(stuck, name)
			}
			continue
		}
		select {
		case <-done:
		case <-timer.Chan():
			expired = true // the rest get no more time
			stuck = append(stuck, name)
		}
	}
	if stuck != nil {
		slices.Sort(stuck)
		return fmt.Errorf("device: %w: the %s still running %v after being told to stop", ErrCaptureStuck, strings.Join(stuck, " and "), limit)
	}
	l.cancel, l.done = nil, nil
	return nil
}

func (l *Interlock) note(e Event) {
	if l.Note != nil {
		l.Note(e)
	}
}

// The names of the sources in an Interlock.
const (
	SourceCamera     = "camera"
	SourceMicrophone = "microphone"
)
