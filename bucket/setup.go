package bucket

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/lifecycle"

	"mamoru/config"
)

// SetupBucket prepares the bucket for the devices, as an installer's
// credentials may: it creates the bucket if it is missing (with object
// lock when rules ask for it), expires clips after rules.RetentionDays and
// locks each clip for rules.ObjectLockDays. It returns one line per step
// for the installer to read.
func SetupBucket(ctx context.Context, c *minio.Client, s config.Storage, rules config.Policy) ([]string, error) {
	var done []string
	lock := rules.ObjectLockDays > 0
	exists, err := c.BucketExists(ctx, s.Bucket)
	if err != nil {
		return done, fmt.Errorf("check bucket %s: %w", s.Bucket, Classify(err))
	}
	if !exists {
		if err := c.MakeBucket(ctx, s.Bucket, minio.MakeBucketOptions{Region: s.Region, ObjectLocking: lock}); err != nil {
			return done, fmt.Errorf("create bucket %s: %w", s.Bucket, Classify(err))
		}
		done = append(done, fmt.Sprintf("created bucket %s (object lock %s)", s.Bucket, onOff(lock)))
	} else {
		done = append(done, fmt.Sprintf("bucket %s exists", s.Bucket))
	}

	if lock {
		enabled, _, _, _, err := c.GetObjectLockConfig(ctx, s.Bucket)
		if err != nil || enabled != "Enabled" {
			return done, fmt.Errorf("bucket %s was created without object lock, and S3 cannot add it later: create a new bucket (set storage.bucket to a new name) or set policy.object_lock_days = 0", s.Bucket)
		}
		mode, days, unit := minio.Compliance, uint(rules.ObjectLockDays), minio.Days
		if err := c.SetObjectLockConfig(ctx, s.Bucket, &mode, &days, &unit); err != nil {
			return done, fmt.Errorf("set object lock on %s: %w", s.Bucket, Classify(err))
		}
		done = append(done, fmt.Sprintf("every new clip is locked (compliance mode) for %d days: no one, not even the root user, can delete it before then", rules.ObjectLockDays))
	}

	cfg := lifecycle.NewConfiguration()
	if rules.RetentionDays > 0 {
		rule := lifecycle.Rule{
			ID:         "mamoru-retention",
			Status:     "Enabled",
			Expiration: lifecycle.Expiration{Days: lifecycle.ExpirationDays(rules.RetentionDays)},
			// A multipart upload a device never finished (it was replaced)
			// does not linger.
			AbortIncompleteMultipartUpload: lifecycle.AbortIncompleteMultipartUpload{DaysAfterInitiation: 7},
		}
		if s.Prefix != "" {
			rule.RuleFilter = lifecycle.Filter{Prefix: s.Prefix + "/"}
		}
		if lock {
			// Object lock turns versioning on: old versions go too.
			rule.NoncurrentVersionExpiration = lifecycle.NoncurrentVersionExpiration{NoncurrentDays: 1}
		}
		cfg.Rules = append(cfg.Rules, rule)
		done = append(done, fmt.Sprintf("clips under %q expire %d days after upload", s.Prefix+"/", rules.RetentionDays))
	} else {
		done = append(done, "clips are kept until someone deletes them (policy.retention_days = 0)")
	}
	if err := c.SetBucketLifecycle(ctx, s.Bucket, cfg); err != nil {
		return done, fmt.Errorf("set lifecycle on %s: %w", s.Bucket, Classify(err))
	}
	return done, nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// DevicePolicy is the least a device needs: to write objects (and their
// multipart uploads) under its own folder, and to delete only what its
// self-test writes. It cannot read, list or delete any clip, its own
// included, so a stolen device cannot leak or destroy what it has sent.
func DevicePolicy(s config.Storage, store, device string) string {
	folder := fmt.Sprintf("arn:aws:s3:::%s/%s", s.Bucket, path.Join(s.Prefix, store, device))
	doc := map[string]any{
		"Version": "2012-10-17",
		"Statement": []map[string]any{{
			"Sid":      "MamoruDeviceWriteOnly",
			"Effect":   "Allow",
			"Action":   []string{"s3:PutObject"},
			"Resource": []string{folder + "/*"},
		}, {
			"Sid":      "MamoruDeviceSelfTest",
			"Effect":   "Allow",
			"Action":   []string{"s3:DeleteObject"},
			"Resource": []string{folder + "/" + selfTestDir + "/*"},
		}},
	}
	b, _ := json.MarshalIndent(doc, "", "  ")
	return string(b)
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
	if _, err := c.Client.PutObject(ctx, s.Bucket, object, strings.NewReader(body), int64(len(body)), minio.PutObjectOptions{ContentType: "text/plain"}); err != nil {
		return object, fmt.Errorf("write %s: %w", object, Classify(err))
	}
	if err := c.Client.RemoveObject(ctx, s.Bucket, object, minio.RemoveObjectOptions{}); err != nil {
		return object, fmt.Errorf("wrote %s but cannot delete it: %w", object, Classify(err))
	}
	return object, nil
}
