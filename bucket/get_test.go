package bucket

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"mamoru/bucket/s3test"
	"mamoru/outbox"
)

// A manifest is outside bytes: whatever it says, a download stays in
// DIR/<id>/, never follows a symlink, never replaces a file, and reads no
// more of the clip than the manifest's size.
func TestClipsGetStaysInDir(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	srv.Bucket("clips")
	root := srv.Root()
	c := Clips{Client: root, Bucket: "clips", Prefix: "mamoru", Keyring: testKeyring}
	clip := []byte("the clip's bytes")
	sum := sha256.Sum256(clip)
	pressed := time.Date(2026, 11, 23, 15, 45, 2, 0, tokyo)

	for i, tc := range []struct {
		name    string
		edit    func(*outbox.Manifest) // what the planted manifest says
		object  []byte                 // the clip object, if not clip
		prepare func(t *testing.T, dl, outside, id string)
		wantErr error // nil: the download succeeds
	}{
		{name: "a well-formed incident"},
		{name: "incident climbs out of DIR", edit: func(m *outbox.Manifest) { m.Incident = "../../../escaped" }, wantErr: ErrMisplaced},
		{name: "incident names another id", edit: func(m *outbox.Manifest) { m.Incident = "20261123-154502-999999" }, wantErr: ErrMisplaced},
		{name: "store disagrees with the path", edit: func(m *outbox.Manifest) { m.Store = "shop-2" }, wantErr: ErrMisplaced},
		{name: "device disagrees with the path", edit: func(m *outbox.Manifest) { m.Device = "counter-2" }, wantErr: ErrMisplaced},
		{name: "clip larger than the manifest says", object: append(bytes.Clone(clip), make([]byte, 1<<20)...), wantErr: ErrNotVerified},
		{name: "clip.mp4 already there", prepare: func(t *testing.T, dl, _, id string) {
			writeFile(t, filepath.Join(dl, id, outbox.ClipFile), "mine")
		}, wantErr: ErrExists},
		{name: "manifest.json already there", prepare: func(t *testing.T, dl, _, id string) {
			writeFile(t, filepath.Join(dl, id, outbox.ManifestFile), "mine")
		}, wantErr: ErrExists},
		{name: "DIR/<id> is a symlink", prepare: func(t *testing.T, dl, outside, id string) {
			if err := os.Symlink(outside, filepath.Join(dl, id)); err != nil {
				t.Fatal(err)
			}
		}, wantErr: ErrSymlink},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := idFor(i)
			m := outbox.Manifest{Version: outbox.ManifestVersion, Store: "shop-1", Device: "counter-1", Incident: id, State: outbox.StateComplete, PressTime: pressed,
				Clip: outbox.ClipDigest{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(clip))}}
			m.Object = outbox.ObjectKey(m, tokyo)
			dir := ObjectDir("mamoru", m, tokyo)
			if tc.edit != nil {
				tc.edit(&m)
			}
			object := clip
			if tc.object != nil {
				object = tc.object
			}
			raw, _ := json.Marshal(m)
			for name, b := range map[string][]byte{outbox.ClipFile: object, outbox.ManifestFile: raw, outbox.SignatureFile: sigFile(raw)} {
				if _, err := root.PutObject(t.Context(), "clips", path.Join(dir, name), bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			// DIR is three levels down, so ../../../escaped stays in base.
			base := t.TempDir()
			dl := filepath.Join(base, "a", "b", "c")
			outside := filepath.Join(base, "outside")
			for _, d := range []string{dl, outside} {
				if err := os.MkdirAll(d, 0o750); err != nil {
					t.Fatal(err)
				}
			}
			if tc.prepare != nil {
				tc.prepare(t, dl, outside, id)
			}
			before := tree(t, base)

			e, err := c.Find(t.Context(), Ref{ID: id})
			if err != nil {
				t.Fatal(err)
			}
			var read int64
			out, _, err := c.Get(t.Context(), e, dl, func(done, _ int64) { read = done })
			if read > int64(len(clip)) {
				t.Errorf("read %d bytes of the clip, want at most the manifest's %d", read, len(clip))
			}
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Get: %v", err)
				}
				if want := filepath.Join(dl, id); out != want {
					t.Errorf("downloaded into %s, want %s", out, want)
				}
				for _, name := range []string{outbox.ClipFile, outbox.ManifestFile, outbox.SignatureFile} {
					if _, err := os.Lstat(filepath.Join(dl, id, name)); err != nil {
						t.Errorf("%s: %v", name, err)
					}
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("Get: got error %v, want %v", err, tc.wantErr)
			}
			if err != nil && tc.wantErr == ErrMisplaced && !strings.Contains(err.Error(), path.Join(dir, outbox.ManifestFile)) {
				t.Errorf("Get: error %q does not name the manifest's key", err)
			}
			if got := tree(t, base); got != before {
				t.Errorf("a refused download changed the disk:\ngot  %s\nwant %s", got, before)
			}
		})
	}
}

// idFor is a distinct, well-formed incident id for case i.
func idFor(i int) string { return "20261123-154502-" + strings.Repeat("0", 5) + string(rune('0'+i)) }

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o640); err != nil {
		t.Fatal(err)
	}
}

// tree describes every file, directory and symlink under base, with the
// files' contents.
func tree(t *testing.T, base string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		switch {
		case d.Type()&os.ModeSymlink != 0:
			to, _ := os.Readlink(p)
			b.WriteString(rel + " -> " + to + "; ")
		case d.IsDir():
			b.WriteString(rel + "/; ")
		default:
			content, _ := os.ReadFile(p)
			b.WriteString(rel + " = " + string(content) + "; ")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// One manifest that cannot be read (bad JSON, or too large) is reported by
// its key and the others are listed.
func TestClipsListSkipsUnreadable(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	srv.Bucket("clips")
	root := srv.Root()
	put := func(object string, b []byte) {
		if _, err := root.PutObject(t.Context(), "clips", object, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	good, _ := json.Marshal(outbox.Manifest{Version: 1, Store: "shop-1", Device: "counter-1", Incident: "20261123-154502-000001", PressTime: time.Now()})
	put("mamoru/shop-1/counter-1/2026/11/23/20261123-154502-000001/manifest.json", good)
	badJSON := "mamoru/shop-1/counter-1/2026/11/23/20261123-154502-000002/manifest.json"
	put(badJSON, []byte(`{"incident": `))
	huge := "mamoru/shop-1/counter-2/2026/11/23/20261123-154502-000003/manifest.json"
	put(huge, append(append([]byte(`{"incident": "20261123-154502-000003", "notes": ["`), bytes.Repeat([]byte("x"), 1<<20)...), []byte(`"]}`)...))

	c := Clips{Client: root, Bucket: "clips", Prefix: "mamoru"}
	skipped := map[string]error{}
	entries, err := c.List(t.Context(), Filter{Unreadable: func(object string, err error) { skipped[object] = err }})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(entries) != 1 || entries[0].Manifest.Incident != "20261123-154502-000001" {
		t.Errorf("List: got %d entries %+v, want only the readable one", len(entries), entries)
	}
	for _, object := range []string{badJSON, huge} {
		if err := skipped[object]; !errors.Is(err, ErrUnreadable) || !strings.Contains(err.Error(), object) {
			t.Errorf("%s: got %v, want %v naming the key", object, err, ErrUnreadable)
		}
	}
	if len(skipped) != 2 {
		t.Errorf("skipped %v, want the two unreadable manifests", skipped)
	}
}
