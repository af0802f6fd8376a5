package device

import (
	"context"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"mamoru/alert"
	"mamoru/audit"
	"mamoru/capture"
	"mamoru/clock"
	"mamoru/config"
	"mamoru/listen"
	"mamoru/listen/listentest"
)

// Listening on the fakes: the microphone's blocks carry synthetic talk
// (listentest.Talker, not a recording) that the ear hears as the audio
// source's PCM would hand it over.

// withEar gives the machine an ear built as NewCapture builds it, in a
// quiet room.
func withEar(m *machine) {
	ear, err := NewEar(m.cfg, m.tl, m.rec.Log)
	if err != nil {
		m.t.Fatal(err)
	}
	m.ear, m.voice, m.talkDB = ear, listentest.NewTalker(m.cfg.Audio.SampleRate, 1), math.Inf(-1)
	m.rec.Capture.Ear = ear
}

func listenConfig(t *testing.T, enabled bool, action string) config.Config {
	cfg := machineConfig(t)
	cfg.Listen.Enabled, cfg.Listen.Action = enabled, action
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func (m *machine) listen(watch time.Duration) ListenStatus {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ls, err := Listen(ctx, m.cfg.Device.StateDir, watch)
	if err != nil {
		m.t.Fatal(err)
	}
	return ls
}

// learn talks calmly until the ear has learned the counter's level.
func (m *machine) learn() ListenStatus {
	m.t.Helper()
	m.talkDB = -30
	m.advance(100 * time.Second)
	ls := m.listen(0)
	if !ls.Learned || ls.BaselineLUFS < -50 || ls.BaselineLUFS > -25 {
		m.t.Fatalf("after 100 s of calm talk at -30 dBFS: baseline %.1f LUFS, learned %v", ls.BaselineLUFS, ls.Learned)
	}
	return ls
}

// shout raises the voice 18 dB until the recorder has heard a raised
// voice, and returns how long that took; it fails after 5 s.
func (m *machine) shout() time.Duration {
	m.t.Helper()
	m.talkDB = -12
	from := m.wall.Now()
	for m.wall.Now().Sub(from) < 5*time.Second {
		m.advance(100 * time.Millisecond)
		if len(m.listen(maxWatch).Sounds) > 0 {
			return m.wall.Now().Sub(from)
		}
	}
	m.t.Fatal("no raised voice heard within 5 s of a shout 18 dB over the calm talk")
	return 0
}

// sound is the first EventSound.
func (m *machine) sound() Event {
	m.t.Helper()
	ev := m.eventsOf(EventSound)
	if len(ev) == 0 {
		m.t.Fatal("no sound event")
	}
	return ev[0]
}

// With action "incident", a voice raised 18 dB over the learned level is
// heard within 3 s and raises an incident as a press would, with trigger
// source "sound", never urgent, its manifest saying why; the audit log
// keeps the detection's figures, confirmed and ended; the baseline is on
// the card at shutdown and a new ear starts from it.
func TestListenRaisesAnIncident(t *testing.T) {
	cfg := listenConfig(t, true, config.ListenIncident)
	m := newMachine(t, cfg, monday, withEar)
	base := m.learn()
	if len(m.eventsOf(EventSound)) > 0 || len(m.eventsOf(EventPress)) > 0 {
		t.Fatalf("calm talk was taken for a raised voice: %+v", m.eventsOf(EventSound))
	}
	took := m.shout()
	ev := m.sound()
	if took > 3*time.Second || ev.Sound.Ended || ev.Action != config.ListenIncident || ev.Sound.AboveDB < cfg.Listen.RaiseDB {
		t.Errorf("raised voice %+v (action %q) reported %v after the shout began; want confirmed within 3 s, %g dB or more over",
			ev.Sound, ev.Action, took, cfg.Listen.RaiseDB)
	}
	presses := m.eventsOf(EventPress)
	if len(presses) != 1 || presses[0].Source != config.SoundSource || presses[0].Result != PressIncident {
		t.Fatalf("presses %+v, want one by %q raising an incident", presses, config.SoundSource)
	}
	id := presses[0].Incident
	m.talkDB = -30
	m.advance(5 * time.Second)
	sounds := m.eventsOf(EventSound)
	if len(sounds) != 2 || !sounds[1].Sound.Ended || sounds[1].Sound.Duration < sounds[0].Sound.Duration {
		t.Errorf("sound events %d, want the confirmation and then the end", len(sounds))
	}
	man := m.saved(id, m.wall.Now().Add(time.Duration(cfg.Capture.PostSeconds)*time.Second))
	p := man.Presses[0]
	if man.Trigger != config.SoundSource || man.Urgent || p.Sound == nil || p.Sound.AboveDB < cfg.Listen.RaiseDB ||
		p.Sound.RaiseDB != cfg.Listen.RaiseDB || !p.Sound.Learned || math.Abs(p.Sound.BaselineLUFS-base.BaselineLUFS) > 1 {
		t.Errorf("manifest trigger %q urgent %v press %+v sound %+v; want why: the raised voice over baseline %.1f",
			man.Trigger, man.Urgent, p, p.Sound, base.BaselineLUFS)
	}

	if err := m.shutdown(); err != nil {
		t.Fatal(err)
	}
	m.checkAudit()
	entries, err := audit.ReadAll(filepath.Join(cfg.Device.StateDir, auditFile))
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, e := range entries {
		if e.Event == string(EventSound) {
			states = append(states, e.Fields["state"])
			if e.Fields["above_db"] == "" || e.Fields["peak_lufs"] == "" || e.Fields["baseline_lufs"] == "" || e.Fields["baseline"] != "learned" ||
				e.Fields["seconds"] == "" || e.Fields["action"] != config.ListenIncident {
				t.Errorf("audit entry %+v lacks the detection's figures", e)
			}
		}
	}
	if !slices.Equal(states, []string{"confirmed", "ended"}) {
		t.Errorf("audit log's sound entries %v, want confirmed, ended", states)
	}

	data, err := os.ReadFile(filepath.Join(cfg.Device.StateDir, baselineFile))
	if err != nil {
		t.Fatalf("the baseline was not saved: %v", err)
	}
	saved, err := listen.ParseBaseline(data)
	if err != nil {
		t.Fatal(err)
	}
	if lufs, learned := saved.At(monday.Hour(), -70); !learned || math.Abs(lufs-base.BaselineLUFS) > 1 {
		t.Errorf("saved baseline at %d h: %.1f LUFS learned %v, want %.1f", monday.Hour(), lufs, learned, base.BaselineLUFS)
	}
	again, err := NewEar(cfg, m.tl, m.rec.Log)
	if err != nil {
		t.Fatal(err)
	}
	if b := again.detector.Load().Baseline(); b != saved {
		t.Error("a new ear did not start from the saved baseline")
	}
}

// With action "alert", a raised voice is recorded in the audit log and
// alerted as sound.raised with its figures, and nothing new is recorded.
func TestListenAlertsOnly(t *testing.T) {
	cfg := listenConfig(t, true, config.ListenAlert)
	m := newMachine(t, cfg, monday, withEar)
	m.learn()
	m.shout()
	ev := m.sound()
	m.talkDB = -30
	m.advance(5 * time.Second)
	if p := m.eventsOf(EventPress); len(p) != 0 {
		t.Errorf("action alert pressed: %+v", p)
	}
	if st := m.sync(); len(st.Incidents) != 0 {
		t.Errorf("action alert recorded incidents %+v", st.Incidents)
	}
	a := &Alerts{Origin: alert.Origin{Store: cfg.Device.Store, Device: cfg.Device.ID}}
	got := a.of(ev)
	if len(got) != 1 || got[0].Name != alert.SoundRaised || got[0].Details["action"] != config.ListenAlert || got[0].Details["above_db"] == "" {
		t.Fatalf("alerts of %+v: %+v, want one sound.raised with its figures", ev.Sound, got)
	}
	if ended := m.eventsOf(EventSound); len(ended) != 2 || len(a.of(ended[1])) != 0 {
		t.Errorf("the raised voice's end is alerted too, or missing: %d sound events", len(ended))
	}
	msg := alert.Render(got[0], alert.English)
	if want := "Raised voice heard at test-counter"; msg.Title[:len(want)] != want {
		t.Errorf("alert title %q, want it to start %q", msg.Title, want)
	}
}

// With listening off, the ear measures only while someone watches the
// levels (`mamoru listen`), and what it hears then is shown and not acted
// on: no audit entry, no alert, no incident.
func TestListenOffMeasuresOnlyWhenWatched(t *testing.T) {
	cfg := listenConfig(t, false, config.ListenIncident)
	m := newMachine(t, cfg, monday, withEar)
	m.talkDB = -30
	m.advance(5 * time.Second)
	if ls := m.listen(0); ls.Enabled || !ls.Time.IsZero() || ls.ShortTerm != nil {
		t.Fatalf("listening off and unwatched measured %+v", ls)
	}
	for range 10 {
		m.listen(maxWatch)
		m.advance(10 * time.Second)
	}
	ls := m.listen(maxWatch)
	if ls.Time.IsZero() || ls.ShortTerm == nil || ls.Voiced == nil || !ls.Learned || !ls.Capturing {
		t.Fatalf("watched, the levels were not measured: %+v", ls)
	}
	m.shout() // fails unless heard
	if got := m.listen(maxWatch).Sounds; len(got) != 1 || got[0].Acted {
		t.Errorf("sounds %+v, want one heard and not acted on", got)
	}
	if len(m.eventsOf(EventPress)) != 0 {
		t.Error("listening off pressed")
	}
}

// A saved baseline that cannot be read is set aside, named in the log,
// and learning starts again: it never stops the recorder.
func TestListenBadBaselineIsSetAside(t *testing.T) {
	cfg := listenConfig(t, true, config.ListenAlert)
	path := filepath.Join(cfg.Device.StateDir, baselineFile)
	if err := os.WriteFile(path, []byte(`{"version":1,"all":{"lufs":-41.5,"steps":5000},"hours":[]}`), 0o640); err != nil {
		t.Fatal(err)
	}
	var logged strings.Builder
	ear, err := NewEar(cfg, capture.NewTimeline(clock.Real(), clock.Real()), slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if b := ear.detector.Load().Baseline(); b != (listen.Baseline{}) {
		t.Error("the ear kept something of a baseline it could not read")
	}
	if _, err := os.Stat(path + ".bad"); err != nil || !strings.Contains(logged.String(), path) || !strings.Contains(logged.String(), "0 hours, want 24") {
		t.Errorf("the bad baseline was not set aside (%v) or the log does not name it and why:\n%s", err, logged.String())
	}
}
