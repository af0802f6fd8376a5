package hardware

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

// button runs a GPIOButton on a gpiotest pin, active low. Each send on the
// returned channel is an edge to that level; the edge has been taken by the
// button's goroutine when the send returns.
func button(t *testing.T, b GPIOButton) (edges chan<- gpio.Level, presses <-chan Press) {
	t.Helper()
	pin := &gpiotest.Pin{N: "GPIO27", Num: 27, EdgesChan: make(chan gpio.Level)}
	b.Pin, b.ActiveLow = pin, true
	out := make(chan Press, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	// In() flushes pending edges: send none before the button has set the
	// pin up, or the first would be lost.
	for ready := false; !ready; {
		pin.Lock()
		ready = pin.P == gpio.PullUp
		pin.Unlock()
		if !ready {
			time.Sleep(time.Millisecond)
		}
	}
	return pin.EdgesChan, out
}

// next waits for the button's next report.
func next(t *testing.T, presses <-chan Press) Press {
	t.Helper()
	select {
	case p := <-presses:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("no report from the button in 10 s")
		return Press{}
	}
}

// none checks that the button reports nothing for a while.
func none(t *testing.T, presses <-chan Press, d time.Duration) {
	t.Helper()
	select {
	case p := <-presses:
		t.Fatalf("unexpected report %v", p.Kind)
	case <-time.After(d):
	}
}

func TestButtonBounce(t *testing.T) {
	edges, presses := button(t, GPIOButton{Debounce: 300 * time.Millisecond, LongPress: time.Hour, Stuck: time.Hour})
	for i := range 3 {
		// A press whose contact bounces, then a release that bounces.
		edges <- gpio.Low
		edges <- gpio.High
		edges <- gpio.Low
		edges <- gpio.High
		edges <- gpio.Low
		if p := next(t, presses); p.Kind != PressShort || p.Source != "button" {
			t.Fatalf("press %d: got %v from %q, want a press from the button", i, p.Kind, p.Source)
		}
		none(t, presses, 400*time.Millisecond) // the bounce is swallowed
		edges <- gpio.High
		edges <- gpio.Low
		edges <- gpio.High
		none(t, presses, 400*time.Millisecond) // so is the release's
	}
}

func TestButtonLongPress(t *testing.T) {
	edges, presses := button(t, GPIOButton{Debounce: 10 * time.Millisecond, LongPress: 300 * time.Millisecond, Stuck: time.Hour})
	edges <- gpio.Low
	if p := next(t, presses); p.Kind != PressShort {
		t.Fatalf("got %v, want the press first", p.Kind)
	}
	start := time.Now()
	p := next(t, presses)
	if p.Kind != PressLong {
		t.Fatalf("got %v, want a long press", p.Kind)
	}
	if held := time.Since(start); held < 250*time.Millisecond {
		t.Errorf("long press reported after %v, before long_press_seconds", held)
	}
	edges <- gpio.High
	none(t, presses, 200*time.Millisecond)
	// A short press after it is short.
	edges <- gpio.Low
	if p := next(t, presses); p.Kind != PressShort {
		t.Fatalf("got %v, want a press", p.Kind)
	}
	edges <- gpio.High
	none(t, presses, 500*time.Millisecond)
}

func TestButtonStuck(t *testing.T) {
	edges, presses := button(t, GPIOButton{Debounce: 10 * time.Millisecond, LongPress: 100 * time.Millisecond, Stuck: 400 * time.Millisecond})
	edges <- gpio.Low
	for _, want := range []PressKind{PressShort, PressLong, PressStuck} {
		if p := next(t, presses); p.Kind != want {
			t.Fatalf("got %v, want %v", p.Kind, want)
		}
	}
	// Still held: reported once, and no flood of incidents.
	none(t, presses, time.Second)
	edges <- gpio.High
	if p := next(t, presses); p.Kind != PressReleased {
		t.Fatalf("got %v, want the release reported", p.Kind)
	}
	edges <- gpio.Low
	if p := next(t, presses); p.Kind != PressShort {
		t.Fatalf("after the release: got %v, want a press", p.Kind)
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

func TestPatternsEndInTheLastingState(t *testing.T) {
	led := &gpiotest.Pin{N: "GPIO17"}
	buzzer := &gpiotest.Pin{N: "GPIO23"}
	ind := &GPIOIndicator{LED: Output{Pin: led}, Buzzer: Output{Pin: buzzer}}
	defer ind.Halt()
	if err := ind.Set(true); err != nil {
		t.Fatal(err)
	}
	ind.Signal(Ack)
	// The acknowledgement is visible at once: the LED is inverted and the
	// buzzer sounds before Signal's goroutine has slept.
	deadline := time.Now().Add(5 * time.Second)
	for led.Read() != gpio.Low && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if led.Read() != gpio.Low {
		t.Fatal("Ack never blinked the LED")
	}
	// While it blinks, the indicator is still on as far as the interlock is
	// concerned.
	if lit, err := ind.Lit(); !lit || err != nil {
		t.Errorf("Lit() during the blink = %v, %v; want on", lit, err)
	}
	// After 2 s it is steady on again, and quiet: the pattern has ended.
	ind.mu.Lock()
	done := ind.done
	ind.mu.Unlock()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Ack did not end")
	}
	if led.Read() != gpio.High || buzzer.Read() != gpio.Low {
		t.Errorf("after Ack: LED %v, buzzer %v; want steady on and quiet", led.Read(), buzzer.Read())
	}
}

// reportWithin advances the fake clock by step until the button reports,
// at most 200 times: the button may take an edge a moment after the send
// returns, and must see the clock move after it did.
func reportWithin(t *testing.T, clock *clockwork.FakeClock, step time.Duration, presses <-chan Press) Press {
	t.Helper()
	for range 200 {
		select {
		case p := <-presses:
			return p
		case <-time.After(20 * time.Millisecond):
		}
		clock.Advance(step)
	}
	t.Fatal("no report from the button")
	return Press{}
}

// With the configured times (debounce 30 ms, long press 3 s, stuck 30 s) on
// a fake clock: each report comes at exactly its time on the clock, a
// bounce is swallowed however long the button takes to read it, and a
// button held for ten minutes is reported once.
func TestButtonOnAFakeClock(t *testing.T) {
	clock := clockwork.NewFakeClock()
	t0 := clock.Now()
	edges, presses := button(t, GPIOButton{Debounce: 30 * time.Millisecond, LongPress: 3 * time.Second, Stuck: 30 * time.Second, Clock: clock})
	edges <- gpio.Low
	if p := next(t, presses); p.Kind != PressShort || !p.Time.Equal(t0) {
		t.Fatalf("got %v at %v, want a press at once", p.Kind, p.Time.Sub(t0))
	}
	// The contact bounces for 20 ms of the clock's time: nothing is reported.
	for _, l := range []gpio.Level{gpio.High, gpio.Low, gpio.High, gpio.Low} {
		edges <- l
		clock.Advance(5 * time.Millisecond)
	}
	none(t, presses, 100*time.Millisecond)

	clock.Advance(3*time.Second - 20*time.Millisecond)
	if p := next(t, presses); p.Kind != PressLong || !p.Time.Equal(t0.Add(3*time.Second)) {
		t.Fatalf("got %v at %v, want a long press at 3 s", p.Kind, p.Time.Sub(t0))
	}
	clock.Advance(27*time.Second - time.Millisecond)
	none(t, presses, 1500*time.Millisecond) // a moment short of stuck
	clock.Advance(time.Millisecond)
	if p := next(t, presses); p.Kind != PressStuck || !p.Time.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("got %v at %v, want stuck at 30 s", p.Kind, p.Time.Sub(t0))
	}
	for range 10 {
		clock.Advance(time.Minute)
	}
	none(t, presses, 1500*time.Millisecond) // ten minutes held: no more reports

	edges <- gpio.High
	if p := reportWithin(t, clock, 10*time.Millisecond, presses); p.Kind != PressReleased {
		t.Fatalf("got %v, want the release", p.Kind)
	}
	edges <- gpio.Low
	if p := next(t, presses); p.Kind != PressShort {
		t.Fatalf("after the release: got %v, want a press", p.Kind)
	}
	clock.Advance(time.Second) // past the debounce, so the button may stop
}
