package device

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"mamoru/capture/pulsetest"
	"mamoru/policy"
	"mamoru/uploader"
)

// syncSource is one ffmpeg process drawing a white frame into the test
// picture every 2 s and, in the same timeline, a 1 kHz beep of 100 ms: the
// H.264 goes to stdout (the recorder's camera), the beep into the
// PulseAudio sink (which the recorder's microphone hears).
const syncSource = `ffmpeg -hide_banner -nostdin -loglevel error -re ` +
	`-f lavfi -i "testsrc=size=320x240:rate=30,drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='lt(mod(t\,2)\,0.03)'" ` +
	`-f lavfi -i "sine=frequency=1000:sample_rate=48000:samples_per_frame=48,volume=volume='if(lt(mod(t\,2)\,0.1)\,1\,0)':eval=frame" ` +
	`-map 0:v -c:v libx264 -preset ultrafast -tune zerolatency -bf 0 -g 15 -pix_fmt yuv420p -f h264 pipe:1 ` +
	`-map 1:a -ac 1 -f pulse -buffer_duration 10 -device ` + pulsetest.Sink + ` "mamoru sync"`

// flashes returns the times of the clip's white frames, on the file's
// timeline.
func flashes(t *testing.T, clip string) []float64 {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-v", "error", "-copyts", "-i", clip, "-map", "0:v",
		"-vf", "signalstats,metadata=print:key=lavfi.signalstats.YAVG:file=-", "-f", "null", "-").Output()
	if err != nil {
		t.Fatalf("ffmpeg signalstats: %v", err)
	}
	var times []float64
	var pts float64
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "pts_time:"); i >= 0 {
			pts, _ = strconv.ParseFloat(strings.Fields(line[i+len("pts_time:"):])[0], 64)
		}
		if v, ok := strings.CutPrefix(line, "lavfi.signalstats.YAVG="); ok {
			if y, _ := strconv.ParseFloat(v, 64); y > 200 {
				times = append(times, pts)
			}
		}
	}
	return times
}

// beeps returns the onsets of the beeps in the clip's audio, on the file's
// timeline: where the 1 ms RMS rises above 1000 (the sine is an eighth of full scale) after
// at least 0.5 s of quiet.
func beeps(t *testing.T, clip string) []float64 {
	t.Helper()
	first, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "a:0", "-read_intervals", "%+#1",
		"-show_entries", "packet=pts_time", "-of", "csv=p=0", clip).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	start, _ := strconv.ParseFloat(strings.TrimSpace(strings.Split(string(first), "\n")[0]), 64)
	s := pcm(t, clip)
	var onsets []float64
	quiet := 0
	for i := 0; i+48 <= len(s); i += 48 {
		var e float64
		for _, v := range s[i : i+48] {
			e += v * v
		}
		loud := math.Sqrt(e/48) > 1000
		if loud && quiet >= 500 {
			// The first loud sample inside this millisecond.
			j := i
			for j < i+48 && math.Abs(s[j]) < 1000 {
				j++
			}
			onsets = append(onsets, start+float64(j)/48000)
		}
		if loud {
			quiet = 0
		} else {
			quiet++
		}
	}
	return onsets
}

// TestSoundAndPictureInSync records 30 s (MAMORU_SYNC_SECONDS, make
// sync-long: 600) from a source whose flashes and beeps happen together,
// and checks that in the clip each beep starts within 40 ms of its flash,
// at the start, the middle and the end.
func TestSoundAndPictureInSync(t *testing.T) {
	seconds := 30
	if n, err := strconv.Atoi(os.Getenv("MAMORU_SYNC_SECONDS")); err == nil && n >= 30 {
		seconds = min(n, 600)
	}
	pulsetest.Start(t)
	cfg := testConfig(t)
	cfg.Video.Source, cfg.Video.Command = policy.SourceCommand, syncSource
	cfg.Audio.Backend, cfg.Audio.Device = "pulse", pulsetest.Monitor
	cfg.Capture.PreSeconds, cfg.Capture.PostSeconds = 10, seconds-10
	start(t, cfg)
	waitFor(t, cfg, "a full pre-roll", func(s Status) bool {
		return s.BufferedSeconds >= 11 && s.Sources["audio"].Frames > 500
	})
	res, err := Trigger(context.Background(), cfg.Device.StateDir, "cli")
	if err != nil {
		t.Fatal(err)
	}
	waitWithin(t, cfg, "the clip", time.Duration(seconds+60)*time.Second, func(s Status) bool {
		return len(s.Incidents) == 1 && s.Incidents[0].State == uploader.StateComplete
	})
	clip := filepath.Clean(res.Clip)

	fl, bp := flashes(t, clip), beeps(t, clip)
	if len(fl) < seconds/2-3 || len(bp) < seconds/2-3 {
		t.Fatalf("found %d flashes and %d beeps in a %d s clip with one of each every 2 s", len(fl), len(bp), seconds)
	}
	var diffs []float64
	for _, f := range fl {
		best := math.Inf(1)
		for _, b := range bp {
			if math.Abs(b-f) < math.Abs(best) {
				best = b - f
			}
		}
		diffs = append(diffs, best)
	}
	var report []string
	for i, d := range diffs {
		if len(diffs) <= 20 || i%30 == 0 || i == len(diffs)-1 {
			report = append(report, fmt.Sprintf("%.1f s: %+.1f ms", fl[i], d*1000))
		}
	}
	t.Logf("beep minus flash in a %d s clip: %s", seconds, strings.Join(report, ", "))
	// At the start, the middle and the end, each the median of three
	// flashes, so that one late wake-up of a busy machine is not taken for
	// the clip's sync.
	at := func(i int) float64 {
		i = min(max(i, 1), len(diffs)-2)
		three := []float64{diffs[i-1], diffs[i], diffs[i+1]}
		slices.Sort(three)
		return three[1]
	}
	for _, i := range []int{1, len(diffs) / 2, len(diffs) - 2} {
		if d := at(i); math.Abs(d) > 0.040 {
			t.Errorf("around %.1f s in the clip the beep is %+.1f ms from its flash, want within ±40 ms", fl[i], d*1000)
		}
	}
	// No drift: the offset at the end is the offset at the start.
	if drift := at(len(diffs)-2) - at(1); math.Abs(drift) > 0.010 {
		t.Errorf("the offset moved by %+.1f ms from the start of the clip to its end: drift", drift*1000)
	}
	worst, over := 0.0, 0
	for _, d := range diffs {
		worst = max(worst, math.Abs(d))
		if math.Abs(d) > 0.040 {
			over++
		}
	}
	t.Logf("largest offset %.1f ms; %d of %d flashes beyond 40 ms", worst*1000, over, len(diffs))
}
