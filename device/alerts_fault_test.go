//go:build linux

package device

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"mamoru/alert"
	"mamoru/alert/mqtttest"
	"mamoru/alert/smtptest"
	"mamoru/config"
	"mamoru/hardware"
)

// dyingPin is an LED output that reads back as driven until it dies, and
// Low from then on: a driver unplugged while the recorder runs.
type dyingPin struct {
	*gpiotest.Pin
	dead atomic.Bool
}

func (p *dyingPin) Read() gpio.Level {
	if p.dead.Load() {
		return gpio.Low
	}
	return p.Pin.Read()
}

// The indicator's LED dies on the GPIO fakes while the recorder buffers:
// within 2 s of the recorder's clock it says device.fault, and every kind
// of target there is a real server for here (a signed webhook, ntfy's
// HTTP, a mosquitto broker, a mailpit SMTP server) receives it. The
// deliveries themselves take real time, on loopback; how long is logged.
func TestGPIOFaultReachesEveryTarget(t *testing.T) {
	var mu sync.Mutex
	got := map[string]time.Time{} // target → when device.fault reached it
	arrived := func(target string) {
		mu.Lock()
		defer mu.Unlock()
		if _, ok := got[target]; !ok {
			got[target] = time.Now()
		}
	}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e alert.Event
		if json.NewDecoder(r.Body).Decode(&e) == nil && e.Name == alert.DeviceFault {
			arrived("webhook")
		}
	}))
	defer hook.Close()
	ntfy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("Priority") != "" && strings.Contains(string(body), "GPIO17") {
			arrived("ntfy")
		}
	}))
	defer ntfy.Close()
	broker := mqtttest.Start(t, nil)
	events := broker.Subscribe("mamoru/test-store/test-counter/events")
	ca := smtptest.NewCA(t)
	mail := smtptest.Start(t, smtptest.Options{CA: ca, Implicit: true})

	cfg := machineConfig(t)
	cfg.Alerts.Targets = []config.Target{
		{Kind: config.KindWebhook, Label: "hook", URL: config.Secret(hook.URL), Format: config.FormatStandard, Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
		{Kind: config.KindNtfy, Label: "phone", URL: config.Secret(ntfy.URL + "/shop1-Zq8rT2kd7VwX")},
		{Kind: config.KindMQTT, Label: "ha", URL: config.Secret("mqtt://" + broker.Addr), TopicPrefix: "mamoru"},
		{Kind: config.KindEmail, Label: "mail", URL: config.Secret("smtps://" + mail.SMTP), RootCAs: ca.Pool,
			From: "mamoru@shop.example.jp", To: []string{"owner@shop.example.jp"}},
	}
	for i := range cfg.Alerts.Targets {
		cfg.Alerts.Targets[i].Events, cfg.Alerts.Targets[i].Language = []string{"device.*"}, "en"
	}
	// The alerts run on the real clock: their servers are real.
	d, err := NewAlerts(cfg, nil, nil, slog.New(slog.NewTextHandler(t.Output(), nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	dispatched := make(chan struct{})
	go func() { defer close(dispatched); d.Run(ctx) }()
	defer func() { cancel(); <-dispatched }()
	alerts := &Alerts{Origin: alert.Origin{Store: cfg.Device.Store, Device: cfg.Device.ID}, Publish: d.Publish}

	led := &dyingPin{Pin: &gpiotest.Pin{N: "GPIO17"}}
	var faultAt atomic.Int64 // the recorder's wall clock at its device.fault, in ns
	m := newMachine(t, cfg, monday, func(m *machine) {
		m.rec.Indicator = &hardware.GPIOIndicator{LED: hardware.Output{Pin: led}, Clock: m.clk}
		m.rec.Events = func(e Event) {
			m.record(e)
			if e.Kind == EventFault {
				faultAt.CompareAndSwap(0, e.Time.UnixNano())
			}
			alerts.Show(e)
		}
	})
	if st := m.sync(); st.State != StateBuffering {
		t.Fatalf("state %s before the fault, want buffering", st.State)
	}
	m.advance(time.Second)
	died, diedReal := m.wall.Now(), time.Now()
	led.dead.Store(true)
	m.advance(2 * time.Second)
	if st := m.sync(); st.State != StateFault {
		t.Fatalf("state %s 2 s after the LED died, want fault", st.State)
	}
	if at := time.Unix(0, faultAt.Load()); faultAt.Load() == 0 || at.Sub(died) > 2*time.Second {
		t.Fatalf("device.fault said at %v, %v after the LED died; want within 2 s", at, at.Sub(died))
	}

	go func() {
		for msg := range events {
			var e alert.Event
			if json.Unmarshal([]byte(msg.Payload), &e) == nil && e.Name == alert.DeviceFault {
				arrived("mqtt")
			}
		}
	}()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		for _, msg := range mail.Messages() {
			if strings.Contains(msg.Text, "GPIO17") {
				arrived("email")
			}
		}
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == len(cfg.Alerts.Targets) {
			break
		}
		if time.Now().After(deadline) {
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("after 30 s, device.fault reached %v only; the targets: %+v", got, d.Status())
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for target, at := range got {
		t.Logf("%s: device.fault received %v (real time) after the LED died", target, at.Sub(diedReal).Round(time.Millisecond))
	}
}
