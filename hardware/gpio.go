package hardware

import (
	"context"
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"

	"mamoru/clock"
)

// Output is one GPIO output: a pin and whether it is active low.
type Output struct {
	Pin       gpio.PinIO // nil: not fitted
	ActiveLow bool
}

func (o Output) level(on bool) gpio.Level { return gpio.Level(on != o.ActiveLow) }

// write drives the output and reads it back: a pin that does not follow
// (a short, a dead driver, the pin claimed elsewhere) is a fault.
func (o Output) write(on bool) error {
	if o.Pin == nil {
		return nil
	}
	want := o.level(on)
	if err := o.Pin.Out(want); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrIndicatorFault, o.Pin, err)
	}
	if got := o.Pin.Read(); got != want {
		return fmt.Errorf("%w: %s set %v, reads back %v", ErrIndicatorFault, o.Pin, want, got)
	}
	return nil
}

// GPIOIndicator drives the indicator LED, the optional lit sign (a relay)
// and the optional buzzer. The sign follows capture only; the LED also
// shows patterns. Set the fields, then use it; Halt ends it.
type GPIOIndicator struct {
	LED    Output
	Sign   Output
	Buzzer Output
	Clock  clock.Clock // nil: the real clock

	mu      sync.Mutex    // guards the fields below
	on      bool          // capturing: the steady state
	led     bool          // what the LED was last set to
	lasting Pattern       // Steady, Pending or Fault
	err     error         // a failed write, latched until the next Set
	stop    chan struct{} // closed to stop the running pattern
	done    chan struct{} // closed when it has stopped
}

func (g *GPIOIndicator) clock() clock.Clock { return clock.Or(g.Clock) }

// Set turns the indicator and sign on or off and reads both back.
func (g *GPIOIndicator) Set(on bool) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.on, g.err = on, nil
	for _, o := range []Output{g.Sign, g.LED} {
		if err := o.write(on); err != nil {
			// Whatever the pins now show, capture must not run.
			g.on, g.err = false, err
			return err
		}
	}
	g.led = on
	return nil
}

// Lit reports whether the indicator is on. It reads the LED and the sign
// back and compares them with what was last written, so a pattern's blink
// is not mistaken for a fault, and a pin that stopped following is.
func (g *GPIOIndicator) Lit() (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return false, g.err
	}
	for _, c := range []struct {
		o    Output
		want bool
	}{{g.LED, g.led}, {g.Sign, g.on}} {
		if c.o.Pin != nil && c.o.Pin.Read() != c.o.level(c.want) {
			g.err = fmt.Errorf("%w: %s reads %v, was set %v", ErrIndicatorFault, c.o.Pin, c.o.Pin.Read(), c.o.level(c.want))
			return false, g.err
		}
	}
	return g.on, nil
}

// Halt stops any pattern and turns every output off.
func (g *GPIOIndicator) Halt() error {
	g.stopPattern()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.on, g.led = false, false
	var first error
	for _, o := range []Output{g.Buzzer, g.LED, g.Sign} {
		if err := o.write(false); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Signal shows p on the LED and buzzer. The pattern's first step is
// shown before Signal returns, so an acknowledgement is never late.
func (g *GPIOIndicator) Signal(p Pattern) {
	g.stopPattern()
	if steps, _ := p.steps(); len(steps) > 0 {
		g.show(p, steps[0], true)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if p == Steady || p == Pending || p == Fault {
		g.lasting = p
	}
	stop, done := make(chan struct{}), make(chan struct{})
	g.stop, g.done = stop, done
	go g.run(p, stop, done)
}

// stopPattern ends the running pattern and waits for it.
func (g *GPIOIndicator) stopPattern() {
	g.mu.Lock()
	stop, done := g.stop, g.done
	g.stop, g.done = nil, nil
	g.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
}

// run plays p, then the lasting pattern, until stopped.
func (g *GPIOIndicator) run(p Pattern, stop, done chan struct{}) {
	defer close(done)
	clock := g.clock()
	first := true
	for {
		steps, repeat := p.steps()
		for i, s := range steps {
			if i > 0 || !first { // Signal showed the very first step
				g.show(p, s, first)
			}
			select {
			case <-stop:
				return
			case <-clock.After(s.d):
			}
		}
		g.show(p, step{}, false) // back to steady between cycles
		first = false
		if !repeat {
			g.mu.Lock()
			next := g.lasting
			g.mu.Unlock()
			if next == Steady {
				return
			}
			p = next
		}
	}
}

// show sets the LED to the steady state, inverted if the step says so, and
// the buzzer.
func (g *GPIOIndicator) show(p Pattern, s step, first bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	invert := s.invert
	if p == Pending && !g.on {
		invert = false // a dark indicator never lights to say an upload waits
	}
	led := g.on != invert
	if err := g.LED.write(led); err != nil {
		g.err = err
	} else {
		g.led = led
	}
	// A repeating pattern beeps in its first cycle only.
	g.Buzzer.write(s.buzz && first)
}

// GPIOButton is the incident button on a GPIO input: edge-driven, with the
// first edge of a press reported at once (so staff see the acknowledgement
// without delay) and the contact's bounce ignored for Debounce after it.
// Held for LongPress it also reports a long press; held for Stuck it is
// reported once as stuck and reports nothing more until released.
type GPIOButton struct {
	Pin       gpio.PinIO
	ActiveLow bool // pressed pulls the pin low (pull-up fitted)
	Debounce  time.Duration
	LongPress time.Duration
	Stuck     time.Duration
	Clock     clock.Clock // nil: the real clock
}

// edgePoll is how long the edge watcher waits on the pin before it looks at
// ctx again, so how late Run may return after ctx ends. It is the kernel's
// wait, in real time, whatever the button's Clock.
const edgePoll = 100 * time.Millisecond

// Run reports presses until ctx ends. The debounce, the long press and the
// stuck report are timers on b.Clock; only the wait for the pin's next edge
// is the kernel's.
func (b *GPIOButton) Run(ctx context.Context, presses chan<- Press) error {
	clk := clock.Or(b.Clock)
	debounce, long, stuck := b.Debounce, b.LongPress, b.Stuck
	if debounce <= 0 {
		debounce = 30 * time.Millisecond
	}
	if long <= 0 {
		long = 3 * time.Second
	}
	if stuck <= 0 {
		stuck = 30 * time.Second
	}
	pull := gpio.PullDown
	if b.ActiveLow {
		pull = gpio.PullUp
	}
	if err := b.Pin.In(pull, gpio.BothEdges); err != nil {
		return fmt.Errorf("hardware: button %s: %w", b.Pin, err)
	}
	defer b.Pin.Halt() // deferred first: runs once the watcher has ended
	pressed := gpio.Level(!b.ActiveLow)
	down := b.Pin.Read() == pressed

	ctx, cancel := context.WithCancel(ctx)
	edges, watched := make(chan edge), make(chan struct{})
	go b.watch(ctx, clk, edges, watched)
	defer func() {
		cancel()
		<-watched
	}()

	send := func(p Press) bool {
		select {
		case presses <- p:
			return true
		case <-ctx.Done():
			return false
		}
	}
	var (
		downAt time.Time
		// settleAt is when the contact has settled after the last edge
		// taken; zero when it has.
		settleAt time.Time
		// level is the pin's level as the last edge left it.
		level = b.Pin.Read()
		// longSent and stuckSent say what this press has reported; a
		// button held when Run starts reports nothing until it has been
		// released.
		longSent, stuckSent, stuckReported = down, down, false
	)
	// settled believes the level once the contact has settled: a press
	// that is no longer down has been released.
	settled := func(at time.Time) bool {
		settleAt = time.Time{}
		if down && level != pressed {
			down = false
			if stuckReported && !send(Press{Time: at, Source: "button", Kind: PressReleased}) {
				return false
			}
		}
		return true
	}
	wake := alarm{clk: clk} // the next deadline
	defer wake.clear()
	for {
		// While the contact settles its level is not believed, so a held
		// press turns long or stuck only once it has settled.
		var next time.Time
		switch {
		case !settleAt.IsZero():
			next = settleAt
		case down && !longSent:
			next = downAt.Add(long)
		case down && !stuckSent:
			next = downAt.Add(stuck)
		}
		wake.set(next)
		select {
		case <-ctx.Done():
			return nil
		case e := <-edges:
			// The edge is judged by when it happened, not when this loop
			// got to it: one that came after the contact settled ends the
			// settling first, with the level before it.
			if !settleAt.IsZero() && !e.at.Before(settleAt) && !settled(settleAt) {
				return nil
			}
			level = e.level
			if !settleAt.IsZero() {
				continue // the contact's bounce
			}
			if !down && level == pressed {
				down, downAt, longSent, stuckSent, stuckReported = true, e.at, false, false, false
				if !send(Press{Time: e.at, Source: "button"}) {
					return nil
				}
			}
			settleAt = e.at.Add(debounce)
		case <-wake.c:
			wake.clear()
			now := clk.Now()
			switch {
			case !settleAt.IsZero():
				// The level the last edge left, not the pin's now: an
				// edge after settleAt that this loop has not yet taken
				// must not count as having come before it.
				if !settled(now) {
					return nil
				}
			case down && !longSent:
				longSent = true
				if !send(Press{Time: now, Source: "button", Kind: PressLong}) {
					return nil
				}
			case down && !stuckSent:
				stuckSent, stuckReported = true, true
				if !send(Press{Time: now, Source: "button", Kind: PressStuck}) {
					return nil
				}
			}
		}
	}
}

// edge is one edge of the button's pin, as the watcher saw it.
type edge struct {
	at    time.Time  // when, on the button's clock
	level gpio.Level // the pin's level just after it
}

// watch hands each edge of the pin on to edges as it comes, stamped with
// when it came, until ctx ends; then it closes done.
func (b *GPIOButton) watch(ctx context.Context, clk clock.Clock, edges chan<- edge, done chan<- struct{}) {
	defer close(done)
	for ctx.Err() == nil {
		if !b.Pin.WaitForEdge(edgePoll) {
			continue
		}
		select {
		case edges <- edge{at: clk.Now(), level: b.Pin.Read()}:
		case <-ctx.Done():
			return
		}
	}
}

// alarm is one timer on a clock, armed for a time (zero: none) and armed
// anew only when that time changes.
type alarm struct {
	clk  clock.Clock
	at   time.Time
	c    <-chan time.Time // nil while not armed
	stop func() bool
}

// set arms the alarm for at, or disarms it if at is zero.
func (a *alarm) set(at time.Time) {
	if at.Equal(a.at) {
		return
	}
	a.clear()
	if !at.IsZero() {
		t := a.clk.NewTimer(at.Sub(a.clk.Now()))
		a.at, a.c, a.stop = at, t.Chan(), t.Stop
	}
}

// clear disarms the alarm.
func (a *alarm) clear() {
	if a.stop != nil {
		a.stop()
	}
	*a = alarm{clk: a.clk}
}
