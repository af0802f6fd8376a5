//go:build unix

// Package synctest is the sync rig for tests, with the instruments that
// measure it and the judge of a clip recorded from it.
//
// The rig is one ffmpeg process that draws a white frame into the test
// picture every 2 s and, in the same timeline, a 1 kHz beep of 100 ms: the
// H.264 goes to stdout (the recorder's camera), the beep into pulsetest's
// sink (which the recorder's microphone hears).
//
// A rig is an instrument, and this one is not perfect, so its own skew is
// measured beside the recorder, for every beep:
//   - a tee on the camera's pipe (Tee) notes when each frame leaves ffmpeg;
//     the earliest, less a frame period each, mark when the picture's
//     moments happen, as a camera's sensor would;
//   - a second client of the sink's monitor (Listener) notes when each beep
//     is heard.
//
// The beep goes through a deep PulseAudio buffer (500 ms), so that a
// starved ffmpeg never empties it: an underrun would delay the sound for
// good, and the full buffer behind it would then hold ffmpeg back and delay
// the picture too, moving the rig's whole scene. The beep is drawn that much
// early to make up for the buffer, so the first flash, which would have its
// beep before the rig began, is not drawn. ffmpeg -re also hands each frame
// out about a frame before the sound of the same moment; the measurement
// takes care of that and of whatever else is left.
//
// The rig needs ffmpeg (with libx264 and the pulse output), parec and a
// running pulsetest daemon.
package synctest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"mamoru/capture/cliptest"
	"mamoru/capture/pulsetest"
)

// The rig's frame period, and its flash period.
const (
	Frame = time.Second / 30
	Flash = 2 * time.Second
)

// Command returns the rig's command line, for a recorder's `command` video
// source, at size WxH ("320x240"). Each frame's departure is written to
// frameLog by the test binary's TestSyncTee, which must call Tee.
func Command(size, frameLog string) string {
	return `ffmpeg -hide_banner -nostdin -loglevel error -re ` +
		`-f lavfi -i "testsrc=size=` + size + `:rate=30,drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='gte(t\,1)*lt(mod(t\,2)\,0.03)'" ` +
		`-f lavfi -i "sine=frequency=1000:sample_rate=48000:samples_per_frame=48,volume=volume='if(lt(mod(t+0.5\,2)\,0.1)\,1\,0)':eval=frame" ` +
		`-map 0:v -c:v libx264 -preset ultrafast -tune zerolatency -bf 0 -g 15 -pix_fmt yuv420p -x264-params aud=1 -f h264 pipe:1 ` +
		`-map 1:a -ac 1 -f pulse -buffer_duration 500 -device ` + pulsetest.Sink + ` "mamoru sync"` +
		fmt.Sprintf(` | MAMORU_SYNC_TEE=%q %q -test.run='^TestSyncTee$'`, frameLog, os.Args[0])
}

// Tee is the tee on the rig's camera pipe, for a test binary's
// TestSyncTee: it passes the H.264 from stdin to stdout and writes the
// wall-clock time, in Unix nanoseconds, at which each frame (each access
// unit delimiter) left ffmpeg. It skips the test unless the rig runs it.
func Tee(t *testing.T) {
	path := os.Getenv("MAMORU_SYNC_TEE")
	if path == "" {
		t.Skip("run by the sync rig only")
	}
	out := os.Stdout
	os.Stdout = os.Stderr // the test framework's own words must not enter the stream
	log, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	aud := []byte{0, 0, 1, 9}
	buf := make([]byte, 3, 64<<10) // the last 3 bytes of the previous read first
	for {
		n, err := os.Stdin.Read(buf[3:cap(buf)])
		if n > 0 {
			now := time.Now().UnixNano()
			for range bytes.Count(buf[:3+n], aud) {
				fmt.Fprintln(log, now)
			}
			if _, err := out.Write(buf[3 : 3+n]); err != nil {
				return // the recorder has gone
			}
			copy(buf, buf[n:3+n])
		}
		if err != nil {
			return
		}
	}
}

// Frames is what the tee logged: when each frame left ffmpeg, and when the
// rig's scene started.
type Frames struct {
	// Start is the earliest departure less a period for every frame before
	// it, so that frame n happens at Start + n·Frame however late it left.
	Start time.Time
	deps  []time.Time
}

// LoadFrames reads the tee's log at path, once the clips it is to judge
// have been recorded; one load serves them all.
func LoadFrames(t testing.TB, path string) Frames {
	t.Helper()
	var start time.Time
	var deps []time.Time
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the sync rig's frame log: %v", err)
	}
	for i, f := range strings.Fields(string(b)) {
		ns, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			t.Fatalf("the sync rig's frame log, line %d: %v", i+1, err)
		}
		d := time.Unix(0, ns)
		deps = append(deps, d)
		if at := d.Add(-time.Duration(i) * Frame); i == 0 || at.Before(start) {
			start = at
		}
	}
	if len(deps) == 0 {
		t.Fatal("the sync rig's tee saw no frames")
	}
	return Frames{Start: start, deps: deps}
}

// onsets finds where beeps begin: where the RMS of a 1 ms window (48
// samples) rises above 1000 (the sine is an eighth of full scale) after at
// least 0.5 s of quiet. It is fed samples in pieces of any length.
type onsets struct {
	win   []float64 // the window being filled
	n     int       // samples in the windows before win
	quiet int       // quiet windows in a row
	at    []int     // the first loud sample of each beep
}

func (o *onsets) add(s []float64) {
	for _, v := range s {
		o.win = append(o.win, v)
		if len(o.win) < 48 {
			continue
		}
		var e float64
		for _, v := range o.win {
			e += v * v
		}
		loud := math.Sqrt(e/48) > 1000
		if loud && o.quiet >= 500 {
			j := 0
			for j < len(o.win) && math.Abs(o.win[j]) < 1000 {
				j++
			}
			o.at = append(o.at, o.n+j)
		}
		if loud {
			o.quiet = 0
		} else {
			o.quiet++
		}
		o.n += len(o.win)
		o.win = o.win[:0]
	}
}

// Listener is a second client of the sink's monitor, beside the recorder's
// microphone, that notes when each beep is heard.
type Listener struct {
	cmd  *exec.Cmd
	done chan struct{}
	// start is the lower envelope of read time less the samples read so
	// far: when the monitor's first sample arrived, unswayed by reads that
	// came late.
	start time.Time
	beeps onsets
}

// Listen starts a Listener on pulsetest's sink; it stops when the test
// ends, if Stop has not stopped it.
func Listen(t testing.TB) *Listener {
	t.Helper()
	l := &Listener{done: make(chan struct{})}
	l.cmd = exec.Command("parec", "--latency-msec=10", "--format=s16le", "--rate=48000", "--channels=1", "-d", pulsetest.Sink+".monitor")
	r, err := l.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(l.done)
		buf := make([]byte, 4096)
		var odd []byte
		samples := 0
		for {
			n, err := r.Read(buf)
			now := time.Now()
			b := append(odd, buf[:n]...)
			s := make([]float64, len(b)/2)
			for i := range s {
				s[i] = float64(int16(binary.LittleEndian.Uint16(b[2*i:])))
			}
			odd = append([]byte(nil), b[2*len(s):]...)
			samples += len(s)
			if at := now.Add(-time.Duration(samples) * time.Second / 48000); samples > 0 && (l.start.IsZero() || at.Before(l.start)) {
				l.start = at
			}
			l.beeps.add(s)
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { l.Stop() })
	return l
}

// Stop ends the listener and returns when each beep was heard.
func (l *Listener) Stop() []time.Time {
	l.cmd.Process.Kill()
	<-l.done
	l.cmd.Wait()
	heard := make([]time.Time, len(l.beeps.at))
	for i, n := range l.beeps.at {
		heard[i] = l.start.Add(time.Duration(n) * time.Second / 48000)
	}
	return heard
}

// flashes returns the times of the clip's white frames, on the file's
// timeline.
func flashes(t testing.TB, clip string) []float64 {
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

// beeps returns the onsets of the beeps in the clip's audio, and where the
// audio begins and ends, on the file's timeline.
func beeps(t testing.TB, clip string) (onsetTimes []float64, from, to float64) {
	t.Helper()
	first, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "a:0", "-read_intervals", "%+#1",
		"-show_entries", "packet=pts_time", "-of", "csv=p=0", clip).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	start, _ := strconv.ParseFloat(strings.TrimSpace(strings.Split(string(first), "\n")[0]), 64)
	// The clip's sound begins as if after quiet: a beep that starts in
	// its first half second is found too (one already sounding is left
	// out by Measure, as it is at the clip's edge).
	o := onsets{quiet: 500}
	pcm := cliptest.PCM(t, clip)
	o.add(pcm)
	for _, n := range o.at {
		onsetTimes = append(onsetTimes, start+float64(n)/48000)
	}
	return onsetTimes, start, start + float64(len(pcm))/48000
}

// A Sample is one flash in a clip: the clip's beep less its flash, the
// rig's own skew (when the beep was heard, less when the flash happened),
// and the recorder's (the first less the second).
type Sample struct {
	At                  float64 // the flash, on the file's timeline
	Clip, Rig, Recorder time.Duration
	// Moved says why the flash says nothing of the recorder, if it does
	// not: its beep falls at the edge of the clip's sound, the rig's
	// picture left ffmpeg late for a whole second, or its sound came
	// later than the others'.
	Moved string
}

// Result is a clip's flashes.
type Result struct {
	Samples []Sample
	RigSkew time.Duration
}

// Measure finds the flashes and beeps in clip, whose first sample was
// recorded at clipStart (its manifest's clip_start), and holds them against
// the rig's frames and the beeps the Listener heard.
func Measure(t testing.TB, clip string, clipStart time.Time, rig Frames, heard []time.Time) Result {
	t.Helper()
	scene, deps := rig.Start, rig.deps
	fl := flashes(t, clip)
	bp, from, to := beeps(t, clip)
	if len(fl) == 0 || len(bp) == 0 {
		t.Fatalf("%s: found %d flashes and %d beeps", clip, len(fl), len(bp))
	}
	var res Result
	var rigs []time.Duration
	for _, f := range fl {
		k := int(math.Round(float64(clipStart.Add(seconds(f)).Sub(scene)) / float64(Flash)))
		happened := scene.Add(time.Duration(k) * Flash)
		s := Sample{At: f, Rig: time.Hour}
		for _, h := range heard {
			if d := h.Sub(happened); d.Abs() < s.Rig.Abs() {
				s.Rig = d
			}
		}
		if s.Rig.Abs() > 500*time.Millisecond {
			t.Fatalf("%s: the listener on the sink heard no beep near the flash at %.1f s in the clip (heard %d beeps)", clip, f, len(heard))
		}
		best := math.Inf(1)
		for _, b := range bp {
			if math.Abs(b-f) < math.Abs(best) {
				best = b - f
			}
		}
		s.Clip = seconds(best)
		s.Recorder = s.Clip - s.Rig
		// A flash at the very edge of the clip may have its beep just
		// outside the clip's sound; a beep missing inside it is the
		// recorder's fault, and counts.
		if beep := f + s.Rig.Seconds(); beep < from+0.1 || beep > to-0.1 {
			s.Moved = "its beep falls at the edge of the clip's sound"
		}
		// The rig's picture: the earliest departure within a second of the
		// flash, against the earliest of all.
		n := int(time.Duration(k) * Flash / Frame)
		local := time.Duration(math.MaxInt64)
		for i := max(n-30, 0); i < min(n+30, len(deps)); i++ {
			local = min(local, deps[i].Sub(scene)-time.Duration(i)*Frame)
		}
		if s.Moved == "" && local > 20*time.Millisecond {
			s.Moved = fmt.Sprintf("the rig's picture ran %.0f ms late", ms(local))
		}
		res.Samples = append(res.Samples, s)
		rigs = append(rigs, s.Rig)
	}
	res.RigSkew = median(rigs)
	for i := range res.Samples {
		s := &res.Samples[i]
		if s.Moved == "" && (s.Rig-res.RigSkew).Abs() > 20*time.Millisecond {
			s.Moved = fmt.Sprintf("the rig's sound came %+.0f ms from its usual", ms(s.Rig-res.RigSkew))
		}
	}
	return res
}

// Good returns the samples fit to judge the recorder by: those not Moved.
func (r Result) Good() []Sample {
	var good []Sample
	for _, s := range r.Samples {
		if s.Moved == "" {
			good = append(good, s)
		}
	}
	return good
}

// Problems judges the clip: at the start, the middle and the end, each the
// median of three flashes (so that one late wake-up of a busy machine is
// not taken for the clip's sync), the beep must be within limit of its
// flash, less the rig's skew; the offset at the end must be within drift of
// the offset at the start; and two thirds of the flashes at least must be
// fit to judge. It returns what is wrong, or nothing.
func (r Result) Problems(limit, drift time.Duration) []string {
	good := r.Good()
	if len(good) < len(r.Samples)*2/3 || len(good) < 3 {
		return []string{fmt.Sprintf("%d of %d flashes could not be judged (the rig lost time, or the clip's edge): too starved a machine to measure on?\n\t%s",
			len(r.Samples)-len(good), len(r.Samples), r.Report())}
	}
	at := func(i int) time.Duration {
		i = min(max(i, 1), len(good)-2)
		return median([]time.Duration{good[i-1].Recorder, good[i].Recorder, good[i+1].Recorder})
	}
	var p []string
	for _, i := range []int{1, len(good) / 2, len(good) - 2} {
		if d := at(i); d.Abs() > limit {
			p = append(p, fmt.Sprintf("around %.1f s in the clip the beep is %+.1f ms from its flash, beyond the rig's own skew; want within ±%v", good[i].At, ms(d), limit))
		}
	}
	if d := at(len(good)-2) - at(1); d.Abs() > drift {
		p = append(p, fmt.Sprintf("the offset moved by %+.1f ms from the start of the clip to its end: drift", ms(d)))
	}
	return p
}

// Worst returns the recorder's largest offset among the good flashes, and
// how many are beyond limit.
func (r Result) Worst(limit time.Duration) (worst time.Duration, over int) {
	for _, s := range r.Good() {
		worst = max(worst, s.Recorder.Abs())
		if s.Recorder.Abs() > limit {
			over++
		}
	}
	return worst, over
}

// Report describes the flashes, every one if there are at most 20, else
// every 30th, the last, and every one left out.
func (r Result) Report() string {
	var lines []string
	for i, s := range r.Samples {
		if len(r.Samples) <= 20 || i%30 == 0 || i == len(r.Samples)-1 || s.Moved != "" {
			line := fmt.Sprintf("%.1f s: clip %+.1f, rig %+.1f, recorder %+.1f ms", s.At, ms(s.Clip), ms(s.Rig), ms(s.Recorder))
			if s.Moved != "" {
				line += " (left out: " + s.Moved + ")"
			}
			lines = append(lines, line)
		}
	}
	return strings.Join(lines, "\n\t")
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func seconds(f float64) time.Duration { return time.Duration(math.Round(f * 1e9)) }

// median returns the middle of ds (the upper middle of an even count).
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
