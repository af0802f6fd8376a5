package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/minio/minio-go/v7"

	"mamoru/bucket"
	"mamoru/config"
	"mamoru/custody"
	"mamoru/handover"
	"mamoru/outbox"
	"mamoru/signing"
)

const clipsHelp = `Usage: mamoru clips COMMAND [--config FILE] ...

For managers: find, download, verify and share the clips devices have
uploaded. The bucket and credentials come from FILE's [storage] table
(a manager's own file may hold only that), then from MAMORU_STORAGE_*,
MAMORU_S3_ACCESS_KEY and MAMORU_S3_SECRET_KEY. FILE's [[keyring]] tables
hold each device's public keys, by which get and verify check every
manifest's signature.

An incident is named store/device/id (as 'clips ls' prints it); an id
alone serves where no other device has an incident of that id.

  mamoru clips ls [--since 24h] [--store S] [--device D] [--json]
        incidents in the bucket, newest first
  mamoru clips get INCIDENT [-o DIR] [--pubkey KEY]
        download clip.mp4, manifest.json and manifest.sig into DIR/ID/ and
        verify the clip and the manifest's signature; never replaces a file
        or follows a symbolic link
  mamoru clips verify PATH|INCIDENT [--pubkey KEY]
        recompute a clip's SHA-256 (a downloaded directory or clip.mp4, or an
        incident in the bucket), compare it with its manifest, and check
        the manifest's signature by the keyring (or by KEY alone)
  mamoru clips verify PACKAGE.zip|PACKAGE-DIR
        check a hand-over package: every file against its SHA256SUMS, the
        clip against the manifest, the manifest's signature by the keyring
  mamoru clips share INCIDENT [--expires 24h]
        print a link that plays the clip in a browser until it expires
  mamoru clips package INCIDENT -o DIR [--by NAME] [--allow-unverified]
        write DIR/ID.zip, the hand-over package for someone without mamoru:
        the originals, the device's key, the audit excerpt, a viewing copy,
        report.html, VERIFY.txt and SHA256SUMS

get, share and package record who did so, and when, in the bucket's
chain of custody (<prefix>/.custody/), which package's report lists.

  mamoru clips audit STORE/DEVICE --pubkey KEY
        check the audit log the device uploaded against its signed manifests
  mamoru clips viewing-copy CLIP.mp4 -o COPY.mp4
        write a copy that Windows' and Apple's own players play with sound:
        the same video, the sound as ALAC that decodes to exactly the
        clip's samples; the same clip always gives the same copy

Of the signature, get and verify say exactly one of:
  verified: signed by STORE/DEVICE   a key of that device signed the manifest,
                                     for the place it is in
  verified (legacy: not bound to its place)
                                     signed by the device, written before
                                     manifests named their place
  UNSIGNED                           no manifest.sig (an error when the keyring
                                     holds keys for that device)
  SIGNATURE INVALID                  altered, moved, or signed by another key
  UNKNOWN DEVICE                     the keyring holds no key for that device`

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
		if *path != "" { // only for its keyring
			k, err := config.LoadKeyring(*path)
			if err != nil {
				fmt.Fprintf(stderr, "mamoru: configuration:\n%v\n", err)
				return c, nil, nil, 2, false
			}
			c.Keyring = k
		}
		return c, time.Local, rest, 0, true
	}
	mc, client, ok := loadBucket(*path, stderr)
	if !ok {
		return c, nil, nil, 2, false
	}
	loc, err = time.LoadLocation(mc.Location)
	if err != nil {
		loc = time.Local
	}
	return bucket.Clips{Client: client.Client, Bucket: mc.Storage.Bucket, Prefix: mc.Storage.Prefix, Keyring: mc.Keyring}, loc, rest, 0, true
}

// loadBucket loads a manager's configuration (the file at path, if any,
// then the environment) and connects to its bucket, or says why not on
// stderr.
func loadBucket(path string, stderr io.Writer) (config.ManagerConfig, *minio.Core, bool) {
	mc, err := config.LoadManager(path, os.Environ())
	if err != nil {
		fmt.Fprintf(stderr, "mamoru: configuration:\n%v\n", err)
		return mc, nil, false
	}
	client, err := bucket.NewClient(mc.Storage)
	if err != nil {
		fmt.Fprintf(stderr, "mamoru: %v\n", err)
		return mc, nil, false
	}
	return mc, client, true
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
	case "package":
		return clipsPackage(ctx, args, stdout, stderr)
	case "audit":
		return clipsAudit(ctx, args, stdout, stderr)
	case "viewing-copy":
		return clipsViewingCopy(args, stdout, stderr)
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
			Incident string  `json:"incident"` // store/device/id, from where it is in the bucket
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
			rows = append(rows, row{printable(c.RefOf(e).String()), printable(m.Incident), m.PressTime.In(loc).Format(time.RFC3339), printable(m.Store), printable(m.Device), printable(m.Trigger), m.DurationSeconds, m.Clip.Size, printable(m.Clip.SHA256), printable(e.Clip())})
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rows)
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "INCIDENT\tTIME\tDURATION\tSIZE")
	for _, e := range entries {
		m := e.Manifest
		fmt.Fprintf(tw, "%s\t%s\t%.1f s\t%s\n", printable(c.RefOf(e).String()), m.PressTime.In(loc).Format("2006-01-02 15:04:05"), m.DurationSeconds, megabytes(m.Clip.Size))
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

// errText is err for a terminal: printable, but an incident name that
// fits several keeps one match a line, each printable (a key in the
// bucket is outside bytes too, and may hold a line break).
func errText(err error) string {
	var amb *bucket.AmbiguousError
	if !errors.As(err, &amb) {
		return printable(err.Error())
	}
	lines := []string{printable(amb.Heading())}
	for _, m := range amb.Matches {
		lines = append(lines, "  "+printable(m))
	}
	return strings.Join(lines, "\n")
}

func megabytes(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

// oneRef reads the one incident a command names, store/device/id or id.
func oneRef(name string, rest []string, stderr io.Writer) (bucket.Ref, bool) {
	if len(rest) != 1 {
		fmt.Fprintf(stderr, "mamoru clips %s: want exactly one incident, store/device/id (see 'mamoru clips ls')\n", name)
		return bucket.Ref{}, false
	}
	r, err := bucket.ParseRef(rest[0])
	if err != nil {
		fmt.Fprintf(stderr, "mamoru clips %s: %v\n", name, err)
		return bucket.Ref{}, false
	}
	return r, true
}

// pubkeyFlag defines --pubkey: one device's key, which then replaces the
// keyring for whichever device the manifest names.
func pubkeyFlag(fs *flag.FlagSet, pubkey *string) {
	fs.StringVar(pubkey, "pubkey", "", "check signatures by this public `key` alone (mamoru-ed25519:..., or a file holding it) instead of the keyring")
}

// useKey makes pubkey, if given, c's whole keyring.
func useKey(name, pubkey string, c *bucket.Clips, stderr io.Writer) bool {
	if pubkey == "" {
		return true
	}
	k, err := signing.ParsePublicKey(pubkey)
	if err != nil {
		fmt.Fprintf(stderr, "mamoru clips %s: --pubkey: %v\n", name, err)
		return false
	}
	c.Keyring = signing.Keyring{{Key: k}}
	return true
}

func clipsGet(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var dir, pubkey string
	c, _, rest, code, ok := managerCommand("clips get", "Usage: mamoru clips get INCIDENT [-o DIR] [--pubkey KEY]\n\nDownloads the incident (store/device/id, or an id no other device has)\ninto DIR/ID/: clip.mp4, manifest.json and manifest.sig. It checks the\nmanifest's signature by the keyring (or by KEY alone) and the clip's\nSHA-256 and size against the manifest, and says of the signature one of\nthe words 'mamoru clips help' lists. It refuses a manifest that disagrees\nwith its place in the bucket or whose signature is invalid or unknown, a\nDIR/ID that is a symbolic link and any file already there, and keeps\nnothing of a download it refuses.", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&dir, "o", ".", "download into `DIR`/ID/")
		pubkeyFlag(fs, &pubkey)
	})
	if !ok {
		return code
	}
	r, ok := oneRef("get", rest, stderr)
	if !ok || !useKey("get", pubkey, &c, stderr) {
		return 2
	}
	e, err := c.Find(ctx, r)
	if err != nil {
		fmt.Fprintf(stderr, "mamoru clips get: %s\n", errText(err))
		return 1
	}
	p := newProgress(stderr, r.ID+"/"+outbox.ClipFile, e.Manifest.Clip.Size, isTerminal(stderr))
	out, a, err := c.Get(ctx, e, dir, p.update)
	p.finish()
	if err != nil {
		fmt.Fprintf(stderr, "mamoru clips get: %s: %s\n", r, errText(err))
		return 1
	}
	fmt.Fprintf(stdout, "%s: %s (SHA-256 %s, %s)\n", out, printable(a.String()), e.Manifest.Clip.SHA256, megabytes(e.Manifest.Clip.Size))
	if err := recordCustody(ctx, c, e, custody.Download, "to "+out); err != nil {
		fmt.Fprintf(stderr, "mamoru clips get: downloaded, but the chain of custody does not record it: %s\n", errText(err))
		return 1
	}
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
	const help = "Usage: mamoru clips verify PATH|INCIDENT [--pubkey KEY] [--config FILE]\n\nChecks the manifest's signature by the keyring in FILE (or by KEY alone),\nthen recomputes the clip's SHA-256 and compares it with the manifest:\nPATH is a downloaded incident directory or its clip.mp4 (FILE is then read\nonly for its keyring); INCIDENT is store/device/id (or an id no other\ndevice has) in the bucket, read without saving it. A hand-over package\n(its .zip, or the folder it was unpacked into) is checked whole: every\nfile against its SHA256SUMS, none missing and none extra, and the key it\ncarries against the keyring's. Of the signature it\nsays one of the words 'mamoru clips help' lists, and exits 1 for\nSIGNATURE INVALID, UNKNOWN DEVICE, and UNSIGNED where the keyring holds\nthat device's keys."
	var pubkey string
	c, _, rest, code, ok := managerCommand("clips verify", help, args, stderr, func(fs *flag.FlagSet) {
		pubkeyFlag(fs, &pubkey)
	}, func(rest []string) bool {
		// A local path needs no bucket.
		if len(rest) != 1 {
			return false
		}
		_, err := os.Stat(rest[0])
		return err != nil
	})
	if !ok {
		return code
	}
	if len(rest) != 1 {
		fmt.Fprintln(stderr, "mamoru clips verify: want exactly one downloaded incident or incident in the bucket, store/device/id (see 'mamoru clips ls')")
		return 2
	}
	if !useKey("verify", pubkey, &c, stderr) {
		return 2
	}
	if c.Client == nil && handover.IsPackage(rest[0]) {
		return verifyPackage(rest[0], c.Keyring, stdout, stderr)
	}
	if c.Client == nil { // a local path
		p := rest[0]
		m, a, err := bucket.VerifyLocal(p, c.Keyring)
		if err != nil {
			fmt.Fprintf(stderr, "mamoru clips verify: %s: %s\n", p, errText(err))
			return 1
		}
		place := ""
		if m.Object != "" {
			place = ", signed for " + m.Object
		}
		fmt.Fprintf(stdout, "%s: %s: incident %s, SHA-256 %s%s\n", p, printable(a.String()), printable(m.Incident), printable(m.Clip.SHA256), printable(place))
		return 0
	}
	r, ok := oneRef("verify", rest, stderr)
	if !ok {
		return 2
	}
	e, err := c.Find(ctx, r)
	if err != nil {
		fmt.Fprintf(stderr, "mamoru clips verify: %s (and no such file here)\n", errText(err))
		return 1
	}
	if !untouched(ctx, c, e, r.String(), stderr) {
		return 1
	}
	a, err := c.VerifyObject(ctx, e)
	if err != nil {
		fmt.Fprintf(stderr, "mamoru clips verify: %s: %s\n", r, errText(err))
		return 1
	}
	fmt.Fprintf(stdout, "%s: %s: %s matches its manifest (SHA-256 %s)\n", r, printable(a.String()), e.Clip(), printable(e.Manifest.Clip.SHA256))
	return 0
}

func clipsShare(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var expires time.Duration
	c, _, rest, code, ok := managerCommand("clips share", "Usage: mamoru clips share INCIDENT [--expires 24h]\n\nPrints a link that plays the clip in a browser, valid until it expires.\nAnyone with the link can watch it: share it only with who must see it.", args, stderr, func(fs *flag.FlagSet) {
		fs.DurationVar(&expires, "expires", 24*time.Hour, "how long the link works (at most 168h)")
	})
	if !ok {
		return code
	}
	r, ok := oneRef("share", rest, stderr)
	if !ok {
		return 2
	}
	e, err := c.Find(ctx, r)
	if err != nil {
		fmt.Fprintf(stderr, "mamoru clips share: %s\n", errText(err))
		return 1
	}
	u, err := c.Share(ctx, e, expires)
	if err != nil {
		fmt.Fprintf(stderr, "mamoru clips share: %v\n", err)
		return 1
	}
	// A link anyone may use is not given unless the chain of custody
	// records it.
	if err := recordCustody(ctx, c, e, custody.Share, "a link valid for "+expires.String()); err != nil {
		fmt.Fprintf(stderr, "mamoru clips share: no link: %s\n", errText(err))
		return 1
	}
	fmt.Fprintln(stdout, u)
	return 0
}

const storageHelp = `Usage: mamoru storage init --config FILE

For installers: prepares the bucket in the device's [storage] table. It
creates the bucket if it is missing (with object lock unless
policy.object_lock = "none"), turns versioning on, sets this device's
store's lifecycle rule expiring its clips (<prefix>/<store>/) and their
older versions after policy.retention_days, beside the bucket's other
rules (run it with a device of each store; the chain of custody under
<prefix>/.custody/ never expires), and prints the least-privilege IAM policy for this device's credentials, for
the server it talks to: write new objects under its own folder, and no
read, list or delete. After it, it prints the policy for the managers'
console's credentials: list and read the clips, set and release their
legal hold, delete an incident (every version, past a governance lock),
and write only the chain of custody (<prefix>/.custody/). Run it with an
administrator's credentials (MAMORU_S3_ACCESS_KEY, MAMORU_S3_SECRET_KEY),
not the device's.`

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
	steps, err := bucket.SetupBucket(ctx, client.Client, cfg.Storage, cfg.Device.Store, cfg.Policy)
	for _, s := range steps {
		fmt.Fprintln(stdout, "ok:", s)
	}
	if err != nil {
		fmt.Fprintf(stderr, "mamoru storage init: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "\nIAM policy for device %s/%s (write only, its own folder):\n%s\n", cfg.Device.Store, cfg.Device.ID, bucket.DevicePolicy(cfg.Storage, cfg.Device.Store, cfg.Device.ID))
	fmt.Fprintln(stdout, bucket.PolicyNote(cfg.Storage))
	fmt.Fprintf(stdout, "\nIAM policy for the managers' console (list, read, legal hold and delete incidents; write only the chain of custody under %s/):\n%s\n",
		path.Join(cfg.Storage.Prefix, custody.Dir), bucket.ConsolePolicy(cfg.Storage))
	return 0
}
