package bucket

import (
	"context"
	"errors"
	"fmt"

	"mamoru/outbox"
	"mamoru/signing"
)

// What clips get and verify say of a manifest's signature: exactly one.
const (
	VerdictVerified = "verified"                                  // "verified: signed by <store>/<device>"
	VerdictLegacy   = "verified (legacy: not bound to its place)" // signed, before manifests named their object
	VerdictUnsigned = "UNSIGNED"
	VerdictInvalid  = "SIGNATURE INVALID"
	VerdictUnknown  = "UNKNOWN DEVICE"
)

var (
	// ErrUnsigned means an incident has no manifest.sig although the
	// keyring holds keys for the device its manifest names.
	ErrUnsigned = errors.New(VerdictUnsigned)
	// ErrSignatureInvalid means manifest.sig is not a signature of
	// manifest.json by a key of the device it names, valid at its press
	// time, or the manifest was signed for another place.
	ErrSignatureInvalid = signing.ErrSignatureInvalid
	// ErrUnknownDevice means the keyring holds no key for the device a
	// signed manifest names.
	ErrUnknownDevice = signing.ErrUnknownDevice
)

// Authenticity is what a manifest's signature says about it.
type Authenticity struct {
	Verdict string // one of the Verdict constants
	Signer  string // "<store>/<device>" whose key verified the manifest
	Sig     []byte // manifest.sig as judged; nil if there is none
}

// String is the verdict as clips get and verify print it.
func (a Authenticity) String() string {
	if a.Verdict == VerdictVerified {
		return VerdictVerified + ": signed by " + a.Signer
	}
	return a.Verdict
}

// Authenticate judges a manifest: m as decoded from raw, its exact bytes,
// and sig, its manifest.sig (nil if there is none). place is where the
// incident lies in the bucket below the prefix, or "" when that is not
// known (a downloaded copy).
//
// A signed manifest is authentic when one of the keyring's keys for the
// device it names, valid at its press time, signed raw, and the object it
// names (outbox.Manifest.Object) is place: a manifest, clip and signature
// copied into another incident's folder, or a manifest naming another
// device, fail. The error, when there is one, wraps ErrSignatureInvalid,
// ErrUnknownDevice or ErrUnsigned; an unsigned manifest of a device the
// keyring does not list is no error, but its verdict is VerdictUnsigned,
// never verified. A manifest written before manifests named their object
// and signed by its device is VerdictLegacy: it may have been moved.
func Authenticate(m outbox.Manifest, raw, sig []byte, place string, kr signing.Keyring) (Authenticity, error) {
	a := Authenticity{Sig: sig}
	if sig == nil {
		a.Verdict = VerdictUnsigned
		if kr.Lists(m.Store, m.Device) {
			return a, fmt.Errorf("%w: the incident has no %s, but the keyring holds keys for %s/%s, whose manifests are signed", ErrUnsigned, outbox.SignatureFile, m.Store, m.Device)
		}
		return a, nil
	}
	if _, err := kr.Verify(m.Store, m.Device, m.PressTime, raw, sig); err != nil {
		a.Verdict = VerdictInvalid
		if errors.Is(err, ErrUnknownDevice) {
			a.Verdict = VerdictUnknown
		}
		return a, err
	}
	invalid := func(format string, args ...any) (Authenticity, error) {
		a.Verdict = VerdictInvalid
		return a, fmt.Errorf("%w: %s", ErrSignatureInvalid, fmt.Sprintf(format, args...))
	}
	switch {
	case m.Object == "" && m.Version >= outbox.ManifestVersion:
		return invalid("a version %d manifest must name its object, and this one does not", m.Version)
	case m.Object == "":
		a.Verdict = VerdictLegacy
		return a, nil
	case m.CheckObject() != nil:
		return invalid("%v", m.CheckObject())
	case place != "" && m.Object != place:
		return invalid("signed for %s, but it is at %s: copied or moved from its place", m.Object, place)
	}
	a.Verdict, a.Signer = VerdictVerified, m.Store+"/"+m.Device
	return a, nil
}

// Authenticate judges the incident where it lies in the bucket by the
// keyring (the package's Authenticate), after refusing a manifest whose
// incident, store or device disagree with its key.
func (c Clips) Authenticate(ctx context.Context, e Entry) (Authenticity, error) {
	if err := c.checkPlace(e); err != nil {
		return Authenticity{}, err
	}
	sig, err := c.signature(ctx, e)
	if err != nil {
		return Authenticity{}, err
	}
	return Authenticate(e.Manifest, e.Raw, sig, c.place(e), c.Keyring)
}
