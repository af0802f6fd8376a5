package handover

import (
	"archive/zip"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"mamoru/outbox"
)

// Bounds on a package a reader opens: it is outside bytes, and a zip can
// claim any sizes (a zip bomb).
const (
	MaxFiles      = 256
	MaxFileBytes  = 8 << 30  // a clip of hours, and then some
	MaxTotalBytes = 24 << 30 // the clip, its viewing copy, and the rest
	// maxKept bounds each file Read keeps in memory (manifest, signature,
	// SHA256SUMS); each is a few KiB.
	maxKept = outbox.MaxManifestBytes
)

var (
	// ErrUnsafe means a package holds a path that would land outside its
	// folder, a link, or more or larger files than any package has.
	ErrUnsafe = errors.New("not a package mamoru reads")
	// ErrSums means the package's files are not those SHA256SUMS lists:
	// one altered, missing or extra, or SHA256SUMS itself altered.
	ErrSums = errors.New("files do not match " + SumsFile)
)

// Opened is a package as Read found it: every file's hash and size, and
// the bytes of the few small ones a check reads.
type Opened struct {
	Files map[string]File // by name, SHA256SUMS included
	// Manifest, Signature, Sums and Key are manifest.json, manifest.sig,
	// SHA256SUMS and the key's PEM; nil where absent.
	Manifest, Signature, Sums, Key []byte
}

// IsPackage reports whether p looks like a package: a .zip file, or a
// folder holding SHA256SUMS.
func IsPackage(p string) bool {
	fi, err := os.Stat(p)
	if err != nil {
		return false
	}
	if !fi.IsDir() {
		return strings.EqualFold(filepath.Ext(p), ".zip")
	}
	_, err = os.Lstat(filepath.Join(p, SumsFile))
	return err == nil
}

// Read reads the package at p, a zip or the folder it was unpacked into,
// hashing every file. It refuses (ErrUnsafe) a name with "..", an
// absolute name, a link, more than MaxFiles files, a file over
// MaxFileBytes or all over MaxTotalBytes, whatever the zip claims.
func Read(p string) (Opened, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return Opened{}, err
	}
	o := Opened{Files: map[string]File{}}
	var total int64
	add := func(name string, r io.Reader) error {
		if !safeName(name) {
			return fmt.Errorf("%w: %q is not a plain relative name", ErrUnsafe, name)
		}
		if _, dup := o.Files[name]; dup {
			return fmt.Errorf("%w: %s is there twice", ErrUnsafe, name)
		}
		if len(o.Files) >= MaxFiles {
			return fmt.Errorf("%w: more than %d files", ErrUnsafe, MaxFiles)
		}
		keep := map[string]*[]byte{outbox.ManifestFile: &o.Manifest, outbox.SignatureFile: &o.Signature, SumsFile: &o.Sums, KeyFile: &o.Key}[name]
		h := sha256.New()
		var kept bytes.Buffer
		w := io.Writer(h)
		if keep != nil {
			w = io.MultiWriter(h, &limitedBuffer{&kept, maxKept})
		}
		n, err := io.Copy(w, io.LimitReader(r, MaxFileBytes+1))
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if n > MaxFileBytes {
			return fmt.Errorf("%w: %s is over %d bytes", ErrUnsafe, name, int64(MaxFileBytes))
		}
		if total += n; total > MaxTotalBytes {
			return fmt.Errorf("%w: its files are over %d bytes in all", ErrUnsafe, int64(MaxTotalBytes))
		}
		if keep != nil {
			if n > maxKept {
				return fmt.Errorf("%w: %s is over %d bytes", ErrUnsafe, name, maxKept)
			}
			*keep = kept.Bytes()
		}
		o.Files[name] = File{Name: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}
		return nil
	}
	if fi.IsDir() {
		err = readDir(p, add)
	} else {
		err = readZip(p, add)
	}
	return o, err
}

// limitedBuffer keeps the first max bytes written to it, and takes the
// rest without keeping it.
type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max + 1 - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func readZip(p string, add func(string, io.Reader) error) error {
	z, err := zip.OpenReader(p)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	defer z.Close()
	if len(z.File) > MaxFiles*2 {
		return fmt.Errorf("%w: more than %d entries", ErrUnsafe, MaxFiles*2)
	}
	for _, f := range z.File {
		if strings.HasSuffix(f.Name, "/") && f.FileInfo().IsDir() {
			if !safeName(strings.TrimSuffix(f.Name, "/")) {
				return fmt.Errorf("%w: %q is not a plain relative name", ErrUnsafe, f.Name)
			}
			continue
		}
		if !f.Mode().IsRegular() {
			return fmt.Errorf("%w: %s is not a regular file (%v)", ErrUnsafe, f.Name, f.Mode().Type())
		}
		if f.UncompressedSize64 > MaxFileBytes {
			return fmt.Errorf("%w: %s claims %d bytes, over %d", ErrUnsafe, f.Name, f.UncompressedSize64, int64(MaxFileBytes))
		}
		if !safeName(f.Name) {
			return fmt.Errorf("%w: %q is not a plain relative name", ErrUnsafe, f.Name)
		}
		r, err := f.Open()
		if err != nil {
			return fmt.Errorf("%s: %s: %w", p, f.Name, err)
		}
		err = add(f.Name, r)
		r.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func readDir(root string, add func(string, io.Reader) error) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			return nil
		case !d.Type().IsRegular():
			return fmt.Errorf("%w: %s is not a regular file (%v)", ErrUnsafe, name, d.Type())
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return add(name, f)
	})
}

// CheckSums checks that SHA256SUMS lists every other file, once, with its
// hash, and no file that is not there. In an unpacked folder,
// manifest.sig.bin is passed by if it is what VERIFY.txt's decoding of
// manifest.sig makes. Every problem is reported, each wrapping ErrSums.
func (o Opened) CheckSums() error {
	if o.Sums == nil {
		return fmt.Errorf("%w: the package has no %s", ErrSums, SumsFile)
	}
	var errs []error
	listed := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(o.Sums))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		sum, name, ok := strings.Cut(line, "  ")
		if !ok {
			sum, name, ok = strings.Cut(line, " *")
		}
		if !ok || len(sum) != 64 || !isHex(sum) || name == "" {
			errs = append(errs, fmt.Errorf("%w: line %d of %s is not a SHA-256 and a name: %q", ErrSums, n, SumsFile, line))
			continue
		}
		if listed[name] {
			errs = append(errs, fmt.Errorf("%w: %s lists %s twice", ErrSums, SumsFile, name))
			continue
		}
		listed[name] = true
		f, there := o.Files[name]
		switch {
		case name == SumsFile:
			errs = append(errs, fmt.Errorf("%w: %s lists itself", ErrSums, SumsFile))
		case !there:
			errs = append(errs, fmt.Errorf("%w: %s is listed and missing", ErrSums, name))
		case f.SHA256 != strings.ToLower(sum):
			errs = append(errs, fmt.Errorf("%w: %s has SHA-256 %s, %s lists %s", ErrSums, name, f.SHA256, SumsFile, strings.ToLower(sum)))
		}
	}
	names := make([]string, 0, len(o.Files))
	for name := range o.Files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if name == SumsFile || listed[name] || (name == decodedSig && o.isDecodedSig()) {
			continue
		}
		errs = append(errs, fmt.Errorf("%w: %s is in the package and not listed", ErrSums, name))
	}
	return errors.Join(errs...)
}

// decodedSig is the file VERIFY.txt has the reader make.
const decodedSig = "manifest.sig.bin"

// isDecodedSig reports whether manifest.sig.bin holds what base64 -d of
// manifest.sig gives.
func (o Opened) isDecodedSig() bool {
	raw, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(o.Signature)))
	if err != nil {
		return false
	}
	sum := sha256.Sum256(raw)
	return o.Files[decodedSig].SHA256 == hex.EncodeToString(sum[:])
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}
