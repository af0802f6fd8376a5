package device

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"mamoru/alert"
	"mamoru/audit"
	"mamoru/config"
	"mamoru/hardware"
	"mamoru/outbox"
)

// The configuration's event names are the alert package's: a target's
// patterns are judged against the one and routed by the other.
func TestAlertNamesAgree(t *testing.T) {
	var names []string
	for _, n := range alert.Names {
		names = append(names, string(n))
	}
	if !slices.Equal(names, config.EventNames) {
		t.Errorf("alert.Names %q, config.EventNames %q", names, config.EventNames)
	}
}

// Each event a manager must hear of becomes its alert, about the incident
// as store/device/id with its press time; the rest become none.
func TestAlertsOfEvents(t *testing.T) {
	tokyo := time.FixedZone("JST", 9*3600)
	press := time.Date(2026, 11, 30, 5, 2, 5, 0, time.UTC)
	later := press.Add(3 * time.Second)
	a := &Alerts{Origin: alert.Origin{Store: "shop-1", Device: "counter-1", Label: "カウンター1", Zone: tokyo, ConsoleURL: "https://c.example"}}
	m := &outbox.Manifest{Incident: "20261130-140205-000001", PressTime: press, DurationSeconds: 12.5, State: outbox.StateComplete}
	for _, tc := range []struct {
		e       Event
		name    alert.Name
		urgent  bool
		press   time.Time
		details map[string]string
	}{
		{e: Event{Kind: EventIndicator, On: true, Time: press}},
		{e: Event{Kind: EventCapture, Capture: CaptureStarted, Time: press}}, // no fault before it
		{e: Event{Kind: EventPress, Result: PressIncident, Incident: m.Incident, Source: "button", Time: press}, name: alert.IncidentStarted, press: press},
		{e: Event{Kind: EventIncident, State: outbox.StateRecording, Incident: m.Incident, Time: press}},
		{e: Event{Kind: EventUrgent, Incident: m.Incident, Source: "button", Time: later}, name: alert.IncidentStarted, urgent: true, press: press},
		{e: Event{Kind: EventPress, Result: PressExtended, Incident: m.Incident, Source: "cli", Time: later}, name: alert.IncidentExtended, press: later},
		{e: Event{Kind: EventIncident, State: outbox.StateComplete, Incident: m.Incident, Manifest: m, Time: later}, name: alert.IncidentSaved, press: press,
			details: map[string]string{"state": "complete", "duration_seconds": "12.5"}},
		{e: Event{Kind: EventUploaded, Incident: m.Incident, Manifest: m, Object: "shop-1/counter-1/x", Time: later}, name: alert.IncidentUploaded, press: press,
			details: map[string]string{"object": "shop-1/counter-1/x"}},
		{e: Event{Kind: EventPress, Result: PressRefused, Source: "button", Err: &refusal{ErrSpoolFull, "SPOOL FULL"}, Time: later}, name: alert.PressRefused,
			details: map[string]string{"reason": "spool full"}},
		{e: Event{Kind: EventFault, Err: errors.New("indicator: read back off"), Time: later}, name: alert.DeviceFault,
			details: map[string]string{"error": "indicator: read back off"}},
		{e: Event{Kind: EventCapture, Capture: CaptureStarted, Time: later}, name: alert.DeviceRecovered},
		{e: Event{Kind: EventCapture, Capture: CaptureStarted, Time: later}}, // recovered once
		{e: Event{Kind: EventSpool, State: "full", Time: later}, name: alert.SpoolFull},
		{e: Event{Kind: EventSpool, State: "room", Time: later}},
		{e: Event{Kind: EventClock, State: "unsynced", Time: later}, name: alert.ClockUnsynced},
		{e: Event{Kind: EventClock, State: "synced", Time: later}},
		{e: Event{Kind: EventUploadStuck, Err: errors.New("AccessDenied"), Time: later}, name: alert.UploadStuck,
			details: map[string]string{"error": "AccessDenied"}},
		{e: Event{Kind: EventSource, Track: "video", State: "down", Err: errors.New("no camera on CSI port"), Time: later}, name: alert.DeviceFault,
			details: map[string]string{"source": "video", "error": "no camera on CSI port"}},
		{e: Event{Kind: EventSource, Track: "video", State: "up", Time: later}, name: alert.DeviceRecovered,
			details: map[string]string{"source": "video"}},
	} {
		got, ok := a.one(tc.e)
		if tc.name == "" {
			if ok {
				t.Errorf("%s %s: alert %s, want none", tc.e.Kind, tc.e.Result, got.Name)
			}
			continue
		}
		if !ok || got.Name != tc.name || got.Urgent != tc.urgent || !got.PressTime.Equal(tc.press) || got.Time.Location() != tokyo {
			t.Errorf("%s %s: alert %v %+v; want %s urgent=%v pressed %v, in the device's zone", tc.e.Kind, tc.e.Result, ok, got, tc.name, tc.urgent, tc.press)
		}
		if tc.e.Incident != "" && (got.Incident != "shop-1/counter-1/"+tc.e.Incident || got.Link != "https://c.example/incidents/shop-1/counter-1/"+tc.e.Incident) {
			t.Errorf("%s: incident %q link %q", tc.name, got.Incident, got.Link)
		}
		for k, v := range tc.details {
			if got.Details[k] != v {
				t.Errorf("%s: details %v, want %s = %q", tc.name, got.Details, k, v)
			}
		}
	}
}

// When an alert target accepts the press's incident.started, the
// indicator shows Alerted once the press's Ack is over, once per
// incident; an acceptance for another incident, or an urgent re-send,
// shows nothing.
func TestMachineShowsTheAlertWentOut(t *testing.T) {
	m := newMachine(t, machineConfig(t), monday, nil)
	m.advance(2 * time.Second)
	res, err := m.trigger()
	if err != nil {
		t.Fatal(err)
	}
	cfg := m.cfg.Device
	ref := cfg.Store + "/" + cfg.ID + "/" + res.Incident
	m.rec.AlertAccepted(alert.Event{Name: alert.IncidentStarted, Incident: cfg.Store + "/" + cfg.ID + "/20200101-000000-000001"})
	m.rec.AlertAccepted(alert.Event{Name: alert.IncidentStarted, Incident: ref, Urgent: true})
	m.sync()
	if slices.Contains(m.ind.Patterns(), hardware.Alerted) {
		t.Fatalf("patterns %v: Alerted for another incident or an urgent re-send", m.ind.Patterns())
	}
	m.rec.AlertAccepted(alert.Event{Name: alert.IncidentStarted, Incident: ref})
	m.sync()
	if slices.Contains(m.ind.Patterns(), hardware.Alerted) {
		t.Fatalf("patterns %v: Alerted cut the press's Ack short", m.ind.Patterns())
	}
	m.advance(3 * time.Second)
	m.rec.AlertAccepted(alert.Event{Name: alert.IncidentStarted, Incident: ref}) // a second target
	m.advance(time.Second)
	got := m.ind.Patterns()
	ack, alerted := slices.Index(got, hardware.Ack), slices.Index(got, hardware.Alerted)
	if ack < 0 || alerted < ack || slices.Index(got[alerted+1:], hardware.Alerted) >= 0 {
		t.Errorf("patterns %v; want Ack, then Alerted once", got)
	}
}

// NewAlerts builds a target of every kind, and refuses a kind it does not
// know: config refuses it first, and this is the guard behind it.
func TestNewAlertsKinds(t *testing.T) {
	targets := map[string]config.Target{
		config.KindWebhook: {URL: "https://hooks.example/T0/s3cr3t", Format: config.FormatStandard, Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
		config.KindNtfy:    {URL: config.DefaultNtfyURL, Topic: "shop1-Zq8rT2kd7VwX"},
		config.KindEmail: {URL: "smtps://smtp.example.jp:465", Username: "mamoru", Password: "pa55word",
			From: "まもる <mamoru@shop.example.jp>", To: []string{"owner@shop.example.jp"}},
		config.KindMQTT: {URL: "mqtts://broker.example:8883"},
		config.KindLine: {URL: config.DefaultLineURL, Token: "t0ken", To: []string{"U0123456789abcdef0123456789abcdef"}},
	}
	for _, kind := range slices.Concat(config.Kinds, []string{"sms"}) {
		tgt := targets[kind]
		tgt.Kind, tgt.Label, tgt.Language, tgt.Events = kind, "target "+kind, "ja", config.DefaultEvents
		var cfg config.Config
		cfg.Device.Store, cfg.Device.ID, cfg.Device.StateDir = "shop-1", "counter-1", t.TempDir()
		cfg.Alerts.Targets = []config.Target{tgt}
		d, err := NewAlerts(cfg, nil, nil, nil, nil)
		if known := slices.Contains(config.Kinds, kind); known != (err == nil && d != nil) {
			t.Errorf("%s: NewAlerts = %v, %v; want a dispatcher %v", kind, d, err, known)
		}
		if err != nil && !errors.Is(err, ErrKindNotSent) {
			t.Errorf("%s: %v, want ErrKindNotSent", kind, err)
		}
	}
}

// An mqtt target is built, named by the device's store, id and label, and
// is handed every event (its state topic follows them all), whatever its
// events; the other kinds only theirs.
func TestNewAlertsMQTT(t *testing.T) {
	var cfg config.Config
	cfg.Device.Store, cfg.Device.ID, cfg.Device.Label, cfg.Device.StateDir = "shop-1", "counter-1", "カウンター1", t.TempDir()
	cfg.Alerts.Targets = []config.Target{
		{Kind: config.KindMQTT, Label: "ha", URL: "mqtt://127.0.0.1:1883", TopicPrefix: "mamoru", Events: []string{"device.*"}},
		{Kind: config.KindNtfy, Label: "店長", URL: "https://ntfy.sh", Topic: "shop1-Zq8rT2kd7VwX", Events: []string{"device.*"}},
	}
	d, err := NewAlerts(cfg, nil, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	origin := alert.Origin{Store: "shop-1", Device: "counter-1"}
	d.Publish(origin.Event(alert.IncidentSaved, time.Now()))
	d.Publish(origin.Event(alert.DeviceFault, time.Now()))
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Run queues what was published, and returns
	d.Run(ctx)
	if got, want := []int{d.Status().Targets[0].Pending, d.Status().Targets[1].Pending}, []int{2, 1}; !slices.Equal(got, want) {
		t.Errorf("pending: got %v, want %v (mqtt every event, ntfy device.* only)", got, want)
	}
}

// An incident the last run left recording (the power went while it
// recorded, perhaps before its alert reached the card) says its press
// again, on the card (Keep), with the id its press gave it, dated at the
// press; recovered, it is then saved, and set aside it says nothing more.
func TestAlertsRecoveredIncidentStartsAgain(t *testing.T) {
	press := time.Date(2026, 11, 30, 5, 2, 5, 0, time.UTC)
	var kept []alert.Event
	a := &Alerts{Origin: alert.Origin{Store: "shop-1", Device: "counter-1"}, Keep: func(e alert.Event) error { kept = append(kept, e); return nil }}
	pressed := a.of(Event{Kind: EventPress, Result: PressIncident, Incident: "20261130-140205-000001", Source: "button", Time: press})
	m := outbox.Manifest{Incident: "20261130-140205-000001", PressTime: press, Trigger: "button", State: outbox.StateRecording}
	a.Interrupted(m)
	if len(pressed) != 1 || len(kept) != 1 {
		t.Fatalf("alerts %v, then kept %v; want one, then one", pressed, kept)
	}
	if s := kept[0]; s.Name != alert.IncidentStarted || s.ID != pressed[0].ID || !s.Time.Equal(press) || s.Source != "button" {
		t.Errorf("said again: %+v; want incident.started with the press's id %s, at the press, from the button", s, pressed[0].ID)
	}
	m.State = outbox.StateRecovered
	got := a.of(Event{Kind: EventIncident, State: outbox.StateRecovered, Incident: m.Incident, Manifest: &m, Time: press.Add(time.Hour)})
	if len(got) != 1 || got[0].Name != alert.IncidentSaved || got[0].Details["state"] != outbox.StateRecovered {
		t.Errorf("recovered: %+v; want incident.saved alone, state recovered", got)
	}
	// Cut before any of its clip was whole, and set aside: its press was
	// said as it was found.
	if aside := a.of(Event{Kind: EventSetAside, Dir: m.Incident, Err: errors.New("no complete fragment"), Manifest: &m}); len(aside) != 0 {
		t.Errorf("set aside: %+v; want nothing more", aside)
	}
	other := a.of(Event{Kind: EventPress, Result: PressIncident, Incident: "20261130-140206-000002", Time: press})
	if other[0].ID == pressed[0].ID {
		t.Error("two incidents' incident.started share an id")
	}
}

// The press of an incident the last run left recording is said before
// recovery changes anything of it: when Recorder.Interrupted is called the
// incident is still in place and still recording, so a second cut at any
// moment after leaves its press said, or the incident to be recovered (and
// said) again. Once recovery is done it is not said again. (Before, the
// alert was published after recovery had set the incident aside or marked
// it recovered, and queued a moment later: a cut in between lost it.)
func TestMachineInterruptedSaidBeforeRecovery(t *testing.T) {
	cfg := machineConfig(t)
	const id = "20261123-100000-000001"
	dir := filepath.Join(cfg.Device.StateDir, "incidents", id)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	m := outbox.Manifest{Version: outbox.ManifestVersion, Device: cfg.Device.ID, Store: cfg.Device.Store, Incident: id,
		State: outbox.StateRecording, Trigger: "button", PressTime: monday}
	m.Object = outbox.ObjectKey(m, cfg.Location())
	// No clip: cut before any of it was on the card, so it is set aside.
	if err := outbox.WriteManifest(dir, m); err != nil {
		t.Fatal(err)
	}
	var said []string // each call, and what the card held then
	interrupted := func(got outbox.Manifest) {
		onCard, err := outbox.ReadManifest(dir)
		said = append(said, fmt.Sprintf("%s (card: %s, %v)", got.Incident, onCard.State, err))
	}
	for _, run := range []string{"first start", "second start"} {
		mach := newMachine(t, cfg, monday, func(m *machine) { m.rec.Interrupted = interrupted })
		mach.advance(time.Second)
		st := mach.sync()
		mach.shutdown()
		if len(st.SetAside) != 1 {
			t.Fatalf("%s: set aside %q, want the incident", run, st.SetAside)
		}
	}
	if want := []string{id + " (card: recording, <nil>)"}; !slices.Equal(said, want) {
		t.Errorf("Interrupted: %q; want %q: once, before recovery touched it", said, want)
	}
}

// A microphone that sends nothing for 30 s while capture runs is reported
// down once (a device.fault alert), and up again when it sends; the
// camera, sending all along, is not reported.
func TestMachineSourceDownIsSaid(t *testing.T) {
	m := newMachine(t, machineConfig(t), monday, nil)
	m.advance(2 * time.Second)
	m.stalled = true
	m.advance(29 * time.Second)
	states := func() []string {
		t.Helper()
		entries, err := audit.ReadAll(filepath.Join(m.cfg.Device.StateDir, auditFile))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range entries {
			if e.Event == string(EventSource) {
				got = append(got, e.Fields["source"]+" "+e.Fields["state"])
			}
		}
		return got
	}
	if got := states(); len(got) != 0 {
		t.Fatalf("reported %q within 30 s of silence", got)
	}
	m.advance(2 * time.Second)
	if got := states(); !slices.Equal(got, []string{"audio down"}) {
		t.Fatalf("after 31 s of silence: %q, want audio down once", got)
	}
	m.stalled = false
	m.advance(2 * time.Second)
	if got := states(); !slices.Equal(got, []string{"audio down", "audio up"}) {
		t.Errorf("after the microphone sent again: %q, want audio down, then up", got)
	}
}

// A webhook on a server whose certificate a private CA signed (the shop's
// NAS) is refused without its ca_file and delivered to with it: the
// target's RootCAs reach its client.
func TestNewAlertsPrivateCA(t *testing.T) {
	got := make(chan string, 4)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("webhook-id")
	}))
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	for _, tc := range []struct {
		name  string
		roots *x509.CertPool
	}{{"without ca_file", nil}, {"with ca_file", roots}} {
		var cfg config.Config
		cfg.Device.Store, cfg.Device.ID, cfg.Device.StateDir = "shop-1", "counter-1", t.TempDir()
		cfg.Alerts.Targets = []config.Target{{Kind: config.KindWebhook, Label: "nas", URL: config.Secret(srv.URL), Format: config.FormatStandard,
			Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", RootCAs: tc.roots, Language: "ja", Events: []string{"*"}}}
		d, err := NewAlerts(cfg, nil, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); d.Run(ctx) }()
		e := alert.Origin{Store: "shop-1", Device: "counter-1"}.Event(alert.DeviceFault, time.Now())
		d.Publish(e)
		if tc.roots == nil {
			for deadline := time.Now().Add(10 * time.Second); d.Status().Targets[0].LastError == "" && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
			if st := d.Status().Targets[0]; !strings.Contains(st.LastError, "certificate") || len(got) != 0 {
				t.Errorf("%s: status %+v, %d delivered; want a certificate error and none", tc.name, st, len(got))
			}
		} else if id := <-got; id != e.ID {
			t.Errorf("%s: delivered %q, want %q", tc.name, id, e.ID)
		}
		cancel()
		<-done
	}
}
