package bucket

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"mamoru/audit"
)

// Stored is one object as the bucket keeps it: its bytes, and the time
// and version the bucket recorded.
type Stored struct {
	Key          string // its key in the bucket
	Data         []byte
	LastModified time.Time // the bucket's clock
	VersionID    string
}

// AuditExcerpt returns the audit segments of store/device whose entries
// cover head (the segment holding entry head.Seq with head.Hash), each
// followed by its .sig where there is one, oldest first. None found is
// no error: the device may not have sent it yet. Segments are checked
// only to hold the head's entry; clips audit judges the whole log.
func (c Clips) AuditExcerpt(ctx context.Context, store, device string, head audit.Head) ([]Stored, error) {
	root := path.Join(c.Prefix, AuditDir(store, device)) + "/"
	var keys []string
	for o := range c.Client.ListObjects(ctx, c.Bucket, minio.ListObjectsOptions{Prefix: root, Recursive: true}) {
		if o.Err != nil {
			return nil, Classify(o.Err)
		}
		id, ok := audit.ParseSegmentName(strings.TrimPrefix(o.Key, root))
		if ok && id.First <= head.Seq && head.Seq <= id.Last {
			keys = append(keys, o.Key)
		}
	}
	var out []Stored
	for _, k := range keys {
		seg, err := c.stored(ctx, k, audit.SegmentMaxBytes)
		if err != nil {
			return nil, err
		}
		es, err := audit.ParseSegment(seg.Data)
		if err != nil || !holds(es, head) {
			continue // another chain's entry of that number, or not a segment
		}
		out = append(out, seg)
		sig, err := c.stored(ctx, k+".sig", smallMax)
		if IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, sig)
	}
	return out, nil
}

func holds(es []audit.Entry, h audit.Head) bool {
	for _, e := range es {
		if e.Seq == h.Seq && e.Hash == h.Hash {
			return true
		}
	}
	return false
}

// Stat returns what the bucket recorded of object: its Last-Modified,
// size and version.
func (c Clips) Stat(ctx context.Context, object string) (Stored, int64, error) {
	info, err := c.Client.StatObject(ctx, c.Bucket, object, minio.StatObjectOptions{})
	if err != nil {
		return Stored{}, 0, fmt.Errorf("%s: %w", object, Classify(err))
	}
	return Stored{Key: object, LastModified: info.LastModified, VersionID: info.VersionID}, info.Size, nil
}

// stored reads a whole object of at most max bytes with what the bucket
// recorded of it.
func (c Clips) stored(ctx context.Context, object string, max int64) (Stored, error) {
	s, _, err := c.Stat(ctx, object)
	if err != nil {
		return s, err
	}
	s.Data, err = c.readAtMost(ctx, object, max)
	return s, err
}
