package hardware

import (
	"context"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

// Presses 200 µs apart on the real clock, each released within the
// debounce: every one is reported, though the button's loop takes an edge
// some time after the pin changed. (Judged by when the loop got to it, a
// release could fall into the next press's debounce and lose it.)
func TestButtonRapidPresses(t *testing.T) {
	pin := &gpiotest.Pin{N: "GPIO27", EdgesChan: make(chan gpio.Level)}
	b := &GPIOButton{Pin: pin, ActiveLow: true, Debounce: 50 * time.Microsecond, LongPress: time.Hour, Stuck: time.Hour}
	presses := make(chan Press)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- b.Run(ctx, presses) }()
	defer func() { cancel(); <-done }()
	for ready := false; !ready; time.Sleep(time.Millisecond) {
		pin.Lock()
		ready = pin.P == gpio.PullUp
		pin.Unlock()
	}
	for i := range 500 {
		pin.EdgesChan <- gpio.Low
		select {
		case p := <-presses:
			if p.Kind != PressShort {
				t.Fatalf("press %d reported as %v", i, p.Kind)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("press %d of 500 was not reported", i)
		}
		pin.EdgesChan <- gpio.High
		time.Sleep(200 * time.Microsecond)
	}
}
