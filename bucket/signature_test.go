package bucket

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"mamoru/outbox"
	"mamoru/signing"
)

// testKey is a fixed key of shop-1/counter-1: signatures are deterministic.
var testKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

// testKeyring holds testKey for shop-1/counter-1.
var testKeyring = signing.Keyring{{Store: "shop-1", Device: "counter-1", Key: testKey.Public().(ed25519.PublicKey)}}

func sigFile(raw []byte) []byte { return sigBy(testKey, raw) }

func sigBy(k ed25519.PrivateKey, raw []byte) []byte {
	return []byte(base64.StdEncoding.EncodeToString(ed25519.Sign(k, raw)) + "\n")
}

const fuzzPlace = "shop-1/counter-1/2026/11/23/20261123-233000-000001"

// FuzzAuthenticate: whatever manifest.json and manifest.sig hold,
// Authenticate does not panic, gives exactly one verdict, refuses with one
// of its errors, and says verified only of testKey's signature of those
// exact bytes, naming the place they sit at.
func FuzzAuthenticate(f *testing.F) {
	m := outbox.Manifest{Version: outbox.ManifestVersion, Store: "shop-1", Device: "counter-1", Incident: "20261123-233000-000001",
		PressTime: time.Date(2026, 11, 23, 23, 30, 0, 0, tokyo), Object: fuzzPlace}
	raw, _ := json.Marshal(m)
	good := sigFile(raw)
	f.Add(raw, good)
	f.Add(raw, bytes.TrimSpace(good))
	f.Add(append([]byte(" "), raw...), good)            // another manifest
	f.Add(raw, append(bytes.Clone(good[:10]), good...)) // another signature
	f.Add(raw, []byte("not base64!\n"))
	f.Add(raw, []byte{})
	m.Object = ""
	legacy, _ := json.Marshal(m)
	f.Add(legacy, sigFile(legacy))
	f.Add([]byte(`{"store":"shop-1","device":"counter-1","object":"shop-1/counter-1/2026/11/23/../x"}`), good)
	f.Fuzz(func(t *testing.T, raw, sig []byte) {
		var m outbox.Manifest
		if json.Unmarshal(raw, &m) != nil {
			return // List refuses it as unreadable before any signature
		}
		for _, sig := range [][]byte{sig, nil} {
			a, err := Authenticate(m, raw, sig, fuzzPlace, testKeyring)
			switch a.Verdict {
			case VerdictVerified, VerdictLegacy:
				if err != nil {
					t.Fatalf("%s with error %v", a.Verdict, err)
				}
				s, derr := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(sig)))
				if derr != nil || !ed25519.Verify(testKey.Public().(ed25519.PublicKey), raw, s) || m.Store != "shop-1" || m.Device != "counter-1" {
					t.Fatalf("%s: %q over %q is not testKey's signature of shop-1/counter-1", a.Verdict, sig, raw)
				}
				if a.Verdict == VerdictVerified && m.Object != fuzzPlace {
					t.Fatalf("verified a manifest signed for %q at %q", m.Object, fuzzPlace)
				}
				if a.Verdict == VerdictLegacy && (m.Object != "" || m.Version >= outbox.ManifestVersion) {
					t.Fatalf("legacy for a version %d manifest naming %q", m.Version, m.Object)
				}
			case VerdictUnsigned:
				if sig != nil || (err != nil) != testKeyring.Lists(m.Store, m.Device) || (err != nil && !errors.Is(err, ErrUnsigned)) {
					t.Fatalf("UNSIGNED with signature %q, error %v", sig, err)
				}
			case VerdictInvalid:
				if !errors.Is(err, ErrSignatureInvalid) {
					t.Fatalf("SIGNATURE INVALID with error %v", err)
				}
			case VerdictUnknown:
				if !errors.Is(err, ErrUnknownDevice) || testKeyring.Lists(m.Store, m.Device) {
					t.Fatalf("UNKNOWN DEVICE for %s/%s, error %v", m.Store, m.Device, err)
				}
			default:
				t.Fatalf("verdict %q", a.Verdict)
			}
		}
	})
}
