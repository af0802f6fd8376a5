package device

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"mamoru/audit"
	"mamoru/capture"
	"mamoru/config"
	"mamoru/hardware"
	"mamoru/hardware/hardwaretest"
	"mamoru/listen/listentest"
	"mamoru/outbox"
	"mamoru/uploader"
)

// The state machine on fakes: a fake clock and wall clock, a microphone
// that writes a block into the ring for every 20 ms the clock moves while it
// runs, a camera that captures nothing, a fake indicator, button and
// uploader. Nothing here waits on real time but disk writes and the
// recorder's goroutines being scheduled.

// fakeSource is a capture.Source that runs until told to stop, or, when
// stubborn, until released.
type fakeSource struct {
	mu       sync.Mutex // guards the fields below
	running  bool
	starts   int
	stubborn chan struct{} // non-nil: Run ignores ctx until it is closed
	// litAtStart and litAtStop record whether the indicator was lit each
	// time Run began and returned, for the interlock's order.
	litAtStart, litAtStop []bool
	ind                   *hardwaretest.Indicator
	// lastFrame, if set, is the newest frame's time, as a source's Health
	// says it; nil is 0.
	lastFrame func() time.Duration
}

func (s *fakeSource) Run(ctx context.Context) error {
	s.mu.Lock()
	s.running = true
	s.starts++
	if s.ind != nil {
		s.litAtStart = append(s.litAtStart, s.ind.IsLit())
	}
	stubborn := s.stubborn
	s.mu.Unlock()
	<-ctx.Done()
	if stubborn != nil {
		<-stubborn
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running = false
	if s.ind != nil {
		s.litAtStop = append(s.litAtStop, s.ind.IsLit())
	}
	return nil
}

func (s *fakeSource) Health() capture.Health {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := capture.Health{Running: s.running}
	if s.lastFrame != nil {
		h.LastFrame = s.lastFrame()
	}
	return h
}

// capture runs write while the source runs, and not once Run has
// returned: a source writes nothing after it was told to stop and did.
func (s *fakeSource) capture(write func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		write()
	}
}

func (s *fakeSource) started() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.starts
}

func (s *fakeSource) isRunning() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running
}

// fakeUploader ships nothing; it counts pokes and reports Pending.
type fakeUploader struct {
	pokes   atomic.Int32
	pending atomic.Int32
}

func (u *fakeUploader) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (u *fakeUploader) Poke()                         { u.pokes.Add(1) }
func (u *fakeUploader) Status() uploader.Status {
	return uploader.Status{Pending: int(u.pending.Load())}
}

// machine is a recorder on fakes, started by newMachine.
type machine struct {
	t    *testing.T
	cfg  config.Config
	clk  *clockwork.FakeClock
	wall *clockwork.FakeClock
	tl   *capture.Timeline
	ring *capture.Ring
	mic  *fakeSource
	cam  *fakeSource
	// lastBlock is the newest microphone block's time, for its Health.
	lastBlock atomic.Int64
	ind       *hardwaretest.Indicator
	btn       *hardwaretest.Button
	up        *fakeUploader
	rec       *Recorder
	pets      atomic.Int32
	ready     atomic.Int32
	// stalled stops the microphone's blocks: the ring stands still.
	stalled bool
	// ear, if set (before the recorder runs, with its Capture.Ear), hears
	// each block the microphone writes: voice's talk at talkDB (dBFS at
	// the syllables' peaks; -Inf is a quiet room).
	ear    *Ear
	voice  *listentest.Talker
	talkDB float64
	pcm    []int16
	next   time.Duration // the media time of the microphone's next block

	mu     sync.Mutex // guards events
	events []Event
	done   chan error
	stop   context.CancelFunc
}

// machineConfig is a device with 1 s of pre-roll and 2 s after a press.
func machineConfig(t *testing.T) config.Config {
	cfg := config.Default()
	cfg.Device.ID, cfg.Device.Store, cfg.Device.StateDir = "test-counter", "test-store", t.TempDir()
	cfg.Capture.PreSeconds, cfg.Capture.PostSeconds = 1, 2
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// checkAudit fails t unless the audit log's chain holds and it shows the
// indicator lit whenever capture ran, and the sources themselves found it
// lit each time they started. (As they stop it may be dark: that is the
// fault that stops them.)
func (m *machine) checkAudit() {
	m.t.Helper()
	entries, err := audit.ReadAll(filepath.Join(m.cfg.Device.StateDir, auditFile))
	if err == nil {
		err = audit.CheckInterlock(entries)
	}
	if err != nil {
		m.t.Error(err)
	}
	for name, s := range map[string]*fakeSource{"camera": m.cam, "microphone": m.mic} {
		s.mu.Lock()
		if slices.Contains(s.litAtStart, false) {
			m.t.Errorf("the %s started with the indicator dark: lit as it started %v", name, s.litAtStart)
		}
		s.mu.Unlock()
	}
}

// goroutines returns every goroutine's stack, to show where a recorder that
// stopped answering is stuck.
func goroutines() string {
	var b strings.Builder
	pprof.Lookup("goroutine").WriteTo(&b, 2)
	return b.String()
}

// newMachine builds a recorder on fakes for cfg, with the wall clock at
// wallAt; setup may change it before it runs. The microphone is its only
// source of media; the camera captures nothing.
func newMachine(t *testing.T, cfg config.Config, wallAt time.Time, setup func(*machine)) *machine {
	t.Helper()
	// The clock starts on a whole second, as its tickers then fire on whole
	// seconds, where advance syncs.
	m := &machine{t: t, cfg: cfg, clk: clockwork.NewFakeClockAt(time.Unix(1000, 0)), wall: clockwork.NewFakeClockAt(wallAt),
		ind: &hardwaretest.Indicator{}, up: &fakeUploader{}, done: make(chan error, 1)}
	m.tl = capture.NewTimeline(m.clk, m.wall)
	m.ring = capture.NewRing(8<<20, cfg.RingSpan(), 4096)
	m.mic, m.cam = &fakeSource{ind: m.ind}, &fakeSource{ind: m.ind}
	// The microphone's newest frame is the newest block advance wrote; the
	// camera, which writes nothing here, is always fresh.
	m.mic.lastFrame = func() time.Duration { return time.Duration(m.lastBlock.Load()) }
	m.cam.lastFrame = func() time.Duration { return m.tl.Now() }
	m.btn = &hardwaretest.Button{Clock: m.clk}
	format, err := (&capture.AudioSource{Config: cfg.Audio}).Format()
	if err != nil {
		t.Fatal(err)
	}
	m.rec = &Recorder{
		Config: cfg, Indicator: m.ind, Button: m.btn, Uploader: m.up,
		Capture: Capture{Timeline: m.tl, Ring: m.ring, Video: m.cam, Audio: m.mic, AudioFormat: &format},
		Clock:   m.clk, Wall: m.wall, Log: slog.New(slog.NewTextHandler(t.Output(), nil)), Version: "test",
		Events:      m.record,
		Healthy:     func() { m.pets.Add(1) },
		Ready:       func() { m.ready.Add(1) },
		ClockSynced: func() bool { return true },
	}
	if setup != nil {
		setup(m)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.stop = cancel
	go func() { m.done <- m.rec.Run(ctx) }()
	t.Cleanup(func() { m.shutdown() })
	m.sync()
	return m
}

func (m *machine) record(e Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, e)
}

// shutdown stops the recorder and returns what Run returned. Time passes
// while it stops, as it does for a real one: an incident it cuts short
// waits up to 2 s for media still on its way.
func (m *machine) shutdown() error {
	m.stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-m.done:
			m.done <- err
			return err
		default:
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("the recorder did not stop; its goroutines:\n%s", goroutines())
		}
		m.clk.Advance(10 * time.Millisecond)
		time.Sleep(time.Millisecond)
	}
}

// status asks the recorder for its status through the control socket. The
// recorder handles whatever its clock has made due before it answers.
func (m *machine) status() Status {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		st, err := GetStatus(ctx, m.cfg.Device.StateDir)
		switch {
		case err == nil:
			return st
		case errors.Is(err, ErrNotRunning) && ctx.Err() == nil:
			time.Sleep(time.Millisecond) // the recorder is starting: its socket is not there yet
		default:
			m.t.Fatalf("status: %v", err)
		}
	}
}

// sync waits until the recorder has handled everything due and the
// microphone has caught up with it: running while capturing, stopped
// otherwise.
func (m *machine) sync() Status {
	m.t.Helper()
	st := m.status()
	capturing := st.State == StateBuffering || st.State == StateIncident
	m.eventually("the microphone to follow the state "+string(st.State), func() bool { return m.mic.isRunning() == capturing })
	if capturing && m.next < m.tl.Now()-capture.AudioBlock {
		m.next = m.tl.Now() // capture began now
	}
	return st
}

// eventually waits for cond, which a goroutine of the recorder's makes
// true without the clock moving.
func (m *machine) eventually(what string, cond func() bool) {
	m.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			m.t.Fatalf("waiting for %s; goroutines:\n%s", what, goroutines())
		}
	}
}

// advance moves both clocks on by d in 20 ms steps, the microphone writing
// a block for each while it runs, and syncs at every whole second.
func (m *machine) advance(d time.Duration) {
	m.t.Helper()
	for range d / capture.AudioBlock {
		before := m.clk.Now()
		// The wall first: the recorder reads it when the clock's timers
		// fire.
		m.wall.Advance(capture.AudioBlock)
		m.clk.Advance(capture.AudioBlock)
		// Then the block captured at this moment arrives, as a sound
		// card's does: an incident cut short now finds it.
		if !m.stalled {
			m.mic.capture(func() {
				for ; m.next <= m.tl.Now(); m.next += capture.AudioBlock {
					if err := m.ring.Write(capture.Frame{Track: capture.Audio, Time: m.next, Key: true, Data: flacBlock}); err != nil {
						m.t.Error(err)
					}
					m.lastBlock.Store(int64(m.next))
					if m.ear != nil {
						m.pcm = m.voice.Next(m.pcm[:0], m.talkDB, capture.AudioBlock.Seconds())
						m.ear.Hear(m.next, m.pcm)
					}
				}
			})
		}
		if m.clk.Now().Truncate(time.Second) != before.Truncate(time.Second) {
			m.sync()
		}
	}
}

// setWall sets the wall clock, as NTP does, without moving any timer.
func (m *machine) setWall(t time.Time) { m.wall.Advance(t.Sub(m.wall.Now())) }

// trigger presses through the control socket, as `mamoru trigger` does.
func (m *machine) trigger() (TriggerResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return Trigger(ctx, m.cfg.Device.StateDir, "cli")
}

// saved moves the clock past until, the incident's end on the wall clock,
// and waits for incident id's final manifest to be written.
func (m *machine) saved(id string, until time.Time) outbox.Manifest {
	m.t.Helper()
	for !m.wall.Now().After(until.Add(capture.AudioBlock)) {
		m.advance(capture.AudioBlock)
	}
	var man *outbox.Manifest
	m.eventually("incident "+id+" saved", func() bool {
		for _, e := range m.eventsOf(EventIncident) {
			if e.Incident == id && e.Manifest != nil {
				man = e.Manifest
			}
		}
		return man != nil
	})
	return *man
}

func (m *machine) eventsOf(k Kind) []Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Event
	for _, e := range m.events {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

// flacBlock stands for an encoded block: the clip writer checks only that a
// block starts with a FLAC frame sync code.
var flacBlock = append([]byte{0xFF, 0xF8}, make([]byte, 62)...)

var monday = time.Date(2026, 11, 23, 14, 0, 0, 0, time.UTC)

// Presses raise an incident whose clip starts pre_seconds before the
// press; a press during it extends it by post_seconds; presses that keep
// coming stop extending it at max_incident_seconds from its start. All to
// the audio block, on the fake clock.
func TestMachinePressesExtendAndStopAtTheCap(t *testing.T) {
	cfg := machineConfig(t)
	cfg.Capture.MaxIncidentSeconds = 4
	m := newMachine(t, cfg, monday, nil)
	m.advance(2 * time.Second)
	first, err := m.trigger()
	if err != nil {
		t.Fatal(err)
	}
	if first.Extended || !first.Until.Equal(monday.Add(4*time.Second)) {
		t.Errorf("first press = %+v, want a new incident until %v", first, monday.Add(4*time.Second))
	}
	var replies []TriggerResult
	for range 2 {
		m.advance(time.Second)
		r, err := m.trigger()
		if err != nil {
			t.Fatal(err)
		}
		replies = append(replies, r)
	}
	if !replies[0].Extended || replies[0].Incident != first.Incident || !replies[0].Until.Equal(monday.Add(5*time.Second)) {
		t.Errorf("second press = %+v, want it to extend %s to %v", replies[0], first.Incident, monday.Add(5*time.Second))
	}
	// Uncapped, the third would end at 6 s; the cap is the clip's start
	// (1 s) plus 4 s.
	if !replies[1].Extended || !replies[1].Until.Equal(replies[0].Until) {
		t.Errorf("third press = %+v, want the end held at the cap %v", replies[1], replies[0].Until)
	}
	if st := m.sync(); st.State != StateIncident {
		t.Errorf("state %s during the incident", st.State)
	}
	man := m.saved(first.Incident, replies[1].Until)
	if len(man.Presses) != 3 || man.State != outbox.StateComplete || !man.ClipStart.Equal(monday.Add(time.Second)) {
		t.Errorf("manifest: %d presses, state %s, start %v; want 3, complete, %v", len(man.Presses), man.State, man.ClipStart, monday.Add(time.Second))
	}
	// The final manifest names its place in the bucket, which the
	// signature then binds, in the device's zone.
	if want := outbox.ObjectKey(man, m.cfg.Location()); man.Version != outbox.ManifestVersion || man.Object != want || man.CheckObject() != nil {
		t.Errorf("manifest version %d, object %q; want %d, %q", man.Version, man.Object, outbox.ManifestVersion, want)
	}
	if man.DurationSeconds != 4 {
		t.Errorf("clip lasts %v s, want the cap of 4 s", man.DurationSeconds)
	}
	if n := m.up.pokes.Load(); n != 1 {
		t.Errorf("the uploader was poked %d times, want once for the saved clip", n)
	}
	if st := m.sync(); st.State != StateBuffering {
		t.Errorf("state %s after the incident, want buffering", st.State)
	}
	if got := m.ind.Patterns(); slices.Index(got, hardware.Ack) < 0 {
		t.Errorf("patterns %v, want the press acknowledged", got)
	}
	m.shutdown()
	m.checkAudit()
}

// The recording hours open and close capture on the wall clock, whose
// jumps (NTP) take effect within a second; outside them a press is refused
// with ErrOutsideHours, and a clock not yet set keeps capture off.
func TestMachineRecordingHours(t *testing.T) {
	cfg := machineConfig(t)
	cfg.Policy.RecordingHours = []string{"daily 09:00-21:00"}
	tokyo := cfg.Location()
	m := newMachine(t, cfg, time.Date(2026, 11, 23, 20, 59, 0, 0, tokyo), nil)
	st := m.sync()
	if st.State != StateBuffering || st.Hours != "open until 21:00" || !st.ClockSynced {
		t.Errorf("within the hours: state %s, hours %q, clock synced %v", st.State, st.Hours, st.ClockSynced)
	}
	m.advance(59 * time.Second)
	if st := m.sync(); st.State != StateBuffering {
		t.Fatalf("state %s at 20:59:59, want buffering", st.State)
	}
	// 21:00: the timer aimed at it fires; capture stops, the ring is wiped,
	// the indicator goes off.
	m.advance(time.Second)
	st = m.sync()
	if st.State != StateIdle || st.Indicator || st.BufferedSeconds != 0 || m.mic.isRunning() || !strings.HasPrefix(st.Hours, "closed until") {
		t.Errorf("after hours: %+v; want nothing captured, the ring empty, the indicator off", st)
	}
	_, err := m.trigger()
	if !errors.Is(err, ErrOutsideHours) || !strings.Contains(err.Error(), "outside recording hours") {
		t.Errorf("a press after hours: %v, want ErrOutsideHours", err)
	}
	if got := m.ind.Patterns(); slices.Index(got, hardware.Closed) < 0 {
		t.Errorf("patterns %v, want the press answered with Closed", got)
	}

	// The clock jumps back to 1970 (a reboot before NTP): still closed, and
	// said why, within a second.
	m.setWall(time.Unix(0, 0))
	m.advance(time.Second)
	if st := m.sync(); !strings.Contains(st.Closed, "clock is not set") {
		t.Errorf("closed %q with the clock at 1970", st.Closed)
	}
	// NTP sets it to the next morning: capture comes back behind the
	// indicator within a second.
	m.setWall(time.Date(2026, 11, 24, 9, 0, 0, 0, tokyo))
	m.advance(time.Second)
	if st := m.sync(); st.State != StateBuffering || !st.Indicator {
		t.Errorf("opening time: state %s, indicator %v", st.State, st.Indicator)
	}

	m.shutdown()
	entries, err := audit.ReadAll(filepath.Join(cfg.Device.StateDir, auditFile))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		switch e.Event {
		case "hours":
			got = append(got, e.Fields["state"]+":"+e.Fields["why"])
		case "press":
			got = append(got, "press:"+e.Fields["why"])
		}
	}
	want := "closed:outside recording hours press:outside recording hours closed:the clock is not set, so the recording hours cannot be applied open:"
	if strings.Join(got, " ") != want {
		t.Errorf("audit log hours and presses:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	m.checkAudit()
}

// An indicator that stops reading back lit stops capture within a second
// (fault): presses are refused with ErrFault, the watchdog is not petted,
// and capture is retried every 5 s from the start, resuming once the
// indicator works.
func TestMachineIndicatorFault(t *testing.T) {
	m := newMachine(t, machineConfig(t), monday, nil)
	m.advance(2 * time.Second)
	m.ind.Fail(errors.New("LED driver unplugged"))
	m.advance(time.Second)
	st := m.sync()
	if st.State != StateFault || st.Indicator || !strings.Contains(st.Fault, "LED driver unplugged") || st.BufferedSeconds != 0 || m.mic.isRunning() {
		t.Errorf("status %+v; want a fault naming the driver, capture closed, the ring empty", st)
	}
	if _, err := m.trigger(); !errors.Is(err, ErrFault) {
		t.Errorf("a press during a fault: %v, want ErrFault", err)
	}
	pets := m.pets.Load()
	m.advance(4 * time.Second)
	if n := m.pets.Load(); n != pets {
		t.Errorf("the watchdog was petted %d times during a fault", n-pets)
	}
	if n := m.mic.started(); n != 1 {
		t.Errorf("the microphone was started %d times with a dead indicator", n)
	}
	if got := m.ind.Patterns(); slices.Index(got, hardware.Fault) < 0 {
		t.Errorf("patterns %v, want Fault shown", got)
	}

	// The indicator works again (at 7 s): the next retry, at 10 s, brings
	// capture back behind it, and not before.
	m.ind.Fail(nil)
	m.advance(2 * time.Second)
	if st := m.sync(); st.State != StateFault {
		t.Fatalf("state %s before the retry is due", st.State)
	}
	m.advance(time.Second)
	if st := m.sync(); st.State != StateBuffering || !st.Indicator {
		t.Errorf("after the retry: state %s, indicator %v; want capture resumed behind it", st.State, st.Indicator)
	}
	m.shutdown()
	m.checkAudit()
}

// systemd hears READY only once the indicator works and capture runs: a
// recorder that starts with a dead indicator never opens capture and says
// READY once it recovers.
func TestMachineReadyOnlyOnceTheIndicatorWorks(t *testing.T) {
	m := newMachine(t, machineConfig(t), monday, func(m *machine) { m.ind.Fail(errors.New("LED driver not yet there")) })
	if st := m.sync(); st.State != StateFault || !strings.Contains(st.Fault, "LED driver not yet there") {
		t.Fatalf("state %s (%s), want a fault", st.State, st.Fault)
	}
	m.advance(6 * time.Second)
	if n := m.ready.Load(); n != 0 {
		t.Fatalf("READY sent %d times in a fault", n)
	}
	if n := m.mic.started(); n != 0 {
		t.Errorf("the microphone opened %d times with a dead indicator", n)
	}
	if _, err := m.trigger(); !errors.Is(err, ErrFault) {
		t.Errorf("a press with a dead indicator: %v, want ErrFault", err)
	}
	m.ind.Fail(nil)
	m.advance(5 * time.Second)
	if st := m.sync(); st.State != StateBuffering {
		t.Fatalf("state %s after the indicator recovered", st.State)
	}
	if n := m.ready.Load(); n != 1 {
		t.Errorf("READY sent %d times after the indicator recovered, want once", n)
	}
}

// The watchdog is petted every second while the ring advances and stops
// exactly when it has stood still for 10 s, so systemd restarts the service.
func TestMachineWatchdogStopsWhenTheRingStandsStill(t *testing.T) {
	m := newMachine(t, machineConfig(t), monday, nil)
	m.advance(3 * time.Second)
	if n := m.pets.Load(); n != 3 {
		t.Errorf("petted %d times in 3 s of capture, want 3", n)
	}
	m.stalled = true
	m.advance(9 * time.Second)
	petted := m.pets.Load()
	m.advance(time.Second)
	if n := m.pets.Load(); n != petted {
		t.Errorf("petted at the 10th second of a still ring")
	}
	m.advance(5 * time.Second)
	if n := m.pets.Load(); n != petted {
		t.Errorf("petted %d more times with the ring still", n-petted)
	}
	if petted != 3+9 {
		t.Errorf("petted %d times before the 10 s ran out, want 12", petted)
	}
}

// A full spool refuses a press loudly (ErrSpoolFull), keeps the waiting
// clip and keeps the ring rolling.
func TestMachineSpoolFull(t *testing.T) {
	cfg := machineConfig(t)
	cfg.Storage.SpoolMaxMB = 16
	waiting := filepath.Join(cfg.Device.StateDir, "incidents", "20261123-100000-000001")
	os.MkdirAll(waiting, 0o750)
	clip := filepath.Join(waiting, outbox.ClipFile)
	if err := os.WriteFile(clip, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	os.Truncate(clip, 17<<20) // sparse: 17 MB by size, nothing on the card
	man := outbox.Manifest{Version: 1, Incident: filepath.Base(waiting), State: outbox.StateComplete,
		Clip: outbox.ClipDigest{File: outbox.ClipFile, Size: 17 << 20}}
	if err := outbox.WriteManifest(waiting, man); err != nil {
		t.Fatal(err)
	}
	m := newMachine(t, cfg, monday, nil)
	m.advance(2 * time.Second)
	st := m.sync()
	if !st.SpoolFull || st.SpoolBytes < 17<<20 || st.PendingUploads != 1 {
		t.Errorf("status spool_full %v, spool_bytes %d, pending %d; want full, one pending", st.SpoolFull, st.SpoolBytes, st.PendingUploads)
	}
	_, err := m.trigger()
	if !errors.Is(err, ErrSpoolFull) || !strings.Contains(err.Error(), "SPOOL FULL") || !strings.Contains(err.Error(), "storage.spool_max_mb = 16") {
		t.Fatalf("trigger with a full spool: %v; want ErrSpoolFull naming storage.spool_max_mb", err)
	}
	m.advance(time.Second)
	st = m.sync()
	if st.State != StateBuffering || len(st.Incidents) != 1 || st.Incidents[0].ID != man.Incident {
		t.Errorf("state %s, incidents %+v; want buffering with only the waiting one", st.State, st.Incidents)
	}
	if fi, err := os.Stat(clip); err != nil || fi.Size() != 17<<20 {
		t.Errorf("the waiting clip changed: %v", err)
	}
	m.shutdown()
	entries, _ := audit.ReadAll(filepath.Join(cfg.Device.StateDir, auditFile))
	refused, full := false, 0
	for _, e := range entries {
		refused = refused || e.Event == "press" && e.Fields["reason"] == "spool full"
		if e.Event == string(EventSpool) && e.Fields["state"] == "full" {
			full++
		}
	}
	if !refused {
		t.Error("the audit log does not record the refused press")
	}
	if full != 1 {
		t.Errorf("the audit log says the spool is full %d times, want once (an alert goes with it)", full)
	}
}

// An incident directory recovery cannot make sense of is set aside and
// kept: status lists it, with its size, in this run and after a restart
// (read from the card, not remembered); it counts in the spool, and a press
// refused for a full spool says how much of it is set aside and what to do.
func TestMachineSetAsideSurvivesRestart(t *testing.T) {
	cfg := machineConfig(t)
	cfg.Storage.SpoolMaxMB = 16
	broken := filepath.Join(cfg.Device.StateDir, "incidents", "20261123-100000-000001")
	os.MkdirAll(broken, 0o750)
	clip := filepath.Join(broken, outbox.ClipFile) // no manifest: it makes no sense
	if err := os.WriteFile(clip, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	os.Truncate(clip, 17<<20) // sparse: 17 MB by size, nothing on the card
	aside := filepath.Join(cfg.Device.StateDir, "incidents", setAsideDir, filepath.Base(broken))

	check := func(run string, st Status) {
		t.Helper()
		if len(st.SetAside) != 1 || st.SetAside[0] != aside || st.SetAsideBytes != 17<<20 {
			t.Errorf("%s: status set_aside %q, %d bytes; want [%s], %d bytes", run, st.SetAside, st.SetAsideBytes, aside, 17<<20)
		}
		if !st.SpoolFull || st.SpoolBytes < 17<<20 || st.PendingUploads != 0 {
			t.Errorf("%s: status spool_full %v, spool_bytes %d, pending %d; want the set-aside bytes counted (full), nothing pending", run, st.SpoolFull, st.SpoolBytes, st.PendingUploads)
		}
		if fi, err := os.Stat(filepath.Join(aside, outbox.ClipFile)); err != nil || fi.Size() != 17<<20 {
			t.Errorf("%s: the set-aside clip is not kept as it was: %v", run, err)
		}
	}
	m := newMachine(t, cfg, monday, nil)
	m.advance(2 * time.Second)
	check("first run", m.sync())
	_, err := m.trigger()
	if !errors.Is(err, ErrSpoolFull) || !strings.Contains(err.Error(), "17 MB of them are 1 incident(s) set aside in "+filepath.Dir(aside)) {
		t.Errorf("trigger with the spool full of what is set aside: %v; want ErrSpoolFull naming the set-aside directory and its size", err)
	}
	if len(m.eventsOf(EventSetAside)) != 1 {
		t.Errorf("first run: %d set-aside events, want 1", len(m.eventsOf(EventSetAside)))
	}
	m.shutdown()

	m = newMachine(t, cfg, monday, nil)
	m.advance(2 * time.Second)
	check("after a restart", m.sync())
	if n := len(m.eventsOf(EventSetAside)); n != 0 {
		t.Errorf("after a restart: %d set-aside events, want none: nothing new was set aside", n)
	}
}

// What the button reports: a press raises an incident and is acknowledged;
// a long press marks it urgent and is acknowledged again; a button stuck
// down shows in status and the audit log until released. A clip waiting
// for upload shows Pending.
func TestMachineButton(t *testing.T) {
	m := newMachine(t, machineConfig(t), monday, nil)
	m.advance(2 * time.Second)
	ctx := context.Background()
	for _, k := range []hardware.PressKind{hardware.PressShort, hardware.PressLong, hardware.PressStuck} {
		if err := m.btn.Press(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	st := m.sync()
	if !st.ButtonStuck || len(st.Incidents) != 1 {
		t.Fatalf("stuck %v, incidents %+v; want stuck and one incident", st.ButtonStuck, st.Incidents)
	}
	acks := 0
	for _, p := range m.ind.Patterns() {
		if p == hardware.Ack {
			acks++
		}
	}
	if acks != 2 {
		t.Errorf("acknowledged %d times, want 2: the press and the long press", acks)
	}
	if err := m.btn.Press(ctx, hardware.PressReleased); err != nil {
		t.Fatal(err)
	}
	if st := m.sync(); st.ButtonStuck {
		t.Error("still stuck after the release")
	}
	man := m.saved(st.Incidents[0].ID, monday.Add(4*time.Second))
	if !man.Urgent || len(man.Presses) != 1 || man.Trigger != "button" {
		t.Errorf("manifest urgent %v, %d presses from %q; want urgent, one press from the button", man.Urgent, len(man.Presses), man.Trigger)
	}
	m.up.pending.Store(1)
	m.advance(time.Second)
	if got := m.ind.Patterns(); got[len(got)-1] != hardware.Pending {
		t.Errorf("patterns %v, want Pending last with a clip waiting", got)
	}
	m.shutdown()
	b, _ := os.ReadFile(filepath.Join(m.cfg.Device.StateDir, auditFile))
	for _, want := range []string{`"urgent"`, `"stuck"`, `"released"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("audit log lacks %s", want)
		}
	}
}

// A camera or microphone that does not stop when told to cannot be shown to
// have stopped: Run returns ErrCaptureStuck once StopTimeout has passed on
// the clock, with the indicator still on, and the audit log says so, never
// that the indicator went off.
func TestMachineCaptureThatWillNotStop(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	m := newMachine(t, machineConfig(t), monday, func(m *machine) {
		m.rec.StopTimeout = 3 * time.Second
		m.mic.stubborn = release
	})
	m.advance(time.Second)
	m.stop()
	// The recorder waits for the microphone on the clock: the hours timer,
	// the check ticker and the stop timer.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := m.clk.BlockUntilContext(ctx, 3); err != nil {
		t.Fatalf("the recorder never waited on its stop timer: %v", err)
	}
	select {
	case err := <-m.done:
		t.Fatalf("Run returned %v before the stop timeout", err)
	default:
	}
	m.clk.Advance(3 * time.Second)
	select {
	case err := <-m.done:
		if !errors.Is(err, ErrCaptureStuck) || !strings.Contains(err.Error(), "microphone") {
			t.Errorf("Run = %v, want ErrCaptureStuck naming the microphone", err)
		}
	case <-ctx.Done():
		t.Fatalf("Run did not return once the stop timeout passed; goroutines:\n%s", goroutines())
	}
	m.done <- nil
	if !m.ind.IsLit() {
		t.Error("the indicator went off while capture may still run")
	}
	m.checkAudit()
	entries, _ := audit.ReadAll(filepath.Join(m.cfg.Device.StateDir, auditFile))
	if last := entries[len(entries)-1]; last.Event != "capture" || last.Fields["state"] != "stuck" {
		t.Errorf("the audit log ends with %s %v, want capture stuck", last.Event, last.Fields)
	}
}

// The interlock alone: a dead indicator starts nothing; stopping closes
// every source before the indicator goes off.
func TestInterlock(t *testing.T) {
	ind := &hardwaretest.Indicator{}
	cam, mic := &fakeSource{ind: ind}, &fakeSource{ind: ind}
	var notes []string
	l := &Interlock{Indicator: ind, Sources: map[string]capture.Source{SourceCamera: cam, SourceMicrophone: mic}, Clock: clockwork.NewFakeClock(),
		Note: func(e Event) { notes = append(notes, string(e.Kind)+":"+strings.Join(e.attrs()[:2], "=")) }}

	ind.Fail(errors.New("no LED"))
	if err := l.Start(context.Background()); !errors.Is(err, hardware.ErrIndicatorFault) || l.Capturing() {
		t.Fatalf("Start with a dead indicator = %v, capturing %v", err, l.Capturing())
	}
	ind.Fail(nil)
	if err := l.Start(context.Background()); err != nil || !l.Capturing() {
		t.Fatalf("Start = %v, capturing %v", err, l.Capturing())
	}
	if err := l.Check(); err != nil {
		t.Errorf("Check with the indicator lit: %v", err)
	}
	if err := l.Stop("test"); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*fakeSource{"camera": cam, "microphone": mic} {
		if s.starts != 1 || !slices.Equal(s.litAtStart, []bool{true}) || !slices.Equal(s.litAtStop, []bool{true}) {
			t.Errorf("%s: started %d times, indicator lit as it started %v, as it stopped %v; want once, lit both times", name, s.starts, s.litAtStart, s.litAtStop)
		}
	}
	if ind.IsLit() || l.Capturing() {
		t.Error("the indicator is lit or capture runs after Stop")
	}
	want := []string{"indicator:on=true", "capture:state=started", "capture:state=stopped", "indicator:on=false"}
	if !slices.Equal(notes, want) {
		t.Errorf("notes %v, want %v", notes, want)
	}
}

// Until NTP has set the clock (a Pi has no battery clock), status and every
// manifest say the times may be off.
func TestMachineUnsyncedClockIsSaid(t *testing.T) {
	var synced atomic.Bool
	m := newMachine(t, machineConfig(t), monday, func(m *machine) { m.rec.ClockSynced = synced.Load })
	m.advance(2 * time.Second)
	if st := m.sync(); st.ClockSynced {
		t.Error("status says the clock is synced")
	}
	r, err := m.trigger()
	if err != nil {
		t.Fatal(err)
	}
	if man := m.saved(r.Incident, r.Until); man.ClockSynced {
		t.Error("manifest says clock_synced although NTP had not set the clock")
	}
	synced.Store(true)
	if st := m.sync(); !st.ClockSynced {
		t.Error("status says the clock is not synced after NTP set it")
	}
	// The audit log (and so the alerts) says so once, and when it changed.
	m.advance(2 * time.Second)
	m.shutdown()
	entries, err := audit.ReadAll(filepath.Join(m.cfg.Device.StateDir, auditFile))
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, e := range entries {
		if e.Event == string(EventClock) {
			states = append(states, e.Fields["state"])
		}
	}
	if !slices.Equal(states, []string{"unsynced", "synced"}) {
		t.Errorf("the audit log's clock entries %q; want unsynced, then synced", states)
	}
}

// A damaged counter file starts the count again; a press whose id is
// already taken in the outbox moves on to the next, and is recorded.
func TestMachineIncidentIDTakenMovesOn(t *testing.T) {
	cfg := machineConfig(t)
	os.WriteFile(filepath.Join(cfg.Device.StateDir, "incident-counter"), []byte("garbage\n"), 0o640)
	m := newMachine(t, cfg, monday, nil)
	m.advance(2 * time.Second)
	// Taken: the id the restarted count gives at the press's second.
	taken := m.wall.Now().In(cfg.Location()).Format("20060102-150405") + "-000001"
	if err := os.Mkdir(filepath.Join(cfg.Device.StateDir, "incidents", taken), 0o750); err != nil {
		t.Fatal(err)
	}
	r, err := m.trigger()
	if err != nil {
		t.Fatalf("a press whose id was taken: %v", err)
	}
	if want := strings.TrimSuffix(taken, "1") + "2"; r.Incident != want {
		t.Errorf("incident %s, want the next count, %s", r.Incident, want)
	}
}

// A second recorder on the same state directory refuses to start, and
// leaves the running one's audit log and indicator alone.
func TestMachineSecondRecorderRefused(t *testing.T) {
	m := newMachine(t, machineConfig(t), monday, nil)
	second := &Recorder{Config: m.cfg, Indicator: m.ind, Capture: m.rec.Capture, Clock: m.clk, Wall: m.wall, Log: m.rec.Log, Version: "test"}
	err := second.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "another recorder is running") {
		t.Fatalf("second Run = %v, want it refused", err)
	}
	if !m.ind.IsLit() {
		t.Error("the second recorder turned the first one's indicator off")
	}
	m.shutdown()
	if _, err := audit.Verify(filepath.Join(m.cfg.Device.StateDir, auditFile)); err != nil {
		t.Error(err)
	}
}

// deadPin is an LED output that never reads back as driven.
type deadPin struct{ *gpiotest.Pin }

func (deadPin) Read() gpio.Level { return gpio.Low }

// The real GPIO indicator on an LED pin that never reads back as driven:
// the recorder faults, never opens capture through the retries, never pets
// the watchdog or says READY, and refuses presses.
func TestMachineDeadGPIOIndicator(t *testing.T) {
	m := newMachine(t, machineConfig(t), monday, func(m *machine) {
		m.rec.Indicator = &hardware.GPIOIndicator{LED: hardware.Output{Pin: deadPin{&gpiotest.Pin{N: "GPIO17"}}}, Clock: m.clk}
	})
	st := m.sync()
	if st.State != StateFault || !strings.Contains(st.Fault, "reads back") || st.Indicator {
		t.Errorf("status %+v; want a fault naming the read-back, indicator off", st)
	}
	m.advance(11 * time.Second) // two retries
	if n := m.mic.started() + m.cam.started(); n != 0 {
		t.Errorf("capture opened %d times with a dead indicator", n)
	}
	if n := m.pets.Load(); n != 0 {
		t.Errorf("the watchdog was petted %d times during a fault", n)
	}
	if n := m.ready.Load(); n != 0 {
		t.Errorf("systemd was told the service is ready %d times with a dead indicator", n)
	}
	if _, err := m.trigger(); !errors.Is(err, ErrFault) || !strings.Contains(err.Error(), "not recording") {
		t.Errorf("a press with a dead indicator: %v, want it refused", err)
	}
}

// An incident cut short by a fault or by closing time is saved whole up to
// that moment, before capture closes.
func TestMachineIncidentCutShort(t *testing.T) {
	for _, tc := range []struct {
		name string
		cut  func(m *machine)
		want State
	}{
		{"indicator fault", func(m *machine) { m.ind.Fail(errors.New("LED driver unplugged")) }, StateFault},
		{"closing time", func(m *machine) { m.setWall(m.wall.Now().Add(time.Hour)) }, StateIdle},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := machineConfig(t)
			cfg.Policy.RecordingHours = []string{"daily 09:00-23:30"}
			tokyo := cfg.Location()
			cfg.Capture.PostSeconds = 30
			m := newMachine(t, cfg, time.Date(2026, 11, 23, 23, 0, 0, 0, tokyo), nil)
			m.advance(2 * time.Second)
			r, err := m.trigger()
			if err != nil {
				t.Fatal(err)
			}
			m.advance(time.Second)
			tc.cut(m)
			m.advance(time.Second) // the check at 4 s cuts it
			st := m.sync()
			if st.State != tc.want || m.mic.isRunning() {
				t.Errorf("state %s, microphone running %v; want %s and capture closed", st.State, m.mic.isRunning(), tc.want)
			}
			man := m.saved(r.Incident, time.Time{})
			if man.State != outbox.StateComplete || man.DurationSeconds != 3 {
				t.Errorf("manifest state %s, %v s; want complete, 3 s (1 s before the press to the cut)", man.State, man.DurationSeconds)
			}
			m.shutdown()
			m.checkAudit()
			entries, _ := audit.ReadAll(filepath.Join(cfg.Device.StateDir, auditFile))
			var order []string
			for _, e := range entries {
				if e.Event == "incident" && e.Fields["state"] == outbox.StateComplete || e.Event == "capture" && e.Fields["state"] == "stopped" {
					order = append(order, e.Event)
				}
			}
			if len(order) < 2 || order[0] != "incident" {
				t.Errorf("audit order %v, want the incident complete before capture stopped", order)
			}
		})
	}
}

// The uploader's report that an incident is in the bucket goes into the
// audit log and the event stream.
func TestMachineShippedIsAudited(t *testing.T) {
	m := newMachine(t, machineConfig(t), monday, nil)
	man := outbox.Manifest{Incident: "20261123-230000-000001", Clip: outbox.ClipDigest{SHA256: "ab12"}}
	m.rec.Shipped(man, "test-store/test-counter/2026/11/23/20261123-230000-000001")
	if got := m.eventsOf(EventUploaded); len(got) != 1 || got[0].Incident != man.Incident || got[0].Manifest == nil {
		t.Errorf("uploaded events %+v, want one for %s", got, man.Incident)
	}
	m.shutdown()
	entries, _ := audit.ReadAll(filepath.Join(m.cfg.Device.StateDir, auditFile))
	found := false
	for _, e := range entries {
		found = found || e.Event == "uploaded" && e.Fields["id"] == man.Incident && e.Fields["sha256"] == "ab12" && strings.HasSuffix(e.Fields["object"], man.Incident)
	}
	if !found {
		t.Error("the audit log has no uploaded entry for the incident")
	}
}

// fullCard is an audit log file whose writes fail while full is set, as
// on a card with no room left.
type fullCard struct {
	*os.File
	full *atomic.Bool
}

func (f fullCard) Write(b []byte) (int, error) {
	if f.full.Load() {
		return 0, syscall.ENOSPC
	}
	return f.File.Write(b)
}

// An audit log that cannot be written is a fault: capture stops, the
// indicator goes off and presses are refused, until the log can be
// written again; the log then says so, and shows the indicator lit
// whenever capture ran.
func TestMachineAuditWriteFails(t *testing.T) {
	var full atomic.Bool
	m := newMachine(t, machineConfig(t), monday, func(m *machine) {
		m.rec.AuditFile = func(path string) (audit.File, error) {
			f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o640)
			return fullCard{f, &full}, err
		}
	})
	m.advance(2 * time.Second)
	if st := m.sync(); st.State != StateBuffering || !st.Indicator {
		t.Fatalf("state %s, indicator %v; want buffering", st.State, st.Indicator)
	}
	full.Store(true)
	// The next event that cannot be recorded: a press, which is refused
	// (its acknowledgement taken back) since it is not on record.
	if _, err := m.trigger(); !errors.Is(err, ErrFault) || !strings.Contains(err.Error(), "could not be written to the audit log") {
		t.Fatalf("a press that cannot be recorded: %v; want ErrFault saying so", err)
	}
	st := m.sync()
	if st.State != StateFault || st.Indicator || m.ind.IsLit() || m.mic.isRunning() || !strings.Contains(st.Fault, "audit log cannot be written") || !strings.Contains(st.Fault, "no space") {
		t.Errorf("status %+v, lit %v; want a fault naming the audit log and the full card, capture closed, the indicator off", st, m.ind.IsLit())
	}
	if _, err := m.trigger(); !errors.Is(err, ErrFault) {
		t.Errorf("a press while the audit log cannot be written: %v, want ErrFault", err)
	}
	m.advance(6 * time.Second)
	if st := m.sync(); st.State != StateFault || m.mic.started() != 1 || m.ind.IsLit() {
		t.Errorf("state %s, microphone started %d times, lit %v: capture came back with no audit log", st.State, m.mic.started(), m.ind.IsLit())
	}
	// Room again: the next retry resumes the log and then capture.
	full.Store(false)
	m.advance(5 * time.Second)
	if st := m.sync(); st.State != StateBuffering || !st.Indicator {
		t.Errorf("after room came back: state %s, indicator %v; want capture resumed", st.State, st.Indicator)
	}
	m.shutdown()
	m.checkAudit()
	entries, err := audit.ReadAll(filepath.Join(m.cfg.Device.StateDir, auditFile))
	if err != nil {
		t.Fatal(err)
	}
	resumed := slices.IndexFunc(entries, func(e audit.Entry) bool { return e.Event == "audit_resumed" })
	if resumed < 0 || !strings.Contains(entries[resumed].Fields["failed_with"], "no space") {
		t.Errorf("the log does not say it resumed after the full card: %+v", entries)
	}
	if _, err := audit.Verify(filepath.Join(m.cfg.Device.StateDir, auditFile)); err != nil {
		t.Error(err)
	}
}

// A log whose chain is broken is kept aside and the new chain says so,
// naming the file and why.
func TestMachineBrokenAuditLogSetAside(t *testing.T) {
	cfg := machineConfig(t)
	path := filepath.Join(cfg.Device.StateDir, auditFile)
	if err := os.WriteFile(path, []byte("not an entry\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	m := newMachine(t, cfg, monday, nil)
	m.shutdown()
	entries, err := audit.ReadAll(path)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(entries, func(e audit.Entry) bool { return e.Event == "audit_broken" })
	if i < 0 || entries[i].Fields["err"] == "" || !strings.HasPrefix(entries[i].Fields["kept"], auditFile+".broken-") {
		t.Fatalf("entries %+v; want audit_broken naming the kept file and the error", entries)
	}
	if b, err := os.ReadFile(filepath.Join(cfg.Device.StateDir, entries[i].Fields["kept"])); err != nil || string(b) != "not an entry\n" {
		t.Errorf("the broken log kept aside: %q, %v", b, err)
	}
}

// Every sealed manifest carries the audit log's head as it was then: the
// last entry recorded before the final manifest was written, which the
// log holds at that place afterwards.
func TestMachineManifestsCarryTheAuditHead(t *testing.T) {
	cfg := machineConfig(t)
	m := newMachine(t, cfg, monday, nil)
	m.advance(2 * time.Second)
	r, err := m.trigger()
	if err != nil {
		t.Fatal(err)
	}
	man := m.saved(r.Incident, r.Until)
	m.shutdown()
	path := filepath.Join(cfg.Device.StateDir, auditFile)
	entries, err := audit.ReadAll(path)
	if err != nil {
		t.Fatal(err)
	}
	if man.AuditHead == nil {
		t.Fatal("the sealed manifest has no audit head")
	}
	if err := audit.CheckHead(entries, *man.AuditHead); err != nil {
		t.Errorf("the manifest's head is not the log's: %v", err)
	}
	// Sealed after the press was recorded, before the incident's own
	// "complete" entry.
	h := entries[man.AuditHead.Seq]
	if next := entries[man.AuditHead.Seq+1]; next.Event != "incident" || next.Fields["state"] != outbox.StateComplete || h.Seq < 3 {
		t.Errorf("head at entry %d (%s), followed by %s %v; want the entry before the incident's completion", h.Seq, h.Event, next.Event, next.Fields)
	}
	onDisk, err := outbox.ReadManifest(filepath.Join(cfg.Device.StateDir, incidentsDir, r.Incident))
	if err != nil || onDisk.AuditHead == nil || *onDisk.AuditHead != *man.AuditHead {
		t.Errorf("manifest.json's head %+v, %v; want %+v", onDisk.AuditHead, err, man.AuditHead)
	}
}

// A card too full to keep the audit log's reserve whole refuses presses
// as a full spool, and the log still records them: its room is its own.
func TestMachineFullCardLeavesTheAuditLogRoom(t *testing.T) {
	m := newMachine(t, machineConfig(t), monday, nil)
	reserve := filepath.Join(m.cfg.Device.StateDir, auditReserveFile)
	if st, err := os.Stat(reserve); err != nil || st.Size() != AuditReserve {
		t.Fatalf("the audit log's reserve: %v; want %d bytes kept", err, AuditReserve)
	}
	m.advance(2 * time.Second)
	if st := m.sync(); st.SpoolFull {
		t.Fatal("spool full with the reserve whole")
	}
	// The reserve can no longer be kept (here: its name taken by a
	// directory, as a card with no room fails to write it), and the next
	// minute's refill finds it short.
	if err := os.Remove(reserve); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(reserve, 0o750); err != nil {
		t.Fatal(err)
	}
	m.advance(time.Minute)
	_, err := m.trigger()
	if !errors.Is(err, ErrSpoolFull) || !strings.Contains(err.Error(), "CARD FULL") || !strings.Contains(err.Error(), "kept for the audit log") {
		t.Fatalf("a press on a full card: %v; want ErrSpoolFull saying the card is full", err)
	}
	st := m.sync()
	if !st.SpoolFull || st.State != StateBuffering {
		t.Errorf("status spool_full %v, state %s; want full and still buffering (not a fault)", st.SpoolFull, st.State)
	}
	m.shutdown()
	entries, err := audit.ReadAll(filepath.Join(m.cfg.Device.StateDir, auditFile))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(entries, func(e audit.Entry) bool { return e.Event == "press" && e.Fields["reason"] == "spool full" }) {
		t.Error("the audit log does not record the press refused on a full card")
	}
}
