package device

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"time"

	"mamoru/capture"
	"mamoru/hardware"
	"mamoru/outbox"
)

// Why a press is refused. A refusal's error wraps one of these, also after
// crossing the control socket, so callers branch with errors.Is.
var (
	// ErrOutsideHours: the operating rules keep capture off now (outside
	// the recording hours, a closed date, or a clock not yet set).
	ErrOutsideHours = errors.New("outside recording hours")
	// ErrNotRecording: capture is not running (it is starting or stopped).
	ErrNotRecording = errors.New("not recording")
	// ErrFault: the indicator or the audit log failed, so capture stopped.
	ErrFault = errors.New("indicator fault")
	// ErrSpoolFull: the clips waiting for upload fill storage.spool_max_mb.
	ErrSpoolFull = errors.New("spool full")
)

// refusal is a refused press: its message is for the person who pressed,
// and it wraps the reason.
type refusal struct {
	reason error
	msg    string
}

func (r *refusal) Error() string { return r.msg }
func (r *refusal) Unwrap() error { return r.reason }

// TriggerResult answers a press.
type TriggerResult struct {
	Incident string    `json:"incident"`
	Clip     string    `json:"clip"`
	Extended bool      `json:"extended"`
	Until    time.Time `json:"until"`
}

// press raises an incident or extends the current one. at is the press's
// reading of the recorder's Clock; sound is the raised voice the recorder
// pressed for, or nil.
func (ru *run) press(ctx context.Context, at time.Time, source string, sound *outbox.Sound) (TriggerResult, error) {
	ru.checkAuditWrites() // a failure the uploader met since the last tick: a fault now
	if err := ru.refuse(source); err != nil {
		return TriggerResult{}, err
	}
	// Staff see the acknowledgement at once: it does not wait for the
	// incident's directory and manifest to reach the card.
	ru.signal(hardware.Ack)
	ru.ackEnd = ru.clock.Now().Add(ackFor)
	t := ru.tl.Of(at)
	wall := ru.tl.Wall(t).In(ru.loc)
	pr := outbox.Press{Time: wall, Source: source, Sound: sound}
	if ru.cur != nil && ru.cur.extend(t, pr) {
		end, _ := ru.cur.state()
		ru.emit(Event{Kind: EventPress, Source: source, Incident: ru.cur.id, Result: PressExtended})
		if err := ru.unrecorded(); err != nil {
			return TriggerResult{}, err
		}
		return TriggerResult{Incident: ru.cur.id, Clip: filepath.Join(ru.cur.dir, outbox.ClipFile), Extended: true, Until: ru.tl.Wall(end).In(ru.loc)}, nil
	}
	in, err := ru.newIncident(t, wall, pr)
	if err != nil {
		ru.signal(hardware.Refused) // takes back the acknowledgement
		ru.emit(Event{Kind: EventPress, Source: source, Result: PressRefused, Err: err})
		return TriggerResult{}, err
	}
	// The pre-roll is on disk, synced, before the press is acknowledged.
	if err := in.begin(t); err != nil {
		ru.signal(hardware.Refused)
		ru.incidentErr = fmt.Sprintf("incident %s: %v", in.id, err)
		ru.emit(Event{Kind: EventIncident, Incident: in.id, State: IncidentFailed, Err: err})
		return TriggerResult{}, fmt.Errorf("incident %s: write the pre-roll: %w", in.id, err)
	}
	ru.cur = in
	ru.state = StateIncident
	ru.lastIncident, ru.lastIncidentAt = path.Join(ru.r.Config.Device.Store, ru.r.Config.Device.ID, in.id), wall
	go in.run(ctx, ru.lit.between)
	ru.emit(Event{Kind: EventPress, Source: source, Incident: in.id, Result: PressIncident})
	ru.emit(Event{Kind: EventIncident, Incident: in.id, State: outbox.StateRecording})
	ru.log.Info("incident", "id", in.id, "source", source, "clip_start", in.manifest.ClipStart, "pre", (t - in.params.Start).Round(time.Millisecond))
	if err := ru.unrecorded(); err != nil {
		return TriggerResult{}, err
	}
	return TriggerResult{Incident: in.id, Clip: in.params.Path, Until: ru.tl.Wall(in.end).In(ru.loc)}, nil
}

// unrecorded refuses a press whose audit entry could not be written: a
// press is only acknowledged with its record. The fault stops capture,
// and the incident with it; what it captured is kept.
func (ru *run) unrecorded() error {
	failed := ru.r.auditFailure()
	if failed == nil {
		return nil
	}
	ru.checkAuditWrites()
	ru.signal(hardware.Refused) // takes back the acknowledgement
	return &refusal{ErrFault, fmt.Sprintf("not recording: the press could not be written to the audit log (%v); capture stopped, and what it captured is kept", failed)}
}

// refuse says why a press cannot be recorded now, shows it at the counter
// and reports it, or returns nil.
func (ru *run) refuse(source string) error {
	var r *refusal
	e := Event{Kind: EventPress, Source: source, Result: PressRefused}
	switch {
	case ru.interlock.Capturing():
		used, full := ru.spoolUsed, ru.spoolFull(ru.spoolUsed)
		if !full {
			return nil
		}
		ru.signal(hardware.Refused)
		max := ru.r.Config.Storage.SpoolMaxMB
		why := "wait for upload"
		if ru.r.Uploader == nil {
			why = "are kept locally (no storage.endpoint): collect and delete old ones"
		}
		if dirs, aside := ru.setAsides(); aside > 0 {
			why += fmt.Sprintf("; %d MB of them are %d incident(s) set aside in %s, which never upload: copy them off and remove them", aside>>20, len(dirs), filepath.Dir(dirs[0]))
		}
		r = &refusal{ErrSpoolFull, fmt.Sprintf("SPOOL FULL: %d MB of clips %s (storage.spool_max_mb = %d); this press is NOT saved", used>>20, why, max)}
		if ru.cardFull() {
			free, _ := ru.cardFree()
			r.msg = fmt.Sprintf("CARD FULL: %d MB free, and only %d of the %d MB kept for the audit log; %d MB of clips %s; this press is NOT saved", free>>20, ru.reserved>>20, AuditReserve>>20, used>>20, why)
		}
		ru.log.Error("press refused", "source", source, "err", r)
	case ru.closed != "":
		ru.signal(hardware.Closed)
		e.Reason = ru.closed
		r = &refusal{ErrOutsideHours, fmt.Sprintf("not recording: %s (%s)", ru.closed, ru.schedule.Describe(ru.wall.Now()))}
	case ru.fault != "":
		ru.signal(hardware.Refused)
		e.State = string(ru.state)
		r = &refusal{ErrFault, fmt.Sprintf("not recording (state %s: %s)", ru.state, ru.fault)}
	default:
		ru.signal(hardware.Refused)
		e.State = string(ru.state)
		r = &refusal{ErrNotRecording, fmt.Sprintf("not recording (state %s)", ru.state)}
	}
	e.Err = r
	ru.emit(e)
	return r
}

// newIncident allocates the incident's id and directory, writes its first
// manifest and sets up its clip from the ring, starting at the key frame
// at or before t − pre_seconds.
func (ru *run) newIncident(t time.Duration, wall time.Time, pr outbox.Press) (*incident, error) {
	cfg := ru.r.Config
	// An id already taken (a counter file lost or damaged, with the clock
	// at the same second as before) moves on to the next.
	var id, dir string
	for tries := 0; ; tries++ {
		var err error
		if id, err = ru.ids.next(wall); err != nil {
			return nil, err
		}
		dir = filepath.Join(ru.outbox.Dir, id)
		err = os.Mkdir(dir, 0o750)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || tries == 10 {
			return nil, fmt.Errorf("create incident directory: %w", err)
		}
	}
	pre := time.Duration(cfg.Capture.PreSeconds) * time.Second
	start, seq, ok := ru.ring.Start(t - pre)
	if !ok {
		start, seq = t, ru.ring.Stats().NextSeq
	}
	m := outbox.Manifest{
		Version: outbox.ManifestVersion, Device: cfg.Device.ID, Store: cfg.Device.Store, Incident: id,
		State: outbox.StateRecording, Trigger: pr.Source, PressTime: wall, Presses: []outbox.Press{pr},
		ClipStart: ru.tl.Wall(start).In(ru.loc), Clip: outbox.ClipDigest{File: outbox.ClipFile},
		Software: ru.r.Version, ClockSynced: ru.clockSynced(),
	}
	m.Object = outbox.ObjectKey(m, ru.loc)
	if err := outbox.WriteManifest(dir, m); err != nil {
		return nil, err
	}
	post := time.Duration(cfg.Capture.PostSeconds) * time.Second
	limit := start + time.Duration(cfg.Capture.MaxIncidentSeconds)*time.Second
	return &incident{
		id: id, dir: dir, ring: ru.ring, tl: ru.tl, clock: ru.clock, log: ru.log,
		params: capture.ClipParams{
			Path: filepath.Join(dir, outbox.ClipFile), Ring: ru.ring, Start: start, Seq: seq,
			Audio: ru.r.Capture.AudioFormat, VideoPeriod: time.Second / time.Duration(max(cfg.Video.FPS, 1)), Created: wall,
		},
		post:     post,
		limit:    limit,
		head:     ru.r.auditHead,
		end:      min(t+post, limit),
		manifest: m,
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}, nil
}

// button handles what the button reports: a press, a long press (the
// incident is urgent), or a button stuck down and its release.
func (ru *run) button(ctx context.Context, p hardware.Press) {
	switch p.Kind {
	case hardware.PressShort:
		if _, err := ru.press(ctx, p.Time, p.Source, nil); err != nil {
			ru.log.Warn("press not recorded", "source", p.Source, "err", err)
		}
	case hardware.PressLong:
		if ru.cur == nil {
			ru.log.Info("long press with no incident running: nothing to mark urgent")
			return
		}
		ru.cur.markUrgent()
		ru.emit(Event{Kind: EventUrgent, Incident: ru.cur.id, Source: p.Source})
		ru.log.Warn("incident marked urgent by a long press", "id", ru.cur.id)
		ru.signal(hardware.Ack)
	case hardware.PressStuck:
		ru.stuck = true
		ru.emit(Event{Kind: EventButton, Stuck: true})
		ru.log.Error("the incident button has been held down for 30 s: it is stuck or jammed; presses are ignored until it is released")
	case hardware.PressReleased:
		ru.stuck = false
		ru.emit(Event{Kind: EventButton, Stuck: false})
		ru.log.Info("the stuck incident button was released")
	}
}

// signal shows p on the indicator, if it can show patterns.
func (ru *run) signal(p hardware.Pattern) {
	if s, ok := ru.r.Indicator.(hardware.Signaler); ok {
		s.Signal(p)
	}
}

// ackFor is how long the Ack pattern runs (hardware.Ack).
const ackFor = 2 * time.Second

// alertAccepted notes that an alert target accepted the incident.started
// of ref (store/device/id): if that is the incident running and staff
// have not yet been shown it, the indicator shows Alerted once the press's
// acknowledgement is over (showAlerted).
func (ru *run) alertAccepted(ref string) {
	cfg := ru.r.Config.Device
	if ru.cur == nil || ref != cfg.Store+"/"+cfg.ID+"/"+ru.cur.id || ru.alerted == ru.cur.id {
		return
	}
	ru.alerted, ru.alertDue = ru.cur.id, true
	ru.log.Info("an alert target accepted the press's alert", "incident", ru.cur.id)
	ru.showAlerted()
}

// showAlerted shows Alerted when it is due and the Ack it would cut short
// is over; the loop's second tick calls it again until then.
func (ru *run) showAlerted() {
	if ru.alertDue && !ru.clock.Now().Before(ru.ackEnd) {
		ru.alertDue = false
		ru.signal(hardware.Alerted)
	}
}

// showLasting keeps the indicator's lasting pattern in step with the
// state: a fault, incidents waiting for upload, or steady.
func (ru *run) showLasting() {
	want := hardware.Steady
	switch {
	case ru.state == StateFault:
		want = hardware.Fault
	case ru.r.Uploader != nil && ru.r.Uploader.Status().Pending > 0:
		want = hardware.Pending
	}
	if want != ru.lasting {
		ru.lasting = want
		ru.signal(want)
	}
}
