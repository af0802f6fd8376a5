package bucket

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/lifecycle"

	"mamoru/config"
	"mamoru/health"
	"mamoru/outbox"
)

// SetupBucket prepares the bucket for the devices of store, as an
// installer's credentials may: it creates the bucket if it is missing (with
// object lock when the rules lock clips), turns versioning on, so that an
// object overwritten by a stolen key that skips If-None-Match keeps its
// original as an older version, and expires the store's clips
// (<prefix>/<store>/) after rules.RetentionDays, and older versions a day
// after they became one when clips are locked, or rules.RetentionDays after
// when they are not (the lock keeps an original written over until its
// date; without it, only this rule does).
//
// The expiry is one lifecycle rule per store ("mamoru-retention-<store>"),
// merged with the bucket's rules: other stores' rules and rules not
// mamoru's are kept, this store's is replaced, so running it again changes
// nothing. The chain of custody (<prefix>/.custody/) is no store's, and
// never expires. An older mamoru's rule for the whole prefix
// ("mamoru-retention"), which expired the records too, is removed, each
// other store with a folder keeping its days by a rule of its own.
//
// It sets no default retention: each piece of evidence is locked by its
// own upload (Lock), and a default left by an older mamoru is removed so
// that health.json and self-test probes are not locked. It returns one
// line per step for the installer to read.
func SetupBucket(ctx context.Context, c *minio.Client, s config.Storage, store string, rules config.Policy) ([]string, error) {
	var done []string
	if !config.ValidName(store) {
		return done, fmt.Errorf("bucket: %q is not a store's name (device.store)", store)
	}
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

	cfg, err := c.GetBucketLifecycle(ctx, s.Bucket)
	switch code := errorCode(err); {
	case err == nil:
	case code == "NoSuchLifecycleConfiguration" || code == "NotImplemented":
		// None yet; a server without lifecycle rules says so when they are set.
		cfg = lifecycle.NewConfiguration()
	default:
		return done, fmt.Errorf("read the lifecycle of %s: %w", s.Bucket, Classify(err))
	}
	storeRule, storeFolder := retentionRule+"-"+store, path.Join(s.Prefix, store)+"/"
	var oldRule *lifecycle.Rule // the prefix-wide rule of an older mamoru
	cfg.Rules = slices.DeleteFunc(cfg.Rules, func(r lifecycle.Rule) bool {
		if r.ID == retentionRule {
			oldRule = &r
		}
		// The health rule is the bucket's, not this store's: one store's
		// clips kept (retention 0) need it while another's expire.
		return r.ID == retentionRule || r.ID == storeRule || (r.ID == healthRule && rules.RetentionDays == 0)
	})
	if oldRule != nil {
		// Every other store it expired keeps its days, with a rule of its own.
		others, err := storesWithout(ctx, c, s, store, cfg)
		if err != nil {
			return done, err
		}
		for _, other := range others {
			r := *oldRule
			r.ID, r.Prefix, r.RuleFilter = retentionRule+"-"+other, "", lifecycle.Filter{Prefix: path.Join(s.Prefix, other) + "/"}
			cfg.Rules = append(cfg.Rules, r)
		}
		done = append(done, fmt.Sprintf("removed the lifecycle rule %q, which expired everything under %q, the chain of custody (%s/) included: "+
			"each store's clips expire by a rule of their own (%s), and the records never do; stores given the old rule's days: %s",
			retentionRule, s.Prefix+"/", path.Join(s.Prefix, CustodyDir), retentionRule+"-<store>", orNone(others)))
	}
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
			ID:                          healthRule,
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
		cfg.Rules = append(cfg.Rules, lifecycle.Rule{
			ID:                          storeRule,
			Status:                      "Enabled",
			Expiration:                  lifecycle.Expiration{Days: lifecycle.ExpirationDays(rules.RetentionDays)},
			NoncurrentVersionExpiration: lifecycle.NoncurrentVersionExpiration{NoncurrentDays: lifecycle.ExpirationDays(noncurrentDays)},
			// A multipart upload a device never finished (it was replaced)
			// does not linger.
			AbortIncompleteMultipartUpload: lifecycle.AbortIncompleteMultipartUpload{DaysAfterInitiation: 7},
			RuleFilter:                     lifecycle.Filter{Prefix: storeFolder},
		})
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
			"(an older version goes a day after it became one, never before its lock ends)", storeFolder, rules.RetentionDays))
	case rules.RetentionDays > 0:
		done = append(done, fmt.Sprintf("clips under %q expire %d days after upload; an older version, an expired clip or an original written over, "+
			"goes a day after it became one: unlocked, an overwrite can be seen by 'mamoru clips verify' for a day only", storeFolder, rules.RetentionDays))
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

// CustodyDir is the managers' folder of custody records below the prefix
// (package custody): no store's, so no store's lifecycle rule reaches it.
const CustodyDir = ".custody"

// The IDs of mamoru's lifecycle rules: retentionRule+"-"+store expires a
// store's clips; retentionRule alone is an older mamoru's rule for the
// whole prefix, which expired the chain of custody too.
const (
	retentionRule = "mamoru-retention"
	healthRule    = "mamoru-health-versions"
)

// storesWithout lists the stores with a folder below s.Prefix, but store
// and those cfg has a retention rule for.
func storesWithout(ctx context.Context, c *minio.Client, s config.Storage, store string, cfg *lifecycle.Configuration) ([]string, error) {
	root := strings.TrimPrefix(s.Prefix+"/", "/")
	var out []string
	for o := range c.ListObjects(ctx, s.Bucket, minio.ListObjectsOptions{Prefix: root}) {
		if o.Err != nil {
			return nil, fmt.Errorf("list the stores under %q: %w", root, Classify(o.Err))
		}
		name, ok := strings.CutSuffix(strings.TrimPrefix(o.Key, root), "/")
		if !ok || !config.ValidName(name) || name == store || slices.ContainsFunc(cfg.Rules, func(r lifecycle.Rule) bool { return r.ID == retentionRule+"-"+name }) {
			continue
		}
		out = append(out, name)
	}
	return out, nil
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
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
	custody := arn(CustodyDir) + "/*"
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
