package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// maxExposure is the highest `systemd-analyze security` exposure the unit
// may have. Measured with systemd 252: 7.5 before the hardening of issue
// 14, 2.0 after, and 2.0 with SystemCallErrorNumber=EPERM (which it does
// not score: the filter allows the same calls); what remains is the network the uploads need, the
// devices, and what capture may need (realtime, W^X, /proc subset) that
// only a Pi can show is safe to take away.
const maxExposure = 2.5

// outsideSystemService are the system calls mamoru is known to make
// outside @system-service, each with what mamoru does when the call fails.
var outsideSystemService = map[string]string{
	"adjtimex": "clock.Synced takes for timesyncd's mark",
}

// syscallSet returns the system calls in a SystemCallFilter= entry: a
// call's own name, or the members of a set (@system-service), with the
// sets it includes expanded, as systemd-analyze syscall-filter lists them.
func syscallSet(t *testing.T, name string) []string {
	t.Helper()
	if !strings.HasPrefix(name, "@") {
		return []string{name}
	}
	out, err := exec.Command("systemd-analyze", "syscall-filter", name).Output()
	if err != nil {
		t.Fatalf("systemd-analyze syscall-filter %s: %v", name, err)
	}
	var calls []string
	for _, line := range strings.Split(string(out), "\n")[1:] {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "@"):
			calls = append(calls, syscallSet(t, line)...)
		default:
			calls = append(calls, line)
		}
	}
	return calls
}

// systemdUnit copies the packaged unit into a temporary directory with
// its ExecStart pointed at an executable that exists here (this test's own
// binary), so systemd-analyze verify judges the unit and not the absence
// of /usr/bin/mamoru. It skips when systemd-analyze is missing.
func systemdUnit(t *testing.T) (dir, unit string) {
	t.Helper()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze is missing (Debian package systemd; .ci/install-deps installs it): the unit's settings cannot be checked here")
	}
	src, err := os.ReadFile("debian/mamoru.service")
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	unit = filepath.Join(dir, "mamoru.service")
	if err := os.WriteFile(unit, []byte(strings.ReplaceAll(string(src), "ExecStart=/usr/bin/mamoru ", "ExecStart="+self+" ")), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, unit
}

// The unit carries the hardening of issue 14 (item 9), systemd accepts
// every line of it, and its exposure stays under maxExposure.
func TestUnitHardening(t *testing.T) {
	dir, unit := systemdUnit(t)
	src, _ := os.ReadFile(unit)
	for _, want := range []string{
		"UMask=0027", "MemoryMax=", "CapabilityBoundingSet=\n", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK\n",
		"SystemCallFilter=@system-service\n", "SystemCallErrorNumber=EPERM\n", "SystemCallArchitectures=native\n", "ProtectKernelLogs=yes\n", "ProtectClock=yes\n",
		"ProtectHostname=yes\n", "RestrictNamespaces=yes\n", "ProtectProc=invisible\n",
		// What capture, the button and the indicator need stays.
		"SupplementaryGroups=gpio audio video\n", "DeviceAllow=char-gpiochip rw\n", "DeviceAllow=char-alsa rw\n",
		"DeviceAllow=char-video4linux rw\n", "DeviceAllow=char-media rw\n", "DeviceAllow=char-dma_heap rw\n",
	} {
		if !strings.Contains(string(src), "\n"+want) {
			t.Errorf("the unit lacks the line %q", strings.TrimSpace(want))
		}
	}

	cmd := exec.Command("systemd-analyze", "verify", unit)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	// A call the filter does not allow kills the process with SIGSYS
	// unless SystemCallErrorNumber= makes it fail instead, and only then
	// can mamoru's fallback run.
	allowed := map[string]bool{}
	for _, line := range strings.Split(string(src), "\n") {
		if list, ok := strings.CutPrefix(line, "SystemCallFilter="); ok && !strings.HasPrefix(list, "~") {
			for _, name := range strings.Fields(list) {
				for _, call := range syscallSet(t, name) {
					allowed[call] = true
				}
			}
		}
	}
	if len(allowed) == 0 {
		t.Fatal("no system call allowed by the unit's SystemCallFilter= lines")
	}
	errno := regexp.MustCompile(`\nSystemCallErrorNumber=EPERM\n`).Match(src)
	for call, fallback := range outsideSystemService {
		if !allowed[call] && !errno {
			t.Errorf("mamoru calls %s, which the unit's SystemCallFilter= does not allow, and no SystemCallErrorNumber= turns the SIGSYS into the EPERM that %s", call, fallback)
		}
	}

	// systemd reads each setting as meant, not just as text. (UMask=0027
	// still counts as exposed: only 0077 would satisfy it, and the mamoru
	// group reads the state on purpose. @system-service keeps some of
	// @privileged, chown among them.)
	out, err := exec.Command("systemd-analyze", "security", "--offline=true", "--json=short", unit).Output()
	if err != nil {
		t.Fatalf("systemd-analyze security --json: %v\n%s", err, out)
	}
	var checks []struct {
		Set  bool   `json:"set"`
		Name string `json:"name"`
	}
	if err := json.Unmarshal(out, &checks); err != nil {
		t.Fatalf("systemd-analyze security --json: %v\n%s", err, out)
	}
	set := map[string]bool{}
	for _, c := range checks {
		set[c.Name] = c.Set
	}
	for _, name := range []string{
		"CapabilityBoundingSet=~CAP_SYS_ADMIN", "CapabilityBoundingSet=~CAP_NET_ADMIN", "CapabilityBoundingSet=~CAP_SYS_PTRACE",
		"RestrictAddressFamilies=~AF_PACKET", "RestrictAddressFamilies=~…", "SystemCallFilter=~@mount", "SystemCallFilter=~@module",
		"SystemCallFilter=~@debug", "SystemCallArchitectures=", "ProtectKernelLogs=", "ProtectClock=", "ProtectHostname=",
		"RestrictNamespaces=~user", "RestrictNamespaces=~net", "RestrictNamespaces=~mnt", "ProtectProc=",
	} {
		if got, ok := set[name]; !ok || !got {
			t.Errorf("systemd-analyze security: %s is not satisfied (listed: %v)", name, ok)
		}
	}

	out, err = exec.Command("systemd-analyze", "security", "--offline=true", unit).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for mamoru\.service: (\d+\.\d)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security: %v; no overall exposure in\n%s", err, out)
	}
	if score, _ := strconv.ParseFloat(string(m[1]), 64); score > maxExposure {
		t.Errorf("systemd-analyze security: exposure %.1f, want at most %.1f", score, maxExposure)
	}
}

// MemoryMax follows capture.ring_max_mb: `mamoru check --unit-dropin`
// writes the drop-in the package's generator installs, without reading a
// key file (a generator may run before they are in place), and systemd
// accepts the unit with it.
func TestMemoryMaxFollowsRing(t *testing.T) {
	state := t.TempDir()
	missing := filepath.Join(t.TempDir(), "no-such-key")
	for _, tc := range []struct {
		ringMB int
		want   string
	}{
		{100, "MemoryMax=356M"},
		{600, "MemoryMax=856M"},
	} {
		src := strings.Replace(fmt.Sprintf(validConfig, state), "[capture]\n", fmt.Sprintf("[capture]\nring_max_mb = %d\n", tc.ringMB), 1) +
			fmt.Sprintf("\n[storage]\nendpoint = \"127.0.0.1:9000\"\nbucket = \"clips\"\nsecure = false\naccess_key_file = %q\nsecret_key_file = %q\n", missing, missing)
		cfg := writeConfig(t, t.TempDir(), "mamoru.toml", src)
		gen := t.TempDir()
		code, out, errOut := runCmd(t, "check", "--config", cfg, "--unit-dropin", gen)
		if code != 0 {
			t.Fatalf("check --unit-dropin with ring_max_mb = %d: exit %d\n%s%s", tc.ringMB, code, out, errOut)
		}
		b, err := os.ReadFile(filepath.Join(gen, "mamoru.service.d", "50-memory-max.conf"))
		if err != nil || !strings.Contains(string(b), "[Service]\n"+tc.want+"\n") {
			t.Errorf("ring_max_mb = %d: drop-in %q, %v; want %s", tc.ringMB, b, err, tc.want)
		}
		if !strings.Contains(out, tc.want) {
			t.Errorf("ring_max_mb = %d: check says %q; want it to name %s", tc.ringMB, out, tc.want)
		}
		// Without --unit-dropin, check still reads the key files and refuses.
		if code, _, errOut := runCmd(t, "check", "--config", cfg); code != 2 || !strings.Contains(errOut, "'storage.access_key_file' cannot be read") {
			t.Errorf("check without --unit-dropin, key files missing: exit %d, %q; want 2, naming the key file", code, errOut)
		}
		if _, err := exec.LookPath("systemd-analyze"); err == nil {
			dir, unit := systemdUnit(t)
			os.CopyFS(dir, os.DirFS(gen))
			cmd := exec.Command("systemd-analyze", "verify", unit)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
				t.Errorf("systemd-analyze verify with the drop-in: %v\n%s", err, out)
			}
		}
	}
}
