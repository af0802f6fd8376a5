package e2e

import (
	"context"
	"math"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"mamoru/capture/cliptest"
	"mamoru/capture/pulsetest"
	"mamoru/device"
	"mamoru/outbox"
)

// correlate finds where ref best matches inside sig, searching lags from
// lo to hi samples, and returns the lag and the normalised correlation.
func correlate(sig, ref []float64, lo, hi int) (best int, peak float64) {
	var refEnergy float64
	for _, v := range ref {
		refEnergy += v * v
	}
	peak = -1
	for lag := max(lo, 0); lag <= hi && lag+len(ref) <= len(sig); lag++ {
		var dot, energy float64
		for i, v := range ref {
			x := sig[lag+i]
			dot += x * v
			energy += x * x
		}
		if c := dot / math.Sqrt(energy*refEnergy+1e-9); c > peak {
			best, peak = lag, c
		}
	}
	return best, peak
}

// decimate keeps every n-th sample, for a coarse search.
func decimate(s []float64, n int) []float64 {
	out := make([]float64, 0, len(s)/n)
	for i := 0; i < len(s); i += n {
		out = append(out, s[i])
	}
	return out
}

// TestWordsAreInTheClip plays a spoken sentence into a real PulseAudio
// sink inside the pre-roll, presses, and finds the sentence in the clip's
// audio at the moment it was played: miniaudio's real capture path, the
// shared clock and the FLAC track together.
func TestWordsAreInTheClip(t *testing.T) {
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		t.Fatal("espeak-ng is missing (apt-get install espeak-ng)")
	}
	pulsetest.Start(t)
	dir := t.TempDir()
	speech := filepath.Join(dir, "speech.wav")
	if out, err := exec.Command("espeak-ng", "-w", speech, "Please stop shouting at our staff. This conversation is being recorded.").CombinedOutput(); err != nil {
		t.Fatalf("espeak-ng: %v\n%s", err, out)
	}
	ref := cliptest.PCM(t, speech)

	cfg := testConfig(t)
	cfg.Audio.Backend, cfg.Audio.Device = "pulse", pulsetest.Monitor
	cfg.Capture.PreSeconds, cfg.Capture.PostSeconds = 8, 1
	start(t, cfg)
	waitFor(t, cfg, "audio from PulseAudio", func(s device.Status) bool { return s.Sources["audio"].Frames > 100 && s.BufferedSeconds > 1 })

	played := time.Now()
	pulsetest.Play(t, speech)
	res, err := device.Trigger(context.Background(), cfg.Device.StateDir, "cli")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, cfg, "the clip", func(s device.Status) bool {
		return len(s.Incidents) == 1 && s.Incidents[0].State == outbox.StateComplete
	})
	m, err := outbox.ReadManifest(filepath.Dir(res.Clip))
	if err != nil {
		t.Fatal(err)
	}
	var audioStart float64
	for _, tr := range m.Tracks {
		if tr.Kind == "audio" {
			audioStart = tr.StartSeconds
		}
	}
	// Where the sentence should be in the decoded audio track.
	want := played.Sub(m.ClipStart).Seconds() - audioStart
	if want < 0 {
		t.Fatalf("the sentence was played %.3f s before the audio track starts: the pre-roll missed it", -want)
	}
	sig := cliptest.PCM(t, res.Clip)
	wantLag := int(want * 48000)
	// Coarse at 6 kHz over ±250 ms, then fine at 48 kHz around the best.
	const step = 8
	coarse, _ := correlate(decimate(sig, step), decimate(ref, step), (wantLag-48000/4)/step, (wantLag+48000/4)/step)
	lag, peak := correlate(sig, ref, coarse*step-2*step, coarse*step+2*step)
	off := float64(lag-wantLag) / 48
	t.Logf("sentence of %.2f s found at %.3f s in the audio track, %+.1f ms from where it was played; normalised correlation %.3f",
		float64(len(ref))/48000, float64(lag)/48000, off, peak)
	if peak < 0.9 {
		t.Errorf("normalised correlation %.3f, want at least 0.9: the words are not in the clip as spoken", peak)
	}
	if math.Abs(off) > 20 {
		t.Errorf("the sentence is %+.1f ms from where it was played, want within ±20 ms", off)
	}
}
