package device

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"mamoru/capture/pulsetest"
	"mamoru/policy"
	"mamoru/uploader"
)

// countingSource is one ffmpeg process whose every frame carries its number
// as a 12-bit barcode of white squares, and whose sound is a ramp that
// rises by one every sample (wrapping at 16 bits), played into the
// PulseAudio sink. The whole path is lossless for audio (s16 at 48 kHz,
// FLAC), so a missing or repeated sample breaks the ramp.
func countingSource() string {
	var boxes []string
	for i := range 12 {
		boxes = append(boxes, fmt.Sprintf("drawbox=x=%d:y=8:w=20:h=20:color=white:t=fill:enable='mod(floor(n/%d)\\,2)'", 8+i*25, 1<<i))
	}
	return `ffmpeg -hide_banner -nostdin -loglevel error -re ` +
		`-f lavfi -i "testsrc=size=320x240:rate=30,drawbox=x=0:y=0:w=320:h=36:color=black:t=fill,` + strings.Join(boxes, ",") + `" ` +
		`-f lavfi -i "aevalsrc=(mod(n\,65536)-32768)/32768:s=48000:c=mono:n=480" ` +
		`-map 0:v -c:v libx264 -preset ultrafast -tune zerolatency -bf 0 -g 15 -pix_fmt yuv420p -f h264 pipe:1 ` +
		`-map 1:a -c:a pcm_s16le -f pulse -buffer_duration 20 -device ` + pulsetest.Sink + ` "mamoru counter"`
}

// frameNumbers reads each video frame's barcode.
func frameNumbers(t *testing.T, clip string) []int {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", clip, "-map", "0:v", "-vf", "crop=320:36:0:0,format=gray",
		"-f", "rawvideo", "-").Output()
	if err != nil {
		t.Fatalf("decode video: %v", err)
	}
	const w, h = 320, 36
	var nums []int
	for f := 0; f+w*h <= len(out); f += w * h {
		n := 0
		for i := range 12 {
			if out[f+18*w+8+i*25+10] > 128 {
				n |= 1 << i
			}
		}
		nums = append(nums, n)
	}
	return nums
}

// TestNothingIsMissing records 30 s from the counting source and checks
// that the clip holds every frame once, in order, and every audio sample
// once, in order, from its first to its last.
func TestNothingIsMissing(t *testing.T) {
	pulsetest.Start(t)
	cfg := testConfig(t)
	cfg.Video.Source, cfg.Video.Command = policy.SourceCommand, countingSource()
	cfg.Audio.Backend, cfg.Audio.Device = "pulse", pulsetest.Monitor
	cfg.Capture.PreSeconds, cfg.Capture.PostSeconds = 10, 20
	start(t, cfg)
	waitFor(t, cfg, "a full pre-roll", func(s Status) bool { return s.BufferedSeconds >= 11 && s.Sources["audio"].Frames > 500 })
	res, err := Trigger(context.Background(), cfg.Device.StateDir, "cli")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, cfg, "the clip", func(s Status) bool { return len(s.Incidents) == 1 && s.Incidents[0].State == uploader.StateComplete })

	nums := frameNumbers(t, res.Clip)
	if len(nums) < 29*30 {
		t.Fatalf("%d frames in a 30 s clip at 30 fps", len(nums))
	}
	bad := 0
	for i := 1; i < len(nums); i++ {
		if want := (nums[i-1] + 1) % 4096; nums[i] != want {
			if bad < 5 {
				t.Errorf("frame %d is number %d after %d: a frame is missing or repeated", i, nums[i], nums[i-1])
			}
			bad++
		}
	}

	// A run of exact zeros is silence PulseAudio rendered while the source
	// fell behind (the ramp itself is zero for one sample in 65536): the
	// microphone heard it, and the clip must hold it. Across such a run the
	// ramp must continue where it stopped.
	s := pcm(t, res.Clip)
	breaks, underruns := 0, 0
	prev, zeros := -1, 0
	for i, v := range s {
		if v == 0 {
			zeros++
			continue
		}
		if prev >= 0 {
			if step := (int(v) - int(s[prev]) + 65536) % 65536; step != 1 && !(step == 2 && zeros == 1) {
				if breaks < 5 {
					t.Errorf("audio sample %d (%.3f s) is %d after %d: the ramp breaks, a sample is missing or repeated", i, float64(i)/48000, int(v), int(s[prev]))
				}
				breaks++
			} else if zeros > 1 {
				underruns++
			}
		}
		prev, zeros = i, 0
	}
	t.Logf("%d frames numbered %d to %d, %d out of order; %d samples (%.3f s), %d breaks in the ramp, %d stretches of silence from the source falling behind",
		len(nums), nums[0], nums[len(nums)-1], bad, len(s), float64(len(s))/48000, breaks, underruns)
}
