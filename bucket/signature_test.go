package bucket

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// testKey is a fixed device key: signatures are deterministic.
var testKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

func sigFile(raw []byte) []byte {
	return []byte(base64.StdEncoding.EncodeToString(ed25519.Sign(testKey, raw)) + "\n")
}

// FuzzCheckSignature: whatever manifest.sig and manifest.json hold,
// checkSignature does not panic, refuses with ErrBadSignature, and accepts
// exactly the device's signature of those manifest bytes.
func FuzzCheckSignature(f *testing.F) {
	raw := []byte(`{"incident":"20261123-233000-000001"}` + "\n")
	good := sigFile(raw)
	f.Add(raw, good)
	f.Add(raw, bytes.TrimSpace(good))
	f.Add(append([]byte(" "), raw...), good)            // another manifest
	f.Add(raw, append(bytes.Clone(good[:10]), good...)) // another signature
	f.Add(raw, []byte("not base64!\n"))
	f.Add(raw, []byte{})
	pub := testKey.Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, raw, sig []byte) {
		err := checkSignature(raw, sig, pub)
		if err != nil && !errors.Is(err, ErrBadSignature) {
			t.Fatalf("checkSignature error %v does not wrap ErrBadSignature", err)
		}
		if err := checkSignature(raw, sigFile(raw), pub); err != nil {
			t.Fatalf("the device's own signature refused: %v", err)
		}
		if err := checkSignature(raw, nil, pub); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("no manifest.sig: %v, want ErrBadSignature", err)
		}
		if err != nil {
			return
		}
		// Accepted: it must be the device's signature, however spelled.
		s, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sig)))
		if derr != nil || !bytes.Equal(s, ed25519.Sign(testKey, raw)) {
			t.Fatalf("accepted %q over %q: not the device's signature", sig, raw)
		}
	})
}
