package device

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
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

// The sync rig is one ffmpeg process that draws a white frame into the test
// picture every 2 s and, in the same timeline, a 1 kHz beep of 100 ms: the
// H.264 goes to stdout (the recorder's camera), the beep into the
// PulseAudio sink (which the recorder's microphone hears).
//
// A rig is an instrument, and this one is not perfect, so its own skew is
// measured beside the recorder, for every beep:
//   - a tee on the camera's pipe (TestSyncTee) notes when each frame leaves
//     ffmpeg; the earliest, less a frame period each, mark when the
//     picture's moments happen, as a camera's sensor would;
//   - a second client of the sink's monitor (listen) notes when each beep
//     is heard.
//
// The beep goes through a deep PulseAudio buffer (500 ms), so that a
// starved ffmpeg never empties it: an underrun would delay the sound for
// good, and the full buffer behind it would then hold ffmpeg back and delay
// the picture too, moving the rig's whole scene. The beep is drawn that much
// early to make up for the buffer, so the first flash, which would have
// its beep before the rig began, is not drawn. ffmpeg -re also hands each frame out
// about a frame before the sound of the same moment; the measurement takes
// care of that and of whatever else is left.
func syncRig(frameLog string) string {
	return `ffmpeg -hide_banner -nostdin -loglevel error -re ` +
		`-f lavfi -i "testsrc=size=320x240:rate=30,drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='gte(t\,1)*lt(mod(t\,2)\,0.03)'" ` +
		`-f lavfi -i "sine=frequency=1000:sample_rate=48000:samples_per_frame=48,volume=volume='if(lt(mod(t+0.5\,2)\,0.1)\,1\,0)':eval=frame" ` +
		`-map 0:v -c:v libx264 -preset ultrafast -tune zerolatency -bf 0 -g 15 -pix_fmt yuv420p -x264-params aud=1 -f h264 pipe:1 ` +
		`-map 1:a -ac 1 -f pulse -buffer_duration 500 -device ` + pulsetest.Sink + ` "mamoru sync"` +
		fmt.Sprintf(` | MAMORU_SYNC_TEE=%q %q -test.run='^TestSyncTee$'`, frameLog, os.Args[0])
}

// rigFrame is the rig's frame period; a flash every rigFlash.
const (
	rigFrame = time.Second / 30
	rigFlash = 2 * time.Second
)

// TestSyncTee is the tee on the sync rig's camera pipe: it passes the H.264
// through and writes the wall-clock time, in Unix nanoseconds, at which each
// frame (each access unit delimiter) left ffmpeg. It does nothing unless the
// rig runs it.
func TestSyncTee(t *testing.T) {
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

// frameTimes reads the tee's log and returns when the rig's scene starts:
// the earliest departure less a period for every frame before it, so that
// frame n happens at start + n·rigFrame however late it left.
func frameTimes(t *testing.T, path string) (start time.Time, deps []time.Time) {
	t.Helper()
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
		if at := d.Add(-time.Duration(i) * rigFrame); i == 0 || at.Before(start) {
			start = at
		}
	}
	if len(deps) == 0 {
		t.Fatal("the sync rig's tee saw no frames")
	}
	return start, deps
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

// listener is a second client of the sink's monitor, beside the recorder's
// microphone, that notes when each beep is heard.
type listener struct {
	cmd  *exec.Cmd
	done chan struct{}
	// start is the lower envelope of read time less the samples read so
	// far: when the monitor's first sample arrived, unswayed by reads that
	// came late.
	start time.Time
	beeps onsets
}

func listen(t *testing.T) *listener {
	t.Helper()
	l := &listener{done: make(chan struct{})}
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
	t.Cleanup(func() { l.stop() })
	return l
}

// stop ends the listener and returns when each beep was heard.
func (l *listener) stop() []time.Time {
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
// timeline.
func beeps(t *testing.T, clip string) []float64 {
	t.Helper()
	first, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "a:0", "-read_intervals", "%+#1",
		"-show_entries", "packet=pts_time", "-of", "csv=p=0", clip).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	start, _ := strconv.ParseFloat(strings.TrimSpace(strings.Split(string(first), "\n")[0]), 64)
	var o onsets
	o.add(pcm(t, clip))
	times := make([]float64, len(o.at))
	for i, n := range o.at {
		times[i] = start + float64(n)/48000
	}
	return times
}

// TestSoundAndPictureInSync records 30 s (MAMORU_SYNC_SECONDS, make
// sync-long: 600) from the sync rig, whose flashes and beeps happen
// together, and checks that in the clip each beep starts within 40 ms of
// its flash, at the start, the middle and the end, less the rig's own skew
// for that beep, measured outside the recorder.
func TestSoundAndPictureInSync(t *testing.T) {
	seconds := 30
	if n, err := strconv.Atoi(os.Getenv("MAMORU_SYNC_SECONDS")); err == nil && n >= 30 {
		seconds = min(n, 600)
	}
	pulsetest.Start(t)
	ear := listen(t)
	frameLog := filepath.Join(t.TempDir(), "frames")
	cfg := testConfig(t)
	cfg.Video.Source, cfg.Video.Command = policy.SourceCommand, syncRig(frameLog)
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
	m, err := uploader.ReadManifest(filepath.Dir(clip))
	if err != nil {
		t.Fatal(err)
	}
	scene, deps := frameTimes(t, frameLog)
	heard := ear.stop()

	fl, bp := flashes(t, clip), beeps(t, clip)
	if len(fl) < seconds/2-3 || len(bp) < seconds/2-3 {
		t.Fatalf("found %d flashes and %d beeps in a %d s clip with one of each every 2 s", len(fl), len(bp), seconds)
	}
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	secs := func(f float64) time.Duration { return time.Duration(math.Round(f * 1e9)) }
	// For each flash in the clip: the rig's skew (when its beep was heard,
	// less when the flash happened), and the recorder's (the clip's beep
	// less its flash, less the rig's skew). A flash where the rig's
	// scene moved (its picture left ffmpeg late for a whole second, or
	// its sound came later than the others) says nothing of the recorder:
	// it is reported and left out.
	type sample struct {
		at             float64 // the flash, on the file's timeline
		clip, rig, rec time.Duration
		moved          string
	}
	var all []sample
	var rigs []time.Duration
	for _, f := range fl {
		k := int(math.Round(float64(m.ClipStart.Add(secs(f)).Sub(scene)) / float64(rigFlash)))
		happened := scene.Add(time.Duration(k) * rigFlash)
		s := sample{at: f, rig: time.Hour}
		for _, h := range heard {
			if d := h.Sub(happened); d.Abs() < s.rig.Abs() {
				s.rig = d
			}
		}
		if s.rig.Abs() > 500*time.Millisecond {
			t.Fatalf("the listener on the sink heard no beep near the flash at %.1f s in the clip (heard %d beeps)", f, len(heard))
		}
		best := math.Inf(1)
		for _, b := range bp {
			if math.Abs(b-f) < math.Abs(best) {
				best = b - f
			}
		}
		s.clip = secs(best)
		s.rec = s.clip - s.rig
		// The rig's picture: the earliest departure within a second of the
		// flash, against the earliest of all.
		n := int(time.Duration(k) * rigFlash / rigFrame)
		local := time.Duration(math.MaxInt64)
		for i := max(n-30, 0); i < min(n+30, len(deps)); i++ {
			local = min(local, deps[i].Sub(scene)-time.Duration(i)*rigFrame)
		}
		if local > 20*time.Millisecond {
			s.moved = fmt.Sprintf("the rig's picture ran %.0f ms late", ms(local))
		}
		all = append(all, s)
		rigs = append(rigs, s.rig)
	}
	rigMedian := median(rigs)
	var good []sample
	var report []string
	for i, s := range all {
		if s.moved == "" && (s.rig-rigMedian).Abs() > 20*time.Millisecond {
			s.moved = fmt.Sprintf("the rig's sound came %+.0f ms from its usual", ms(s.rig-rigMedian))
		}
		if s.moved == "" {
			good = append(good, s)
		}
		if len(all) <= 20 || i%30 == 0 || i == len(all)-1 || s.moved != "" {
			line := fmt.Sprintf("%.1f s: clip %+.1f, rig %+.1f, recorder %+.1f ms", s.at, ms(s.clip), ms(s.rig), ms(s.rec))
			if s.moved != "" {
				line += " (left out: " + s.moved + ")"
			}
			report = append(report, line)
		}
	}
	t.Logf("beep minus flash in a %d s clip:\n\t%s", seconds, strings.Join(report, "\n\t"))
	if len(good) < len(all)*2/3 || len(good) < 3 {
		t.Fatalf("the rig itself lost time at %d of %d flashes: too starved a machine to measure on", len(all)-len(good), len(all))
	}
	// At the start, the middle and the end, each the median of three
	// flashes, so that one late wake-up of a busy machine is not taken for
	// the clip's sync.
	at := func(i int) time.Duration {
		i = min(max(i, 1), len(good)-2)
		return median([]time.Duration{good[i-1].rec, good[i].rec, good[i+1].rec})
	}
	for _, i := range []int{1, len(good) / 2, len(good) - 2} {
		if d := at(i); d.Abs() > 40*time.Millisecond {
			t.Errorf("around %.1f s in the clip the beep is %+.1f ms from its flash, beyond the rig's own skew; want within ±40 ms", good[i].at, ms(d))
		}
	}
	// No drift: the offset at the end is the offset at the start.
	if drift := at(len(good)-2) - at(1); drift.Abs() > 10*time.Millisecond {
		t.Errorf("the offset moved by %+.1f ms from the start of the clip to its end: drift", ms(drift))
	}
	var worst time.Duration
	over := 0
	for _, s := range good {
		worst = max(worst, s.rec.Abs())
		if s.rec.Abs() > 40*time.Millisecond {
			over++
		}
	}
	t.Logf("the rig's skew: median %+.1f ms; the recorder's: largest %.1f ms, %d of %d flashes beyond 40 ms, %d left out",
		ms(rigMedian), ms(worst), over, len(good), len(all)-len(good))
}

// median returns the middle of ds (the upper middle of an even count).
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
