package bucket

import (
	"time"

	"github.com/minio/minio-go/v7"

	"mamoru/config"
)

// Lock is the object-lock retention each piece of evidence (clip,
// manifest, signature, audit segment) is written with: per object, not as
// the bucket's default, so that health.json and self-test probes are not
// locked. The zero Lock locks nothing.
type Lock struct {
	Mode minio.RetentionMode // minio.Governance or minio.Compliance; "" locks nothing
	Days int
}

// LockFor is the lock the operating rules ask for: policy.object_lock for
// policy.retention_days.
func LockFor(p config.Policy) Lock {
	switch p.ObjectLock {
	case config.LockGovernance:
		return Lock{Mode: minio.Governance, Days: p.RetentionDays}
	case config.LockCompliance:
		return Lock{Mode: minio.Compliance, Days: p.RetentionDays}
	}
	return Lock{}
}

// On reports whether objects are locked.
func (l Lock) On() bool { return l.Mode != "" && l.Days > 0 }

// WriteOnce sets opts for a write that never replaces an object: the server
// refuses it (412, classified as *Exists) if the key is already there, and
// locks it until now + Days when l is on. now must come from a clock known to
// be right: the device's once NTP has set it, or else the server's
// (ServerTime), which the lock is held against anyway. A retain-until date
// reckoned from a clock that reads 1970 would lock nothing. Every upload of
// evidence goes through here, so each inherits both.
func (l Lock) WriteOnce(opts *minio.PutObjectOptions, now time.Time) {
	opts.SetMatchETagExcept("*")
	l.Retain(opts, now)
}

// Retain sets only the lock on opts: for starting a multipart upload, which
// takes the object's lock but not If-None-Match (S3 checks that when the
// upload completes).
func (l Lock) Retain(opts *minio.PutObjectOptions, now time.Time) {
	if l.On() {
		opts.Mode = l.Mode
		opts.RetainUntilDate = now.UTC().AddDate(0, 0, l.Days).Truncate(time.Second)
	}
}

// IfAbsent are the options of a write that must not replace an object: a
// multipart upload's completion (where S3 checks it), a self-test probe.
func IfAbsent() minio.PutObjectOptions {
	var o minio.PutObjectOptions
	o.SetMatchETagExcept("*")
	return o
}

// Classify is Classify for a write with l's lock: a server that
// answers InvalidRequest to a locked write says the bucket has no object
// lock, which no retry cures.
func (l Lock) Classify(err error) error {
	if l.On() && errorCode(err) == "InvalidRequest" {
		return &Problem{Code: "InvalidRequest", Err: err,
			Fix: "the bucket cannot lock objects (made without object lock?): run 'mamoru storage init', which says how to move to a bucket with object lock, or set policy.object_lock = \"none\""}
	}
	return Classify(err)
}
