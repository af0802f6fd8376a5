package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"mamoru/capture/cliptest"
	"mamoru/capture/pulsetest"
	"mamoru/config"
	"mamoru/device"
	"mamoru/outbox"
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
	// -fps_mode passthrough: each frame of the clip once, as stored. By
	// default FFmpeg fills a raw output to a constant rate, repeating a
	// frame across a gap and dropping one where frames run fast.
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", clip, "-map", "0:v", "-vf", "crop=320:36:0:0,format=gray",
		"-fps_mode", "passthrough", "-f", "rawvideo", "-").Output()
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
	heard := pulsetest.Record(t)
	cfg := testConfig(t)
	cfg.Video.Source, cfg.Video.Command = config.SourceCommand, countingSource()
	cfg.Audio.Backend, cfg.Audio.Device = "pulse", pulsetest.Monitor
	cfg.Capture.PreSeconds, cfg.Capture.PostSeconds = 10, 20
	start(t, cfg)
	waitFor(t, cfg, "a full pre-roll", func(s device.Status) bool { return s.BufferedSeconds >= 11 && s.Sources["audio"].Frames > 500 })
	res, err := device.Trigger(context.Background(), cfg.Device.StateDir, "cli")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, cfg, "the clip", func(s device.Status) bool {
		return len(s.Incidents) == 1 && s.Incidents[0].State == outbox.StateComplete
	})

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
	// ramp continues where it stopped, or, when PulseAudio skipped the late
	// part of the source's stream, jumps ahead: then any client of the
	// monitor heard the same jump, and so must the clip. A break the
	// reference recording does not have is a sample the recorder lost.
	clip := cliptest.PCM(t, res.Clip)
	s := make([]int, len(clip))
	for i, v := range clip {
		s[i] = int(v)
	}
	var ref []int
	for _, v := range heard() {
		ref = append(ref, int(v))
	}
	upstream := map[[2]int]bool{}
	refBreaks, _ := rampBreaks(ref)
	for _, b := range refBreaks {
		upstream[[2]int{b.from, b.to}] = true
	}
	found, underruns := rampBreaks(s)
	breaks, skipped := 0, 0
	for _, b := range found {
		if upstream[[2]int{b.from, b.to}] {
			skipped++
			continue
		}
		if breaks < 5 {
			t.Errorf("audio sample %d (%.3f s) is %d after %d: the ramp breaks where the monitor's did not, a sample is missing or repeated",
				b.at, float64(b.at)/48000, b.to, b.from)
		}
		breaks++
	}
	t.Logf("%d frames numbered %d to %d, %d out of order; %d samples (%.3f s), %d breaks in the ramp, %d stretches of silence from the source falling behind, %d skips PulseAudio made in the source's stream (heard by the reference too)",
		len(nums), nums[0], nums[len(nums)-1], bad, len(s), float64(len(s))/48000, breaks, underruns, skipped)
}

// rampBreak is a place where the ramp does not continue: sample at holds
// to, and the last sample before it that is not zero holds from.
type rampBreak struct{ at, from, to int }

// rampBreaks finds where a ramp rising by one per sample (wrapping at 16
// bits) breaks, looking across runs of exact zeros (silence rendered while
// the source fell behind), and counts the runs of silence the ramp
// continues across.
func rampBreaks(s []int) (breaks []rampBreak, silences int) {
	prev, zeros := -1, 0
	for i, v := range s {
		if v == 0 {
			zeros++
			continue
		}
		if prev >= 0 {
			if step := (v - s[prev] + 65536) % 65536; step != 1 && !(step == 2 && zeros == 1) {
				breaks = append(breaks, rampBreak{i, s[prev], v})
			} else if zeros > 1 {
				silences++
			}
		}
		prev, zeros = i, 0
	}
	return breaks, silences
}
