// Package signing holds a device's ed25519 key: it makes one (written with
// mode 0600 by `mamoru provision`), reads it, signs manifests with it and
// prints and parses public keys as `mamoru-ed25519:<base64>`. A Key never
// prints its secret. A manager's Keyring holds the devices' public keys,
// each for one store and device, and says which of them signed a manifest.
package signing

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// PublicKeyPrefix starts a device's public key as `mamoru provision` prints
// it and `mamoru clips verify --pubkey` takes it.
const PublicKeyPrefix = "mamoru-ed25519:"

// NewKey makes a device's ed25519 key, writes it to path with mode
// 0600, and returns its public key as text. The file appears whole, synced
// to the disk, or not at all. If path exists, NewKey leaves it as it is
// and fails with an error matching fs.ErrExist.
func NewKey(path string) (string, error) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", err
	}
	// The key reaches its name whole or not at all: written and synced
	// under a temporary name first, so that a power cut during a first
	// boot's keygen leaves no empty key file behind. The link, unlike a
	// rename, fails if the name exists: a key that exists is never
	// replaced.
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("signing key: %w", err)
	}
	defer os.Remove(f.Name())
	err = pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("signing key: write %s: %w", f.Name(), err)
	}
	if err := os.Link(f.Name(), path); err != nil {
		return "", fmt.Errorf("signing key: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		return "", fmt.Errorf("signing key: %w", err)
	}
	d, err := os.Open(dir)
	if err == nil {
		err = d.Sync()
		d.Close()
	}
	if err != nil {
		return "", fmt.Errorf("signing key: sync %s: %w", dir, err)
	}
	return FormatPublicKey(pub), nil
}

// FormatPublicKey writes a public key as text.
func FormatPublicKey(pub ed25519.PublicKey) string {
	return PublicKeyPrefix + base64.StdEncoding.EncodeToString(pub)
}

// ParsePublicKey reads a public key as FormatPublicKey writes it, or from a
// file holding that text.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	if !strings.HasPrefix(s, PublicKeyPrefix) {
		b, err := os.ReadFile(s)
		if err != nil {
			return nil, fmt.Errorf("public key: want %q followed by base64, or a file holding that: %v", PublicKeyPrefix, err)
		}
		s = strings.TrimSpace(string(b))
	}
	return ParsePublicKeyText(s)
}

// ParsePublicKeyText reads a public key as FormatPublicKey writes it, and
// nothing else.
func ParsePublicKeyText(s string) (ed25519.PublicKey, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, PublicKeyPrefix))
	if err != nil || len(raw) != ed25519.PublicKeySize || !strings.HasPrefix(s, PublicKeyPrefix) {
		return nil, fmt.Errorf("public key: want %q followed by the base64 of 32 bytes", PublicKeyPrefix)
	}
	return ed25519.PublicKey(raw), nil
}

// Key is a device's signing key. It prints as "[redacted]" wherever it
// ends up. The zero Key signs nothing.
type Key struct{ k ed25519.PrivateKey }

func (Key) String() string               { return "[redacted]" }
func (Key) GoString() string             { return `"[redacted]"` }
func (Key) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// Valid reports whether there is a key.
func (k Key) Valid() bool { return k.k != nil }

// Sign signs msg.
func (k Key) Sign(msg []byte) []byte { return ed25519.Sign(k.k, msg) }

// Public returns the public key, as text.
func (k Key) Public() string { return FormatPublicKey(k.k.Public().(ed25519.PublicKey)) }

// OwnerOnly refuses a key file that its group or others may read or
// write. Modes 0600 and 0400 pass: an installer who makes a key read-only
// loses nothing.
func OwnerOnly(path string, fi os.FileInfo) error {
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s must have mode 0600 or 0400 so only its owner can read it (it has %#o); run: chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	return nil
}

// ReadKey reads a device's key, which must be readable by its owner
// only.
func ReadKey(path string) (Key, error) {
	k, err := readKey(path)
	return Key{k}, err
}

func readKey(path string) (ed25519.PrivateKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("cannot be read: %v", errors.Unwrap(err))
	}
	if err := OwnerOnly(path, fi); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot be read: %v", errors.Unwrap(err))
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s holds no PEM PRIVATE KEY", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s holds a %T, not an ed25519 key", path, k)
	}
	return key, nil
}
