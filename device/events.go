package device

import (
	"errors"
	"strconv"
	"time"

	"mamoru/listen"
	"mamoru/outbox"
)

// Kind names what an Event reports.
type Kind string

// The events a recorder reports, in the audit log's words.
const (
	EventStart     Kind = "start"              // the recorder started: Version, Device
	EventStop      Kind = "stop"               // it stopped, capture closed and the indicator off
	EventIndicator Kind = "indicator"          // the indicator was set: On, or Err if turning it off failed
	EventCapture   Kind = "capture"            // capture changed: Capture says how, Reason why
	EventFault     Kind = "fault"              // the indicator or the audit log failed and capture stopped: Err
	EventHours     Kind = "hours"              // the recording hours opened, or closed (Reason)
	EventPress     Kind = "press"              // a press: Source, Result, Incident or Err (the refusal)
	EventUrgent    Kind = "urgent"             // a long press marked Incident urgent
	EventButton    Kind = "button"             // the button was reported stuck (Stuck) or released
	EventIncident  Kind = "incident"           // Incident changed State (recording, complete, recovered, failed)
	EventSetAside  Kind = "incident_set_aside" // an incident directory made no sense: Dir, Err
	// EventAuditBroken: the audit log's chain was broken; it was kept aside
	// as Dir and this new chain begins with Err, why.
	EventAuditBroken Kind = "audit_broken"
	EventUploaded    Kind = "uploaded" // Incident is in the bucket at Object
	// EventAuditResumed: the audit log can be written again after Err made
	// it fail; what happened between was not recorded, and capture was off.
	EventAuditResumed Kind = "audit_resumed"
	// EventSpool: the spool became full (State "full": presses are refused)
	// or has room again ("room").
	EventSpool Kind = "spool"
	// EventClock: NTP has not set the clock (State "unsynced", at start or
	// when it is lost), or has ("synced").
	EventClock Kind = "clock"
	// EventUploadStuck: the uploader met an error a person must fix (Err).
	EventUploadStuck Kind = "upload_stuck"
	// EventSource: a source (Track) has sent nothing for 30 s while
	// capture ran (State "down", Err its last error), or sends again
	// ("up").
	EventSource Kind = "source"
	// EventSound: listening heard a raised voice (Sound), confirmed or
	// ended; the audit log keeps its figures.
	EventSound Kind = "sound"
)

// CaptureChange is what happened to capture in an EventCapture.
type CaptureChange string

// Capture changes.
const (
	CaptureStarted CaptureChange = "started"
	CaptureStopped CaptureChange = "stopped"
	CaptureStuck   CaptureChange = "stuck" // told to stop, it did not: the process must exit
)

// PressResult is what a press did.
type PressResult string

// Press results.
const (
	PressIncident PressResult = "incident" // it raised a new incident
	PressExtended PressResult = "extended" // it extended the incident running
	PressRefused  PressResult = "refused"  // nothing was recorded: Err says why
)

// An Event is one thing the recorder did or saw: every change of the
// indicator, capture, the hours and the state, every press and what became
// of it, every incident saved and uploaded. The audit log records each one;
// Recorder.Events hands them to whoever else listens (alerts). Events from
// the recorder's goroutine come in order; an EventUploaded, from the
// uploader's, may come between them.
type Event struct {
	Kind Kind
	// Time is the wall clock's reading when it happened. (The audit log
	// stamps its entry with its own reading, a moment later.)
	Time time.Time

	Incident string // the incident's id, where there is one
	Source   string // a press's source: "button", "cli", "sim"
	Result   PressResult
	// Err is a refusal (errors.Is finds ErrOutsideHours, ErrNotRecording,
	// ErrFault or ErrSpoolFull), a fault or a failure.
	Err     error
	State   string // an incident's state; a refused press's recorder state
	Reason  string // why capture stopped or the hours closed
	Capture CaptureChange
	On      bool // the indicator's new state, when Err is nil
	Stuck   bool // the button is stuck (false: released)
	Video   bool // capture started with video
	Audio   bool // capture started with audio
	Object  string
	SHA256  string
	Dir     string // a set-aside directory's name
	Track   string // a source's name: "video" or "audio"
	Version string
	Device  string
	// Clip is the clip's path on the device, for an incident saved.
	Clip string
	// Manifest is the incident's final manifest, for an incident saved or
	// uploaded.
	Manifest *outbox.Manifest
	// Sound is the raised voice of an EventSound, and Action what the
	// recorder does about it (listen.action).
	Sound  *listen.Detection
	Action string
}

// attrs returns the event's fields as the audit log's key-value pairs, in
// the order the log has always had them.
func (e Event) attrs() []string {
	errText := func() string {
		if e.Err == nil {
			return ""
		}
		return e.Err.Error()
	}
	switch e.Kind {
	case EventStart:
		return []string{"version", e.Version, "device", e.Device}
	case EventIndicator:
		if e.Err != nil {
			return []string{"on", "unknown", "err", errText()}
		}
		return []string{"on", strconv.FormatBool(e.On)}
	case EventCapture:
		switch e.Capture {
		case CaptureStarted:
			return []string{"state", string(e.Capture), "video", strconv.FormatBool(e.Video), "audio", strconv.FormatBool(e.Audio)}
		case CaptureStuck:
			return []string{"state", string(e.Capture), "reason", e.Reason, "err", errText()}
		}
		return []string{"state", string(e.Capture), "reason", e.Reason}
	case EventFault:
		return []string{"err", errText()}
	case EventHours:
		if e.Reason != "" {
			return []string{"state", "closed", "why", e.Reason}
		}
		return []string{"state", "open"}
	case EventPress:
		switch {
		case e.Result != PressRefused:
			return []string{"source", e.Source, "incident", e.Incident, "result", string(e.Result)}
		case e.Reason != "":
			return []string{"source", e.Source, "result", string(e.Result), "why", e.Reason}
		case e.State != "":
			return []string{"source", e.Source, "result", string(e.Result), "state", e.State}
		}
		if errors.Is(e.Err, ErrSpoolFull) {
			return []string{"source", e.Source, "result", string(e.Result), "reason", "spool full"}
		}
		return []string{"source", e.Source, "result", string(e.Result), "reason", errText()}
	case EventUrgent:
		return []string{"incident", e.Incident, "source", e.Source}
	case EventButton:
		if e.Stuck {
			return []string{"state", "stuck"}
		}
		return []string{"state", "released"}
	case EventIncident:
		switch {
		case e.Err != nil:
			return []string{"id", e.Incident, "state", e.State, "err", errText()}
		case e.SHA256 != "":
			return []string{"id", e.Incident, "state", e.State, "sha256", e.SHA256}
		}
		return []string{"id", e.Incident, "state", e.State}
	case EventSetAside:
		return []string{"dir", e.Dir, "why", errText()}
	case EventAuditBroken:
		return []string{"kept", e.Dir, "err", errText()}
	case EventAuditResumed:
		return []string{"failed_with", errText()}
	case EventUploaded:
		return []string{"id", e.Incident, "object", e.Object, "sha256", e.SHA256}
	case EventSpool, EventClock:
		return []string{"state", e.State}
	case EventUploadStuck:
		return []string{"err", errText()}
	case EventSound:
		d := e.Sound
		state := "confirmed"
		if d.Ended {
			state = "ended"
		}
		baseline := "learned"
		if !d.Learned {
			baseline = "default"
		}
		dB := func(x float64) string { return strconv.FormatFloat(x, 'f', 1, 64) }
		return []string{"state", state, "start", d.Start.Format(time.RFC3339Nano), "seconds", dB(d.Duration.Seconds()),
			"peak_lufs", dB(d.PeakLUFS), "mean_lufs", dB(d.MeanLUFS), "baseline_lufs", dB(d.BaselineLUFS), "baseline", baseline,
			"above_db", dB(d.AboveDB), "action", e.Action}
	case EventSource:
		if e.Err != nil {
			return []string{"source", e.Track, "state", e.State, "err", errText()}
		}
		return []string{"source", e.Track, "state", e.State}
	}
	return nil
}
