package bucket

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"time"

	"github.com/minio/minio-go/v7"

	"mamoru/outbox"
)

var (
	// ErrNoObjectLock means the bucket was made without object lock, so it
	// can neither hold nor lock an object. It comes inside a *Problem whose
	// Fix says how to move to a bucket with object lock.
	ErrNoObjectLock = errors.New("the bucket has no object lock")
	// ErrHeld means an object is under legal hold, which Delete does not
	// override: release the hold first (SetHold).
	ErrHeld = errors.New("is under legal hold: release the hold before deleting")
)

// LockedError is an object version that a compliance-mode lock keeps until
// Until: no one, not even the root user, can delete it before then.
type LockedError struct {
	Object    string
	VersionID string
	Until     time.Time
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("%s (version %s) is locked in compliance mode until %s: no one, not even the root user, can delete it before then",
		e.Object, e.VersionID, e.Until.UTC().Format(time.RFC3339))
}

// objects are the incident's objects a device writes.
func (e Entry) objects() []string {
	return []string{e.Clip(), path.Join(e.Dir, outbox.ManifestFile), path.Join(e.Dir, outbox.SignatureFile)}
}

// SetHold puts the current versions of the incident's clip, manifest and
// signature (if it has one) under S3 Object Lock legal hold, or, with on
// false, releases them. A held version cannot be deleted by anyone, the
// root user and Delete included, until the hold is released; the hold has
// no end date. Each version is named by its id, so an object written over
// later keeps the hold on the version that was current. A bucket without
// object lock gives a *Problem wrapping ErrNoObjectLock.
func (c Clips) SetHold(ctx context.Context, e Entry, on bool) error {
	status := minio.LegalHoldDisabled
	if on {
		status = minio.LegalHoldEnabled
	}
	for _, object := range e.objects() {
		info, err := c.Client.StatObject(ctx, c.Bucket, object, minio.StatObjectOptions{})
		if IsNotFound(err) && path.Base(object) == outbox.SignatureFile {
			continue // an unsigned incident
		}
		if err != nil {
			return fmt.Errorf("%s: %w", object, Classify(err))
		}
		if err := c.Client.PutObjectLegalHold(ctx, c.Bucket, object, minio.PutObjectLegalHoldOptions{VersionID: info.VersionID, Status: &status}); err != nil {
			return c.lockError(ctx, object, err)
		}
	}
	return nil
}

// Held reports whether the current version of the incident's clip is under
// legal hold. A bucket without object lock gives a *Problem wrapping
// ErrNoObjectLock.
func (c Clips) Held(ctx context.Context, e Entry) (bool, error) {
	return c.held(ctx, e.Clip(), "")
}

// held reports whether a version of object ("" for the current one) is
// under legal hold.
func (c Clips) held(ctx context.Context, object, versionID string) (bool, error) {
	status, err := c.Client.GetObjectLegalHold(ctx, c.Bucket, object, minio.GetObjectLegalHoldOptions{VersionID: versionID})
	if errorCode(err) == "NoSuchObjectLockConfiguration" {
		return false, nil // never held
	}
	if err != nil {
		return false, c.lockError(ctx, object, err)
	}
	return status != nil && *status == minio.LegalHoldEnabled, nil
}

// lockError is err, from an object-lock request about object, as a
// *Problem wrapping ErrNoObjectLock when the bucket has no object lock:
// the server's answer to that (InvalidRequest) is too general to trust
// alone, so the bucket's lock configuration decides.
func (c Clips) lockError(ctx context.Context, object string, err error) error {
	if errorCode(err) == "InvalidRequest" {
		if locked, lerr := c.lockConfigured(ctx); lerr == nil && !locked {
			return &Problem{Code: "ObjectLockConfigurationNotFoundError", Err: fmt.Errorf("bucket %s: %w", c.Bucket, ErrNoObjectLock),
				Fix: "a bucket gets object lock when it is made, and this server may not add it to a bucket that exists (MinIO cannot): " + moveToLocked(c.Prefix)}
		}
	}
	return fmt.Errorf("%s: %w", object, Classify(err))
}

// lockConfigured reports whether the bucket has object lock.
func (c Clips) lockConfigured(ctx context.Context) (bool, error) {
	enabled, _, _, _, err := c.Client.GetObjectLockConfig(ctx, c.Bucket)
	if errorCode(err) == "ObjectLockConfigurationNotFoundError" {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read the object lock configuration of %s: %w", c.Bucket, Classify(err))
	}
	return enabled == "Enabled", nil
}

// Delete removes every version of every object in the incident's folder,
// its clip, manifest and signature, older versions and delete markers
// included: for a person's request to have their recording erased, the
// data must really go, not hide behind a delete marker. A governance-mode
// lock is bypassed (the credentials need s3:BypassGovernanceRetention).
//
// It first checks every version and deletes nothing if any is under legal
// hold (an error wrapping ErrHeld) or locked in compliance mode until a
// date after now by this machine's clock (a *LockedError); the error
// names every such version. The manifest goes last, so that a deletion cut
// short leaves the incident listed, for Delete to be run again.
func (c Clips) Delete(ctx context.Context, e Entry) error {
	vs, err := c.Versions(ctx, e)
	if err != nil {
		return err
	}
	if len(vs) == 0 {
		return fmt.Errorf("%w: nothing at %s", ErrNoIncident, e.Dir)
	}
	locked, err := c.lockConfigured(ctx)
	if err != nil {
		return err
	}
	if locked {
		var refused []error
		for _, v := range vs {
			if v.DeleteMarker {
				continue // a marker holds nothing, and is never locked
			}
			held, err := c.held(ctx, v.Object, v.ID)
			if err != nil {
				return err
			}
			if held {
				refused = append(refused, fmt.Errorf("%s (version %s) %w", v.Object, v.ID, ErrHeld))
			}
			mode, until, err := c.Client.GetObjectRetention(ctx, c.Bucket, v.Object, v.ID)
			if errorCode(err) == "NoSuchObjectLockConfiguration" {
				continue // not locked
			}
			if err != nil {
				return fmt.Errorf("%s (version %s): read its lock: %w", v.Object, v.ID, Classify(err))
			}
			if mode != nil && *mode == minio.Compliance && until != nil && until.After(time.Now()) {
				refused = append(refused, &LockedError{Object: v.Object, VersionID: v.ID, Until: *until})
			}
		}
		if len(refused) > 0 {
			return fmt.Errorf("%s: nothing deleted: %w", e.Dir, errors.Join(refused...))
		}
	}
	manifest := path.Join(e.Dir, outbox.ManifestFile)
	slices.SortStableFunc(vs, func(a, b Version) int {
		switch {
		case a.Object == manifest && b.Object != manifest:
			return 1
		case a.Object != manifest && b.Object == manifest:
			return -1
		}
		return 0
	})
	for i, v := range vs {
		if err := c.Client.RemoveObject(ctx, c.Bucket, v.Object, minio.RemoveObjectOptions{VersionID: v.ID, GovernanceBypass: locked}); err != nil {
			return fmt.Errorf("delete %s (version %s): %w; %d of the incident's %d versions deleted, its manifest last: run the deletion again",
				v.Object, v.ID, Classify(err), i, len(vs))
		}
	}
	return nil
}
