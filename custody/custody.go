// Package custody keeps an incident's chain of custody in the bucket:
// who viewed, downloaded, shared, held, released, reviewed, annotated,
// marked as a false press, handed over or deleted it, and when. Each event is one small JSON object of its own, written once with
// If-None-Match so that no record replaces another, under a folder of the
// managers' own beside the devices' folders:
//
//	<prefix>/.custody/<store>/<device>/<incident id>/<time>-<action>-<uuid>.json
//
// A device's name starts with a letter or digit, so ".custody" is never a
// store; and clips are found by their manifest.json, which no record is
// named, so listing clips passes the records by. The time an event is
// shown with is the bucket's (S3's Last-Modified), not the clock of the
// machine that wrote it, which the record keeps beside it.
package custody

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"

	"mamoru/bucket"
)

// Dir is the managers' folder of custody records, below the prefix.
const Dir = bucket.CustodyDir

// Action is what was done with an incident.
type Action string

// The actions a record may name.
const (
	View     Action = "view"
	Download Action = "download"
	Share    Action = "share"
	Hold     Action = "hold"
	Release  Action = "release"
	Handover Action = "handover"
	Review   Action = "review" // a manager marked it reviewed
	Note     Action = "note"   // a manager's note, its text in Detail
	// FalsePress marks a press that recorded nothing of concern (a
	// press by mistake, a test).
	FalsePress Action = "false_press"
	// Delete records the incident's deletion, its reason in Detail: the
	// record outlives the clip it names.
	Delete Action = "delete"
)

// actions are the actions above: a name with no "-", for fromName.
var actions = []Action{View, Download, Share, Hold, Release, Handover, Review, Note, FalsePress, Delete}

// Valid reports whether a is one of the actions above.
func (a Action) Valid() bool { return slices.Contains(actions, a) }

// Record is one event, as written.
type Record struct {
	// Time is the writer's clock when it wrote the record; the bucket's
	// own time is the Entry's Stored.
	Time   time.Time `json:"time"`
	Action Action    `json:"action"`
	Actor  string    `json:"actor"`
	// From is where the actor acted from: the address a console's request
	// came from; "" when not known (a command on the manager's machine
	// names that machine in Actor).
	From     string `json:"from,omitempty"`
	Detail   string `json:"detail,omitempty"`
	Incident string `json:"incident"` // store/device/id
}

// Bounds on what a record holds, so that one is always small.
const (
	maxActor  = 256
	maxDetail = 2048
	// maxRecord bounds a record List reads: one written here is far less.
	maxRecord = 16 << 10
)

// ErrBadRecord means a record is not one Add would write: an unknown
// action, an empty or too long actor, a too long detail.
var ErrBadRecord = errors.New("custody: not a record")

// Entry is one record as List finds it.
type Entry struct {
	Record
	Key    string
	Stored time.Time // the bucket's Last-Modified
	// Problem, if set, says why the object under Key could not be read as
	// a record; Record then holds what its name says.
	Problem string
}

// Log is the custody records of a bucket.
type Log struct {
	Client *minio.Client
	Bucket string
	Prefix string // the storage prefix, as the devices' clips have it
}

// Folder is the folder of store/device/id's records, ending in "/".
func (l Log) Folder(store, device, id string) string {
	return path.Join(l.Prefix, Dir, store, device, id) + "/"
}

// Add writes r as a new record of store/device/id, and returns its key.
// It never replaces an object: a key already there (which its random part
// makes all but impossible) fails as the bucket's *bucket.Exists. A key
// without the right to write records gets an error that names the right.
func (l Log) Add(ctx context.Context, store, device, id string, r Record) (string, error) {
	switch {
	case !r.Action.Valid():
		return "", fmt.Errorf("%w: action %q", ErrBadRecord, r.Action)
	case strings.TrimSpace(r.Actor) == "" || len(r.Actor) > maxActor:
		return "", fmt.Errorf("%w: the actor must be 1 to %d bytes (got %d)", ErrBadRecord, maxActor, len(r.Actor))
	case len(r.From) > maxActor:
		return "", fmt.Errorf("%w: from must be at most %d bytes (got %d)", ErrBadRecord, maxActor, len(r.From))
	case len(r.Detail) > maxDetail:
		return "", fmt.Errorf("%w: the detail must be at most %d bytes (got %d)", ErrBadRecord, maxDetail, len(r.Detail))
	}
	r.Incident = store + "/" + device + "/" + id
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	key := l.Folder(store, device, id) + fmt.Sprintf("%s-%s-%s.json", r.Time.UTC().Format(time.RFC3339), r.Action, uuid.New())
	opts := bucket.IfAbsent()
	opts.ContentType = "application/json"
	if _, err := l.Client.PutObject(ctx, l.Bucket, key, bytes.NewReader(b), int64(len(b)), opts); err != nil {
		if bucket.IsAccessDenied(err) {
			return "", fmt.Errorf("custody: write %s: %w (the managers' key needs s3:PutObject on %s/*)", key, bucket.Classify(err), path.Join(l.Prefix, Dir))
		}
		return "", fmt.Errorf("custody: write %s: %w", key, bucket.Classify(err))
	}
	return key, nil
}

// List returns store/device/id's records, oldest first by the bucket's
// clock (then by key). A record it cannot read is listed with Problem set,
// not dropped: a chain of custody that hides an entry is worse than one
// that shows it cannot read it.
func (l Log) List(ctx context.Context, store, device, id string) ([]Entry, error) {
	var es []Entry
	folder := l.Folder(store, device, id)
	for o := range l.Client.ListObjects(ctx, l.Bucket, minio.ListObjectsOptions{Prefix: folder, Recursive: true}) {
		if o.Err != nil {
			return nil, fmt.Errorf("custody: list %s: %w", folder, bucket.Classify(o.Err))
		}
		es = append(es, Entry{Key: o.Key, Stored: o.LastModified})
	}
	for i := range es {
		e := &es[i]
		if err := l.read(ctx, e); err != nil {
			e.Problem = err.Error()
			e.Record = fromName(strings.TrimPrefix(e.Key, folder))
		}
	}
	slices.SortStableFunc(es, func(a, b Entry) int {
		if c := a.Stored.Compare(b.Stored); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	return es, nil
}

func (l Log) read(ctx context.Context, e *Entry) error {
	o, err := l.Client.GetObject(ctx, l.Bucket, e.Key, minio.GetObjectOptions{})
	if err != nil {
		return bucket.Classify(err)
	}
	defer o.Close()
	b, err := io.ReadAll(io.LimitReader(o, maxRecord+1))
	if err != nil {
		return bucket.Classify(err)
	}
	if len(b) > maxRecord {
		return fmt.Errorf("larger than %d bytes", maxRecord)
	}
	if err := json.Unmarshal(b, &e.Record); err != nil {
		return fmt.Errorf("not JSON: %v", err)
	}
	if !e.Record.Action.Valid() {
		return fmt.Errorf("unknown action %q", e.Record.Action)
	}
	return nil
}

// fromName is what a record's name says: <time>-<action>-<uuid>.json.
func fromName(name string) Record {
	var r Record
	t, rest, ok := strings.Cut(strings.TrimSuffix(name, ".json"), "Z-")
	if !ok {
		return r
	}
	r.Time, _ = time.Parse(time.RFC3339, t+"Z")
	if a, _, ok := strings.Cut(rest, "-"); ok && Action(a).Valid() {
		r.Action = Action(a)
	}
	return r
}

// Summary is what an incident's records say, read from their names alone.
type Summary struct {
	Reviewed   bool // a Review record
	FalsePress bool // a FalsePress record
	// Held is true when the latest of the Hold and Release records is a
	// Hold: what managers asked for, not the bucket's own legal hold
	// (bucket.Clips.Held reads that).
	Held    bool
	Deleted bool // a Delete record
	Notes   int  // Note records
	// Records counts every object in the incident's folder, one whose
	// name is not a record's included.
	Records int
	// Last is the bucket's time (Last-Modified) of the latest record.
	Last time.Time
}

// Summaries returns a Summary of every incident with records, keyed by
// "store/device/id": a recursive listing of each device's custody folder,
// which reads no object: a record's action is in its name, and the bucket's
// time in the listing. Records are taken in List's order, by the bucket's
// time and then by key. An object whose place is not
// <store>/<device>/<id>/<name> is passed by.
func (l Log) Summaries(ctx context.Context) (map[string]Summary, error) {
	root := path.Join(l.Prefix, Dir) + "/"
	type named struct {
		incident string
		action   Action
		stored   time.Time
		key      string
	}
	// One listing per device's folder, eight at a time: a listing is a
	// chain of pages, and several chains keep the server busier than one.
	var folders []string
	stores, err := bucket.Folders(ctx, l.Client, l.Bucket, root)
	if err != nil {
		return nil, fmt.Errorf("custody: %w", err)
	}
	for _, st := range stores {
		devices, err := bucket.Folders(ctx, l.Client, l.Bucket, root+st)
		if err != nil {
			return nil, fmt.Errorf("custody: %w", err)
		}
		for _, d := range devices {
			folders = append(folders, root+st+"/"+d+"/")
		}
	}
	lists := make([][]named, len(folders))
	errs := make([]error, len(folders))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, folder := range folders {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			for o := range l.Client.ListObjects(ctx, l.Bucket, minio.ListObjectsOptions{Prefix: folder, Recursive: true}) {
				if o.Err != nil {
					errs[i] = fmt.Errorf("custody: list %s: %w", folder, bucket.Classify(o.Err))
					return
				}
				parts := strings.Split(strings.TrimPrefix(o.Key, root), "/")
				if len(parts) != 4 {
					continue
				}
				lists[i] = append(lists[i], named{strings.Join(parts[:3], "/"), fromName(parts[3]).Action, o.LastModified, o.Key})
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	rs := slices.Concat(lists...)
	slices.SortFunc(rs, func(a, b named) int {
		if c := a.stored.Compare(b.stored); c != 0 {
			return c
		}
		return strings.Compare(a.key, b.key)
	})
	out := make(map[string]Summary)
	for _, r := range rs {
		s := out[r.incident]
		s.Records++
		s.Last = r.stored // sorted: the latest comes last
		switch r.action {
		case Review:
			s.Reviewed = true
		case FalsePress:
			s.FalsePress = true
		case Hold:
			s.Held = true
		case Release:
			s.Held = false
		case Delete:
			s.Deleted = true
		case Note:
			s.Notes++
		}
		out[r.incident] = s
	}
	return out, nil
}
