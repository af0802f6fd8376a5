package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestDebianPackage builds the amd64 package, installs it with dpkg, checks
// what it put in place, verifies the systemd unit, and purges it.
func TestDebianPackage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("installing a package needs root (CI runs as root)")
	}
	if runtime.GOARCH != "amd64" {
		t.Skip("the package test installs the amd64 package; this is " + runtime.GOARCH)
	}
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Fatal("dpkg is missing: this test runs on Debian")
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "mamoru").Output(); err == nil && strings.Contains(string(out), "installed") {
		t.Fatal("a mamoru package is already installed here; the test would replace it")
	}
	must := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %q: %v\n%s", name, args, err, out)
		}
		return string(out)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("no go on PATH to build the package's binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "mamoru")
	must(goBin, "build", "-trimpath", "-buildmode=pie", "-ldflags", "-s -w", "-o", bin, ".") // as make build does
	deb := filepath.Join(dir, "mamoru_0~test_amd64.deb")
	must("debian/build-deb", "amd64", bin, "0~test", deb)
	// Lintian-clean: no error or warning.
	if _, err := exec.LookPath("lintian"); err != nil {
		t.Fatal("lintian is missing (.ci/install-deps installs it)")
	}
	out, _ := exec.Command("lintian", "--tag-display-limit", "0", deb).CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "E: ") || strings.HasPrefix(line, "W: ") {
			t.Errorf("lintian: %s", line)
		}
	}

	t.Cleanup(func() { exec.Command("dpkg", "--purge", "mamoru").Run() })
	must("dpkg", "-i", deb)
	for path, mode := range map[string]os.FileMode{
		"/usr/bin/mamoru": 0o755, "/lib/systemd/system/mamoru.service": 0o644, "/lib/systemd/system-generators/mamoru-memory-max": 0o755, "/etc/mamoru/mamoru.toml": 0o640, "/var/lib/mamoru": 0o750 | os.ModeDir,
	} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode() != mode {
			t.Errorf("%s: %v, mode %v; want mode %v", path, err, fi.Mode(), mode)
		}
	}
	u, err := user.Lookup("mamoru")
	if err != nil {
		t.Fatal("no mamoru user after install")
	}
	groups, _ := u.GroupIds()
	for _, g := range []string{"gpio", "audio", "video"} {
		gr, err := user.LookupGroup(g)
		if err != nil || !strings.Contains(" "+strings.Join(groups, " ")+" ", " "+gr.Gid+" ") {
			t.Errorf("the mamoru user is not in group %s", g)
		}
	}
	if conf := must("dpkg-query", "-W", "-f=${Conffiles}", "mamoru"); !strings.Contains(conf, "/etc/mamoru/mamoru.toml") {
		t.Errorf("conffiles: %q", conf)
	}
	// The packaged configuration is valid as shipped, on the GPIO counter.
	if out, err := exec.Command("/usr/bin/mamoru", "policy", "render", "--config", "/etc/mamoru/mamoru.toml", "--out", dir).CombinedOutput(); !strings.Contains(string(out), "policy.operator_name") {
		t.Errorf("the shipped configuration: %v %s", err, out)
	}
	if out, err := exec.Command("systemd-analyze", "verify", "/lib/systemd/system/mamoru.service").CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	unit, _ := os.ReadFile("/lib/systemd/system/mamoru.service")
	for _, want := range []string{"Type=notify", "WatchdogSec=", "Restart=always", "NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=/var/lib/mamoru", "DeviceAllow=char-gpiochip", "DeviceAllow=char-alsa", "DeviceAllow=char-video4linux", "DeviceAllow=char-dma_heap"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("the unit lacks %s", want)
		}
	}

	// The generator sets MemoryMax from the configuration's ring; on a
	// configuration mamoru refuses it writes nothing and the unit's own
	// MemoryMax stands.
	gen := filepath.Join(dir, "generator")
	shipped, _ := os.ReadFile("/etc/mamoru/mamoru.toml")
	if err := os.WriteFile("/etc/mamoru/mamoru.toml", append(shipped, "\n[capture]\npost_seconds = 0\n"...), 0o640); err != nil {
		t.Fatal(err)
	}
	must("/lib/systemd/system-generators/mamoru-memory-max", gen, gen+".early", gen+".late")
	if _, err := os.Stat(filepath.Join(gen, "mamoru.service.d")); !os.IsNotExist(err) {
		t.Errorf("the generator wrote a drop-in for a configuration mamoru refuses (%v)", err)
	}
	conf := fmt.Sprintf(validConfig, t.TempDir())
	conf = strings.Replace(conf, "[capture]\n", "[capture]\nring_max_mb = 64\n", 1)
	if err := os.WriteFile("/etc/mamoru/mamoru.toml", []byte(conf), 0o640); err != nil {
		t.Fatal(err)
	}
	must("/lib/systemd/system-generators/mamoru-memory-max", gen, gen+".early", gen+".late")
	if b, err := os.ReadFile(filepath.Join(gen, "mamoru.service.d", "50-memory-max.conf")); err != nil || !strings.Contains(string(b), "\nMemoryMax=320M\n") {
		t.Errorf("the generator on ring_max_mb = 64: %q, %v; want MemoryMax=320M", b, err)
	}

	must("dpkg", "--purge", "mamoru")
	for _, path := range []string{"/usr/bin/mamoru", "/lib/systemd/system/mamoru.service", "/etc/mamoru/mamoru.toml", "/var/lib/mamoru"} {
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("%s is still there after purge (%v)", path, err)
		}
	}
}
