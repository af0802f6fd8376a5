// Command mamoru is the firmware of the mamoru counter recorder: it keeps
// the last minute of audio and video in RAM while a "recording" indicator
// is lit, and when staff press the incident button it saves the clip around
// the press as a playable MP4.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
	_ "time/tzdata" // the Pi image may have no zoneinfo; Asia/Tokyo must always load

	"mamoru/config"
	"mamoru/device"
)

// version is stamped by the Makefile from git.
var version = "dev"

const usage = `mamoru: the counter recorder (カスハラ対策 録音・録画)

Usage:
  mamoru run     --config FILE         run the recorder
  mamoru trigger --config FILE         raise an incident, as the button does
  mamoru status  --config FILE [--json]  show the running recorder's state
  mamoru audit   --config FILE         verify the audit log's hash chain
  mamoru check   --config FILE         validate a configuration
  mamoru clips   ls|get|verify|share   for managers: the clips in the bucket
  mamoru fleet   ls|watch              for managers: every device's health, and
                                       alerts when one goes silent
  mamoru console --config FILE         for managers: the console in a browser
  mamoru console adduser NAME --role viewer|manager --config FILE
                                       for managers: a console user (for a team)
  mamoru storage init --config FILE    for installers: prepare the bucket
  mamoru provision --store S --device D [--out DIR] [--endpoint ... --bucket ...]
                                       for installers: a device's config and signing key
  mamoru keygen --config FILE [--owner USER] [--public-out FILE]
                                       on the device at first boot: its signing key
  mamoru selftest --config FILE [--quick]
                                       for installers: check the device, pass/fail
  mamoru listen  --config FILE [--minutes N]
                                       for installers: the loudness the running
                                       recorder hears, against its threshold
  mamoru policy render --config FILE --lang ja|en --out DIR
                                       the operating rules and the store notice
  mamoru version                       print the version

Run 'mamoru COMMAND --help' for a command's options.
Exit status: 0 success, 1 failure, 2 bad usage or configuration.
`

func main() {
	args := os.Args[1:]
	if len(args) == 0 && strings.HasPrefix(filepath.Base(os.Args[0]), "mamoru-console") {
		// The console's download, opened by a double-click: serve the
		// configuration beside it, and keep the window open on failure
		// so that its message can be read.
		exe, err := os.Executable()
		if err != nil {
			exe = os.Args[0]
		}
		code := run(context.Background(), []string{"console", "--config", filepath.Join(filepath.Dir(exe), ManagerFile)}, os.Stdin, os.Stdout, os.Stderr)
		if code != 0 {
			fmt.Fprintln(os.Stderr, "\nPress Enter to close. / Enter キーで閉じます。")
			bufio.NewReader(os.Stdin).ReadString('\n')
		}
		os.Exit(code)
	}
	os.Exit(run(context.Background(), args, os.Stdin, os.Stdout, os.Stderr))
}

// ManagerFile is the manager's configuration the console's download reads
// from its own folder when it is opened without arguments.
const ManagerFile = "manager.toml"

// run runs the command in args and returns the exit status. Ending ctx stops
// `mamoru run` as SIGINT or SIGTERM does.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "run":
		return cmdRun(ctx, args, stdin, stdout, stderr)
	case "trigger":
		return cmdTrigger(ctx, args, stdout, stderr)
	case "status":
		return cmdStatus(ctx, args, stdout, stderr)
	case "audit":
		return cmdAudit(args, stdout, stderr)
	case "clips":
		return cmdClips(ctx, args, stdout, stderr)
	case "fleet":
		return cmdFleet(ctx, args, stdout, stderr)
	case "console":
		return cmdConsole(ctx, args, stdin, stdout, stderr)
	case "storage":
		return cmdStorage(ctx, args, stdout, stderr)
	case "policy":
		return cmdPolicy(args, stdout, stderr)
	case "check":
		return cmdCheck(args, stdout, stderr)
	case "provision":
		return cmdProvision(args, stdout, stderr)
	case "keygen":
		return cmdKeygen(args, stdout, stderr)
	case "selftest":
		return cmdSelftest(ctx, args, stdin, stdout, stderr)
	case "listen":
		return cmdListen(ctx, args, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "mamoru", version)
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "mamoru: unknown command %q\n\n%s", cmd, usage)
	return 2
}

// command parses a command's flags (always --config, plus what define
// adds) and loads the configuration with its secrets: the storage
// credentials and the signing key, which the commands that talk to the
// bucket or sign need (run, selftest, storage init, check). ok is false
// when the command should exit with code: 0 after --help, 2 for bad usage
// or configuration.
func command(name, help string, args []string, stderr io.Writer, define func(*flag.FlagSet)) (cfg config.Config, code int, ok bool) {
	return loadCommand(name, help, args, stderr, define, config.LoadWithSecrets)
}

// commandWithoutSecrets is command for the commands that neither talk to
// the bucket nor sign (status, trigger, audit, policy render): it reads no
// key file, so a person who may not read the device's 0600 keys can still
// see its state.
func commandWithoutSecrets(name, help string, args []string, stderr io.Writer, define func(*flag.FlagSet)) (cfg config.Config, code int, ok bool) {
	return loadCommand(name, help, args, stderr, define, config.Load)
}

func loadCommand(name, help string, args []string, stderr io.Writer, define func(*flag.FlagSet), load func(path string, environ []string) (config.Config, error)) (cfg config.Config, code int, ok bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "%s\nOptions:\n", help)
		fs.PrintDefaults()
	}
	path := fs.String("config", "", "configuration `file` (TOML)")
	if define != nil {
		define(fs)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, 0, false
		}
		return cfg, 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mamoru %s: unexpected argument %q\n", name, fs.Arg(0))
		return cfg, 2, false
	}
	if *path == "" {
		fmt.Fprintln(stderr, "mamoru: --config FILE is required")
		return cfg, 2, false
	}
	cfg, err := load(*path, os.Environ())
	if err != nil {
		fmt.Fprintf(stderr, "mamoru: configuration:\n%v\n", err)
		return cfg, 2, false
	}
	return cfg, 0, true
}

func cmdTrigger(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, code, ok := commandWithoutSecrets("trigger", "Usage: mamoru trigger --config FILE\n\nRaises an incident on the running recorder exactly as the button does,\nrecorded with trigger source \"cli\". A press during an incident extends it.", args, stderr, nil)
	if !ok {
		return code
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := device.Trigger(ctx, cfg.Device.StateDir, "cli")
	if err != nil {
		fmt.Fprintf(stderr, "mamoru trigger: %v\n", err)
		return 1
	}
	verb := "raised"
	if res.Extended {
		verb = "extended"
	}
	fmt.Fprintf(stdout, "incident %s %s: recording until %s\nclip: %s\n", res.Incident, verb, res.Until.Format(time.RFC3339), res.Clip)
	return 0
}

func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var asJSON bool
	cfg, code, ok := commandWithoutSecrets("status", "Usage: mamoru status --config FILE [--json]\n\nShows the running recorder's state, indicator, buffered seconds, recent\nincidents and pending uploads.", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	})
	if !ok {
		return code
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := device.GetStatus(ctx, cfg.Device.StateDir)
	if err != nil {
		fmt.Fprintf(stderr, "mamoru status: %v\n", err)
		return 1
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(st)
		return 0
	}
	writeStatus(stdout, st)
	return 0
}

// writeStatus prints st for a person at the device: what is wrong first
// within each part.
func writeStatus(w io.Writer, st device.Status) {
	ind := "off"
	if st.Indicator {
		ind = "ON"
	}
	fmt.Fprintf(w, "state:      %s\nindicator:  %s\nbuffered:   %.1f s\n", st.State, ind, st.BufferedSeconds)
	if st.Fault != "" {
		fmt.Fprintf(w, "fault:      %s\n", st.Fault)
	}
	if st.Closed != "" {
		fmt.Fprintf(w, "closed:     %s\n", st.Closed)
	}
	if !st.ClockSynced {
		fmt.Fprintf(w, "clock:      NOT SYNCED: times may be off until NTP sets the clock\n")
	}
	if st.ButtonStuck {
		fmt.Fprintf(w, "button:     STUCK: held for over 30 s; check the button and its wiring\n")
	}
	if st.IncidentError != "" {
		fmt.Fprintf(w, "incident error: %s\n", st.IncidentError)
	}
	fmt.Fprintf(w, "storage:    %s\npending:    %d uploads (%d bytes)\n", st.Storage, st.PendingUploads, st.PendingBytes)
	if st.SpoolFull {
		fmt.Fprintf(w, "spool:      FULL: %d bytes of clips wait; new presses are refused until they upload\n", st.SpoolBytes)
	}
	if u := st.Uploads; u != nil {
		if u.LastError != "" {
			what := "last upload error"
			if u.Problem {
				what = "UPLOAD PROBLEM (needs fixing)"
			}
			fmt.Fprintf(w, "%s: %s (%s)\n", what, u.LastError, u.LastErrorAt.Format(time.DateTime))
		}
		for _, h := range u.Held {
			fmt.Fprintf(w, "held:       incident %s since %s, retried %s: %s\n", h.Incident, h.Since.Format(time.DateTime), h.RetryAt.Format(time.DateTime), h.Error)
		}
		if u.Uploading != "" {
			fmt.Fprintf(w, "uploading:  %s (%d bytes sent)\n", u.Uploading, u.SentBytes)
		}
		if u.LastSuccess != "" {
			fmt.Fprintf(w, "last upload: %s (%s)\n", u.LastSuccess, u.LastSuccessAt.Format(time.DateTime))
		}
		if u.AuditSegment != "" {
			fmt.Fprintf(w, "audit log:  uploaded to %s\n", u.AuditSegment)
		}
		if u.AuditError != "" {
			fmt.Fprintf(w, "audit log:  NOT UPLOADED: %s\n", u.AuditError)
		}
	}
	if st.UptimeSeconds > 0 {
		fmt.Fprintf(w, "running:    %s, %d MB free on the card\n", (time.Duration(st.UptimeSeconds) * time.Second).Round(time.Second), st.DiskFree>>20)
	}
	if st.LastIncident != "" {
		fmt.Fprintf(w, "last incident: %s (%s)\n", st.LastIncident, st.LastIncidentAt.Format(time.DateTime))
	}
	if h := st.Health; h != nil {
		switch {
		case h.LastError != "":
			fmt.Fprintf(w, "health:     NOT WRITTEN to the bucket since %s: %s\n", h.FailingSince.Format(time.DateTime), h.LastError)
		case h.Written > 0:
			fmt.Fprintf(w, "health:     written to the bucket %d times, last %s\n", h.Written, h.LastWritten.Format(time.DateTime))
		}
	}
	if a := st.Alerts; a != nil {
		for _, t := range a.Targets {
			line := fmt.Sprintf("%s: %d waiting, %d delivered", t.Label, t.Pending, t.Delivered)
			if !t.LastDeliveredAt.IsZero() {
				line += fmt.Sprintf(", last %s", t.LastDeliveredAt.Format(time.DateTime))
				if t.Late > 0 {
					line += fmt.Sprintf(" (%s late)", t.Late.Round(time.Second))
				}
			}
			switch {
			case t.NeedsFix:
				line += fmt.Sprintf("; ALERT PROBLEM (needs fixing): %s (%s)", t.LastError, t.Fix)
			case t.LastError != "":
				line += "; last error: " + t.LastError
			}
			fmt.Fprintf(w, "alert       %s\n", line)
		}
		if a.Dropped > 0 || a.Lost > 0 {
			fmt.Fprintf(w, "alerts:     %d dropped (too many at once), %d lost (the card refused them)\n", a.Dropped, a.Lost)
		}
	}
	if l := st.Listen; l != nil && l.Enabled {
		usual := "assumed until learned"
		if l.Learned {
			usual = "learned"
		}
		line := fmt.Sprintf("ON, action %s: a raised voice is %g dB over the usual voices, %.1f LUFS (%s)", l.Action, l.RaiseDB, l.BaselineLUFS, usual)
		if n := len(l.Sounds); n > 0 {
			line += fmt.Sprintf("; last raised voice %s, %+.1f dB", l.Sounds[n-1].Start.Format(time.DateTime), l.Sounds[n-1].AboveDB)
		}
		fmt.Fprintf(w, "listening:  %s\n", line)
	}
	for name, h := range st.Sources {
		line := fmt.Sprintf("%s: running=%v frames=%d restarts=%d", name, h.Running, h.Frames, h.Restarts)
		if h.LastError != "" {
			line += " last error: " + h.LastError
		}
		fmt.Fprintf(w, "source      %s\n", line)
	}
	for _, in := range st.Incidents {
		fmt.Fprintf(w, "incident    %s  %-9s %6.1f s  %s\n", in.ID, in.State, in.DurationSeconds, in.Clip)
	}
	for _, d := range st.SetAside {
		fmt.Fprintf(w, "set aside   %s\n", d)
	}
	if len(st.SetAside) > 0 {
		fmt.Fprintf(w, "set aside   %d incident(s), %d bytes, counted in the spool; never uploaded or deleted: copy them off and remove them\n", len(st.SetAside), st.SetAsideBytes)
	}
}

func cmdAudit(args []string, stdout, stderr io.Writer) int {
	cfg, code, ok := commandWithoutSecrets("audit", `Usage: mamoru audit --config FILE

Verifies <state_dir>/audit.log on this device, with no bucket: its hash
chain; that it shows the indicator lit whenever capture ran; that it still
holds the audit head each sealed manifest in the outbox recorded (a head
beyond the log's end means the log was cut or emptied, another entry at
its place that it was replaced); and reports logs set aside with a broken
chain, and a missing log or set-aside log. Exit 1 on any of these. Only what is still on the card can be
checked here: 'mamoru clips audit' compares the log the device uploaded.`, args, stderr, nil)
	if !ok {
		return code
	}
	c := device.CheckAudit(cfg.Device.StateDir)
	if !c.OK() {
		fmt.Fprint(stderr, c.String())
		return 1
	}
	fmt.Fprint(stdout, c.String())
	return 0
}
