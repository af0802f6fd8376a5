package main

import (
	"archive/zip"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"mamoru/bucket"
	"mamoru/bucket/s3test"
	"mamoru/capture/cliptest"
	"mamoru/handover"
	"mamoru/outbox"
	"mamoru/signing"
)

// recordedIncident seals an incident with a clip really recorded (ffmpeg's
// test pattern and a FLAC tone, laid out as the recorder lays one out)
// whose manifest names its place and holds the log's head now.
func (r *auditRig) recordedIncident() string {
	r.t.Helper()
	r.n++
	id := fmt.Sprintf("20261123-0900%02d-%06d", r.n, r.n)
	dir := filepath.Join(r.state, "incidents", id)
	os.MkdirAll(dir, 0o750)
	clipPath, _ := cliptest.Record(r.t, dir, 2, 1)
	clip, err := os.ReadFile(clipPath)
	if err != nil {
		r.t.Fatal(err)
	}
	sum := sha256.Sum256(clip)
	h, _ := r.log.Head()
	press := time.Date(2026, 11, 23, 9, 0, r.n, 0, time.UTC)
	m := outbox.Manifest{Version: outbox.ManifestVersion, Store: "shop-1", Device: r.device, Incident: id, State: outbox.StateComplete, PressTime: press,
		ClipStart: press, ClipEnd: press.Add(time.Second), DurationSeconds: 1, Clip: outbox.ClipDigest{File: outbox.ClipFile, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(clip))},
		AuditHead: &h, ClockSynced: true}
	m.Object = outbox.ObjectKey(m, time.UTC)
	if err := outbox.WriteManifest(dir, m); err != nil {
		r.t.Fatal(err)
	}
	return id
}

// readZip returns a zip's files by name.
func readZip(t *testing.T, p string) map[string][]byte {
	t.Helper()
	z, err := zip.OpenReader(p)
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	files := map[string][]byte{}
	for _, f := range z.File {
		r, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		files[f.Name], _ = io.ReadAll(r)
		r.Close()
	}
	return files
}

// writeFiles writes files into a new folder, or as a new zip if zipPath
// is set, and returns where.
func writeFiles(t *testing.T, files map[string][]byte, zipPath string) string {
	t.Helper()
	if zipPath != "" {
		f, _ := os.Create(zipPath)
		z := zip.NewWriter(f)
		for name, b := range files {
			w, _ := z.Create(name)
			w.Write(b)
		}
		z.Close()
		f.Close()
		return zipPath
	}
	dir := t.TempDir()
	for name, b := range files {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755)
		os.WriteFile(filepath.Join(dir, name), b, 0o644)
	}
	return dir
}

// verifyCommands are the commands VERIFY.txt gives, in order.
func verifyCommands(t *testing.T, text string) []string {
	t.Helper()
	var cmds []string
	for line := range strings.Lines(text) {
		if c, ok := strings.CutPrefix(line, handover.CommandPrefix); ok {
			cmds = append(cmds, strings.TrimSpace(c))
		}
	}
	return cmds
}

// runShell runs a command line as a reader would type it, in dir.
func runShell(dir, line string) (string, error) {
	c := exec.Command("bash", "-o", "pipefail", "-c", line)
	c.Dir = dir
	out, err := c.CombinedOutput()
	return string(out), err
}

// Issue 16's package, from an incident really recorded and uploaded by the
// device's uploader into a real MinIO: the commands VERIFY.txt gives pass
// with standard tools, clips verify passes the zip and its folder, one
// byte changed anywhere is caught by both, the hand-overs are in the
// chain of custody and in the next package's report, and a second package
// holds the same originals.
func TestClipsPackage(t *testing.T) {
	for _, tool := range []string{"openssl", "sha256sum", "base64", "ffmpeg"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	srv, bare := managerConfig(t)
	rig := newAuditRig(t, srv, "counter-1")
	rig.record(4)
	id := rig.recordedIncident()
	rig.record(4)
	rig.upload()
	src, _ := os.ReadFile(bare)
	cfg := filepath.Join(t.TempDir(), "manager.toml")
	os.WriteFile(cfg, []byte(string(src)+"\n"+keyringEntry("shop-1", "counter-1", rig.pub, time.Now())), 0o644)
	pub, err := signing.ParsePublicKeyText(rig.pub)
	if err != nil {
		t.Fatal(err)
	}

	out := t.TempDir()
	code, stdout, stderr := runCmd(t, "clips", "package", id, "-o", out, "--by", "佐藤 (店長)", "--config", cfg)
	if code != 0 || !strings.Contains(stdout, "verified: signed by shop-1/counter-1") {
		t.Fatalf("clips package: exit %d, %q %q; want 0 and verified", code, stdout, stderr)
	}
	zipPath := filepath.Join(out, id+".zip")
	files := readZip(t, zipPath)

	// The report's figures are the manifest's.
	var m outbox.Manifest
	if err := json.Unmarshal(files[outbox.ManifestFile], &m); err != nil {
		t.Fatal(err)
	}
	report := html.UnescapeString(string(files[handover.ReportFile]))
	want := []string{m.Incident, m.Store, m.Device, m.Clip.SHA256, m.PressTime.Format("04:05.000"), m.ClipStart.Format("04:05.000")}
	for _, p := range m.Presses {
		want = append(want, p.Source, p.Time.Format("04:05.000"))
	}
	for _, tr := range m.Tracks {
		want = append(want, tr.Codec)
	}
	for _, w := range want {
		if !strings.Contains(report, w) {
			t.Errorf("the report lacks the manifest's %q", w)
		}
	}

	// The originals, byte for byte as in the bucket, and the audit excerpt.
	var place string
	for o := range srv.Root().ListObjects(t.Context(), "clips", minio.ListObjectsOptions{Prefix: "mamoru/shop-1/counter-1/", Recursive: true}) {
		b := getObject(t, srv.Root(), o.Key)
		switch name := filepath.Base(o.Key); {
		case strings.Contains(o.Key, "/audit/"):
			rel := strings.TrimPrefix(o.Key, "mamoru/shop-1/counter-1/")
			if got, ok := files[rel]; ok && !bytes.Equal(got, b) {
				t.Errorf("%s in the package differs from the bucket's", rel)
			}
		case name == outbox.ClipFile || name == outbox.ManifestFile || name == outbox.SignatureFile:
			place = filepath.Dir(o.Key)
			if !bytes.Equal(files[name], b) {
				t.Errorf("%s in the package differs from the bucket's %s", name, o.Key)
			}
		}
	}
	var audits int
	for name := range files {
		if strings.HasPrefix(name, "audit/") {
			audits++
		}
	}
	if place == "" || audits < 2 {
		t.Errorf("the package holds %d audit files; want a segment and its .sig (files %v)", audits, keys(files))
	}

	// VERIFY.txt's commands, exactly as given, in the unpacked folder.
	dir := writeFiles(t, files, "")
	cmds := verifyCommands(t, string(files[handover.VerifyFile]))
	clipSum := sha256.Sum256(files[outbox.ClipFile])
	var sawSums, sawSig, sawFingerprint bool
	for _, c := range cmds {
		got, err := runShell(dir, c)
		if err != nil {
			t.Errorf("VERIFY.txt's %q failed: %v\n%s", c, err, got)
			continue
		}
		switch {
		case strings.HasPrefix(c, "sha256sum -c"):
			sawSums = strings.Count(got, ": OK\n") == len(files)-1 && !strings.Contains(got, "FAILED")
		case strings.HasPrefix(c, "openssl pkeyutl"):
			sawSig = strings.Contains(got, "Signature Verified Successfully")
		case strings.HasPrefix(c, "openssl pkey "):
			sawFingerprint = strings.TrimSpace(got) == signing.Fingerprint(pub)+"  -"
		case strings.HasPrefix(c, "grep") || strings.HasPrefix(c, "sha256sum clip.mp4"):
			if !strings.Contains(got, hex.EncodeToString(clipSum[:])) {
				t.Errorf("%q printed %q, want the clip's SHA-256", c, got)
			}
		}
	}
	if !sawSums || !sawSig || !sawFingerprint {
		t.Errorf("VERIFY.txt's commands %q: sha256sum -c all OK %v, signature verified %v, fingerprint the keyring's %v", cmds, sawSums, sawSig, sawFingerprint)
	}
	if !strings.Contains(string(files[handover.VerifyFile]), signing.Fingerprint(pub)) {
		t.Errorf("VERIFY.txt does not print the key's fingerprint")
	}

	// clips verify passes the zip and the folder (with the signature
	// VERIFY.txt had decoded beside it).
	for _, p := range []string{zipPath, dir} {
		code, stdout, stderr := runCmd(t, "clips", "verify", p, "--config", cfg)
		if code != 0 || !strings.Contains(stdout, "verified: signed by shop-1/counter-1") || !strings.Contains(stdout, "match SHA256SUMS") {
			t.Errorf("clips verify %s: exit %d, %q %q; want verified", p, code, stdout, stderr)
		}
	}

	// One byte changed: clips verify, on the folder and on a zip of it,
	// and the standard tools say so.
	for _, tc := range []struct {
		file, verify, tool string
	}{
		{outbox.ClipFile, "clip.mp4 has SHA-256", "sha256sum -c"},
		{outbox.ManifestFile, "SIGNATURE INVALID", "openssl pkeyutl"},
		{handover.SumsFile, "files do not match SHA256SUMS", "sha256sum -c"},
	} {
		changed := map[string][]byte{}
		for k, v := range files {
			changed[k] = bytes.Clone(v)
		}
		switch tc.file {
		case outbox.ClipFile:
			changed[tc.file][200] ^= 1
		default:
			// One hex digit for another, so that the text still parses:
			// the clip's hash in the manifest, the first hash in SHA256SUMS.
			b := changed[tc.file]
			at := bytes.Index(b, []byte(hex.EncodeToString(clipSum[:]))) + 5
			if tc.file == handover.SumsFile {
				at = 5
			}
			b[at] = map[bool]byte{true: '1', false: '0'}[b[at] == '0']
		}
		d := writeFiles(t, changed, "")
		z := writeFiles(t, changed, filepath.Join(t.TempDir(), id+".zip"))
		for _, p := range []string{d, z} {
			code, stdout, stderr := runCmd(t, "clips", "verify", p, "--config", cfg)
			if code != 1 || !strings.Contains(stderr, tc.verify) || strings.Contains(stdout, "verified") {
				t.Errorf("%s changed: clips verify %s: exit %d, %q %q; want 1 and %q", tc.file, p, code, stdout, stderr, tc.verify)
			}
		}
		failed := false
		for _, c := range verifyCommands(t, string(changed[handover.VerifyFile])) {
			if strings.HasPrefix(c, tc.tool) {
				got, err := runShell(d, c)
				failed = err != nil && !strings.Contains(got, "Signature Verified Successfully")
			} else if strings.HasPrefix(c, "base64") {
				runShell(d, c)
			}
		}
		if !failed {
			t.Errorf("%s changed: %s passed", tc.file, tc.tool)
		}
	}

	// Another key in place of the device's, SHA256SUMS rewritten to
	// match (anyone can): the sums pass, the key is not the keyring's.
	swapped := map[string][]byte{}
	for k, v := range files {
		swapped[k] = v
	}
	otherKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{5}, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	swapped[handover.KeyFile] = signing.PublicKeyPEM(otherKey)
	var sums strings.Builder
	for line := range strings.Lines(string(files[handover.SumsFile])) {
		name := strings.TrimSpace(line[66:])
		sum := sha256.Sum256(swapped[name])
		fmt.Fprintf(&sums, "%x  %s\n", sum, name)
	}
	swapped[handover.SumsFile] = []byte(sums.String())
	if code, stdout, stderr := runCmd(t, "clips", "verify", writeFiles(t, swapped, ""), "--config", cfg); code != 1 || !strings.Contains(stderr, "device-public-key.pem has fingerprint "+signing.Fingerprint(otherKey)+", not the keyring's key") {
		t.Errorf("another key in the package: clips verify exit %d, %q %q; want it named as not the keyring's", code, stdout, stderr)
	}

	// The chain of custody: the hand-over is in the bucket, then a
	// download; the next package's report lists all three.
	custodyKeys := func() []string {
		var ks []string
		for o := range srv.Root().ListObjects(t.Context(), "clips", minio.ListObjectsOptions{Prefix: "mamoru/.custody/shop-1/counter-1/" + id + "/", Recursive: true}) {
			ks = append(ks, o.Key)
		}
		return ks
	}
	if ks := custodyKeys(); len(ks) != 1 || !strings.Contains(ks[0], "-handover-") {
		t.Errorf("custody records after one package: %q; want one hand-over", ks)
	}
	if r := html.UnescapeString(string(files[handover.ReportFile])); !strings.Contains(r, "佐藤 (店長)") || !strings.Contains(r, "<td>handover</td>") {
		t.Errorf("the package's own report does not list its hand-over:\n%s", files[handover.ReportFile])
	}
	if code, _, stderr := runCmd(t, "clips", "get", id, "-o", t.TempDir(), "--config", cfg); code != 0 {
		t.Fatalf("clips get: exit %d, %q", code, stderr)
	}
	out2 := t.TempDir()
	if code, stdout, stderr := runCmd(t, "clips", "package", "shop-1/counter-1/"+id, "-o", out2, "--config", cfg); code != 0 {
		t.Fatalf("a second clips package: exit %d, %q %q", code, stdout, stderr)
	}
	if ks := custodyKeys(); len(ks) != 3 {
		t.Errorf("custody records after a package, a download and a package: %q", ks)
	}
	files2 := readZip(t, filepath.Join(out2, id+".zip"))
	report2 := html.UnescapeString(string(files2[handover.ReportFile]))
	if strings.Count(report2, "<td>handover</td>") != 2 || strings.Count(report2, "<td>download</td>") != 1 {
		t.Errorf("the second package's report does not list two hand-overs and a download:\n%s", report2)
	}
	for _, name := range []string{outbox.ClipFile, outbox.ManifestFile, outbox.SignatureFile, handover.KeyFile, handover.ViewingCopyFile} {
		if !bytes.Equal(files[name], files2[name]) {
			t.Errorf("%s differs between two packages of one incident", name)
		}
	}

	// Refusals: an existing package, an unknown id, a device the keyring
	// does not know (unless --allow-unverified, loudly).
	before, _ := os.ReadFile(zipPath)
	if code, _, stderr := runCmd(t, "clips", "package", id, "-o", out, "--config", cfg); code != 1 || !strings.Contains(stderr, "already exists") {
		t.Errorf("a package over an existing one: exit %d, %q; want a refusal", code, stderr)
	}
	if after, _ := os.ReadFile(zipPath); !bytes.Equal(before, after) {
		t.Errorf("the existing package was changed")
	}
	if code, _, stderr := runCmd(t, "clips", "package", "20261123-235959-999999", "-o", t.TempDir(), "--config", cfg); code != 1 || !strings.Contains(stderr, "no such incident") {
		t.Errorf("an unknown id: exit %d, %q; want a refusal", code, stderr)
	}
	other := newAuditRig(t, srv, "counter-2")
	other.record(2)
	id2 := other.recordedIncident()
	other.upload()
	refused := t.TempDir()
	code, _, stderr = runCmd(t, "clips", "package", "shop-1/counter-2/"+id2, "-o", refused, "--config", cfg)
	if code != 1 || !strings.Contains(stderr, "UNKNOWN DEVICE") || !strings.Contains(stderr, "mamoru/shop-1/counter-2/2026/11/23/"+id2+"/manifest.json") {
		t.Errorf("an incident the keyring cannot verify: exit %d, %q; want a refusal naming its manifest", code, stderr)
	}
	if entries, _ := os.ReadDir(refused); len(entries) != 0 {
		t.Errorf("a refused package left %v", entries)
	}
	code, _, stderr = runCmd(t, "clips", "package", "shop-1/counter-2/"+id2, "-o", refused, "--allow-unverified", "--config", cfg)
	if code != 0 {
		t.Fatalf("--allow-unverified: exit %d, %q", code, stderr)
	}
	unverified := readZip(t, filepath.Join(refused, id2+".zip"))
	if r := html.UnescapeString(string(unverified[handover.ReportFile])); !strings.Contains(r, "THE SIGNATURE DOES NOT VERIFY") {
		t.Errorf("the unverified package's report does not say so:\n%s", r)
	}
	// Its first words say so: the banner before anything else.
	if body := string(unverified[handover.ReportFile]); !strings.HasPrefix(strings.TrimSpace(body[strings.Index(body, "<body>")+len("<body>"):]), `<p class="banner">UNSIGNED 署名なし`) {
		t.Errorf("the unverified package's report does not open with UNSIGNED:\n%s", body)
	}
	if _, ok := unverified[handover.KeyFile]; ok {
		t.Errorf("the unverified package holds a key no keyring vouched for")
	}
	if code, _, stderr := runCmd(t, "clips", "verify", filepath.Join(refused, id2+".zip"), "--config", cfg); code != 1 || !strings.Contains(stderr, "UNKNOWN DEVICE") {
		t.Errorf("clips verify of the unverified package: exit %d, %q; want UNKNOWN DEVICE", code, stderr)
	}
}

func getObject(t *testing.T, c *minio.Client, key string) []byte {
	t.Helper()
	o, err := c.GetObject(t.Context(), "clips", key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func keys(m map[string][]byte) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// A package made before the device has sent the audit segment holding
// its head says so, and holds no audit file.
func TestClipsPackageWithoutAuditSegment(t *testing.T) {
	srv, bare := managerConfig(t)
	rig := newAuditRig(t, srv, "counter-1")
	rig.record(2)
	id := rig.recordedIncident()
	rig.upload()
	for o := range srv.Root().ListObjects(t.Context(), "clips", minio.ListObjectsOptions{Prefix: "mamoru/shop-1/counter-1/audit/", Recursive: true}) {
		if err := srv.Root().RemoveObject(t.Context(), "clips", o.Key, minio.RemoveObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	src, _ := os.ReadFile(bare)
	cfg := filepath.Join(t.TempDir(), "manager.toml")
	os.WriteFile(cfg, []byte(string(src)+"\n"+keyringEntry("shop-1", "counter-1", rig.pub, time.Now())), 0o644)
	out := t.TempDir()
	code, stdout, stderr := runCmd(t, "clips", "package", id, "-o", out, "--config", cfg)
	if code != 0 || !strings.Contains(stderr, "No audit segment covering the incident's audit head") || !strings.Contains(stdout, ": verified: signed by shop-1/counter-1") {
		t.Fatalf("clips package: exit %d, %q %q; want 0 and a note of the missing segment", code, stdout, stderr)
	}
	files := readZip(t, filepath.Join(out, id+".zip"))
	for name := range files {
		if strings.HasPrefix(name, "audit/") {
			t.Errorf("the package holds %s, which the bucket does not", name)
		}
	}
	if r := html.UnescapeString(string(files[handover.ReportFile])); !strings.Contains(r, "No audit segment covering") {
		t.Errorf("the report does not say the audit segment is missing:\n%s", r)
	}
}

// A manager's keys that may read the bucket but not write the chain of
// custody: share gives no link, package makes nothing, get keeps its
// download but fails, each naming the right to grant; with
// s3:PutObject on <prefix>/.custody/* (README's words) all three work.
func TestCustodyNeedsItsRight(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	srv.Bucket("clips")
	rig := newAuditRig(t, srv, "counter-1")
	rig.record(2)
	id := rig.recordedIncident()
	rig.upload()
	read := `{"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetObject", "s3:GetObjectVersion", "s3:ListBucketVersions"], "Resource": ["arn:aws:s3:::clips", "arn:aws:s3:::clips/*"]}`
	custodyRight := `{"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": ["arn:aws:s3:::clips/mamoru/.custody/*"]}`
	manager := func(name, statements string) string {
		srv.AddUser(name, "secret-"+name, `{"Version": "2012-10-17", "Statement": [`+statements+`]}`)
		storage := fmt.Sprintf("\n[storage]\nendpoint = %q\nbucket = \"clips\"\nsecure = false\nprefix = \"mamoru\"\n", srv.Endpoint)
		return writeConfig(t, t.TempDir(), "manager.toml", storage+keyFiles(t, name, "secret-"+name)+"\n"+keyringEntry("shop-1", "counter-1", rig.pub, time.Now()))
	}
	readOnly, full := manager("reader", read), manager("keeper", read+", "+custodyRight)

	if code, stdout, stderr := runCmd(t, "clips", "share", id, "--config", readOnly); code != 1 || strings.Contains(stdout, "http") || !strings.Contains(stderr, "s3:PutObject on mamoru/.custody/*") {
		t.Errorf("share without the right: exit %d, %q %q; want no link and the right named", code, stdout, stderr)
	}
	out := t.TempDir()
	if code, _, stderr := runCmd(t, "clips", "package", id, "-o", out, "--config", readOnly); code != 1 || !strings.Contains(stderr, "s3:PutObject on mamoru/.custody/*") {
		t.Errorf("package without the right: exit %d, %q; want a refusal naming the right", code, stderr)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("a refused package left %v", entries)
	}
	dl := t.TempDir()
	if code, _, stderr := runCmd(t, "clips", "get", id, "-o", dl, "--config", readOnly); code != 1 || !strings.Contains(stderr, "downloaded, but the chain of custody does not record it") {
		t.Errorf("get without the right: exit %d, %q", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dl, id, outbox.ClipFile)); err != nil {
		t.Errorf("get without the right dropped its download: %v", err)
	}

	if code, stdout, stderr := runCmd(t, "clips", "share", id, "--config", full); code != 0 || !strings.Contains(stdout, "http") {
		t.Errorf("share with the right: exit %d, %q %q", code, stdout, stderr)
	}
	if code, _, stderr := runCmd(t, "clips", "get", id, "-o", t.TempDir(), "--config", full); code != 0 {
		t.Errorf("get with the right: exit %d, %q", code, stderr)
	}
	if code, _, stderr := runCmd(t, "clips", "package", id, "-o", out, "--config", full); code != 0 {
		t.Errorf("package with the right: exit %d, %q", code, stderr)
	}
	var actions []string
	for o := range srv.Root().ListObjects(t.Context(), "clips", minio.ListObjectsOptions{Prefix: "mamoru/.custody/", Recursive: true}) {
		actions = append(actions, strings.Split(filepath.Base(o.Key), "-")[3])
	}
	if got := strings.Join(actions, " "); !strings.Contains(got, "share") || !strings.Contains(got, "download") || !strings.Contains(got, "handover") || len(actions) != 3 {
		t.Errorf("custody records %q; want one share, one download, one hand-over", got)
	}
	// Even with the right, a record is never written over.
	dev, err := minio.New(srv.Endpoint, &minio.Options{Creds: credentials.NewStaticV4("keeper", "secret-keeper", "")})
	if err != nil {
		t.Fatal(err)
	}
	var first string
	for o := range srv.Root().ListObjects(t.Context(), "clips", minio.ListObjectsOptions{Prefix: "mamoru/.custody/", Recursive: true}) {
		first = o.Key
		break
	}
	if _, err := dev.PutObject(t.Context(), "clips", first, strings.NewReader("{}"), 2, bucket.IfAbsent()); err == nil {
		t.Errorf("a custody record was written over with If-None-Match")
	}
}

// A clip in the bucket that is not the one its signed manifest describes
// is never packaged as if it were: refused, naming it; with
// --allow-unverified, packaged with the report saying so first, and
// clips verify of that package fails.
func TestClipsPackageRefusesAChangedClip(t *testing.T) {
	srv, bare := managerConfig(t)
	rig := newAuditRig(t, srv, "counter-1")
	rig.record(2)
	id := rig.recordedIncident()
	rig.upload()
	src, _ := os.ReadFile(bare)
	cfg := filepath.Join(t.TempDir(), "manager.toml")
	os.WriteFile(cfg, []byte(string(src)+"\n"+keyringEntry("shop-1", "counter-1", rig.pub, time.Now())), 0o644)
	// Another real clip (two seconds) in its place.
	other, _ := cliptest.Record(t, t.TempDir(), 2, 2)
	var clipKey string
	for o := range srv.Root().ListObjects(t.Context(), "clips", minio.ListObjectsOptions{Prefix: "mamoru/shop-1/counter-1/2026/", Recursive: true}) {
		if strings.HasSuffix(o.Key, "/"+outbox.ClipFile) {
			clipKey = o.Key
		}
	}
	if _, err := srv.Root().FPutObject(t.Context(), "clips", clipKey, other, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	code, _, stderr := runCmd(t, "clips", "package", id, "-o", out, "--config", cfg)
	if code != 1 || !strings.Contains(stderr, "NOT VERIFIED: "+clipKey+" has SHA-256") || !strings.Contains(stderr, "not packaged") {
		t.Errorf("a changed clip: exit %d, %q; want a refusal naming %s", code, stderr, clipKey)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("a refused package left %v", entries)
	}
	code, stdout, stderr := runCmd(t, "clips", "package", id, "-o", out, "--allow-unverified", "--config", cfg)
	if code != 0 || !strings.Contains(stdout, "NOT VERIFIED") {
		t.Fatalf("--allow-unverified: exit %d, %q %q; want 0 and NOT VERIFIED", code, stdout, stderr)
	}
	zipPath := filepath.Join(out, id+".zip")
	r := html.UnescapeString(string(readZip(t, zipPath)[handover.ReportFile]))
	if i := strings.Index(r, "THE CLIP DOES NOT MATCH ITS MANIFEST"); i < 0 || i > strings.Index(r, "<h1>") {
		t.Errorf("the report does not say first that the clip does not match:\n%s", r)
	}
	if code, _, stderr := runCmd(t, "clips", "verify", zipPath, "--config", cfg); code != 1 || !strings.Contains(stderr, "NOT VERIFIED: clip.mp4 has SHA-256") {
		t.Errorf("clips verify of that package: exit %d, %q; want NOT VERIFIED", code, stderr)
	}
}
