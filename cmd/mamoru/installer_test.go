package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/pem"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"mamoru/signing"
)

// sh runs a command and returns its combined output and error.
func sh(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustSh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := sh(t, nil, name, args...)
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
	return out
}

// synthImage builds a small Raspberry Pi OS–like image: a DOS label, a
// FAT32 boot partition with cmdline.txt, and an ext4 root partition. It
// returns the image and the SHA-256 of its root partition.
func synthImage(t *testing.T, dir string) (string, [32]byte) {
	t.Helper()
	img := filepath.Join(dir, "base.img")
	const mib = 1 << 20
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Truncate(img, 128*mib)
	cmd := exec.Command("sfdisk", "-q", img)
	cmd.Stdin = strings.NewReader("label: dos\nstart=2048, size=131072, type=c\nstart=133120, type=83\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	boot, root := filepath.Join(dir, "boot.part"), filepath.Join(dir, "root.part")
	mustSh(t, "mkfs.vfat", "-F", "32", "-s", "1", "-C", boot, "65536")
	os.WriteFile(filepath.Join(dir, "cmdline.txt"), []byte("console=serial0,115200 root=PARTUUID=deadbeef-02 rootwait\n"), 0o644)
	mustSh(t, "mcopy", "-i", boot, filepath.Join(dir, "cmdline.txt"), "::cmdline.txt")
	os.WriteFile(root, nil, 0o644)
	os.Truncate(root, 63*mib)
	mustSh(t, "mkfs.ext4", "-q", "-F", root)
	mustSh(t, "dd", "if="+boot, "of="+img, "bs=512", "seek=2048", "conv=notrunc", "status=none")
	mustSh(t, "dd", "if="+root, "of="+img, "bs=512", "seek=133120", "conv=notrunc", "status=none")
	return img, rootSum(t, img)
}

func rootSum(t *testing.T, img string) [32]byte {
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, io.NewSectionReader(f, 133120*512, 63<<20))
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

func TestMakeImage(t *testing.T) {
	for _, tool := range []string{"sfdisk", "mkfs.vfat", "mkfs.ext4", "mcopy", "xz"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing (apt-get install fdisk dosfstools e2fsprogs mtools xz-utils)", tool)
		}
	}
	// A 64 MB FAT32 partition is smaller than mtools likes; the image is
	// only a stand-in for Raspberry Pi OS's 512 MB one.
	t.Setenv("MTOOLS_SKIP_CHECK", "1")
	dir := t.TempDir()
	base, rootBefore := synthImage(t, dir)
	// The site's folder holds whatever a folder of that name may: a space.
	site := filepath.Join(dir, "shop 1")
	if code, _, errOut := runCmd(t, "provision", "--store", "ikebukuro", "--device", "counter-1", "--out", site, "--endpoint", "s3.example.com", "--bucket", "mamoru-clips"); code != 0 {
		t.Fatal(errOut)
	}
	config := filepath.Join(site, "mamoru.toml")
	addAlertTargets(t, config)
	keys := siteKeyFiles(t)
	for name, text := range keys {
		mode := os.FileMode(0o600)
		if strings.HasSuffix(name, ".pem") {
			mode = 0o644
		}
		os.WriteFile(filepath.Join(site, name), []byte(text), mode)
	}
	// make image checks the configuration with the key files taken from
	// beside it, as it puts them on the card; the signing key is the
	// device's to make. At their device paths they are not on this machine.
	if code, out, errOut := runCmd(t, "check", "--no-probe", "--config", config); code != 2 || !strings.Contains(errOut, "signing_key_file") || !strings.Contains(errOut, "'alerts.target[2].token_file' cannot be read") {
		t.Errorf("check without --key-dir: %d %s %s; want the key files missing at their device paths", code, out, errOut)
	}
	if code, out, errOut := runCmd(t, "check", "--no-probe", "--key-dir", site, "--config", config); code != 0 || !strings.Contains(out, "configuration OK: device counter-1 in store ikebukuro") {
		t.Errorf("check --key-dir: %d %s %s", code, out, errOut)
	}
	deb := filepath.Join(dir, "mamoru_0~test_arm64.deb")
	os.WriteFile(deb, []byte("a package"), 0o644)
	mamoru := buildMamoru(t, t.TempDir())

	mustSh(t, "xz", "-0", "-k", base)
	for _, in := range []string{base, base + ".xz"} {
		out := filepath.Join(dir, "card.img")
		for range 2 { // twice: the boot line is changed once
			// The signing key provision left beside the configuration
			// stays here, and make image says so.
			if got := mustSh(t, "installer/image.sh", in, config, deb, out, mamoru); !strings.Contains(got, "signing.key stays on this machine and is not this card's key") {
				t.Errorf("%s: make image did not say the signing key stays behind:\n%s", in, got)
			}
		}
		at := out + "@@1048576"
		env := []string{"MTOOLS_SKIP_CHECK=1"}
		listing, _ := sh(t, env, "mdir", "-b", "-i", at, "::mamoru")
		for _, want := range []string{"mamoru_0~test_arm64.deb", "mamoru.toml"} {
			if !strings.Contains(listing, want) {
				t.Errorf("%s: the boot partition's mamoru/ lacks %s:\n%s", in, want, listing)
			}
		}
		for name, text := range keys {
			if got, err := sh(t, env, "mtype", "-i", at, "::mamoru/"+name); err != nil || got != text {
				t.Errorf("%s: mamoru/%s on the boot partition: %v, %d bytes; want the site's %s", in, name, err, len(got), name)
			}
		}
		if strings.Contains(listing, "signing") {
			t.Errorf("%s: make image staged a signing key on the boot partition:\n%s", in, listing)
		}
		conf, _ := sh(t, env, "mtype", "-i", at, "::mamoru/mamoru.toml")
		site0, _ := os.ReadFile(filepath.Join(site, "mamoru.toml"))
		if conf != string(site0) {
			t.Errorf("%s: the configuration on the card differs from the site's", in)
		}
		cmdline, _ := sh(t, env, "mtype", "-i", at, "::cmdline.txt")
		if strings.Count(cmdline, "systemd.run=/boot/firmware/mamoru-firstrun.sh") != 1 || !strings.HasPrefix(cmdline, "console=serial0,115200 root=PARTUUID=deadbeef-02 rootwait ") || strings.Count(cmdline, "\n") != 1 {
			t.Errorf("%s: cmdline.txt = %q; want the first-boot script added once, on one line", in, cmdline)
		}
		script, _ := sh(t, env, "mtype", "-i", at, "::mamoru-firstrun.sh")
		if !strings.Contains(script, "mamoru-firstboot") {
			t.Errorf("%s: no first-boot script on the card", in)
		}
		if rootSum(t, out) != rootBefore {
			t.Errorf("%s: the root partition changed", in)
		}
	}
	if out, err := sh(t, nil, "installer/image.sh", filepath.Join(dir, "none.img"), config, deb, filepath.Join(dir, "x.img"), mamoru); err == nil || !strings.Contains(out, "no such file") {
		t.Errorf("image from a missing base: %v %s", err, out)
	}
	// Two names FAT takes for one are refused, naming both keys.
	other := filepath.Join(dir, "shop 2")
	mustSh(t, "cp", "-a", site, other)
	src, _ := os.ReadFile(filepath.Join(other, "mamoru.toml"))
	os.WriteFile(filepath.Join(other, "mamoru.toml"), []byte(strings.Replace(string(src), `"/etc/mamoru/smtp.password"`, `"/etc/mamoru/NTFY.token"`, 1)), 0o644)
	os.WriteFile(filepath.Join(other, "NTFY.token"), []byte("pa55word\n"), 0o600)
	if out, err := sh(t, nil, "installer/image.sh", base, filepath.Join(other, "mamoru.toml"), deb, filepath.Join(dir, "none.img"), mamoru); err == nil ||
		!strings.Contains(out, `make image: 'alerts.target[3].password_file' = "/etc/mamoru/NTFY.token" and 'alerts.target[2].token_file' differ only in case`) {
		t.Errorf("make image with ntfy.token and NTFY.token: %v\n%s", err, out)
	}
	// A key file missing beside the configuration: check names it with
	// its line and the file it looked for, and make image refuses, naming
	// each one missing, before it builds anything.
	os.Remove(filepath.Join(site, "ntfy.token"))
	os.Remove(filepath.Join(site, "smtp.password"))
	if code, _, errOut := runCmd(t, "check", "--no-probe", "--key-dir", site, "--config", config); code != 2 ||
		!strings.Contains(errOut, fmt.Sprintf("%s:%d: 'alerts.target[2].token_file' cannot be read from %s (the file for /etc/mamoru/ntfy.token on the device)", config, lineIn(t, config, "token_file"), filepath.Join(site, "ntfy.token"))) {
		t.Errorf("check --key-dir with ntfy.token missing: %d\n%s", code, errOut)
	}
	none := filepath.Join(dir, "none.img")
	out, err := sh(t, nil, "installer/image.sh", base, config, deb, none, mamoru)
	for _, want := range []string{
		fmt.Sprintf(`make image: 'alerts.target[2].token_file' = "/etc/mamoru/ntfy.token" needs its file beside the configuration, as %s (mode 0600 for a secret): it is not there`, filepath.Join(site, "ntfy.token")),
		fmt.Sprintf(`make image: 'alerts.target[3].password_file' = "/etc/mamoru/smtp.password" needs its file beside the configuration, as %s (mode 0600 for a secret): it is not there`, filepath.Join(site, "smtp.password")),
	} {
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("make image with key files missing: %v\n%s\nwant %q", err, out, want)
		}
	}
	if _, err := os.Stat(none + ".tmp"); err == nil {
		t.Error("make image began an image it then refused")
	}
	mustSh(t, "bash", "-n", "installer/remote-install.sh")
}

// addAlertTargets appends siteTargets to the configuration at path, the
// e-mail server's with a CA whose file's name holds a space.
func addAlertTargets(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(siteTargets + "ca_file = \"/etc/mamoru/nas ca.pem\"\n"); err != nil {
		t.Fatal(err)
	}
}

// siteKeyFiles are the files an installer keeps beside a configuration
// from provision with addAlertTargets, by name: siteKeys and the CA.
func siteKeyFiles(t *testing.T) map[string]string {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	keys := maps.Clone(siteKeys)
	keys["nas ca.pem"] = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	return keys
}

// buildMamoru builds mamoru into dir and returns its path: for the
// platform under test, so under make test-arm64 it is a script that runs
// the build through the same emulator as the tests.
func buildMamoru(t *testing.T, dir string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("no go on PATH to build mamoru")
	}
	bin := filepath.Join(dir, "mamoru")
	if ex := os.Getenv("MAMORU_TEST_EXEC"); ex != "" {
		mustSh(t, goBin, "build", "-o", bin+".bin", ".")
		os.WriteFile(bin, []byte("#!/bin/sh\nexec "+ex+" "+bin+".bin \"$@\"\n"), 0o755)
	} else {
		mustSh(t, goBin, "build", "-o", bin, ".")
	}
	return bin
}

// The first-boot script, run against a directory standing for the Pi's
// root with apt-get and systemctl stubbed: stage 1, early and offline,
// moves everything off the boot partition and leaves a normal boot behind
// it; stage 2, once online, installs, configures and starts mamoru, and
// keeps trying until it has.
func TestFirstBoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test installs files owned by root, as the Pi does, and needs root (CI runs as root)")
	}
	root := t.TempDir()
	boot := filepath.Join(root, "boot/firmware")
	cmdline := "console=serial0,115200 root=PARTUUID=deadbeef-02 rootwait"
	// The site's key files, as make image leaves them beside the
	// configuration: a mail password kept outside /etc/mamoru, and a CA
	// at a path outside it where the system already has a file.
	config := strings.Replace(fmt.Sprintf(validConfig, t.TempDir()), "\n\n[capture]", "\nsigning_key_file = \"/etc/mamoru/signing.key\"\n\n[capture]", 1) +
		strings.Replace(siteAlerts, `"/etc/mamoru/smtp.password"`, `"/srv/mamoru keys/smtp.password"`, 1) +
		"ca_file = \"/etc/ssl/certs/shop-ca.pem\"\n"
	config = strings.Replace(config, "secret_file = \"/etc/mamoru/webhook.secret\"\n", "secret_file = \"/etc/mamoru/webhook.secret\"\nca_file = \"/etc/mamoru/nas ca.pem\"\n", 1)
	keys := siteKeyFiles(t)
	keys["shop-ca.pem"] = "the card's CA"
	files := map[string]string{
		"cmdline.txt":                    cmdline + " systemd.run=/boot/firmware/mamoru-firstrun.sh systemd.run_success_action=reboot systemd.run_failure_action=reboot systemd.unit=kernel-command-line.target\n",
		"mamoru/mamoru_0~test_arm64.deb": "package",
		"mamoru/mamoru.toml":             config,
		// An older make image staged the signing key here: it sat on the
		// FAT partition and is not installed.
		"mamoru/signing.key": "staged",
	}
	for name, text := range keys {
		files["mamoru/"+name] = text
	}
	for name, text := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(boot, name)), 0o755)
		os.WriteFile(filepath.Join(boot, name), []byte(text), 0o644)
	}
	systemCA := filepath.Join(root, "etc/ssl/certs/shop-ca.pem")
	os.MkdirAll(filepath.Dir(systemCA), 0o755)
	os.WriteFile(systemCA, []byte("the system's CA"), 0o644)
	script := filepath.Join(boot, "mamoru-firstrun.sh")
	b, _ := os.ReadFile("installer/firstrun.sh")
	os.WriteFile(script, b, 0o755)

	// Stubs that log their arguments; apt-get fails while $root/offline
	// exists. mamoru is the real one, as the package would install it.
	bin, calls := t.TempDir(), filepath.Join(root, "calls")
	os.WriteFile(filepath.Join(bin, "apt-get"), []byte("#!/bin/sh\necho \"apt-get $*\" >>"+calls+"\n[ ! -e "+root+"/offline ]\n"), 0o755)
	os.WriteFile(filepath.Join(bin, "systemctl"), []byte("#!/bin/sh\necho \"systemctl $*\" >>"+calls+"\n"), 0o755)
	os.WriteFile(filepath.Join(bin, "logger"), []byte("#!/bin/sh\necho \"logger $*\" >>"+calls+"\nsed 's/^/logged: /' >>"+calls+"\n"), 0o755)
	buildMamoru(t, bin) // the real one, as the package would install it
	// daemon stands for the mamoru user: a user other than root.
	env := []string{"MAMORU_ROOT=" + root, "MAMORU_OWNER=daemon", "PATH=" + bin + ":" + os.Getenv("PATH"),
		"MAMORU_DEVICE_SIGNING_KEY_FILE=" + filepath.Join(root, "etc/mamoru/signing.key")}
	log := func() string {
		b, _ := os.ReadFile(filepath.Join(root, "var/log/mamoru-firstboot.log"))
		return string(b)
	}

	if out, err := sh(t, env, "bash", script); err != nil {
		t.Fatalf("stage 1: %v %s\n%s", err, out, log())
	}
	if got, _ := os.ReadFile(filepath.Join(boot, "cmdline.txt")); string(got) != cmdline+"\n" {
		t.Errorf("after stage 1 cmdline.txt = %q, want it as it was: %q", got, cmdline)
	}
	for _, gone := range []string{"mamoru", "mamoru-firstrun.sh"} {
		if _, err := os.Stat(filepath.Join(boot, gone)); err == nil {
			t.Errorf("stage 1 left %s on the boot partition", gone)
		}
	}
	stage := filepath.Join(root, "var/lib/mamoru-firstboot")
	if _, err := os.Stat(filepath.Join(stage, "ntfy.token")); err != nil || mustMode(t, stage) != 0o700 {
		t.Errorf("stage 1 did not keep the key files where only root reads them: %v, mode %o", err, mustMode(t, stage))
	}
	unit := filepath.Join(root, "etc/systemd/system/mamoru-firstboot.service")
	// Verified as written, but with an ExecStart this machine has: the
	// script lives under the test's root, not in /usr/local/sbin.
	text, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	check := filepath.Join(t.TempDir(), "mamoru-firstboot.service")
	os.WriteFile(check, bytes.ReplaceAll(text, []byte("/usr/local/sbin/mamoru-firstboot"), []byte("/bin/true")), 0o644)
	if out, err := sh(t, nil, "systemd-analyze", "verify", "--man=no", check); err != nil || out != "" {
		t.Errorf("systemd-analyze verify of the first-boot unit: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/mamoru-firstboot.service")); err != nil {
		t.Errorf("the first-boot service is not enabled: %v", err)
	}

	// No network yet: stage 2 fails, keeps everything, and systemd will
	// run it again.
	self := filepath.Join(root, "usr/local/sbin/mamoru-firstboot")
	os.WriteFile(filepath.Join(root, "offline"), nil, 0o644)
	if _, err := sh(t, env, self, "install"); err == nil {
		t.Fatal("stage 2 with apt-get failing: exit 0, want a failure for systemd to retry")
	}
	if _, err := os.Stat(filepath.Join(stage, "mamoru.toml")); err != nil {
		t.Fatalf("a failed stage 2 lost what it needs to try again: %v", err)
	}
	os.Remove(filepath.Join(root, "offline"))
	if out, err := sh(t, env, self, "install"); err != nil {
		t.Fatalf("stage 2: %v %s\n%s", err, out, log())
	}
	got, _ := os.ReadFile(calls)
	for _, want := range []string{
		"apt-get install -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold " + filepath.Join(stage, "mamoru_0~test_arm64.deb"),
		"systemctl daemon-reload", // MemoryMax from the site's ring_max_mb
		"systemctl enable mamoru.service",
		"systemctl restart --no-block mamoru.service", // on the site's configuration, not the package's example
		"systemctl disable mamoru-firstboot.service",
	} {
		if !strings.Contains(string(got), want) {
			t.Errorf("stage 2 did not run %q; it ran:\n%s", want, got)
		}
	}
	daemon, err := user.Lookup("daemon")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		path, from string // from: the file on the card, "" for none
		mode       os.FileMode
		uid        string
	}{
		{"etc/mamoru/mamoru.toml", "mamoru.toml", 0o640, "0"},
		{"etc/mamoru/signing.key", "", 0o600, daemon.Uid},
		{"etc/mamoru/s3-access-key", "s3-access-key", 0o600, daemon.Uid},
		{"etc/mamoru/s3-secret-key", "s3-secret-key", 0o600, daemon.Uid},
		{"etc/mamoru/webhook.secret", "webhook.secret", 0o600, daemon.Uid},
		{"etc/mamoru/ntfy.token", "ntfy.token", 0o600, daemon.Uid},
		{"srv/mamoru keys/smtp.password", "smtp.password", 0o600, daemon.Uid},
		{"etc/mamoru/nas ca.pem", "nas ca.pem", 0o644, daemon.Uid},
	} {
		st, err := os.Stat(filepath.Join(root, f.path))
		if err != nil {
			t.Errorf("stage 2 did not install /%s: %v", f.path, err)
			continue
		}
		if uid := fmt.Sprint(st.Sys().(*syscall.Stat_t).Uid); st.Mode().Perm() != f.mode || uid != f.uid {
			t.Errorf("/%s has mode %o and owner %s, want %o and %s", f.path, st.Mode().Perm(), uid, f.mode, f.uid)
		}
		if got, _ := os.ReadFile(filepath.Join(root, f.path)); f.from != "" && string(got) != files["mamoru/"+f.from] {
			t.Errorf("/%s does not hold the card's %s", f.path, f.from)
		}
	}
	// A file the system has at a path outside /etc/mamoru is its own.
	if got, _ := os.ReadFile(systemCA); string(got) != "the system's CA" || !strings.Contains(log(), "alerts.target[3].ca_file: /etc/ssl/certs/shop-ca.pem is there already and is kept") {
		t.Errorf("stage 2 replaced the system's /etc/ssl/certs/shop-ca.pem with %q, or did not say it kept it:\n%s", got, log())
	}
	for name, text := range keys {
		if strings.Contains(log(), strings.TrimSpace(text)) {
			t.Errorf("the first-boot log shows what %s holds:\n%s", name, log())
		}
	}
	// The signing key was made on the device, not taken from the card,
	// and its public key is in the journal, the log and on the boot
	// partition, for the installer to read back.
	key, err := signing.ReadKey(filepath.Join(root, "etc/mamoru/signing.key"))
	if err != nil {
		t.Fatalf("stage 2 made no signing key the recorder can read: %v", err)
	}
	wantPub := fmt.Sprintf("public_key = %q\n", key.Public())
	if b, err := os.ReadFile(filepath.Join(boot, "mamoru-public-key.txt")); err != nil || !strings.Contains(string(b), wantPub) ||
		!strings.Contains(string(b), "store = \"test-store\"\ndevice = \"test-counter\"\n") || strings.Contains(string(b), "PRIVATE") {
		t.Errorf("mamoru-public-key.txt on the boot partition: %q, %v; want store, device and %s, and no secret", b, err, wantPub)
	}
	got, _ = os.ReadFile(calls)
	if !strings.Contains(string(got), "logger -t mamoru-firstboot\n") || !strings.Contains(string(got), "logged: "+wantPub) {
		t.Errorf("the public key did not reach the journal; the stubs saw:\n%s", got)
	}
	if !strings.Contains(log(), wantPub) {
		t.Errorf("the public key is not in the first-boot log:\n%s", log())
	}
	for _, gone := range []string{stage, unit, self} {
		if _, err := os.Stat(gone); err == nil {
			t.Errorf("stage 2 left %s behind", gone)
		}
	}
}

func mustMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func TestFlash(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "card.img")
	data := bytes.Repeat([]byte("mamoru card image\n"), 1<<16)
	os.WriteFile(img, data, 0o644)
	card := filepath.Join(dir, "card") // a loop file standing for the SD card
	os.WriteFile(card, make([]byte, 4<<20), 0o644)
	proc, sys := filepath.Join(dir, "proc"), filepath.Join(dir, "sys")
	os.Mkdir(proc, 0o755)
	mounts, swaps := filepath.Join(proc, "mounts"), filepath.Join(proc, "swaps")
	os.WriteFile(mounts, []byte("/dev/root / ext4 rw 0 0\n"), 0o644)
	swapHeader := "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
	os.WriteFile(swaps, []byte(swapHeader+"/dev/zram0                              partition\t2097148\t\t0\t\t100\n"), 0o644)
	// The card in /sys, with a partition; no holders yet.
	for _, d := range []string{"class/block/card/holders", "class/block/card/card1/holders", "class/block/card/card2/holders"} {
		os.MkdirAll(filepath.Join(sys, d), 0o755)
	}
	env := []string{"MAMORU_PROC=" + proc, "MAMORU_SYS=" + sys}

	if out, err := sh(t, env, "installer/flash.sh", img, card); err == nil || !strings.Contains(out, "refusing: "+card+" is not a block device") {
		t.Errorf("flash to a non-removable target without FORCE: %v\n%s", err, out)
	}
	out, err := sh(t, append(env, "FORCE=1"), "installer/flash.sh", img, card)
	if err != nil || !strings.Contains(out, "written and verified") {
		t.Fatalf("flash with FORCE=1: %v\n%s", err, out)
	}
	got, _ := os.ReadFile(card)
	if !bytes.Equal(got[:len(data)], data) {
		t.Error("the card does not hold the image")
	}
	// /proc/mounts unreadable: whether the card is mounted cannot be told.
	if out, err := sh(t, append(env, "FORCE=1", "MAMORU_PROC="+filepath.Join(dir, "no-proc")), "installer/flash.sh", img, card); err == nil || !strings.Contains(out, "cannot read "+filepath.Join(dir, "no-proc", "mounts")) {
		t.Errorf("flash with no /proc/mounts: %v\n%s", err, out)
	}
	// Mounted: never, even with FORCE.
	os.WriteFile(mounts, []byte(fmt.Sprintf("%s /media/card vfat rw 0 0\n", card)), 0o644)
	if out, err := sh(t, append(env, "FORCE=1"), "installer/flash.sh", img, card); err == nil || !strings.Contains(out, "is mounted") {
		t.Errorf("flash to a mounted card: %v\n%s", err, out)
	}
	os.WriteFile(mounts, nil, 0o644)
	// Swap, held by LVM, device-mapper or md RAID, itself or a partition:
	// never either, even with FORCE.
	for _, tc := range []struct {
		name, swap, holder, want string
	}{
		{name: "swap on the card", swap: card, want: card + " is used as swap (see " + swaps + ")"},
		{name: "swap on a partition", swap: card + "2", want: card + " is used as swap"},
		{name: "the card held by dm", holder: "class/block/card/holders/dm-0", want: card + " is in use: card is held by dm-0"},
		{name: "a partition held by md", holder: "class/block/card/card1/holders/md0", want: card + " is in use: card1 is held by md0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.swap != "" {
				os.WriteFile(swaps, []byte(swapHeader+tc.swap+" partition 2097148 0 -2\n"), 0o644)
				defer os.WriteFile(swaps, []byte(swapHeader), 0o644)
			}
			if tc.holder != "" {
				os.WriteFile(filepath.Join(sys, tc.holder), nil, 0o644)
				defer os.Remove(filepath.Join(sys, tc.holder))
			}
			if out, err := sh(t, append(env, "FORCE=1"), "installer/flash.sh", img, card); err == nil || !strings.Contains(out, tc.want) {
				t.Errorf("flash with FORCE=1: %v\n%s\nwant it refused: %s", err, out, tc.want)
			}
		})
	}
	// A swap on another disk whose name starts like the card's is not the card's.
	os.WriteFile(swaps, []byte(swapHeader+card+"-other partition 1 0 -2\n"), 0o644)
	if out, err := sh(t, append(env, "FORCE=1"), "installer/flash.sh", img, card); err != nil {
		t.Errorf("flash with swap on %s-other: %v\n%s", card, err, out)
	}

	// Larger than any SD card: a laptop's disk, most likely.
	big := filepath.Join(dir, "disk")
	os.WriteFile(big, nil, 0o644)
	os.Truncate(big, 300_000_000_000) // sparse
	if out, err := sh(t, env, "installer/flash.sh", img, big); err == nil || !strings.Contains(out, "refusing: "+big+" holds 300 GB, more than an SD card's 256 GB") {
		t.Errorf("flash to 300 GB: %v\n%s", err, out)
	}

	// A card that takes the writes and keeps nothing, as a counterfeit one
	// does: dd, stubbed, writes nothing and says it did.
	os.WriteFile(card, make([]byte, 4<<20), 0o644)
	bin := t.TempDir()
	os.WriteFile(filepath.Join(bin, "dd"), []byte("#!/bin/sh\nexit 0\n"), 0o755)
	if out, err := sh(t, append(env, "FORCE=1", "PATH="+bin+":"+os.Getenv("PATH")), "installer/flash.sh", img, card); err == nil || !strings.Contains(out, "VERIFY FAILED: "+card+" does not hold "+img) {
		t.Errorf("flash to a card that keeps nothing: %v\n%s", err, out)
	}
}

// make flash on a real block device: a loop device, which the kernel
// reports as not removable, like a laptop's own disk.
func TestFlashBlockDevice(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test attaches a loop device and needs root (CI runs as root)")
	}
	dir := t.TempDir()
	backing := filepath.Join(dir, "card")
	os.WriteFile(backing, nil, 0o644)
	os.Truncate(backing, 8<<20)
	out, err := exec.Command("losetup", "--find", "--show", backing).CombinedOutput()
	if err != nil {
		t.Skipf("no loop device here (%v: %s); TestFlash covers the rest with a file", err, out)
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", loop).Run() })
	img := filepath.Join(dir, "card.img")
	data := bytes.Repeat([]byte("mamoru card image\n"), 1<<16)
	os.WriteFile(img, data, 0o644)
	proc := filepath.Join(dir, "proc")
	os.Mkdir(proc, 0o755)
	os.WriteFile(filepath.Join(proc, "mounts"), nil, 0o644)
	env := []string{"MAMORU_PROC=" + proc}

	if out, err := sh(t, env, "installer/flash.sh", img, loop); err == nil || !strings.Contains(out, "refusing: "+loop+" is not a removable device") {
		t.Errorf("flash to a fixed block device without FORCE: %v\n%s", err, out)
	}
	if out, err := sh(t, append(env, "FORCE=1"), "installer/flash.sh", img, loop); err != nil || !strings.Contains(out, "written and verified") {
		t.Fatalf("flash to a loop device with FORCE=1: %v\n%s", err, out)
	}
	got, _ := os.ReadFile(backing)
	if !bytes.Equal(got[:len(data)], data) {
		t.Error("the loop device's file does not hold the image")
	}
	huge := filepath.Join(dir, "huge.img")
	os.WriteFile(huge, nil, 0o644)
	os.Truncate(huge, 9<<20)
	if out, err := sh(t, append(env, "FORCE=1"), "installer/flash.sh", huge, loop); err == nil || !strings.Contains(out, "does not fit") {
		t.Errorf("an image larger than the device: %v\n%s", err, out)
	}
}

// make install's script against a Pi played by stub ssh and scp: it asks
// the Pi its architecture, builds for it, copies the package into a fresh
// directory from mktemp -d there (never a predictable /tmp path), installs
// it without a conffile prompt, runs the quick self-test and removes the
// directory; a Pi of another architecture is refused, and so is a HOST that
// ssh would read as an option, or scp as a host and a path.
func TestRemoteInstall(t *testing.T) {
	bin := t.TempDir()
	calls := filepath.Join(bin, "calls")
	deb := filepath.Join(bin, "mamoru_1.0_arm64.deb")
	os.WriteFile(deb, []byte("package"), 0o644)
	stubs := map[string]string{
		// The Pi answers dpkg with $PI_ARCH, mktemp with $PI_TMP, and
		// runs the install through its shell, where sudo logs each of
		// its arguments in brackets, so the quoting shows.
		"ssh": `echo "ssh $*" >>` + calls + `; case "$*" in *print-architecture*) echo "$PI_ARCH";; *"mktemp -d") echo "$PI_TMP";; *"apt-get install"*) shift 2; sh -c "$*";; esac`,
		"sudo": `printf sudo >>` + calls + `; for a; do printf ' [%s]' "$a" >>` + calls + `; done; echo >>` + calls +
			`; [ "$1" != test ] || [ "$3" = "$PI_HAS" ]`,
		"scp":  `echo "scp $*" >>` + calls,
		"make": `echo "make $*" >>` + calls + `; echo building; echo ` + deb,
	}
	for name, body := range stubs {
		os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755)
	}
	run := func(host, arch, tmp string, site ...string) (out, ran string, err error) {
		os.Remove(calls)
		env := []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "PI_ARCH=" + arch, "PI_TMP=" + tmp}
		out, err = sh(t, env, "installer/remote-install.sh", append([]string{host, "make"}, site...)...)
		b, _ := os.ReadFile(calls)
		return out, string(b), err
	}
	inOrder := func(got string, want []string) {
		t.Helper()
		at := 0
		for _, w := range want {
			i := strings.Index(got[at:], w)
			if i < 0 {
				t.Errorf("remote-install did not run %q (after the steps before it); it ran:\n%s", w, got)
				continue
			}
			at += i + len(w)
		}
	}
	out, got, err := run("pi@shop-1.local", "arm64", "/tmp/tmp.Qx81ZpL0aV")
	if err != nil {
		t.Fatalf("remote-install: %v\n%s", err, out)
	}
	want := []string{
		"ssh -- pi@shop-1.local dpkg --print-architecture",
		"make --no-print-directory -s deb ARCH=arm64",
		"ssh -- pi@shop-1.local mktemp -d",
		"scp -- " + deb + " pi@shop-1.local:/tmp/tmp.Qx81ZpL0aV/",
		"ssh -- pi@shop-1.local sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold /tmp/tmp.Qx81ZpL0aV/mamoru_1.0_arm64.deb",
		"mamoru selftest --quick --config /etc/mamoru/mamoru.toml",
		"ssh -- pi@shop-1.local rm -rf -- /tmp/tmp.Qx81ZpL0aV",
	}
	inOrder(got, want)
	if strings.Contains(got, " pi@shop-1.local:/tmp/\n") || strings.Contains(got, " /tmp/mamoru_") {
		t.Errorf("remote-install used a predictable /tmp path:\n%s", got)
	}
	if strings.Contains(got, "sudo [install]") {
		t.Errorf("remote-install without CONFIG replaced the Pi's configuration or keys:\n%s", got)
	}

	// With CONFIG, the site's configuration and every key file beside it
	// go to the Pi, each installed at its configured path (one with a
	// space, one outside /etc/mamoru) for mamoru, before the restart.
	mamoru := buildMamoru(t, t.TempDir())
	cfg := writeSite(t, siteKeyFiles(t))
	site := filepath.Dir(cfg)
	src, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(src), `"/etc/mamoru/smtp.password"`, `"/srv/mamoru keys/smtp.password"`, 1)+"ca_file = \"/etc/mamoru/nas ca.pem\"\n"), 0o644)
	out, got, err = run("pi@shop-1.local", "arm64", "/tmp/tmp.Qx81ZpL0aV", cfg, mamoru)
	if err != nil {
		t.Fatalf("remote-install with CONFIG: %v\n%s\n%s", err, out, got)
	}
	const tmp = "/tmp/tmp.Qx81ZpL0aV"
	want = []string{
		"scp -- " + deb + " pi@shop-1.local:" + tmp + "/",
		"scp -- " + cfg + " pi@shop-1.local:" + tmp + "/mamoru.toml",
		"scp -- " + filepath.Join(site, "s3-access-key") + " pi@shop-1.local:" + tmp + "/key-0",
		"scp -- " + filepath.Join(site, "smtp.password") + " pi@shop-1.local:" + tmp + "/key-4",
		"scp -- " + filepath.Join(site, "nas ca.pem") + " pi@shop-1.local:" + tmp + "/key-5",
		"sudo [DEBIAN_FRONTEND=noninteractive] [apt-get] [install]",
		"sudo [install] [-m] [0640] [-o] [root] [-g] [mamoru] [" + tmp + "/mamoru.toml] [/etc/mamoru/mamoru.toml]",
		"sudo [install] [-D] [-m] [0600] [-o] [mamoru] [-g] [mamoru] [" + tmp + "/key-0] [/etc/mamoru/s3-access-key]",
		"sudo [install] [-D] [-m] [0600] [-o] [mamoru] [-g] [mamoru] [" + tmp + "/key-1] [/etc/mamoru/s3-secret-key]",
		"sudo [install] [-D] [-m] [0600] [-o] [mamoru] [-g] [mamoru] [" + tmp + "/key-2] [/etc/mamoru/webhook.secret]",
		"sudo [install] [-D] [-m] [0600] [-o] [mamoru] [-g] [mamoru] [" + tmp + "/key-3] [/etc/mamoru/ntfy.token]",
		"sudo [test] [-e] [/srv/mamoru keys/smtp.password]",
		"sudo [install] [-D] [-m] [0600] [-o] [mamoru] [-g] [mamoru] [" + tmp + "/key-4] [/srv/mamoru keys/smtp.password]",
		"sudo [install] [-D] [-m] [0644] [-o] [mamoru] [-g] [mamoru] [" + tmp + "/key-5] [/etc/mamoru/nas ca.pem]",
		"sudo [systemctl] [restart] [mamoru]",
		"sudo [-u] [mamoru] [mamoru] [selftest] [--quick] [--config] [/etc/mamoru/mamoru.toml]",
		"ssh -- pi@shop-1.local rm -rf -- " + tmp,
	}
	inOrder(got, want)
	if !strings.Contains(out, "alerts.target[3].ca_file: /etc/mamoru/nas ca.pem installed") {
		t.Errorf("remote-install did not say what it installed:\n%s", out)
	}
	for name, text := range siteKeyFiles(t) {
		if strings.Contains(out+got, strings.TrimSpace(text)) {
			t.Errorf("remote-install showed what %s holds:\n%s\n%s", name, out, got)
		}
	}
	// A file the Pi has at a path outside /etc/mamoru is kept.
	t.Setenv("PI_HAS", "/srv/mamoru keys/smtp.password")
	out, got, err = run("pi@shop-1.local", "arm64", tmp, cfg, mamoru)
	if err != nil || !strings.Contains(out, "alerts.target[3].password_file: /srv/mamoru keys/smtp.password is there already and is kept") || strings.Contains(got, "/key-4] [/srv") {
		t.Errorf("remote-install over a file the Pi has outside /etc/mamoru: %v\n%s\n%s", err, out, got)
	}
	// A key file missing beside the configuration stops the install
	// before the Pi is touched, naming it.
	os.Remove(filepath.Join(site, "ntfy.token"))
	out, got, err = run("pi@shop-1.local", "arm64", tmp, cfg, mamoru)
	if err == nil || got != "" || !strings.Contains(out, fmt.Sprintf(`make install: 'alerts.target[2].token_file' = "/etc/mamoru/ntfy.token" needs its file beside the configuration, as %s`, filepath.Join(site, "ntfy.token"))) {
		t.Errorf("remote-install with ntfy.token missing: %v\n%s\nran:\n%s", err, out, got)
	}

	out, got, err = run("pi@shop-1.local", "i386", "/tmp/tmp.Qx81ZpL0aV")
	if err == nil || !strings.Contains(out, "pi@shop-1.local is i386") {
		t.Errorf("remote-install to an i386 host: %v %q; want it refused, naming the host and its architecture", err, out)
	}
	if strings.Contains(got, "make") {
		t.Errorf("remote-install built for a host it refused:\n%s", got)
	}

	// A HOST that ssh would take as an option never reaches ssh.
	for _, host := range []string{"-oProxyCommand=touch /tmp/pwned", "-v", "pi@shop 1", "pi@shop;reboot"} {
		out, got, err := run(host, "arm64", "/tmp/tmp.Qx81ZpL0aV")
		if err == nil || !strings.Contains(out, "HOST="+host+" is not [user@]host") || got != "" {
			t.Errorf("remote-install HOST=%q: %v %q, ran %q; want it refused before any ssh", host, err, out, got)
		}
	}
	// scp would split an IPv6 address at its first ':' and copy to
	// another host: HOST must be a name.
	for _, host := range []string{"pi@fe80::1", "2001:db8::7", "pi@fe80::1%eth0"} {
		out, got, err := run(host, "arm64", "/tmp/tmp.Qx81ZpL0aV")
		if err == nil || !strings.Contains(out, "HOST="+host+" holds ':'; for an IPv6 address, give the Pi a name (in /etc/hosts") || got != "" {
			t.Errorf("remote-install HOST=%q: %v %q, ran %q; want it refused before any ssh, asking for a name", host, err, out, got)
		}
	}
	// A mktemp that answers something other than a path stops the install.
	out, got, err = run("pi@shop-1.local", "arm64", "")
	if err == nil || !strings.Contains(out, "mktemp -d on pi@shop-1.local answered") || strings.Contains(got, "scp") {
		t.Errorf("remote-install with mktemp answering nothing: %v %q; ran:\n%s", err, out, got)
	}
}
