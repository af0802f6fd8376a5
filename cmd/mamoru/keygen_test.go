package main

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"mamoru/config"
	"mamoru/signing"
)

// keygen makes the signing key on the device once, gives it to the
// recorder's user, prints its public key and writes it where asked; run
// again it keeps the key; it refuses a key file others may read.
func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "signing.key")
	src := strings.Replace(fmt.Sprintf(validConfig, t.TempDir()), "\n\n[capture]", fmt.Sprintf("\nsigning_key_file = %q\n\n[capture]", key), 1)
	cfg := writeConfig(t, dir, "mamoru.toml", src)
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	pubFile := filepath.Join(t.TempDir(), "mamoru-public-key.txt")

	code, out, errOut := runCmd(t, "keygen", "--config", cfg, "--owner", me.Username, "--public-out", pubFile)
	if code != 0 {
		t.Fatalf("keygen: exit %d: %s", code, errOut)
	}
	k, err := signing.ReadKey(key)
	if err != nil {
		t.Fatalf("keygen made no key the recorder can read: %v", err)
	}
	fi, _ := os.Stat(key)
	if fi.Mode().Perm() != 0o600 || fmt.Sprint(fi.Sys().(*syscall.Stat_t).Uid) != me.Uid {
		t.Errorf("the key has mode %v, owner %d; want 0600, owner %s", fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Uid, me.Uid)
	}
	want := fmt.Sprintf("store = \"test-store\"\ndevice = \"test-counter\"\npublic_key = %q\n", k.Public())
	if !strings.Contains(out, want) || !strings.Contains(out, "made on the device") {
		t.Errorf("keygen printed %q; want it to end with\n%s", out, want)
	}
	if b, err := os.ReadFile(pubFile); err != nil || string(b) != out {
		t.Errorf("--public-out wrote %q, %v; want what keygen printed", b, err)
	}
	// The managers paste it as it is: it must be a keyring entry.
	if ring, err := config.LoadKeyring(pubFile); err != nil || len(ring) != 1 {
		t.Errorf("keygen's output is not one [[keyring]] entry: %v, %d entries", err, len(ring))
	}

	// Again, as a first boot that failed later runs again: the same key.
	code, out, errOut = runCmd(t, "keygen", "--config", cfg)
	if code != 0 || !strings.Contains(out, want) || !strings.Contains(out, "kept: it existed") {
		t.Errorf("keygen again: exit %d, %q %s; want the same key kept", code, out, errOut)
	}
	os.Chmod(key, 0o644)
	if code, _, errOut := runCmd(t, "keygen", "--config", cfg); code != 1 || !strings.Contains(errOut, "'device.signing_key_file' "+key+": "+key+" must have mode 0600 or 0400") {
		t.Errorf("keygen on a key others may read: exit %d, %q; want 1, naming the key file and its mode", code, errOut)
	}

	// A key file a power cut left empty or half written held no key, so
	// its public key was never printed: it is replaced. One holding
	// something else is still refused.
	good, _ := os.ReadFile(key)
	for _, tc := range []struct {
		name string
		src  []byte
		code int
		out  string
	}{
		{"empty", nil, 0, key + " held no key (a write cut short): replaced with a new one"},
		{"cut in the middle", good[:len(good)/2], 0, key + " held no key (a write cut short): replaced with a new one"},
		{"another PEM block", []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), 1, key + " holds no PEM PRIVATE KEY"},
	} {
		os.Remove(key)
		os.WriteFile(key, tc.src, 0o600)
		code, out, errOut := runCmd(t, "keygen", "--config", cfg)
		if code != tc.code || !strings.Contains(out+errOut, tc.out) {
			t.Errorf("keygen on a key file %s: exit %d, %q %q; want %d and %q", tc.name, code, out, errOut, tc.code, tc.out)
			continue
		}
		if tc.code != 0 {
			continue
		}
		k, err := signing.ReadKey(key)
		if err != nil || !strings.Contains(out, fmt.Sprintf("public_key = %q", k.Public())) {
			t.Errorf("keygen on a key file %s: the new key %v, %v; printed %q", tc.name, k.Public(), err, out)
		}
	}

	// A device configured to sign nothing gets no key.
	bare := writeConfig(t, t.TempDir(), "mamoru.toml", fmt.Sprintf(validConfig, t.TempDir()))
	if code, out, _ := runCmd(t, "keygen", "--config", bare); code != 0 || !strings.Contains(out, "signs nothing") {
		t.Errorf("keygen without device.signing_key_file: exit %d, %q", code, out)
	}
}

// provision --no-key writes the configuration for a card made with make
// image: it names the key file, which the device makes at first boot, and
// no key is written on this machine.
func TestProvisionNoKey(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := runCmd(t, "provision", "--store", "shinjuku", "--device", "counter-7", "--out", dir, "--no-key")
	if code != 0 || !strings.Contains(out, "makes its own at first boot") {
		t.Fatalf("provision --no-key: exit %d, %q %s", code, out, errOut)
	}
	for _, name := range []string{"signing.key", "signing.pub"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("provision --no-key wrote %s (%v)", name, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "mamoru.toml")); !strings.Contains(string(b), "signing_key_file = \"/etc/mamoru/signing.key\"\n") {
		t.Errorf("provision --no-key: the configuration names no signing key file:\n%s", b)
	}
}
