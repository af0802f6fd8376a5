package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mamoru/alert"
	"mamoru/audit"
	"mamoru/capture/cliptest"
	"mamoru/capture/pulsetest"
	"mamoru/config"
	"mamoru/device"
	"mamoru/listen"
	"mamoru/outbox"
)

// speak writes espeak-ng's sentences, resampled to 48 kHz mono with their
// peaks at peakDB dBFS, to dir/name, and returns the path.
func speak(t *testing.T, dir, name string, peakDB float64, sentences string) string {
	t.Helper()
	raw := filepath.Join(dir, name+".espeak.wav")
	if out, err := exec.Command("espeak-ng", "-v", "en-us", "-w", raw, sentences).CombinedOutput(); err != nil {
		t.Fatalf("espeak-ng: %v\n%s", err, out)
	}
	path := filepath.Join(dir, name)
	if out, err := exec.Command("sox", raw, "-r", "48000", "-c", "1", "-b", "16", path, "norm", fmt.Sprint(peakDB)).CombinedOutput(); err != nil {
		t.Fatalf("sox: %v\n%s", err, out)
	}
	return path
}

// int16s is cliptest.PCM's samples as the recorder hears them.
func int16s(pcm []float64) []int16 {
	out := make([]int16, len(pcm))
	for i, v := range pcm {
		out[i] = int16(v)
	}
	return out
}

// loudOnset is where the loud speech begins in pcm (48 kHz): the first
// 50 ms, in 10 ms steps, louder than -27 dBFS RMS, which the calm speech
// (peaks at -26 dBFS) never is.
func loudOnset(t *testing.T, pcm []float64) time.Duration {
	t.Helper()
	const window, hop = 2400, 480
	limit := math.Pow(10, -27.0/20) * 32768
	for i := 0; i+window <= len(pcm); i += hop {
		var sum float64
		for _, v := range pcm[i : i+window] {
			sum += v * v
		}
		if math.Sqrt(sum/window) > limit {
			return time.Duration(i) * time.Second / 48000
		}
	}
	t.Fatal("no loud speech in the sound")
	return 0
}

// feedBlocks runs pcm through d in 20 ms blocks from at, and returns the
// detections and the time after the last block.
func feedBlocks(t *testing.T, d *listen.Detector, at time.Time, pcm []int16) ([]listen.Detection, time.Time) {
	t.Helper()
	var found []listen.Detection
	const block = 960
	for i := 0; i+block <= len(pcm); i += block {
		var err error
		if found, err = d.Feed(found, at, pcm[i:i+block]); err != nil {
			t.Fatal(err)
		}
		at = at.Add(20 * time.Millisecond)
	}
	return found, at
}

// The real recorder listens on a real PulseAudio sink: espeak-ng's speech
// at a calm level, then 18 dB louder, is heard as a raised voice within
// 3 s of the loud passage, which raises an incident (trigger source
// "sound", the manifest saying why) and reaches a signed webhook as
// sound.raised and incident.started; the audit log has the detection's
// figures; `mamoru listen` shows the levels and the raised voice from the
// recorder's own measurements; and the detector run offline on the same
// sound, from the same baseline, finds it at the same moment. The
// baseline is learned offline from the calm speech and put on the card,
// as a device that has heard the counter for a day has it.
func TestListenLive(t *testing.T) {
	for _, tool := range []string{"espeak-ng", "sox"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing (apt-get install %s)", tool, tool)
		}
	}
	pulsetest.Start(t)
	dir, stateDir := t.TempDir(), t.TempDir()
	const sentences = "Good afternoon. I would like to return this jacket, please. I bought it here last week and it does not fit."
	calm := speak(t, dir, "calm.wav", -26, sentences)
	loud := speak(t, dir, "loud.wav", -8, sentences)
	timeline := filepath.Join(dir, "timeline.wav")
	if out, err := exec.Command("sox", calm, loud, calm, timeline).CombinedOutput(); err != nil {
		t.Fatalf("sox: %v\n%s", err, out)
	}
	calmPCM := int16s(cliptest.PCM(t, calm))
	loudFrom := time.Duration(len(calmPCM)) * time.Second / 48000
	loudFor := time.Duration(len(cliptest.PCM(t, loud))) * time.Second / 48000

	// The baseline: 3 minutes of the calm speech, offline, in the device's
	// zone now.
	base := config.Default()
	zone := base.Location()
	teacher, err := listen.NewDetector(base.Listen.Detector(base.Audio))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().In(zone)
	for time.Until(at) < 180*time.Second {
		_, at = feedBlocks(t, teacher, at, calmPCM)
	}
	baseline := teacher.Baseline()
	usual, learned := baseline.At(time.Now().In(zone).Hour(), -70)
	if !learned {
		t.Fatalf("180 s of calm speech did not teach the baseline: %+v", teacher.Levels())
	}
	saved, _ := json.Marshal(baseline)
	if err := os.WriteFile(filepath.Join(stateDir, "listen-baseline.json"), saved, 0o640); err != nil {
		t.Fatal(err)
	}
	// Offline: the timeline through a detector from that baseline.
	offline, err := listen.NewDetector(base.Listen.Detector(base.Audio))
	if err != nil {
		t.Fatal(err)
	}
	offline.SetBaseline(baseline)
	t0 := time.Now().In(zone)
	timelinePCM := cliptest.PCM(t, timeline)
	found, _ := feedBlocks(t, offline, t0, int16s(timelinePCM))
	if len(found) == 0 {
		t.Fatalf("offline, the detector missed the loud passage (usual level %.1f LUFS)", usual)
	}
	// Offline, the passage begins where the loud sound does, found in the
	// samples as it is found in the clip below.
	offlineAfter := found[0].Start.Add(found[0].Duration).Sub(t0) - loudOnset(t, timelinePCM)

	hook, got := receiver(t)
	secretFile := filepath.Join(t.TempDir(), "webhook.secret")
	if err := os.WriteFile(secretFile, []byte(webhookSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, t.TempDir(), "mamoru.toml", fmt.Sprintf(`[device]
id = "counter-1"
store = "shop-1"
state_dir = %q
[capture]
pre_seconds = 10
post_seconds = 3
[video]
source = "testsrc"
width = 320
height = 240
fps = 15
bitrate_kbps = 300
keyframe_interval = 15
[audio]
backend = "pulse"
device = %q
[hardware]
driver = "sim"
[listen]
enabled = true
action = "incident"
[[alerts.target]]
kind = "webhook"
label = "本部"
url = %q
secret_file = %q
events = ["sound.raised", "incident.started"]
`, stateDir, pulsetest.Monitor, hook.URL, secretFile))

	rec := exec.Command(os.Args[0], "-test.run=^TestRecorderChild$")
	rec.Env = append(os.Environ(), "MAMORU_CHILD_CONFIG="+cfg)
	var recLog syncBuffer
	rec.Stdout, rec.Stderr = &recLog, &recLog
	if err := rec.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		rec.Process.Signal(syscall.SIGTERM)
		rec.Wait()
		if t.Failed() {
			t.Logf("the recorder's log:\n%s", recLog.String())
		}
	}()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, out, _ := runCmd(t, "status", "--config", cfg, "--json")
		var st device.Status
		if json.Unmarshal([]byte(out), &st) == nil && st.Sources["audio"].Frames > 100 && st.BufferedSeconds > 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the recorder never captured from PulseAudio: %s", out)
		}
	}

	watched := make(chan string, 1)
	go func() {
		_, out, errOut := runCmd(t, "listen", "--config", cfg, "--minutes", fmt.Sprint((loudFrom + loudFor + 8*time.Second).Minutes()))
		watched <- out + errOut
	}()
	time.Sleep(time.Second)
	played := time.Now()
	pulsetest.Play(t, timeline)

	// The webhook: sound.raised, then the incident it raised.
	var raised, started *alert.Event
	for deadline := time.After(30 * time.Second); raised == nil || started == nil; {
		select {
		case r := <-got:
			if err := verifyStandardWebhook(webhookSecret, r.header, r.body); err != nil {
				t.Error(err)
			}
			var e alert.Event
			if err := json.Unmarshal(r.body, &e); err != nil {
				t.Fatal(err)
			}
			switch e.Name {
			case alert.SoundRaised:
				raised = &e
			case alert.IncidentStarted:
				started = &e
			}
		case <-deadline:
			t.Fatalf("the webhook had sound.raised %v and incident.started %v after 30 s", raised != nil, started != nil)
		}
	}
	if started.Source != config.SoundSource || started.Urgent || raised.Details["action"] != config.ListenIncident {
		t.Errorf("incident.started from %q urgent %v, sound.raised details %v", started.Source, started.Urgent, raised.Details)
	}

	out := <-watched
	defer func() {
		if t.Failed() {
			t.Logf("mamoru listen showed:\n%s", out)
		}
	}()
	for _, want := range []string{"listening is ON", "momentary", "RAISED VOICE", "alerted, incident raised", "ended after"} {
		if !strings.Contains(out, want) {
			t.Errorf("mamoru listen did not show %q:\n%s", want, out)
		}
	}

	// The incident's manifest says why; the audit log has the figures.
	id := started.Incident[strings.LastIndex(started.Incident, "/")+1:]
	var m outbox.Manifest
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if m, err = outbox.ReadManifest(filepath.Join(stateDir, "incidents", id)); err == nil && m.State != outbox.StateRecording {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("incident %s never finished: %v", id, err)
		}
	}
	s := m.Presses[0].Sound
	if m.Trigger != config.SoundSource || s == nil || s.AboveDB < 15 || !s.Learned {
		t.Fatalf("manifest trigger %q press %+v: want the raised voice's figures", m.Trigger, m.Presses[0])
	}
	// When, in the sound: the detector's own times are the microphone's
	// (the capture timeline's), so the machine's load does not move them;
	// the alert's time is when it went out.
	// Live, the passage begins where the loud sound does in the clip, and
	// the confirmation is the detector's own time: both on the capture
	// timeline, whatever paplay took to start or the machine's load.
	confirmed := s.Start.Add(time.Duration(s.Seconds * float64(time.Second)))
	began := m.ClipStart.Add(loudOnset(t, cliptest.PCM(t, filepath.Join(stateDir, "incidents", id, outbox.ClipFile))))
	liveAfter := confirmed.Sub(began)
	t.Logf("the loud passage was confirmed %.2f s after it began live (alerted %.2f s after it was played), %.2f s offline; %.1f dB over the usual level %.1f LUFS live, %.1f over %.1f offline",
		liveAfter.Seconds(), (raised.Time.Sub(played) - loudFrom).Seconds(), offlineAfter.Seconds(), s.AboveDB, s.BaselineLUFS, found[0].AboveDB, found[0].BaselineLUFS)
	if liveAfter > 3*time.Second || liveAfter < 0 {
		t.Errorf("the raised voice was confirmed %.2f s after the loud passage began, want within 3 s", liveAfter.Seconds())
	}
	// The detector steps every 100 ms: offline its steps fall where the
	// timeline's do, live anywhere against the sound.
	if d := (liveAfter - offlineAfter).Abs(); d > 300*time.Millisecond || math.Abs(s.AboveDB-found[0].AboveDB) > 1 {
		t.Errorf("live and offline disagree: confirmed %v apart, %.1f dB against %.1f dB over the usual level", d, s.AboveDB, found[0].AboveDB)
	}
	entries, err := audit.ReadAll(filepath.Join(stateDir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	var sounds []string
	for _, e := range entries {
		if e.Event == "sound" {
			sounds = append(sounds, e.Fields["state"]+" "+e.Fields["above_db"]+" dB")
		}
	}
	if len(sounds) != 2 {
		t.Errorf("audit log's sound entries %v, want the confirmation and the end", sounds)
	}
}
