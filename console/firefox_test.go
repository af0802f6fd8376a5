//go:build linux

package console

import (
	"crypto/ed25519"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"mamoru/capture/cliptest"
	"mamoru/signing"
)

// recordedSeconds and recordedFrames are the length of the clip the
// browser test records; recordedTone is the peak of its tone, 12000 of
// 32768 (cliptest.Record).
const (
	recordedSeconds = 2
	recordedFrames  = 30 * recordedSeconds
	recordedTone    = 12000.0 / 32768
)

// judge says what is wrong with the picture and with the sound of a
// recorded clip as browser b played it, or "" for each that is right.
func judge(b cliptest.Browser, pb cliptest.Playback) (video, audio string) {
	near := func(got, want, tolerance float64) bool { return math.Abs(got-want) <= tolerance }
	switch {
	case !pb.Ended || pb.Error != "":
		video = fmt.Sprintf("Ended = %v, Error = %q; want ended without error", pb.Ended, pb.Error)
	case !near(pb.Duration, recordedSeconds, 0.05) || !near(pb.CurrentTime, recordedSeconds, 0.05):
		video = fmt.Sprintf("Duration = %v, CurrentTime = %v; want %v s", pb.Duration, pb.CurrentTime, recordedSeconds)
	case pb.VideoFrames != recordedFrames || pb.VideoWidth != 320 || pb.VideoHeight != 240:
		video = fmt.Sprintf("%d frames of %dx%d; want %d of 320x240", pb.VideoFrames, pb.VideoWidth, pb.VideoHeight, recordedFrames)
	}
	switch b {
	case cliptest.Chromium:
		if pb.AudioDecodedBytes <= 0 {
			audio = fmt.Sprintf("decoded %d audio bytes, want some", pb.AudioDecodedBytes)
		}
	case cliptest.Firefox:
		// Firefox resamples 48 kHz to its Web Audio rate, which may overshoot
		// a little.
		if !near(pb.AudioPeak, recordedTone, 0.03) {
			audio = fmt.Sprintf("the sound peaked at %.3f, want the tone's %.3f", pb.AudioPeak, recordedTone)
		}
	}
	return video, audio
}

// The original clip, as the console serves it to a manager's browser
// (GET /media/.../clip.mp4, with Range), plays to the end with its
// picture and its sound in Firefox and in Chromium. Its viewing copy,
// whose sound is ALAC, which neither browser decodes, plays without sound:
// the check can fail.
func TestBrowsersPlayTheClip(t *testing.T) {
	if os.Getenv("MAMORU_TEST_EXEC") != "" {
		// make test-arm64: the browsers on this machine are not the
		// target's. The native run covers it.
		t.Skip("under qemu-user there are no browsers of the target's")
	}
	_, key, _ := ed25519.GenerateKey(nil)
	kr := signing.Keyring{{Store: "shop-1", Device: "counter-1", Key: key.Public().(ed25519.PublicKey)}}
	r := newRig(t, kr, nil)
	clipPath, _ := cliptest.Record(t, t.TempDir(), 1, recordedSeconds)
	clip, err := os.ReadFile(clipPath)
	if err != nil {
		t.Fatal(err)
	}
	press := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	original := makeIncident("shop-1", "counter-1", press, 1, clip, key)
	original.put(t, r.root)
	viewingCopy := r.get("/incidents/shop-1/counter-1/"+original.m.Incident+"/viewing-copy.mp4", http.StatusOK)
	alac := makeIncident("shop-1", "counter-1", press.Add(time.Minute), 2, viewingCopy, key)
	alac.put(t, r.root)

	tests := []struct {
		name  string
		in    incident
		sound bool
	}{
		{"original", original, true},
		{"ALAC copy", alac, false},
	}
	for _, b := range []cliptest.Browser{cliptest.Firefox, cliptest.Chromium} {
		t.Run(b.String(), func(t *testing.T) {
			// Browser is named by its command and its Debian package both.
			if _, err := exec.LookPath(b.String()); err != nil {
				t.Skipf("%s is not installed (apt-get install %s, or .ci/install-deps)", b, b)
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					t.Parallel()
					url := r.web.URL + "/media/shop-1/counter-1/" + tt.in.m.Incident + "/clip.mp4"
					start := time.Now()
					pb := cliptest.PlayURLIn(t, b, url)
					t.Logf("%s played %s in %v: %+v", b, url, time.Since(start), pb)
					video, audio := judge(b, pb)
					if video != "" {
						t.Errorf("%s: the picture: %s", b, video)
					}
					if got := audio == ""; got != tt.sound {
						t.Errorf("%s: sound heard = %v (%s), want %v", b, got, audio, tt.sound)
					}
				})
			}
		})
	}
}
