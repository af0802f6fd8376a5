package config

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mamoru/signing"
)

var (
	pubA = signing.FormatPublicKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)).Public().(ed25519.PublicKey))
	pubB = signing.FormatPublicKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32)).Public().(ed25519.PublicKey))
)

const managerStorage = "[storage]\nendpoint = \"s3.example.com\"\nbucket = \"clips\"\n\n"

// A manager's keyring: several keys per device, not_before as a TOML
// time or a string, and every mistake named by file, line and key.
func TestKeyring(t *testing.T) {
	env := []string{EnvAccessKey + "=a", EnvSecretKey + "=b"}
	good := managerStorage + `[[keyring]]
store = "shop-1"
device = "counter-1"
public_key = "` + pubA + `"

[[keyring]] # re-provisioned
store = "shop-1"
device = "counter-1"
public_key = "` + pubB + `"
not_before = "2026-12-01T00:00:00+09:00"
`
	path := filepath.Join(t.TempDir(), "manager.toml")
	os.WriteFile(path, []byte(good), 0o644)
	mc, err := LoadManager(path, env)
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 12, 1, 0, 0, 0, 0, time.FixedZone("", 9*3600))
	if len(mc.Keyring) != 2 || mc.Keyring[0].Name() != "shop-1/counter-1" || !mc.Keyring[0].NotBefore.IsZero() ||
		!mc.Keyring[1].NotBefore.Equal(want) || signing.FormatPublicKey(mc.Keyring[1].Key) != pubB {
		t.Errorf("keyring = %+v, want two keys of shop-1/counter-1, the second from %v", mc.Keyring, want)
	}
	if k, err := LoadKeyring(path); err != nil || len(k) != 2 {
		t.Errorf("LoadKeyring = %v, %v; want the two keys", k, err)
	}
	// A TOML offset date-time serves as well as a string.
	os.WriteFile(path, []byte(strings.Replace(good, `"2026-12-01T00:00:00+09:00"`, `2026-12-01T00:00:00+09:00`, 1)), 0o644)
	if k, err := LoadKeyring(path); err != nil || !k[1].NotBefore.Equal(want) {
		t.Errorf("not_before as a TOML time: %v, %v", k, err)
	}

	for _, tc := range []struct {
		name, src, want string
	}{
		{"no store", "[[keyring]]\ndevice = \"counter-1\"\npublic_key = \"" + pubA + "\"\n", "manager.toml:5: 'keyring.store' must be"},
		{"a path as device", "[[keyring]]\nstore = \"shop-1\"\ndevice = \"../x\"\npublic_key = \"" + pubA + "\"\n", `manager.toml:7: 'keyring.device' must be the device's id`},
		{"no key", "[[keyring]]\nstore = \"shop-1\"\ndevice = \"c\"\n", "manager.toml:5: 'keyring.public_key' is required"},
		{"a short key", "[[keyring]]\nstore = \"s\"\ndevice = \"c\"\npublic_key = \"mamoru-ed25519:AAAA\"\n", "manager.toml:8: 'keyring.public_key' public key: want"},
		{"a file, not a key", "[[keyring]]\nstore = \"s\"\ndevice = \"c\"\npublic_key = \"/etc/passwd\"\n", "manager.toml:8: 'keyring.public_key' public key: want"},
		{"one key for two devices", "[[keyring]]\nstore = \"s\"\ndevice = \"c\"\npublic_key = \"" + pubA + "\"\n[[keyring]]\nstore = \"s\"\ndevice = \"d\"\npublic_key = \"" + pubA + "\"\n", "manager.toml:12: 'keyring.public_key' is already in the keyring (line 8)"},
		{"a time without offset", "[[keyring]]\nstore = \"s\"\ndevice = \"c\"\npublic_key = \"" + pubA + "\"\nnot_before = \"2026-12-01\"\n", "manager.toml:9: 'keyring.not_before' must be a time with its offset"},
		{"a local TOML time", "[[keyring]]\nstore = \"s\"\ndevice = \"c\"\npublic_key = \"" + pubA + "\"\nnot_before = 2026-12-01T00:00:00\n", "manager.toml:9: 'keyring.not_before' must be a time with its offset"},
		{"a misspelt key", "[[keyring]]\nstore = \"s\"\ndevice = \"c\"\npublic_key = \"" + pubA + "\"\nnot_befor = \"2026-12-01T00:00:00Z\"\n", "manager.toml:9: 'keyring.not_befor' is not a known key"},
	} {
		os.WriteFile(path, []byte(managerStorage+tc.src), 0o644)
		_, err := LoadManager(path, env)
		var e *Error
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &e) {
			t.Errorf("%s: LoadManager error %v, want %q", tc.name, err, tc.want)
		}
		if _, kerr := LoadKeyring(path); kerr == nil || kerr.Error() != err.Error() {
			t.Errorf("%s: LoadKeyring error %v, want LoadManager's %v", tc.name, kerr, err)
		}
	}
}

// The manager's example parses, keys and all.
func TestManagerExample(t *testing.T) {
	// Its key files are a manager's, not here: only they may be missing.
	_, err := LoadManager("../docs/manager.example.toml", nil)
	var errs Errors
	if err != nil && !errors.As(err, &errs) {
		t.Fatal(err)
	}
	for _, e := range errs {
		if e.Key != "storage.access_key_file" && e.Key != "storage.secret_key_file" {
			t.Errorf("manager.example.toml: %v", e)
		}
	}
	k, err := LoadKeyring("../docs/manager.example.toml")
	if err != nil || len(k) != 2 || k[1].NotBefore.IsZero() {
		t.Errorf("the example's keyring: %+v, %v; want two keys, the second with not_before", k, err)
	}
}

// FuzzKeyring: whatever a manager's file holds, parseKeyring does not
// panic, every error names the file and a keyring key, and every key it
// accepts is a well-formed entry.
func FuzzKeyring(f *testing.F) {
	f.Add([]byte("[[keyring]]\nstore = \"s\"\ndevice = \"c\"\npublic_key = \"" + pubA + "\"\nnot_before = 2026-12-01T00:00:00+09:00\n"))
	f.Add([]byte("[[keyring]]\nstore = 1\n"))
	f.Add([]byte("keyring = 3\n"))
	f.Add([]byte("[keyring]\nstore = \"s\"\n"))
	f.Add([]byte("[[keyring]]\nnot_before = [1]\n[[keyring]]\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		ring, errs := parseKeyring("m.toml", src)
		for _, e := range errs {
			if e.File != "m.toml" {
				t.Fatalf("error %v does not name the file", e)
			}
		}
		if len(errs) > 0 {
			return
		}
		for _, e := range ring {
			if !ValidName(e.Store) || !ValidName(e.Device) || len(e.Key) != ed25519.PublicKeySize {
				t.Fatalf("accepted a malformed entry %+v from %q", e, src)
			}
		}
	})
}
