package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"

	"mamoru/bucket"
	"mamoru/clock"
	"mamoru/config"
	"mamoru/device"
	"mamoru/hardware"
	"mamoru/outbox"
)

const runHelp = `Usage: mamoru run --config FILE

Runs the recorder: lights the indicator, captures audio and video into the
in-memory pre-event ring, and saves a clip to <state_dir>/incidents/<id>/
when the incident button is pressed (or 'mamoru trigger' is run). With
[hardware] driver = "sim", this terminal is the counter: it shows the
indicator, and Enter presses the button.

Logs go to stderr. SIGINT or SIGTERM finishes any clip, closes the camera and
microphone, then turns the indicator off.`

func cmdRun(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var logLevel, cpuProfile string
	cfg, code, ok := command("run", runHelp, args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
		fs.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile (go tool pprof) of the whole run to `file`, for bench/run")
	})
	if !ok {
		return code
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(stderr, "mamoru run: --cpuprofile: %v\n", err)
			return 2
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		fmt.Fprintf(stderr, "mamoru run: --log-level %q: want debug, info, warn or error\n", logLevel)
		return 2
	}
	var handler slog.Handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})
	if toJournal(stderr) {
		handler = newJournalHandler(stderr, level)
	}
	log := slog.New(handler)

	// One clock for the recorder and every part that stamps or waits, and
	// the wall clock apart from it.
	clk, wall := clock.Real(), clock.Real()
	var ind hardware.Indicator
	var button hardware.Button
	switch cfg.Hardware.Driver {
	case config.DriverSim:
		sim := &hardware.Sim{In: stdin, Out: stdout, Clock: clk}
		ind, button = sim, sim
		fmt.Fprintln(stdout, "[counter] simulated counter: press Enter to raise an incident, Ctrl-C to stop")
	case config.DriverGPIO:
		gi, gb, err := hardware.OpenGPIO(cfg.Hardware, clk)
		if err != nil {
			fmt.Fprintf(stderr, "mamoru: %v\n", err)
			return 1
		}
		ind, button = gi, gb
	}
	parts, err := device.NewCapture(cfg, clk, wall, log)
	if err != nil {
		fmt.Fprintf(stderr, "mamoru: %v\n", err)
		return 1
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	sd := newNotifier()
	shown := &counter{ctx: ctx, out: stdout, bucket: cfg.Storage.Bucket}
	rec := &device.Recorder{
		Config:    cfg,
		Indicator: ind,
		Button:    button,
		Capture:   parts,
		Clock:     clk,
		Wall:      wall,
		Log:       log,
		Version:   version,
		Events:    shown.show,
		Ready:     func() { sd.send("READY=1\nSTATUS=recording behind the indicator") },
		Healthy:   func() { sd.send("WATCHDOG=1") },
	}
	defer sd.send("STOPPING=1")
	// Alerts: each target's queue on the card, fed from the recorder's
	// events without waiting. They outlive the recorder's shutdown by as
	// long as it takes to queue its last events (delivered at next start).
	disp, err := device.NewAlerts(cfg, clk, wall, log, rec.AlertAccepted)
	if err != nil {
		fmt.Fprintf(stderr, "mamoru: %v\n", err)
		return 1
	}
	if disp != nil {
		alerts := &device.Alerts{Publish: disp.Publish, Origin: device.OriginOf(cfg)}
		alerts.Keep = disp.Put
		rec.Events = func(e device.Event) { shown.show(e); alerts.Show(e) }
		rec.Interrupted = alerts.Interrupted
		rec.AlertStatus = disp.Status
		rec.Reports = disp.Follow
		actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		go func() { defer close(done); disp.Run(actx) }()
		defer func() { cancel(); <-done }()
	}
	if cfg.Storage.Enabled() {
		rec.Uploader = device.NewUploader(rec)
		// health.json, every minute and at each change, around the clips.
		hw, err := device.NewHealth(rec)
		if err != nil {
			fmt.Fprintf(stderr, "mamoru: %v\n", err)
			return 1
		}
		rec.Health = hw
		// On the simulated counter the person at the keyboard is also the
		// manager: show them the clip in the bucket straight away.
		shown.uploads = cfg.Hardware.Driver == config.DriverSim
		if client, err := bucket.NewClient(cfg.Storage); err == nil && shown.uploads {
			shown.clips = client
		}
	}
	if err := rec.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "mamoru: %v\n", err)
		return 1
	}
	return 0
}

// counter shows the person at the counter (or the journal) a line for each
// incident saved or failed and each press refused for a full spool, and on
// the simulated counter where each clip went in the bucket.
type counter struct {
	ctx     context.Context // the run's: a share link is not worth a shutdown's wait
	out     io.Writer
	bucket  string
	uploads bool // say where each clip went in the bucket
	// clips, if set, reads the bucket to offer a share link.
	clips *minio.Core

	mu sync.Mutex // guards out: the uploader reports from its own goroutine
}

// show prints e's line, if it has one. It never waits on the network while
// holding the lock the recorder's own events take.
func (c *counter) show(e device.Event) {
	var line string
	switch {
	case e.Kind == device.EventPress && errors.Is(e.Err, device.ErrSpoolFull):
		line = e.Err.Error() + "\n"
	case e.Kind == device.EventIncident && e.Err != nil:
		line = fmt.Sprintf("incident %s: clip FAILED: %v\n", e.Incident, e.Err)
	case e.Kind == device.EventIncident && e.Clip != "":
		m := e.Manifest
		line = fmt.Sprintf("incident %s saved (%s): %s (%.1f s, %d bytes)\n", m.Incident, m.State, e.Clip, m.DurationSeconds, m.Clip.Size)
	case e.Kind == device.EventSound && !e.Sound.Ended:
		what := "alerted"
		if e.Action == config.ListenIncident {
			what = "alerted, and an incident raised"
		}
		line = fmt.Sprintf("raised voice heard: %+.1f dB over the usual level for %.1f s; %s\n", e.Sound.AboveDB, e.Sound.Duration.Seconds(), what)
	case e.Kind == device.EventUploaded && c.uploads:
		// Shipped runs on the uploader's goroutine: the lookup holds up
		// only the next upload, never the recorder.
		line = c.uploaded(*e.Manifest, e.Object)
	}
	if line != "" {
		c.mu.Lock()
		defer c.mu.Unlock()
		fmt.Fprint(c.out, line)
	}
}

// uploaded says where the incident is in the bucket, with a link that
// plays it. A link is signed locally, so it is only shown if these keys may
// read the clip: a device's write-only keys would sign one that the server
// refuses.
func (c *counter) uploaded(m outbox.Manifest, dir string) string {
	where := fmt.Sprintf("incident %s uploaded to s3://%s/%s/\n", m.Incident, c.bucket, dir)
	if c.clips != nil {
		ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
		defer cancel()
		clips := bucket.Clips{Client: c.clips.Client, Bucket: c.bucket}
		e := bucket.Entry{Dir: dir, Manifest: m}
		if _, err := c.clips.StatObject(ctx, c.bucket, e.Clip(), minio.StatObjectOptions{}); err == nil {
			if u, err := clips.Share(ctx, e, 24*time.Hour); err == nil {
				return where + fmt.Sprintf("share (mamoru clips share %s/%s/%s, valid 24 h): %s\n", m.Store, m.Device, m.Incident, u)
			}
		}
	}
	// An id is unique per device only: a manager names it store/device/id.
	return where + fmt.Sprintf("share with a manager's keys: mamoru clips share %s/%s/%s\n", m.Store, m.Device, m.Incident)
}
