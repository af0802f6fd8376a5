package hardware

import (
	"context"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

// waitingPin tells the test each time the button's watcher comes back
// for the next edge: by then it has stamped and handed over the last one.
type waitingPin struct {
	*gpiotest.Pin
	waiting chan struct{}
}

func (p *waitingPin) WaitForEdge(timeout time.Duration) bool {
	p.waiting <- struct{}{}
	return p.Pin.WaitForEdge(timeout)
}

// Presses 200 µs apart on the real clock, each released within the
// debounce: every one is reported, though the button's loop takes an edge
// some time after the pin changed. (Judged by when the loop got to it, a
// release could fall into the next press's debounce and lose it.)
//
// The 200 µs are counted from when the watcher stamped the release, which
// the test knows from the watcher coming back for the next edge: counted
// from when the test sent it, a watcher descheduled for longer (under
// emulation, on a loaded machine) would stamp the release and the next
// press closer than the debounce, which no driver can tell from bounce.
func TestButtonRapidPresses(t *testing.T) {
	// The pin's own poll timeout never fires, so the watcher comes back
	// only after an edge: each wait the test sees follows the edge before.
	poll := clockwork.NewFakeClock()
	pin := &waitingPin{Pin: &gpiotest.Pin{N: "GPIO27", EdgesChan: make(chan gpio.Level), Clock: poll}, waiting: make(chan struct{})}
	b := &GPIOButton{Pin: pin, ActiveLow: true, Debounce: 50 * time.Microsecond, LongPress: time.Hour, Stuck: time.Hour}
	presses := make(chan Press)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- b.Run(ctx, presses) }()
	back := func() {
		t.Helper()
		select {
		case <-pin.waiting:
		case <-time.After(5 * time.Second):
			t.Fatal("the button's watcher never came back for the next edge")
		}
	}
	back() // watching
	defer func() {
		cancel()
		pin.EdgesChan <- gpio.High // ends the watcher's last wait
		<-done
	}()
	for i := range 500 {
		pin.EdgesChan <- gpio.Low
		back()
		select {
		case p := <-presses:
			if p.Kind != PressShort {
				t.Fatalf("press %d reported as %v", i, p.Kind)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("press %d of 500 was not reported", i)
		}
		pin.EdgesChan <- gpio.High
		back() // the release is stamped
		time.Sleep(200 * time.Microsecond)
	}
}
