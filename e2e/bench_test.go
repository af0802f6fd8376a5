package e2e

import (
	"slices"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"mamoru/device"
	"mamoru/hardware"
)

// ledWrites is the LED's pin, timing every write to it.
type ledWrites struct {
	*gpiotest.Pin
	wrote chan time.Time
}

func (p ledWrites) Out(l gpio.Level) error {
	err := p.Pin.Out(l)
	select {
	case p.wrote <- time.Now():
	default:
	}
	return err
}

// BenchmarkButtonToAckThroughTheRecorder measures, over 10,000 presses, the
// time from the button's edge to the LED's first write of the
// acknowledgement, through the whole recorder: the button's goroutine, the
// recorder's loop and its press handling, while it captures. The first
// press raises an incident and the rest extend it, as a person pressing
// again would. Target: p99 at most 5 ms.
func BenchmarkButtonToAckThroughTheRecorder(b *testing.B) {
	cfg := testConfig(b)
	cfg.Capture.PreSeconds, cfg.Capture.PostSeconds, cfg.Capture.MaxIncidentSeconds = 1, 30, 3600
	btnPin := &gpiotest.Pin{N: "GPIO27", EdgesChan: make(chan gpio.Level)}
	led := ledWrites{&gpiotest.Pin{N: "GPIO17"}, make(chan time.Time, 1)}
	ind := &hardware.GPIOIndicator{LED: hardware.Output{Pin: led}}
	btn := &hardware.GPIOButton{Pin: btnPin, ActiveLow: true, Debounce: 50 * time.Microsecond, LongPress: time.Hour, Stuck: time.Hour}
	rec := withParts(b, &device.Recorder{Config: cfg, Indicator: ind, Button: btn, Log: testLogger(b), Version: "bench"})
	runRecorder(b, rec)
	waitFor(b, cfg, "a pre-roll", func(s device.Status) bool { return s.BufferedSeconds >= 1.5 })
	buttonReady(btnPin)
	const n = 10_000
	lat := make([]time.Duration, 0, n)
	for b.Loop() {
		lat = lat[:0]
		for range n {
			for len(led.wrote) > 0 {
				<-led.wrote
			}
			start := time.Now()
			btnPin.EdgesChan <- gpio.Low
			select {
			case acked := <-led.wrote:
				lat = append(lat, acked.Sub(start))
			case <-time.After(5 * time.Second):
				b.Fatalf("press %d: no acknowledgement on the LED in 5 s", len(lat))
			}
			btnPin.EdgesChan <- gpio.High
			time.Sleep(200 * time.Microsecond) // past the debounce
		}
	}
	b.StopTimer()
	st := waitFor(b, cfg, "one incident", func(s device.Status) bool { return len(s.Incidents) == 1 })
	if st.Incidents[0].State != "recording" {
		b.Errorf("incident %+v; want the one incident, still recording", st.Incidents[0])
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}

// buttonReady waits until a GPIO button has set its pin up (pulled up, as
// active low): edges sent before that would be flushed.
func buttonReady(pin *gpiotest.Pin) {
	for ready := false; !ready; time.Sleep(time.Millisecond) {
		pin.Lock()
		ready = pin.P == gpio.PullUp
		pin.Unlock()
	}
}
