package handover

import (
	"archive/zip"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"html"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mamoru/capture/cliptest"
	"mamoru/outbox"
)

// testReport renders the report as plain text: what a renderer is given.
func testReport(w io.Writer, r Report) error {
	_, err := io.WriteString(w, "<pre>"+html.EscapeString(r.Ref)+"\n")
	for _, f := range r.Files {
		io.WriteString(w, f.Name+" "+f.SHA256+"\n")
	}
	return err
}

// contents is a real recorded clip, its manifest and signature.
func contents(t *testing.T) (Contents, Report) {
	t.Helper()
	clipPath, _ := cliptest.Record(t, t.TempDir(), 2, 1)
	clip, err := os.ReadFile(clipPath)
	if err != nil {
		t.Fatal(err)
	}
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))
	sum := sha256.Sum256(clip)
	m := outbox.Manifest{Version: outbox.ManifestVersion, Store: "shop-1", Device: "counter-1", Incident: "20261130-091500-000001",
		PressTime: time.Date(2026, 11, 30, 9, 15, 0, 0, time.UTC), Clip: outbox.ClipDigest{File: outbox.ClipFile, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(clip))}}
	m.Object = outbox.ObjectKey(m, time.UTC)
	raw, _ := json.MarshalIndent(m, "", "  ")
	c := Contents{Clip: bytes.NewReader(clip), ClipSize: int64(len(clip)), Manifest: raw,
		Signature: []byte(base64.StdEncoding.EncodeToString(ed25519.Sign(key, raw)) + "\n"), Key: key.Public().(ed25519.PublicKey),
		Audit: []AuditFile{{Name: "abcd/000000000000-000000000003-0123456789abcdef.jsonl", Data: []byte("{}\n")}, {Name: "abcd/000000000000-000000000003-0123456789abcdef.jsonl.sig", Data: []byte("sig\n")}}}
	return c, Report{Made: time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC), Manifest: m, Ref: "shop-1/counter-1/" + m.Incident}
}

// Write makes a whole package that Read reads back, zip and unpacked,
// with SHA256SUMS over every other file; it never replaces a file and
// leaves nothing behind when it fails.
func TestWriteAndRead(t *testing.T) {
	c, r := contents(t)
	dir := t.TempDir()
	out, rendered, err := Write(dir, c, r, Options{WriteReport: testReport})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, r.Manifest.Incident+".zip"); out != want {
		t.Errorf("wrote %s, want %s", out, want)
	}
	o, err := Read(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.CheckSums(); err != nil {
		t.Errorf("CheckSums: %v", err)
	}
	if !bytes.Equal(o.Manifest, c.Manifest) || !bytes.Equal(o.Signature, c.Signature) {
		t.Errorf("the manifest or signature is not byte for byte the original")
	}
	want := []string{outbox.ClipFile, outbox.ManifestFile, outbox.SignatureFile, KeyFile, "audit/abcd/000000000000-000000000003-0123456789abcdef.jsonl",
		"audit/abcd/000000000000-000000000003-0123456789abcdef.jsonl.sig", ViewingCopyFile, VerifyFile}
	if len(rendered.Files) != len(want) {
		t.Fatalf("report files %+v, want %v", rendered.Files, want)
	}
	for i, f := range rendered.Files {
		if f.Name != want[i] || o.Files[f.Name].SHA256 != f.SHA256 || o.Files[f.Name].Size != f.Size {
			t.Errorf("report file %d: %+v, want %s as in the zip (%+v)", i, f, want[i], o.Files[f.Name])
		}
	}
	if v := rendered.Files[6]; v.DerivedFrom != outbox.ClipFile || v.Command != "mamoru clips viewing-copy clip.mp4 -o viewing-copy.mp4" {
		t.Errorf("viewing copy %+v, want derived from clip.mp4 with its command", v)
	}
	if len(o.Files) != len(want)+2 || rendered.Key.File != KeyFile || len(rendered.Key.Fingerprint) != 64 {
		t.Errorf("zip holds %d files, want %d with report.html and SHA256SUMS; key %+v", len(o.Files), len(want)+2, rendered.Key)
	}

	// Unpacked, the same.
	unpacked := unzip(t, out)
	od, err := Read(unpacked)
	if err != nil || od.CheckSums() != nil {
		t.Errorf("the unpacked folder: %v, %v", err, od.CheckSums())
	}

	// Again: refused, the first left as it was, nothing else left.
	before, _ := os.ReadFile(out)
	if _, _, err := Write(dir, c, r, Options{WriteReport: testReport}); !errors.Is(err, ErrExists) {
		t.Errorf("a second Write = %v, want ErrExists", err)
	}
	failing := func(io.Writer, Report) error { return errors.New("renderer broke") }
	dir2 := t.TempDir()
	if _, _, err := Write(dir2, c, r, Options{WriteReport: failing}); err == nil || !strings.Contains(err.Error(), "renderer broke") {
		t.Errorf("Write with a failing renderer = %v", err)
	}
	after, _ := os.ReadFile(out)
	entries, _ := os.ReadDir(dir)
	entries2, _ := os.ReadDir(dir2)
	if !bytes.Equal(before, after) || len(entries) != 1 || len(entries2) != 0 {
		t.Errorf("left behind: %v and %v (want the one zip, and nothing)", entries, entries2)
	}
}

func unzip(t *testing.T, p string) string {
	t.Helper()
	dir := t.TempDir()
	z, err := zip.OpenReader(p)
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	for _, f := range z.File {
		r, _ := f.Open()
		b, _ := io.ReadAll(r)
		r.Close()
		os.MkdirAll(filepath.Join(dir, filepath.Dir(f.Name)), 0o755)
		os.WriteFile(filepath.Join(dir, f.Name), b, 0o644)
	}
	return dir
}

// A file altered, missing, extra, or a line of SHA256SUMS changed: each
// is found and named.
func TestCheckSumsFindsChanges(t *testing.T) {
	c, r := contents(t)
	out, _, err := Write(t.TempDir(), c, r, Options{WriteReport: testReport})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		change func(dir string)
		want   string
	}{
		{"a byte of the clip", func(d string) { flip(t, filepath.Join(d, outbox.ClipFile), 100) }, "clip.mp4 has SHA-256"},
		{"a byte of the manifest", func(d string) { flip(t, filepath.Join(d, outbox.ManifestFile), 10) }, "manifest.json has SHA-256"},
		{"a line of SHA256SUMS", func(d string) { flip(t, filepath.Join(d, SumsFile), 3) }, "has SHA-256"},
		{"a file removed", func(d string) { os.Remove(filepath.Join(d, KeyFile)) }, KeyFile + " is listed and missing"},
		{"a file added", func(d string) { os.WriteFile(filepath.Join(d, "extra.txt"), nil, 0o644) }, "extra.txt is in the package and not listed"},
		{"a wrong manifest.sig.bin", func(d string) { os.WriteFile(filepath.Join(d, decodedSig), []byte("x"), 0o644) }, "manifest.sig.bin is in the package and not listed"},
		{"the right manifest.sig.bin", func(d string) {
			raw, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(string(c.Signature)))
			os.WriteFile(filepath.Join(d, decodedSig), raw, 0o644)
		}, ""},
	} {
		d := unzip(t, out)
		tc.change(d)
		o, err := Read(d)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		err = o.CheckSums()
		if tc.want == "" && err != nil || tc.want != "" && (!errors.Is(err, ErrSums) || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: CheckSums = %v, want %q", tc.name, err, tc.want)
		}
	}
}

func flip(t *testing.T, p string, at int) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[at] ^= 1
	os.WriteFile(p, b, 0o644)
}

// A zip with a name that climbs out, an absolute name, or a file larger
// than it may be is refused before anything is written anywhere.
func TestReadRefusesUnsafeZips(t *testing.T) {
	for _, tc := range []struct {
		name string
		hdr  zip.FileHeader
		body []byte
	}{
		{"climbs out", zip.FileHeader{Name: "../evil"}, []byte("x")},
		{"absolute", zip.FileHeader{Name: "/etc/evil"}, []byte("x")},
		{"backslash", zip.FileHeader{Name: `..\evil`}, []byte("x")},
		{"a manifest of 2 MiB", zip.FileHeader{Name: outbox.ManifestFile, Method: zip.Deflate}, bytes.Repeat([]byte{' '}, 2<<20)},
	} {
		p := filepath.Join(t.TempDir(), "p.zip")
		f, _ := os.Create(p)
		z := zip.NewWriter(f)
		w, err := z.CreateHeader(&tc.hdr)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(tc.body)
		z.Close()
		f.Close()
		if _, err := Read(p); !errors.Is(err, ErrUnsafe) {
			t.Errorf("%s: Read = %v, want ErrUnsafe", tc.name, err)
		}
	}
}

func FuzzCheckSums(f *testing.F) {
	f.Add([]byte("0000000000000000000000000000000000000000000000000000000000000000  clip.mp4\n"))
	f.Add([]byte("x *y\n\n"))
	f.Fuzz(func(t *testing.T, sums []byte) {
		o := Opened{Files: map[string]File{"clip.mp4": {Name: "clip.mp4", SHA256: strings.Repeat("0", 64)}}, Sums: sums}
		if err := o.CheckSums(); err != nil && !errors.Is(err, ErrSums) {
			t.Errorf("CheckSums = %v, not ErrSums", err)
		}
	})
}

// BeforeReport runs once the other files are written: what it adds is in
// the report, and its error leaves nothing behind.
func TestBeforeReport(t *testing.T) {
	c, r := contents(t)
	var sawFiles int
	var rendered Report
	opts := Options{
		WriteReport: func(w io.Writer, r Report) error { rendered = r; return testReport(w, r) },
		BeforeReport: func(r *Report) error {
			sawFiles = len(r.Files)
			r.Custody = append(r.Custody, CustodyEvent{Action: "handover", Actor: "sato"})
			return nil
		},
	}
	if _, _, err := Write(t.TempDir(), c, r, opts); err != nil {
		t.Fatal(err)
	}
	if sawFiles != 8 || len(rendered.Custody) != 1 || rendered.Custody[0].Actor != "sato" {
		t.Errorf("BeforeReport saw %d files, the report %+v; want 8 files and sato's hand-over in the report", sawFiles, rendered.Custody)
	}
	dir := t.TempDir()
	opts.BeforeReport = func(*Report) error { return errors.New("no right to record") }
	if _, _, err := Write(dir, c, r, opts); err == nil || !strings.Contains(err.Error(), "no right to record") {
		t.Errorf("Write with a failing BeforeReport = %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a failed Write left %v", entries)
	}
}

// Read of any bytes as a zip fails or succeeds, never panics, and keeps
// its bounds.
func FuzzRead(f *testing.F) {
	var b bytes.Buffer
	z := zip.NewWriter(&b)
	w, _ := z.Create(SumsFile)
	w.Write([]byte(strings.Repeat("0", 64) + "  clip.mp4\n"))
	w, _ = z.Create(outbox.ClipFile)
	w.Write([]byte("clip"))
	z.Close()
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "p.zip")
		os.WriteFile(p, data, 0o644)
		o, err := Read(p)
		if err != nil {
			return
		}
		if len(o.Files) > MaxFiles || len(o.Manifest) > maxKept || len(o.Sums) > maxKept {
			t.Errorf("Read kept %d files, a %d-byte manifest, %d-byte sums", len(o.Files), len(o.Manifest), len(o.Sums))
		}
		o.CheckSums()
	})
}
