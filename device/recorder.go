// Package device is the recorder: it owns the state machine (idle,
// buffering, incident, fault) and wires the parts it is handed — the counter
// hardware, the capture sources, the uploader — through the indicator
// interlock (Interlock), turns presses into incidents on disk, and reports
// every change as an Event, which the audit log records.
//
// The recorder builds none of its parts: the caller (cmd, or a test with
// fakes) builds them and hands them in, with the clocks they run on.
package device

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"mamoru/alert"
	"mamoru/audit"
	"mamoru/capture"
	"mamoru/clock"
	"mamoru/config"
	"mamoru/hardware"
	"mamoru/health"
	"mamoru/listen"
	"mamoru/outbox"
	"mamoru/uploader"
)

// State is the recorder's state.
type State string

// States of the recorder.
const (
	StateIdle      State = "idle"      // not capturing
	StateBuffering State = "buffering" // capturing into the ring
	StateIncident  State = "incident"  // capturing and writing a clip
	StateFault     State = "fault"     // the indicator failed: not capturing
)

// Uploader ships the outbox's finished incidents (uploader.Uploader).
type Uploader interface {
	// Run ships until ctx ends.
	Run(ctx context.Context) error
	// Poke says an incident is ready, so that it is shipped now.
	Poke()
	Status() uploader.Status
}

// Capture is what the recorder captures with: the sources, the ring they
// write and the timeline they stamp on. NewCapture builds the real ones.
type Capture struct {
	// Timeline must run on the Recorder's Clock and Wall.
	Timeline *capture.Timeline
	Ring     *capture.Ring
	Video    capture.Source // nil: no video
	Audio    capture.Source // nil: no audio
	// AudioFormat is the audio's sample format for the clips; required
	// with Audio.
	AudioFormat *capture.AudioFormat
	// Ear, if set, listens to Audio's blocks for a raised voice (its Hear
	// must be in the audio source's PCM); nil: no listening.
	Ear *Ear
}

// Recorder runs the device. Set the fields, then call Run once.
type Recorder struct {
	Config    config.Config
	Indicator hardware.Indicator
	Button    hardware.Button // may be nil: presses come only from the control socket
	Capture   Capture
	Uploader  Uploader // nil: clips stay on the device
	// Health, if set, keeps the device's report in the bucket: the
	// recorder hands it one every health.Interval, and at once when its
	// state, the indicator, a fault, the recording hours, a full spool, a
	// source or the clock's sync changes.
	Health HealthWriter
	// Reports, if set, is handed the same reports as Health, as the MQTT
	// alert targets' state follows them (alert.Dispatcher.Follow); it is
	// called from the recorder's goroutine and must not block.
	Reports func(health.Report)
	// AlertStatus, if set, reports the alert targets' queues for status
	// (alert.Dispatcher.Status); nil: no target is configured.
	AlertStatus func() alert.DispatcherStatus
	// Clock measures intervals and runs every timer; nil is the system
	// clock. The button's presses and the Timeline must come from it.
	Clock clock.Clock
	// Wall is read where the time of day is the point: recording hours,
	// incident ids, manifest and audit times. nil is the system clock. It is
	// apart from Clock because NTP sets a Pi's wall clock after boot, and a
	// test must be able to make it jump.
	Wall    clock.Clock
	Log     *slog.Logger
	Version string
	// Events, if set, is told of every Event after the audit log has
	// recorded it. It is called from the recorder's goroutine, and from the
	// uploader's for EventUploaded, and must not block.
	Events func(Event)
	// Interrupted, if set, is called at start with the manifest of each
	// incident the last run left recording (a power cut, a crash), before
	// recovery changes anything of it, and must return only once what is
	// to be said of its press is on the card (Alerts.Interrupted). A cut
	// during recovery then leaves either that, or the incident still
	// recording, to be recovered (and said) again: never neither.
	Interrupted func(outbox.Manifest)
	// Ready, if set, is called once, when the indicator is confirmed and
	// capture has started (or the recording hours rightly keep capture
	// off): never while in a fault. It tells systemd the service is up.
	Ready func()
	// Healthy, if set, is called every second while the recorder does what
	// it should: capturing with the ring advancing, or rightly not
	// capturing (outside recording hours). Not in a fault, and not with a
	// ring that has stood still for 10 s while capturing. It pets systemd's
	// watchdog.
	Healthy func()
	// ClockSynced reports whether NTP has set the clock; nil asks the
	// kernel.
	ClockSynced func() bool
	// StopTimeout is how long the camera and microphone may take to stop;
	// 0 means 15 s. One that has not stopped by then cannot be shown to
	// have stopped, so Run returns ErrCaptureStuck with the indicator
	// still on, and the process should exit: that closes them.
	StopTimeout time.Duration
	// AuditFile, if set, opens the audit log's file for reading and
	// appending, at its start; nil opens <state_dir>/audit.log. A test
	// hands in a file whose writes fail.
	AuditFile func(path string) (audit.File, error)

	auditMu sync.Mutex // guards audit and auditErr
	audit   *audit.Log // the log while Run runs; nil before and after
	// auditErr is the first failure to write the audit log since it last
	// worked: the recorder is in a fault until it works again.
	auditErr error

	acceptedOnce sync.Once
	accepted     chan string // incidents (store/device/id) an alert target accepted; see AlertAccepted
}

// AlertAccepted tells the recorder that an alert target accepted e. Put it
// in each alert queue's Accepted (alert.QueueOptions): when e is the
// incident.started of the incident running, the indicator shows Alerted
// once the press's acknowledgement is over, so staff see the call went
// out. It never waits: an acceptance the recorder is too busy to take is
// dropped, as another target's will follow.
func (r *Recorder) AlertAccepted(e alert.Event) {
	if e.Name != alert.IncidentStarted || e.Urgent {
		return
	}
	select {
	case r.acceptedChan() <- e.Incident:
	default:
	}
}

func (r *Recorder) acceptedChan() chan string {
	r.acceptedOnce.Do(func() { r.accepted = make(chan string, 8) })
	return r.accepted
}

// errAuditWrite is the fault of an audit log that cannot be written: with
// no record of the indicator and capture, capture may not run.
var errAuditWrite = errors.New("the audit log cannot be written")

// Paths inside the state directory.
const (
	incidentsDir = "incidents"
	setAsideDir  = ".set-aside"
	auditFile    = "audit.log"
	// auditReserveFile holds room for the audit log (audit.Log.Reserve).
	auditReserveFile = "audit.reserve"
	counterFile      = "incident-counter"
	socketFile       = "control.sock"
	lockFile         = "lock"
)

// Outbox is the outbox of the recorder whose state directory is stateDir:
// the uploader ships from it.
func Outbox(stateDir string) outbox.Outbox {
	return outbox.Outbox{Dir: filepath.Join(stateDir, incidentsDir)}
}

// run is the state of one Run; it lives on Run's goroutine except where a
// field says otherwise.
type run struct {
	// ackEnd is when the last press's Ack pattern ends; alerted is the
	// incident staff were last shown Alerted for, and alertDue says it
	// waits for ackEnd.
	ackEnd   time.Time
	alerted  string
	alertDue bool
	// sourceDown holds each source watchSources reported down, with the
	// capture timeline's time it did.
	sourceDown map[string]time.Duration
	// wasFull, wasSynced (once clockChecked) and stuckErr are the
	// conditions watchConditions last reported.
	wasFull, wasSynced, clockChecked bool
	stuckErr                         string

	r         *Recorder
	log       *slog.Logger
	loc       *time.Location
	clock     clock.Clock
	wall      clock.Clock
	tl        *capture.Timeline
	ring      *capture.Ring
	outbox    outbox.Outbox
	ids       incidentIDs
	interlock *Interlock

	state State
	fault string
	// incidentErr is the last incident's failure, shown in status.
	incidentErr string
	// captureStuck is set when the camera or microphone did not stop: Run
	// returns it.
	captureStuck error
	// unfinished are incidents whose clip failed and that could not be
	// finalized either (the disk is full); they are tried again until they
	// are, rather than left for the next start.
	unfinished []unfinished
	cur        *incident
	lit        indicatorHistory
	lasting    hardware.Pattern // the pattern the indicator shows between presses
	stuck      bool             // the button is held down and was reported stuck
	// spoolUsed is the outbox's size, measured every second: a press reads
	// it rather than walk the directory before the acknowledgement.
	spoolUsed int64
	// capturedFrom is the capture timeline's time when capture was last
	// seen not running, for the watchdog.
	capturedFrom time.Duration
	schedule     *config.Schedule
	closed       string // why capture is off by the rules ("outside recording hours"), or ""
	// ready is set once Ready has been called.
	ready bool
	// lastRetry and lastFinish pace the 5 s retries of a fault and of
	// unfinished incidents.
	lastRetry, lastFinish time.Time
	// reserved is the audit log's reserve when last filled.
	reserved int64
	// lastReserve paces the refilling of the audit log's reserve, and
	// lastBaseline the saving of what listening has learned.
	lastReserve, lastBaseline time.Time
	// started is when Run began, for the uptime.
	started time.Time
	// lastIncident (store/device/id) and lastIncidentAt (its press) are
	// the newest incident a press raised in this run.
	lastIncident   string
	lastIncidentAt time.Time
	// healthLast is the state the last health report said, healthAt when
	// it was sent (on clock), healthSent whether one was.
	healthLast healthState
	healthAt   time.Time
	healthSent bool
	// sounds are the latest raised voices listening heard, oldest first.
	sounds []SoundStatus
}

// Run records until ctx ends, then finishes any incident, closes capture,
// turns the indicator off and returns.
func (r *Recorder) Run(ctx context.Context) error {
	ru, err := r.newRun()
	if err != nil {
		return err
	}
	state := r.Config.Device.StateDir
	// Claim the state directory before touching anything in it: a second
	// recorder started by hand must not recover the first one's live clip,
	// write into its audit log or turn off its indicator.
	unlock, err := lockStateDir(state)
	if err != nil {
		return err
	}
	defer unlock()
	log, broken, err := ru.openAudit()
	if err != nil {
		return err
	}
	r.auditMu.Lock()
	r.audit, r.auditErr = log, nil
	r.auditMu.Unlock()
	ru.reserveAudit()
	defer func() {
		r.auditMu.Lock()
		defer r.auditMu.Unlock()
		log.Close()
		r.audit = nil
	}()

	ru.emit(Event{Kind: EventStart, Version: r.Version, Device: r.Config.Device.ID})
	if broken != nil {
		ru.emit(*broken)
	}
	// Whatever the last run left (a crash, SIGKILL), the indicator starts
	// from a known state: off.
	if err := r.Indicator.Set(false); err != nil {
		ru.log.Error("cannot reset the indicator at start", "err", err)
		ru.emit(Event{Kind: EventIndicator, Err: err})
	} else {
		ru.emit(Event{Kind: EventIndicator, On: false})
	}
	ru.recoverIncidents()

	if r.Uploader != nil {
		defer goUntil(ctx, func(ctx context.Context) {
			if err := r.Uploader.Run(ctx); err != nil {
				r.Log.Error("uploader stopped", "err", err)
			}
		})()
	}
	if r.Health != nil {
		defer goUntil(ctx, func(ctx context.Context) {
			if err := r.Health.Run(ctx); err != nil {
				r.Log.Error("health writer stopped", "err", err)
			}
		})()
	}
	reqs := make(chan request)
	ctl, err := listenControl(filepath.Join(state, socketFile), reqs, ru.clock, r.Config.Device.TriggerSources, r.Log)
	if err != nil {
		return err
	}
	stopServing := goUntil(ctx, ctl.serve)
	defer func() { ctl.close(); stopServing() }()
	presses := make(chan hardware.Press)
	if r.Button != nil {
		defer goUntil(ctx, func(ctx context.Context) {
			if err := r.Button.Run(ctx, presses); err != nil {
				r.Log.Error("button failed", "err", err)
			}
		})()
	}
	return ru.loop(ctx, reqs, presses)
}

// newRun checks the parts r was handed and sets up the state of one Run.
func (r *Recorder) newRun() (*run, error) {
	clk, wall := clock.Or(r.Clock), clock.Or(r.Wall)
	if r.Capture.Timeline == nil || r.Capture.Ring == nil {
		return nil, errors.New("device: Recorder.Capture needs a Timeline and a Ring (see NewCapture)")
	}
	if r.Capture.Audio != nil && r.Capture.AudioFormat == nil {
		return nil, errors.New("device: Recorder.Capture has audio but no AudioFormat")
	}
	state := r.Config.Device.StateDir
	if err := os.MkdirAll(filepath.Join(state, incidentsDir), 0o750); err != nil {
		return nil, fmt.Errorf("device: state directory: %w", err)
	}
	ru := &run{
		r:        r,
		log:      r.Log,
		loc:      r.Config.Location(),
		clock:    clk,
		wall:     wall,
		tl:       r.Capture.Timeline,
		ring:     r.Capture.Ring,
		outbox:   Outbox(state),
		schedule: r.Config.Schedule(),
		state:    StateIdle,
		started:  clk.Now(),
	}
	ru.ids = incidentIDs{path: filepath.Join(state, counterFile), loc: ru.loc}
	sources := map[string]capture.Source{}
	if r.Capture.Video != nil {
		sources[SourceCamera] = r.Capture.Video
	}
	if r.Capture.Audio != nil {
		sources[SourceMicrophone] = r.Capture.Audio
	}
	ru.interlock = &Interlock{Indicator: r.Indicator, Sources: sources, Clock: clk, StopTimeout: r.StopTimeout, Note: ru.emit, Log: r.Log}
	return ru, nil
}

// goUntil runs f in a goroutine under a context derived from ctx, and
// returns a func that ends that context and waits for f to return.
func goUntil(ctx context.Context, f func(context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(ctx)
	}()
	return func() { cancel(); <-done }
}

// loop is the state machine: it handles presses, requests, the end of an
// incident and the clock's timers until ctx ends, then stops capture.
func (ru *run) loop(ctx context.Context, reqs <-chan request, presses <-chan hardware.Press) error {
	ru.spoolUsed, _ = ru.spool()
	hours := ru.clock.NewTimer(ru.applyHours(ctx))
	defer hours.Stop()
	ru.tellReady()
	check := ru.clock.NewTicker(time.Second)
	defer check.Stop()
	ru.lastRetry, ru.lastFinish, ru.lastReserve, ru.lastBaseline = ru.clock.Now(), ru.clock.Now(), ru.clock.Now(), ru.clock.Now()
	// timers handles what the clock says is due, and the alerts accepted.
	// It runs before a request is answered too, so that a status or a
	// press sees every change the clock has already made due.
	onHours := func() { hours.Reset(ru.applyHours(ctx)) }
	onSecond := func() {
		// The hours every second too, in case the wall clock jumped (NTP
		// setting it after boot) and the timer no longer points at the
		// next change.
		onHours()
		ru.everySecond(ctx)
	}
	timers := func() {
		for {
			select {
			case <-hours.Chan():
				onHours()
			case <-check.Chan():
				onSecond()
			case ref := <-ru.r.acceptedChan():
				ru.alertAccepted(ref)
			default:
				return
			}
		}
	}
	var heard <-chan listen.Detection
	if ru.r.Capture.Ear != nil {
		heard = ru.r.Capture.Ear.Heard()
	}
	for {
		// Before curDone is taken: a fault ends the incident.
		ru.checkAuditWrites()
		// After whatever the last pass changed, before waiting again.
		ru.sendHealth()
		var curDone <-chan struct{}
		if ru.cur != nil {
			curDone = ru.cur.done
		}
		if ru.captureStuck != nil {
			return ru.captureStuck
		}
		select {
		case <-ctx.Done():
			ru.stopCapture("shutdown")
			if ru.captureStuck != nil {
				return ru.captureStuck
			}
			ru.saveBaseline()
			ru.emit(Event{Kind: EventStop})
			if err := ru.r.Indicator.Halt(); err != nil {
				ru.log.Error("cannot halt the indicator", "err", err)
			}
			return nil
		case p := <-presses:
			ru.button(ctx, p)
		case q := <-reqs:
			timers()
			q.reply <- ru.serve(ctx, q)
		case <-curDone:
			ru.incidentDone()
		case d := <-heard:
			timers()
			ru.heard(ctx, d)
		case ref := <-ru.r.acceptedChan():
			ru.alertAccepted(ref)
		case <-hours.Chan():
			onHours()
		case <-check.Chan():
			onSecond()
		}
	}
}

// serve answers a request from the control socket.
func (ru *run) serve(ctx context.Context, q request) response {
	switch q.op {
	case opTrigger:
		res, err := ru.press(ctx, q.at, q.source, nil)
		if err != nil {
			return errorResponse(err)
		}
		return response{Trigger: &res}
	case opStatus:
		st := ru.status()
		return response{Status: &st}
	case opListen:
		ls := ru.listening(q.watch)
		if ls == nil {
			return response{Error: "not listening: this recorder captures no audio (audio.enabled = false)"}
		}
		return response{Listen: ls}
	}
	return response{Error: fmt.Sprintf("unknown request %q", q.op)}
}

// everySecond reads the indicator back, keeps its pattern, measures the
// spool, pets the watchdog while healthy, and every 5 s retries capture
// after a fault and finalizing the clips that failed.
func (ru *run) everySecond(ctx context.Context) {
	now := ru.clock.Now()
	ru.checkIndicator()
	ru.tellReady()
	ru.showLasting()
	ru.showAlerted()
	ru.spoolUsed, _ = ru.spool()
	ru.watchConditions()
	if ru.healthy(now) && ru.r.Healthy != nil {
		ru.r.Healthy()
	}
	ru.watchSources(now)
	if ru.state == StateFault && ru.closed == "" && now.Sub(ru.lastRetry) >= 5*time.Second {
		ru.lastRetry = now
		if ru.auditWorks() {
			ru.startCapture(ctx)
		}
	}
	if now.Sub(ru.lastBaseline) >= baselineEvery {
		ru.lastBaseline = now
		ru.saveBaseline()
	}
	if now.Sub(ru.lastReserve) >= time.Minute {
		ru.lastReserve = now
		ru.reserveAudit()
	}
	if len(ru.unfinished) > 0 && now.Sub(ru.lastFinish) >= 5*time.Second {
		ru.lastFinish = now
		ru.finishUnfinished()
	}
}

// watchConditions reports, as each changes, what a manager must hear of
// though nothing was pressed: the spool full, the clock not set by NTP, an
// upload a person must fix. Each goes to the audit log and to alerts.
func (ru *run) watchConditions() {
	if full := ru.spoolFull(ru.spoolUsed); full != ru.wasFull {
		ru.wasFull = full
		ru.emit(Event{Kind: EventSpool, State: map[bool]string{true: "full", false: "room"}[full]})
	}
	// Unsynced is said at the first check too; synced only as a change.
	if synced := ru.clockSynced(); synced != ru.wasSynced || !ru.clockChecked {
		if ru.clockChecked || !synced {
			ru.emit(Event{Kind: EventClock, State: map[bool]string{true: "synced", false: "unsynced"}[synced]})
		}
		ru.wasSynced, ru.clockChecked = synced, true
	}
	if u := ru.r.Uploader; u != nil {
		switch st := u.Status(); {
		case st.Problem && st.LastError != ru.stuckErr:
			ru.stuckErr = st.LastError
			ru.emit(Event{Kind: EventUploadStuck, Err: errors.New(st.LastError)})
		case !st.Problem:
			ru.stuckErr = ""
		}
	}
}

// sourceDownAfter is how long a source may send nothing, while capture
// runs, before it is reported down: longer than any restart of a camera
// or a microphone that recovers by itself.
const sourceDownAfter = 30 * time.Second

// watchSources reports a source that has sent nothing for sourceDownAfter
// while capture ran, judged by its newest frame's own time, and reports it
// up again once it sends a frame newer than that. It judges only while
// capture runs: closing time neither downs nor ups a source. The other
// source goes on recording meanwhile.
func (ru *run) watchSources(now time.Time) {
	if !ru.interlock.Capturing() {
		return
	}
	at := ru.tl.Of(now)
	for _, s := range []struct {
		name string
		src  capture.Source
	}{{"video", ru.r.Capture.Video}, {"audio", ru.r.Capture.Audio}} {
		if s.src == nil {
			continue
		}
		h := s.src.Health()
		downAt, down := ru.sourceDown[s.name]
		switch {
		case !down && at-max(h.LastFrame, ru.capturedFrom) >= sourceDownAfter:
			if ru.sourceDown == nil {
				ru.sourceDown = map[string]time.Duration{}
			}
			ru.sourceDown[s.name] = at
			e := Event{Kind: EventSource, Track: s.name, State: "down"}
			if h.LastError != "" {
				e.Err = errors.New(h.LastError)
			}
			ru.log.Error("a source has sent nothing for 30 s", "source", s.name, "last_error", h.LastError)
			ru.emit(e)
		case down && h.LastFrame > downAt:
			delete(ru.sourceDown, s.name)
			ru.emit(Event{Kind: EventSource, Track: s.name, State: "up"})
		}
	}
}

// tellReady calls Ready once, as soon as the recorder is not in a fault.
func (ru *run) tellReady() {
	if !ru.ready && ru.state != StateFault {
		ru.ready = true
		if ru.r.Ready != nil {
			ru.r.Ready()
		}
	}
}

// emit stamps e with the wall clock, keeps the indicator's history, records
// e in the audit log and hands it on.
func (ru *run) emit(e Event) {
	e.Time = ru.wall.Now()
	if e.Kind == EventIndicator {
		ru.lit.add(e.Time, e.On)
	}
	ru.r.report(e)
}

// report records e in the audit log and hands it on. The uploader's
// goroutine calls it too (Shipped). A failure to record is kept for the
// recorder's loop, which enters a fault (checkAuditWrites).
func (r *Recorder) report(e Event) {
	r.auditMu.Lock()
	log := r.audit
	var err error
	if log == nil {
		err = errors.New("the recorder is not running")
	} else {
		err = log.Record(string(e.Kind), e.attrs()...)
		if err != nil && r.auditErr == nil {
			r.auditErr = err
		}
	}
	r.auditMu.Unlock()
	if err != nil {
		r.Log.Error("cannot write the audit log", "event", e.Kind, "err", err)
	}
	if r.Events != nil {
		r.Events(e)
	}
}

// Shipped records that the uploader has put an incident in the bucket at
// object. Hand it to uploader.Uploader.Shipped: the uploader runs inside
// Run, so its reports reach the audit log; one made when the recorder is
// not running is logged as an error.
func (r *Recorder) Shipped(m outbox.Manifest, object string) {
	wall := clock.Or(r.Wall)
	r.report(Event{Kind: EventUploaded, Time: wall.Now(), Incident: m.Incident, Object: object, SHA256: m.Clip.SHA256, Manifest: &m})
}

// auditFailure returns the first failure to write the audit log since it
// last worked, or nil.
func (r *Recorder) auditFailure() error {
	r.auditMu.Lock()
	defer r.auditMu.Unlock()
	return r.auditErr
}

// AuditReserve is the room kept on the card for the audit log: some
// 80 000 entries, days of a busy counter with a full card. Clips may not
// use it: a press is refused while it cannot be kept whole.
const AuditReserve = 16 << 20

// reserveAudit fills the audit log's reserve back up, where the card has
// room.
func (ru *run) reserveAudit() {
	ru.r.auditMu.Lock()
	log := ru.r.audit
	ru.r.auditMu.Unlock()
	if log == nil {
		return
	}
	n, err := log.Reserve(filepath.Join(ru.r.Config.Device.StateDir, auditReserveFile), AuditReserve)
	if err != nil && n != ru.reserved {
		ru.log.Warn("cannot keep the audit log's room on the card", "kept_bytes", n, "want_bytes", AuditReserve, "err", err)
	}
	ru.reserved = n
}

// auditHead returns the audit log's head, or nil if it has none.
func (r *Recorder) auditHead() *audit.Head {
	r.auditMu.Lock()
	defer r.auditMu.Unlock()
	if r.audit == nil {
		return nil
	}
	if h, ok := r.audit.Head(); ok {
		return &h
	}
	return nil
}

// checkAuditWrites enters a fault if an event could not be recorded:
// capture stops and the indicator goes off, as when the indicator fails.
// It runs where the loop may stop capture, never from inside an emit.
func (ru *run) checkAuditWrites() {
	if err := ru.r.auditFailure(); err != nil && ru.state != StateFault {
		ru.enterFault(fmt.Errorf("%w: %w", errAuditWrite, err))
	}
}

// auditWorks reports whether the audit log can be written again after it
// failed: it records that it has resumed, naming the failure (entries
// between the two were lost, and capture was off for all of them).
func (ru *run) auditWorks() bool {
	failed := ru.r.auditFailure()
	if failed == nil {
		return true
	}
	ru.r.auditMu.Lock()
	ru.r.auditErr = nil
	ru.r.auditMu.Unlock()
	ru.emit(Event{Kind: EventAuditResumed, Err: failed})
	if ru.r.auditFailure() != nil {
		return false
	}
	ru.log.Info("the audit log can be written again", "failed_with", failed)
	return true
}

// healthy reports whether the recorder is doing what it should. The ring
// stands still when its newest frame is 10 s old on the capture timeline,
// judged by the frame's own time, not by when this check got to see it.
func (ru *run) healthy(now time.Time) bool {
	capturing := ru.interlock.Capturing()
	at := ru.tl.Of(now)
	rs := ru.ring.Stats()
	if !capturing {
		ru.capturedFrom = at // a ring is not still before capture starts
	}
	switch {
	case ru.state == StateFault:
		return false
	case !capturing:
		return ru.closed != "" // not capturing only because the rules say so
	default:
		return at-max(rs.Newest, ru.capturedFrom) < 10*time.Second
	}
}

func (ru *run) clockSynced() bool {
	if ru.r.ClockSynced != nil {
		return ru.r.ClockSynced()
	}
	return clock.Synced()
}

// applyHours starts or stops capture as the recording hours say, and
// returns how long until it should look again.
func (ru *run) applyHours(ctx context.Context) time.Duration {
	now := ru.wall.Now()
	closed := ""
	switch {
	case ru.schedule.Always():
	case now.Year() < 2025:
		// A Pi has no battery clock: before NTP (or fake-hwclock) sets it,
		// the hours cannot be known, and recording outside them is not
		// allowed.
		closed = "the clock is not set, so the recording hours cannot be applied"
	case !ru.schedule.Open(now):
		closed = "outside recording hours"
	}
	if closed != ru.closed {
		ru.closed = closed
		ru.emit(Event{Kind: EventHours, Reason: closed})
		if closed != "" {
			ru.log.Info("not recording", "why", closed, "schedule", ru.schedule.Describe(now))
		} else {
			ru.log.Info("recording hours began", "schedule", ru.schedule.Describe(now))
		}
	}
	switch {
	case closed != "" && ru.interlock.Capturing():
		ru.stopCapture(closed) // the ring is wiped, the indicator goes off
	case closed == "" && !ru.interlock.Capturing() && ru.state != StateFault:
		ru.startCapture(ctx)
	}
	next := ru.schedule.Next(now)
	if next.IsZero() {
		return time.Hour
	}
	return max(next.Sub(now), 10*time.Millisecond)
}

// openAudit opens the audit log. A log whose chain is broken is kept
// aside as evidence and a new chain begins; broken is then the event that
// says so, for the new chain to record.
func (ru *run) openAudit() (log *audit.Log, broken *Event, err error) {
	path := filepath.Join(ru.r.Config.Device.StateDir, auditFile)
	log, err = ru.openAuditFile(path)
	if !errors.Is(err, audit.ErrChain) {
		return log, nil, err
	}
	kept := fmt.Sprintf("%s.broken-%s", path, ru.wall.Now().UTC().Format("20060102T150405Z"))
	if rerr := os.Rename(path, kept); rerr != nil {
		return nil, nil, fmt.Errorf("device: set aside broken audit log: %w", rerr)
	}
	ru.log.Error("audit log chain broken; kept it aside and started a new one", "err", err, "kept", kept)
	log, err2 := ru.openAuditFile(path)
	return log, &Event{Kind: EventAuditBroken, Dir: filepath.Base(kept), Err: err}, err2
}

func (ru *run) openAuditFile(path string) (*audit.Log, error) {
	if ru.r.AuditFile == nil {
		return audit.Open(path, ru.wall)
	}
	f, err := ru.r.AuditFile(path)
	if err != nil {
		return nil, fmt.Errorf("device: open the audit log: %w", err)
	}
	return audit.OpenFile(f, path, ru.wall)
}

// startCapture opens the camera and microphone behind the indicator, or
// enters fault if the indicator cannot be confirmed.
func (ru *run) startCapture(ctx context.Context) {
	if ru.interlock.Capturing() {
		return
	}
	if err := ru.interlock.Start(ctx); err != nil {
		ru.enterFault(err)
		return
	}
	ru.state, ru.fault = StateBuffering, ""
	ru.checkAuditWrites() // capture may not run unrecorded
	ru.log.Info("capturing", "video", ru.r.Capture.Video != nil, "audio", ru.r.Capture.Audio != nil, "pre_seconds", ru.r.Config.Capture.PreSeconds)
}

// stopCapture ends any incident, then closes capture behind the indicator
// and wipes the ring.
func (ru *run) stopCapture(reason string) {
	if ru.cur != nil {
		ru.cur.stop(ru.tl.Now())
		<-ru.cur.done
		ru.incidentDone()
	}
	if err := ru.interlock.Stop(reason); err != nil {
		// The indicator stays on, as capture may go on until the process
		// exits; Run returns.
		ru.captureStuck = err
		ru.log.Error("capture did not stop; exiting so that the system closes the camera and microphone", "reason", reason, "err", err)
		return
	}
	ru.ring.Reset()
	if ear := ru.r.Capture.Ear; ear != nil {
		for _, d := range ear.restart(ru.wall.Now()) {
			ru.heard(context.Background(), d)
		}
	}
	if ru.state != StateFault {
		ru.state = StateIdle
	}
}

func (ru *run) enterFault(err error) {
	first := ru.state != StateFault
	ru.state, ru.fault = StateFault, err.Error()
	ru.stopCapture("fault: " + err.Error())
	if first {
		ru.log.Error("fault: capture stopped", "err", err)
		ru.emit(Event{Kind: EventFault, Err: err})
	}
}

// checkIndicator reads the indicator back while capturing: if it is not
// lit, capture must stop.
func (ru *run) checkIndicator() {
	if err := ru.interlock.Check(); err != nil {
		ru.enterFault(err)
	}
}

// ringFrames bounds the ring's index: every video frame and audio block of
// the span, twice over.
func ringFrames(cfg config.Config) int {
	perSecond := 0
	if cfg.Video.Enabled {
		perSecond += cfg.Video.FPS
	}
	if cfg.Audio.Enabled {
		perSecond += int(time.Second / capture.AudioBlock)
	}
	return 2 * perSecond * int(cfg.RingSpan()/time.Second+1)
}
