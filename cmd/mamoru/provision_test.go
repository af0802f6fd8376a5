package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mamoru/bucket/s3test"
	"mamoru/config"
	"mamoru/device"
	"mamoru/handover"
	"mamoru/signing"
)

// TestProvisionSignsManifests provisions a device, runs it (on the
// simulated counter, by environment overrides), and checks that managers
// can verify its clips against its public key, and that a tampered
// manifest or clip fails.
func TestProvisionSignsManifests(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	srv.Bucket("clips")
	dir, state := t.TempDir(), t.TempDir()
	code, out, errOut := runCmd(t, "provision", "--store", "shinjuku", "--device", "counter-7", "--out", dir, "--keys-dir", dir, "--state-dir", state,
		"--endpoint", srv.Endpoint, "--bucket", "clips", "--insecure")
	if code != 0 {
		t.Fatalf("provision exited %d: %s", code, errOut)
	}
	// It prints the keyring entry to paste, and nothing after it.
	entry := out[strings.Index(out, "[[keyring]]"):]
	_, pub, _ := strings.Cut(entry, "public_key = \"")
	pub, _, _ = strings.Cut(pub, "\"")
	if !strings.HasPrefix(entry, "[[keyring]]\nstore = \"shinjuku\"\ndevice = \"counter-7\"\npublic_key = \"mamoru-ed25519:") || !strings.Contains(entry, "\n# not_before = ") {
		t.Fatalf("provision printed %q, want the [[keyring]] entry last", out)
	}
	// And the key's fingerprint, as sha256sum prints that of its DER.
	if k, err := signing.ParsePublicKeyText(pub); err != nil || !strings.HasSuffix(entry, "# fingerprint (SHA-256 of the key's DER; keep it apart from any clip): "+signing.Fingerprint(k)+"\n") {
		t.Errorf("provision printed %q, want the key's fingerprint last (%v)", entry, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "signing.pub")); strings.TrimSpace(string(b)) != pub {
		t.Errorf("signing.pub holds %q, the entry %q", b, pub)
	}
	if fi, err := os.Stat(filepath.Join(dir, "signing.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("signing key: %v, mode %v; want 0600", err, fi.Mode())
	}
	if code, _, errOut := runCmd(t, "provision", "--store", "shinjuku", "--device", "counter-7", "--out", dir); code != 1 || !strings.Contains(errOut, "exists") {
		t.Errorf("provisioning twice: exit %d, %q; want a refusal", code, errOut)
	}
	for name, v := range map[string]string{"s3-access-key": s3test.RootUser, "s3-secret-key": s3test.RootPassword} {
		os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600)
	}
	// On this machine: the simulated counter and a small test pattern.
	for k, v := range map[string]string{"MAMORU_HARDWARE_DRIVER": "sim", "MAMORU_VIDEO_SOURCE": "testsrc", "MAMORU_VIDEO_WIDTH": "320",
		"MAMORU_VIDEO_HEIGHT": "240", "MAMORU_VIDEO_BITRATE_KBPS": "500", "MAMORU_VIDEO_KEYFRAME_INTERVAL": "15",
		"MAMORU_AUDIO_BACKEND": "null", "MAMORU_CAPTURE_PRE_SECONDS": "2", "MAMORU_CAPTURE_POST_SECONDS": "1",
		// A plain bucket, and this machine's clock may not be set by NTP.
		"MAMORU_POLICY_OBJECT_LOCK": "none"} {
		t.Setenv(k, v)
	}
	cfg := filepath.Join(dir, "mamoru.toml")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	var stdout, stderr syncBuffer
	go func() { done <- run(ctx, []string{"run", "--config", cfg}, strings.NewReader(""), &stdout, &stderr) }()
	defer func() { cancel(); <-done }()
	wait := func(cond func(device.Status) bool) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			code, out, _ := runCmd(t, "status", "--config", cfg, "--json")
			var st device.Status
			if code == 0 && json.Unmarshal([]byte(out), &st) == nil && cond(st) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("last status %s\nstderr: %s", out, stderr.String())
			}
		}
	}
	wait(func(s device.Status) bool { return s.BufferedSeconds >= 2 })
	code, out, errOut = runCmd(t, "trigger", "--config", cfg)
	if code != 0 {
		t.Fatalf("trigger: %s", errOut)
	}
	id := strings.Fields(out)[1]
	wait(func(s device.Status) bool { return s.Uploads != nil && s.Uploads.Shipped == 1 })

	// The manager: their keys from the environment, the bucket from the device's file.
	t.Setenv("MAMORU_S3_ACCESS_KEY", s3test.RootUser)
	t.Setenv("MAMORU_S3_SECRET_KEY", s3test.RootPassword)
	// Without the device's key in a keyring, nothing is "verified"
	// (issue 14, finding 4: clips get checked no signature at all).
	dl := t.TempDir()
	if code, out, errOut := runCmd(t, "clips", "get", id, "--config", cfg, "-o", dl); code != 1 || !strings.Contains(errOut, "UNKNOWN DEVICE: the keyring holds no key for shinjuku/counter-7") || strings.Contains(out, "verified") {
		t.Errorf("clips get without a keyring: exit %d, %q %q; want 1 and UNKNOWN DEVICE", code, out, errOut)
	}
	// The manager pastes the entry provision printed.
	src, _ := os.ReadFile(cfg)
	manager := filepath.Join(t.TempDir(), "manager.toml")
	os.WriteFile(manager, append(src, "\n"+entry...), 0o644)
	code, out, errOut = runCmd(t, "clips", "get", id, "--config", manager, "-o", dl)
	if code != 0 || !strings.Contains(out, "verified: signed by shinjuku/counter-7 (SHA-256") {
		t.Fatalf("clips get: exit %d, %s %s; want verified and signed by shinjuku/counter-7", code, out, errOut)
	}
	got := filepath.Join(dl, id)
	if code, out, errOut := runCmd(t, "clips", "verify", got); code != 1 || !strings.Contains(errOut, "UNKNOWN DEVICE") {
		t.Errorf("clips verify of a download without a keyring: exit %d, %q %q; want 1 and UNKNOWN DEVICE", code, out, errOut)
	}
	pubFile := filepath.Join(dir, "signing.pub")
	for _, args := range [][]string{
		{"clips", "verify", got, "--config", manager},
		{"clips", "verify", got, "--pubkey", pub},
		{"clips", "verify", got, "--pubkey", pubFile},
		{"clips", "verify", id, "--config", manager},
		{"clips", "verify", "shinjuku/counter-7/" + id, "--config", cfg, "--pubkey", pub},
	} {
		if code, out, errOut := runCmd(t, args...); code != 0 || !strings.Contains(out, "verified: signed by shinjuku/counter-7") {
			t.Errorf("mamoru %q: exit %d, %q %q; want verified and signed", args, code, out, errOut)
		}
	}
	// Its hand-over package (issue 16), from this incident the recorder
	// made and uploaded: VERIFY.txt's own commands pass with standard
	// tools, the fingerprint is provision's, and clips verify takes the zip.
	pkgDir := t.TempDir()
	if code, stdout, errOut := runCmd(t, "clips", "package", id, "-o", pkgDir, "--config", manager); code != 0 {
		t.Fatalf("clips package: exit %d, %q %q", code, stdout, errOut)
	}
	zipPath := filepath.Join(pkgDir, id+".zip")
	files := readZip(t, zipPath)
	unpacked := writeFiles(t, files, "")
	for _, c := range verifyCommands(t, string(files[handover.VerifyFile])) {
		if got, err := runShell(unpacked, c); err != nil {
			t.Errorf("VERIFY.txt's %q failed on the recorder's incident: %v\n%s", c, err, got)
		} else if strings.HasPrefix(c, "openssl pkeyutl") && !strings.Contains(got, "Signature Verified Successfully") {
			t.Errorf("VERIFY.txt's %q: %s", c, got)
		}
	}
	if k, _ := signing.ParsePublicKeyText(pub); !strings.Contains(string(files[handover.ReportFile]), signing.Fingerprint(k)) {
		t.Errorf("the report does not print the fingerprint provision printed")
	}
	if code, stdout, errOut := runCmd(t, "clips", "verify", zipPath, "--config", manager); code != 0 || !strings.Contains(stdout, "verified: signed by shinjuku/counter-7") {
		t.Errorf("clips verify of the package: exit %d, %q %q", code, stdout, errOut)
	}

	// Another device's key does not verify it.
	other := t.TempDir()
	runCmd(t, "provision", "--store", "shinjuku", "--device", "counter-8", "--out", other)
	if code, _, errOut := runCmd(t, "clips", "verify", got, "--pubkey", filepath.Join(other, "signing.pub")); code != 1 || !strings.Contains(errOut, "SIGNATURE INVALID") {
		t.Errorf("verify with another device's key: exit %d, %q", code, errOut)
	}
	// A tampered manifest fails the signature; a tampered clip, the hash.
	man := filepath.Join(got, "manifest.json")
	orig, _ := os.ReadFile(man)
	os.WriteFile(man, []byte(strings.Replace(string(orig), `"trigger": "cli"`, `"trigger": "button"`, 1)), 0o644)
	if code, _, errOut := runCmd(t, "clips", "verify", got, "--config", manager); code != 1 || !strings.Contains(errOut, "SIGNATURE INVALID") {
		t.Errorf("verify of a tampered manifest: exit %d, %q", code, errOut)
	}
	os.WriteFile(man, orig, 0o644)
	clip := filepath.Join(got, "clip.mp4")
	b, _ := os.ReadFile(clip)
	b[len(b)/3] ^= 0x10
	os.WriteFile(clip, b, 0o644)
	if code, _, errOut := runCmd(t, "clips", "verify", got, "--pubkey", pub); code != 1 || !strings.Contains(errOut, "NOT VERIFIED") {
		t.Errorf("verify of a tampered clip: exit %d, %q", code, errOut)
	}
}

// --insecure is the installer's explicit choice of plain HTTP: to another
// machine it writes storage.allow_plain_http, so the configuration it
// writes is one mamoru accepts; to this machine it needs none.
func TestProvisionInsecure(t *testing.T) {
	for _, tc := range []struct {
		endpoint string
		allow    bool
	}{
		{"nas.shop.lan:9000", true},
		{"127.0.0.1:9000", false},
	} {
		dir := t.TempDir()
		if code, _, errOut := runCmd(t, "provision", "--store", "shinjuku", "--device", "counter-7", "--out", dir, "--keys-dir", dir,
			"--endpoint", tc.endpoint, "--bucket", "clips", "--insecure"); code != 0 {
			t.Fatalf("provision --insecure --endpoint %s: exit %d: %s", tc.endpoint, code, errOut)
		}
		b, _ := os.ReadFile(filepath.Join(dir, "mamoru.toml"))
		if got := strings.Contains(string(b), "\nallow_plain_http = true\n"); got != tc.allow {
			t.Errorf("provision --insecure --endpoint %s wrote allow_plain_http: %v, want %v:\n%s", tc.endpoint, got, tc.allow, b)
		}
		if _, err := config.Load(filepath.Join(dir, "mamoru.toml"), nil); err != nil {
			t.Errorf("provision --insecure --endpoint %s wrote a configuration mamoru refuses: %v", tc.endpoint, err)
		}
	}
}
