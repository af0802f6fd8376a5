package hardware

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jonboulle/clockwork"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

// The button's tests run in a synctest bubble on a fake clock. After each
// step synctest.Wait returns only once the button's goroutines are blocked
// with nothing left to do, so what the button has not reported by then it
// has not reported at all, and a report checked at a deadline less 1 ns and
// at the deadline is timed to the nanosecond. No test waits for real.

// buttonPin is a fake button pin; send its edges on EdgesChan.
func buttonPin() *gpiotest.Pin {
	return &gpiotest.Pin{N: "GPIO27", Num: 27, EdgesChan: make(chan gpio.Level)}
}

// rig is a GPIOButton running on a fake pin and a fake clock.
type rig struct {
	t       *testing.T
	clock   *clockwork.FakeClock
	t0      time.Time // when the rig started
	pin     *gpiotest.Pin
	pressed gpio.Level
	presses chan Press
}

// startButton runs b on pin (b.Pin, if set, wraps pin) and a fake clock
// until the test ends. Call it inside synctest.Test.
func startButton(t *testing.T, b GPIOButton, pin *gpiotest.Pin) *rig {
	t.Helper()
	r := &rig{t: t, clock: clockwork.NewFakeClock(), pin: pin, pressed: gpio.Level(!b.ActiveLow), presses: make(chan Press, 16)}
	r.t0 = r.clock.Now()
	if b.Pin == nil {
		b.Pin = pin
	}
	b.Clock = r.clock
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, r.presses) }()
	t.Cleanup(func() {
		cancel()
		stopped(t, done)
	})
	// In() flushes pending edges: send none before the button has set the
	// pin up, or the first would be lost.
	synctest.Wait()
	return r
}

// stopped checks that Run, its context ended, returns nil within edgePoll
// of the bubble's time, which the pin's wait runs on.
func stopped(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(edgePoll + time.Nanosecond):
		t.Errorf("Run still running %v after its context ended", edgePoll+time.Nanosecond)
	}
}

// edge changes the pin's level and lets the button take the edge.
func (r *rig) edge(l gpio.Level) {
	r.pin.EdgesChan <- l
	synctest.Wait()
}

func (r *rig) press()   { r.edge(r.pressed) }
func (r *rig) release() { r.edge(!r.pressed) }

// at is the clock's time since the rig started.
func (r *rig) at() time.Duration { return r.clock.Since(r.t0) }

// advanceTo moves the clock to d after the rig started and lets the button
// do what is due.
func (r *rig) advanceTo(d time.Duration) {
	r.t.Helper()
	if d < r.at() {
		r.t.Fatalf("advanceTo(%v) at %v: the clock cannot go back", d, r.at())
	}
	r.clock.Advance(d - r.at())
	synctest.Wait()
}

// want checks that the button has reported kind, stamped at.
func (r *rig) want(kind PressKind, at time.Duration) {
	r.t.Helper()
	select {
	case p := <-r.presses:
		if p.Kind != kind || !p.Time.Equal(r.t0.Add(at)) || p.Source != "button" {
			r.t.Fatalf("at %v: got %v stamped %v from %q, want %v stamped %v from the button", r.at(), p.Kind, p.Time.Sub(r.t0), p.Source, kind, at)
		}
	default:
		r.t.Fatalf("at %v: got no report, want %v", r.at(), kind)
	}
}

// quiet checks that the button has reported nothing.
func (r *rig) quiet() {
	r.t.Helper()
	select {
	case p := <-r.presses:
		r.t.Fatalf("at %v: got %v stamped %v, want no report", r.at(), p.Kind, p.Time.Sub(r.t0))
	default:
	}
}

// A press is reported at once, a long press and a stuck button exactly at
// their times (the defaults or as configured), a button held for ten more
// minutes reports nothing more, and only the release of a stuck button is
// reported, once it has settled.
func TestButtonPresses(t *testing.T) {
	const ns = time.Nanosecond
	for _, tc := range []struct {
		name                  string
		b                     GPIOButton
		wantPull              gpio.Pull
		debounce, long, stuck time.Duration
	}{
		{"defaults", GPIOButton{ActiveLow: true}, gpio.PullUp, 30 * time.Millisecond, 3 * time.Second, 30 * time.Second},
		{"configured", GPIOButton{ActiveLow: true, Debounce: 50 * time.Millisecond, LongPress: 2 * time.Second, Stuck: 20 * time.Second}, gpio.PullUp, 50 * time.Millisecond, 2 * time.Second, 20 * time.Second},
		{"active high", GPIOButton{Debounce: 10 * time.Millisecond, LongPress: 5 * time.Second, Stuck: time.Minute}, gpio.PullDown, 10 * time.Millisecond, 5 * time.Second, time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := startButton(t, tc.b, buttonPin())
				r.pin.Lock()
				pull := r.pin.P
				r.pin.Unlock()
				if pull != tc.wantPull {
					t.Fatalf("pin pulled %v, want %v", pull, tc.wantPull)
				}

				// Held until stuck, and ten minutes more.
				r.press()
				r.want(PressShort, 0)
				r.advanceTo(tc.long - ns)
				r.quiet()
				r.advanceTo(tc.long)
				r.want(PressLong, tc.long)
				r.advanceTo(tc.stuck - ns)
				r.quiet()
				r.advanceTo(tc.stuck)
				r.want(PressStuck, tc.stuck)
				for range 10 {
					r.advanceTo(r.at() + time.Minute)
					r.quiet()
				}
				up := r.at()
				r.release()
				r.quiet()
				r.advanceTo(up + tc.debounce - ns)
				r.quiet()
				r.advanceTo(up + tc.debounce)
				r.want(PressReleased, up+tc.debounce)

				// Held past long, released before stuck: nothing more.
				down := up + time.Minute
				r.advanceTo(down)
				r.press()
				r.want(PressShort, down)
				r.advanceTo(down + tc.long)
				r.want(PressLong, down+tc.long)
				r.advanceTo(down + tc.long + time.Second)
				r.release()
				r.advanceTo(down + tc.stuck + time.Minute)
				r.quiet()

				// A short press is short.
				down = r.at()
				r.press()
				r.want(PressShort, down)
				r.advanceTo(down + tc.debounce)
				r.release()
				r.advanceTo(down + tc.stuck + time.Minute)
				r.quiet()
			})
		})
	}
}

// A contact bounces for a while after each change. Within Debounce of the
// edge that starts it, the bounce is swallowed: a bouncing press is one
// press, held from its first edge, and a stuck button's bouncing release is
// reported Debounce after its first edge, not after its last.
func TestButtonBounce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			debounce = 30 * time.Millisecond
			long     = 200 * time.Millisecond
			stuck    = 400 * time.Millisecond
			ns       = time.Nanosecond
			ms       = time.Millisecond
		)
		r := startButton(t, GPIOButton{ActiveLow: true, Debounce: debounce, LongPress: long, Stuck: stuck}, buttonPin())
		for i := range 3 {
			down := time.Duration(i) * time.Second
			r.advanceTo(down)
			r.press()
			r.want(PressShort, down)
			for _, e := range []struct {
				at time.Duration
				l  gpio.Level
			}{{5 * ms, gpio.High}, {10 * ms, gpio.Low}, {15 * ms, gpio.High}, {debounce - ns, gpio.Low}} {
				r.advanceTo(down + e.at)
				r.edge(e.l)
				r.quiet()
			}
			r.advanceTo(down + debounce)
			r.quiet()
			r.advanceTo(down + long)
			r.want(PressLong, down+long)
			r.advanceTo(down + stuck)
			r.want(PressStuck, down+stuck)

			up := down + 500*ms
			for _, e := range []struct {
				at time.Duration
				l  gpio.Level
			}{{0, gpio.High}, {10 * ms, gpio.Low}, {20 * ms, gpio.High}} {
				r.advanceTo(up + e.at)
				r.edge(e.l)
				r.quiet()
			}
			r.advanceTo(up + debounce - ns)
			r.quiet()
			r.advanceTo(up + debounce)
			r.want(PressReleased, up+debounce)
		}
	})
}

// Held for LongPress == Stuck, a button reports both at that time, in
// that order.
func TestButtonLongAndStuckAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const d = 5 * time.Second
		r := startButton(t, GPIOButton{ActiveLow: true, LongPress: d, Stuck: d}, buttonPin())
		r.press()
		r.want(PressShort, 0)
		r.advanceTo(d - time.Nanosecond)
		r.quiet()
		r.advanceTo(d)
		r.want(PressLong, d)
		r.want(PressStuck, d)
		r.advanceTo(time.Hour)
		r.quiet()
	})
}

// heldPin is a button pin, active low, held down when Run sets it up.
type heldPin struct{ *gpiotest.Pin }

func (p heldPin) In(pull gpio.Pull, edge gpio.Edge) error {
	err := p.Pin.In(pull, edge)
	p.Pin.Out(gpio.Low)
	return err
}

// A button held when Run starts reports nothing, not even its release;
// the next press is a press.
func TestButtonHeldAtStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pin := buttonPin()
		r := startButton(t, GPIOButton{Pin: heldPin{pin}, ActiveLow: true}, pin)
		for range 10 {
			r.advanceTo(r.at() + time.Minute)
			r.quiet()
		}
		r.release()
		r.advanceTo(r.at() + time.Minute)
		r.quiet()
		down := r.at()
		r.press()
		r.want(PressShort, down)
		r.advanceTo(down + 3*time.Second)
		r.want(PressLong, down+3*time.Second)
	})
}

// watchedPin records whether Halt came while an edge was awaited.
type watchedPin struct {
	*gpiotest.Pin
	mu                    sync.Mutex // guards the fields below
	waiting               bool
	halted, haltedWaiting bool
}

func (p *watchedPin) WaitForEdge(timeout time.Duration) bool {
	p.mu.Lock()
	p.waiting = true
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.waiting = false
		p.mu.Unlock()
	}()
	return p.Pin.WaitForEdge(timeout)
}

func (p *watchedPin) Halt() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.halted, p.haltedWaiting = true, p.waiting
	return p.Pin.Halt()
}

// Run returns nil within edgePoll of its context ending, idle or with a
// press nobody takes; it has stopped waiting for edges before it halts the
// pin, and leaves no goroutine behind (synctest.Test would fail).
func TestButtonStops(t *testing.T) {
	for _, tc := range []struct {
		name  string
		press bool
	}{{"idle", false}, {"reporting a press nobody takes", true}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				pin := &watchedPin{Pin: buttonPin()}
				b := GPIOButton{Pin: pin, ActiveLow: true, Clock: clockwork.NewFakeClock()}
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan error, 1)
				go func() { done <- b.Run(ctx, make(chan Press)) }()
				synctest.Wait()
				if tc.press {
					pin.EdgesChan <- gpio.Low
					synctest.Wait()
				}
				cancel()
				stopped(t, done)
				pin.mu.Lock()
				defer pin.mu.Unlock()
				if !pin.halted || pin.haltedWaiting {
					t.Errorf("halted %v, while awaiting an edge %v; want halted, after the wait", pin.halted, pin.haltedWaiting)
				}
			})
		})
	}
}

// errPin cannot be set up.
type errPin struct{ *gpiotest.Pin }

var errBusy = errors.New("line busy")

func (errPin) In(gpio.Pull, gpio.Edge) error { return errBusy }

func TestButtonPinFails(t *testing.T) {
	b := GPIOButton{Pin: errPin{buttonPin()}, Clock: clockwork.NewFakeClock()}
	if err := b.Run(t.Context(), make(chan Press)); !errors.Is(err, errBusy) {
		t.Errorf("Run = %v, want the pin's error", err)
	}
}

// brokenPin drives nothing: it reads back the opposite of what was written.
type brokenPin struct{ *gpiotest.Pin }

func (p brokenPin) Read() gpio.Level { return !p.Pin.Read() }

func TestIndicatorReadsBack(t *testing.T) {
	led := &gpiotest.Pin{N: "GPIO17"}
	sign := &gpiotest.Pin{N: "GPIO22"}
	ind := &GPIOIndicator{LED: Output{Pin: led}, Sign: Output{Pin: sign, ActiveLow: true}}
	if err := ind.Set(true); err != nil {
		t.Fatal(err)
	}
	if led.Read() != gpio.High || sign.Read() != gpio.Low {
		t.Errorf("on: LED %v, sign %v; want High and Low (active low)", led.Read(), sign.Read())
	}
	if lit, err := ind.Lit(); !lit || err != nil {
		t.Errorf("Lit() = %v, %v", lit, err)
	}
	// Something else drives the LED pin low: the read-back catches it.
	led.Out(gpio.Low)
	if _, err := ind.Lit(); !errors.Is(err, ErrIndicatorFault) {
		t.Errorf("Lit() with the LED forced off: %v, want ErrIndicatorFault", err)
	}
	if err := ind.Halt(); err != nil {
		t.Fatal(err)
	}
	if led.Read() != gpio.Low || sign.Read() != gpio.High {
		t.Errorf("halted: LED %v, sign %v; want both off", led.Read(), sign.Read())
	}

	broken := &GPIOIndicator{LED: Output{Pin: brokenPin{&gpiotest.Pin{N: "GPIO17"}}}}
	if err := broken.Set(true); !errors.Is(err, ErrIndicatorFault) {
		t.Errorf("Set on a pin that does not follow: %v, want ErrIndicatorFault", err)
	}
}

// Each pattern's changes come exactly on time on the indicator's clock: the
// first before Signal returns, each other neither 1 ns early nor late. A
// pattern that runs once ends in the lasting pattern, which beeps only in
// the first cycle it ever shows. The interlock sees the indicator as set
// throughout.
func TestPatternsEndInTheLastingState(t *testing.T) {
	const ms = time.Millisecond
	type state struct {
		led, buzzer gpio.Level
		ended       bool // the pattern's goroutine has ended
	}
	type change struct {
		at     time.Duration
		signal bool // Signal(p) at at
		p      Pattern
		state
	}
	// ack is Ack from at on an indicator set on or off: the LED inverted
	// for 62 ms of every 125, sixteen times (2 s), and a beep for the first
	// 125 ms.
	ack := func(at time.Duration, on gpio.Level) []change {
		cs := []change{
			{at: at, signal: true, p: Ack, state: state{!on, gpio.High, false}},
			{at: at + 62*ms, state: state{on, gpio.High, false}},
		}
		for i := 1; i < 16; i++ {
			start := at + time.Duration(i)*125*ms
			cs = append(cs, change{at: start, state: state{!on, gpio.Low, false}}, change{at: start + 62*ms, state: state{on, gpio.Low, false}})
		}
		return cs
	}
	// fault is one 2 s cycle of Fault from at on a dark indicator: a double
	// flash, beeping through the first flash of the first cycle shown,
	// which Signal starts.
	fault := func(at time.Duration, first bool) []change {
		return []change{
			{at: at, signal: first, p: Fault, state: state{gpio.High, gpio.Level(first), false}},
			{at: at + 80*ms, state: state{gpio.Low, gpio.Low, false}},
			{at: at + 200*ms, state: state{gpio.High, gpio.Low, false}},
			{at: at + 280*ms, state: state{gpio.Low, gpio.Low, false}},
		}
	}
	for _, tc := range []struct {
		name    string
		on      bool
		changes []change
	}{
		{"ack, then steady", true, append(ack(0, gpio.High),
			change{at: 2 * time.Second, state: state{gpio.High, gpio.Low, true}})},
		{"fault, ack, fault again", false, slices.Concat(
			fault(0, true),
			fault(2*time.Second, false),
			ack(2500*ms, gpio.Low),
			fault(4500*ms, false),
			fault(6500*ms, false))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				clock := clockwork.NewFakeClock()
				t0 := clock.Now()
				led := &gpiotest.Pin{N: "GPIO17"}
				buzzer := &gpiotest.Pin{N: "GPIO23"}
				ind := &GPIOIndicator{LED: Output{Pin: led}, Buzzer: Output{Pin: buzzer}, Clock: clock}
				defer ind.Halt()
				if err := ind.Set(tc.on); err != nil {
					t.Fatal(err)
				}
				got := func() state {
					ind.mu.Lock()
					done := ind.done
					ind.mu.Unlock()
					ended := false
					select {
					case <-done:
						ended = true
					default:
					}
					return state{led.Read(), buzzer.Read(), ended}
				}
				prev := state{gpio.Level(tc.on), gpio.Low, false}
				for _, c := range tc.changes {
					synctest.Wait() // the pattern has armed its timer
					if at := clock.Since(t0); c.at > at {
						clock.Advance(c.at - time.Nanosecond - at)
						synctest.Wait()
						if s := got(); s != prev {
							t.Fatalf("at %v: got %+v, want %+v still", clock.Since(t0), s, prev)
						}
						clock.Advance(time.Nanosecond)
						synctest.Wait()
					}
					if c.signal {
						ind.Signal(c.p)
					}
					if s := got(); s != c.state {
						t.Fatalf("at %v: got %+v, want %+v", clock.Since(t0), s, c.state)
					}
					if lit, err := ind.Lit(); lit != tc.on || err != nil {
						t.Fatalf("at %v: Lit() = %v, %v; want %v", clock.Since(t0), lit, err, tc.on)
					}
					prev = c.state
				}
			})
		})
	}
}
