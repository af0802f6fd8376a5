// Package health is a device's report of itself, kept in the bucket as the
// one object a device writes over:
//
//	<prefix>/<store>/<device>/health.json
//
// The device writes it every Interval, and at once when its state
// changes; the managers' tools read it to tell which devices record, which
// are closed for the night, and which have gone silent. A report says what
// the device believes, on its own clock: the bucket's Last-Modified of the
// object is the server's clock, and the two together show a device whose
// clock is off.
//
// Parse is the only way in for a report's bytes, which come from a device
// and so from outside: it bounds them and checks every field it can.
package health

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"time"
)

// File is the report's object name, in the device's folder.
const File = "health.json"

// Interval is how often a device writes its report when nothing changes.
const Interval = 60 * time.Second

// MaxSize bounds a report's bytes: Parse refuses more.
const MaxSize = 64 << 10

// Version is the report format Parse reads and a device writes.
const Version = 1

// Key is the report's object key for store/device below prefix.
func Key(prefix, store, device string) string {
	return path.Join(prefix, store, device, File)
}

// Report is what a device says of itself. Times are RFC 3339 in the
// device's zone, on the device's own clock.
type Report struct {
	Version int    `json:"version"`
	Store   string `json:"store"`
	Device  string `json:"device"`
	// Label is the device's name for people (device.label), e.g. カウンター1.
	Label string `json:"label,omitempty"`
	// State is the recorder's: idle, buffering, incident or fault.
	State     string `json:"state"`
	Indicator bool   `json:"indicator"`
	// RecordingExpected says whether the recording hours say the device
	// should be recording now; Hours lets a reader work that out for a
	// later moment, as for a device that went silent at closing.
	RecordingExpected bool  `json:"recording_expected"`
	Hours             Hours `json:"hours"`
	// Closed says why the rules keep capture off now, if they do; Fault
	// what stops capture against them.
	Closed          string  `json:"closed,omitempty"`
	Fault           string  `json:"fault,omitempty"`
	BufferedSeconds float64 `json:"buffered_seconds"`
	PendingUploads  int     `json:"pending_uploads"`
	PendingBytes    int64   `json:"pending_bytes"`
	SpoolFull       bool    `json:"spool_full,omitempty"`
	// LastUpload is when the last incident reached the bucket, and
	// LastUploadIncident which; both unset before the first in this run.
	LastUpload         time.Time `json:"last_upload,omitzero"`
	LastUploadIncident string    `json:"last_upload_incident,omitempty"`
	// LastError is the uploader's last error, and LastErrorAt its time.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// DiskFree is the bytes free on the card holding the state directory.
	DiskFree    int64 `json:"disk_free"`
	ClockSynced bool  `json:"clock_synced"`
	// UptimeSeconds is how long the recorder has run.
	UptimeSeconds float64 `json:"uptime_seconds"`
	// Software is the recorder's version.
	Software string `json:"software"`
	// LastIncident is the newest incident on the device (store/device/id)
	// and LastIncidentAt its press.
	LastIncident   string    `json:"last_incident,omitempty"`
	LastIncidentAt time.Time `json:"last_incident_at,omitzero"`
	// Sources names each capture source that is down, with its last error.
	SourcesDown map[string]string `json:"sources_down,omitempty"`
	// Sent is the device's clock when it sent the report.
	Sent time.Time `json:"sent"`
}

// Hours are the device's recording hours as its configuration gives them
// (policy.recording_hours, policy.closed_dates, device.timezone); none
// means always.
type Hours struct {
	Recording []string `json:"recording_hours,omitempty"`
	Closed    []string `json:"closed_dates,omitempty"`
	Zone      string   `json:"timezone"`
}

// Errors Parse returns; each is wrapped with what it found.
var (
	ErrTooLarge = errors.New("health report larger than 64 KiB")
	ErrVersion  = errors.New("health report of an unknown version")
	ErrInvalid  = errors.New("health report invalid")
)

// Parse reads a report's bytes. A report must say its version, store,
// device, state and time sent; unknown fields are refused, so that a
// report from a newer device is reported as such rather than half read.
func Parse(b []byte) (Report, error) {
	var r Report
	if len(b) > MaxSize {
		return r, fmt.Errorf("%w (%d bytes)", ErrTooLarge, len(b))
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&r); err != nil {
		var probe struct {
			Version int `json:"version"`
		}
		if json.Unmarshal(b, &probe) == nil && probe.Version > Version {
			return Report{}, fmt.Errorf("%w %d (this mamoru reads %d: update it)", ErrVersion, probe.Version, Version)
		}
		return Report{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if d.More() {
		return Report{}, fmt.Errorf("%w: data after the report", ErrInvalid)
	}
	if r.Version != Version {
		return Report{}, fmt.Errorf("%w %d (this mamoru reads %d)", ErrVersion, r.Version, Version)
	}
	return r, r.check()
}

func (r Report) check() error {
	var missing []string
	for _, f := range []struct{ name, v string }{{"store", r.Store}, {"device", r.Device}, {"state", r.State}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if r.Sent.IsZero() {
		missing = append(missing, "sent")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: no %v", ErrInvalid, missing)
	}
	if r.PendingUploads < 0 || r.PendingBytes < 0 || r.DiskFree < 0 || r.BufferedSeconds < 0 || r.UptimeSeconds < 0 {
		return fmt.Errorf("%w: a negative count", ErrInvalid)
	}
	return nil
}

// Marshal returns the report's bytes as a device writes them.
func (r Report) Marshal() ([]byte, error) {
	r.Version = Version
	if err := r.check(); err != nil {
		return nil, err
	}
	return json.MarshalIndent(r, "", "  ")
}
