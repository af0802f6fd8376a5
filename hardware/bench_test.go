package hardware

import (
	"context"
	"slices"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

// watchedPin reports every write to it.
type watchedPin struct {
	*gpiotest.Pin
	wrote chan time.Time
}

func (p watchedPin) Out(l gpio.Level) error {
	err := p.Pin.Out(l)
	select {
	case p.wrote <- time.Now():
	default:
	}
	return err
}

// BenchmarkButtonToAck measures, over 10,000 simulated presses, the time
// from the button's edge to the indicator showing the acknowledgement: the
// button's goroutine, the channel to the recorder's loop, and Signal(Ack)
// writing the LED. Target: p99 at most 5 ms.
func BenchmarkButtonToAck(b *testing.B) {
	btnPin := &gpiotest.Pin{N: "GPIO27", EdgesChan: make(chan gpio.Level)}
	led := watchedPin{&gpiotest.Pin{N: "GPIO17"}, make(chan time.Time, 1)}
	ind := &GPIOIndicator{LED: Output{Pin: led}}
	defer ind.Halt()
	if err := ind.Set(true); err != nil {
		b.Fatal(err)
	}
	<-led.wrote
	btn := &GPIOButton{Pin: btnPin, ActiveLow: true, Debounce: 50 * time.Microsecond, LongPress: time.Hour, Stuck: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	presses := make(chan Press)
	go btn.Run(ctx, presses)
	go func() { // the recorder's loop, reduced to the acknowledgement
		for p := range presses {
			if p.Kind == PressShort {
				ind.Signal(Ack)
			}
		}
	}()
	for ready := false; !ready; {
		btnPin.Lock()
		ready = btnPin.P == gpio.PullUp
		btnPin.Unlock()
	}
	const n = 10_000
	lat := make([]time.Duration, 0, n)
	for b.Loop() {
		for range n {
			for len(led.wrote) > 0 {
				<-led.wrote
			}
			start := time.Now()
			btnPin.EdgesChan <- gpio.Low
			acked := <-led.wrote
			lat = append(lat, acked.Sub(start))
			btnPin.EdgesChan <- gpio.High
			time.Sleep(100 * time.Microsecond) // past the debounce
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}
