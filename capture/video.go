package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"mamoru/backoff"
	"mamoru/capture/h264"
	"mamoru/clock"
	"mamoru/config"
)

// VideoSource runs the camera's encoder as a child process writing H.264
// Annex-B to stdout, cuts the stream into frames, stamps them on Timeline
// and writes them to Ring. A child that exits, stalls, sends garbage or
// never sends an IDR frame is killed and restarted with backoff, and the log
// says why.
//
// The child runs in a process group of its own, and the whole group is
// killed when a session ends, so that nothing a camera command started can
// hold the camera. Where there are no process groups (Windows), only the
// child itself is killed.
type VideoSource struct {
	Config   config.Video
	Timeline *Timeline // required
	Ring     *Ring     // required
	Log      *slog.Logger
	Backoff  backoff.Backoff
	// Clock runs the restart backoff and the watchdog's limits; nil is
	// clock.Real().
	Clock clock.Clock
	// FirstIDR is how long a new child may take to send its first IDR frame
	// (0: 10 s or three key frame intervals, whichever is longer); Stall is
	// how long the stream may then pause (0: 5 s or ten frames).
	FirstIDR, Stall time.Duration

	health healthBox
	st     *stamper // lives across sessions; used by Run's goroutine only
}

// Health returns the source's state.
func (v *VideoSource) Health() Health { return v.health.get() }

// Run captures until ctx ends, as Source says.
func (v *VideoSource) Run(ctx context.Context) error {
	if v.Timeline == nil || v.Ring == nil {
		return errors.New("capture: a VideoSource needs a Timeline and a Ring")
	}
	r := &restarter{clock: clock.Or(v.Clock), backoff: v.Backoff, health: &v.health,
		log: orDefault(v.Log).With("source", v.Config.Source), what: "video source"}
	return r.run(ctx, func(ctx context.Context) error { return v.session(ctx, r.clock, r.log) })
}

// Errors a session ends with.
var (
	ErrNoIDR   = errors.New("no IDR frame")
	ErrStalled = errors.New("no frame")
)

const (
	// watchdogTick is how often a session checks the stream's limits.
	watchdogTick = 250 * time.Millisecond
	// stopGrace is how long a stopped child may take to exit after SIGTERM
	// before its process group is killed.
	stopGrace = 3 * time.Second
)

func (v *VideoSource) session(ctx context.Context, clk clock.Clock, log *slog.Logger) error {
	argv, err := VideoCommand(v.Config)
	if err != nil {
		return fatalError{err}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	// Stopping sends SIGTERM to the child's process group; the encoder must
	// never outlive mamoru either (see startInGroup).
	startInGroup(cmd)
	// exec's own deadline for the child to exit and its pipes to close is
	// real time: the kernel knows no other.
	cmd.WaitDelay = stopGrace
	stderr := &tail{max: 2048}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", argv[0], err)
	}
	v.health.running(true)
	log.Info("video source started", "pid", cmd.Process.Pid)

	// Both goroutines below end before the session returns: the watchdog
	// when done closes (or when it has cancelled the session), the killer
	// when ended closes.
	var wg sync.WaitGroup
	ended := make(chan struct{})
	defer wg.Wait()
	defer close(ended)
	// After WaitDelay os/exec kills the child it started, but a process of
	// its group that ignored SIGTERM and holds stdout (the encoder of a
	// "command" run by a shell) would keep the reader below waiting for the
	// end of the stream. So the whole group gets SIGKILL then.
	wg.Go(func() {
		select {
		case <-ended:
			return
		case <-ctx.Done():
		}
		t := clk.NewTimer(cmd.WaitDelay)
		defer t.Stop()
		select {
		case <-ended:
		case <-t.Chan():
			killGroup(cmd)
		}
	})

	period := time.Second / time.Duration(v.Config.FPS)
	gop := time.Duration(v.Config.KeyframeInterval) * period
	firstIDR, stallAfter := v.FirstIDR, v.Stall
	if firstIDR <= 0 {
		firstIDR = max(10*time.Second, 3*gop)
	}
	if stallAfter <= 0 {
		stallAfter = max(5*time.Second, 10*period)
	}

	var mu sync.Mutex // guards lastFrame, sawIDR and bareIDR between the reader and the watchdog
	started := clk.Now()
	lastFrame, sawIDR, bareIDR := started, false, false
	done := make(chan struct{})
	wg.Go(func() {
		tick := clk.NewTicker(watchdogTick)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.Chan():
			}
			now := clk.Now()
			mu.Lock()
			last, idr, bare := lastFrame, sawIDR, bareIDR
			mu.Unlock()
			switch {
			case !idr && bare && now.Sub(started) > firstIDR:
				cancel(fmt.Errorf("%w within %v of starting: its IDR frames came without an SPS and PPS, which the encoder must send in the stream", ErrNoIDR, firstIDR))
				return
			case !idr && now.Sub(started) > firstIDR:
				cancel(fmt.Errorf("%w within %v of starting", ErrNoIDR, firstIDR))
				return
			case idr && now.Sub(last) > stallAfter:
				cancel(fmt.Errorf("%w for %v", ErrStalled, stallAfter))
				return
			}
		}
	})

	p := h264.NewParser(out)
	// One stamper for the source's whole life, so a restarted camera's
	// frames never stamp before the last one's.
	if v.st == nil || v.st.nominal != period {
		s := newStamper(period)
		v.st = &s
	}
	st := v.st
	buf := make([]byte, 0, 1<<20)
	var params h264.ParamSets // per session: a restarted encoder may send new ones
	warnedB := false
	var readErr error
	for {
		au, err := p.Next()
		if err != nil {
			readErr = err
			break
		}
		if au.HasBSlice && !warnedB {
			warnedB = true
			log.Warn("video stream has B-frames: clip timing needs an encoder without B-frames")
		}
		params.Update(au)
		var key bool
		buf, key = params.AppendAVCC(buf[:0], au)
		mu.Lock()
		sawIDR = sawIDR || key
		bareIDR = bareIDR || au.IDR && !key
		idr := sawIDR
		mu.Unlock()
		if !idr {
			continue // a clip cannot start before the first IDR it can decode
		}
		// A frame is complete when the next one starts arriving, about one
		// period after it arrived itself.
		t, jumped := st.stamp(v.Timeline.Now() - period)
		if jumped {
			log.Warn("video frames arrived late; timeline resynchronised", "at", t)
		}
		if err := v.Ring.Write(Frame{Track: Video, Time: t, Key: key, Data: buf}); err != nil {
			readErr = err
			break
		}
		mu.Lock()
		lastFrame = clk.Now()
		mu.Unlock()
		v.health.frame(t)
	}
	close(done)
	if readErr != nil && !errors.Is(readErr, io.EOF) {
		cancel(fmt.Errorf("bad H.264 stream: %w", readErr))
	}
	waitErr := cmd.Wait()
	// The child has exited, but what it started may not have: a process
	// that ignored SIGTERM and let go of stdout, or one started by a child
	// that died by itself. Left running, it could hold the camera, and the
	// next session's encoder would find it busy.
	if err := reapGroup(cmd); err != nil {
		log.Error("a process of the video command outlived it", "err", err)
	}
	if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
		if errors.Is(cause, context.Canceled) {
			return nil
		}
		return fmt.Errorf("%s: %w%s", v.Config.Source, cause, stderr.suffix())
	}
	if waitErr == nil {
		waitErr = errors.New("exited")
	}
	return fmt.Errorf("%s: %w%s", v.Config.Source, waitErr, stderr.suffix())
}

// VideoCommand returns the command line of the encoder for cfg.
func VideoCommand(cfg config.Video) ([]string, error) {
	size := fmt.Sprintf("%dx%d", cfg.Width, cfg.Height)
	gop := fmt.Sprint(cfg.KeyframeInterval)
	rate := fmt.Sprintf("%dk", cfg.BitrateKbps)
	x264 := []string{"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-bf", "0",
		"-g", gop, "-keyint_min", gop, "-sc_threshold", "0",
		"-b:v", rate, "-maxrate", rate, "-bufsize", fmt.Sprintf("%dk", cfg.BitrateKbps/2), "-pix_fmt", "yuv420p"}
	ffmpeg := []string{"ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error"}
	h264out := []string{"-f", "h264", "-"}
	switch cfg.Source {
	case config.SourceRpicam:
		return []string{"rpicam-vid", "--inline", "--flush", "-t", "0", "-n", "--codec", "h264",
			"--width", fmt.Sprint(cfg.Width), "--height", fmt.Sprint(cfg.Height),
			"--framerate", fmt.Sprint(cfg.FPS), "--bitrate", fmt.Sprint(cfg.BitrateKbps * 1000),
			"--intra", gop, "-o", "-"}, nil
	case config.SourceV4L2:
		args := append(ffmpeg, "-f", "v4l2", "-framerate", fmt.Sprint(cfg.FPS), "-video_size", size, "-i", cfg.Device)
		if hasV4L2Encoder() {
			args = append(args, "-c:v", "h264_v4l2m2m", "-b:v", rate, "-g", gop, "-bf", "0", "-pix_fmt", "yuv420p")
		} else {
			args = append(args, x264...)
		}
		return append(args, h264out...), nil
	case config.SourceTestsrc:
		filter := fmt.Sprintf("testsrc2=size=%s:rate=%d", size, cfg.FPS)
		if font := clockFont(); font != "" {
			// The wall clock and the frame number are burned in, so a viewer
			// (and the tests) can see that no frame is missing.
			filter += fmt.Sprintf(",drawtext=fontfile=%s:fontsize=%d:fontcolor=white:box=1:boxcolor=black@0.6:x=10:y=10:text='%%{localtime\\:%%F %%T} #%%{n}'",
				font, max(cfg.Height/15, 12))
		}
		args := append(ffmpeg, "-re", "-f", "lavfi", "-i", filter)
		args = append(args, x264...)
		return append(args, h264out...), nil
	case config.SourceCommand:
		return []string{"/bin/sh", "-c", cfg.Command}, nil
	}
	return nil, fmt.Errorf("'video.source' %q is not a video source", cfg.Source)
}

func clockFont() string {
	for _, f := range []string{"/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"} {
		if _, err := os.Stat(f); err == nil {
			return f
		}
	}
	return ""
}

// hasV4L2Encoder reports whether the Pi's hardware H.264 encoder is there
// (Pi 4 has it at /dev/video11; Pi 5 has none) and ffmpeg can drive it.
func hasV4L2Encoder() bool {
	if _, err := os.Stat("/dev/video11"); err != nil {
		return false
	}
	out, err := exec.Command("ffmpeg", "-hide_banner", "-encoders").Output()
	return err == nil && bytes.Contains(out, []byte("h264_v4l2m2m"))
}

// tail keeps the last max bytes written to it: a child's last words.
type tail struct {
	mu  sync.Mutex // guards buf
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = t.buf[over:]
	}
	return len(p), nil
}

// suffix returns ": <last stderr line>" or "".
func (t *tail) suffix() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.buf))
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	return ": " + strings.TrimSpace(lines[len(lines)-1])
}
