package signing

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// openssl reads the PEM, and its DER's sha256sum is the fingerprint.
func TestPublicKeyPEMAndFingerprint(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	p := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(p, PublicKeyPEM(pub), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("bash", "-c", "openssl pkey -pubin -in "+p+" -noout && openssl pkey -pubin -in "+p+" -outform DER | sha256sum").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	if got, want := strings.TrimSpace(string(out)), Fingerprint(pub)+"  -"; got != want {
		t.Errorf("openssl and sha256sum print %q, want %q", got, want)
	}
	if back, err := ParsePublicKeyPEM(PublicKeyPEM(pub)); err != nil || !back.Equal(pub) {
		t.Errorf("ParsePublicKeyPEM(PublicKeyPEM(pub)) = %x, %v; want pub", back, err)
	}
}

func FuzzParsePublicKeyPEM(f *testing.F) {
	f.Add(PublicKeyPEM(make(ed25519.PublicKey, ed25519.PublicKeySize)))
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if k, err := ParsePublicKeyPEM(b); err == nil && len(k) != ed25519.PublicKeySize {
			t.Errorf("a key of %d bytes", len(k))
		}
	})
}
