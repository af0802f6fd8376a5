package signing

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

// KeyringEntry is one public key a manager trusts, for one device of one
// store. A device re-provisioned gets a new key and a new entry; the old
// entry stays so its older clips still verify.
type KeyringEntry struct {
	Store, Device string
	Key           ed25519.PublicKey
	// NotBefore, if set, limits the key to manifests pressed at or after
	// it: a new key cannot vouch for a clip dated before it was made.
	NotBefore time.Time
}

// Name is the entry's device as "<store>/<device>", or "any device" for an
// entry that stands for whichever device a manifest names (--pubkey).
func (e KeyringEntry) Name() string {
	if e.Store == "" && e.Device == "" {
		return "any device"
	}
	return e.Store + "/" + e.Device
}

// For reports whether the entry is a key of store/device. An entry with no
// store and no device (a key given on the command line) is for any device.
func (e KeyringEntry) For(store, device string) bool {
	return (e.Store == "" && e.Device == "") || (e.Store == store && e.Device == device)
}

// Keyring is the public keys a manager trusts.
type Keyring []KeyringEntry

// Lists reports whether the keyring holds any key for store/device.
func (k Keyring) Lists(store, device string) bool {
	for _, e := range k {
		if e.For(store, device) {
			return true
		}
	}
	return false
}

var (
	// ErrUnknownDevice means the keyring holds no key for the device a
	// manifest names.
	ErrUnknownDevice = errors.New("UNKNOWN DEVICE")
	// ErrSignatureInvalid means a signature is not one by any key the
	// keyring holds for the device the manifest names, at its press time.
	ErrSignatureInvalid = errors.New("SIGNATURE INVALID")
)

// Verify checks sig, manifest.sig's content (the base64 of an ed25519
// signature, surrounding space allowed), over msg, for a manifest that
// names store/device and was pressed at pressed. Every key the keyring
// holds for that device and valid at pressed is tried, in keyring order;
// the first that verifies is returned. Its errors wrap ErrUnknownDevice
// or ErrSignatureInvalid and say which key, if any, did sign msg.
func (k Keyring) Verify(store, device string, pressed time.Time, msg, sig []byte) (KeyringEntry, error) {
	s, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(sig)))
	if err != nil || len(s) != ed25519.SignatureSize {
		if !k.Lists(store, device) {
			return KeyringEntry{}, fmt.Errorf("%w: the keyring holds no key for %s/%s (and its signature is not one)", ErrUnknownDevice, store, device)
		}
		return KeyringEntry{}, fmt.Errorf("%w: manifest.sig is not the base64 of an ed25519 signature", ErrSignatureInvalid)
	}
	var early *KeyringEntry // a key of the device that verifies, but not yet valid
	for i, e := range k {
		if !e.For(store, device) || !ed25519.Verify(e.Key, msg, s) {
			continue
		}
		if !e.NotBefore.IsZero() && pressed.Before(e.NotBefore) {
			early = &k[i]
			continue
		}
		return e, nil
	}
	// Not verified: say who did sign, when the keyring knows.
	var other *KeyringEntry
	for i, e := range k {
		if !e.For(store, device) && ed25519.Verify(e.Key, msg, s) {
			other = &k[i]
			break
		}
	}
	switch {
	case !k.Lists(store, device) && other != nil:
		return KeyringEntry{}, fmt.Errorf("%w: the manifest names %s/%s, which the keyring holds no key for; it was signed with the key of %s", ErrUnknownDevice, store, device, other.Name())
	case !k.Lists(store, device):
		return KeyringEntry{}, fmt.Errorf("%w: the keyring holds no key for %s/%s: add its [[keyring]] entry, as 'mamoru provision' printed it", ErrUnknownDevice, store, device)
	case early != nil:
		return KeyringEntry{}, fmt.Errorf("%w: signed with a key of %s valid from %s, but the manifest says it was pressed at %s", ErrSignatureInvalid, early.Name(), early.NotBefore.Format(time.RFC3339), pressed.Format(time.RFC3339))
	case other != nil:
		return KeyringEntry{}, fmt.Errorf("%w: the manifest names %s/%s but was signed with the key of %s", ErrSignatureInvalid, store, device, other.Name())
	}
	return KeyringEntry{}, fmt.Errorf("%w: manifest.sig does not match manifest.json under any key of %s/%s: the manifest was altered, or signed by a key not in the keyring", ErrSignatureInvalid, store, device)
}
