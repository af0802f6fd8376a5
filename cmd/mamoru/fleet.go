package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"text/tabwriter"
	"time"

	"mamoru/alert"
	"mamoru/clock"
	"mamoru/config"
	"mamoru/device"
	"mamoru/fleet"
	"mamoru/health"
)

const fleetHelp = `Usage: mamoru fleet COMMAND [--config FILE] ...

For managers: every device in the bucket, from the health report each
keeps there (<prefix>/<store>/<device>/health.json). The bucket and
credentials come from FILE's [storage] table, then the environment, as for
'mamoru clips'; the credentials need only s3:ListBucket and s3:GetObject
on the health.json keys.

  mamoru fleet ls [--json]
        each device with its label, how long ago it reported, its state,
        its pending uploads, and what to notice:
          OFFLINE        no report for 3 minutes, in its recording hours
          closed         as silent, but outside its hours: expected to be off
          NOT RECORDING  in a fault, or idle while its hours say it records
          CLOCK OFF      its clock differs from the server's by over 5 s
          REPORT NAMES   the report in its folder names another device
        Ages are on the server's clock, never this machine's.

  mamoru fleet watch --config FILE [--interval 30s] [--cooldown 10m] [--state-dir DIR]
        run on an always-on machine (a manager's PC, a NAS): polls the
        bucket and sends device.offline and device.online to FILE's
        [[alerts.target]] tables (webhook, ntfy, e-mail)`

func cmdFleet(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, fleetHelp)
		return 2
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "ls", "list":
		return fleetLs(ctx, args, stdout, stderr)
	case "watch":
		return fleetWatch(ctx, args, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprintln(stdout, fleetHelp)
		return 0
	}
	fmt.Fprintf(stderr, "mamoru fleet: unknown command %q\n\n%s\n", sub, fleetHelp)
	return 2
}

// fleetFlags are the flags both fleet commands take.
type fleetFlags struct {
	config       string
	offlineAfter time.Duration
}

// fleetCommand parses a fleet command's flags (--config, --offline-after
// and what define adds) and connects to the manager's bucket. ok is false
// when the command should exit with code.
func fleetCommand(name, help string, args []string, stderr io.Writer, define func(*flag.FlagSet)) (b fleet.Bucket, f fleetFlags, code int, ok bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "%s\nOptions:\n", help)
		fs.PrintDefaults()
	}
	fs.StringVar(&f.config, "config", "", "configuration `file` with a [storage] table")
	fs.DurationVar(&f.offlineAfter, "offline-after", fleet.DefaultOfflineAfter, "a device whose report is older than this is silent")
	if define != nil {
		define(fs)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return b, f, 0, false
		}
		return b, f, 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mamoru %s: unexpected argument %q\n", name, fs.Arg(0))
		return b, f, 2, false
	}
	if f.offlineAfter <= 0 {
		fmt.Fprintf(stderr, "mamoru %s: --offline-after must be more than 0\n", name)
		return b, f, 2, false
	}
	mc, client, ok := loadBucket(f.config, stderr)
	if !ok {
		return b, f, 2, false
	}
	return fleet.Bucket{Client: client, Bucket: mc.Storage.Bucket, Prefix: mc.Storage.Prefix}, f, 0, true
}

// fleetRow is a device as fleet ls --json prints it.
type fleetRow struct {
	Store  string `json:"store"` // from where it is in the bucket
	Device string `json:"device"`
	Key    string `json:"key"` // its report's object key
	Label  string `json:"label,omitempty"`
	State  string `json:"state,omitempty"`
	// AgeSeconds is how old its report is: LastModified to the Date of the
	// server's answer, on AgeClock.
	AgeSeconds     *float64  `json:"age_seconds,omitempty"`
	AgeClock       string    `json:"age_clock,omitempty"`
	LastModified   time.Time `json:"last_modified,omitzero"`
	Sent           time.Time `json:"sent,omitzero"`
	PendingUploads *int      `json:"pending_uploads,omitempty"`
	Offline        bool      `json:"offline"`
	Closed         bool      `json:"closed"`
	NotRecording   bool      `json:"not_recording"`
	ClockOff       bool      `json:"clock_off"`
	// ClockOffSeconds is the report's Sent less Last-Modified.
	ClockOffSeconds float64 `json:"clock_off_seconds"`
	// Error says why there is no report: none, or one that fails to parse
	// (naming its key); HoursError why its hours could not be read.
	Error      string         `json:"error,omitempty"`
	HoursError string         `json:"hours_error,omitempty"`
	Report     *health.Report `json:"report,omitempty"`
}

func fleetLs(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var asJSON bool
	b, f, code, ok := fleetCommand("fleet ls", "Usage: mamoru fleet ls [--config FILE] [--json]\n\nLists every device in the bucket, from its health report. See 'mamoru fleet help'.", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	})
	if !ok {
		return code
	}
	devices, err := b.Scan(ctx, fleet.Options{OfflineAfter: f.offlineAfter})
	if err != nil {
		fmt.Fprintf(stderr, "mamoru fleet ls: %s\n", errText(err))
		return 1
	}
	if asJSON {
		writeFleetJSON(stdout, devices, f.offlineAfter)
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tLABEL\tSEEN\tSTATE\tPENDING\tMARKS")
	clocks := map[string]bool{}
	for _, d := range devices {
		seen, state, pending, label := "-", "-", "-", ""
		if !d.LastModified.IsZero() {
			seen = ago(d.Age)
			clocks[d.AgeClock] = true
		}
		if r := d.Report; r != nil {
			state, pending, label = r.State, fmt.Sprint(r.PendingUploads), r.Label
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", printable(d.Name()), printable(label), seen, printable(state), pending, printable(marks(d)))
	}
	tw.Flush()
	if len(devices) == 0 {
		fmt.Fprintln(stderr, "no devices in the bucket")
	}
	if clocks[fleet.LocalClock] {
		fmt.Fprintln(stderr, "note: the server sent no Date with some reports: their age is by this machine's clock")
	}
	return 0
}

func writeFleetJSON(w io.Writer, devices []fleet.Device, offlineAfter time.Duration) {
	out := struct {
		// Clock is whose clock the ages are on: "server" (the Date of its
		// answers), "local" where the server sent none.
		Clock               string     `json:"clock"`
		ServerTime          time.Time  `json:"server_time,omitzero"`
		OfflineAfterSeconds float64    `json:"offline_after_seconds"`
		Devices             []fleetRow `json:"devices"`
	}{Clock: fleet.ServerClock, OfflineAfterSeconds: offlineAfter.Seconds(), Devices: []fleetRow{}}
	for _, d := range devices {
		row := fleetRow{Store: d.Store, Device: d.Device, Key: d.Key, LastModified: d.LastModified,
			Offline: d.Offline, Closed: d.Closed, NotRecording: d.NotRecording, ClockOff: d.ClockOff,
			ClockOffSeconds: d.ClockOffBy.Seconds(), Report: d.Report}
		if !d.LastModified.IsZero() {
			age := d.Age.Seconds()
			row.AgeSeconds, row.AgeClock = &age, d.AgeClock
			if d.AgeClock == fleet.LocalClock {
				out.Clock = fleet.LocalClock
			} else if d.Now.After(out.ServerTime) {
				out.ServerTime = d.Now
			}
		}
		if r := d.Report; r != nil {
			row.Label, row.State, row.Sent, row.PendingUploads = r.Label, r.State, r.Sent, &r.PendingUploads
		}
		if d.Err != nil {
			row.Error = d.Err.Error()
		}
		if d.HoursErr != nil {
			row.HoursError = d.HoursErr.Error()
		}
		out.Devices = append(out.Devices, row)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(out)
}

// marks says what to notice about d, in a few words.
func marks(d fleet.Device) string {
	var s string
	add := func(m string) {
		if s != "" {
			s += ", "
		}
		s += m
	}
	if d.Err != nil {
		add("ERROR " + d.Err.Error())
	}
	if r := d.Report; r != nil && (r.Store != d.Store || r.Device != d.Device) {
		// The device's keys write only in its own folder: a report that
		// names another was put there by someone else, or by a device
		// configured as another.
		add("REPORT NAMES " + r.Store + "/" + r.Device)
	}
	if d.Offline {
		add("OFFLINE")
	}
	if d.Closed {
		add("closed")
	}
	if d.NotRecording {
		add("NOT RECORDING")
		if r := d.Report; r != nil && r.Fault != "" {
			s += " (" + r.Fault + ")"
		}
	}
	if d.ClockOff {
		add(fmt.Sprintf("CLOCK OFF by %+.0f s", d.ClockOffBy.Seconds()))
	}
	if d.HoursErr != nil {
		add("hours unreadable: " + d.HoursErr.Error())
	}
	return s
}

// ago says an age as a person reads it: "42s ago", "12m ago", "3h ago".
func ago(d time.Duration) string {
	switch {
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

const fleetWatchHelp = `Usage: mamoru fleet watch --config FILE [--interval 30s] [--cooldown 10m] [--state-dir DIR]

Polls the bucket every interval and sends device.offline when a device's
report is older than 3 minutes in its recording hours, and device.online
when it reports again, to FILE's [[alerts.target]] tables, each through a
durable queue under DIR/alerts. A device silent outside its hours is
closed and pages nobody; if it does not come back when its hours begin,
it is offline then. After a device.online, the next device.offline of
that device waits until the cooldown has passed: a flapping Wi-Fi makes
one pair of alerts per cooldown. What it has said is kept in
DIR/watch.json, so a restart says nothing twice; the first start says
each device already offline once. MQTT targets follow one device and are
refused here.`

func fleetWatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var interval, cooldown time.Duration
	var stateDir string
	b, f, code, ok := fleetCommand("fleet watch", fleetWatchHelp, args, stderr, func(fs *flag.FlagSet) {
		fs.DurationVar(&interval, "interval", 30*time.Second, "how often to poll the bucket")
		fs.DurationVar(&cooldown, "cooldown", fleet.DefaultCooldown, "after a device.online, how long the next device.offline of that device waits")
		fs.StringVar(&stateDir, "state-dir", "", "`directory` for what it has said and the alert queues (default "+defaultWatchDir()+")")
	})
	if !ok {
		return code
	}
	switch {
	case f.config == "":
		fmt.Fprintln(stderr, "mamoru fleet watch: --config FILE is required: its [[alerts.target]] tables say whom to tell")
		return 2
	case interval <= 0 || cooldown <= 0:
		fmt.Fprintln(stderr, "mamoru fleet watch: --interval and --cooldown must be more than 0")
		return 2
	}
	alerts, err := config.LoadAlerts(f.config, os.Environ())
	if err != nil {
		fmt.Fprintf(stderr, "mamoru: configuration:\n%v\n", err)
		return 2
	}
	if len(alerts.Targets) == 0 {
		fmt.Fprintf(stderr, "mamoru fleet watch: %s has no [[alerts.target]]: there is nobody to tell\n", f.config)
		return 2
	}
	for i, t := range alerts.Targets {
		if t.Kind == config.KindMQTT {
			fmt.Fprintf(stderr, "mamoru fleet watch: alerts.target[%d] (%s): an MQTT target follows one device's state; fleet watch sends to webhook, ntfy and e-mail targets\n", i+1, t)
			return 2
		}
	}
	if stateDir == "" {
		stateDir = defaultWatchDir()
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		fmt.Fprintf(stderr, "mamoru fleet watch: --state-dir: %v\n", err)
		return 2
	}
	unlock, err := fleet.LockState(stateDir)
	if err != nil {
		fmt.Fprintf(stderr, "mamoru fleet watch: %v\n", err)
		return 1
	}
	defer unlock()
	log := slog.New(slog.NewTextHandler(stderr, nil))
	disp, err := device.NewDispatcher(alerts.Targets, config.Device{}, filepath.Join(stateDir, "alerts"), device.DispatcherOptions{Log: log})
	if err != nil {
		fmt.Fprintf(stderr, "mamoru fleet watch: %v\n", err)
		return 2
	}
	statePath := filepath.Join(stateDir, "watch.json")
	w, err := fleet.LoadWatch(statePath, clock.Real(), cooldown)
	if err != nil {
		fmt.Fprintf(stderr, "mamoru fleet watch: %v\n", err)
		return 1
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	dispatched := make(chan struct{})
	go func() { defer close(dispatched); disp.Run(ctx) }()
	defer func() { stop(); <-dispatched }()

	fmt.Fprintf(stdout, "watching %s/%s every %s (offline after %s, cooldown %s; state in %s)\n", b.Bucket, b.Prefix, interval, f.offlineAfter, cooldown, stateDir)
	publish := func(e alert.Event) bool {
		// On the card before watch.json says it was raised: a crash
		// between the two raises it again, under the same id.
		if err := disp.Put(e); err != nil {
			return false
		}
		fmt.Fprintf(stdout, "%s %s %s/%s: %s\n", e.Time.Format(time.RFC3339), e.Name, printable(e.Store), printable(e.Device), printable(e.Details["reason"]))
		return true
	}
	var lastErr string
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		devices, err := b.Scan(ctx, fleet.Options{OfflineAfter: f.offlineAfter})
		switch {
		case ctx.Err() != nil:
			return 0
		case err != nil:
			// Nothing is judged without a whole scan: a bucket that cannot
			// be read says nothing of the devices.
			if msg := err.Error(); msg != lastErr {
				log.Error("fleet watch: cannot read the bucket; no device is judged until it can", "err", msg)
				lastErr = msg
			}
		default:
			if lastErr != "" {
				log.Info("fleet watch: the bucket can be read again")
				lastErr = ""
			}
			w.Observe(devices, publish)
			if err := w.Save(statePath); err != nil {
				log.Error("fleet watch: cannot keep its state: a restart may say an alert again (under the same id)", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return 0
		case <-ticker.C:
		}
	}
}

// defaultWatchDir is fleet watch's state directory unless --state-dir
// says: $XDG_STATE_HOME/mamoru/fleet-watch, ~/.local/state/mamoru/fleet-watch
// on Linux and the BSDs, else under the user's configuration directory.
func defaultWatchDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "mamoru", "fleet-watch")
	}
	if runtime.GOOS != "windows" && runtime.GOOS != "darwin" {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, ".local", "state", "mamoru", "fleet-watch")
		}
	}
	if d, err := os.UserConfigDir(); err == nil {
		return filepath.Join(d, "mamoru", "fleet-watch")
	}
	return "mamoru-fleet-watch"
}
