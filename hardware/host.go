package hardware

import (
	"fmt"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/host/v3"

	"mamoru/clock"
	"mamoru/config"
)

// OpenGPIO opens the counter's pins as h names them, through periph.io's
// host drivers (the GPIO character device where the kernel has it). Every
// output is forced off first: after a crash or SIGKILL the pins hold
// whatever the last run left. Their patterns and the button's presses run
// on c, which must be the recorder's clock.
func OpenGPIO(h config.Hardware, c clock.Clock) (*GPIOIndicator, *GPIOButton, error) {
	if _, err := host.Init(); err != nil {
		return nil, nil, fmt.Errorf("hardware: GPIO drivers: %w", err)
	}
	open := func(key, name string) (gpio.PinIO, error) {
		if name == "" {
			return nil, nil
		}
		p := gpioreg.ByName(name)
		if p == nil {
			return nil, fmt.Errorf("hardware: '%s' = %q: no such GPIO on this machine (is this a Raspberry Pi, and may this user open /dev/gpiochip*?)", key, name)
		}
		return p, nil
	}
	led, err := open("hardware.indicator_pin", h.IndicatorPin)
	if err != nil {
		return nil, nil, err
	}
	sign, err := open("hardware.sign_pin", h.SignPin)
	if err != nil {
		return nil, nil, err
	}
	buzzer, err := open("hardware.buzzer_pin", h.BuzzerPin)
	if err != nil {
		return nil, nil, err
	}
	button, err := open("hardware.button_pin", h.ButtonPin)
	if err != nil {
		return nil, nil, err
	}
	ind := &GPIOIndicator{
		LED:    Output{Pin: led, ActiveLow: h.IndicatorActiveLow},
		Sign:   Output{Pin: sign, ActiveLow: h.SignActiveLow},
		Buzzer: Output{Pin: buzzer},
		Clock:  c,
	}
	if err := ind.Halt(); err != nil {
		return nil, nil, err
	}
	btn := &GPIOButton{Pin: button, ActiveLow: h.ButtonActiveLow, LongPress: time.Duration(h.LongPressSeconds) * time.Second, Clock: c}
	return ind, btn, nil
}
