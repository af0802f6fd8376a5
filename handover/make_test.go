package handover

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"testing"

	"github.com/minio/minio-go/v7"

	"mamoru/bucket"
	"mamoru/bucket/s3test"
	"mamoru/custody"
	"mamoru/outbox"
)

// Make, as the console calls it, with no options but where and by whom:
// an unsigned incident is refused with ErrUnverified and nothing made;
// allowed, it is packaged with the report's defaults and the hand-over
// recorded in the chain of custody, and a second package is not written
// over the first.
func TestMake(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	srv.Bucket("clips")
	root := srv.Root()
	c, _ := contents(t)
	clip, err := io.ReadAll(io.NewSectionReader(c.Clip, 0, c.ClipSize))
	if err != nil {
		t.Fatal(err)
	}
	var m outbox.Manifest
	if err := json.Unmarshal(c.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	dir := path.Join("mamoru", m.Object)
	for name, b := range map[string][]byte{outbox.ClipFile: clip, outbox.ManifestFile: c.Manifest} {
		if _, err := root.PutObject(t.Context(), "clips", path.Join(dir, name), bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	clips := bucket.Clips{Client: root, Bucket: "clips", Prefix: "mamoru"}
	r := bucket.Ref{Store: m.Store, Device: m.Device, ID: m.Incident}

	out := t.TempDir()
	if _, _, err := Make(t.Context(), clips, r, MakeOptions{Dir: out, By: "sato"}); !errors.Is(err, ErrUnverified) {
		t.Errorf("Make of an unsigned incident: %v; want ErrUnverified", err)
	}
	if left, _ := os.ReadDir(out); len(left) != 0 {
		t.Errorf("a refused package left %v", left)
	}
	zip, rep, err := Make(t.Context(), clips, r, MakeOptions{Dir: out, By: "sato", AllowUnverified: true})
	if err != nil {
		t.Fatal(err)
	}
	if zip != filepath.Join(out, m.Incident+".zip") || len(rep.Custody) != 1 || rep.Custody[0].Action != string(custody.Handover) || rep.Custody[0].Actor != "sato" {
		t.Errorf("Make = %s, custody %+v; want %s.zip and its hand-over by sato", zip, rep.Custody, m.Incident)
	}
	if _, err := Read(zip); err != nil {
		t.Errorf("the package does not read back: %v", err)
	}
	if _, _, err := Make(t.Context(), clips, r, MakeOptions{Dir: out, By: "sato", AllowUnverified: true}); !errors.Is(err, ErrExists) {
		t.Errorf("a second Make into the same folder: %v; want ErrExists", err)
	}
}
