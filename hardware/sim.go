package hardware

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"sync"

	"mamoru/clock"
)

// Sim is the simulated counter: an indicator drawn on a terminal and a
// button pressed with Enter. Fail makes the indicator fail, to test the
// interlock.
type Sim struct {
	In  io.Reader // Enter on In is a press; nil means no button
	Out io.Writer // the indicator is drawn here; nil draws nothing
	// Clock stamps the presses; it must be the recorder's. nil is the
	// system clock.
	Clock clock.Clock

	mu   sync.Mutex // guards lit and fail
	lit  bool
	fail error
}

// Set draws the indicator.
func (s *Sim) Set(on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return fmt.Errorf("%w: %v", ErrIndicatorFault, s.fail)
	}
	if on != s.lit && s.Out != nil {
		if on {
			fmt.Fprintln(s.Out, "[counter] ● REC  indicator ON: recording in progress")
		} else {
			fmt.Fprintln(s.Out, "[counter] ○      indicator off: not recording")
		}
	}
	s.lit = on
	return nil
}

// Lit reads the indicator back.
func (s *Sim) Lit() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return false, fmt.Errorf("%w: %v", ErrIndicatorFault, s.fail)
	}
	return s.lit, nil
}

// Halt turns the indicator off.
func (s *Sim) Halt() error {
	s.mu.Lock()
	fail := s.fail
	s.fail = nil
	s.mu.Unlock()
	err := s.Set(false)
	s.mu.Lock()
	s.fail = fail
	s.mu.Unlock()
	return err
}

// Fail makes every later Set and Lit fail with err (as a broken LED driver
// would), or work again when err is nil. A failed indicator reads as off.
func (s *Sim) Fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
	if err != nil {
		s.lit = false
	}
}

// Run turns each line read from In into a press.
func (s *Sim) Run(ctx context.Context, presses chan<- Press) error {
	if s.In == nil {
		<-ctx.Done()
		return nil
	}
	c := clock.Or(s.Clock)
	lines := make(chan struct{})
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(s.In)
		for sc.Scan() {
			select {
			case lines <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-lines:
			if !ok {
				<-ctx.Done() // input closed: the button is gone, the recorder is not
				return nil
			}
			select {
			case presses <- Press{Time: c.Now(), Source: "sim"}:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// Signal prints the pattern the real indicator would show.
func (s *Sim) Signal(p Pattern) {
	if s.Out == nil {
		return
	}
	msg := map[Pattern]string{
		Steady:  "indicator steady",
		Ack:     "✓ press acknowledged (fast blink for 2 s, one beep)",
		Refused: "✗ press refused (three slow blinks, three beeps)",
		Closed:  "✗ outside recording hours: nothing recorded, press logged (two long blinks)",
		Pending: "… an incident waits for upload (a dark blip every 3 s)",
		Fault:   "! FAULT: capture stopped (double flash, long beep)",
		Alerted: "📣 the alert went out: a target accepted it, which does not mean someone is on the way (one long dark, two beeps)",
	}[p]
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintln(s.Out, "[counter] "+msg)
}
