package bucket

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/minio/minio-go/v7"

	"mamoru/config"
)

// Folders lists the names of the stores or devices directly below dir
// ("" is the bucket's top), sorted: the folders whose names are a store's
// or device's (config.ValidName), so that the managers' own, such as the
// custody records' .custody, are passed by.
func Folders(ctx context.Context, c *minio.Client, bkt, dir string) ([]string, error) {
	prefix := ""
	if dir != "" {
		prefix = strings.TrimSuffix(dir, "/") + "/"
	}
	var names []string
	for o := range c.ListObjects(ctx, bkt, minio.ListObjectsOptions{Prefix: prefix}) {
		if o.Err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, Classify(o.Err))
		}
		if name, ok := strings.CutSuffix(strings.TrimPrefix(o.Key, prefix), "/"); ok && config.ValidName(name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, nil
}
