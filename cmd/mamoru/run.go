package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"mamoru/bucket"
	"mamoru/config"
	"mamoru/device"
	"mamoru/hardware"
	"mamoru/outbox"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
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
	var logLevel string
	cfg, code, ok := command("run", runHelp, args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	})
	if !ok {
		return code
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

	var ind hardware.Indicator
	var button hardware.Button
	switch cfg.Hardware.Driver {
	case config.DriverSim:
		sim := &hardware.Sim{In: stdin, Out: stdout}
		ind, button = sim, sim
		fmt.Fprintln(stdout, "[counter] simulated counter: press Enter to raise an incident, Ctrl-C to stop")
	case config.DriverGPIO:
		gi, gb, err := hardware.OpenGPIO(cfg.Hardware)
		if err != nil {
			fmt.Fprintf(stderr, "mamoru: %v\n", err)
			return 1
		}
		ind, button = gi, gb
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	sd := newNotifier()
	rec := &device.Recorder{
		Config:    cfg,
		Indicator: ind,
		Button:    button,
		Log:       log,
		Version:   version,
		Out:       stdout,
		Ready:     func() { sd.send("READY=1\nSTATUS=recording behind the indicator") },
		Healthy:   func() { sd.send("WATCHDOG=1") },
	}
	defer sd.send("STOPPING=1")
	if cfg.Hardware.Driver == config.DriverSim && cfg.Storage.Enabled() {
		// On the simulated counter the person at the keyboard is also the
		// manager: show them the clip in the bucket straight away.
		rec.Uploaded = func(m outbox.Manifest, dir string) {
			fmt.Fprintf(stdout, "incident %s uploaded to s3://%s/%s/\n", m.Incident, cfg.Storage.Bucket, dir)
			// A link is signed locally, so it is only shown if these keys
			// may read the clip: a device's write-only keys would sign one
			// that the server refuses.
			if client, err := bucket.NewClient(cfg.Storage); err == nil {
				clips := bucket.Clips{Client: client.Client, Bucket: cfg.Storage.Bucket, Prefix: cfg.Storage.Prefix}
				e := bucket.Entry{Dir: dir, Manifest: m}
				if _, err := client.StatObject(ctx, cfg.Storage.Bucket, e.Clip(), minio.StatObjectOptions{}); err == nil {
					if u, err := clips.Share(ctx, e, 24*time.Hour); err == nil {
						fmt.Fprintf(stdout, "share (mamoru clips share %s, valid 24 h): %s\n", m.Incident, u)
						return
					}
				}
			}
			fmt.Fprintf(stdout, "share with a manager's keys: mamoru clips share %s\n", m.Incident)
		}
	}
	if err := rec.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "mamoru: %v\n", err)
		return 1
	}
	return 0
}
