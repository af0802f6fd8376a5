package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"mamoru/alert/mqtttest"
	"mamoru/backoff"
	"mamoru/health"
)

// next returns the next message on topic, skipping others.
func next(t *testing.T, got <-chan mqtttest.Message, topic string) mqtttest.Message {
	t.Helper()
	for {
		m := wait(t, got, "a message on "+topic)
		if m.Topic == topic {
			return m
		}
	}
}

func newMQTT(t *testing.T, o MQTTOptions) *MQTT {
	t.Helper()
	if o.Store == "" {
		o.Store, o.Device, o.DeviceLabel = "shop-1", "counter-1", "カウンター1"
	}
	if o.Label == "" {
		o.Label = "ha"
	}
	m, err := NewMQTT(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func sendNow(t *testing.T, m *MQTT, e Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Send(ctx, e); err != nil {
		t.Fatalf("Send: %v", err)
	}
}

// An event arrives on …/events as its JSON, availability is online
// (retained) and the state follows the event (retained); Close says
// offline.
func TestMQTTEvent(t *testing.T) {
	b := mqtttest.Start(t, nil)
	got := b.Subscribe("mamoru/#")
	m := newMQTT(t, MQTTOptions{URL: "mqtt://" + b.Addr})
	e := origin.IncidentEvent(IncidentStarted, time.Date(2026, 11, 30, 14, 2, 5, 0, time.UTC), "20261130-140205-000042", time.Date(2026, 11, 30, 14, 2, 5, 0, time.UTC))
	e.Urgent = true
	sendNow(t, m, e)

	// The connect publishes availability and the state (unknown, or
	// already the event's) beside Send: take the last of each.
	last := map[string]string{}
	for last["events"] == "" || last["availability"] == "" || last["state"] == "" || strings.Contains(last["state"], "unknown") {
		msg := wait(t, got, "availability, state and the event")
		last[strings.TrimPrefix(msg.Topic, "mamoru/shop-1/counter-1/")] = msg.Payload
	}
	if last["availability"] != "online" {
		t.Errorf("availability: got %q, want online", last["availability"])
	}
	var s State
	if err := json.Unmarshal([]byte(last["state"]), &s); err != nil {
		t.Fatalf("state %q: %v", last["state"], err)
	}
	if want := (State{State: "incident", Indicator: "on"}); s != want {
		t.Errorf("state: got %+v, want %+v", s, want)
	}
	want, _ := json.Marshal(e)
	if last["events"] != string(want) {
		t.Errorf("event: got %s, want %s", last["events"], want)
	}

	// Retained: a subscriber that comes later still reads them.
	late := b.Subscribe("mamoru/shop-1/counter-1/+")
	retained := map[string]bool{}
	for len(retained) < 2 {
		msg := wait(t, late, "availability and state, retained")
		if !msg.Retained {
			t.Fatalf("%s is not retained", msg.Topic)
		}
		retained[msg.Topic] = true
	}

	m.Close()
	if a := next(t, got, "mamoru/shop-1/counter-1/availability"); a.Payload != "offline" {
		t.Errorf("availability after Close: got %q, want offline", a.Payload)
	}
}

// Events leaves out of …/events what the target does not take, but the
// state still follows it.
func TestMQTTEventsFilter(t *testing.T) {
	b := mqtttest.Start(t, nil)
	got := b.Subscribe("mamoru/#")
	f, err := NewFilter([]string{"device.*"})
	if err != nil {
		t.Fatal(err)
	}
	m := newMQTT(t, MQTTOptions{URL: "mqtt://" + b.Addr, Events: f})
	now := time.Now()
	sendNow(t, m, origin.IncidentEvent(IncidentSaved, now, "x", now))
	fault := origin.Event(DeviceFault, now)
	sendNow(t, m, fault)
	var states []State
	var events []string
	for len(states) < 2 || len(events) < 1 {
		msg := wait(t, got, "state and events")
		switch msg.Topic {
		case "mamoru/shop-1/counter-1/state":
			var s State
			json.Unmarshal([]byte(msg.Payload), &s)
			// The connect publishes the state too: it may already be
			// the first event's.
			if s.State != "unknown" && (len(states) == 0 || states[len(states)-1] != s) {
				states = append(states, s)
			}
		case "mamoru/shop-1/counter-1/events":
			events = append(events, msg.Payload)
		}
	}
	if want := []State{{"buffering", "on", 1}, {"fault", "fault", 1}}; fmt.Sprint(states) != fmt.Sprint(want) {
		t.Errorf("states: got %v, want %v", states, want)
	}
	if len(events) != 1 || !strings.Contains(events[0], fault.ID) {
		t.Errorf("events: got %q, want only the fault %s", events, fault.ID)
	}
}

// The broker publishes the Last Will, offline, when the target's
// connection dies without a word: here a proxy between them drops it, as
// a power cut or a pulled cable would.
func TestMQTTLastWill(t *testing.T) {
	b := mqtttest.Start(t, nil)
	got := b.Subscribe("mamoru/shop-1/counter-1/availability")
	p := startProxy(t, b.Addr)
	m := newMQTT(t, MQTTOptions{URL: "mqtt://" + p.addr()})
	sendNow(t, m, origin.Event(DeviceRecovered, time.Now()))
	if a := next(t, got, "mamoru/shop-1/counter-1/availability"); a.Payload != "online" {
		t.Fatalf("availability: got %q, want online", a.Payload)
	}
	p.cut()
	if a := next(t, got, "mamoru/shop-1/counter-1/availability"); a.Payload != "offline" {
		t.Errorf("availability after the cut: got %q, want offline (the Last Will)", a.Payload)
	}
}

// proxy relays TCP to a broker until cut, which drops every connection
// and takes no more.
type proxy struct {
	l     net.Listener
	mu    sync.Mutex // guards conns
	conns []net.Conn
}

func startProxy(t *testing.T, to string) *proxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", to)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) addr() string { return p.l.Addr().String() }

func (p *proxy) cut() {
	p.l.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// With HADiscovery, the configs are retained under homeassistant/…/config
// with the fields Home Assistant's MQTT discovery reads.
func TestMQTTDiscovery(t *testing.T) {
	b := mqtttest.Start(t, nil)
	m := newMQTT(t, MQTTOptions{URL: "mqtt://" + b.Addr, HADiscovery: true})
	sendNow(t, m, origin.Event(DeviceRecovered, time.Now()))
	// The configs go out on connect, beside Send: once a first subscriber
	// has them all, a second one can only have them as retained.
	first := b.Subscribe("homeassistant/#")
	for range 3 {
		wait(t, first, "a discovery config")
	}
	got := b.Subscribe("homeassistant/#")
	want := map[string]string{
		"homeassistant/binary_sensor/mamoru_shop-1_counter-1/recording/config": "{{ 'ON' if value_json.indicator == 'on' else 'OFF' }}",
		"homeassistant/sensor/mamoru_shop-1_counter-1/state/config":            "{{ value_json.state }}",
		"homeassistant/sensor/mamoru_shop-1_counter-1/pending_uploads/config":  "{{ value_json.pending_uploads }}",
	}
	for range want {
		msg := wait(t, got, "a discovery config")
		template, ok := want[msg.Topic]
		if !ok {
			t.Errorf("unexpected topic %s", msg.Topic)
			continue
		}
		if !msg.Retained {
			t.Errorf("%s is not retained", msg.Topic)
		}
		var c struct {
			UniqueID          string `json:"unique_id"`
			StateTopic        string `json:"state_topic"`
			ValueTemplate     string `json:"value_template"`
			AvailabilityTopic string `json:"availability_topic"`
			Device            struct {
				Identifiers []string `json:"identifiers"`
				Name        string   `json:"name"`
			} `json:"device"`
		}
		if err := json.Unmarshal([]byte(msg.Payload), &c); err != nil {
			t.Fatalf("%s: %v", msg.Topic, err)
		}
		object := strings.Split(msg.Topic, "/")[3]
		if c.UniqueID != "mamoru_shop-1_counter-1_"+object || c.StateTopic != "mamoru/shop-1/counter-1/state" ||
			c.AvailabilityTopic != "mamoru/shop-1/counter-1/availability" || c.ValueTemplate != template ||
			fmt.Sprint(c.Device.Identifiers) != "[mamoru_shop-1_counter-1]" || c.Device.Name != "カウンター1" {
			t.Errorf("%s: got %s", msg.Topic, msg.Payload)
		}
	}
}

// A broker that refuses the login is a *Permanent that says what to fix.
func TestMQTTWrongPassword(t *testing.T) {
	b := mqtttest.Start(t, map[string]string{"mamoru": "right"})
	m := newMQTT(t, MQTTOptions{URL: "mqtt://" + b.Addr, Username: "mamoru", Password: "wrong"})
	err := m.Send(context.Background(), origin.Event(DeviceFault, time.Now()))
	var p *Permanent
	if !errors.As(err, &p) || !strings.Contains(p.Fix, "password_file") {
		t.Fatalf("got %v, want a *Permanent naming password_file", err)
	}
	if strings.Contains(err.Error(), "wrong") || strings.Contains(err.Error(), b.Addr) {
		t.Errorf("the error shows a secret: %v", err)
	}

	ok := newMQTT(t, MQTTOptions{Label: "right", URL: "mqtt://" + b.Addr, Username: "mamoru", Password: "right"})
	sendNow(t, ok, origin.Event(DeviceFault, time.Now()))
}

// While the broker is down the queue keeps the event; once it is back,
// the event arrives.
func TestMQTTBrokerDownThenUp(t *testing.T) {
	b := mqtttest.Start(t, nil)
	m := newMQTT(t, MQTTOptions{URL: "mqtt://" + b.Addr, MaxReconnectBackoff: 200 * time.Millisecond})
	sendNow(t, m, origin.Event(DeviceRecovered, time.Now())) // connected once: paho reconnects from now on
	b.Stop()

	accepted := make(chan Event, 1)
	q, err := OpenQueue(t.TempDir(), m, QueueOptions{Label: "ha", Accepted: func(e Event) { accepted <- e },
		Backoff: backoff.Backoff{Min: 50 * time.Millisecond, Max: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	runQueue(t, q)
	e := origin.Event(DeviceFault, time.Now())
	if err := q.Put(e); err != nil {
		t.Fatal(err)
	}
	// The queue tries, and fails, while the broker is down.
	for q.Status().LastError == "" {
		select {
		case got := <-accepted:
			t.Fatalf("accepted %s with the broker down", got.ID)
		case <-time.After(20 * time.Millisecond):
		}
	}

	b.Start()
	// Accepted means the restarted broker acknowledged the event.
	if a := wait(t, accepted, "the event accepted after the broker's return"); a.ID != e.ID {
		t.Errorf("accepted %s, want %s", a.ID, e.ID)
	}
	// And the state it led to is retained there.
	st := next(t, b.Subscribe("mamoru/shop-1/counter-1/state"), "mamoru/shop-1/counter-1/state")
	if !strings.Contains(st.Payload, `"state":"fault"`) {
		t.Errorf("state after the return: got %s, want fault", st.Payload)
	}
}

// A broker down when the target first connects (a device that starts
// before the network): Connect fails and is worth retrying, and the queue
// delivers once the broker is up.
func TestMQTTBrokerDownAtStart(t *testing.T) {
	b := mqtttest.Start(t, nil)
	b.Stop()
	m := newMQTT(t, MQTTOptions{URL: "mqtt://" + b.Addr, ConnectTimeout: time.Second})
	err := m.Connect(context.Background())
	var p *Permanent
	if err == nil || errors.As(err, &p) {
		t.Fatalf("Connect with the broker down: got %v, want an error worth retrying", err)
	}
	accepted := make(chan Event, 1)
	q, err := OpenQueue(t.TempDir(), m, QueueOptions{Label: "ha", Accepted: func(e Event) { accepted <- e },
		Backoff: backoff.Backoff{Min: 50 * time.Millisecond, Max: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	e := origin.Event(DeviceFault, time.Now())
	if err := q.Put(e); err != nil {
		t.Fatal(err)
	}
	runQueue(t, q)
	b.Start()
	if a := wait(t, accepted, "the event accepted once the broker is up"); a.ID != e.ID {
		t.Errorf("accepted %s, want %s", a.ID, e.ID)
	}
}

// Over mqtts the broker's certificate is checked: one from an authority
// the target does not trust is a *Permanent; one it does carries the
// event.
func TestMQTTTLS(t *testing.T) {
	b := mqtttest.StartTLS(t, nil)
	untrusting := newMQTT(t, MQTTOptions{Label: "untrusting", URL: "mqtts://" + b.Addr})
	err := untrusting.Send(context.Background(), origin.Event(DeviceFault, time.Now()))
	var p *Permanent
	if !errors.As(err, &p) || !strings.Contains(p.Fix, "unknown authority") {
		t.Fatalf("got %v, want a *Permanent for the unknown authority", err)
	}

	got := b.Subscribe("mamoru/shop-1/counter-1/events")
	m := newMQTT(t, MQTTOptions{URL: "mqtts://" + b.Addr, RootCAs: b.RootCAs})
	e := origin.Event(DeviceFault, time.Now())
	sendNow(t, m, e)
	if ev := next(t, got, "mamoru/shop-1/counter-1/events"); !strings.Contains(ev.Payload, e.ID) {
		t.Errorf("event: got %s, want %s", ev.Payload, e.ID)
	}
}

// NewMQTT refuses what it cannot connect to, without repeating the URL.
func TestNewMQTTRefuses(t *testing.T) {
	for _, tc := range []struct{ name, url, store string }{
		{"http", "http://broker.example:1883", "shop-1"},
		{"no port", "mqtts://broker.example", "shop-1"},
		{"no host", "mqtt://:1883", "shop-1"},
		{"no store", "mqtts://broker.example:8883", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewMQTT(MQTTOptions{Label: "ha", URL: tc.url, Store: tc.store, Device: "counter-1"})
			if err == nil {
				t.Fatal("NewMQTT took it")
			}
			if strings.Contains(err.Error(), "broker.example") {
				t.Errorf("the error repeats the URL: %v", err)
			}
		})
	}
}

// The broker's password changed while the target was connected: the
// reconnection it makes is refused, and Send says so as a *Permanent
// naming password_file, not as a connection down for ever. Once the
// password is right again, the target reconnects by itself.
func TestMQTTPasswordChangedWhileConnected(t *testing.T) {
	b := mqtttest.Start(t, map[string]string{"mamoru": "right"})
	m := newMQTT(t, MQTTOptions{URL: "mqtt://" + b.Addr, Username: "mamoru", Password: "right", MaxReconnectBackoff: 100 * time.Millisecond})
	sendNow(t, m, origin.Event(DeviceRecovered, time.Now()))

	b.Stop()
	b.SetPassword("mamoru", "changed")
	b.Start()
	var p *Permanent
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		err := m.Send(context.Background(), origin.Event(DeviceFault, time.Now()))
		if errors.As(err, &p) {
			break
		}
		if err == nil || time.Now().After(deadline) {
			t.Fatalf("Send after the password changed: got %v, want a *Permanent", err)
		}
	}
	if !strings.Contains(p.Fix, "password_file") || strings.Contains(p.Error(), "right") {
		t.Errorf("got %v, want a fix naming password_file and no password", p)
	}

	b.Stop()
	b.SetPassword("mamoru", "right")
	b.Start()
	online := b.Subscribe("mamoru/shop-1/counter-1/availability")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		err := m.Send(context.Background(), origin.Event(DeviceRecovered, time.Now()))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Send once the password is right again: %v", err)
		}
	}
	if got := next(t, online, "mamoru/shop-1/counter-1/availability"); got.Payload != "online" {
		t.Errorf("availability after reconnecting: got %q, want online", got.Payload)
	}
}

// The state topic follows the recorder's reports, handed on by the
// dispatcher: outside its hours a device says idle with its indicator off,
// and the pending uploads are the card's, incidents from before a restart
// included; an event moves it at once in between.
func TestMQTTFollowsReports(t *testing.T) {
	b := mqtttest.Start(t, nil)
	states := b.Subscribe("mamoru/shop-1/counter-1/state")
	m := newMQTT(t, MQTTOptions{URL: "mqtt://" + b.Addr})
	if err := m.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	d := NewDispatcher([]Route{route(t, nil, m, nil)}, DispatcherOptions{Log: quiet})
	runDispatcher(t, d)
	if got := next(t, states, "mamoru/shop-1/counter-1/state").Payload; got != `{"state":"unknown","indicator":"unknown","pending_uploads":0}` {
		t.Errorf("state at connect: %s", got)
	}
	for _, tt := range []struct {
		r    health.Report
		want string
	}{
		{health.Report{State: "idle", PendingUploads: 3}, `{"state":"idle","indicator":"off","pending_uploads":3}`},
		{health.Report{State: "buffering", Indicator: true, PendingUploads: 2}, `{"state":"buffering","indicator":"on","pending_uploads":2}`},
		{health.Report{State: "fault", PendingUploads: 2}, `{"state":"fault","indicator":"fault","pending_uploads":2}`},
	} {
		d.Follow(tt.r)
		if got := next(t, states, "mamoru/shop-1/counter-1/state").Payload; got != tt.want {
			t.Errorf("after a report of %s: state %s, want %s", tt.r.State, got, tt.want)
		}
	}
	sendNow(t, m, origin.Event(DeviceRecovered, time.Now()))
	if got := next(t, states, "mamoru/shop-1/counter-1/state").Payload; got != `{"state":"buffering","indicator":"on","pending_uploads":2}` {
		t.Errorf("after device.recovered: state %s", got)
	}
	// Retained: a subscriber that comes later is told the newest.
	if got := next(t, b.Subscribe("mamoru/shop-1/counter-1/state"), "mamoru/shop-1/counter-1/state"); !got.Retained || got.Payload != `{"state":"buffering","indicator":"on","pending_uploads":2}` {
		t.Errorf("a later subscriber is told %s (retained %v), want the newest state retained", got.Payload, got.Retained)
	}
}
