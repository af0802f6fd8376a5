package uploader

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"mamoru/bucket"
	"mamoru/bucket/s3test"
	"mamoru/outbox"
)

// progressShipper is a shipper of a 12 MiB clip in three 5 MiB parts, the
// last 2 MiB, whose progress file lives in dir.
func progressShipper(dir string) *shipper {
	m := outbox.Manifest{Incident: "20261123-233000-000001", Clip: outbox.ClipDigest{
		File: outbox.ClipFile, SHA256: strings.Repeat("ab", 32), Size: 12 << 20}}
	return &shipper{dir: dir, object: "shibuya/counter-1/2026/11/23/" + m.Incident, manifest: m, partSize: 5 << 20}
}

// progressCases are upload.json contents for progressShipper, and whether
// readProgress keeps them.
func progressCases() []struct {
	name string
	file []byte
	keep bool
} {
	s := progressShipper("")
	valid := progress{Object: path.Join(s.object, outbox.ClipFile), ClipHash: s.manifest.Clip.SHA256, PartSize: s.partSize, UploadID: "u1",
		Parts: []part{{Number: 2, ETag: "e2", SHA256: "c2", Size: 5 << 20}, {Number: 3, ETag: "e3", SHA256: "c3", Size: 2 << 20}}}
	edit := func(f func(p *progress)) []byte {
		p := valid
		p.Parts = append([]part(nil), valid.Parts...)
		f(&p)
		b, _ := json.Marshal(p)
		return b
	}
	same := edit(func(*progress) {})
	return []struct {
		name string
		file []byte
		keep bool
	}{
		{"parts of this clip", same, true},
		{"the clip done", edit(func(p *progress) { p.UploadID, p.Parts, p.ClipDone, p.Checked = "", nil, true, checkedStat }), true},
		{"another clip", edit(func(p *progress) { p.ClipHash = strings.Repeat("cd", 32) }), false},
		{"another part size", edit(func(p *progress) { p.PartSize = 8 << 20 }), false},
		{"another object", edit(func(p *progress) { p.Object = "elsewhere/clip.mp4" }), false},
		{"part 0", edit(func(p *progress) { p.Parts[0].Number = 0 }), false},
		{"a part past the clip's end", edit(func(p *progress) { p.Parts[1].Number = 4 }), false},
		{"a part twice", edit(func(p *progress) { p.Parts[1] = p.Parts[0] }), false},
		{"a part of the wrong size", edit(func(p *progress) { p.Parts[1].Size = 5 << 20 }), false},
		{"a part without ETag", edit(func(p *progress) { p.Parts[0].ETag = "" }), false},
		{"parts without an upload", edit(func(p *progress) { p.UploadID = "" }), false},
		{"torn", same[:len(same)/2], false},
		{"empty", []byte{}, false},
		{"not an object", []byte(`[1,2,3]`), false},
	}
}

func TestReadProgress(t *testing.T) {
	for _, tc := range progressCases() {
		t.Run(tc.name, func(t *testing.T) {
			s := progressShipper(t.TempDir())
			fresh := s.readProgress() // no file yet
			if err := os.WriteFile(filepath.Join(s.dir, ProgressFile), tc.file, 0o640); err != nil {
				t.Fatal(err)
			}
			got := s.readProgress()
			want := fresh
			if tc.keep {
				want = progress{}
				json.Unmarshal(tc.file, &want)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("readProgress of %s = %+v, want %+v", tc.file, got, want)
			}
		})
	}
}

// FuzzReadProgress: whatever upload.json holds, readProgress does not
// panic, and returns either the file's progress, fitting the clip, or a
// fresh start.
func FuzzReadProgress(f *testing.F) {
	for _, tc := range progressCases() {
		f.Add(tc.file)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		s := progressShipper(dir)
		os.Remove(filepath.Join(dir, ProgressFile))
		fresh := s.readProgress()
		if err := os.WriteFile(filepath.Join(dir, ProgressFile), b, 0o640); err != nil {
			t.Fatal(err)
		}
		got := s.readProgress()
		if reflect.DeepEqual(got, fresh) {
			return
		}
		var saved progress
		if err := json.Unmarshal(b, &saved); err != nil || !reflect.DeepEqual(got, saved) {
			t.Fatalf("readProgress = %+v: neither fresh (%+v) nor the file's (%+v, %v)", got, fresh, saved, err)
		}
		if got.Object != fresh.Object || got.ClipHash != fresh.ClipHash || got.PartSize != fresh.PartSize {
			t.Fatalf("kept progress %+v for another clip or part size than %+v", got, fresh)
		}
		if len(got.Parts) > 0 && got.UploadID == "" {
			t.Fatalf("kept parts without an upload: %+v", got)
		}
		sizes := []int64{5 << 20, 5 << 20, 2 << 20}
		seen := map[int]bool{}
		for _, pt := range got.Parts {
			if pt.Number < 1 || pt.Number > len(sizes) || seen[pt.Number] || pt.Size != sizes[pt.Number-1] || pt.ETag == "" {
				t.Fatalf("kept a part that cannot be the clip's: %+v in %+v", pt, got)
			}
			seen[pt.Number] = true
		}
	})
}

// A progress file whose saved part no longer matches the clip (a bit
// flipped on the card) would complete an upload that can never succeed, or
// worse: the upload starts afresh and the clip arrives intact.
func TestCorruptProgressStartsAfresh(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	srv.Bucket("clips")
	px := newProxy(t, srv.Endpoint)
	// The answer to part 2 is lost: part 1 alone is saved.
	px.after = func(part int) error {
		if part == 2 {
			return errors.New("connection lost")
		}
		return nil
	}
	st := srv.Storage("clips")
	st.Endpoint = strings.TrimPrefix(px.URL, "http://")
	box := t.TempDir()
	m := makeIncident(t, box, "20261123-233000-000001", 11<<20)
	dir := filepath.Join(box, m.Incident)
	u := &Uploader{Storage: st, Location: tokyo, Log: testLog(t), Client: mustClient(t, st)}
	in := outbox.Incident{Dir: dir, Manifest: m}
	if err := u.ship(t.Context(), in, nil); err == nil {
		t.Fatal("ship succeeded through a lost connection")
	}
	b, err := os.ReadFile(filepath.Join(dir, ProgressFile))
	if err != nil {
		t.Fatal(err)
	}
	var p progress
	if err := json.Unmarshal(b, &p); err != nil || len(p.Parts) != 1 {
		t.Fatalf("progress after part 1: %s (%v); want part 1 saved", b, err)
	}
	// Flip one character of part 1's SHA-256.
	sum := []byte(p.Parts[0].SHA256)
	sum[3] ^= 'A' ^ 'B'
	corrupt := bytes.Replace(b, []byte(p.Parts[0].SHA256), sum, 1)
	if err := os.WriteFile(filepath.Join(dir, ProgressFile), corrupt, 0o640); err != nil {
		t.Fatal(err)
	}
	px.after = nil
	if err := u.ship(t.Context(), in, nil); err != nil {
		t.Fatalf("ship after the progress file was corrupted: %v", err)
	}
	object := path.Join(bucket.ObjectDir("", m, tokyo), outbox.ClipFile)
	if got := objectSHA256(t, srv.Root(), "clips", object, minio.GetObjectOptions{}); got != m.Clip.SHA256 {
		t.Errorf("clip in the bucket has SHA-256 %s, want %s", got, m.Clip.SHA256)
	}
	if _, sent := px.counts(); sent[1] != 2 {
		t.Errorf("part 1 sent %d times, want 2: once before the corruption, once afresh", sent[1])
	}
}
