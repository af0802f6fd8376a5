package bucket

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
)

// Version is one stored version of an object: in a versioned bucket (which
// 'mamoru storage init' makes), writing over an object keeps the one before.
type Version struct {
	Object       string
	ID           string // the server's version id; "null" for one written before versioning
	Written      time.Time
	Size         int64
	Latest       bool // the version a plain GET returns
	DeleteMarker bool // a deletion, not content
}

// Versions lists every version of every object of the incident (clip,
// manifest, signature), grouped by object and oldest first.
func (c Clips) Versions(ctx context.Context, e Entry) ([]Version, error) {
	var vs []Version
	for o := range c.Client.ListObjects(ctx, c.Bucket, minio.ListObjectsOptions{Prefix: e.Dir + "/", Recursive: true, WithVersions: true}) {
		if o.Err != nil {
			return nil, fmt.Errorf("list the versions under %s: %w", e.Dir, Classify(o.Err))
		}
		vs = append(vs, Version{Object: o.Key, ID: o.VersionID, Written: o.LastModified, Size: o.Size, Latest: o.IsLatest, DeleteMarker: o.IsDeleteMarker})
	}
	// S3 lists each object's versions newest first; times have whole
	// seconds only, so that order, reversed, is the order of writing.
	slices.SortStableFunc(vs, func(a, b Version) int { return strings.Compare(a.Object, b.Object) })
	for i := 0; i < len(vs); {
		j := i
		for j < len(vs) && vs[j].Object == vs[i].Object {
			j++
		}
		slices.Reverse(vs[i:j])
		i = j
	}
	return vs, nil
}

// Tampered says that an object of an incident was written more than once,
// or deleted: a device writes each object once, so anything more is someone
// else's doing. Versions are that object's, oldest first.
type Tampered struct {
	Object   string
	Versions []Version
}

func (t *Tampered) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "TAMPERED: %s was written %d times (a device writes it once):", t.Object, len(t.Versions))
	for i, v := range t.Versions {
		what := fmt.Sprintf("%d bytes", v.Size)
		if v.DeleteMarker {
			what = "deleted"
		}
		fmt.Fprintf(&b, "\n  %d. %s  %s  version %s", i+1, v.Written.UTC().Format(time.RFC3339), what, v.ID)
		if i == 0 && !v.DeleteMarker {
			// Not necessarily the device's: a stolen key may have written
			// the name before the device did.
			b.WriteString("  (the first written)")
		}
		if v.Latest {
			b.WriteString("  (current)")
		}
	}
	return b.String()
}

// CheckVersions returns a *Tampered for each object in vs (as Versions
// returns them) that has more than one version or a deletion, or nil.
func CheckVersions(vs []Version) []*Tampered {
	var out []*Tampered
	for i := 0; i < len(vs); {
		j := i
		for j < len(vs) && vs[j].Object == vs[i].Object {
			j++
		}
		same := vs[i:j]
		if len(same) > 1 || same[0].DeleteMarker {
			out = append(out, &Tampered{Object: vs[i].Object, Versions: slices.Clone(same)})
		}
		i = j
	}
	return out
}
