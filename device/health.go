package device

import (
	"context"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"mamoru/config"
	"mamoru/health"
)

// HealthWriter keeps the device's report in the bucket as health.json
// (health.Writer). The recorder runs it beside the uploader.
type HealthWriter interface {
	// Run writes the reports until ctx ends.
	Run(ctx context.Context) error
	// Send hands over the newest report. It is called from the recorder's
	// goroutine and must not block.
	Send(health.Report)
	Status() health.WriterStatus
}

// healthState is what, changing, sends a report at once rather than at
// the next Interval.
type healthState struct {
	state       State
	indicator   bool
	fault       string
	expected    bool
	spoolFull   bool
	clockSynced bool
	sourcesDown string // their names, sorted
}

func (ru *run) healthState() healthState {
	return healthState{
		state: ru.state, indicator: ru.lit.now(), fault: ru.fault, expected: ru.closed == "",
		spoolFull: ru.wasFull, clockSynced: ru.clockSynced(),
		sourcesDown: strings.Join(slices.Sorted(maps.Keys(ru.sourceDown)), ","),
	}
}

// sendHealth hands the health writer a report when health.Interval has
// passed since the last, or at once when the state it reports changed.
// It runs on the recorder's goroutine after everything the loop handles;
// the writer never waits, so a bucket slow to answer holds nothing up.
func (ru *run) sendHealth() {
	if ru.r.Health == nil && ru.r.Reports == nil {
		return
	}
	now, hs := ru.clock.Now(), ru.healthState()
	if ru.healthSent && hs == ru.healthLast && now.Sub(ru.healthAt) < health.Interval {
		return
	}
	ru.healthSent, ru.healthLast, ru.healthAt = true, hs, now
	r := healthReport(ru.status(), ru.r.Config)
	if ru.r.Health != nil {
		ru.r.Health.Send(r)
	}
	if ru.r.Reports != nil {
		ru.r.Reports(r)
	}
}

// healthReport is the report of a device whose status is st and whose
// configuration is cfg. Sent is left for the writer to stamp.
func healthReport(st Status, cfg config.Config) health.Report {
	r := health.Report{
		Store: st.Store, Device: st.Device, Label: st.Label, State: string(st.State), Indicator: st.Indicator,
		RecordingExpected: st.RecordingExpected,
		Hours:             health.Hours{Recording: cfg.Policy.RecordingHours, Closed: cfg.Policy.ClosedDates, Zone: cfg.Device.Timezone},
		Closed:            st.Closed, Fault: st.Fault,
		BufferedSeconds: st.BufferedSeconds, PendingUploads: st.PendingUploads, PendingBytes: st.PendingBytes,
		SpoolFull: st.SpoolFull, DiskFree: max(st.DiskFree, 0), ClockSynced: st.ClockSynced,
		UptimeSeconds: st.UptimeSeconds, Software: st.Version,
		LastIncident: st.LastIncident, LastIncidentAt: st.LastIncidentAt,
	}
	if u := st.Uploads; u != nil {
		if u.LastSuccess != "" {
			r.LastUpload, r.LastUploadIncident = u.LastSuccessAt, path.Join(st.Store, st.Device, u.LastSuccess)
		}
		r.LastError, r.LastErrorAt = u.LastError, u.LastErrorAt
	}
	for _, name := range st.SourcesDown {
		if r.SourcesDown == nil {
			r.SourcesDown = map[string]string{}
		}
		r.SourcesDown[name] = st.Sources[name].LastError
	}
	// In the device's zone, as the format says.
	loc := cfg.Location()
	for _, t := range []*time.Time{&r.LastUpload, &r.LastErrorAt, &r.LastIncidentAt} {
		if !t.IsZero() {
			*t = t.In(loc)
		}
	}
	return r
}

// uptime is how long this run has lasted.
func (ru *run) uptime() time.Duration { return ru.clock.Since(ru.started) }
