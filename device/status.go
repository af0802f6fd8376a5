package device

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"time"

	"mamoru/alert"
	"mamoru/capture"
	"mamoru/health"
	"mamoru/outbox"
	"mamoru/uploader"
)

// Status is what `mamoru status` shows.
type Status struct {
	State           State            `json:"state"`
	Indicator       bool             `json:"indicator"`
	BufferedSeconds float64          `json:"buffered_seconds"`
	Incidents       []IncidentStatus `json:"incidents"`
	PendingUploads  int              `json:"pending_uploads"`
	PendingBytes    int64            `json:"pending_bytes"`
	// Storage is where clips go: "bucket at endpoint", or "local only".
	Storage string           `json:"storage"`
	Uploads *uploader.Status `json:"uploads,omitempty"`
	// Alerts are the alert targets' queues, when any is configured.
	Alerts *alert.DispatcherStatus `json:"alerts,omitempty"`
	// SpoolFull is set while clips waiting for upload fill
	// storage.spool_max_mb: new presses are refused until they drain.
	SpoolFull  bool                      `json:"spool_full,omitempty"`
	SpoolBytes int64                     `json:"spool_bytes"`
	Fault      string                    `json:"fault,omitempty"`
	Sources    map[string]capture.Health `json:"sources"`
	// SourcesDown names the sources that have sent nothing for 30 s while
	// capture ran, sorted.
	SourcesDown []string `json:"sources_down,omitempty"`
	// SetAside are the incident directories recovery could make no sense
	// of, moved to incidents/.set-aside in this run or an earlier one. They
	// never upload and are never deleted: they stay, counted in SpoolBytes,
	// until a person copies them off and removes them. SetAsideBytes is
	// their size.
	SetAside      []string `json:"set_aside,omitempty"`
	SetAsideBytes int64    `json:"set_aside_bytes,omitempty"`
	ButtonStuck   bool     `json:"button_stuck,omitempty"`
	// Hours says whether this is within the recording hours, and until when.
	Hours string `json:"recording_hours"`
	// RecordingExpected says whether the rules say the device should
	// record now: within the recording hours, with a clock set to apply
	// them. Closed says why not.
	RecordingExpected bool `json:"recording_expected"`
	ClockSynced       bool `json:"clock_synced"`
	// Closed says why the rules keep capture off now, if they do.
	Closed        string `json:"closed,omitempty"`
	IncidentError string `json:"incident_error,omitempty"`
	Device        string `json:"device"`
	Store         string `json:"store"`
	Label         string `json:"label"`
	Version       string `json:"version"`
	RingBytes     int    `json:"ring_bytes"`
	RingCapacity  int    `json:"ring_capacity"`
	// DiskFree is the bytes free on the card holding the state directory
	// (0 where it cannot be measured).
	DiskFree      int64   `json:"disk_free"`
	UptimeSeconds float64 `json:"uptime_seconds"`
	// LastIncident is the newest incident raised in this run, or else the
	// newest in the outbox (store/device/id), and LastIncidentAt its press.
	LastIncident   string    `json:"last_incident,omitempty"`
	LastIncidentAt time.Time `json:"last_incident_at,omitzero"`
	// Health is what the health writer has done (health.json in the
	// bucket), when storage is configured.
	Health *health.WriterStatus `json:"health,omitempty"`
	// Listen is what listening hears, when there is a microphone.
	Listen *ListenStatus `json:"listen,omitempty"`
}

// IncidentStatus is one incident in the outbox.
type IncidentStatus struct {
	ID string `json:"id"`
	// State is the manifest's (recording, complete, recovered), or failed
	// for a clip that failed and cannot be finalized yet: the disk is
	// full, and it is tried again every 5 s.
	State           string    `json:"state"`
	Trigger         string    `json:"trigger"`
	PressTime       time.Time `json:"press_time"`
	DurationSeconds float64   `json:"duration_seconds"`
	Clip            string    `json:"clip"`
	Size            int64     `json:"size"`
}

func (ru *run) status() Status {
	cfg := ru.r.Config
	rs := ru.ring.Stats()
	st := Status{
		State:             ru.state,
		Indicator:         ru.lit.now(),
		BufferedSeconds:   rs.Buffered.Seconds(),
		Incidents:         []IncidentStatus{},
		Fault:             ru.fault,
		Sources:           map[string]capture.Health{},
		ButtonStuck:       ru.stuck,
		Hours:             ru.schedule.Describe(ru.wall.Now()),
		Closed:            ru.closed,
		RecordingExpected: ru.closed == "",
		ClockSynced:       ru.clockSynced(),
		IncidentError:     ru.incidentErr,
		Device:            cfg.Device.ID,
		Store:             cfg.Device.Store,
		Label:             cfg.Device.Label,
		Version:           ru.r.Version,
		UptimeSeconds:     ru.uptime().Seconds(),
		SourcesDown:       slices.Sorted(maps.Keys(ru.sourceDown)),
		RingBytes:         rs.Bytes,
		RingCapacity:      rs.Capacity,
	}
	if v := ru.r.Capture.Video; v != nil {
		st.Sources["video"] = v.Health()
	}
	if a := ru.r.Capture.Audio; a != nil {
		st.Sources["audio"] = a.Health()
	}
	if st.Label == "" {
		st.Label = st.Device
	}
	if free, err := ru.cardFree(); err == nil {
		st.DiskFree = free
	}
	incidents, _, err := ru.outbox.List()
	if err != nil {
		ru.log.Error("cannot list incidents", "err", err)
	}
	st.LastIncident, st.LastIncidentAt = ru.lastIncident, ru.lastIncidentAt
	if n := len(incidents); n > 0 && incidents[n-1].Manifest.PressTime.After(st.LastIncidentAt) {
		m := incidents[n-1].Manifest
		st.LastIncident, st.LastIncidentAt = path.Join(m.Store, m.Device, m.Incident), m.PressTime
	}
	for i := len(incidents) - 1; i >= 0 && len(st.Incidents) < 20; i-- {
		m := incidents[i].Manifest
		state := m.State
		if slices.ContainsFunc(ru.unfinished, func(u unfinished) bool { return u.m.Incident == m.Incident }) {
			state = IncidentFailed
		}
		st.Incidents = append(st.Incidents, IncidentStatus{ID: m.Incident, State: state, Trigger: m.Trigger, PressTime: m.PressTime,
			DurationSeconds: m.DurationSeconds, Clip: filepath.Join(incidents[i].Dir, outbox.ClipFile), Size: m.Clip.Size})
	}
	st.PendingUploads, st.PendingBytes = outbox.CountPending(incidents)
	st.SetAside, st.SetAsideBytes = ru.setAsides()
	st.SpoolBytes, st.SpoolFull = ru.spool()
	ru.spoolUsed = st.SpoolBytes
	st.Storage = "local only"
	if ru.r.Uploader != nil {
		us := ru.r.Uploader.Status()
		st.Uploads = &us
		st.Storage = fmt.Sprintf("bucket %s at %s", cfg.Storage.Bucket, cfg.Storage.Endpoint)
	}
	if ru.r.Health != nil {
		hs := ru.r.Health.Status()
		st.Health = &hs
	}
	if ru.r.AlertStatus != nil {
		as := ru.r.AlertStatus()
		st.Alerts = &as
	}
	st.Listen = ru.listening(0)
	return st
}

// setAsides lists what recovery set aside, read from the card each time,
// so a restart does not hide it, and the bytes it holds.
func (ru *run) setAsides() (dirs []string, bytes int64) {
	aside := outbox.Outbox{Dir: filepath.Join(ru.outbox.Dir, setAsideDir)}
	entries, err := os.ReadDir(aside.Dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		ru.log.Error("cannot list the incidents set aside", "dir", aside.Dir, "err", err)
	}
	for _, e := range entries {
		dirs = append(dirs, filepath.Join(aside.Dir, e.Name()))
	}
	return dirs, aside.Bytes()
}

// spool returns the bytes the outbox holds and whether they fill
// storage.spool_max_mb. What is set aside counts: it takes room on the card
// as much as a clip waiting for upload, and the bound keeps the card from
// filling; status and a refused press say how much of it is set aside.
func (ru *run) spool() (int64, bool) {
	used := ru.outbox.Bytes()
	return used, ru.spoolFull(used)
}

// spoolFull reports whether used bytes of clips fill storage.spool_max_mb,
// or the card is too full to keep the audit log's reserve whole.
func (ru *run) spoolFull(used int64) bool {
	return used >= int64(ru.r.Config.Storage.SpoolMaxMB)<<20 || ru.cardFull()
}

// cardFull reports whether the card is too full to keep the audit log's
// reserve whole (the log has eaten into it, or it could never be made):
// the log's room is then in use, and a clip would take what is left.
// A card with room for the reserve takes clips until it fills, and a
// clip cut short by a full card is kept as far as it got.
func (ru *run) cardFull() bool { return ru.reserved < AuditReserve }

func (ru *run) cardFree() (int64, error) {
	return cardFree(ru.r.Config.Device.StateDir)
}
