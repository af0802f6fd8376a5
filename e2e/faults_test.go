package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mamoru/capture/cliptest"
	"mamoru/device"
	"mamoru/outbox"
)

// A camera that keeps dying is restarted and shown in status, while the
// microphone goes on and a press still saves the audio.
func TestDeadCameraAudioGoesOn(t *testing.T) {
	cfg := testConfig(t)
	cfg.Capture.PreSeconds, cfg.Capture.PostSeconds = 1, 1
	cfg.Video.Source, cfg.Video.Command = "command", "echo 'no camera on CSI port' >&2; exit 1"
	start(t, cfg)
	st := waitFor(t, cfg, "the camera to be restarted", func(s device.Status) bool {
		return s.Sources["video"].Restarts >= 1 && s.Sources["audio"].Frames > 100
	})
	if v := st.Sources["video"]; !strings.Contains(v.LastError, "no camera on CSI port") {
		t.Errorf("video last error %q, want the camera's own words", v.LastError)
	}
	res, err := device.Trigger(context.Background(), cfg.Device.StateDir, "cli")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, cfg, "the clip", func(s device.Status) bool {
		return len(s.Incidents) == 1 && s.Incidents[0].State == outbox.StateComplete
	})
	info := cliptest.Probe(t, res.Clip)
	if _, ok := info.Stream("audio"); !ok || len(info.Streams) != 1 {
		t.Errorf("streams = %+v, want the audio alone", info.Streams)
	}
}

// A disk that fills up while an incident is written gives a clear error,
// and what was written stays playable; the recorder keeps buffering. When
// the disk is so full that not even the manifest can be written, the
// incident shows as failed and the clip is finalized once there is room.
func TestDiskFullDuringIncident(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test mounts a small tmpfs and needs root (CI runs as root)")
	}
	for _, tc := range []struct {
		name string
		full bool // fill the disk after the press, leaving no room for the manifest
	}{{"the clip fills the disk", false}, {"the disk is full", true}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			state := cfg.Device.StateDir
			// 1000 KiB for the clips, beside the audit log's reserve.
			size := fmt.Sprintf("size=%dk", device.AuditReserve>>10+1000)
			if out, err := exec.Command("mount", "-t", "tmpfs", "-o", size, "tmpfs", state).CombinedOutput(); err != nil {
				t.Fatalf("mount tmpfs: %v: %s", err, out)
			}
			t.Cleanup(func() { syscall.Unmount(state, syscall.MNT_DETACH) })
			// Room that is given back once the incident has failed.
			ballast := filepath.Join(state, "ballast")
			if err := os.WriteFile(ballast, make([]byte, 32<<10), 0o644); err != nil {
				t.Fatal(err)
			}
			// At 2 Mbit/s the pre-roll of at most 3 s fits, and the 5 s
			// clip does not.
			cfg.Video.Width, cfg.Video.Height, cfg.Video.BitrateKbps = 640, 480, 2000
			start(t, cfg)
			waitFor(t, cfg, "a pre-roll", func(s device.Status) bool { return s.Sources["video"].Frames > 60 })
			res, err := device.Trigger(context.Background(), state, "cli")
			if err != nil {
				t.Fatal(err)
			}
			if tc.full {
				fill(t, filepath.Join(state, "fill"))
				ballast = filepath.Join(state, "fill")
			}
			st := waitFor(t, cfg, "the incident to end", func(s device.Status) bool {
				return len(s.Incidents) == 1 && s.Incidents[0].State != outbox.StateRecording
			})
			if !strings.Contains(st.IncidentError, "no space left on device") {
				t.Errorf("status incident_error = %q, want it to say the disk is full", st.IncidentError)
			}
			if got := st.Incidents[0].State; tc.full && got != device.IncidentFailed {
				t.Errorf("on a full disk the incident ended %s, want %s", got, device.IncidentFailed)
			}
			t.Logf("the incident ended %s", st.Incidents[0].State)
			if err := os.Remove(ballast); err != nil {
				t.Fatal(err)
			}
			waitFor(t, cfg, "the partial clip to be finalized", func(s device.Status) bool {
				return len(s.Incidents) == 1 && s.Incidents[0].State == outbox.StateRecovered
			})
			m, err := outbox.ReadManifest(filepath.Dir(res.Clip))
			if err != nil {
				t.Fatal(err)
			}
			if m.State != outbox.StateRecovered || m.DurationSeconds <= 0 {
				t.Errorf("manifest state %q duration %.2f, want recovered with what was written", m.State, m.DurationSeconds)
			}
			if out := cliptest.DecodeErrors(t, res.Clip); out != "" {
				t.Errorf("the partial clip does not decode cleanly: %s", out)
			}
			if got := cliptest.Probe(t, res.Clip).Duration; got < m.DurationSeconds-0.1 {
				t.Errorf("ffprobe duration %.2f, manifest says %.2f", got, m.DurationSeconds)
			}
			waitFor(t, cfg, "buffering to go on", func(s device.Status) bool { return s.State == device.StateBuffering && s.Indicator })
		})
	}
}

// fill writes path until the disk is full, then for half a second more
// takes whatever room is freed, as another writer on a full disk would.
func fill(t *testing.T, path string) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	block := make([]byte, 1024)
	for {
		if _, err := f.Write(block); err != nil {
			break
		}
	}
	done := make(chan struct{})
	t.Cleanup(func() { <-done })
	go func() {
		defer close(done)
		defer f.Close()
		for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); {
			f.Write(block)
			time.Sleep(time.Millisecond)
		}
	}()
}
