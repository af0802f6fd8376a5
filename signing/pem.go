package signing

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
)

// PublicKeyPEM is pub as a PEM "PUBLIC KEY" block (PKIX
// SubjectPublicKeyInfo), the form openssl and other standard tools read.
func PublicKeyPEM(pub ed25519.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		// An ed25519.PublicKey of any length marshals; only a nil one could
		// fail, and no caller has one.
		panic("signing: " + err.Error())
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// Fingerprint is the SHA-256 of pub's PKIX DER, in lower-case hex: what
// `openssl pkey -pubin -in KEY.pem -outform DER | sha256sum` prints before
// its " -". `mamoru provision` prints it beside the keyring entry so that
// a shop can keep it apart from any package, and a hand-over package's
// reader can compare it with the key the package holds.
func Fingerprint(pub ed25519.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic("signing: " + err.Error())
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// ParsePublicKeyPEM reads an ed25519 public key as PublicKeyPEM writes it
// (a PEM "PUBLIC KEY" block, PKIX), as a hand-over package carries it.
func ParsePublicKeyPEM(b []byte) (ed25519.PublicKey, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New("public key: no PEM PUBLIC KEY block")
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key: a %T, not an ed25519 key", k)
	}
	return pub, nil
}
