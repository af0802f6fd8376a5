package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"time"

	"mamoru/bucket"
	"mamoru/custody"
	"mamoru/handover"
	"mamoru/outbox"
	"mamoru/signing"
)

const clipsPackageHelp = `Usage: mamoru clips package INCIDENT -o DIR [--by NAME] [--allow-unverified] [--config FILE]

Writes DIR/<incident id>.zip, the incident's hand-over package for someone
who has no mamoru (a lawyer, the police): clip.mp4, manifest.json and
manifest.sig byte for byte as in the bucket; the device's public key as
device-public-key.pem; the audit log's segments covering the incident;
viewing-copy.mp4, which Windows' and Apple's own players play with sound;
report.html; VERIFY.txt, which says in Japanese and English how to check
it all with standard tools; and SHA256SUMS over every other file.

It records the hand-over in the bucket's chain of custody (by NAME, else
this machine's user) before it finishes the zip, so that the package's
report lists it. It refuses an incident whose signature the keyring does
not verify, or whose clip does not match its manifest, unless
--allow-unverified: the report then says so on its first line. It never
replaces a file, and leaves no part of a zip behind.`

func clipsPackage(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var dir, by string
	var allowUnverified bool
	c, loc, rest, code, ok := managerCommand("clips package", clipsPackageHelp, args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&dir, "o", "", "write the package into `DIR`")
		fs.StringVar(&by, "by", "", "who makes the package, for the chain of custody and the report (default: this machine's user)")
		fs.BoolVar(&allowUnverified, "allow-unverified", false, "package an incident whose signature or clip does not verify, marked so in the report")
	})
	if !ok {
		return code
	}
	if dir == "" {
		fmt.Fprintln(stderr, "mamoru clips package: -o DIR is required")
		return 2
	}
	r, ok := oneRef("package", rest, stderr)
	if !ok {
		return 2
	}
	if by == "" {
		by = actor()
	}
	out, rep, err := handover.Make(ctx, c, r, handover.MakeOptions{Dir: dir, By: by, AllowUnverified: allowUnverified, Zone: loc, WriteReport: handover.WriteReport, Now: time.Now})
	if errors.Is(err, handover.ErrUnverified) {
		err = fmt.Errorf("%w (--allow-unverified packages it, marked so)", err)
	}
	if err != nil {
		fmt.Fprintf(stderr, "mamoru clips package: %s\n", errText(err))
		return 1
	}
	fmt.Fprintf(stdout, "%s: %s\n", out, printable(verdictLine(rep)))
	for _, n := range rep.Notes {
		fmt.Fprintf(stderr, "mamoru clips package: note: %s\n", printable(n))
	}
	return 0
}

// verdictLine is what the package says first: the signature's verdict, or
// each check of the clip and its signature that failed.
func verdictLine(r handover.Report) string {
	var failed []string
	for _, c := range r.Checks {
		if !c.Passed && !strings.HasPrefix(c.What, handover.AuditCheck) {
			failed = append(failed, c.What+": "+c.Detail)
		}
	}
	if len(failed) > 0 {
		return "NOT VERIFIED, packaged as --allow-unverified asked: " + strings.Join(failed, "; ")
	}
	return r.Checks[1].Detail
}

// actor names who runs a command, for the chain of custody: the user and
// the machine.
func actor() string {
	name := "unknown user"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		name += "@" + h
	}
	return name
}

// recordCustody records action on the incident e in the bucket's chain of
// custody, by this machine's user.
func recordCustody(ctx context.Context, c bucket.Clips, e bucket.Entry, action custody.Action, detail string) error {
	ref := c.RefOf(e)
	_, err := custody.Log{Client: c.Client, Bucket: c.Bucket, Prefix: c.Prefix}.Add(ctx, ref.Store, ref.Device, ref.ID,
		custody.Record{Time: time.Now(), Action: action, Actor: actor(), Detail: detail})
	return err
}

// verifyPackage is 'mamoru clips verify' of a hand-over package, a zip or
// its unpacked folder: every file against SHA256SUMS (none missing, none
// extra), the clip against the manifest, and the manifest's signature by
// the keyring, with the verdict words of a clip in the bucket. Where the
// package lay in the bucket is not known, so a manifest naming its place
// is checked only to name one of its own store, device and incident.
func verifyPackage(p string, kr signing.Keyring, stdout, stderr io.Writer) int {
	// Every problem on a line of its own: a joined error's line breaks
	// would not survive printable.
	fail := func(errs ...error) int {
		for _, err := range errs {
			fmt.Fprintf(stderr, "mamoru clips verify: %s: %s\n", printable(p), errText(err))
		}
		return 1
	}
	o, err := handover.Read(p)
	if err != nil {
		return fail(err)
	}
	var problems []error
	if err := o.CheckSums(); err != nil {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			problems = append(problems, j.Unwrap()...)
		} else {
			problems = append(problems, err)
		}
	}
	if o.Manifest == nil {
		return fail(append(problems, fmt.Errorf("%w: the package has no %s", outbox.ErrBadManifest, outbox.ManifestFile))...)
	}
	var m outbox.Manifest
	if err := json.Unmarshal(o.Manifest, &m); err != nil {
		return fail(append(problems, fmt.Errorf("%w: %s: %v", outbox.ErrBadManifest, outbox.ManifestFile, err))...)
	}
	a, aerr := bucket.Authenticate(m, o.Manifest, o.Signature, "", kr)
	if aerr != nil {
		problems = append(problems, aerr)
	}
	clip, ok := o.Files[outbox.ClipFile]
	switch {
	case !ok:
		problems = append(problems, fmt.Errorf("%w: the package has no %s", bucket.ErrNotVerified, outbox.ClipFile))
	case clip.SHA256 != m.Clip.SHA256 || clip.Size != m.Clip.Size:
		problems = append(problems, fmt.Errorf("%w: %s has SHA-256 %s (%d bytes), the manifest says %s (%d bytes)", bucket.ErrNotVerified, outbox.ClipFile, clip.SHA256, clip.Size, m.Clip.SHA256, m.Clip.Size))
	}
	// The key the package carries, against the keyring's: a reader who
	// follows VERIFY.txt checks the signature by it.
	keyNote := ""
	if o.Key != nil && aerr == nil && a.Sig != nil {
		fp := "unreadable"
		if pub, err := signing.ParsePublicKeyPEM(o.Key); err == nil {
			fp = signing.Fingerprint(pub)
		}
		if k, err := kr.Verify(m.Store, m.Device, m.PressTime, o.Manifest, a.Sig); err == nil {
			if want := signing.Fingerprint(k.Key); fp != want {
				problems = append(problems, fmt.Errorf("%w: %s has fingerprint %s, not the keyring's key %s that verified the signature", bucket.ErrSignatureInvalid, handover.KeyFile, fp, want))
			} else {
				keyNote = ", key " + fp[:16] + "… as in the keyring"
			}
		}
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "mamoru clips verify: %s: %s: incident %s\n", printable(p), printable(a.String()), printable(m.Incident))
		return fail(problems...)
	}
	place := ""
	if m.Object != "" {
		place = ", signed for " + m.Object
	}
	fmt.Fprintf(stdout, "%s: %s: incident %s, SHA-256 %s%s; the package's %d files match %s%s\n", printable(p), printable(a.String()), printable(m.Incident),
		printable(m.Clip.SHA256), printable(place), len(o.Files)-1, handover.SumsFile, keyNote)
	return 0
}
