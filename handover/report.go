// Package handover makes an incident's hand-over package: one zip a
// lawyer, a labour consultant or the police can check without mamoru,
// holding the original clip, its manifest and signature byte for byte as
// in the bucket, the device's public key, the audit log's excerpt, a
// viewing copy that plays everywhere, report.html, VERIFY.txt and
// SHA256SUMS over every other file.
//
// The package's own files are not signed by the device: authenticity
// rests on the device's signature over manifest.json and on the key's
// fingerprint, which the report prints, matching the record the shop
// keeps outside the package. The report says so.
package handover

import (
	"time"

	"mamoru/outbox"
)

// Report is what report.html says of one incident's package. WriteReport
// renders it, in Japanese and English on A4.
type Report struct {
	// Made is when the package was made, by the clock of the machine that
	// made it, and MadeBy who made it (a name the maker gives, else the
	// machine's user).
	Made   time.Time
	MadeBy string
	// Zone is the device's time zone: every device time is shown in it.
	Zone *time.Location
	// Manifest is the incident's, as signed: presses, clip start and end,
	// duration, tracks, the indicator over the clip, the audit head.
	Manifest outbox.Manifest
	// Ref is the incident as store/device/id.
	Ref string
	// Key is the device's public key that verified the signature.
	Key Key
	// Checks are what was verified, and how, in order: the clip's hash,
	// the signature, the object's place in the bucket, the audit head.
	Checks []Check
	// Files are every file in the package but SHA256SUMS, with their
	// hashes; the viewing copy among them, with DerivedFrom set.
	Files []File
	// Objects are the incident's objects in the bucket with the time the
	// bucket recorded for each (S3's Last-Modified: a clock that is not
	// the device's, which has no battery clock).
	Objects []Object
	// Custody is every view, download, share, hold and hand-over recorded
	// for this incident in the bucket, oldest first, this package's own
	// included.
	Custody []CustodyEvent
	// Notes are what the report must say besides: a player known not to
	// play the viewing copy, an unsigned manifest, a check that failed.
	Notes []string
}

// Key is a device's public key as the report shows it.
type Key struct {
	Store, Device string
	// Fingerprint is the SHA-256 of the key's PKIX DER, in hex, as
	// `mamoru provision` printed it for the shop's keyring.
	Fingerprint string
	File        string // the PEM file's name in the package
}

// Check is one verification and its result.
type Check struct {
	What   string // e.g. "clip.mp4 SHA-256 = manifest.clip.sha256"
	How    string // the command or method a third party can repeat
	Passed bool
	Detail string
}

// File is one file in the package.
type File struct {
	Name   string
	Size   int64
	SHA256 string
	// DerivedFrom, for a file made from another (the viewing copy), names
	// that file, and Command the command that reproduces it byte for byte.
	DerivedFrom string
	Command     string
}

// Object is one object of the incident in the bucket.
type Object struct {
	Key          string
	Size         int64
	LastModified time.Time // the bucket's clock
	VersionID    string
}

// CustodyEvent is one entry of an incident's chain of custody.
type CustodyEvent struct {
	Time   time.Time // the bucket's clock when it was recorded, where known
	Action string    // view, download, share, hold, release, handover
	Actor  string
	Detail string
}
