package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"mamoru/bucket/s3test"
	"mamoru/outbox"
	"mamoru/signing"
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
		// Each incident is named store/device/id by where it is.
		if !strings.Contains(out, "shop-1/counter-1/"+good) {
			t.Errorf("%v: stdout %q, want incident shop-1/counter-1/%s", args, out, good)
		}
		// The JSON says also what the manifest says.
		if json := len(args) == 5; json && (!strings.Contains(out, "shop-1]0;owned") || !strings.Contains(out, "counter-1[2J")) {
			t.Errorf("%v: stdout %q, want the manifest's store and device, printable", args, out)
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
		if code != 2 || !strings.Contains(errOut, "not an incident") {
			t.Errorf("clips get %q: exit %d, stderr %q; want 2 and 'not an incident'", id, code, errOut)
		}
	}
}

// plant puts an incident's clip, manifest (version 2, naming its place,
// unless legacy) and, if key is set, its signature into the bucket under
// prefix "mamoru", and returns its place below the prefix.
func plant(t *testing.T, srv *s3test.Server, store, device, id string, key ed25519.PrivateKey, legacy bool) string {
	t.Helper()
	clip := []byte("the clip of " + store + "/" + device + "/" + id)
	sum := sha256.Sum256(clip)
	pressed := time.Date(2026, 11, 23, 15, 45, 2, 0, time.FixedZone("JST", 9*3600))
	m := outbox.Manifest{Version: outbox.ManifestVersion, Store: store, Device: device, Incident: id, State: outbox.StateComplete, PressTime: pressed,
		Clip: outbox.ClipDigest{File: outbox.ClipFile, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(clip))}}
	m.Object = outbox.ObjectKey(m, pressed.Location())
	place := m.Object
	if legacy {
		m.Version, m.Object = 1, ""
	}
	raw, _ := json.MarshalIndent(m, "", "  ")
	objects := map[string][]byte{outbox.ClipFile: clip, outbox.ManifestFile: raw}
	if key != nil {
		objects[outbox.SignatureFile] = []byte(base64.StdEncoding.EncodeToString(ed25519.Sign(key, raw)) + "\n")
	}
	for name, b := range objects {
		if _, err := srv.Root().PutObject(t.Context(), "clips", "mamoru/"+place+"/"+name, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return place
}

func keyringEntryFor(store, device string, key ed25519.PrivateKey) string {
	return fmt.Sprintf("\n[[keyring]]\nstore = %q\ndevice = %q\npublic_key = %q\n", store, device, signing.FormatPublicKey(key.Public().(ed25519.PublicKey)))
}

// Issue 14, findings 3 and 4, through the binary: a signature is bound to
// its device and place, a bare id never picks one of two devices'
// incidents, and "verified" means signed by a key of the keyring.
func TestClipsAuthenticity(t *testing.T) {
	srv, bare := managerConfig(t)
	seed := func(b byte) ed25519.PrivateKey {
		return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
	}
	old1, new1, key2 := seed(1), seed(2), seed(3)
	src, _ := os.ReadFile(bare)
	cfg := filepath.Join(t.TempDir(), "manager.toml")
	os.WriteFile(cfg, []byte(string(src)+keyringEntryFor("shop-1", "counter-1", old1)+keyringEntryFor("shop-1", "counter-1", new1)+
		"not_before = \"2026-12-01T00:00:00+09:00\"\n"+keyringEntryFor("shop-1", "counter-2", key2)), 0o644)

	const idA, idB = "20261123-154502-000001", "20261123-154502-000002"
	a := plant(t, srv, "shop-1", "counter-1", idA, old1, false)
	b := plant(t, srv, "shop-1", "counter-1", idB, old1, false)
	// The same id on another device, honestly signed by it.
	plant(t, srv, "shop-1", "counter-2", idA, key2, false)

	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string // in stdout
		stderr string // in stderr
	}{
		{"signed, in its place", []string{"verify", "shop-1/counter-1/" + idA}, 0, "verified: signed by shop-1/counter-1", ""},
		{"the same id on the other device", []string{"verify", "shop-1/counter-2/" + idA}, 0, "verified: signed by shop-1/counter-2", ""},
		{"a bare id two devices have", []string{"verify", idA}, 1, "", "shop-1/counter-1/" + idA + " (at " + a + ")\n  shop-1/counter-2/" + idA},
		{"get of a bare id two devices have", []string{"get", idA, "-o", t.TempDir()}, 1, "", "shop-1/counter-2/" + idA},
		{"share of a bare id two devices have", []string{"share", idA}, 1, "", "shop-1/counter-1/" + idA},
		{"get by store/device/id", []string{"get", "shop-1/counter-2/" + idA, "-o", t.TempDir()}, 0, "verified: signed by shop-1/counter-2 (SHA-256", ""},
		{"a bare id one device has", []string{"get", idB, "-o", t.TempDir()}, 0, "verified: signed by shop-1/counter-1", ""},
		{"a re-provisioned device's old clip, by its old key", []string{"verify", "shop-1/counter-1/20261123-154502-000003"}, 0, "verified: signed by shop-1/counter-1", ""},
		{"its new key on a clip dated before it", []string{"verify", "shop-1/counter-1/20261123-154502-000004"}, 1, "", "SIGNATURE INVALID: signed with a key of shop-1/counter-1 valid from 2026-12-01T00:00:00+09:00"},
		{"counter-2's key claiming counter-1", []string{"verify", "shop-1/counter-1/20261123-154502-000005"}, 1, "", "SIGNATURE INVALID: the manifest names shop-1/counter-1 but was signed with the key of shop-1/counter-2"},
		{"counter-2's key claiming an unknown device", []string{"get", "shop-2/counter-1/20261123-154502-000006", "-o", t.TempDir()}, 1, "", "UNKNOWN DEVICE"},
		{"unsigned, of a device in the keyring", []string{"get", "shop-1/counter-1/20261123-154502-000007", "-o", t.TempDir()}, 1, "", "UNSIGNED: the incident has no manifest.sig"},
		{"unsigned, of a device not in it", []string{"verify", "shop-3/counter-1/20261123-154502-000008"}, 0, ": UNSIGNED: ", ""},
		{"legacy", []string{"verify", "shop-1/counter-1/20261123-154502-000009"}, 0, ": verified (legacy: not bound to its place): ", ""},
		{"signed, without a keyring", []string{"verify", "shop-1/counter-1/" + idA, "--config", bare}, 1, "", "UNKNOWN DEVICE"},
		{"get, without a keyring", []string{"get", "shop-1/counter-1/" + idA, "--config", bare, "-o", t.TempDir()}, 1, "", "UNKNOWN DEVICE"},
		{"--pubkey, a one-key keyring", []string{"verify", "shop-1/counter-1/" + idA, "--config", bare, "--pubkey", signing.FormatPublicKey(old1.Public().(ed25519.PublicKey))}, 0, "verified: signed by shop-1/counter-1", ""},
		{"--pubkey of another device", []string{"verify", "shop-1/counter-1/" + idA, "--pubkey", signing.FormatPublicKey(key2.Public().(ed25519.PublicKey))}, 1, "", "SIGNATURE INVALID"},
	} {
		switch tc.name { // the incidents a case needs, planted as it comes
		case "a re-provisioned device's old clip, by its old key":
			plant(t, srv, "shop-1", "counter-1", "20261123-154502-000003", old1, false)
		case "its new key on a clip dated before it":
			plant(t, srv, "shop-1", "counter-1", "20261123-154502-000004", new1, false)
		case "counter-2's key claiming counter-1":
			plant(t, srv, "shop-1", "counter-1", "20261123-154502-000005", key2, false)
		case "counter-2's key claiming an unknown device":
			plant(t, srv, "shop-2", "counter-1", "20261123-154502-000006", key2, false)
		case "unsigned, of a device in the keyring":
			plant(t, srv, "shop-1", "counter-1", "20261123-154502-000007", nil, false)
		case "unsigned, of a device not in it":
			plant(t, srv, "shop-3", "counter-1", "20261123-154502-000008", nil, false)
		case "legacy":
			plant(t, srv, "shop-1", "counter-1", "20261123-154502-000009", old1, true)
		}
		args := append([]string{"clips"}, tc.args...)
		if !slices.Contains(args, "--config") {
			args = append(args, "--config", cfg)
		}
		code, out, errOut := runCmd(t, args...)
		if code != tc.code || !strings.Contains(out, tc.stdout) || !strings.Contains(errOut, tc.stderr) {
			t.Errorf("%s: mamoru %q: exit %d, stdout %q, stderr %q; want %d, %q, %q", tc.name, args, code, out, errOut, tc.code, tc.stdout, tc.stderr)
		}
	}

	// Finding 3: incident A's clip, manifest and signature copied over B's
	// (or into another day's folder) no longer pass as B, with the keyring
	// or with --pubkey as before.
	for _, name := range []string{outbox.ClipFile, outbox.ManifestFile, outbox.SignatureFile} {
		for _, to := range []string{b, "shop-1/counter-1/2026/11/24/" + idA} {
			src := minio.CopySrcOptions{Bucket: "clips", Object: "mamoru/" + a + "/" + name}
			if _, err := srv.Root().CopyObject(t.Context(), minio.CopyDestOptions{Bucket: "clips", Object: "mamoru/" + to + "/" + name}, src); err != nil {
				t.Fatal(err)
			}
		}
	}
	pub1 := signing.FormatPublicKey(old1.Public().(ed25519.PublicKey))
	for _, args := range [][]string{
		{"clips", "verify", idB, "--config", cfg},
		{"clips", "verify", idB, "--config", bare, "--pubkey", pub1},
		{"clips", "get", idB, "--config", cfg, "-o", t.TempDir()},
	} {
		if code, out, errOut := runCmd(t, args...); code != 1 || !strings.Contains(errOut, "manifest does not match its place") {
			t.Errorf("A copied over B: mamoru %q: exit %d, %q %q; want 1, refused as misplaced", args, code, out, errOut)
		}
	}
	moved := "shop-1/counter-1/2026/11/24/" + idA
	if code, out, errOut := runCmd(t, "clips", "verify", moved, "--config", cfg); code != 1 || !strings.Contains(errOut, "SIGNATURE INVALID: signed for "+a+", but it is at "+moved) {
		t.Errorf("A copied to another day: exit %d, %q %q; want 1 and SIGNATURE INVALID", code, out, errOut)
	}
	// A key is outside bytes: one holding a line break and an escape
	// cannot forge a line of the list.
	const idC = "20261123-154502-000010"
	plant(t, srv, "shop-1", "counter-1", idC, old1, false)
	evil := "mamoru/shop-1/x\n  forged\x1b[2J/2026/11/23/" + idC + "/manifest.json"
	if _, err := srv.Root().PutObject(t.Context(), "clips", evil, strings.NewReader("{}"), 2, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCmd(t, "clips", "get", idC, "--config", cfg, "-o", t.TempDir()); code != 1 || !strings.Contains(errOut, "names more than one incident") ||
		strings.Contains(errOut, "\n  forged") || strings.Contains(errOut, "\x1b") {
		t.Errorf("an id whose other match's key holds a line break: exit %d, %q; want 1, one line a match, no escape", code, errOut)
	}
	// Now A's store/device/id fits two places: both are listed.
	if code, _, errOut := runCmd(t, "clips", "verify", "shop-1/counter-1/"+idA, "--config", cfg); code != 1 || !strings.Contains(errOut, a) || !strings.Contains(errOut, moved) {
		t.Errorf("A and its copy: exit %d, %q; want both places listed", code, errOut)
	}
}
