package signing

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
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
