package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"mamoru/bucket/s3test"
	"mamoru/device"
	"mamoru/handover"
)

// keyFiles writes an access and a secret key into files of mode 0600 and
// returns the [storage] lines naming them.
func keyFiles(t *testing.T, access, secret string) string {
	t.Helper()
	dir := t.TempDir()
	a, s := filepath.Join(dir, "access"), filepath.Join(dir, "secret")
	for path, v := range map[string]string{a: access, s: secret} {
		if err := os.WriteFile(path, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return fmt.Sprintf("access_key_file = %q\nsecret_key_file = %q\n", a, s)
}

// TestUploadEndToEnd is the whole path: an installer prepares the bucket
// and a write-only user for the device, a press on the device leads to the
// clip in the bucket, and a manager lists, downloads, verifies and shares
// it. The device's user can do nothing else.
func TestUploadEndToEnd(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	storage := fmt.Sprintf("\n[storage]\nendpoint = %q\nbucket = \"clips\"\nsecure = false\nprefix = \"mamoru\"\npart_size_mb = 5\n", srv.Endpoint)
	stateDir := t.TempDir()
	device0 := fmt.Sprintf(validConfig, stateDir) + storage

	// The installer, with the root user's keys.
	admin := writeConfig(t, t.TempDir(), "admin.toml", device0+keyFiles(t, s3test.RootUser, s3test.RootPassword)+"\n[policy]\nretention_days = 30\n")
	code, out, errOut := runCmd(t, "storage", "init", "--config", admin)
	if code != 0 {
		t.Fatalf("mamoru storage init exited %d: %s%s", code, out, errOut)
	}
	for _, want := range []string{"created bucket clips", "expire 30 days", `"s3:PutObject"`, "arn:aws:s3:::clips/mamoru/test-store/test-counter/*"} {
		if !strings.Contains(out, want) {
			t.Errorf("storage init printed %q, want it to contain %q", out, want)
		}
	}
	// The device's policy, then the console's, each exactly as printed.
	policies := json.NewDecoder(strings.NewReader(out[strings.Index(out, "{"):]))
	var policyJSON, consoleJSON json.RawMessage
	if err := policies.Decode(&policyJSON); err != nil {
		t.Fatalf("storage init printed no device policy: %v\n%s", err, out)
	}
	rest := out[strings.Index(out, string(policyJSON))+len(policyJSON):]
	const consoleLine = "IAM policy for the managers' console (list, read, legal hold and delete incidents; write only the chain of custody under mamoru/.custody/):"
	if !strings.Contains(rest, consoleLine) || json.NewDecoder(strings.NewReader(rest[strings.Index(rest, "{"):])).Decode(&consoleJSON) != nil ||
		!strings.Contains(string(consoleJSON), "arn:aws:s3:::clips/mamoru/.custody/*") {
		t.Errorf("storage init does not print the console's policy after the device's, under %q:\n%s", consoleLine, rest)
	}
	srv.AddUser("console", "console-secret", string(consoleJSON))
	const devSecret = "device-secret-never-shown"
	srv.AddUser("test-counter", devSecret, string(policyJSON))
	lc, err := srv.Root().GetBucketLifecycle(t.Context(), "clips")
	if err != nil || len(lc.Rules) != 1 || lc.Rules[0].Expiration.Days != 30 {
		t.Errorf("bucket lifecycle = %+v, %v; want one rule expiring after 30 days", lc, err)
	}

	// The device, with its own write-only user.
	// Its uploads are not locked here: the lock waits for NTP to set the
	// clock, which this machine's may not be (the uploader tests prove the
	// lock, on an injected clock); the bucket still keeps every version.
	cfg := writeConfig(t, t.TempDir(), "device.toml", device0+keyFiles(t, "test-counter", devSecret)+"\n[policy]\nobject_lock = \"none\"\n")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"run", "--config", cfg}, strings.NewReader(""), &stdout, &stderr) }()
	defer func() { cancel(); <-done }()
	status := func(what string, cond func(device.Status) bool) device.Status {
		t.Helper()
		return awaitStatus(t, cfg, what, cond, &stderr)
	}
	status("a pre-roll", func(s device.Status) bool { return s.BufferedSeconds >= 2 })
	code, out, errOut = runCmd(t, "trigger", "--config", cfg)
	if code != 0 {
		t.Fatalf("mamoru trigger exited %d: %s", code, errOut)
	}
	id := strings.Fields(out)[1]
	st := status("the upload", func(s device.Status) bool { return s.Uploads != nil && s.Uploads.Shipped == 1 && s.PendingUploads == 0 })
	if st.Uploads.LastSuccess != id || st.Uploads.LastError != "" || !strings.Contains(st.Storage, "clips") {
		t.Errorf("status after the upload: storage %q, uploads %+v; want %s shipped and no error", st.Storage, st.Uploads, id)
	}
	// The simulated counter tells the person at it where the clip went.
	if want := "incident " + id + " uploaded to s3://clips/mamoru/test-store/test-counter/"; !strings.Contains(stdout.String(), want) {
		t.Errorf("the counter does not say %q:\n%s", want, stdout.String())
	}
	// The device's write-only keys cannot sign a link that reads: the
	// counter says how a manager shares it.
	if want := "share with a manager's keys: mamoru clips share test-store/test-counter/" + id; !strings.Contains(stdout.String(), want) {
		t.Errorf("the counter does not say %q:\n%s", want, stdout.String())
	}
	if _, err := os.Stat(filepath.Join(stateDir, "incidents", id)); !os.IsNotExist(err) {
		t.Errorf("the local copy of %s is still there after its upload (%v)", id, err)
	}

	// The manager, with their own configuration: only [storage].
	manager := writeConfig(t, t.TempDir(), "manager.toml", storage+keyFiles(t, s3test.RootUser, s3test.RootPassword))
	code, out, errOut = runCmd(t, "clips", "ls", "--config", manager, "--since", "1h", "--json")
	if code != 0 {
		t.Fatalf("clips ls exited %d: %s", code, errOut)
	}
	var rows []struct {
		ID, Store, Device, Object string
		Size                      int64
		SHA256                    string
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 1 || rows[0].ID != id || rows[0].Device != "test-counter" {
		t.Fatalf("clips ls --json = %s (%v), want incident %s", out, err, id)
	}
	if want := fmt.Sprintf("mamoru/test-store/test-counter/%s/%s/%s/%s/clip.mp4", id[:4], id[4:6], id[6:8], id); rows[0].Object != want {
		t.Errorf("clip object is %s, want %s", rows[0].Object, want)
	}
	code, out, _ = runCmd(t, "clips", "ls", "--config", manager, "--device", "other")
	if code != 0 || strings.Contains(out, id) {
		t.Errorf("clips ls --device other listed %s: %q", id, out)
	}

	dl := t.TempDir()
	code, out, errOut = runCmd(t, "clips", "get", id, "--config", manager, "-o", dl)
	// stderr is no terminal: no bar redrawn, a line at the start and the end.
	// This device has no signing key: the clip is intact, and UNSIGNED.
	if code != 0 || !strings.Contains(out, "UNSIGNED (SHA-256") || !strings.Contains(errOut, id+"/clip.mp4: 100%") || strings.Contains(errOut, "\r") {
		t.Fatalf("clips get exited %d: stdout %q stderr %q; want UNSIGNED and the download's last line saying 100%%, with no bar", code, out, errOut)
	}
	got := filepath.Join(dl, id)
	for _, args := range [][]string{{"clips", "verify", got}, {"clips", "verify", filepath.Join(got, "clip.mp4")}, {"clips", "verify", id, "--config", manager}} {
		if code, out, errOut := runCmd(t, args...); code != 0 || !strings.Contains(out, ": UNSIGNED: ") || strings.Contains(out, "verified") {
			t.Errorf("mamoru %q exited %d: %q %q; want UNSIGNED, intact", args, code, out, errOut)
		}
	}
	// Its hand-over package is made only when asked to be, unverified, and
	// its report says UNSIGNED before anything else (issue 16).
	pkg := t.TempDir()
	if code, _, errOut := runCmd(t, "clips", "package", id, "-o", pkg, "--config", manager); code != 1 || !strings.Contains(errOut, "UNSIGNED") {
		t.Errorf("clips package of an unsigned incident: exit %d, %q; want a refusal saying UNSIGNED", code, errOut)
	}
	if code, _, errOut := runCmd(t, "clips", "package", id, "-o", pkg, "--allow-unverified", "--config", manager); code != 0 {
		t.Errorf("clips package --allow-unverified: exit %d, %q", code, errOut)
	} else if body := string(readZip(t, filepath.Join(pkg, id+".zip"))[handover.ReportFile]); !strings.HasPrefix(strings.TrimSpace(body[strings.Index(body, "<body>")+len("<body>"):]), `<p class="banner">UNSIGNED 署名なし`) {
		t.Errorf("the unsigned incident's report does not open with UNSIGNED:\n%s", body)
	}
	// One flipped byte, and verify refuses loudly.
	clip := filepath.Join(got, "clip.mp4")
	b, _ := os.ReadFile(clip)
	b[len(b)/2] ^= 1
	os.WriteFile(clip, b, 0o644)
	if code, out, errOut := runCmd(t, "clips", "verify", got); code != 1 || !strings.Contains(errOut, "NOT VERIFIED") {
		t.Errorf("clips verify of a tampered clip exited %d: %q %q; want 1 and NOT VERIFIED", code, out, errOut)
	}

	code, out, errOut = runCmd(t, "clips", "share", id, "--config", manager, "--expires", "1h")
	if code != 0 {
		t.Fatalf("clips share exited %d: %s", code, errOut)
	}
	resp, err := http.Get(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	sum := sha256.Sum256(body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "video/mp4" || hex.EncodeToString(sum[:]) != rows[0].SHA256 {
		t.Errorf("shared link: %s, Content-Type %q, SHA-256 %x; want 200, video/mp4 and the clip", resp.Status, resp.Header.Get("Content-Type"), sum)
	}

	// A clip changed in the bucket: clips get refuses it and leaves nothing
	// that looks like a download.
	root, _ := minio.New(srv.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s3test.RootUser, s3test.RootPassword, "")})
	changed := bytes.Repeat([]byte{0x5a}, int(rows[0].Size))
	if _, err := root.PutObject(t.Context(), "clips", rows[0].Object, bytes.NewReader(changed), int64(len(changed)), minio.PutObjectOptions{ContentType: "video/mp4"}); err != nil {
		t.Fatal(err)
	}
	dl2 := t.TempDir()
	if code, out, errOut := runCmd(t, "clips", "get", id, "--config", manager, "-o", dl2); code != 1 || !strings.Contains(errOut, "NOT VERIFIED") {
		t.Errorf("clips get of a clip changed in the bucket exited %d: %q %q; want 1 and NOT VERIFIED", code, out, errOut)
	}
	if left, _ := filepath.Glob(filepath.Join(dl2, id, "*")); len(left) != 0 {
		t.Errorf("a refused download left %v", left)
	}
	// The bucket (versioned by storage init) kept the original: verify
	// reports the overwrite as tampering, with when each version was written.
	if code, out, errOut := runCmd(t, "clips", "verify", id, "--config", manager); code != 1 ||
		!strings.Contains(errOut, "TAMPERED: "+rows[0].Object+" was written 2 times") || !strings.Contains(errOut, "(the first written)") {
		t.Errorf("clips verify of a clip written over exited %d: %q %q; want 1 and TAMPERED naming %s", code, out, errOut, rows[0].Object)
	}

	// The device's user may write its own folder, and nothing more.
	dev, _ := minio.New(srv.Endpoint, &minio.Options{Creds: credentials.NewStaticV4("test-counter", devSecret, "")})
	object := rows[0].Object
	denied := func(what string, err error) {
		t.Helper()
		if minio.ToErrorResponse(err).Code != "AccessDenied" {
			t.Errorf("device user %s: %v, want AccessDenied", what, err)
		}
	}
	o, err := dev.GetObject(t.Context(), "clips", object, minio.GetObjectOptions{})
	if err == nil {
		_, err = o.Read(make([]byte, 1))
	}
	denied("reads a clip", err)
	_, err = dev.StatObject(t.Context(), "clips", object, minio.StatObjectOptions{})
	denied("stats a clip", err)
	for o := range dev.ListObjects(t.Context(), "clips", minio.ListObjectsOptions{Prefix: "mamoru/", Recursive: true}) {
		denied("lists clips", o.Err)
		break
	}
	denied("deletes a clip", dev.RemoveObject(t.Context(), "clips", object, minio.RemoveObjectOptions{}))
	_, err = dev.PutObject(t.Context(), "clips", "mamoru/test-store/other-counter/x", strings.NewReader("x"), 1, minio.PutObjectOptions{})
	denied("writes another device's folder", err)

	// The device could not stat its clip, so the check was MinIO's answer
	// to the upload, giving back the SHA-256 that was sent.
	if !strings.Contains(stderr.String(), `checked="server checksum"`) {
		t.Errorf("the recorder's log does not say the upload was checked by the server's checksum:\n%s", stderr.String())
	}

	for name, text := range map[string]string{"recorder stdout": stdout.String(), "recorder stderr": stderr.String()} {
		if strings.Contains(text, devSecret) || strings.Contains(text, s3test.RootPassword) {
			t.Errorf("the %s shows a secret key", name)
		}
	}
}
