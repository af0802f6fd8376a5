package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"mamoru/alert"
	"mamoru/config"
	"mamoru/device"
)

const checkHelp = `Usage: mamoru check --config FILE [--no-probe | --send-test] [--key-dir DIR] [--unit-dropin DIR]
       mamoru check --config FILE --list-key-files

Loads and validates the configuration, as 'mamoru run' would, and says
what it sets up. Exit status 2 names the key at fault.

It then tries to reach each alert target, sending nothing a person reads:
a webhook's or ntfy's server is dialled (and its certificate checked), an
MQTT broker or SMTP server is logged in to and left, LINE is asked for
the bot's own information. Exit status 1 names
each target that cannot be reached. --no-probe skips this, on a machine
that is not on the device's network.

--send-test sends each target a test alert instead (alert.test; on an
MQTT broker, on the events topic only), for the installer to see it
arrive on the managers' phones, in their mail or in Home Assistant.

With --key-dir, a site's configuration is checked on the installer's
machine: every key file it names (the storage keys and CA, each alert
target's secret_file, token_file, password_file and ca_file) is read from
DIR under the base name of its path (DIR/ntfy.token for
"/etc/mamoru/ntfy.token"), held to the same mode and content as on the
device. The device's signing key is not asked for: the device makes its
own at first boot. 'make image' runs it on the configuration's folder.

--list-key-files prints the files the device needs with the
configuration, one a line: the key, a tab, and the path the device reads
it at (the signing key is not among them). It reads none of them: 'make
image', 'make install' and the first boot copy and install what it lists.

With --unit-dropin, it also writes DIR/mamoru.service.d/50-memory-max.conf,
which sets the unit's MemoryMax from capture.ring_max_mb; the package's
systemd generator runs it at each boot and daemon-reload. It then reads no
key file, since a generator may run before the keys are in place.`

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	var dropin, keyDir string
	var noProbe, sendTest, listKeys bool
	define := func(fs *flag.FlagSet) {
		fs.StringVar(&dropin, "unit-dropin", "", "write the unit's MemoryMax drop-in under `DIR` (a systemd generator's output directory)")
		fs.BoolVar(&noProbe, "no-probe", false, "do not try to reach the alert targets")
		fs.BoolVar(&sendTest, "send-test", false, "send each alert target a test alert")
		fs.StringVar(&keyDir, "key-dir", "", "read each key file from `DIR`, by the base name of its configured path, and not the signing key")
		fs.BoolVar(&listKeys, "list-key-files", false, "print the key files the device needs (key, tab, path), one a line, and read none")
	}
	// A generator may run before the key files are in place, and the
	// list is asked for before they are: then check reads none. The flags
	// are parsed by the time load runs.
	load := func(path string, environ []string) (config.Config, error) {
		if dropin != "" || listKeys {
			return config.Load(path, environ)
		}
		return config.LoadWith(path, environ, config.LoadOptions{KeyDir: keyDir})
	}
	cfg, code, ok := loadCommand("check", checkHelp, args, stderr, define, load)
	if !ok {
		return code
	}
	if listKeys {
		files, err := cfg.KeyFiles()
		if err != nil {
			fmt.Fprintf(stderr, "mamoru: configuration:\n%v\n", err)
			return 2
		}
		for _, f := range files {
			fmt.Fprintf(stdout, "%s\t%s\n", f.Key, f.Path)
		}
		return 0
	}
	storage := "clips stay on the device"
	if cfg.Storage.Enabled() {
		storage = fmt.Sprintf("uploads to bucket %s at %s", cfg.Storage.Bucket, cfg.Storage.Endpoint)
	}
	fmt.Fprintf(stdout, "configuration OK: device %s in store %s, hardware %s, video %v, audio %v; %s; recording hours: %s\n",
		cfg.Device.ID, cfg.Device.Store, cfg.Hardware.Driver, cfg.Video.Enabled, cfg.Audio.Enabled, storage, cfg.Schedule().Describe(time.Now()))
	fmt.Fprintf(stdout, "memory: ring %d MiB; the unit's MemoryMax=%dM\n", ceilMiB(cfg.RingBytes()), memoryMaxMiB(cfg))
	if dropin != "" {
		path, err := writeMemoryDropin(dropin, cfg)
		if err != nil {
			fmt.Fprintf(stderr, "mamoru check: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "wrote %s\n", path)
		return 0
	}
	switch {
	case len(cfg.Alerts.Targets) == 0 || noProbe && !sendTest:
		return 0
	case noProbe && sendTest:
		fmt.Fprintln(stderr, "mamoru check: --send-test and --no-probe: choose one")
		return 2
	case sendTest:
		return reportAlerts(cfg, device.TestAlerts(context.Background(), cfg, "check"), "took the test alert in %d ms: see that it arrived", stdout, stderr)
	}
	return reportAlerts(cfg, device.ProbeAlerts(context.Background(), cfg), "reached in %d ms", stdout, stderr)
}

// reportAlerts says, for each alert target, whether it was reached (done,
// a format taking the milliseconds it took), and returns 1 if any was
// not.
func reportAlerts(cfg config.Config, probes []device.AlertProbe, done string, stdout, stderr io.Writer) int {
	code := 0
	for _, p := range probes {
		events := strings.Join(p.Target.Events, ", ")
		var perm *alert.Permanent
		switch {
		case p.Err == nil:
			fmt.Fprintf(stdout, "alerts: %s "+done+"; it is told of %s\n", p.Target, p.Took.Milliseconds(), events)
		case errors.Is(p.Err, device.ErrNotProbed):
			fmt.Fprintf(stdout, "alerts: %s not checked (%v); it is told of %s\n", p.Target, p.Err, events)
		default:
			msg := fmt.Sprintf("of %s cannot be reached: %v", p.Target, p.Err)
			if errors.As(p.Err, &perm) {
				msg = fmt.Sprintf("of %s was reached but would not take alerts: %v", p.Target, p.Err)
			}
			fmt.Fprintf(stderr, "mamoru check: %v\n", cfg.Place(&config.Error{Key: fmt.Sprintf("alerts.target[%d].url", p.Index+1), Msg: msg, Err: p.Err}))
			code = 1
		}
	}
	return code
}

// memoryOverheadMiB is what the recorder's cgroup needs beside the ring:
// the Go heap and the clip being written (at most ring + 37 MiB over an
// hour's soak, bench/README.md) and the capture children (rpicam-vid or
// ffmpeg), which share the cgroup, with room to spare. MemoryMax is a
// bound against a runaway, not a measure of the Pi.
const memoryOverheadMiB = 256

func ceilMiB(b int) int { return (b + 1<<20 - 1) >> 20 }

// memoryMaxMiB is the unit's MemoryMax for cfg.
func memoryMaxMiB(cfg config.Config) int { return ceilMiB(cfg.RingBytes()) + memoryOverheadMiB }

// writeMemoryDropin writes dir/mamoru.service.d/50-memory-max.conf
// (temp file, then rename) and returns its path.
func writeMemoryDropin(dir string, cfg config.Config) (string, error) {
	d := filepath.Join(dir, "mamoru.service.d")
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(d, "50-memory-max.conf")
	body := fmt.Sprintf("# Written by mamoru check --unit-dropin from capture.ring_max_mb\n# (ring %d MiB + %d MiB for the heap, the clip being written and\n# the capture children). Do not edit: a later drop-in overrides it.\n[Service]\nMemoryMax=%dM\n",
		ceilMiB(cfg.RingBytes()), memoryOverheadMiB, memoryMaxMiB(cfg))
	f, err := os.CreateTemp(d, ".50-memory-max.conf.*")
	if err != nil {
		return "", err
	}
	_, err = f.WriteString(body)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return path, nil
}
