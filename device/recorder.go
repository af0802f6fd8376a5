// Package device is the recorder: it owns the state machine (idle,
// buffering, incident, fault), wires the counter hardware, capture and the
// outbox together, enforces the indicator interlock, and writes the audit
// log.
//
// The interlock: the indicator is turned on and read back before the camera
// or microphone opens, and they are closed before it is turned off. If the
// indicator cannot be driven or stops reading back as lit, capture stops and
// the recorder enters fault.
package device

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"mamoru/audit"
	"mamoru/backoff"
	"mamoru/capture"
	clockpkg "mamoru/clock"
	"mamoru/config"
	"mamoru/hardware"
	"mamoru/outbox"
	"mamoru/uploader"
)

// States of the recorder.
const (
	StateIdle      = "idle"      // not capturing
	StateBuffering = "buffering" // capturing into the ring
	StateIncident  = "incident"  // capturing and writing a clip
	StateFault     = "fault"     // the indicator failed: not capturing
)

// Recorder runs the device. Set the fields, then call Run once.
type Recorder struct {
	Config    config.Config
	Indicator hardware.Indicator
	Button    hardware.Button // may be nil: presses come only from the control socket
	Clock     clockpkg.Clock  // nil means the system clock
	Log       *slog.Logger
	Version   string
	// Out, if set, gets one plain line per incident for the person at the
	// counter: where the clip is and how long it is.
	Out io.Writer
	// Ready, if set, is called once, when the indicator is confirmed and
	// capture has started (or the recording hours rightly keep capture
	// off): never while in a fault. It tells systemd the service is up.
	Ready func()
	// Uploaded, if set, is called after an incident is in the bucket, with
	// its clip's directory there.
	Uploaded func(m outbox.Manifest, object string)
	// Healthy, if set, is called every second while the recorder does what
	// it should: capturing with the ring advancing, or rightly not
	// capturing (outside recording hours). Not in a fault, and not with a
	// ring that has stood still for 10 s while capturing. It pets systemd's
	// watchdog.
	Healthy func()
	// Now is the wall clock the recording hours are read on; nil is
	// time.Now.
	Now func() time.Time
	// ClockSynced reports whether NTP has set the clock; nil asks the
	// kernel.
	ClockSynced func() bool
	// StopTimeout is how long the camera and microphone may take to stop;
	// 0 means 15 s. One that has not stopped by then cannot be shown to
	// have stopped, so Run returns ErrCaptureStuck with the indicator
	// still on, and the process should exit: that closes them.
	StopTimeout time.Duration
}

// ErrCaptureStuck is returned by Run when the camera or microphone did not
// stop when told to.
var ErrCaptureStuck = errors.New("capture did not stop")

// Paths inside the state directory.
const (
	incidentsDir = "incidents"
	setAsideDir  = ".set-aside"
	auditFile    = "audit.log"
	counterFile  = "incident-counter"
	socketFile   = "control.sock"
	lockFile     = "lock"
)

// lockStateDir takes an exclusive lock on the state directory for as long
// as the process lives, or says that another recorder holds it.
func lockStateDir(dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("device: lock state directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("device: another recorder is running on %s", dir)
		}
		return nil, fmt.Errorf("device: lock state directory: %w", err)
	}
	return func() { f.Close() }, nil
}

// request is a command from the control socket, answered on reply.
type request struct {
	op     string
	source string
	at     time.Time
	reply  chan response
}

type response struct {
	Status  *Status        `json:"status,omitempty"`
	Trigger *TriggerResult `json:"trigger,omitempty"`
	Error   string         `json:"error,omitempty"`
}

// TriggerResult answers a press.
type TriggerResult struct {
	Incident string    `json:"incident"`
	Clip     string    `json:"clip"`
	Extended bool      `json:"extended"`
	Until    time.Time `json:"until"`
}

// Status is what `mamoru status` shows.
type Status struct {
	State           string           `json:"state"`
	Indicator       bool             `json:"indicator"`
	BufferedSeconds float64          `json:"buffered_seconds"`
	Incidents       []IncidentStatus `json:"incidents"`
	PendingUploads  int              `json:"pending_uploads"`
	PendingBytes    int64            `json:"pending_bytes"`
	// Storage is where clips go: "bucket at endpoint", or "local only".
	Storage string           `json:"storage"`
	Uploads *uploader.Status `json:"uploads,omitempty"`
	// SpoolFull is set while clips waiting for upload fill
	// storage.spool_max_mb: new presses are refused until they drain.
	SpoolFull   bool                      `json:"spool_full,omitempty"`
	SpoolBytes  int64                     `json:"spool_bytes"`
	Fault       string                    `json:"fault,omitempty"`
	Sources     map[string]capture.Health `json:"sources"`
	SetAside    []string                  `json:"set_aside,omitempty"`
	ButtonStuck bool                      `json:"button_stuck,omitempty"`
	// Hours says whether this is within the recording hours, and until when.
	Hours       string `json:"recording_hours"`
	ClockSynced bool   `json:"clock_synced"`
	// Closed says why the rules keep capture off now, if they do.
	Closed        string `json:"closed,omitempty"`
	IncidentError string `json:"incident_error,omitempty"`
	Device        string `json:"device"`
	Store         string `json:"store"`
	Version       string `json:"version"`
	RingBytes     int    `json:"ring_bytes"`
	RingCapacity  int    `json:"ring_capacity"`
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

// run is the state of one Run; it lives on Run's goroutine except where a
// field says otherwise.
type run struct {
	r      *Recorder
	log    *slog.Logger
	loc    *time.Location
	tl     *capture.Timeline
	ring   *capture.Ring
	audit  *audit.Log
	outbox outbox.Outbox
	up     *uploader.Uploader // nil without storage
	ids    incidentIDs
	video  *capture.VideoSource
	audio  *capture.AudioSource
	aform  *capture.AudioFormat

	state    string
	fault    string
	setAside []string
	// incidentErr is the last incident's failure, shown in status.
	incidentErr string
	// captureStuck is set when the camera or microphone did not stop: Run
	// returns it.
	captureStuck error
	// unfinished are incidents whose clip failed and that could not be
	// finalized either (the disk is full); they are tried again until they
	// are, rather than left for the next start.
	unfinished []unfinished
	stopCap    func() error // stops the sources and waits for them, up to StopTimeout; nil when not capturing
	cur        *incident
	lit        indicatorHistory
	lasting    hardware.Pattern // the pattern the indicator shows between presses
	stuck      bool             // the button is held down and was reported stuck
	// spoolUsed is the outbox's size, measured every second: a press reads
	// it rather than walk the directory before the acknowledgement.
	spoolUsed int64
	// lastSeq and lastAdvance follow the ring, for the watchdog.
	lastSeq     uint64
	lastAdvance time.Time
	schedule    *config.Schedule
	closed      string // why capture is off by the rules ("outside recording hours"), or ""
}

// indicatorHistory remembers the indicator's changes for the manifests. It
// is read by incident goroutines.
type indicatorHistory struct {
	mu      sync.Mutex // guards changes
	changes []outbox.IndicatorLog
}

func (h *indicatorHistory) add(t time.Time, on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.changes = append(h.changes, outbox.IndicatorLog{Time: t, On: on})
	if len(h.changes) > 1000 {
		h.changes = append(h.changes[:0], h.changes[len(h.changes)-500:]...)
	}
}

func (h *indicatorHistory) now() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.changes) > 0 && h.changes[len(h.changes)-1].On
}

// between returns the state at from and every change up to to.
func (h *indicatorHistory) between(from, to time.Time) []outbox.IndicatorLog {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := []outbox.IndicatorLog{{Time: from, On: false}}
	for _, c := range h.changes {
		switch {
		case !c.Time.After(from):
			out[0].On = c.On
		case !c.Time.After(to):
			out = append(out, c)
		}
	}
	return out
}

// Run records until ctx ends, then finishes any incident, closes capture,
// turns the indicator off and returns.
func (r *Recorder) Run(ctx context.Context) error {
	clock := r.Clock
	if clock == nil {
		clock = clockpkg.Real()
	}
	cfg := r.Config
	state := cfg.Device.StateDir
	if err := os.MkdirAll(filepath.Join(state, incidentsDir), 0o750); err != nil {
		return fmt.Errorf("device: state directory: %w", err)
	}
	ru := &run{
		r:      r,
		log:    r.Log,
		loc:    cfg.Location(),
		tl:     capture.NewTimeline(clock, nil),
		outbox: outbox.Outbox{Dir: filepath.Join(state, incidentsDir)},
		state:  StateIdle,
	}
	ru.ids = incidentIDs{path: filepath.Join(state, counterFile), loc: ru.loc}
	// Claim the state directory before touching anything in it: a second
	// recorder started by hand must not recover the first one's live clip,
	// write into its audit log or turn off its indicator.
	unlock, err := lockStateDir(state)
	if err != nil {
		return err
	}
	defer unlock()
	log, err := ru.openAudit(clock)
	if err != nil {
		return err
	}
	ru.audit = log
	defer log.Close()

	// Whatever the last run left (a crash, SIGKILL), the indicator starts
	// from a known state: off.
	if err := r.Indicator.Set(false); err != nil {
		ru.log.Error("cannot reset the indicator at start", "err", err)
	}
	ru.lit.add(clock.Now(), false)
	ru.audit.Record("start", "version", r.Version, "device", cfg.Device.ID)
	ru.recoverIncidents()

	if cfg.Storage.Enabled() {
		ru.up = &uploader.Uploader{
			Outbox: ru.outbox, Storage: cfg.Storage, Location: ru.loc, Log: r.Log.With("part", "uploader"), SigningKey: cfg.Device.SigningKey,
			Backoff: backoff.Backoff{Min: time.Second, Max: 2 * time.Minute, Jitter: 0.3},
			Shipped: func(m outbox.Manifest, object string) {
				ru.audit.Record("uploaded", "id", m.Incident, "object", object, "sha256", m.Clip.SHA256)
				if r.Uploaded != nil {
					r.Uploaded(m, object)
				}
			},
		}
		upCtx, stopUp := context.WithCancel(ctx)
		upDone := make(chan struct{})
		go func() {
			defer close(upDone)
			if err := ru.up.Run(upCtx); err != nil {
				r.Log.Error("uploader stopped", "err", err)
			}
		}()
		defer func() { stopUp(); <-upDone }()
	}

	ru.ring = capture.NewRing(cfg.RingBytes(), cfg.RingSpan(), ringFrames(cfg))
	sourceBackoff := backoff.Backoff{Min: time.Second, Max: 30 * time.Second, Jitter: 0.2}
	if cfg.Video.Enabled {
		ru.video = &capture.VideoSource{Config: cfg.Video, Timeline: ru.tl, Ring: ru.ring, Log: r.Log, Backoff: sourceBackoff}
	}
	if cfg.Audio.Enabled {
		ru.audio = &capture.AudioSource{Config: cfg.Audio, Timeline: ru.tl, Ring: ru.ring, Log: r.Log, Backoff: sourceBackoff}
		f, err := ru.audio.Format()
		if err != nil {
			return err
		}
		ru.aform = &f
	}

	reqs := make(chan request)
	ctl, err := listenControl(filepath.Join(state, socketFile), reqs, r.Log)
	if err != nil {
		return err
	}
	ctlDone := make(chan struct{})
	go func() { defer close(ctlDone); ctl.serve(ctx) }()
	defer func() { ctl.close(); <-ctlDone }()

	presses := make(chan hardware.Press)
	buttonCtx, stopButton := context.WithCancel(ctx)
	buttonDone := make(chan struct{})
	go func() {
		defer close(buttonDone)
		if r.Button != nil {
			if err := r.Button.Run(buttonCtx, presses); err != nil {
				r.Log.Error("button failed", "err", err)
			}
		}
	}()
	defer func() { stopButton(); <-buttonDone }()

	ru.schedule = cfg.Schedule()
	ru.spoolUsed, _ = ru.spool()
	hours := time.NewTimer(ru.applyHours(ctx))
	defer hours.Stop()
	ready := false
	tellReady := func() {
		if !ready && ru.state != StateFault {
			ready = true
			if r.Ready != nil {
				r.Ready()
			}
		}
	}
	tellReady()
	check := time.NewTicker(time.Second)
	defer check.Stop()
	lastRetry, lastFinish := clock.Now(), clock.Now()
	for {
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
			ru.audit.Record("stop")
			if err := r.Indicator.Halt(); err != nil {
				ru.log.Error("cannot halt the indicator", "err", err)
			}
			return nil
		case p := <-presses:
			ru.button(ctx, p)
		case q := <-reqs:
			switch q.op {
			case "trigger":
				res, err := ru.press(ctx, q.at, q.source)
				if err != nil {
					q.reply <- response{Error: err.Error()}
				} else {
					q.reply <- response{Trigger: &res}
				}
			case "status":
				st := ru.status()
				q.reply <- response{Status: &st}
			default:
				q.reply <- response{Error: fmt.Sprintf("unknown request %q", q.op)}
			}
		case <-curDone:
			ru.incidentDone()
		case <-hours.C:
			hours.Reset(ru.applyHours(ctx))
		case <-check.C:
			// Every second too, in case the wall clock jumped (NTP
			// setting it after boot) and the timer no longer points at
			// the next change.
			hours.Reset(ru.applyHours(ctx))
			ru.checkIndicator()
			tellReady()
			ru.showLasting()
			ru.spoolUsed, _ = ru.spool()
			if ru.healthy(clock.Now()) && r.Healthy != nil {
				r.Healthy()
			}
			if ru.state == StateFault && ru.closed == "" && clock.Now().Sub(lastRetry) >= 5*time.Second {
				lastRetry = clock.Now()
				ru.startCapture(ctx)
			}
			if len(ru.unfinished) > 0 && clock.Now().Sub(lastFinish) >= 5*time.Second {
				lastFinish = clock.Now()
				ru.finishUnfinished()
			}
		}
	}
}

// healthy reports whether the recorder is doing what it should.
func (ru *run) healthy(now time.Time) bool {
	if seq := ru.ring.Stats().NextSeq; seq != ru.lastSeq || ru.stopCap == nil {
		ru.lastSeq, ru.lastAdvance = seq, now
	}
	switch {
	case ru.state == StateFault:
		return false
	case ru.stopCap == nil:
		return ru.closed != "" // not capturing only because the rules say so
	default:
		return now.Sub(ru.lastAdvance) < 10*time.Second
	}
}

func (ru *run) now() time.Time {
	if ru.r.Now != nil {
		return ru.r.Now()
	}
	return time.Now()
}

func (ru *run) clockSynced() bool {
	if ru.r.ClockSynced != nil {
		return ru.r.ClockSynced()
	}
	return clockpkg.Synced()
}

// applyHours starts or stops capture as the recording hours say, and
// returns how long until it should look again.
func (ru *run) applyHours(ctx context.Context) time.Duration {
	now := ru.now()
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
		if closed != "" {
			ru.audit.Record("hours", "state", "closed", "why", closed)
			ru.log.Info("not recording", "why", closed, "schedule", ru.schedule.Describe(now))
		} else {
			ru.audit.Record("hours", "state", "open")
			ru.log.Info("recording hours began", "schedule", ru.schedule.Describe(now))
		}
	}
	switch {
	case closed != "" && ru.stopCap != nil:
		ru.stopCapture(closed) // the ring is wiped, the indicator goes off
	case closed == "" && ru.stopCap == nil && ru.state != StateFault:
		ru.startCapture(ctx)
	}
	next := ru.schedule.Next(now)
	if next.IsZero() {
		return time.Hour
	}
	return max(next.Sub(now), 10*time.Millisecond)
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

func (ru *run) openAudit(clock clockpkg.Clock) (*audit.Log, error) {
	path := filepath.Join(ru.r.Config.Device.StateDir, auditFile)
	a, err := audit.Open(path, clock.Now)
	if !errors.Is(err, audit.ErrChain) {
		return a, err
	}
	// A broken chain is kept as evidence and a new chain begins that says so.
	kept := fmt.Sprintf("%s.broken-%s", path, clock.Now().UTC().Format("20060102T150405Z"))
	if rerr := os.Rename(path, kept); rerr != nil {
		return nil, fmt.Errorf("device: set aside broken audit log: %w", rerr)
	}
	ru.log.Error("audit log chain broken; kept it aside and started a new one", "err", err, "kept", kept)
	a, err = audit.Open(path, clock.Now)
	if err == nil {
		a.Record("audit_broken", "kept", filepath.Base(kept), "err", err2s(err))
	}
	return a, err
}

func err2s(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// startCapture turns the indicator on, confirms it, and only then opens the
// camera and microphone.
func (ru *run) startCapture(ctx context.Context) {
	if ru.stopCap != nil {
		return
	}
	ind := ru.r.Indicator
	err := ind.Set(true)
	if err == nil {
		var lit bool
		lit, err = ind.Lit()
		if err == nil && !lit {
			err = fmt.Errorf("%w: set on, reads back off", hardware.ErrIndicatorFault)
		}
	}
	if err != nil {
		ru.enterFault(err)
		return
	}
	ru.lit.add(ru.tl.Wall(ru.tl.Now()), true)
	ru.audit.Record("indicator", "on", "true")

	capCtx, cancel := context.WithCancel(ctx)
	type source struct {
		name string
		done chan struct{}
	}
	var sources []source
	start := func(name string, capture func(context.Context) error) {
		s := source{name, make(chan struct{})}
		sources = append(sources, s)
		go func() {
			defer close(s.done)
			capture(capCtx)
		}()
	}
	if ru.video != nil {
		start("camera", ru.video.Run)
	}
	if ru.audio != nil {
		start("microphone", ru.audio.Run)
	}
	ru.stopCap = func() error {
		cancel()
		limit := ru.r.StopTimeout
		if limit <= 0 {
			limit = 15 * time.Second
		}
		timer := time.NewTimer(limit)
		defer timer.Stop()
		var stuck []string
		for _, s := range sources {
			select {
			case <-s.done:
			case <-timer.C:
				timer.Reset(0) // the rest get no more time
				stuck = append(stuck, s.name)
			}
		}
		if stuck != nil {
			return fmt.Errorf("device: %w: the %s still running %v after being told to stop", ErrCaptureStuck, strings.Join(stuck, " and "), limit)
		}
		return nil
	}
	ru.audit.Record("capture", "state", "started", "video", fmt.Sprint(ru.video != nil), "audio", fmt.Sprint(ru.audio != nil))
	ru.state, ru.fault = StateBuffering, ""
	ru.log.Info("capturing", "video", ru.video != nil, "audio", ru.audio != nil, "pre_seconds", ru.r.Config.Capture.PreSeconds)
}

// stopCapture ends any incident, closes the camera and microphone, and only
// then turns the indicator off.
func (ru *run) stopCapture(reason string) {
	if ru.cur != nil {
		ru.cur.stop(ru.tl.Now())
		<-ru.cur.done
		ru.incidentDone()
	}
	if ru.stopCap != nil {
		if err := ru.stopCap(); err != nil {
			// The indicator stays on, as capture may go on until the
			// process exits; Run returns.
			ru.captureStuck = err
			ru.log.Error("capture did not stop; exiting so that the system closes the camera and microphone", "reason", reason, "err", err)
			ru.audit.Record("capture", "state", "stuck", "reason", reason, "err", err.Error())
			return
		}
		ru.stopCap = nil
		ru.audit.Record("capture", "state", "stopped", "reason", reason)
	}
	ru.ring.Reset()
	if err := ru.r.Indicator.Set(false); err != nil {
		ru.log.Error("cannot turn the indicator off", "err", err)
		ru.audit.Record("indicator", "on", "unknown", "err", err.Error())
	} else {
		ru.audit.Record("indicator", "on", "false")
	}
	ru.lit.add(ru.tl.Wall(ru.tl.Now()), false)
	if ru.state != StateFault {
		ru.state = StateIdle
	}
}

func (ru *run) enterFault(err error) {
	first := ru.state != StateFault
	ru.state, ru.fault = StateFault, err.Error()
	ru.stopCapture("fault: " + err.Error())
	if first {
		ru.log.Error("indicator fault: capture stopped", "err", err)
		ru.audit.Record("fault", "err", err.Error())
	}
}

// checkIndicator reads the indicator back while capturing: if it is not
// lit, capture must stop.
func (ru *run) checkIndicator() {
	if ru.stopCap == nil {
		return
	}
	lit, err := ru.r.Indicator.Lit()
	if err == nil && !lit {
		err = fmt.Errorf("%w: reads back off while capturing", hardware.ErrIndicatorFault)
	}
	if err != nil {
		ru.enterFault(err)
	}
}

// press raises an incident or extends the current one.
func (ru *run) press(ctx context.Context, at time.Time, source string) (TriggerResult, error) {
	cfg := ru.r.Config
	wall := ru.tl.Wall(ru.tl.Of(at)).In(ru.loc)
	pr := outbox.Press{Time: wall, Source: source}
	if ru.stopCap == nil && ru.closed != "" {
		ru.signal(hardware.Closed)
		ru.audit.Record("press", "source", source, "result", "refused", "why", ru.closed)
		return TriggerResult{}, fmt.Errorf("not recording: %s (%s)", ru.closed, ru.schedule.Describe(ru.now()))
	}
	if ru.stopCap == nil {
		ru.signal(hardware.Refused)
		ru.audit.Record("press", "source", source, "result", "refused", "state", ru.state)
		if ru.fault != "" {
			return TriggerResult{}, fmt.Errorf("not recording (state %s: %s)", ru.state, ru.fault)
		}
		return TriggerResult{}, fmt.Errorf("not recording (state %s)", ru.state)
	}
	if used, full := ru.spoolUsed, ru.spoolUsed >= int64(cfg.Storage.SpoolMaxMB)<<20; full {
		ru.signal(hardware.Refused)
		ru.audit.Record("press", "source", source, "result", "refused", "reason", "spool full")
		why := "wait for upload"
		if ru.up == nil {
			why = "are kept locally (no storage.endpoint): collect and delete old ones"
		}
		err := fmt.Errorf("SPOOL FULL: %d MB of clips %s (storage.spool_max_mb = %d); this press is NOT saved",
			used>>20, why, cfg.Storage.SpoolMaxMB)
		ru.log.Error("press refused", "source", source, "err", err)
		if ru.r.Out != nil {
			fmt.Fprintf(ru.r.Out, "%v\n", err)
		}
		return TriggerResult{}, err
	}
	// Staff see the acknowledgement at once: it does not wait for the
	// incident's directory and manifest to reach the card.
	ru.signal(hardware.Ack)
	t := ru.tl.Of(at)
	post := time.Duration(cfg.Capture.PostSeconds) * time.Second
	if ru.cur != nil && ru.cur.extend(t, pr) {
		end, _ := ru.cur.state()
		ru.audit.Record("press", "source", source, "incident", ru.cur.id, "result", "extended")
		return TriggerResult{Incident: ru.cur.id, Clip: filepath.Join(ru.cur.dir, outbox.ClipFile), Extended: true, Until: ru.tl.Wall(end).In(ru.loc)}, nil
	}
	// An id already taken (a counter file lost or damaged, with the clock
	// at the same second as before) moves on to the next.
	var id, dir string
	for tries := 0; ; tries++ {
		var err error
		if id, err = ru.ids.next(wall); err != nil {
			ru.signal(hardware.Refused) // takes back the acknowledgement
			return TriggerResult{}, err
		}
		dir = filepath.Join(ru.outbox.Dir, id)
		err = os.Mkdir(dir, 0o750)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || tries == 10 {
			ru.signal(hardware.Refused)
			return TriggerResult{}, fmt.Errorf("create incident directory: %w", err)
		}
	}
	pre := time.Duration(cfg.Capture.PreSeconds) * time.Second
	start, seq, ok := ru.ring.Start(t - pre)
	if !ok {
		start, seq = t, ru.ring.Stats().NextSeq
	}
	m := outbox.Manifest{
		Version: 1, Device: cfg.Device.ID, Store: cfg.Device.Store, Incident: id,
		State: outbox.StateRecording, Trigger: source, PressTime: wall, Presses: []outbox.Press{pr},
		ClipStart: ru.tl.Wall(start).In(ru.loc), Clip: outbox.ClipDigest{File: outbox.ClipFile},
		Software: ru.r.Version, ClockSynced: ru.clockSynced(),
	}
	if err := outbox.WriteManifest(dir, m); err != nil {
		ru.signal(hardware.Refused)
		return TriggerResult{}, err
	}
	in := &incident{
		id: id, dir: dir, ring: ru.ring, tl: ru.tl, log: ru.log,
		params: capture.ClipParams{
			Path: filepath.Join(dir, outbox.ClipFile), Ring: ru.ring, Start: start, Seq: seq,
			Audio: ru.aform, VideoPeriod: time.Second / time.Duration(max(cfg.Video.FPS, 1)), Created: wall,
		},
		post:     post,
		limit:    start + time.Duration(cfg.Capture.MaxIncidentSeconds)*time.Second,
		end:      min(t+post, start+time.Duration(cfg.Capture.MaxIncidentSeconds)*time.Second),
		manifest: m,
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	// The pre-roll is on disk, synced, before the press is acknowledged.
	if err := in.begin(t); err != nil {
		ru.signal(hardware.Refused)
		ru.incidentErr = fmt.Sprintf("incident %s: %v", id, err)
		ru.audit.Record("incident", "id", id, "state", "failed", "err", err.Error())
		return TriggerResult{}, fmt.Errorf("incident %s: write the pre-roll: %w", id, err)
	}
	ru.cur = in
	ru.state = StateIncident
	go in.run(ctx, ru.lit.between)
	ru.audit.Record("press", "source", source, "incident", id, "result", "incident")
	ru.audit.Record("incident", "id", id, "state", "recording")
	ru.log.Info("incident", "id", id, "source", source, "clip_start", m.ClipStart, "pre", (t - start).Round(time.Millisecond))
	return TriggerResult{Incident: id, Clip: in.params.Path, Until: ru.tl.Wall(in.end).In(ru.loc)}, nil
}

// button handles what the button reports: a press, a long press (the
// incident is urgent), or a button stuck down and its release.
func (ru *run) button(ctx context.Context, p hardware.Press) {
	switch p.Kind {
	case hardware.PressShort:
		if _, err := ru.press(ctx, p.Time, p.Source); err != nil {
			ru.log.Warn("press not recorded", "source", p.Source, "err", err)
		}
	case hardware.PressLong:
		if ru.cur == nil {
			ru.log.Info("long press with no incident running: nothing to mark urgent")
			return
		}
		ru.cur.markUrgent()
		ru.audit.Record("urgent", "incident", ru.cur.id, "source", p.Source)
		ru.log.Warn("incident marked urgent by a long press", "id", ru.cur.id)
		ru.signal(hardware.Ack)
	case hardware.PressStuck:
		ru.stuck = true
		ru.audit.Record("button", "state", "stuck")
		ru.log.Error("the incident button has been held down for 30 s: it is stuck or jammed; presses are ignored until it is released")
	case hardware.PressReleased:
		ru.stuck = false
		ru.audit.Record("button", "state", "released")
		ru.log.Info("the stuck incident button was released")
	}
}

// signal shows p on the indicator, if it can show patterns.
func (ru *run) signal(p hardware.Pattern) {
	if s, ok := ru.r.Indicator.(hardware.Signaler); ok {
		s.Signal(p)
	}
}

// showLasting keeps the indicator's lasting pattern in step with the
// state: a fault, incidents waiting for upload, or steady.
func (ru *run) showLasting() {
	want := hardware.Steady
	switch {
	case ru.state == StateFault:
		want = hardware.Fault
	case ru.up != nil && ru.up.Status().Pending > 0:
		want = hardware.Pending
	}
	if want != ru.lasting {
		ru.lasting = want
		ru.signal(want)
	}
}

func (ru *run) incidentDone() {
	in := ru.cur
	ru.cur = nil
	if ru.state == StateIncident {
		ru.state = StateBuffering
	}
	_, m := in.state()
	if in.err != nil {
		// Keep what was written: cut the clip after its last complete
		// fragment now, rather than at the next start.
		ru.incidentErr = fmt.Sprintf("incident %s: %v", in.id, in.err)
		ru.log.Error("incident clip failed; keeping what was written", "id", in.id, "err", in.err)
		u := unfinished{dir: in.dir, m: m, why: "writing the clip failed: " + in.err.Error()}
		if rerr := recoverClip(u.dir, &m, ru.r.Config.Audio, u.why); rerr != nil {
			// Left in state recording, it is not uploaded as it is.
			ru.log.Error("cannot finalize the partial clip; trying again every 5 s", "id", in.id, "err", rerr)
			ru.audit.Record("incident", "id", in.id, "state", incidentFailed, "err", in.err.Error())
			if ru.r.Out != nil {
				fmt.Fprintf(ru.r.Out, "incident %s: clip FAILED: %v\n", in.id, in.err)
			}
			ru.unfinished = append(ru.unfinished, u)
			return
		}
	}
	ru.saved(in.params.Path, m)
}

// incidentFailed is the state status shows for an incident whose clip
// failed and could not be finalized yet.
const incidentFailed = "failed"

// unfinished is an incident to finalize once the disk allows.
type unfinished struct {
	dir string
	m   outbox.Manifest // as it was when the clip failed
	why string
}

// finishUnfinished tries again to finalize the clips that could not be.
func (ru *run) finishUnfinished() {
	left := ru.unfinished[:0]
	for _, u := range ru.unfinished {
		m := u.m
		m.Notes = slices.Clone(m.Notes)
		if err := recoverClip(u.dir, &m, ru.r.Config.Audio, u.why); err != nil {
			left = append(left, u)
			continue
		}
		ru.log.Info("finalized a clip that had failed", "id", m.Incident)
		ru.saved(filepath.Join(u.dir, outbox.ClipFile), m)
	}
	ru.unfinished = left
}

// saved records that an incident's clip is final and can be uploaded.
func (ru *run) saved(clip string, m outbox.Manifest) {
	ru.audit.Record("incident", "id", m.Incident, "state", m.State, "sha256", m.Clip.SHA256)
	if ru.up != nil {
		ru.up.Poke()
	}
	ru.log.Info("incident saved", "id", m.Incident, "state", m.State, "clip", clip, "seconds", fmt.Sprintf("%.1f", m.DurationSeconds), "bytes", m.Clip.Size)
	if ru.r.Out != nil {
		fmt.Fprintf(ru.r.Out, "incident %s saved (%s): %s (%.1f s, %d bytes)\n", m.Incident, m.State, clip, m.DurationSeconds, m.Clip.Size)
	}
}

func (ru *run) status() Status {
	cfg := ru.r.Config
	rs := ru.ring.Stats()
	st := Status{
		State:           ru.state,
		Indicator:       ru.lit.now(),
		BufferedSeconds: rs.Buffered.Seconds(),
		Incidents:       []IncidentStatus{},
		Fault:           ru.fault,
		Sources:         map[string]capture.Health{},
		SetAside:        ru.setAside,
		ButtonStuck:     ru.stuck,
		Hours:           ru.schedule.Describe(ru.now()),
		Closed:          ru.closed,
		ClockSynced:     ru.clockSynced(),
		IncidentError:   ru.incidentErr,
		Device:          cfg.Device.ID,
		Store:           cfg.Device.Store,
		Version:         ru.r.Version,
		RingBytes:       rs.Bytes,
		RingCapacity:    rs.Capacity,
	}
	if ru.video != nil {
		st.Sources["video"] = ru.video.Health()
	}
	if ru.audio != nil {
		st.Sources["audio"] = ru.audio.Health()
	}
	incidents, _, err := ru.outbox.List()
	if err != nil {
		ru.log.Error("cannot list incidents", "err", err)
	}
	for i := len(incidents) - 1; i >= 0 && len(st.Incidents) < 20; i-- {
		m := incidents[i].Manifest
		state := m.State
		if slices.ContainsFunc(ru.unfinished, func(u unfinished) bool { return u.m.Incident == m.Incident }) {
			state = incidentFailed
		}
		st.Incidents = append(st.Incidents, IncidentStatus{ID: m.Incident, State: state, Trigger: m.Trigger, PressTime: m.PressTime,
			DurationSeconds: m.DurationSeconds, Clip: filepath.Join(incidents[i].Dir, outbox.ClipFile), Size: m.Clip.Size})
	}
	for _, in := range incidents {
		if in.Manifest.State != outbox.StateRecording {
			st.PendingUploads++
			st.PendingBytes += in.Manifest.Clip.Size
		}
	}
	st.SpoolBytes, st.SpoolFull = ru.spool()
	ru.spoolUsed = st.SpoolBytes
	st.Storage = "local only"
	if ru.up != nil {
		us := ru.up.Status()
		st.Uploads = &us
		st.Storage = fmt.Sprintf("bucket %s at %s", cfg.Storage.Bucket, cfg.Storage.Endpoint)
	}
	return st
}

// spool returns the bytes the outbox holds and whether they fill
// storage.spool_max_mb.
func (ru *run) spool() (int64, bool) {
	used := ru.outbox.Bytes()
	return used, used >= int64(ru.r.Config.Storage.SpoolMaxMB)<<20
}
