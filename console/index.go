package console

import (
	"context"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"

	"mamoru/bucket"
	"mamoru/custody"
	"mamoru/outbox"
)

// Item is one incident as the bucket's keys show it, before its manifest
// is read: enough to list, sort and filter an inbox of any size.
type Item struct {
	Store, Device string
	Day           string // YYYY/MM/DD, the device's day of the press
	ID            string
	Dir           string // the incident's folder, with the prefix

	// The ETags of its objects when they were listed: a manifest or clip
	// written over gets another, and what was judged of the old one is
	// judged again.
	ManifestETag, ClipETag, SigETag string
	ClipSize                        int64
}

// Name is the incident as store/device/id, the way alerts and the
// console's paths name it.
func (it Item) Name() string { return it.Store + "/" + it.Device + "/" + it.ID }

// version says which bytes a judgement of it was made on.
func (it Item) version() string { return it.ManifestETag + "/" + it.ClipETag + "/" + it.SigETag }

// Index lists the incidents in the bucket from their keys alone
// (<prefix>/<store>/<device>/<YYYY>/<MM>/<DD>/<id>/manifest.json), newest
// first: an incident's id starts with its press time in the device's
// zone, so ordering by day and id needs no manifest. A listing older than
// MaxAge is still served while the next one runs in the background, so
// that only a console's first page waits for the bucket; requests that
// need the next listing wait for the one under way rather than start
// another.
type Index struct {
	Client *minio.Client
	Bucket string
	Prefix string
	// MaxAge is how long a listing serves before the next is started;
	// 0 is 10 s.
	MaxAge time.Duration
	Now    func() time.Time

	mu      sync.Mutex // guards the fields below
	snap    Snapshot
	stale   staleness
	running chan struct{} // closed when the listing under way ends
	err     error         // the last listing's
}

// staleness is how much of a snapshot must be listed again before it is
// served.
type staleness int

const (
	current     staleness = iota
	recordsOnly           // the chain of custody changed
	everything            // an incident was deleted, or none is listed yet
)

// Snapshot is the index at one listing.
type Snapshot struct {
	Items   []Item                     // newest first
	Records map[string]custody.Summary // by Item.Name
	Listed  time.Time
}

// Get returns the index. It waits for a listing only when there is none
// yet or the console changed the bucket (forget, forgetRecords); a
// listing older than MaxAge is returned while the next is made.
func (x *Index) Get(ctx context.Context) (Snapshot, error) {
	maxAge := x.MaxAge
	if maxAge <= 0 {
		maxAge = 10 * time.Second
	}
	for {
		x.mu.Lock()
		if x.snap.Listed.IsZero() {
			x.stale = everything
		}
		if x.stale == current {
			s := x.snap
			if x.running == nil && x.now().Sub(s.Listed) >= maxAge {
				x.start(context.WithoutCancel(ctx), everything)
			}
			x.mu.Unlock()
			return s, nil
		}
		done := x.running
		if done == nil {
			done = x.start(context.WithoutCancel(ctx), x.stale)
		}
		x.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return Snapshot{}, ctx.Err()
		}
		x.mu.Lock()
		err, stale := x.err, x.stale
		x.mu.Unlock()
		if err != nil && stale != current {
			return Snapshot{}, err
		}
		// Else the listing that ended served, or began before a change
		// that needs another: look again.
	}
}

// start begins a listing of what is stale, unless one runs, and returns
// the channel that closes when it ends. x.mu is held.
func (x *Index) start(ctx context.Context, what staleness) chan struct{} {
	done := make(chan struct{})
	x.running = done
	stale := x.stale
	x.stale = current // changes from now on mark it again
	old := x.snap
	go func() {
		var s Snapshot
		var err error
		if what == recordsOnly && !old.Listed.IsZero() {
			s = old
			s.Records, err = x.records(ctx)
		} else {
			s.Items, s.Records, err = x.list(ctx)
		}
		s.Listed = x.now()
		if what == recordsOnly {
			s.Listed = old.Listed // the incidents are as old as they were
		}
		x.mu.Lock()
		if err == nil {
			x.snap = s
		} else {
			x.stale = max(x.stale, stale)
		}
		x.err, x.running = err, nil
		close(done)
		x.mu.Unlock()
	}()
	return done
}

// forget makes the next Get list the bucket again before it answers: the
// console has just deleted an incident.
func (x *Index) forget() {
	x.mu.Lock()
	x.stale = everything
	x.mu.Unlock()
}

// forgetRecords makes the next Get list the chain of custody again before
// it answers: the console has just added a record.
func (x *Index) forgetRecords() {
	x.mu.Lock()
	x.stale = max(x.stale, recordsOnly)
	x.mu.Unlock()
}

func (x *Index) now() time.Time {
	if x.Now != nil {
		return x.Now()
	}
	return time.Now()
}

// records lists the chain of custody's records by their names.
func (x *Index) records(ctx context.Context) (map[string]custody.Summary, error) {
	return custody.Log{Client: x.Client, Bucket: x.Bucket, Prefix: x.Prefix}.Summaries(ctx)
}

// list reads the keys of every incident, and the names of the chain of
// custody's records, at the same time.
func (x *Index) list(ctx context.Context) ([]Item, map[string]custody.Summary, error) {
	var (
		records map[string]custody.Summary
		rerr    error
		wg      sync.WaitGroup
	)
	wg.Go(func() { records, rerr = x.records(ctx) })
	items, err := x.incidents(ctx)
	wg.Wait()
	if err == nil {
		err = rerr
	}
	return items, records, err
}

// incidents lists the incidents' objects, store by store, each store's
// devices at the same time: a listing is a chain of pages, and one per
// device lets the server work on several chains at once.
func (x *Index) incidents(ctx context.Context) ([]Item, error) {
	root := x.root()
	var devices []string
	stores, err := bucket.Folders(ctx, x.Client, x.Bucket, root)
	if err != nil {
		return nil, err
	}
	for _, s := range stores {
		ds, err := bucket.Folders(ctx, x.Client, x.Bucket, root+s)
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			devices = append(devices, s+"/"+d)
		}
	}
	lists := make([][]Item, len(devices))
	errs := make([]error, len(devices))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, d := range devices {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			lists[i], errs[i] = x.device(ctx, root+d+"/")
		})
	}
	wg.Wait()
	var items []Item
	for i := range lists {
		if errs[i] != nil {
			return nil, errs[i]
		}
		items = append(items, lists[i]...)
	}
	slices.SortFunc(items, func(a, b Item) int {
		if c := strings.Compare(b.ID, a.ID); c != 0 {
			return c
		}
		return strings.Compare(a.Dir, b.Dir)
	})
	return items, nil
}

// root is the prefix as a folder: "" or "<prefix>/".
func (x *Index) root() string {
	if p := strings.Trim(x.Prefix, "/"); p != "" {
		return p + "/"
	}
	return ""
}

// device lists one device's incidents: the objects in its day folders.
// Its audit log and health.json are passed by.
func (x *Index) device(ctx context.Context, dir string) ([]Item, error) {
	parts := strings.Split(strings.TrimSuffix(dir, "/"), "/")
	store, device := parts[len(parts)-2], parts[len(parts)-1]
	byDir := map[string]*Item{}
	var order []string
	for o := range x.Client.ListObjects(ctx, x.Bucket, minio.ListObjectsOptions{Prefix: dir, Recursive: true}) {
		if o.Err != nil {
			return nil, bucket.Classify(o.Err)
		}
		rest := strings.Split(strings.TrimPrefix(o.Key, dir), "/")
		if len(rest) != 5 || len(rest[0]) != 4 || !bucket.ValidIncidentID(rest[3]) {
			continue
		}
		d := path.Dir(o.Key)
		it := byDir[d]
		if it == nil {
			it = &Item{Store: store, Device: device, Day: strings.Join(rest[:3], "/"), ID: rest[3], Dir: d}
			byDir[d] = it
			order = append(order, d)
		}
		switch rest[4] {
		case outbox.ManifestFile:
			it.ManifestETag = o.ETag
		case outbox.ClipFile:
			it.ClipETag, it.ClipSize = o.ETag, o.Size
		case outbox.SignatureFile:
			it.SigETag = o.ETag
		}
	}
	items := make([]Item, 0, len(order))
	for _, d := range order {
		// An incident is in the bucket once its manifest is: the uploader
		// sends it last.
		if it := byDir[d]; it.ManifestETag != "" {
			items = append(items, *it)
		}
	}
	return items, nil
}
