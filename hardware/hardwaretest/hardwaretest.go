// Package hardwaretest has fakes of the counter's hardware for tests: an
// Indicator that records what it was told and can be made to fail, and a
// Button the test presses, stamped on the test's clock.
package hardwaretest

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"mamoru/clock"
	"mamoru/hardware"
)

// Indicator is a hardware.Indicator and hardware.Signaler in memory. The
// zero value is an indicator that works and is off.
type Indicator struct {
	mu       sync.Mutex // guards the fields below
	lit      bool
	fail     error
	halted   bool
	sets     []bool
	patterns []hardware.Pattern
}

// Set turns the indicator on or off, unless it has been made to fail.
func (i *Indicator) Set(on bool) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.fail != nil {
		return fmt.Errorf("%w: %v", hardware.ErrIndicatorFault, i.fail)
	}
	i.lit = on
	i.sets = append(i.sets, on)
	return nil
}

// Lit reads the indicator back: off while it fails.
func (i *Indicator) Lit() (bool, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.fail != nil {
		return false, fmt.Errorf("%w: %v", hardware.ErrIndicatorFault, i.fail)
	}
	return i.lit, nil
}

// Halt turns the indicator off for good.
func (i *Indicator) Halt() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.lit, i.halted = false, true
	return nil
}

// Signal records p.
func (i *Indicator) Signal(p hardware.Pattern) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.patterns = append(i.patterns, p)
}

// Fail makes every later Set and Lit fail with err, as a broken LED driver
// would, and the light go dark; nil makes it work again (still dark).
func (i *Indicator) Fail(err error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.fail = err
	if err != nil {
		i.lit = false
	}
}

// IsLit reports the light's state, without failing.
func (i *Indicator) IsLit() bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.lit
}

// Halted reports whether Halt was called.
func (i *Indicator) Halted() bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.halted
}

// Sets returns every state Set was told, in order.
func (i *Indicator) Sets() []bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return slices.Clone(i.sets)
}

// Patterns returns every pattern signalled, in order.
func (i *Indicator) Patterns() []hardware.Pattern {
	i.mu.Lock()
	defer i.mu.Unlock()
	return slices.Clone(i.patterns)
}

// Button is a hardware.Button the test presses. Its presses are stamped on
// Clock, which must be the recorder's.
type Button struct {
	Clock   clock.Clock
	presses chan press
	once    sync.Once
}

// press is a press and the channel closed once the recorder has it.
type press struct {
	p     hardware.Press
	taken chan struct{}
}

func (b *Button) init() { b.once.Do(func() { b.presses = make(chan press) }) }

// Run hands the test's presses on until ctx ends.
func (b *Button) Run(ctx context.Context, presses chan<- hardware.Press) error {
	b.init()
	for {
		select {
		case <-ctx.Done():
			return nil
		case p := <-b.presses:
			select {
			case presses <- p.p:
				close(p.taken)
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// Press reports kind, stamped now, and returns once the recorder has
// taken it: a request the test makes after it is answered after the press
// is handled.
func (b *Button) Press(ctx context.Context, kind hardware.PressKind) error {
	b.init()
	p := press{hardware.Press{Time: b.Clock.Now(), Source: "button", Kind: kind}, make(chan struct{})}
	select {
	case b.presses <- p:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-p.taken:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
