package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"mamoru/config"
	"mamoru/device"
	"mamoru/hardware"
)

// cameraConfig runs the camera as a shell that writes its pid to a file and
// then becomes ffmpeg, so a test can tell whether the camera is open.
func cameraConfig(t *testing.T) (config.Config, func() bool) {
	cfg := testConfig(t)
	pidfile := filepath.Join(t.TempDir(), "camera.pid")
	cfg.Video.Source = config.SourceCommand
	cfg.Video.Command = fmt.Sprintf("echo $$ > %s; exec ffmpeg -hide_banner -nostdin -loglevel error -re -f lavfi -i testsrc=size=320x240:rate=30 "+
		"-c:v libx264 -preset ultrafast -tune zerolatency -bf 0 -g 15 -pix_fmt yuv420p -f h264 -", pidfile)
	open := func() bool {
		b, err := os.ReadFile(pidfile)
		if err != nil {
			return false
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && syscall.Kill(pid, 0) == nil
	}
	return cfg, open
}

// interlockPin is the indicator's LED pin; it checks, at every write, that
// the camera is closed whenever the indicator changes: before it goes on,
// and before it goes off.
type interlockPin struct {
	*gpiotest.Pin
	cameraOpen func() bool

	mu         sync.Mutex // guards the fields below
	level      gpio.Level
	changes    int
	violations []string
}

func (p *interlockPin) Out(l gpio.Level) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l != p.level {
		p.changes++
		if p.cameraOpen() {
			p.violations = append(p.violations, fmt.Sprintf("indicator set %v while the camera was open", l))
		}
		p.level = l
	}
	return p.Pin.Out(l)
}

func TestGPIOIndicatorBracketsCapture(t *testing.T) {
	cfg, cameraOpen := cameraConfig(t)
	led := &interlockPin{Pin: &gpiotest.Pin{N: "GPIO17"}, cameraOpen: cameraOpen}
	ind := &hardware.GPIOIndicator{LED: hardware.Output{Pin: led}, Sign: hardware.Output{Pin: &gpiotest.Pin{N: "GPIO22"}}}
	var pets atomic.Int32
	rec := withParts(t, &device.Recorder{Config: cfg, Indicator: ind, Log: testLogger(t), Version: "test", Healthy: func() { pets.Add(1) }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rec.Run(ctx) }()
	waitFor(t, cfg, "video through the camera, and the watchdog petted", func(s device.Status) bool { return s.Sources["video"].Frames > 30 && pets.Load() > 0 })
	if !cameraOpen() {
		t.Fatal("the camera is not open while buffering: the test cannot see it")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	led.mu.Lock()
	defer led.mu.Unlock()
	if led.changes < 2 || led.level != gpio.Low {
		t.Errorf("the LED changed %d times and ended %v; want on, then off", led.changes, led.level)
	}
	for _, v := range led.violations {
		t.Error(v)
	}
	if cameraOpen() {
		t.Error("the camera is still open after the recorder stopped")
	}
}
