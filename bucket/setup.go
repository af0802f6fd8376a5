package bucket

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/lifecycle"

	"mamoru/config"
	"mamoru/health"
	"mamoru/outbox"
)

// SetupBucket prepares the bucket for the devices, as an installer's
// credentials may: it creates the bucket if it is missing (with object lock
// when the rules lock clips), turns versioning on, so that an object
// overwritten by a stolen key that skips If-None-Match keeps its original
// as an older version, and expires clips after rules.RetentionDays, and
// older versions a day after they became one when clips are locked, or
// rules.RetentionDays after when they are not (the lock keeps an original
// written over until its date; without it, only this rule does). It sets no default retention: each piece of evidence
// is locked by its own upload (Lock), and a default left by an older mamoru
// is removed so that health.json and self-test probes are not locked. It
// returns one line per step for the installer to read.
func SetupBucket(ctx context.Context, c *minio.Client, s config.Storage, rules config.Policy) ([]string, error) {
	var done []string
	lock := LockFor(rules)
	exists, err := c.BucketExists(ctx, s.Bucket)
	if err != nil {
		return done, fmt.Errorf("check bucket %s: %w", s.Bucket, Classify(err))
	}
	if !exists {
		if err := c.MakeBucket(ctx, s.Bucket, minio.MakeBucketOptions{Region: s.Region, ObjectLocking: lock.On()}); err != nil {
			return done, fmt.Errorf("create bucket %s: %w", s.Bucket, Classify(err))
		}
		done = append(done, fmt.Sprintf("created bucket %s (object lock %s)", s.Bucket, onOff(lock.On())))
	} else {
		done = append(done, fmt.Sprintf("bucket %s exists", s.Bucket))
	}

	if err := c.EnableVersioning(ctx, s.Bucket); err != nil {
		return done, fmt.Errorf("turn on versioning in %s: %w", s.Bucket, Classify(err))
	}
	done = append(done, "versioning is on: an object written over keeps its original as an older version, which 'mamoru clips verify' reports")

	if lock.On() {
		if !lockEnabled(ctx, c, s.Bucket) {
			// AWS can add object lock to a versioned bucket; MinIO cannot.
			if err := c.SetObjectLockConfig(ctx, s.Bucket, nil, nil, nil); err != nil || !lockEnabled(ctx, c, s.Bucket) {
				return done, fmt.Errorf("bucket %s was created without object lock, and this server cannot add it to a bucket that exists (MinIO cannot): %s. "+
					"Or set policy.object_lock = \"none\" to upload without a lock", s.Bucket, moveToLocked(s.Prefix))
			}
			done = append(done, fmt.Sprintf("object lock turned on in %s", s.Bucket))
		}
		// No default retention: each piece of evidence carries its own.
		if err := c.SetObjectLockConfig(ctx, s.Bucket, nil, nil, nil); err != nil {
			return done, fmt.Errorf("clear the default retention of %s: %w", s.Bucket, Classify(err))
		}
		done = append(done, lockStep(lock))
	} else {
		done = append(done, "clips are not locked (policy.object_lock = \"none\"): a stolen device key that writes over a clip leaves the original only as an older version, which the bucket's owner can delete and the lifecycle deletes a day later")
	}

	cfg := lifecycle.NewConfiguration()
	// An expired clip becomes an older version behind a delete marker, and
	// an original written over an older version under the new one. An
	// older version goes a day after it became one, so an expired clip is
	// deleted a day after it expired, as the rules promise. Locked, an
	// original written over is kept until its own lock ends anyway.
	// Unlocked, it goes a day after the overwrite: keeping it longer would
	// keep every expired clip longer than the rules say recordings are
	// kept, and the rules win (the lock is what keeps evidence).
	const noncurrentDays = 1
	// health.json is written over every minute, and each write leaves an
	// older version: 1440 a day per device. The retention rule below
	// deletes them a day on; without it, this one does, and only them
	// (they carry HealthTag, which clips never do).
	if rules.RetentionDays == 0 {
		rule := lifecycle.Rule{
			ID:                          "mamoru-health-versions",
			Status:                      "Enabled",
			NoncurrentVersionExpiration: lifecycle.NoncurrentVersionExpiration{NoncurrentDays: lifecycle.ExpirationDays(noncurrentDays)},
			RuleFilter:                  lifecycle.Filter{Tag: HealthTag},
		}
		if s.Prefix != "" {
			rule.RuleFilter = lifecycle.Filter{And: lifecycle.And{Prefix: s.Prefix + "/", Tags: []lifecycle.Tag{HealthTag}}}
		}
		cfg.Rules = append(cfg.Rules, rule)
	}
	if rules.RetentionDays > 0 {
		rule := lifecycle.Rule{
			ID:                          "mamoru-retention",
			Status:                      "Enabled",
			Expiration:                  lifecycle.Expiration{Days: lifecycle.ExpirationDays(rules.RetentionDays)},
			NoncurrentVersionExpiration: lifecycle.NoncurrentVersionExpiration{NoncurrentDays: lifecycle.ExpirationDays(noncurrentDays)},
			// A multipart upload a device never finished (it was replaced)
			// does not linger.
			AbortIncompleteMultipartUpload: lifecycle.AbortIncompleteMultipartUpload{DaysAfterInitiation: 7},
		}
		if s.Prefix != "" {
			rule.RuleFilter = lifecycle.Filter{Prefix: s.Prefix + "/"}
		}
		cfg.Rules = append(cfg.Rules, rule)
	}
	if err := c.SetBucketLifecycle(ctx, s.Bucket, cfg); err != nil {
		if errorCode(err) == "NotImplemented" && rules.RetentionDays > 0 {
			return done, fmt.Errorf("this server cannot expire objects (no lifecycle rules), so clips would not be deleted after policy.retention_days = %d as the operating rules promise: "+
				"delete them by other means (a daily job), or use a server with lifecycle rules: %w", rules.RetentionDays, err)
		}
		if errorCode(err) != "NotImplemented" {
			return done, fmt.Errorf("set lifecycle on %s: %w", s.Bucket, Classify(err))
		}
		done = append(done, "clips are kept until someone deletes them (policy.retention_days = 0); this server cannot expire objects (no lifecycle rules): "+
			"each device's health.json leaves an older version every minute, 1440 a day of about 1 KB each, which stay until someone deletes them")
		return done, nil
	}
	switch {
	case rules.RetentionDays > 0 && lock.On():
		done = append(done, fmt.Sprintf("clips under %q, and the older versions of any written over, expire %d days after upload "+
			"(an older version goes a day after it became one, never before its lock ends)", s.Prefix+"/", rules.RetentionDays))
	case rules.RetentionDays > 0:
		done = append(done, fmt.Sprintf("clips under %q expire %d days after upload; an older version, an expired clip or an original written over, "+
			"goes a day after it became one: unlocked, an overwrite can be seen by 'mamoru clips verify' for a day only", s.Prefix+"/", rules.RetentionDays))
	default:
		done = append(done, "clips are kept until someone deletes them (policy.retention_days = 0); the older versions of each device's health.json, "+
			"written over every minute, go a day after they became one")
	}
	return done, nil
}

// moveToLocked says how to move the clips under prefix to a bucket with
// object lock, for a bucket that has none and cannot be given it.
func moveToLocked(prefix string) string {
	return fmt.Sprintf("set storage.bucket to a new name and run 'mamoru storage init' again, which creates it with object lock; then copy the objects "+
		"under %q across with their keys unchanged (e.g. 'mc mirror' or 'rclone copy'): a signature covers the object's key below the bucket "+
		"and storage.prefix, so copies verify in the new bucket", prefix+"/")
}

// HealthTag marks every version of a device's health.json, for the
// lifecycle rule that deletes its older versions. No clip carries it.
var HealthTag = lifecycle.Tag{Key: "mamoru", Value: "health"}

func lockEnabled(ctx context.Context, c *minio.Client, bucket string) bool {
	enabled, _, _, _, err := c.GetObjectLockConfig(ctx, bucket)
	return err == nil && enabled == "Enabled"
}

func lockStep(l Lock) string {
	if l.Mode == minio.Compliance {
		return fmt.Sprintf("every clip, manifest and signature is locked as it is uploaded (compliance mode) for %d days: no one, not even the root user, can delete or replace it before then", l.Days)
	}
	return fmt.Sprintf("every clip, manifest and signature is locked as it is uploaded (governance mode) for %d days: no one can delete or replace it before then "+
		"except a user granted s3:BypassGovernanceRetention who asks to (the root user can)", l.Days)
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// DevicePolicy is the least a device needs, for the server s names: to
// write new objects (and their multipart uploads) under its own folder,
// locking each as it writes it (s3:PutObjectRetention, which without
// s3:BypassGovernanceRetention can lengthen a lock but never shorten it),
// and to delete only what its self-test writes. It cannot read, list or
// delete any clip, nor any older version, nor change the bucket's settings.
//
// On its own, s3:PutObject also lets a stolen key write over a clip. On AWS
// the policy allows a write only with If-None-Match (the condition key
// s3:if-none-match; starting a multipart upload and sending its parts
// cannot carry it, and s3:ObjectCreationOperation is false for those), so
// the server refuses the overwrite, but for the device's health.json
// (health.Key), which it writes over every minute: that one key may be
// written without the condition, with its tag (HealthTag). MinIO and versitygw refuse such a
// condition in a policy: there, what protects a clip from that key is
// versioning and its object lock (SetupBucket, Lock), which keep the
// original; 'mamoru clips verify' reports the overwrite.
func DevicePolicy(s config.Storage, store, device string) string {
	folder := fmt.Sprintf("arn:aws:s3:::%s/%s", s.Bucket, path.Join(s.Prefix, store, device))
	write := []map[string]any{{
		"Sid":      "MamoruDeviceWriteOnly",
		"Effect":   "Allow",
		"Action":   []string{"s3:PutObject", "s3:PutObjectRetention"},
		"Resource": []string{folder + "/*"},
	}}
	if IsAWS(s) {
		write = []map[string]any{{
			"Sid":       "MamoruDeviceWriteNewOnly",
			"Effect":    "Allow",
			"Action":    []string{"s3:PutObject", "s3:PutObjectRetention"},
			"Resource":  []string{folder + "/*"},
			"Condition": map[string]any{"Null": map[string]string{"s3:if-none-match": "false"}},
		}, {
			"Sid":       "MamoruDeviceMultipartParts",
			"Effect":    "Allow",
			"Action":    []string{"s3:PutObject", "s3:PutObjectRetention"},
			"Resource":  []string{folder + "/*"},
			"Condition": map[string]any{"Bool": map[string]string{"s3:ObjectCreationOperation": "false"}},
		}, {
			// The one object a device writes over, tagged for the
			// lifecycle rule that deletes its older versions: AWS wants
			// s3:PutObjectTagging for a write that carries tags.
			"Sid":      "MamoruDeviceHealth",
			"Effect":   "Allow",
			"Action":   []string{"s3:PutObject", "s3:PutObjectTagging"},
			"Resource": []string{fmt.Sprintf("arn:aws:s3:::%s/%s", s.Bucket, health.Key(s.Prefix, store, device))},
		}}
	}
	doc := map[string]any{
		"Version": "2012-10-17",
		"Statement": append(write, map[string]any{
			"Sid":      "MamoruDeviceSelfTest",
			"Effect":   "Allow",
			"Action":   []string{"s3:DeleteObject"},
			"Resource": []string{folder + "/" + selfTestDir + "/*"},
		}),
	}
	b, _ := json.MarshalIndent(doc, "", "  ")
	return string(b)
}

// ConsolePolicy is the least the managers' console needs, for the bucket
// s names: to list the clips and their versions below storage.prefix, read
// them (and the custody records), read each object's retention and the
// bucket's object lock configuration, set and release legal hold on an
// incident's clip, manifest and signature, write custody records under
// <prefix>/.custody/, and, for Clips.Delete alone, delete every version of
// an incident's clip, manifest and signature, bypassing a governance lock.
//
// Nothing else: it cannot write a clip, touch an audit segment or a health
// report but to read it, nor change the bucket's settings; and it is
// denied deleting custody records, so the chain of custody only grows. On
// AWS its custody writes must carry If-None-Match (s3:if-none-match), as
// custody.Log.Add's do, so that no record is written over; MinIO and
// versitygw refuse such a condition (see DevicePolicy).
func ConsolePolicy(s config.Storage) string {
	arn := func(key string) string { return "arn:aws:s3:::" + path.Join(s.Bucket, s.Prefix, key) }
	list := map[string]any{
		"Sid":      "MamoruConsoleList",
		"Effect":   "Allow",
		"Action":   []string{"s3:ListBucket", "s3:ListBucketVersions"},
		"Resource": []string{"arn:aws:s3:::" + s.Bucket},
	}
	if s.Prefix != "" {
		list["Condition"] = map[string]any{"StringLike": map[string][]string{"s3:prefix": {s.Prefix + "/*"}}}
	}
	// An incident's own objects, by name anywhere below the prefix: the
	// audit log and the health reports are not among them.
	var incident []string
	for _, name := range []string{outbox.ClipFile, outbox.ManifestFile, outbox.SignatureFile} {
		incident = append(incident, arn("*/"+name))
	}
	custody := arn(".custody") + "/*"
	write := map[string]any{
		"Sid":      "MamoruConsoleCustodyWrite",
		"Effect":   "Allow",
		"Action":   []string{"s3:PutObject"},
		"Resource": []string{custody},
	}
	if IsAWS(s) {
		write["Condition"] = map[string]any{"Null": map[string]string{"s3:if-none-match": "false"}}
	}
	doc := map[string]any{
		"Version": "2012-10-17",
		"Statement": []map[string]any{list, {
			"Sid":      "MamoruConsoleBucketLock",
			"Effect":   "Allow",
			"Action":   []string{"s3:GetBucketObjectLockConfiguration"},
			"Resource": []string{"arn:aws:s3:::" + s.Bucket},
		}, {
			"Sid":      "MamoruConsoleRead",
			"Effect":   "Allow",
			"Action":   []string{"s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectRetention", "s3:GetObjectLegalHold"},
			"Resource": []string{arn("*")},
		}, {
			"Sid":      "MamoruConsoleLegalHold",
			"Effect":   "Allow",
			"Action":   []string{"s3:PutObjectLegalHold"},
			"Resource": incident,
		}, write, {
			"Sid":      "MamoruConsoleDelete",
			"Effect":   "Allow",
			"Action":   []string{"s3:DeleteObject", "s3:DeleteObjectVersion", "s3:BypassGovernanceRetention"},
			"Resource": incident,
		}, {
			"Sid":      "MamoruConsoleCustodyKept",
			"Effect":   "Deny",
			"Action":   []string{"s3:DeleteObject", "s3:DeleteObjectVersion", "s3:BypassGovernanceRetention", "s3:PutObjectRetention", "s3:PutObjectLegalHold"},
			"Resource": []string{custody},
		}},
	}
	b, _ := json.MarshalIndent(doc, "", "  ")
	return string(b)
}

// PolicyNote says, for an installer, what DevicePolicy's server enforces.
func PolicyNote(s config.Storage) string {
	if IsAWS(s) {
		return "This policy lets the device write only with If-None-Match: * (condition s3:if-none-match), so even a stolen key cannot write over a clip. " +
			"The one exception is the device's own health.json, which it writes over every minute: a stolen key could only make it lie about the device."
	}
	return "This server cannot demand If-None-Match in a policy (AWS can): a stolen device key could write over a clip, which keeps its original as an older version, locked by policy.object_lock; 'mamoru clips verify' reports it. " +
		"The device itself writes over one object only, its health.json, every minute. Never grant the device s3:BypassGovernanceRetention, s3:DeleteObjectVersion or s3:PutBucket*."
}

// IsAWS reports whether s names Amazon S3, whose policies can demand
// If-None-Match.
func IsAWS(s config.Storage) bool {
	host, _, err := net.SplitHostPort(s.Endpoint)
	if err != nil {
		host = s.Endpoint
	}
	return host == "s3.amazonaws.com" || strings.HasSuffix(host, ".amazonaws.com") || strings.HasSuffix(host, ".amazonaws.com.cn")
}

// selfTestDir is the folder, beside a device's clips, where its self-test
// writes and deletes a probe object.
const selfTestDir = ".selftest"

// Probe writes a small object into the device's self-test folder and
// deletes it, proving the endpoint, the credentials and the bucket work
// the way uploads will use them.
func Probe(ctx context.Context, c *minio.Core, s config.Storage, store, device string) (string, error) {
	// Named by the wall clock, for a person who finds one left behind by a
	// failed delete to read when it was made.
	object := path.Join(s.Prefix, store, device, selfTestDir, time.Now().UTC().Format("20060102T150405.000Z")+".txt")
	body := "mamoru self-test: this object is deleted at once\n"
	// Written as every upload is (If-None-Match), for a policy that demands
	// it, but not locked: it is deleted at once.
	opts := IfAbsent()
	opts.ContentType = "text/plain"
	if _, err := c.Client.PutObject(ctx, s.Bucket, object, strings.NewReader(body), int64(len(body)), opts); err != nil {
		return object, fmt.Errorf("write %s: %w", object, Classify(err))
	}
	if err := c.Client.RemoveObject(ctx, s.Bucket, object, minio.RemoveObjectOptions{}); err != nil {
		return object, fmt.Errorf("wrote %s but cannot delete it: %w", object, Classify(err))
	}
	return object, nil
}
