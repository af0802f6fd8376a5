package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mamoru/signing"
)

// withSecrets is minimal with a bucket, its key files and a signing key
// file: line 5 is signing_key_file, 9 access_key_file, 10 secret_key_file.
func withSecrets(signingKey, access, secret string) string {
	return fmt.Sprintf("[device]\nid = \"counter-1\"\nstore = \"shibuya\"\nstate_dir = \"/var/lib/mamoru\"\n"+
		"signing_key_file = %q\n"+
		"[storage]\nendpoint = \"s3.example.com\"\nbucket = \"clips\"\naccess_key_file = %q\nsecret_key_file = %q\n",
		signingKey, access, secret)
}

// The commands that never talk to the bucket load with Load or Parse,
// which must not read a secret: a person who may not read the device's
// key files can still see its state. LoadSecrets and LoadWithSecrets
// refuse the same file, naming the key and its line.
func TestSecretsAreReadApart(t *testing.T) {
	dir := t.TempDir()
	sk := filepath.Join(dir, "signing.key")
	if _, err := signing.NewKey(sk); err != nil {
		t.Fatal(err)
	}
	looseSK := filepath.Join(dir, "loose-signing.key")
	if _, err := signing.NewKey(looseSK); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(looseSK, 0o644); err != nil {
		t.Fatal(err)
	}
	access, secret := keyFile(t, 0o600, "AKIA"), keyFile(t, 0o600, "s3cr3t")
	loose := keyFile(t, 0o644, "s3cr3t")
	missing := filepath.Join(dir, "missing")

	for _, tc := range []struct {
		name                       string
		signingKey, access, secret string
		want                       []string // each error line, in order
		notExist                   bool     // errors.Is(err, fs.ErrNotExist)
	}{
		{name: "access key file missing", signingKey: sk, access: missing, secret: secret,
			want:     []string{"m.toml:9: 'storage.access_key_file' cannot be read: no such file or directory"},
			notExist: true},
		{name: "secret key file readable by others", signingKey: sk, access: access, secret: loose,
			want: []string{fmt.Sprintf("m.toml:10: 'storage.secret_key_file' %s must have mode 0600 or 0400 so only its owner can read it (it has 0644); run: chmod 600 %s", loose, loose)}},
		{name: "signing key missing", signingKey: missing, access: access, secret: secret,
			want: []string{"m.toml:5: 'device.signing_key_file' cannot be read: no such file or directory"}},
		{name: "signing key readable by others", signingKey: looseSK, access: access, secret: secret,
			want: []string{fmt.Sprintf("m.toml:5: 'device.signing_key_file' %s must have mode 0600 or 0400 so only its owner can read it (it has 0644); run: chmod 600 %s", looseSK, looseSK)}},
		{name: "everything missing", signingKey: missing, access: missing, secret: missing,
			want: []string{
				"m.toml:5: 'device.signing_key_file' cannot be read: no such file or directory",
				"m.toml:9: 'storage.access_key_file' cannot be read: no such file or directory",
				"m.toml:10: 'storage.secret_key_file' cannot be read: no such file or directory",
			},
			notExist: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := withSecrets(tc.signingKey, tc.access, tc.secret)
			path := filepath.Join(t.TempDir(), "m.toml")
			if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := Parse("m.toml", []byte(src), nil)
			if err != nil {
				t.Fatalf("Parse: %v; want no error: it reads no secret", err)
			}
			if _, err := Load(path, nil); err != nil {
				t.Fatalf("Load: %v; want no error: it reads no secret", err)
			}
			want := strings.Join(tc.want, "\n")
			err = c.LoadSecrets(nil)
			if err == nil || err.Error() != want {
				t.Errorf("LoadSecrets: got\n%v\nwant\n%s", err, want)
			}
			if got := errors.Is(err, fs.ErrNotExist); got != tc.notExist {
				t.Errorf("errors.Is(err, fs.ErrNotExist) = %v, want %v", got, tc.notExist)
			}
			_, err = LoadWithSecrets(path, nil)
			if want := strings.ReplaceAll(want, "m.toml:", path+":"); err == nil || err.Error() != want {
				t.Errorf("LoadWithSecrets: got\n%v\nwant\n%s", err, want)
			}
		})
	}

	c, err := LoadWithSecrets(writeFile(t, withSecrets(sk, access, secret)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Device.SigningKey.Valid() || c.Storage.AccessKey.Reveal() != "AKIA" || c.Storage.SecretKey.Reveal() != "s3cr3t" {
		t.Errorf("LoadWithSecrets read signing key valid=%v, access %q, secret %q; want the key and AKIA, s3cr3t",
			c.Device.SigningKey.Valid(), c.Storage.AccessKey.Reveal(), c.Storage.SecretKey.Reveal())
	}
	c, err = Load(writeFile(t, withSecrets(sk, access, secret)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Device.SigningKey.Valid() || c.Storage.AccessKey != "" || c.Storage.SecretKey != "" {
		t.Errorf("Load read a secret: signing key valid=%v, access key set=%v, secret key set=%v; want none",
			c.Device.SigningKey.Valid(), c.Storage.AccessKey != "", c.Storage.SecretKey != "")
	}
}

// check and run report every problem at once: a bad value and a key file
// that cannot be read, in file order.
func TestLoadWithSecretsReportsEverything(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	src := strings.Replace(withSecrets("", missing, keyFile(t, 0o600, "s")), "[storage]", "[capture]\npost_seconds = 0\n[storage]", 1)
	path := writeFile(t, src)
	_, err := LoadWithSecrets(path, nil)
	want := strings.Join([]string{
		path + ":7: 'capture.post_seconds' must be between 1 and 600 (got 0)",
		path + ":11: 'storage.access_key_file' cannot be read: no such file or directory",
	}, "\n")
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
	// A key set by the environment is named by its variable.
	env := []string{"MAMORU_STORAGE_ACCESS_KEY_FILE=" + missing, "MAMORU_CAPTURE_POST_SECONDS=5"}
	_, err = LoadWithSecrets(writeFile(t, withSecrets("", keyFile(t, 0o600, "a"), keyFile(t, 0o600, "s"))), env)
	if want := "MAMORU_STORAGE_ACCESS_KEY_FILE: 'storage.access_key_file' cannot be read: no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
}

func writeFile(t *testing.T, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.toml")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// A key file its owner alone may read passes whether it is 0600 or 0400
// (an installer may make it read-only); any group or other bit is refused,
// for the signing key and both S3 key files alike.
func TestKeyFileModes(t *testing.T) {
	for _, tc := range []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o600, true}, {0o400, true},
		{0o640, false}, {0o440, false}, {0o604, false}, {0o660, false},
	} {
		t.Run(fmt.Sprintf("%#o", tc.mode), func(t *testing.T) {
			sk := filepath.Join(t.TempDir(), "signing.key")
			if _, err := signing.NewKey(sk); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(sk, tc.mode); err != nil {
				t.Fatal(err)
			}
			access, secret := keyFile(t, tc.mode, "AKIA"), keyFile(t, tc.mode, "s3cr3t")
			_, err := LoadWithSecrets(writeFile(t, withSecrets(sk, access, secret)), nil)
			if tc.ok {
				if err != nil {
					t.Errorf("key files of mode %#o: %v; want them read", tc.mode, err)
				}
				return
			}
			for _, key := range []string{"'device.signing_key_file'", "'storage.access_key_file'", "'storage.secret_key_file'"} {
				if err == nil || !strings.Contains(err.Error(), key+" ") || !strings.Contains(err.Error(), fmt.Sprintf("(it has %#o)", tc.mode)) {
					t.Errorf("key files of mode %#o: %v; want %s refused, naming the mode", tc.mode, err, key)
				}
			}
		})
	}
}
