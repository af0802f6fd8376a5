package device

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"mamoru/capture/cliptest"
	"mamoru/uploader"
)

// A camera that keeps dying is restarted and shown in status, while the
// microphone goes on and a press still saves the audio.
func TestDeadCameraAudioGoesOn(t *testing.T) {
	cfg := testConfig(t)
	cfg.Capture.PreSeconds, cfg.Capture.PostSeconds = 1, 1
	cfg.Video.Source, cfg.Video.Command = "command", "echo 'no camera on CSI port' >&2; exit 1"
	start(t, cfg)
	st := waitFor(t, cfg, "the camera to be restarted", func(s Status) bool {
		return s.Sources["video"].Restarts >= 1 && s.Sources["audio"].Frames > 100
	})
	if v := st.Sources["video"]; !strings.Contains(v.LastError, "no camera on CSI port") {
		t.Errorf("video last error %q, want the camera's own words", v.LastError)
	}
	res, err := Trigger(context.Background(), cfg.Device.StateDir, "cli")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, cfg, "the clip", func(s Status) bool {
		return len(s.Incidents) == 1 && s.Incidents[0].State == uploader.StateComplete
	})
	info := cliptest.Probe(t, res.Clip)
	if _, ok := info.Stream("audio"); !ok || len(info.Streams) != 1 {
		t.Errorf("streams = %+v, want the audio alone", info.Streams)
	}
}

// A disk that fills up while an incident is written gives a clear error,
// and what was written stays playable; the recorder keeps buffering.
func TestDiskFullDuringIncident(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test mounts a small tmpfs and needs root (CI runs as root)")
	}
	cfg := testConfig(t)
	state := cfg.Device.StateDir
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", state).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { syscall.Unmount(state, syscall.MNT_DETACH) })
	// 2 Mbit/s fills 600 kB within the 5 s clip.
	cfg.Video.Width, cfg.Video.Height, cfg.Video.BitrateKbps = 640, 480, 2000
	start(t, cfg)
	waitFor(t, cfg, "a pre-roll", func(s Status) bool { return s.Sources["video"].Frames > 60 })
	res, err := Trigger(context.Background(), state, "cli")
	if err != nil {
		t.Fatal(err)
	}
	st := waitFor(t, cfg, "the incident to end", func(s Status) bool {
		return len(s.Incidents) == 1 && s.Incidents[0].State != uploader.StateRecording
	})
	if !strings.Contains(st.IncidentError, "no space left on device") {
		t.Errorf("status incident_error = %q, want it to say the disk is full", st.IncidentError)
	}
	m, err := uploader.ReadManifest(filepath.Dir(res.Clip))
	if err != nil {
		t.Fatal(err)
	}
	if m.State != uploader.StateRecovered || m.DurationSeconds <= 0 {
		t.Errorf("manifest state %q duration %.2f, want recovered with what was written", m.State, m.DurationSeconds)
	}
	if out := cliptest.DecodeErrors(t, res.Clip); out != "" {
		t.Errorf("the partial clip does not decode cleanly: %s", out)
	}
	if got := cliptest.Probe(t, res.Clip).Duration; got < m.DurationSeconds-0.1 {
		t.Errorf("ffprobe duration %.2f, manifest says %.2f", got, m.DurationSeconds)
	}
	waitFor(t, cfg, "buffering to go on", func(s Status) bool { return s.State == StateBuffering && s.Indicator })
}

// A second recorder on the same state directory refuses to start, and
// leaves the running one's clip, audit log and indicator alone.
func TestSecondRecorderRefused(t *testing.T) {
	cfg := testConfig(t)
	s := start(t, cfg)
	waitFor(t, cfg, "buffering", func(s Status) bool { return s.Sources["video"].Frames > 30 })
	second := &Recorder{Config: cfg, Indicator: s.sim, Log: testLogger(t), Version: "test"}
	err := second.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "another recorder is running") {
		t.Fatalf("second Run = %v, want it refused", err)
	}
	if lit, _ := s.sim.Lit(); !lit {
		t.Error("the second recorder turned the first one's indicator off")
	}
	s.shutdown(t)
	if _, err := VerifyAudit(filepath.Join(cfg.Device.StateDir, auditFile)); err != nil {
		t.Error(err)
	}
}
