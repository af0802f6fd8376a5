package device

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"mamoru/alert"
	"mamoru/clock"
	"mamoru/config"
	"mamoru/outbox"
)

// alertsDir is where, under the state directory, each alert target keeps
// its queue of events not yet delivered.
const alertsDir = "alerts"

// NewAlerts builds the alert targets cfg names ([[alerts.target]]), each
// with its durable queue under <state_dir>/alerts, and the dispatcher that
// feeds them; nil when cfg names none. accepted, if set, hears of each
// event a target accepted (Recorder.AlertAccepted). Run the dispatcher
// beside the recorder, and put an Alerts publishing to it in the
// recorder's Events.
func NewAlerts(cfg config.Config, clk, wall clock.Clock, log *slog.Logger, accepted func(alert.Event)) (*alert.Dispatcher, error) {
	return NewDispatcher(cfg.Alerts.Targets, cfg.Device, filepath.Join(cfg.Device.StateDir, alertsDir), DispatcherOptions{
		Clock: clk, Wall: wall, Log: log, Accepted: accepted})
}

// DispatcherOptions are NewDispatcher's; the zero value is usable.
type DispatcherOptions struct {
	Clock, Wall clock.Clock // nil: the system clock
	Log         *slog.Logger
	Accepted    func(alert.Event) // see alert.QueueOptions.Accepted
	// Buffer is the dispatcher's (alert.DispatcherOptions.Buffer).
	Buffer int
}

// NewDispatcher builds the alert targets, each with its durable queue
// under dir (alert.QueueDir), and the dispatcher that feeds them; nil when
// there are none. d is the device the events are about, for the targets
// that follow one device (MQTT); a command that alerts of many devices,
// as fleet watch does, hands the zero Device and must refuse MQTT
// targets.
func NewDispatcher(targets []config.Target, d config.Device, dir string, o DispatcherOptions) (*alert.Dispatcher, error) {
	if len(targets) == 0 {
		return nil, nil
	}
	var routes []alert.Route
	for i, t := range targets {
		filter, err := alert.NewFilter(t.Events)
		if err != nil {
			return nil, fmt.Errorf("alerts.target[%d] (%s): events: %w", i+1, t, err)
		}
		target, err := newTarget(d, t, filter, o.Wall)
		if err != nil {
			return nil, fmt.Errorf("alerts.target[%d] (%s): %w", i+1, t, err)
		}
		if t.Kind == config.KindMQTT {
			// An MQTT target is handed every event, for its state topic
			// to follow the device; it publishes on its events topic only
			// those its filter takes.
			filter = everyEvent
		}
		q, err := alert.OpenQueue(alert.QueueDir(dir, t.Label), target,
			alert.QueueOptions{Label: t.Label, Clock: o.Clock, Wall: o.Wall, Log: o.Log, Accepted: o.Accepted})
		if err != nil {
			return nil, fmt.Errorf("alerts.target[%d] (%s): %w", i+1, t, err)
		}
		routes = append(routes, alert.Route{Filter: filter, Queue: q})
	}
	return alert.NewDispatcher(routes, alert.DispatcherOptions{Log: o.Log, Buffer: o.Buffer}), nil
}

// ErrKindNotSent means a target's kind is not one of config.Kinds; config
// refuses it first.
var ErrKindNotSent = errors.New("this version does not send to this kind of target")

// everyEvent is the filter that takes every event.
var everyEvent, _ = alert.NewFilter([]string{"*"})

// newTarget builds t's target on device d; events are those t takes.
func newTarget(d config.Device, t config.Target, events alert.Filter, wall clock.Clock) (alert.Target, error) {
	switch t.Kind {
	case config.KindMQTT:
		return alert.NewMQTT(alert.MQTTOptions{Label: t.Label, URL: t.URL.Reveal(), RootCAs: t.RootCAs, Username: t.Username,
			Password: t.Password.Reveal(), TopicPrefix: t.TopicPrefix, Store: d.Store, Device: d.ID,
			DeviceLabel: d.Label, HADiscovery: t.HADiscovery, DiscoveryPrefix: t.DiscoveryPrefix, Events: events})
	case config.KindWebhook:
		return alert.NewWebhook(alert.WebhookOptions{Label: t.Label, URL: t.URL.Reveal(), Secret: t.Secret.Reveal(),
			Format: t.Format, Language: t.Language, Client: alert.ClientFor(t.RootCAs), Wall: wall})
	case config.KindNtfy:
		return alert.NewNtfy(alert.NtfyOptions{Label: t.Label, URL: strings.TrimSuffix(t.URL.Reveal(), "/") + "/" + t.Topic.Reveal(),
			Token: t.Token.Reveal(), Language: t.Language, Client: alert.ClientFor(t.RootCAs), Wall: wall})
	case config.KindEmail:
		return alert.NewEmail(alert.EmailOptions{Label: t.Label, URL: t.URL.Reveal(), Username: t.Username,
			Password: t.Password.Reveal(), From: t.From, To: t.To, Language: t.Language, RootCAs: t.RootCAs, Wall: wall})
	case config.KindLine:
		return alert.NewLine(alert.LineOptions{Label: t.Label, URL: t.URL.Reveal(), Token: t.Token.Reveal(),
			To: t.To, Language: t.Language, Wall: wall})
	}
	return nil, fmt.Errorf("%w: %q", ErrKindNotSent, t.Kind)
}

// Alerts turns the recorder's Events into alert events and publishes them:
// a press raised or extended an incident, or was refused; an incident was
// saved or uploaded; recording stopped for a fault, and came back. Put its
// Show in Recorder.Events; it never waits and never touches the disk, so
// it costs a press nothing. Put its Interrupted in Recorder.Interrupted:
// the press of an incident a power cut interrupted is said again at
// start, durably, before recovery touches the incident.
type Alerts struct {
	Origin  alert.Origin
	Publish func(alert.Event) bool
	// Keep puts an event in the targets' queues and returns once it is on
	// the card (alert.Dispatcher.Put); Interrupted uses it, off any
	// press's path. nil: Interrupted publishes, and a cut moments later
	// may lose what it said.
	Keep func(alert.Event) error

	mu sync.Mutex // guards the fields below: Events come from the loop and from the uploader
	// faulted: a fault stopped recording, and capture has not started
	// since.
	faulted bool
	// pressed is each incident's first press, for an urgent mark that
	// follows it; dropped once the incident is saved.
	pressed map[string]time.Time
}

// Show publishes the alerts e stands for, if any.
func (a *Alerts) Show(e Event) {
	for _, ev := range a.of(e) {
		a.Publish(ev)
	}
}

// of returns the alerts e stands for, if any.
func (a *Alerts) of(e Event) []alert.Event {
	if ev, ok := a.one(e); ok {
		return []alert.Event{ev}
	}
	return nil
}

// Interrupted says again, on the card before it returns, the press of an
// incident the last run left recording (m is its manifest as the power cut
// left it): the cut may have come before its incident.started was queued.
// Recovery calls it before it recovers the clip or sets the incident
// aside, so a second cut then cannot leave the incident no longer
// recording with its press never said; an incident cut before any of its
// clip was whole, set aside, has said its press too.
func (a *Alerts) Interrupted(m outbox.Manifest) {
	ev := a.started(m)
	if a.Keep != nil {
		// An error is the card's, counted and logged by the dispatcher.
		_ = a.Keep(ev)
		return
	}
	a.Publish(ev)
}

// started is the incident.started of an incident the recorder found
// recording at start: the power went while it recorded, perhaps before its
// alert was on the card. Its id is the one the press gave it
// (alert.IncidentID), so a receiver that had it takes it once, and a queue
// still holding it keeps one; its time is the press's, so it arrives
// marked late. It says what the press's own said (an urgent mark was
// another event).
func (a *Alerts) started(m outbox.Manifest) alert.Event {
	ev := a.Origin.IncidentEvent(alert.IncidentStarted, m.PressTime, m.Incident, m.PressTime)
	ev.ID, ev.Source = alert.IncidentID(ev.Incident, alert.IncidentStarted), m.Trigger
	return ev
}

func (a *Alerts) one(e Event) (alert.Event, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch e.Kind {
	case EventPress:
		switch e.Result {
		case PressIncident, PressExtended:
			name := alert.IncidentStarted
			if e.Result == PressExtended {
				name = alert.IncidentExtended
			} else {
				if a.pressed == nil {
					a.pressed = map[string]time.Time{}
				}
				a.pressed[e.Incident] = e.Time
			}
			ev := a.Origin.IncidentEvent(name, e.Time, e.Incident, e.Time)
			ev.Source = e.Source
			if name == alert.IncidentStarted {
				ev.ID = alert.IncidentID(ev.Incident, name) // raised again after a power cut: see started
			}
			return ev, true
		case PressRefused:
			if e.Source == config.SoundSource {
				// No one pressed: the sound.raised already went out, and
				// the audit log has the refusal.
				return alert.Event{}, false
			}
			ev := a.Origin.Event(alert.PressRefused, e.Time)
			ev.Source = e.Source
			ev.Details = map[string]string{"reason": refusedWhy(e)}
			return ev, true
		}
	case EventUrgent:
		// The press already went out as incident.started; a long press
		// marks it urgent, as a new event about the same incident.
		press, ok := a.pressed[e.Incident]
		if !ok {
			press = e.Time
		}
		ev := a.Origin.IncidentEvent(alert.IncidentStarted, e.Time, e.Incident, press)
		ev.Urgent, ev.Source = true, e.Source
		return ev, true
	case EventIncident:
		if e.State == outbox.StateRecording {
			return alert.Event{}, false
		}
		delete(a.pressed, e.Incident)
		press, details := e.Time, map[string]string{"state": e.State}
		if m := e.Manifest; m != nil {
			press = m.PressTime
			details["duration_seconds"] = strconv.FormatFloat(m.DurationSeconds, 'f', 1, 64)
		}
		if e.Err != nil {
			details["error"] = e.Err.Error()
		}
		ev := a.Origin.IncidentEvent(alert.IncidentSaved, e.Time, e.Incident, press)
		ev.Details = details
		return ev, true
	case EventUploaded:
		press := e.Time
		if e.Manifest != nil {
			press = e.Manifest.PressTime
		}
		ev := a.Origin.IncidentEvent(alert.IncidentUploaded, e.Time, e.Incident, press)
		ev.Details = map[string]string{"object": e.Object}
		return ev, true
	case EventFault:
		a.faulted = true
		ev := a.Origin.Event(alert.DeviceFault, e.Time)
		ev.Details = map[string]string{"error": errText(e.Err)}
		return ev, true
	case EventSpool:
		if e.State == "full" {
			return a.Origin.Event(alert.SpoolFull, e.Time), true
		}
	case EventClock:
		if e.State == "unsynced" {
			return a.Origin.Event(alert.ClockUnsynced, e.Time), true
		}
	case EventSource:
		if e.State == "down" {
			ev := a.Origin.Event(alert.DeviceFault, e.Time)
			ev.Details = map[string]string{"source": e.Track, "reason": alert.SilentReason(e.Track), "error": errText(e.Err)}
			return ev, true
		}
		ev := a.Origin.Event(alert.DeviceRecovered, e.Time)
		ev.Details = map[string]string{"source": e.Track}
		return ev, true
	case EventSound:
		// Said once, when it is confirmed: how long it went on is in the
		// audit log.
		if d := e.Sound; !d.Ended {
			ev := a.Origin.Event(alert.SoundRaised, e.Time)
			ev.Details = alert.SoundDetails(d.AboveDB, d.PeakLUFS, d.BaselineLUFS, d.Duration, e.Action)
			return ev, true
		}
	case EventUploadStuck:
		ev := a.Origin.Event(alert.UploadStuck, e.Time)
		ev.Details = map[string]string{"error": errText(e.Err)}
		return ev, true
	case EventCapture:
		if e.Capture == CaptureStarted && a.faulted {
			a.faulted = false
			return a.Origin.Event(alert.DeviceRecovered, e.Time), true
		}
	}
	return alert.Event{}, false
}

// refusedWhy says in a word why a press recorded nothing.
func refusedWhy(e Event) string {
	switch {
	case errors.Is(e.Err, ErrSpoolFull):
		return "spool full"
	case errors.Is(e.Err, ErrOutsideHours):
		return "outside recording hours"
	case errors.Is(e.Err, ErrFault):
		return "fault"
	case errors.Is(e.Err, ErrNotRecording):
		return "not recording"
	}
	return errText(e.Err)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
