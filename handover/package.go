package handover

import (
	"archive/zip"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"mamoru/capture"
	"mamoru/outbox"
	"mamoru/signing"
)

// The names of the package's files beside the originals (outbox.ClipFile,
// outbox.ManifestFile and outbox.SignatureFile).
const (
	KeyFile         = "device-public-key.pem"
	ViewingCopyFile = "viewing-copy.mp4"
	ReportFile      = "report.html"
	VerifyFile      = "VERIFY.txt"
	SumsFile        = "SHA256SUMS"
	// AuditFolder holds the audit log's segments covering the incident,
	// each beside its .sig, named as in the bucket below the device's
	// audit folder.
	AuditFolder = "audit"
)

// Contents is what a package holds of the bucket, as the caller fetched
// it. Nothing here is checked again: the caller has judged the signature
// and the clip's hash, and says so in the Report's Checks.
type Contents struct {
	// Clip is clip.mp4 as in the bucket, ClipSize bytes long.
	Clip     io.ReaderAt
	ClipSize int64
	// Manifest and Signature are manifest.json and manifest.sig as in the
	// bucket; Signature is nil for an unsigned incident.
	Manifest, Signature []byte
	// Key is the device's public key that verified the signature, or nil
	// when none did: the package then holds no key file.
	Key ed25519.PublicKey
	// Audit are the audit segments covering the incident, each with its
	// .sig, as in the bucket.
	Audit []AuditFile
}

// AuditFile is one object of the audit log: Name is its path below the
// device's audit folder (<chain>/<first>-<last>-<hash>.jsonl, or that
// with .sig).
type AuditFile struct {
	Name string
	Data []byte
}

// Options are how Write renders what it does not make itself.
type Options struct {
	// WriteReport renders report.html; it must not retain r.
	WriteReport func(w io.Writer, r Report) error
	// BeforeReport, if set, is called once every file but report.html and
	// SHA256SUMS is written, so that what it adds to the report (the
	// package's own hand-over in the chain of custody) happens only when
	// the package can be made, and is in its report. Its error stops
	// Write, leaving nothing behind.
	BeforeReport func(r *Report) error
}

// ErrExists means the package's file is already there: it is never
// replaced.
var ErrExists = errors.New("already exists: not replaced")

// zipName is the form of an incident id, and so of a safe file name.
var zipName = regexp.MustCompile(`^[0-9]{8}-[0-9]{6}-[0-9]{6,20}$`)

// Write writes dir/<incident id>.zip: the originals byte for byte, the
// device's key as PEM, the audit excerpt, the viewing copy, VERIFY.txt,
// report.html (rendered from r with every file's hash filled in) and
// SHA256SUMS over every other file. It returns the zip's path and the
// report as rendered.
//
// The zip is written under a temporary name in dir and linked to its name
// only when whole and synced: dir never holds half a package, and an
// existing file of that name is never replaced (ErrExists).
func Write(dir string, c Contents, r Report, o Options) (string, Report, error) {
	if o.WriteReport == nil {
		return "", r, errors.New("handover: no report renderer")
	}
	id := r.Manifest.Incident
	if !zipName.MatchString(id) {
		return "", r, fmt.Errorf("handover: %q is not an incident id", id)
	}
	out := filepath.Join(dir, id+".zip")
	if _, err := os.Lstat(out); err == nil {
		return "", r, fmt.Errorf("%s %w", out, ErrExists)
	}
	for _, a := range c.Audit {
		if !safeName(a.Name) {
			return "", r, fmt.Errorf("handover: audit file name %q", a.Name)
		}
	}
	tmp, err := os.CreateTemp(dir, "."+id+".zip.*.part")
	if err != nil {
		return "", r, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()

	p := packer{z: zip.NewWriter(tmp), modified: r.Made}
	r.Files = nil
	p.add(outbox.ClipFile, io.NewSectionReader(c.Clip, 0, c.ClipSize), zip.Store)
	p.addBytes(outbox.ManifestFile, c.Manifest)
	if c.Signature != nil {
		p.addBytes(outbox.SignatureFile, c.Signature)
	}
	if c.Key != nil {
		p.addBytes(KeyFile, signing.PublicKeyPEM(c.Key))
		r.Key.File = KeyFile
		r.Key.Fingerprint = signing.Fingerprint(c.Key)
	}
	for _, a := range c.Audit {
		p.addBytes(path.Join(AuditFolder, a.Name), a.Data)
	}
	if p.err == nil {
		p.err = p.viewingCopy(dir, c)
	}
	p.addBytes(VerifyFile, []byte(VerifyText(r, c.Signature != nil, c.Key != nil)))
	r.Files = p.files
	if p.err == nil && o.BeforeReport != nil {
		p.err = o.BeforeReport(&r)
	}
	if p.err == nil {
		w, err := p.create(ReportFile, zip.Deflate)
		if err == nil {
			err = o.WriteReport(w, r)
		}
		if err != nil {
			p.err = fmt.Errorf("handover: %s: %w", ReportFile, err)
		}
		p.done(ReportFile)
	}
	p.addBytes(SumsFile, []byte(p.sums()))
	if p.err != nil {
		return "", r, p.err
	}
	if err := p.z.Close(); err != nil {
		return "", r, err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return "", r, err
	}
	if err := tmp.Sync(); err != nil {
		return "", r, err
	}
	if err := tmp.Close(); err != nil {
		return "", r, err
	}
	// A hard link fails on an existing name, where a rename would replace it.
	if err := os.Link(tmp.Name(), out); err != nil {
		if errors.Is(err, os.ErrExist) {
			return "", r, fmt.Errorf("%s %w", out, ErrExists)
		}
		return "", r, err
	}
	if err := os.Remove(tmp.Name()); err != nil {
		return "", r, err
	}
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return "", r, err
		}
	}
	return out, r, nil
}

// packer writes the zip's files one after another, hashing each; the
// first error stops it.
type packer struct {
	z        *zip.Writer
	modified time.Time
	files    []File
	all      []File // files, report.html included: what SHA256SUMS lists
	cur      *hashCount
	err      error
}

type hashCount struct {
	h hash.Hash
	n int64
}

func (h *hashCount) Write(b []byte) (int, error) {
	n, _ := h.h.Write(b)
	h.n += int64(n)
	return n, nil
}

// create starts a file; done ends it and records its hash.
func (p *packer) create(name string, method uint16) (io.Writer, error) {
	if p.err != nil {
		return nil, p.err
	}
	hdr := &zip.FileHeader{Name: name, Method: method, Modified: p.modified.UTC()}
	w, err := p.z.CreateHeader(hdr)
	if err != nil {
		p.err = err
		return nil, err
	}
	p.cur = &hashCount{h: sha256.New()}
	return io.MultiWriter(w, p.cur), nil
}

func (p *packer) done(name string) {
	if p.err != nil || p.cur == nil {
		return
	}
	f := File{Name: name, Size: p.cur.n, SHA256: hex.EncodeToString(p.cur.h.Sum(nil))}
	p.all = append(p.all, f)
	if name != ReportFile {
		p.files = append(p.files, f)
	}
	p.cur = nil
}

func (p *packer) add(name string, r io.Reader, method uint16) {
	w, err := p.create(name, method)
	if err != nil {
		return
	}
	if _, err := io.Copy(w, r); err != nil {
		p.err = fmt.Errorf("handover: %s: %w", name, err)
		return
	}
	p.done(name)
}

func (p *packer) addBytes(name string, b []byte) {
	p.add(name, strings.NewReader(string(b)), zip.Deflate)
}

// viewingCopy makes the viewing copy in a temporary file in dir (it is
// written with positioned writes, which a zip entry does not take) and
// adds it.
func (p *packer) viewingCopy(dir string, c Contents) error {
	f, err := os.CreateTemp(dir, ".viewing-copy-*.mp4")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := capture.ViewingCopy(f, c.Clip, c.ClipSize); err != nil {
		return fmt.Errorf("handover: the viewing copy: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	p.add(ViewingCopyFile, f, zip.Store)
	if p.err == nil {
		f := &p.files[len(p.files)-1]
		f.DerivedFrom = outbox.ClipFile
		f.Command = "mamoru clips viewing-copy " + outbox.ClipFile + " -o " + ViewingCopyFile
	}
	return p.err
}

// sums is SHA256SUMS: every file so far, as sha256sum writes it.
func (p *packer) sums() string {
	var b strings.Builder
	for _, f := range p.all {
		fmt.Fprintf(&b, "%s  %s\n", f.SHA256, f.Name)
	}
	return b.String()
}

// safeName reports whether name is a relative path of plain parts that
// stays where it is put.
func safeName(name string) bool {
	if name == "" || strings.ContainsAny(name, "\\\x00\n\r") || path.IsAbs(name) || path.Clean(name) != name {
		return false
	}
	for part := range strings.SplitSeq(name, "/") {
		if part == "" || part == "." || part == ".." {
			return false
		}
	}
	return true
}
