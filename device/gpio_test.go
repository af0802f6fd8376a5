package device

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"mamoru/config"
	"mamoru/hardware"
	"mamoru/outbox"
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
	rec := &Recorder{Config: cfg, Indicator: ind, Log: testLogger(t), Version: "test", Healthy: func() { pets.Add(1) }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rec.Run(ctx) }()
	waitFor(t, cfg, "video through the camera, and the watchdog petted", func(s Status) bool { return s.Sources["video"].Frames > 30 && pets.Load() > 0 })
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

// deadPin is an LED output that never reads back as driven.
type deadPin struct{ *gpiotest.Pin }

func (deadPin) Read() gpio.Level { return gpio.Low }

func TestGPIOIndicatorFailureMeansNoCapture(t *testing.T) {
	cfg, cameraOpen := cameraConfig(t)
	ind := &hardware.GPIOIndicator{LED: hardware.Output{Pin: deadPin{&gpiotest.Pin{N: "GPIO17"}}}}
	var pets, readies atomic.Int32
	rec := &Recorder{Config: cfg, Indicator: ind, Log: testLogger(t), Version: "test", Healthy: func() { pets.Add(1) }, Ready: func() { readies.Add(1) }}
	runRecorder(t, rec)
	st := waitFor(t, cfg, "fault", func(s Status) bool { return s.State == StateFault })
	if !strings.Contains(st.Fault, "reads back") || st.Indicator {
		t.Errorf("status %+v; want a fault naming the read-back, indicator off", st)
	}
	// Through the retries, the camera and microphone never open.
	// The recorder retries every 5 s; wait past one retry.
	faulted := time.Now()
	st = waitFor(t, cfg, "a retry", func(s Status) bool { return s.State == StateFault && time.Since(faulted) > 6*time.Second })
	if cameraOpen() || st.Sources["video"].Running || st.Sources["audio"].Running || st.BufferedSeconds != 0 {
		t.Errorf("capture ran with a dead indicator: camera open %v, status %+v", cameraOpen(), st)
	}
	if n := pets.Load(); n != 0 {
		t.Errorf("the watchdog was petted %d times during a fault", n)
	}
	if n := readies.Load(); n != 0 {
		t.Errorf("systemd was told the service is ready %d times with a dead indicator", n)
	}
	if _, err := Trigger(context.Background(), cfg.Device.StateDir, "cli"); err == nil || !strings.Contains(err.Error(), "not recording") {
		t.Errorf("a press with a dead indicator: %v, want it refused", err)
	}
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

// patternLog is the simulated indicator, keeping every pattern the
// recorder shows on it.
type patternLog struct {
	*hardware.Sim
	mu       sync.Mutex
	patterns []hardware.Pattern
}

func (p *patternLog) Signal(s hardware.Pattern) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.patterns = append(p.patterns, s)
}

// count returns how many times s was shown.
func (p *patternLog) count(s hardware.Pattern) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, q := range p.patterns {
		if q == s {
			n++
		}
	}
	return n
}

// The real button, on a gpiotest pin, at a counter: a press raises an
// incident and is acknowledged; held, it marks the incident urgent and is
// acknowledged again; held on, it is reported stuck, once, and released.
// The clip waiting for upload shows Pending, and an indicator that fails
// shows Fault.
func TestTheButtonAtTheCounter(t *testing.T) {
	cfg := testConfig(t)
	cfg.Capture.PreSeconds, cfg.Capture.PostSeconds = 1, 1
	// Storage that never answers: the clip waits for upload.
	cfg.Storage.Endpoint, cfg.Storage.Bucket, cfg.Storage.Secure = "127.0.0.1:1", "clips", false
	cfg.Storage.AccessKey, cfg.Storage.SecretKey = "device", "device-secret"
	pin := &gpiotest.Pin{N: "GPIO27", EdgesChan: make(chan gpio.Level)}
	btn := &hardware.GPIOButton{Pin: pin, ActiveLow: true, Debounce: 10 * time.Millisecond, LongPress: 500 * time.Millisecond, Stuck: 1500 * time.Millisecond}
	ind := &patternLog{Sim: &hardware.Sim{}}
	rec := &Recorder{Config: cfg, Indicator: ind, Button: btn, Log: testLogger(t), Version: "test"}
	runRecorder(t, rec)
	waitFor(t, cfg, "a pre-roll", func(s Status) bool { return s.BufferedSeconds >= 1.5 })
	buttonReady(pin)

	pin.EdgesChan <- gpio.Low
	st := waitFor(t, cfg, "the button stuck", func(s Status) bool { return s.ButtonStuck })
	if len(st.Incidents) != 1 {
		t.Fatalf("incidents %+v, want one", st.Incidents)
	}
	if n := ind.count(hardware.Ack); n != 2 {
		t.Errorf("acknowledged %d times, want 2: the press and the long press", n)
	}
	time.Sleep(2 * time.Second) // held on: no more reports
	pin.EdgesChan <- gpio.High
	st = waitFor(t, cfg, "the release", func(s Status) bool { return !s.ButtonStuck })
	if n := ind.count(hardware.Ack); n != 2 || len(st.Incidents) != 1 {
		t.Errorf("after being held for 4 s: %d acknowledgements, incidents %+v; want 2 and one incident", n, st.Incidents)
	}

	waitFor(t, cfg, "the clip, waiting for upload", func(s Status) bool {
		return len(s.Incidents) == 1 && s.Incidents[0].State == outbox.StateComplete && s.PendingUploads == 1
	})
	m, err := outbox.ReadManifest(filepath.Dir(st.Incidents[0].Clip))
	if err != nil {
		t.Fatal(err)
	}
	if !m.Urgent || len(m.Presses) != 1 {
		t.Errorf("manifest urgent %v with %d presses; want urgent, from one press", m.Urgent, len(m.Presses))
	}
	for deadline := time.Now().Add(10 * time.Second); ind.count(hardware.Pending) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the indicator never showed Pending with a clip waiting for upload")
		}
	}
	audit, _ := os.ReadFile(filepath.Join(cfg.Device.StateDir, "audit.log"))
	for _, want := range []string{`"urgent"`, `"stuck"`, `"released"`} {
		if !strings.Contains(string(audit), want) {
			t.Errorf("audit log lacks %s", want)
		}
	}

	ind.Fail(errors.New("LED driver gone"))
	waitFor(t, cfg, "fault", func(s Status) bool { return s.State == StateFault })
	for deadline := time.Now().Add(10 * time.Second); ind.count(hardware.Fault) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the indicator never showed Fault")
		}
	}
}

// systemd hears READY only once the indicator works and capture runs: a
// recorder that starts in a fault tells it when the indicator recovers.
func TestReadyOnlyOnceTheIndicatorWorks(t *testing.T) {
	cfg := testConfig(t)
	sim := &hardware.Sim{}
	sim.Fail(errors.New("LED driver not yet there"))
	var readies atomic.Int32
	rec := &Recorder{Config: cfg, Indicator: sim, Log: testLogger(t), Version: "test", Ready: func() { readies.Add(1) }}
	runRecorder(t, rec)
	waitFor(t, cfg, "fault", func(s Status) bool { return s.State == StateFault })
	time.Sleep(time.Second)
	if n := readies.Load(); n != 0 {
		t.Fatalf("READY sent %d times in a fault", n)
	}
	sim.Fail(nil)
	waitFor(t, cfg, "capture after the indicator recovered", func(s Status) bool { return s.State == StateBuffering })
	for deadline := time.Now().Add(5 * time.Second); readies.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if n := readies.Load(); n != 1 {
		t.Errorf("READY sent %d times after the indicator recovered, want once", n)
	}
}

// The watchdog is petted only while the ring advances: a camera that stops
// sending frames, with no microphone to keep the ring moving, stops the
// petting within 10 s, so systemd restarts the service.
func TestWatchdogStopsWhenTheRingStandsStill(t *testing.T) {
	cfg := testConfig(t)
	cfg.Audio.Enabled = false
	marker := filepath.Join(t.TempDir(), "sent")
	// The first run of the camera sends a second of video and hangs; every
	// later run hangs at once.
	cfg.Video.Source = config.SourceCommand
	cfg.Video.Command = fmt.Sprintf("[ -e %[1]s ] && exec sleep 3600; touch %[1]s; ffmpeg -hide_banner -nostdin -loglevel error -re -f lavfi -i testsrc=size=320x240:rate=30 "+
		"-frames:v 30 -c:v libx264 -preset ultrafast -bf 0 -g 15 -f h264 -; exec sleep 3600", marker)
	var pets atomic.Int32
	var lastPet atomic.Int64
	rec := &Recorder{Config: cfg, Indicator: &hardware.Sim{}, Log: testLogger(t), Version: "test",
		Healthy: func() { pets.Add(1); lastPet.Store(time.Now().UnixNano()) }}
	runRecorder(t, rec)
	waitFor(t, cfg, "the camera's second of video", func(s Status) bool { return s.Sources["video"].Frames >= 30 })
	if pets.Load() == 0 {
		time.Sleep(1500 * time.Millisecond)
	}
	if pets.Load() == 0 {
		t.Fatal("the watchdog was never petted while the ring advanced")
	}
	stalled := time.Now()
	time.Sleep(14 * time.Second)
	last := time.Unix(0, lastPet.Load())
	if since := last.Sub(stalled); since > 11*time.Second {
		t.Errorf("the watchdog was petted %v after the last frame; want it to stop within 10 s", since.Round(time.Millisecond))
	}
	if quiet := time.Since(last); quiet < 2*time.Second {
		t.Errorf("the watchdog was petted %v ago, with the ring still for 14 s", quiet.Round(time.Millisecond))
	}
}
