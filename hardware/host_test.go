package hardware

import (
	"strings"
	"testing"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"mamoru/clock"
	"mamoru/config"
)

// After a crash or SIGKILL the pins hold what the last run left: the LED
// lit, the sign's relay on (active low) and the buzzer sounding. Opening
// them forces every output off before anything else happens.
func TestOpenGPIOForcesOutputsOff(t *testing.T) {
	led := &gpiotest.Pin{N: "TEST_LED", Num: 1017, L: gpio.High}
	sign := &gpiotest.Pin{N: "TEST_SIGN", Num: 1022, L: gpio.Low}
	buzzer := &gpiotest.Pin{N: "TEST_BUZZER", Num: 1023, L: gpio.High}
	button := &gpiotest.Pin{N: "TEST_BUTTON", Num: 1027, L: gpio.High}
	for _, p := range []*gpiotest.Pin{led, sign, buzzer, button} {
		if err := gpioreg.Register(p); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { gpioreg.Unregister(p.N) })
	}
	h := config.Default().Hardware
	h.Driver, h.IndicatorPin, h.SignPin, h.SignActiveLow, h.BuzzerPin, h.ButtonPin = config.DriverGPIO, "TEST_LED", "TEST_SIGN", true, "TEST_BUZZER", "TEST_BUTTON"
	ind, btn, err := OpenGPIO(h, clock.Real())
	if err != nil {
		t.Fatal(err)
	}
	if led.Read() != gpio.Low || sign.Read() != gpio.High || buzzer.Read() != gpio.Low {
		t.Errorf("after OpenGPIO: LED %v, sign %v, buzzer %v; want all off (Low, High for the active-low sign, Low)", led.Read(), sign.Read(), buzzer.Read())
	}
	if lit, err := ind.Lit(); lit || err != nil {
		t.Errorf("Lit() = %v, %v; want off", lit, err)
	}
	if btn.Pin != button || !btn.ActiveLow || btn.LongPress != 3e9 {
		t.Errorf("button %+v; want TEST_BUTTON, active low, a 3 s long press", btn)
	}

	h.SignPin = "GPIO99"
	if _, _, err := OpenGPIO(h, clock.Real()); err == nil || !strings.Contains(err.Error(), "hardware.sign_pin") || !strings.Contains(err.Error(), "GPIO99") {
		t.Errorf("a pin that does not exist: %v; want an error naming hardware.sign_pin and GPIO99", err)
	}
}
