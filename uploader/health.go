package uploader

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"

	"github.com/minio/minio-go/v7"

	"mamoru/bucket"
)

// HealthObject writes the device's health report to the bucket
// (health.Putter for health.Writer). It is the one object a device writes
// over: without If-None-Match and without a lock, which the device's
// policy allows on that key alone (bucket.DevicePolicy). It is tagged
// (bucket.HealthTag) so that the lifecycle deletes the older versions
// each write leaves. It goes straight to the server: not through the
// outbox, nor the bandwidth limit that paces the clips.
type HealthObject struct {
	Client *minio.Core
	Bucket string
}

// Put writes body at key, replacing what is there.
func (h HealthObject) Put(ctx context.Context, key string, body []byte) error {
	sum := sha256.Sum256(body)
	opts := minio.PutObjectOptions{
		ContentType:  "application/json",
		UserTags:     map[string]string{bucket.HealthTag.Key: bucket.HealthTag.Value},
		UserMetadata: map[string]string{"x-amz-checksum-sha256": base64.StdEncoding.EncodeToString(sum[:])},
		// A bucket with object lock wants a checksum of every write.
		DisableContentSha256: true,
	}
	if _, err := h.Client.PutObject(ctx, h.Bucket, key, bytes.NewReader(body), int64(len(body)), "", hex.EncodeToString(sum[:]), opts); err != nil {
		return fmt.Errorf("%s: %w", key, bucket.Classify(err))
	}
	return nil
}
