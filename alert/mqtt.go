package alert

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mamoru/backoff"
	"mamoru/health"
	"net/url"
	"regexp"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// MQTTOptions configure an MQTT target.
type MQTTOptions struct {
	Label string // who this is, for errors; never the URL or the login
	// URL is the broker: mqtts://host:port (TLS, checked against
	// RootCAs) or mqtt://host:port (plain).
	URL string
	// RootCAs are the authorities an mqtts broker's certificate must come
	// from; nil is the system's.
	RootCAs            *x509.CertPool
	Username, Password string // the broker's login; "" for none
	// TopicPrefix starts every topic: <prefix>/<store>/<device>/...;
	// "" is "mamoru".
	TopicPrefix     string
	Store, Device   string
	DeviceLabel     string // the device's human label, Home Assistant's device name; "" is Device
	HADiscovery     bool   // publish Home Assistant MQTT discovery (see MQTT)
	DiscoveryPrefix string // Home Assistant's discovery prefix; "" is "homeassistant"
	// ConnectTimeout bounds a connection's making, and Timeout Send's wait
	// for the broker's ack; zero is 10 s each. They are the network's,
	// real time: a broker that never answers would hold up the queue.
	ConnectTimeout, Timeout time.Duration
	MaxReconnectBackoff     time.Duration // the reconnection backoff's ceiling; zero is 30 s
	// Events are the events published on the events topic; the zero
	// Filter publishes every event Send is given. Every event Send is
	// given moves the state topic, whether it is published or not: hand
	// the target every event for the state to follow the device.
	Events Filter
}

// MQTT publishes to an MQTT broker, over one long-lived connection that
// paho reconnects by itself:
//
//	<prefix>/<store>/<device>/availability  "online" on each connect, "offline" on Close;
//	                                        the broker's Last Will says "offline" when the
//	                                        connection dies without Close. Retained, QoS 1.
//	<prefix>/<store>/<device>/state         {"state": ..., "indicator": ..., "pending_uploads": n}
//	                                        retained, QoS 1 (see State)
//	<prefix>/<store>/<device>/events        each event's JSON (as webhooks get it), QoS 1,
//	                                        not retained
//
// With HADiscovery, each connect also publishes retained Home Assistant
// discovery configs, <discovery prefix>/<component>/mamoru_<store>_<device>/<object>/config,
// for a binary_sensor "recording" (on while the indicator is lit), a
// sensor "state" and a sensor "pending_uploads", all of one device named
// by the device's label, unavailable while availability says offline.
//
// Send waits for the broker's acknowledgement of the event (PUBACK),
// bounded by its context and Timeout. A broker that refuses the login is
// a *Permanent, at the first connection or at any reconnection after a
// lost one (the password changed on the broker); a broker that cannot be
// reached, or a connection being re-established, is worth retrying. The
// target reconnects by itself, with backoff up to MaxReconnectBackoff,
// rather than leaving it to paho, which does not say why a reconnection
// fails. A message lost with a connection is not sent again by paho but
// by the queue, when Send's wait ends without an ack.
type MQTT struct {
	opts   MQTTOptions
	kind   string
	client paho.Client
	broker string // paho's: tcp://host:port or ssl://host:port
	topic  string // <prefix>/<store>/<device>

	// dial serializes connect: Dispatcher.Run's Connect and a Send
	// should not both make the first connection.
	dial sync.Mutex
	mu   sync.Mutex // guards the fields below, and orders the state's publishes
	// state is what the state topic says, from the events Send saw.
	state State
	// connected: a first Connect succeeded, and the target reconnects
	// from then on.
	connected bool
	// redialing: a redial goroutine runs; down is why the connection is
	// not up while it does, the last reconnection's error.
	redialing bool
	down      error
	closed    bool // Close ran: no more redials

	// stop ends a redial, and the connection it is making: Close calls
	// it.
	stopped context.Context
	stop    context.CancelFunc
	redial  sync.WaitGroup
}

// State is what the state topic says. The target learns it from the
// recorder's reports (Follow: every minute, and at once when the state,
// the indicator, a fault or the recording hours change), and in between
// from the events it is sent, which move it at once:
//
//	state:           the recorder's: idle (outside its hours), buffering,
//	                 incident or fault; "unknown" until a report or an event
//	                 says; incident.started or incident.extended → "incident";
//	                 incident.saved and device.recovered → "buffering";
//	                 device.fault → "fault"
//	indicator:       "on" or "off" as the recorder read it back, "fault" in a
//	                 fault; "unknown" until a report or an event says
//	pending_uploads: the incidents on the card not yet uploaded, by the last
//	                 report, counted up and down by incident.saved and
//	                 incident.uploaded until the next
type State struct {
	State          string `json:"state"`
	Indicator      string `json:"indicator"`
	PendingUploads int    `json:"pending_uploads"`
}

// mqttSafe is what a Home Assistant node or object id may hold.
var mqttSafe = regexp.MustCompile(`[^A-Za-z0-9_-]`)

// NewMQTT checks o and returns its target, not yet connected: Connect
// or Send connects.
func NewMQTT(o MQTTOptions) (*MQTT, error) {
	u, err := url.Parse(o.URL)
	if err != nil || u.Hostname() == "" || u.Port() == "" || (u.Scheme != "mqtt" && u.Scheme != "mqtts") {
		return nil, errors.New("alert: the url is not an mqtt:// or mqtts:// URL with host and port")
	}
	if o.Store == "" || o.Device == "" {
		return nil, errors.New("alert: an mqtt target needs the store and device to name its topics")
	}
	if o.TopicPrefix == "" {
		o.TopicPrefix = "mamoru"
	}
	if o.DiscoveryPrefix == "" {
		o.DiscoveryPrefix = "homeassistant"
	}
	if o.DeviceLabel == "" {
		o.DeviceLabel = o.Device
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.MaxReconnectBackoff <= 0 {
		o.MaxReconnectBackoff = 30 * time.Second
	}
	m := &MQTT{opts: o, kind: "mqtt " + o.Label, topic: o.TopicPrefix + "/" + o.Store + "/" + o.Device,
		state: State{State: "unknown", Indicator: "unknown"}}
	m.stopped, m.stop = context.WithCancel(context.Background())
	m.broker = "tcp://" + u.Host
	if u.Scheme == "mqtts" {
		m.broker = "ssl://" + u.Host
	}
	co := m.clientOptions("").
		SetWill(m.topic+"/availability", "offline", 1, true).
		SetAutoReconnect(false). // the target reconnects itself: see lost
		SetConnectRetry(false).
		SetOrderMatters(false).
		SetStore(forgetful{}).
		SetOnConnectHandler(m.onConnect).
		SetConnectionLostHandler(m.lost)
	m.client = paho.NewClient(co)
	return m, nil
}

// clientOptions are a connection's to the broker, its client id the
// target's with suffix. One client id per device and target: a broker
// drops the older connection of two with the same id.
func (m *MQTT) clientOptions(suffix string) *paho.ClientOptions {
	sum := sha256.Sum256([]byte(m.opts.Label))
	return paho.NewClientOptions().
		AddBroker(m.broker).
		SetClientID("mamoru-" + m.opts.Store + "-" + m.opts.Device + "-" + hex.EncodeToString(sum[:4]) + suffix).
		SetUsername(m.opts.Username).
		SetPassword(m.opts.Password).
		SetTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12, RootCAs: m.opts.RootCAs}).
		SetCleanSession(true).
		SetConnectTimeout(m.opts.ConnectTimeout)
}

// Probe connects to the broker and disconnects, publishing nothing: no
// availability, no state, and no Last Will, under a client id of its own
// so that a recorder running with this target keeps its connection.
// `mamoru check` shows a broker that cannot be reached, whose certificate
// is not trusted, or that refuses the login.
func (m *MQTT) Probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, m.opts.ConnectTimeout)
	defer cancel()
	c := paho.NewClient(m.clientOptions("-check").SetAutoReconnect(false).SetConnectRetry(false))
	if err := m.wait(ctx, c.Connect()); err != nil {
		return err
	}
	c.Disconnect(250)
	return nil
}

// SendTest publishes e, an installer's test alert, on the events topic
// through a connection of its own, made as Probe makes it: it says
// nothing of availability or state, so a recorder running with this
// target keeps its connection and its state.
func (m *MQTT) SendTest(ctx context.Context, e Event) error {
	ctx, cancel := context.WithTimeout(ctx, m.opts.ConnectTimeout+m.opts.Timeout)
	defer cancel()
	body, err := json.Marshal(e)
	if err != nil {
		return &Permanent{Fix: "the event cannot be encoded", Err: fmt.Errorf("alert: %s: %w", m.kind, err)}
	}
	c := paho.NewClient(m.clientOptions("-check").SetAutoReconnect(false).SetConnectRetry(false))
	if err := m.wait(ctx, c.Connect()); err != nil {
		return err
	}
	defer c.Disconnect(250)
	return m.wait(ctx, c.Publish(m.topic+"/events", 1, false, body))
}

// onConnect runs on paho's goroutine on each connect: it says online,
// and publishes the discovery configs and the state again, since the
// broker may have lost its retained messages. It does not wait for
// their acks: a lost one comes again at the next connect.
func (m *MQTT) onConnect(c paho.Client) {
	c.Publish(m.topic+"/availability", 1, true, "online")
	if m.opts.HADiscovery {
		for _, d := range m.discovery() {
			c.Publish(d.topic, 1, true, d.payload)
		}
	}
	m.follow(nil)
}

// Send publishes e on the events topic (if Events takes it) and the state
// e leads to, and waits for the broker to take both.
func (m *MQTT) Send(ctx context.Context, e Event) error {
	ctx, cancel := context.WithTimeout(ctx, m.opts.Timeout)
	defer cancel()
	if err := m.connect(ctx); err != nil {
		return err
	}
	body, err := json.Marshal(e)
	if err != nil {
		return &Permanent{Fix: "the event cannot be encoded", Err: fmt.Errorf("alert: %s: %w", m.kind, err)}
	}
	var toks []paho.Token
	if t := m.follow(&e); t != nil {
		toks = append(toks, t)
	}
	if m.opts.Events.patterns == nil || m.opts.Events.Match(e.Name) {
		toks = append(toks, m.client.Publish(m.topic+"/events", 1, false, body))
	}
	for _, t := range toks {
		if err := m.wait(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

// follow moves the state by e and publishes it if it changed; with e nil,
// it publishes it as it is. It returns the publish's token, or nil. The
// lock held across the publish keeps the broker's retained state the
// newest: publishes go out in the order they are made.
func (m *MQTT) follow(e *Event) paho.Token {
	m.mu.Lock()
	defer m.mu.Unlock()
	was := m.state
	if e != nil {
		switch e.Name {
		case IncidentStarted, IncidentExtended:
			m.state.State, m.state.Indicator = "incident", "on"
		case IncidentSaved:
			m.state.State, m.state.Indicator = "buffering", "on"
			m.state.PendingUploads++
		case IncidentUploaded:
			m.state.PendingUploads = max(m.state.PendingUploads-1, 0)
		case DeviceRecovered:
			m.state.State, m.state.Indicator = "buffering", "on"
		case DeviceFault:
			m.state.State, m.state.Indicator = "fault", "fault"
		}
		if m.state == was {
			return nil
		}
	}
	b, _ := json.Marshal(m.state)
	return m.client.Publish(m.topic+"/state", 1, true, b)
}

// Follow sets the state from the recorder's own report, r, and publishes
// it if it changed, without waiting for the broker: a state lost with a
// connection goes again at the next connect. Dispatcher.Follow calls it.
func (m *MQTT) Follow(r health.Report) {
	st := State{State: r.State, Indicator: "off", PendingUploads: r.PendingUploads}
	switch {
	case r.State == "fault":
		st.Indicator = "fault"
	case r.Indicator:
		st.Indicator = "on"
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state == st {
		return
	}
	m.state = st
	b, _ := json.Marshal(m.state)
	m.client.Publish(m.topic+"/state", 1, true, b)
}

// Connect makes the connection, if it is not made yet, so that the
// broker hears online before the first event: Dispatcher.Run calls it at
// start. Send connects too, so an error here is only worth a log line.
func (m *MQTT) Connect(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, m.opts.ConnectTimeout)
	defer cancel()
	return m.connect(ctx)
}

// connect makes the first connection; after it, paho keeps the
// connection, and a connection down is an error worth retrying.
func (m *MQTT) connect(ctx context.Context) error {
	m.dial.Lock()
	defer m.dial.Unlock()
	m.mu.Lock()
	connected := m.connected
	m.mu.Unlock()
	if connected {
		if m.client.IsConnectionOpen() {
			return nil
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.down != nil {
			return m.down
		}
		return fmt.Errorf("alert: %s: the broker's connection is down, reconnecting", m.kind)
	}
	if err := m.wait(ctx, m.client.Connect()); err != nil {
		return err
	}
	m.mu.Lock()
	m.connected = true
	m.mu.Unlock()
	return nil
}

// lost runs on paho's goroutine when a connection made is lost: it starts
// the redial, unless one runs or the target is closed.
func (m *MQTT) lost(_ paho.Client, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.redialing || m.closed {
		return
	}
	m.redialing = true
	m.down = fmt.Errorf("alert: %s: the broker's connection was lost, reconnecting: %w", m.kind, err)
	m.redial.Add(1)
	go m.redialLoop()
}

// redialLoop connects again until it succeeds or Close stops it,
// waiting with backoff between attempts, and keeps each failure in down
// for Send to report: a login refused is a *Permanent saying what to fix.
func (m *MQTT) redialLoop() {
	defer m.redial.Done()
	b := backoff.Backoff{Min: min(time.Second, m.opts.MaxReconnectBackoff), Max: m.opts.MaxReconnectBackoff, Jitter: 0.2}
	for attempt := 0; ; attempt++ {
		// Real time: the broker is on the network.
		t := time.NewTimer(b.Delay(attempt))
		select {
		case <-m.stopped.Done():
			t.Stop()
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(m.stopped, m.opts.ConnectTimeout)
		err := m.wait(ctx, m.client.Connect())
		cancel()
		m.mu.Lock()
		if err == nil || m.closed {
			m.redialing, m.down = false, nil
			m.mu.Unlock()
			return
		}
		m.down = err
		m.mu.Unlock()
	}
}

// wait waits for t, bounded by ctx, and classifies its error.
func (m *MQTT) wait(ctx context.Context, t paho.Token) error {
	select {
	case <-t.Done():
	case <-ctx.Done():
		return fmt.Errorf("alert: %s: no answer from the broker: %w", m.kind, ctx.Err())
	}
	err := t.Error()
	if err == nil {
		return nil
	}
	err = fmt.Errorf("alert: %s: %w", m.kind, err)
	switch {
	case errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword):
		return &Permanent{Fix: "the broker refuses the login: check the target's username and password_file", Err: err}
	case errors.Is(err, packets.ErrorRefusedNotAuthorised):
		return &Permanent{Fix: "the broker refuses this client: check the target's username and password_file, and the broker's access list", Err: err}
	case errors.Is(err, packets.ErrorRefusedIDRejected), errors.Is(err, packets.ErrorRefusedBadProtocolVersion):
		return &Permanent{Fix: "the broker refuses the connection: it must take MQTT 3.1.1", Err: err}
	}
	return checkTransport(err, m.kind)
}

// Close says offline (retained) and disconnects. It waits at most
// timeout for the broker to take the offline message.
func (m *MQTT) Close() error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.stop()
	m.redial.Wait()
	if !m.client.IsConnectionOpen() {
		m.client.Disconnect(0)
		return nil
	}
	t := m.client.Publish(m.topic+"/availability", 1, true, "offline")
	t.WaitTimeout(2 * time.Second)
	m.client.Disconnect(250)
	return nil
}

// forgetful is a paho Store that keeps nothing: the queue on the card, not
// paho, sends again what a lost connection lost (Send's wait times out).
// Paho's own store also races: it marks a stored message a duplicate while
// the new connection writes it.
type forgetful struct{}

func (forgetful) Open()                             {}
func (forgetful) Put(string, packets.ControlPacket) {}
func (forgetful) Get(string) packets.ControlPacket  { return nil }
func (forgetful) All() []string                     { return nil }
func (forgetful) Del(string)                        {}
func (forgetful) Close()                            {}
func (forgetful) Reset()                            {}

// discoveryConfig is a retained Home Assistant discovery message.
type discoveryConfig struct {
	topic   string
	payload []byte
}

// discovery returns the Home Assistant discovery configs, per
// https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery.
func (m *MQTT) discovery() []discoveryConfig {
	node := "mamoru_" + mqttSafe.ReplaceAllString(m.opts.Store, "_") + "_" + mqttSafe.ReplaceAllString(m.opts.Device, "_")
	device := map[string]any{
		"identifiers":  []string{node},
		"name":         m.opts.DeviceLabel,
		"manufacturer": "mamoru",
		"model":        "mamoru recorder",
	}
	entities := []struct {
		component, object string
		fields            map[string]any
	}{
		{"binary_sensor", "recording", map[string]any{
			"name":           "Recording",
			"value_template": "{{ 'ON' if value_json.indicator == 'on' else 'OFF' }}",
			"payload_on":     "ON",
			"payload_off":    "OFF",
			"device_class":   "running",
		}},
		{"sensor", "state", map[string]any{
			"name":           "State",
			"value_template": "{{ value_json.state }}",
		}},
		{"sensor", "pending_uploads", map[string]any{
			"name":           "Pending uploads",
			"value_template": "{{ value_json.pending_uploads }}",
			"state_class":    "measurement",
		}},
	}
	var out []discoveryConfig
	for _, e := range entities {
		f := e.fields
		f["unique_id"] = node + "_" + e.object
		f["state_topic"] = m.topic + "/state"
		f["availability_topic"] = m.topic + "/availability"
		f["payload_available"] = "online"
		f["payload_not_available"] = "offline"
		f["device"] = device
		b, _ := json.Marshal(f)
		out = append(out, discoveryConfig{topic: m.opts.DiscoveryPrefix + "/" + e.component + "/" + node + "/" + e.object + "/config", payload: b})
	}
	return out
}
