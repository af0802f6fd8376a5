package main

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

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

// reportRenderer renders report.html.
type reportRenderer = func(io.Writer, handover.Report) error

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
	out, rep, err := makePackage(ctx, c, r, packageOptions{Dir: dir, By: by, AllowUnverified: allowUnverified, Zone: loc, WriteReport: handover.WriteReport, Now: time.Now})
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

// auditCheck starts the What of the audit head's check: a segment not yet
// in the bucket leaves the clip no less verified, and the report's notes
// say so.
const auditCheck = "the manifest's audit head"

// verdictLine is what the package says first: the signature's verdict, or
// each check of the clip and its signature that failed.
func verdictLine(r handover.Report) string {
	var failed []string
	for _, c := range r.Checks {
		if !c.Passed && !strings.HasPrefix(c.What, auditCheck) {
			failed = append(failed, c.What+": "+c.Detail)
		}
	}
	if len(failed) > 0 {
		return "NOT VERIFIED, packaged as --allow-unverified asked: " + strings.Join(failed, "; ")
	}
	return r.Checks[1].Detail
}

// packageOptions are how makePackage makes a package.
type packageOptions struct {
	Dir             string
	By              string
	AllowUnverified bool
	Zone            *time.Location
	// WriteReport renders report.html (handover.WriteReport).
	WriteReport reportRenderer
	Now         func() time.Time
}

// makePackage makes the package of the incident r names: it judges the
// signature and the clip, gathers the audit excerpt and what the bucket
// recorded of each object, records the hand-over in the chain of custody,
// and writes the zip.
func makePackage(ctx context.Context, c bucket.Clips, r bucket.Ref, o packageOptions) (string, handover.Report, error) {
	rep := handover.Report{MadeBy: o.By, Zone: o.Zone, Made: o.Now()}
	e, err := c.Find(ctx, r)
	if err != nil {
		return "", rep, err
	}
	m := e.Manifest
	manifestKey := path.Join(e.Dir, outbox.ManifestFile)
	rep.Manifest, rep.Ref = m, c.RefOf(e).String()
	rep.Key = handover.Key{Store: m.Store, Device: m.Device}
	if p := filepath.Join(o.Dir, m.Incident+".zip"); exists(p) {
		return "", rep, fmt.Errorf("%s %w", p, handover.ErrExists)
	}
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return "", rep, err
	}

	// The signature, by the keyring.
	a, aerr := c.Authenticate(ctx, e)
	signed := aerr == nil && (a.Verdict == bucket.VerdictVerified || a.Verdict == bucket.VerdictLegacy)
	if !signed && !o.AllowUnverified {
		why := a.String()
		if aerr != nil {
			why = aerr.Error()
		}
		return "", rep, fmt.Errorf("%s: %s; not packaged (--allow-unverified packages it, marked so)", manifestKey, why)
	}
	var key ed25519.PublicKey
	if signed {
		if k, err := c.Keyring.Verify(m.Store, m.Device, m.PressTime, e.Raw, a.Sig); err == nil {
			key = k.Key
		}
	}
	sigDetail := a.String()
	if aerr != nil {
		sigDetail = aerr.Error()
		rep.Notes = append(rep.Notes, "THE SIGNATURE DOES NOT VERIFY: "+aerr.Error()+". This package is NOT evidence that the clip is the device's. / 署名を確認できません。このパッケージはクリップが装置のものである証拠になりません。")
	} else if !signed {
		rep.Notes = append(rep.Notes, a.String()+": the device's signature does not vouch for this clip. / 装置の署名がありません。")
	}
	if a.Verdict == bucket.VerdictLegacy {
		rep.Notes = append(rep.Notes, "The manifest was written before manifests named their place in the bucket: the signature does not show where it was stored. / 保存場所は署名の対象外です。")
	}

	// The clip, to a temporary file beside the package, against the manifest.
	clipFile, err := os.CreateTemp(o.Dir, "."+m.Incident+".clip.*")
	if err != nil {
		return "", rep, err
	}
	defer os.Remove(clipFile.Name())
	defer clipFile.Close()
	obj, err := c.Client.GetObject(ctx, c.Bucket, e.Clip(), minio.GetObjectOptions{})
	if err != nil {
		return "", rep, bucket.Classify(err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(clipFile, h), obj)
	obj.Close()
	if err != nil {
		return "", rep, fmt.Errorf("%s: %w", e.Clip(), bucket.Classify(err))
	}
	sum := hex.EncodeToString(h.Sum(nil))
	clipOK := sum == m.Clip.SHA256 && n == m.Clip.Size
	if !clipOK {
		err := fmt.Errorf("%w: %s has SHA-256 %s (%d bytes), its manifest says %s (%d bytes)", bucket.ErrNotVerified, e.Clip(), sum, n, m.Clip.SHA256, m.Clip.Size)
		if !o.AllowUnverified {
			return "", rep, fmt.Errorf("%v; not packaged (--allow-unverified packages it, marked so)", err)
		}
		rep.Notes = append(rep.Notes, "THE CLIP DOES NOT MATCH ITS MANIFEST: "+err.Error()+" / クリップがマニフェストと一致しません。")
	}

	place := strings.TrimPrefix(e.Dir, strings.Trim(c.Prefix, "/")+"/")
	rep.Checks = []handover.Check{
		{What: "clip.mp4 SHA-256 = manifest.json clip.sha256", How: "sha256sum clip.mp4, compared with the \"sha256\" in manifest.json", Passed: clipOK,
			Detail: fmt.Sprintf("%s, %d bytes", sum, n)},
		{What: "manifest.sig: ed25519 signature over manifest.json's bytes by a key of " + m.Store + "/" + m.Device + " in the shop's keyring",
			How: "openssl pkeyutl -verify -pubin -inkey device-public-key.pem -rawin -in manifest.json -sigfile manifest.sig.bin (VERIFY.txt)", Passed: aerr == nil && signed, Detail: sigDetail},
	}
	// A legacy manifest names no place: the note above says so, and
	// there is nothing to check.
	if a.Verdict != bucket.VerdictLegacy {
		rep.Checks = append(rep.Checks, handover.Check{What: "the place the manifest was signed for = where it is in the bucket", How: "manifest.json's \"object\" compared with the object's key below the prefix",
			Passed: aerr == nil && m.Object == place, Detail: fmt.Sprintf("signed for %q; in the bucket at %s", m.Object, e.Dir)})
	}

	// The audit excerpt.
	var contents handover.Contents
	if m.AuditHead == nil {
		rep.Notes = append(rep.Notes, "The manifest records no audit head: there is no audit excerpt. / マニフェストに監査ログの位置がなく、監査ログの抜粋はありません。")
	} else {
		ex, err := c.AuditExcerpt(ctx, m.Store, m.Device, *m.AuditHead)
		if err != nil {
			return "", rep, err
		}
		rep.Checks = append(rep.Checks, handover.Check{What: fmt.Sprintf("%s (entry %d, %.16s…) is in the bucket's audit log", auditCheck, m.AuditHead.Seq, m.AuditHead.Hash),
			How: "the entry of that number in the segment under audit/ has that hash (mamoru clips audit checks the whole log)", Passed: len(ex) > 0})
		if len(ex) == 0 {
			rep.Notes = append(rep.Notes, fmt.Sprintf("No audit segment covering the incident's audit head (entry %d) is in the bucket yet: the device sends one after each incident and every 10 minutes. / 事案を含む監査ログはまだバケットにありません。", m.AuditHead.Seq))
			rep.Checks[len(rep.Checks)-1].Detail = "not in the bucket yet"
		}
		auditRoot := path.Join(c.Prefix, bucket.AuditDir(m.Store, m.Device)) + "/"
		for _, s := range ex {
			contents.Audit = append(contents.Audit, handover.AuditFile{Name: strings.TrimPrefix(s.Key, auditRoot), Data: s.Data})
			rep.Objects = append(rep.Objects, handover.Object{Key: s.Key, Size: int64(len(s.Data)), LastModified: s.LastModified, VersionID: s.VersionID})
		}
	}
	// What the bucket recorded of the incident's own objects.
	names := []string{outbox.ClipFile, outbox.ManifestFile}
	if a.Sig != nil {
		names = append(names, outbox.SignatureFile)
	}
	var own []handover.Object
	for _, name := range names {
		s, size, err := c.Stat(ctx, path.Join(e.Dir, name))
		if err != nil {
			return "", rep, err
		}
		own = append(own, handover.Object{Key: s.Key, Size: size, LastModified: s.LastModified, VersionID: s.VersionID})
	}
	rep.Objects = append(own, rep.Objects...)

	contents.Clip, contents.ClipSize = clipFile, n
	contents.Manifest, contents.Signature, contents.Key = e.Raw, a.Sig, key
	if key == nil {
		rep.Notes = append(rep.Notes, "The package holds no device key: no key of the shop's keyring verified the signature. / 店舗の鍵で署名を確認できなかったため、装置の公開鍵は含まれていません。")
	}
	// The hand-over is recorded once every other file is written, before
	// the report and the zip are finished, so that the report lists it.
	record := func(r *handover.Report) error {
		log := custody.Log{Client: c.Client, Bucket: c.Bucket, Prefix: c.Prefix}
		ref := c.RefOf(e)
		if _, err := log.Add(ctx, ref.Store, ref.Device, ref.ID, custody.Record{Time: r.Made, Action: custody.Handover, Actor: o.By,
			Detail: "hand-over package " + m.Incident + ".zip"}); err != nil {
			return fmt.Errorf("%w (the managers' key needs s3:PutObject on %s/*)", err, path.Join(c.Prefix, custody.Dir))
		}
		events, err := log.List(ctx, ref.Store, ref.Device, ref.ID)
		if err != nil {
			return err
		}
		for _, ev := range events {
			d := ev.Detail
			if ev.Problem != "" {
				d = "UNREADABLE RECORD " + ev.Key + ": " + ev.Problem
			}
			r.Custody = append(r.Custody, handover.CustodyEvent{Time: ev.Stored, Action: string(ev.Action), Actor: ev.Actor, Detail: d})
		}
		return nil
	}
	return handover.Write(o.Dir, contents, rep, handover.Options{WriteReport: o.WriteReport, BeforeReport: record})
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
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
	if err != nil {
		return fmt.Errorf("%w (the managers' key needs s3:PutObject on %s/*)", err, path.Join(c.Prefix, custody.Dir))
	}
	return nil
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
