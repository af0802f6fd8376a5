package signing

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"testing"
	"time"
)

func seedKey(b byte) ed25519.PrivateKey { return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, 32)) }

func sigOf(k ed25519.PrivateKey, msg []byte) []byte {
	return []byte(base64.StdEncoding.EncodeToString(ed25519.Sign(k, msg)) + "\n")
}

// Each key the keyring holds for a device is tried; not_before limits a
// key to presses at or after it; a key of another device never serves.
func TestKeyringVerify(t *testing.T) {
	old, renewed, other, stranger := seedKey(1), seedKey(2), seedKey(3), seedKey(4)
	from := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	ring := Keyring{
		{Store: "shop-1", Device: "counter-1", Key: old.Public().(ed25519.PublicKey)},
		{Store: "shop-1", Device: "counter-1", Key: renewed.Public().(ed25519.PublicKey), NotBefore: from},
		{Store: "shop-1", Device: "counter-2", Key: other.Public().(ed25519.PublicKey)},
	}
	msg := []byte(`{"incident":"x"}`)
	before, after := from.Add(-time.Hour), from.Add(time.Hour)
	for _, tc := range []struct {
		name          string
		store, device string
		pressed       time.Time
		sig           []byte
		want          error // nil: verified
		signer        ed25519.PrivateKey
	}{
		{"the old key, before re-provisioning", "shop-1", "counter-1", before, sigOf(old, msg), nil, old},
		{"the old key still verifies its clips later", "shop-1", "counter-1", after, sigOf(old, msg), nil, old},
		{"the new key, from not_before", "shop-1", "counter-1", from, sigOf(renewed, msg), nil, renewed},
		{"the new key, dated before it was made", "shop-1", "counter-1", before, sigOf(renewed, msg), ErrSignatureInvalid, nil},
		{"another device's key", "shop-1", "counter-1", after, sigOf(other, msg), ErrSignatureInvalid, nil},
		{"a key no one knows", "shop-1", "counter-1", after, sigOf(stranger, msg), ErrSignatureInvalid, nil},
		{"another message's signature", "shop-1", "counter-1", after, sigOf(old, []byte("x")), ErrSignatureInvalid, nil},
		{"not base64", "shop-1", "counter-1", after, []byte("!!"), ErrSignatureInvalid, nil},
		{"a device not in the keyring", "shop-2", "counter-1", after, sigOf(stranger, msg), ErrUnknownDevice, nil},
		{"a device not in the keyring, signed by one in it", "shop-2", "counter-1", after, sigOf(old, msg), ErrUnknownDevice, nil},
	} {
		e, err := ring.Verify(tc.store, tc.device, tc.pressed, msg, tc.sig)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: Verify = %v, want %v", tc.name, err, tc.want)
			continue
		}
		if tc.signer != nil && !e.Key.Equal(tc.signer.Public()) {
			t.Errorf("%s: verified by %+v, want the key that signed", tc.name, e)
		}
	}
	// A key given on the command line stands for any device.
	one := Keyring{{Key: old.Public().(ed25519.PublicKey)}}
	if _, err := one.Verify("shop-9", "counter-9", after, msg, sigOf(old, msg)); err != nil {
		t.Errorf("a one-key keyring: %v", err)
	}
	if _, err := one.Verify("shop-9", "counter-9", after, msg, sigOf(other, msg)); !errors.Is(err, ErrSignatureInvalid) {
		t.Errorf("a one-key keyring and another key's signature: %v", err)
	}
}

// FuzzKeyringVerify: whatever manifest.sig holds, Verify does not panic,
// refuses with one of its two errors, and accepts only a real signature.
func FuzzKeyringVerify(f *testing.F) {
	k := seedKey(9)
	ring := Keyring{{Store: "s", Device: "d", Key: k.Public().(ed25519.PublicKey)}}
	msg := []byte("{}")
	f.Add(msg, sigOf(k, msg))
	f.Add(msg, []byte(" \n"))
	f.Add([]byte("{ }"), sigOf(k, msg))
	f.Fuzz(func(t *testing.T, msg, sig []byte) {
		_, err := ring.Verify("s", "d", time.Time{}, msg, sig)
		if err != nil && !errors.Is(err, ErrSignatureInvalid) {
			t.Fatalf("error %v is not SIGNATURE INVALID", err)
		}
		if err == nil {
			s, _ := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(sig)))
			if !ed25519.Verify(k.Public().(ed25519.PublicKey), msg, s) {
				t.Fatalf("accepted %q over %q", sig, msg)
			}
		}
		if _, err := ring.Verify("s", "other", time.Time{}, msg, sig); !errors.Is(err, ErrUnknownDevice) {
			t.Fatalf("a device not in the keyring: %v", err)
		}
	})
}
