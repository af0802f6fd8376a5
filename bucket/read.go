package bucket

import (
	"context"
	"path"
)

// Read returns the incident whose objects are in dir (its manifest's
// folder, with the prefix), reading its manifest.json: the console lists
// incidents by their keys alone and reads each manifest when it is shown.
// A manifest that is not one wraps ErrUnreadable.
func (c Clips) Read(ctx context.Context, dir string) (Entry, error) {
	m, raw, err := c.manifest(ctx, path.Clean(dir))
	if err != nil {
		return Entry{}, err
	}
	return Entry{Dir: path.Clean(dir), Manifest: m, Raw: raw}, nil
}
