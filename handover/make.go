package handover

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"mamoru/bucket"
	"mamoru/custody"
	"mamoru/outbox"
)

// MakeOptions are how Make makes a package. The zero value of each field
// but Dir and By has a default.
type MakeOptions struct {
	Dir string // where the zip goes; made if missing
	// By is who makes the package, for the chain of custody and the
	// report: a name the maker gives, or the machine's user.
	By string
	// From is where By acts from, for the chain of custody: the address
	// a console's request came from; "" for this machine.
	From string
	// AllowUnverified packages an incident whose signature or clip does
	// not verify, marked so in the report, instead of refusing it.
	AllowUnverified bool
	// Zone is the device's time zone, in which the report shows every
	// device time; nil is the local zone.
	Zone *time.Location
	// WriteReport renders report.html; nil is WriteReport.
	WriteReport func(io.Writer, Report) error
	// Now is the clock the package's making time is read from; nil is
	// time.Now.
	Now func() time.Time
}

// ErrUnverified means Make refused an incident whose signature or clip
// does not verify (MakeOptions.AllowUnverified packages it, marked so).
var ErrUnverified = errors.New("not packaged")

// AuditCheck starts the What of the audit head's check: a segment not yet
// in the bucket leaves the clip no less verified, and the report's notes
// say so.
const AuditCheck = "the manifest's audit head"

// Make makes the hand-over package of the incident r names in the bucket,
// o.Dir/<incident id>.zip, and returns its path and its report: it judges
// the signature by c's keyring and the clip against its manifest, gathers
// the audit excerpt and what the bucket recorded of each object, records
// the hand-over in the chain of custody (by o.By), and writes the zip
// (Write), so that the report lists the hand-over.
//
// An incident whose signature or clip does not verify is refused with an
// error wrapping ErrUnverified, unless o.AllowUnverified: the report then
// says so on its first line. A zip already there is refused (ErrExists),
// and a refused package leaves nothing behind. Without the right to write
// the chain of custody, nothing is made.
func Make(ctx context.Context, c bucket.Clips, r bucket.Ref, o MakeOptions) (string, Report, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Zone == nil {
		o.Zone = time.Local
	}
	if o.WriteReport == nil {
		o.WriteReport = WriteReport
	}
	rep := Report{MadeBy: o.By, Zone: o.Zone, Made: o.Now()}
	e, err := c.Find(ctx, r)
	if err != nil {
		return "", rep, err
	}
	m := e.Manifest
	manifestKey := path.Join(e.Dir, outbox.ManifestFile)
	rep.Manifest, rep.Ref = m, c.RefOf(e).String()
	rep.Key = Key{Store: m.Store, Device: m.Device}
	if p := filepath.Join(o.Dir, m.Incident+".zip"); exists(p) {
		return "", rep, fmt.Errorf("%s %w", p, ErrExists)
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
		return "", rep, fmt.Errorf("%s: %s; %w", manifestKey, why, ErrUnverified)
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
			return "", rep, fmt.Errorf("%w; %w", err, ErrUnverified)
		}
		rep.Notes = append(rep.Notes, "THE CLIP DOES NOT MATCH ITS MANIFEST: "+err.Error()+" / クリップがマニフェストと一致しません。")
	}

	place := strings.TrimPrefix(e.Dir, strings.Trim(c.Prefix, "/")+"/")
	rep.Checks = []Check{
		{What: "clip.mp4 SHA-256 = manifest.json clip.sha256", How: "sha256sum clip.mp4, compared with the \"sha256\" in manifest.json", Passed: clipOK,
			Detail: fmt.Sprintf("%s, %d bytes", sum, n)},
		{What: "manifest.sig: ed25519 signature over manifest.json's bytes by a key of " + m.Store + "/" + m.Device + " in the shop's keyring",
			How: "openssl pkeyutl -verify -pubin -inkey device-public-key.pem -rawin -in manifest.json -sigfile manifest.sig.bin (VERIFY.txt)", Passed: aerr == nil && signed, Detail: sigDetail},
	}
	// A legacy manifest names no place: the note above says so, and
	// there is nothing to check.
	if a.Verdict != bucket.VerdictLegacy {
		rep.Checks = append(rep.Checks, Check{What: "the place the manifest was signed for = where it is in the bucket", How: "manifest.json's \"object\" compared with the object's key below the prefix",
			Passed: aerr == nil && m.Object == place, Detail: fmt.Sprintf("signed for %q; in the bucket at %s", m.Object, e.Dir)})
	}

	// The audit excerpt.
	var contents Contents
	if m.AuditHead == nil {
		rep.Notes = append(rep.Notes, "The manifest records no audit head: there is no audit excerpt. / マニフェストに監査ログの位置がなく、監査ログの抜粋はありません。")
	} else {
		ex, err := c.AuditExcerpt(ctx, m.Store, m.Device, *m.AuditHead)
		if err != nil {
			return "", rep, err
		}
		rep.Checks = append(rep.Checks, Check{What: fmt.Sprintf("%s (entry %d, %.16s…) is in the bucket's audit log", AuditCheck, m.AuditHead.Seq, m.AuditHead.Hash),
			How: "the entry of that number in the segment under audit/ has that hash (mamoru clips audit checks the whole log)", Passed: len(ex) > 0})
		if len(ex) == 0 {
			rep.Notes = append(rep.Notes, fmt.Sprintf("No audit segment covering the incident's audit head (entry %d) is in the bucket yet: the device sends one after each incident and every 10 minutes. / 事案を含む監査ログはまだバケットにありません。", m.AuditHead.Seq))
			rep.Checks[len(rep.Checks)-1].Detail = "not in the bucket yet"
		}
		auditRoot := path.Join(c.Prefix, bucket.AuditDir(m.Store, m.Device)) + "/"
		for _, s := range ex {
			contents.Audit = append(contents.Audit, AuditFile{Name: strings.TrimPrefix(s.Key, auditRoot), Data: s.Data})
			rep.Objects = append(rep.Objects, Object{Key: s.Key, Size: int64(len(s.Data)), LastModified: s.LastModified, VersionID: s.VersionID})
		}
	}
	// What the bucket recorded of the incident's own objects.
	names := []string{outbox.ClipFile, outbox.ManifestFile}
	if a.Sig != nil {
		names = append(names, outbox.SignatureFile)
	}
	var own []Object
	for _, name := range names {
		s, size, err := c.Stat(ctx, path.Join(e.Dir, name))
		if err != nil {
			return "", rep, err
		}
		own = append(own, Object{Key: s.Key, Size: size, LastModified: s.LastModified, VersionID: s.VersionID})
	}
	rep.Objects = append(own, rep.Objects...)

	contents.Clip, contents.ClipSize = clipFile, n
	contents.Manifest, contents.Signature, contents.Key = e.Raw, a.Sig, key
	if key == nil {
		rep.Notes = append(rep.Notes, "The package holds no device key: no key of the shop's keyring verified the signature. / 店舗の鍵で署名を確認できなかったため、装置の公開鍵は含まれていません。")
	}
	// The hand-over is recorded once every other file is written, before
	// the report and the zip are finished, so that the report lists it.
	record := func(r *Report) error {
		log := custody.Log{Client: c.Client, Bucket: c.Bucket, Prefix: c.Prefix}
		ref := c.RefOf(e)
		if _, err := log.Add(ctx, ref.Store, ref.Device, ref.ID, custody.Record{Time: r.Made, Action: custody.Handover, Actor: o.By, From: o.From,
			Detail: "hand-over package " + m.Incident + ".zip"}); err != nil {
			return err
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
			r.Custody = append(r.Custody, CustodyEvent{Time: ev.Stored, Action: string(ev.Action), Actor: ev.Actor, Detail: d})
		}
		return nil
	}
	return Write(o.Dir, contents, rep, Options{WriteReport: o.WriteReport, BeforeReport: record})
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
