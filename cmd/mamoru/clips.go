package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"mamoru/bucket"
	"mamoru/config"
	"mamoru/outbox"
	"mamoru/signing"
)

const clipsHelp = `Usage: mamoru clips COMMAND [--config FILE] ...

For managers: find, download, verify and share the clips devices have
uploaded. The bucket and credentials come from FILE's [storage] table
(a manager's own file may hold only that), then from MAMORU_STORAGE_*,
MAMORU_S3_ACCESS_KEY and MAMORU_S3_SECRET_KEY.

  mamoru clips ls [--since 24h] [--store S] [--device D] [--json]
        incidents in the bucket, newest first
  mamoru clips get ID [-o DIR]
        download clip.mp4, manifest.json and manifest.sig into DIR/ID/ and
        verify the clip; never replaces a file or follows a symbolic link
  mamoru clips verify PATH|ID [--pubkey KEY]
        recompute a clip's SHA-256 (a downloaded directory or clip.mp4, or an
        incident in the bucket) and compare it with its manifest; with the
        device's public key, check the manifest's signature too
  mamoru clips share ID [--expires 24h]
        print a link that plays the clip in a browser until it expires
  mamoru clips audit STORE/DEVICE --pubkey KEY
        check the audit log the device uploaded against its signed manifests`

// parseArgs parses flags wherever they are among the arguments, so that
// "get ID -o DIR" and "get -o DIR ID" both work, and returns the rest.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return rest, nil
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// managerCommand parses a clips subcommand's flags and loads the manager's
// storage configuration.
// needConfig, if given, says from the arguments whether the bucket is
// needed at all; when it is not, c is the zero Clips.
func managerCommand(name, help string, args []string, stderr io.Writer, define func(*flag.FlagSet), needConfig ...func(rest []string) bool) (c bucket.Clips, loc *time.Location, rest []string, code int, ok bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "%s\nOptions:\n", help)
		fs.PrintDefaults()
	}
	path := fs.String("config", "", "configuration `file` with a [storage] table (optional: the environment may say it all)")
	if define != nil {
		define(fs)
	}
	rest, err := parseArgs(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, nil, nil, 0, false
		}
		return c, nil, nil, 2, false
	}
	if len(needConfig) > 0 && !needConfig[0](rest) {
		return c, time.Local, rest, 0, true
	}
	mc, err := config.LoadManager(*path, os.Environ())
	if err != nil {
		fmt.Fprintf(stderr, "mamoru: configuration:\n%v\n", err)
		return c, nil, nil, 2, false
	}
	client, err := bucket.NewClient(mc.Storage)
	if err != nil {
		fmt.Fprintf(stderr, "mamoru: %v\n", err)
		return c, nil, nil, 2, false
	}
	loc, err = time.LoadLocation(mc.Location)
	if err != nil {
		loc = time.Local
	}
	return bucket.Clips{Client: client.Client, Bucket: mc.Storage.Bucket, Prefix: mc.Storage.Prefix}, loc, rest, 0, true
}

func cmdClips(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, clipsHelp)
		return 2
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "ls", "list":
		return clipsLs(ctx, args, stdout, stderr)
	case "get":
		return clipsGet(ctx, args, stdout, stderr)
	case "verify":
		return clipsVerify(ctx, args, stdout, stderr)
	case "share":
		return clipsShare(ctx, args, stdout, stderr)
	case "audit":
		return clipsAudit(ctx, args, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprintln(stdout, clipsHelp)
		return 0
	}
	fmt.Fprintf(stderr, "mamoru clips: unknown command %q\n\n%s\n", sub, clipsHelp)
	return 2
}

func clipsLs(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var since time.Duration
	var store, dev string
	var asJSON bool
	c, loc, rest, code, ok := managerCommand("clips ls", "Usage: mamoru clips ls [--since 24h] [--store S] [--device D] [--json]\n\nLists the incidents in the bucket, newest first.", args, stderr, func(fs *flag.FlagSet) {
		fs.DurationVar(&since, "since", 0, "only incidents pressed within this `duration` (e.g. 24h); 0 lists all")
		fs.StringVar(&store, "store", "", "only this store")
		fs.StringVar(&dev, "device", "", "only this device")
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	})
	if !ok {
		return code
	}
	if len(rest) > 0 {
		fmt.Fprintf(stderr, "mamoru clips ls: unexpected argument %q\n", rest[0])
		return 2
	}
	f := bucket.Filter{Store: store, Device: dev, Unreadable: func(_ string, err error) {
		// err names the object: one bad manifest is reported and skipped.
		fmt.Fprintf(stderr, "mamoru clips ls: warning: skipped %s\n", printable(err.Error()))
	}}
	if since > 0 {
		f.Since = time.Now().Add(-since)
	}
	entries, err := c.List(ctx, f)
	if err != nil {
		fmt.Fprintf(stderr, "mamoru clips ls: %v\n", err)
		return 1
	}
	if asJSON {
		type row struct {
			ID       string  `json:"id"`
			Time     string  `json:"time"`
			Store    string  `json:"store"`
			Device   string  `json:"device"`
			Trigger  string  `json:"trigger"`
			Duration float64 `json:"duration_seconds"`
			Size     int64   `json:"size"`
			SHA256   string  `json:"sha256"`
			Object   string  `json:"object"`
		}
		rows := []row{}
		for _, e := range entries {
			m := e.Manifest
			rows = append(rows, row{printable(m.Incident), m.PressTime.In(loc).Format(time.RFC3339), printable(m.Store), printable(m.Device), printable(m.Trigger), m.DurationSeconds, m.Clip.Size, printable(m.Clip.SHA256), printable(e.Clip())})
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rows)
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tSTORE\tDEVICE\tDURATION\tSIZE")
	for _, e := range entries {
		m := e.Manifest
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.1f s\t%s\n", printable(m.Incident), m.PressTime.In(loc).Format("2006-01-02 15:04:05"), printable(m.Store), printable(m.Device), m.DurationSeconds, megabytes(m.Clip.Size))
	}
	tw.Flush()
	if len(entries) == 0 {
		fmt.Fprintln(stderr, "no incidents")
	}
	return 0
}

// printable drops control characters from s: a manifest is outside bytes,
// and an escape sequence in it must not reach a manager's terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
}

func megabytes(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

func oneID(name string, rest []string, stderr io.Writer) (string, bool) {
	if len(rest) != 1 {
		fmt.Fprintf(stderr, "mamoru clips %s: want exactly one incident id (see 'mamoru clips ls')\n", name)
		return "", false
	}
	return rest[0], true
}

func clipsGet(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var dir string
	c, _, rest, code, ok := managerCommand("clips get", "Usage: mamoru clips get ID [-o DIR]\n\nDownloads the incident's clip.mp4, manifest.json and manifest.sig into\nDIR/ID/ and verifies the clip's SHA-256 and size against the manifest.\nIt refuses a manifest that disagrees with its place in the bucket, a\nDIR/ID that is a symbolic link and any file already there, and keeps\nnothing of a download it refuses.", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&dir, "o", ".", "download into `DIR`/ID/")
	})
	if !ok {
		return code
	}
	id, ok := oneID("get", rest, stderr)
	if !ok {
		return 2
	}
	// The id names the directory the download goes into.
	if !bucket.ValidIncidentID(id) {
		fmt.Fprintf(stderr, "mamoru clips get: %q is %v\n", id, bucket.ErrBadID)
		return 2
	}
	e, err := c.Find(ctx, id)
	if err != nil {
		fmt.Fprintf(stderr, "mamoru clips get: %v\n", err)
		return 1
	}
	p := newProgress(stderr, id+"/"+outbox.ClipFile, e.Manifest.Clip.Size, isTerminal(stderr))
	out, err := c.Get(ctx, e, dir, p.update)
	p.finish()
	if err != nil {
		fmt.Fprintf(stderr, "mamoru clips get: %s: %v\n", id, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: verified (SHA-256 %s, %s)\n", out, e.Manifest.Clip.SHA256, megabytes(e.Manifest.Clip.Size))
	return 0
}

// progress shows a download's progress on w. On a terminal it redraws one
// bar in place, once a percent; anywhere else (a pipe, a log) a redrawn
// line would be a line per percent, so it writes one line as the download
// starts and one as it ends.
type progress struct {
	w        io.Writer
	name     string
	total    int64
	terminal bool
	done     int64
	drawn    int // the percent last drawn on the terminal; -1 before any
}

// newProgress starts showing the download of name, total bytes, on w.
func newProgress(w io.Writer, name string, total int64, terminal bool) *progress {
	p := &progress{w: w, name: name, total: total, terminal: terminal, drawn: -1}
	if !terminal {
		fmt.Fprintf(w, "%s: downloading %s\n", name, megabytes(total))
	}
	return p
}

func (p *progress) percent() int {
	if p.total <= 0 {
		return 100
	}
	return int(p.done * 100 / p.total)
}

// update is called as bytes arrive: done of total so far.
func (p *progress) update(done, total int64) {
	p.done, p.total = done, total
	if !p.terminal {
		return
	}
	pct := p.percent()
	if pct == p.drawn {
		return
	}
	p.drawn = pct
	n := min(pct, 100) / 5
	fmt.Fprintf(p.w, "\r%s [%s%s] %3d%% %s", p.name, strings.Repeat("#", n), strings.Repeat(".", 20-n), pct, megabytes(done))
}

// finish ends the line: the terminal's bar, or a line saying how much came.
func (p *progress) finish() {
	if p.terminal {
		fmt.Fprintln(p.w)
		return
	}
	fmt.Fprintf(p.w, "%s: %d%%, %s of %s\n", p.name, p.percent(), megabytes(p.done), megabytes(p.total))
}

// isTerminal reports whether w is a terminal: a file that is a character
// device. (/dev/null is one too, where a bar does no harm.)
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func clipsVerify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const help = "Usage: mamoru clips verify PATH|ID [--pubkey KEY] [--config FILE]\n\nRecomputes the clip's SHA-256 and compares it with its manifest: PATH is a\ndownloaded incident directory or its clip.mp4 (no configuration needed); ID\nis an incident in the bucket, read without saving it. With --pubkey (the\ndevice's key as 'mamoru provision' printed it, or a file holding it), the\nmanifest's signature must be that device's."
	var pubkey string
	c, _, rest, code, ok := managerCommand("clips verify", help, args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&pubkey, "pubkey", "", "the device's public `key` (mamoru-ed25519:...), or a file holding it")
	}, func(rest []string) bool {
		// A local path needs no configuration at all.
		if len(rest) != 1 {
			return false
		}
		_, err := os.Stat(rest[0])
		return err != nil
	})
	if !ok {
		return code
	}
	id, ok := oneID("verify", rest, stderr)
	if !ok {
		return 2
	}
	var pub ed25519.PublicKey
	if pubkey != "" {
		k, err := signing.ParsePublicKey(pubkey)
		if err != nil {
			fmt.Fprintf(stderr, "mamoru clips verify: --pubkey: %v\n", err)
			return 2
		}
		pub = k
	}
	signed := ""
	if pub != nil {
		signed = ", manifest signed by the device"
	}
	if c.Client == nil { // a local path
		m, err := bucket.VerifyLocal(id, pub)
		if err != nil {
			fmt.Fprintf(stderr, "mamoru clips verify: %s: %v\n", id, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: verified: incident %s, SHA-256 %s%s\n", id, m.Incident, m.Clip.SHA256, signed)
		return 0
	}
	e, err := c.Find(ctx, id)
	if err != nil {
		fmt.Fprintf(stderr, "mamoru clips verify: %v (and no such file here)\n", err)
		return 1
	}
	if err := c.VerifyObject(ctx, e, pub); err != nil {
		fmt.Fprintf(stderr, "mamoru clips verify: %s: %v\n", id, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: verified: %s matches its manifest (SHA-256 %s)%s\n", id, e.Clip(), e.Manifest.Clip.SHA256, signed)
	return 0
}

func clipsShare(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var expires time.Duration
	c, _, rest, code, ok := managerCommand("clips share", "Usage: mamoru clips share ID [--expires 24h]\n\nPrints a link that plays the clip in a browser, valid until it expires.\nAnyone with the link can watch it: share it only with who must see it.", args, stderr, func(fs *flag.FlagSet) {
		fs.DurationVar(&expires, "expires", 24*time.Hour, "how long the link works (at most 168h)")
	})
	if !ok {
		return code
	}
	id, ok := oneID("share", rest, stderr)
	if !ok {
		return 2
	}
	e, err := c.Find(ctx, id)
	if err != nil {
		fmt.Fprintf(stderr, "mamoru clips share: %v\n", err)
		return 1
	}
	u, err := c.Share(ctx, e, expires)
	if err != nil {
		fmt.Fprintf(stderr, "mamoru clips share: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, u)
	return 0
}

const storageHelp = `Usage: mamoru storage init --config FILE

For installers: prepares the bucket in the device's [storage] table. It
creates the bucket if it is missing, sets a lifecycle rule expiring clips
after policy.retention_days, enables object lock when
policy.object_lock_days > 0, and prints the least-privilege IAM policy for
this device's credentials: write under its own folder, and no read, list or
delete. Run it with an administrator's credentials (MAMORU_S3_ACCESS_KEY,
MAMORU_S3_SECRET_KEY), not the device's.`

func cmdStorage(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "init" {
		if len(args) > 0 && (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
			fmt.Fprintln(stdout, storageHelp)
			return 0
		}
		fmt.Fprintln(stderr, storageHelp)
		return 2
	}
	cfg, code, ok := command("storage init", storageHelp, args[1:], stderr, nil)
	if !ok {
		return code
	}
	if !cfg.Storage.Enabled() {
		fmt.Fprintln(stderr, "mamoru storage init: 'storage.endpoint' is not set in the configuration")
		return 2
	}
	client, err := bucket.NewClient(cfg.Storage)
	if err != nil {
		fmt.Fprintf(stderr, "mamoru storage init: %v\n", err)
		return 2
	}
	steps, err := bucket.SetupBucket(ctx, client.Client, cfg.Storage, cfg.Policy)
	for _, s := range steps {
		fmt.Fprintln(stdout, "ok:", s)
	}
	if err != nil {
		fmt.Fprintf(stderr, "mamoru storage init: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "\nIAM policy for device %s/%s (write only, its own folder):\n%s\n", cfg.Device.Store, cfg.Device.ID, bucket.DevicePolicy(cfg.Storage, cfg.Device.Store, cfg.Device.ID))
	return 0
}
