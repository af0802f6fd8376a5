package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"mamoru/bucket/s3test"
	"mamoru/outbox"
)

// managerConfig starts MinIO with a bucket "clips" and writes a manager's
// configuration for it.
func managerConfig(t *testing.T) (*s3test.Server, string) {
	t.Helper()
	srv := s3test.Start(t, s3test.Options{})
	srv.Bucket("clips")
	storage := fmt.Sprintf("\n[storage]\nendpoint = %q\nbucket = \"clips\"\nsecure = false\nprefix = \"mamoru\"\n", srv.Endpoint)
	return srv, writeConfig(t, t.TempDir(), "manager.toml", storage+keyFiles(t, s3test.RootUser, s3test.RootPassword))
}

// One unreadable manifest is skipped with a warning naming its key, the
// rest are listed, and nothing a manifest says reaches the terminal as a
// control sequence.
func TestClipsLsSurvivesBadManifests(t *testing.T) {
	srv, cfg := managerConfig(t)
	put := func(object string, b []byte) {
		if _, err := srv.Root().PutObject(t.Context(), "clips", object, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	const good = "20261123-154502-000001"
	m, _ := json.Marshal(outbox.Manifest{Version: 1, Store: "shop-1\x1b]0;owned\a", Device: "counter-1\x1b[2J", Incident: good, PressTime: time.Now()})
	put("mamoru/shop-1/counter-1/2026/11/23/"+good+"/manifest.json", m)
	badJSON := "mamoru/shop-1/counter-1/2026/11/23/20261123-154502-000002/manifest.json"
	put(badJSON, []byte(`{"incident": `))
	huge := "mamoru/shop-1/counter-2/2026/11/23/20261123-154502-000003/manifest.json"
	put(huge, append(append([]byte(`{"incident": "20261123-154502-000003", "notes": ["`), bytes.Repeat([]byte("x"), 1<<20)...), []byte(`"]}`)...))

	for _, args := range [][]string{{"clips", "ls", "--config", cfg}, {"clips", "ls", "--config", cfg, "--json"}} {
		code, out, errOut := runCmd(t, args...)
		if code != 0 {
			t.Errorf("%v: exit %d, want 0; stderr %q", args, code, errOut)
		}
		if !strings.Contains(out, good) || !strings.Contains(out, "shop-1]0;owned") || !strings.Contains(out, "counter-1[2J") {
			t.Errorf("%v: stdout %q, want incident %s with its store and device", args, out, good)
		}
		if strings.ContainsAny(out, "\x1b\a") {
			t.Errorf("%v: stdout %q holds control characters", args, out)
		}
		for _, object := range []string{badJSON, huge} {
			if !strings.Contains(errOut, object) {
				t.Errorf("%v: stderr %q does not name %s", args, errOut, object)
			}
		}
	}
}

// clips get refuses, before asking the bucket, an id that is not an
// incident id: it would become a directory name.
func TestClipsGetRefusesBadIDs(t *testing.T) {
	_, cfg := managerConfig(t)
	for _, id := range []string{"../../escaped", "/etc", "20261123-154502", "20261123-154502-000001/..", ".", ""} {
		code, _, errOut := runCmd(t, "clips", "get", id, "--config", cfg, "-o", t.TempDir())
		if code != 2 || !strings.Contains(errOut, "not an incident id") {
			t.Errorf("clips get %q: exit %d, stderr %q; want 2 and 'not an incident id'", id, code, errOut)
		}
	}
}
