package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mamoru/bucket"
	"mamoru/bucket/s3test"
	"mamoru/capture/cliptest"
	"mamoru/capture/pulsetest"
	"mamoru/capture/synctest"
	"mamoru/outbox"
)

// procSample is the recorder process's resources at one moment.
type procSample struct {
	at       time.Time
	rssKB    int
	fds      int
	cpuTicks int // its own user+system time, not its children's
}

func sampleProc(t *testing.T, pid int) procSample {
	s := procSample{at: time.Now()}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
				s.rssKB, _ = strconv.Atoi(strings.Fields(v)[0])
			}
		}
	}
	if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		s.fds = len(fds)
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		f := strings.Fields(string(b)[strings.LastIndex(string(b), ")")+2:])
		u, _ := strconv.Atoi(f[11])
		sy, _ := strconv.Atoi(f[12])
		s.cpuTicks = u + sy
	}
	return s
}

// TestSyncTee is the sync rig's tee on the soak camera's pipe; it does
// nothing unless the rig runs it.
func TestSyncTee(t *testing.T) { synctest.Tee(t) }

// TestSoak runs the recorder for MAMORU_SOAK_MINUTES (make soak: 60) with a
// press every 2 minutes, uploading to MinIO, then checks every clip
// (verifies, plays in Chromium, meets the bounds, beeps in sync with their
// flashes: the camera is the sync rig at 720p) and reports the
// recorder's RSS, open files and CPU per minute: start, maximum, end.
func TestSoak(t *testing.T) {
	minutes, _ := strconv.Atoi(os.Getenv("MAMORU_SOAK_MINUTES"))
	if minutes <= 0 {
		t.Skip("make soak runs this (MAMORU_SOAK_MINUTES=60); it is not part of make test")
	}
	srv := s3test.Start(t, s3test.Options{})
	srv.Bucket("clips")
	// The camera is the sync rig at 720p and the microphone hears its
	// beeps through PulseAudio, so that every clip is judged for sync too.
	pulsetest.Start(t)
	ear := synctest.Listen(t)
	frameLog := filepath.Join(t.TempDir(), "frames")
	stateDir := t.TempDir()
	const pre, post = 30, 30
	cfg := writeConfig(t, t.TempDir(), "mamoru.toml", fmt.Sprintf(`[device]
id = "soak"
store = "soak"
state_dir = %q
[capture]
pre_seconds = %d
post_seconds = %d
[video]
source = "command"
command = '''%s'''
width = 1280
height = 720
[audio]
backend = "pulse"
device = %q
[hardware]
driver = "sim"
[storage]
endpoint = %q
bucket = "clips"
secure = false
`, stateDir, pre, post, synctest.Command("1280x720", frameLog), pulsetest.Monitor, srv.Endpoint))
	t.Setenv("MAMORU_POLICY_OBJECT_LOCK", "none") // a plain bucket: the uploader tests prove the lock
	t.Setenv("MAMORU_S3_ACCESS_KEY", s3test.RootUser)
	t.Setenv("MAMORU_S3_SECRET_KEY", s3test.RootPassword)

	cmd := exec.Command(os.Args[0], "-test.run=^TestRecorderChild$")
	cmd.Env = append(os.Environ(), "MAMORU_CHILD_CONFIG="+cfg)
	// The recorder's log, to show its end if the soak fails.
	logFile, err := os.Create(filepath.Join(t.TempDir(), "recorder.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			t.Logf("the recorder's last log lines:\n%s", strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	}()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	pid := cmd.Process.Pid

	var samples []procSample
	var pressed []string
	begin := time.Now()
	end := begin.Add(time.Duration(minutes) * time.Minute)
	nextPress := begin.Add(40 * time.Second) // a full pre-roll first
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for now := time.Now(); now.Before(end); now = <-tick.C {
		samples = append(samples, sampleProc(t, pid))
		if !now.Before(nextPress) {
			code, out, errOut := runCmd(t, "trigger", "--config", cfg)
			if code != 0 {
				t.Errorf("press at %s: %s", now.Sub(begin).Round(time.Second), errOut)
			} else {
				pressed = append(pressed, strings.Fields(out)[1])
			}
			nextPress = nextPress.Add(2 * time.Minute)
		}
	}
	// Let the last clip finish and upload.
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		code, out, _ := runCmd(t, "status", "--config", cfg, "--json")
		if code == 0 && strings.Contains(out, `"pending_uploads": 0`) && !strings.Contains(out, `"state": "incident"`) {
			break
		}
	}
	samples = append(samples, sampleProc(t, pid))
	heard := ear.Stop()
	rigFrames := synctest.LoadFrames(t, frameLog)

	// Every clip: in the bucket, verified, playable, within its bounds,
	// in sync.
	dl := t.TempDir()
	const frame = 1.0 / 30
	shortest, longest := 1.0, 0.0
	var worstSync time.Duration
	var rigSkews []time.Duration
	flashes, leftOut := 0, 0
	for _, id := range pressed {
		// The soak's device has no signing key: its clips are UNSIGNED,
		// and checked for their SHA-256 and size.
		code, out, errOut := runCmd(t, "clips", "get", id, "--config", cfg, "-o", dl)
		if code != 0 || !strings.Contains(out, "UNSIGNED (SHA-256") {
			t.Errorf("%s: %s%s", id, out, errOut)
			continue
		}
		clip := filepath.Join(dl, id, outbox.ClipFile)
		m, _, err := bucket.VerifyLocal(filepath.Join(dl, id), nil)
		if err != nil {
			t.Errorf("%s: %v", id, err)
			continue
		}
		lead, tail := m.PressTime.Sub(m.ClipStart).Seconds(), m.ClipEnd.Sub(m.PressTime).Seconds()
		if lead < pre || lead > pre+1+1.0/30 || tail < post-1.0/30 {
			t.Errorf("%s: starts %.3f s before the press and ends %.3f s after; want %d s (+ a GOP) and %d s", id, lead, tail, pre, post)
		}
		if out := cliptest.DecodeErrors(t, clip); out != "" {
			t.Errorf("%s: decode errors: %s", id, out)
		}
		// The clip states its rate: 30, or the frames' measured rate when
		// 30 does not fit them (a source that ran slow), which the stamper
		// keeps within 0.5 % of it.
		if v, _ := cliptest.Probe(t, clip).Stream("video"); math.Abs(v.FrameRate-30) > 30*0.005 {
			t.Errorf("%s: ffprobe reads the video as %.3f fps, want 30 ± 0.5 %%", id, v.FrameRate)
		}
		// No frame missing, none squeezed against the one before: the
		// stamper keeps them at least 7/8 of a frame interval apart.
		short, long := cliptest.Spacing(t, clip, "video")
		if short.Length < frame*7/8-0.001 || long.Length > 1.5*frame {
			t.Errorf("%s: video frames from %.1f ms apart (at %.3f s) to %.1f ms (at %.3f s); want %.1f ms to %.1f ms",
				id, short.Length*1000, short.At, long.Length*1000, long.At, frame*7/8*1000, 1.5*frame*1000)
		}
		shortest, longest = min(shortest, short.Length), max(longest, long.Length)
		if pb := cliptest.Play(t, clip); !pb.Ended || pb.VideoDecodedBytes == 0 || pb.AudioDecodedBytes == 0 {
			t.Errorf("%s: Chromium playback %+v", id, pb)
		}
		sync := synctest.Measure(t, clip, m.ClipStart, rigFrames, heard)
		for _, p := range sync.Problems(40*time.Millisecond, 10*time.Millisecond) {
			t.Errorf("%s: %s\n\t%s", id, p, sync.Report())
		}
		worst, _ := sync.Worst(40 * time.Millisecond)
		worstSync = max(worstSync, worst)
		rigSkews = append(rigSkews, sync.RigSkew)
		flashes += len(sync.Samples)
		leftOut += len(sync.Samples) - len(sync.Good())
	}

	// Resources: start, maximum, end; CPU per minute. The start is taken at
	// 150 s: the ring's memory is mapped, and its pages become resident as
	// the ring first writes them, which at this bitrate takes about two
	// minutes; before that RSS grows by design.
	first := samples[min(15, len(samples)-1)]
	maxRSS, maxFD := 0, 0
	for _, s := range samples {
		maxRSS, maxFD = max(maxRSS, s.rssKB), max(maxFD, s.fds)
	}
	last := samples[len(samples)-1]
	hz := 100.0 // USER_HZ on Linux
	var perMinute []string
	lo, hi := 1e9, 0.0
	for i := 6; i < len(samples); i += 6 {
		pct := float64(samples[i].cpuTicks-samples[i-6].cpuTicks) / hz / samples[i].at.Sub(samples[i-6].at).Seconds() * 100
		lo, hi = min(lo, pct), max(hi, pct)
		perMinute = append(perMinute, fmt.Sprintf("%.1f", pct))
	}
	t.Logf("soak of %d min, %d presses, %d clips verified and played", minutes, len(pressed), len(pressed))
	t.Logf("video frame intervals: %.1f ms to %.1f ms", shortest*1000, longest*1000)
	if len(rigSkews) > 0 {
		t.Logf("sync: %d flashes, %d left out; the recorder's largest offset %.1f ms; the rig's own skew %+.1f to %+.1f ms",
			flashes, leftOut, float64(worstSync)/1e6, float64(slices.Min(rigSkews))/1e6, float64(slices.Max(rigSkews))/1e6)
	}
	t.Logf("RSS MiB: start %.1f, max %.1f, end %.1f", float64(first.rssKB)/1024, float64(maxRSS)/1024, float64(last.rssKB)/1024)
	t.Logf("open files: start %d, max %d, end %d", first.fds, maxFD, last.fds)
	t.Logf("CPU %% of a core per minute: min %.1f, max %.1f: %s", lo, hi, strings.Join(perMinute, " "))
	if last.fds > first.fds+5 {
		t.Errorf("open files grew from %d to %d", first.fds, last.fds)
	}
}
