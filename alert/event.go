// Package alert tells people at once what a recorder did or saw: a press, a
// refused press, a fault. It turns each into an Event, keeps it in a durable
// queue on the card per target, and delivers it to that target (a signed
// webhook, a Slack-style webhook, an ntfy topic, an e-mail, an MQTT
// broker, a LINE chat) at least once, oldest first, retrying with backoff
// until the target takes it.
//
// The package knows nothing of configuration or of the recorder: the caller
// builds each Target and Queue from plain structs and hands them to a
// Dispatcher, whose Publish never blocks and never touches the disk on the
// caller's goroutine.
//
// # The event as receivers see it
//
// A webhook in the standard format receives an Event as JSON, signed per
// Standard Webhooks (see Webhook). The shape is stable: fields may be
// added, never renamed or removed.
//
//	{
//	  "id": "0b7e4c1a-8a53-4f0e-9d35-6c1b2f0e9a41",  // UUID v4; the same on every retry
//	  "name": "incident.started",                      // one of the names below
//	  "incident": "shop-1/counter-1/20261130-140205-000042", // store/device/id, when there is one
//	  "store": "shop-1",
//	  "device": "counter-1",
//	  "label": "カウンター1",                           // the device's human label; omitted when it has none
//	  "urgent": true,                                   // omitted when false
//	  "press_time": "2026-11-30T14:02:05.123+09:00",   // RFC 3339 in the device's zone; omitted without a press
//	  "time": "2026-11-30T14:02:05.251+09:00",         // when it happened, RFC 3339 in the device's zone
//	  "source": "button",                               // what raised it: "button", "cli", "sim"; omitted when none
//	  "link": "https://console.example/incidents/shop-1/counter-1/20261130-140205-000042",
//	  "late": 312,                                      // seconds late, when delivered more than 30 s after time; else omitted
//	  "details": {"reason": "spool full"}               // the rest: reason, error; omitted when empty
//	}
//
// Receivers deduplicate by id: delivery is at least once.
//
// # On the card
//
// Each target has its own directory (OpenQueue), holding one file per
// pending event, <sequence>-<id>.json, the event's JSON as above, written
// whole or not at all: a power cut or a restart loses none, and a dead
// target holds up no other. A file removed is an event its target
// accepted; a file renamed *.corrupt made no sense and waits for a person.
//
// # Wiring
//
// The caller (cmd) builds one Target per configured target (NewWebhook,
// NewNtfy, NewEmail, NewMQTT, NewLine), opens a Queue for each in its own
// directory, and hands them with their Filter to NewDispatcher; it runs
// Dispatcher.Run under its context, and the recorder calls Publish with
// events made by an Origin. Secrets (a webhook's secret, an ntfy token, an
// SMTP or MQTT password, a LINE channel access token, the URLs themselves)
// are handed in as strings and never appear in an error, a log line or
// Status.
package alert

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Name is what an event reports.
type Name string

// The events.
const (
	IncidentStarted  Name = "incident.started"  // a press raised an incident; Urgent once a long press marks it
	IncidentExtended Name = "incident.extended" // a press extended the incident running
	IncidentSaved    Name = "incident.saved"    // the incident's clip is final on the card
	IncidentUploaded Name = "incident.uploaded" // the incident is in the bucket
	PressRefused     Name = "press.refused"     // a press recorded nothing: Details["reason"] says why
	DeviceFault      Name = "device.fault"      // the device stopped recording: Details["reason"], Details["error"]
	DeviceRecovered  Name = "device.recovered"  // it records again
	SpoolFull        Name = "spool.full"        // the card has no room for another incident
	UploadStuck      Name = "upload.stuck"      // an upload failed in a way retrying will not fix
	ClockUnsynced    Name = "clock.unsynced"    // NTP has not set the clock: times may be wrong
	SoundRaised      Name = "sound.raised"      // the device heard a raised voice (listening, when enabled)
	DeviceOffline    Name = "device.offline"    // a device went silent in its hours (fleet watch raises it)
	DeviceOnline     Name = "device.online"     // it was heard from again (fleet watch)
	AlertTest        Name = "alert.test"        // an installer's test (mamoru check --send-test)
)

// Names are all the events, in the order the documentation lists them.
var Names = []Name{
	IncidentStarted, IncidentExtended, IncidentSaved, IncidentUploaded, PressRefused,
	DeviceFault, DeviceRecovered, SpoolFull, UploadStuck, ClockUnsynced,
	SoundRaised, DeviceOffline, DeviceOnline, AlertTest,
}

// Known reports whether n is one of Names.
func (n Name) Known() bool { return slices.Contains(Names, n) }

// Event is one alert. Its JSON is what webhook receivers parse and what the
// queue keeps on the card (see the package documentation).
type Event struct {
	// ID identifies the event on every retry and to every target: a random
	// UUID (LINE's retry key must be one).
	ID       string `json:"id"`
	Name     Name   `json:"name"`
	Incident string `json:"incident,omitempty"` // store/device/id
	Store    string `json:"store"`
	Device   string `json:"device"`
	Label    string `json:"label,omitempty"`
	Urgent   bool   `json:"urgent,omitempty"`
	// PressTime and Time are in the device's zone (Origin.Event puts them
	// there), so that their JSON, RFC 3339, carries its offset and the text
	// says the time a manager in the shop reads off the wall.
	PressTime time.Time `json:"press_time,omitzero"`
	Time      time.Time `json:"time"`
	Source    string    `json:"source,omitempty"`
	Link      string    `json:"link,omitempty"`
	// Late is how many seconds after Time the event was delivered, when
	// that is more than the queue's LateAfter; the queue sets it on the
	// copy it sends.
	Late    int               `json:"late,omitempty"`
	Details map[string]string `json:"details,omitempty"`
}

// Origin is the device events come from, as its configuration names it.
// The zero Zone is UTC.
type Origin struct {
	Store, Device string
	Label         string // the device's human label (device.label); may be Japanese
	Zone          *time.Location
	// ConsoleURL is the managers' console ([alerts] console_url); events
	// about an incident link to it when it is set.
	ConsoleURL string
}

// Event returns a new event named name that happened at t: a fresh id, the
// device's store, device and label, and t in the device's zone.
func (o Origin) Event(name Name, t time.Time) Event {
	return Event{
		ID:     uuid.NewString(),
		Name:   name,
		Store:  o.Store,
		Device: o.Device,
		Label:  o.Label,
		Time:   t.In(o.zone()),
	}
}

// IncidentEvent returns o.Event(name, t) about incident id, pressed at
// press: with Incident (store/device/id), PressTime in the device's zone,
// and Link when the console's URL is set.
func (o Origin) IncidentEvent(name Name, t time.Time, id string, press time.Time) Event {
	e := o.Event(name, t)
	e.Incident = o.Store + "/" + o.Device + "/" + id
	e.PressTime = press.In(o.zone())
	e.Link = Link(o.ConsoleURL, o.Store, o.Device, id)
	return e
}

func (o Origin) zone() *time.Location {
	if o.Zone == nil {
		return time.UTC
	}
	return o.Zone
}

// incidentSpace is the namespace of IncidentID's name-based UUIDs.
var incidentSpace = uuid.MustParse("6f3c1b0e-5a1d-4e8b-9b7a-2c4d8e6f1a35")

// IncidentID is the id of the event name about incident (store/device/id)
// that must be the same however often it is raised: a name-based UUID
// (version 5), so that an incident.started raised again after a power cut
// that may have lost the first is the same event to every receiver, and a
// queue that still holds it takes it once.
func IncidentID(incident string, name Name) string {
	return uuid.NewSHA1(incidentSpace, []byte(string(name)+" "+incident)).String()
}

// Link is the console's page for an incident,
// <consoleURL>/incidents/<store>/<device>/<id>, each part escaped as a path
// segment; "" when consoleURL is "".
func Link(consoleURL, store, device, id string) string {
	if consoleURL == "" {
		return ""
	}
	return strings.TrimSuffix(consoleURL, "/") + "/incidents/" +
		url.PathEscape(store) + "/" + url.PathEscape(device) + "/" + url.PathEscape(id)
}

// ErrBadEvent means bytes are not an event this package wrote.
var ErrBadEvent = errors.New("not an alert event")

// check reports whether e is whole: an id that is a UUID, a known name and
// a time. It is what a queue file must hold to be sent.
func (e Event) check() error {
	if _, err := uuid.Parse(e.ID); err != nil || len(e.ID) != 36 {
		return fmt.Errorf("%w: id %q is not a UUID", ErrBadEvent, e.ID)
	}
	if !e.Name.Known() {
		return fmt.Errorf("%w: unknown name %q", ErrBadEvent, e.Name)
	}
	if e.Time.IsZero() {
		return fmt.Errorf("%w: no time", ErrBadEvent)
	}
	return nil
}
