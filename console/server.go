// Package console is the managers' console: a web server that shows the
// incidents every device shipped to the bucket, plays them, and lets a
// manager review, keep, share, hand over and delete them.
//
// It keeps no state of its own. Incidents are listed from the bucket's
// keys (Index), manifests are read when shown, and every review, hold,
// share, hand-over, deletion and view is a record in the bucket's chain of
// custody (package custody), so any number of consoles serve the same
// shops and agree. Who may do what is package access's business; the
// console asks it who a request is from (access.UserOf) and records that
// name.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"

	"mamoru/bucket"
	"mamoru/config"
	"mamoru/console/access"
	"mamoru/custody"
	"mamoru/fleet"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Options are what a Server serves.
type Options struct {
	// Clips is the bucket, with the manager's credentials and the keyring
	// that decides what is verified.
	Clips bucket.Clips
	// Zone shows times in the devices' zone ([device] timezone of the
	// manager's configuration).
	Zone *time.Location
	// Now is the console's clock; nil is time.Now.
	Now func() time.Time
	// Log records what the console does; nil discards it.
	Log *slog.Logger
	// PageSize is how many incidents a page of the inbox shows; 0 is 50.
	PageSize int
	// Handover builds an incident's hand-over package (handover.Make)
	// into dir, by the person named, acting from the address from, and
	// returns its path.
	Handover func(ctx context.Context, e bucket.Entry, by, from, dir string) (string, error)
}

// Server is the console's pages and API.
type Server struct {
	o        Options
	index    *Index
	verifier *verifier
	pages    *pages
	custody  custody.Log

	mu        sync.Mutex // guards manifests
	manifests map[string]manifestRead

	// Checks in the background (checkLater) run under ctx and are
	// counted in checks; Close ends them.
	ctx    context.Context
	cancel context.CancelFunc
	checks sync.WaitGroup
}

// manifestRead is a manifest as read for one ETag.
type manifestRead struct {
	etag string
	e    bucket.Entry
	err  error
}

// New returns a console serving o.
func New(o Options) (*Server, error) {
	if o.Clips.Client == nil {
		return nil, errors.New("console: no bucket")
	}
	if o.Zone == nil {
		o.Zone = time.Local
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.PageSize <= 0 {
		o.PageSize = 50
	}
	p, err := loadPages()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		ctx:       ctx,
		cancel:    cancel,
		o:         o,
		index:     &Index{Client: o.Clips.Client, Bucket: o.Clips.Bucket, Prefix: o.Clips.Prefix, Now: o.Now},
		pages:     p,
		custody:   custody.Log{Client: o.Clips.Client, Bucket: o.Clips.Bucket, Prefix: o.Clips.Prefix},
		manifests: map[string]manifestRead{},
	}
	s.verifier = newVerifier(o.Clips, s.entry, o.Now, 2)
	return s, nil
}

// Register adds the console's routes to mux. Those that change what the
// bucket holds, or hand a clip out, require the permission access names.
func (s *Server) Register(mux *http.ServeMux) {
	static, _ := fs.Sub(staticFiles, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", s.inbox)
	mux.HandleFunc("GET /devices", s.devices)
	mux.HandleFunc("GET /incidents/{store}/{device}/{id}", s.incident)
	mux.HandleFunc("GET /media/{store}/{device}/{id}/clip.mp4", s.media)
	mux.HandleFunc("GET /incidents/{store}/{device}/{id}/viewing-copy.mp4", s.viewingCopy)
	need := func(a access.Action, f http.HandlerFunc) http.Handler { return access.Require(a, f) }
	mux.Handle("POST /incidents/{store}/{device}/{id}/review", need(access.Review, s.review))
	mux.Handle("POST /incidents/{store}/{device}/{id}/hold", need(access.Hold, s.hold))
	mux.Handle("POST /incidents/{store}/{device}/{id}/share", need(access.Share, s.share))
	mux.Handle("POST /incidents/{store}/{device}/{id}/handover", need(access.Handover, s.handover))
	mux.Handle("POST /incidents/{store}/{device}/{id}/delete", need(access.Delete, s.delete))
	mux.HandleFunc("GET /api/incidents", s.apiIncidents)
	mux.HandleFunc("GET /api/incidents/{store}/{device}/{id}", s.apiIncident)
	mux.HandleFunc("GET /api/devices", s.apiDevices)
}

// Secure adds to every answer of h the headers that keep the console's
// pages out of other sites' frames (a delete button under someone else's
// page) and its scripts and media to its own origin. Inline styles are
// allowed (the login page has its own); inline scripts are not.
func Secure(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; media-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}

// Close stops the checks running in the background and waits for them.
func (s *Server) Close() {
	s.cancel()
	s.checks.Wait()
}

// Warm lists the bucket once, so that the first page a manager opens is
// served from the listing.
func (s *Server) Warm(ctx context.Context) error {
	_, err := s.index.Get(ctx)
	return err
}

// entry returns it's manifest, read once per ETag.
func (s *Server) entry(ctx context.Context, it Item) (bucket.Entry, error) {
	s.mu.Lock()
	r, ok := s.manifests[it.Dir]
	s.mu.Unlock()
	if ok && r.etag == it.ManifestETag {
		return r.e, r.err
	}
	e, err := s.o.Clips.Read(ctx, it.Dir)
	if ctx.Err() != nil {
		return e, err
	}
	s.mu.Lock()
	s.manifests[it.Dir] = manifestRead{etag: it.ManifestETag, e: e, err: err}
	s.mu.Unlock()
	return e, err
}

// entries reads the manifests of items, eight at a time.
func (s *Server) entries(ctx context.Context, items []Item) ([]bucket.Entry, []error) {
	es, errs := make([]bucket.Entry, len(items)), make([]error, len(items))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, it := range items {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			es[i], errs[i] = s.entry(ctx, it)
		})
	}
	wg.Wait()
	return es, errs
}

// Query is what the inbox shows: its filters and page.
type Query struct {
	Store, Device string
	Since, Until  string // YYYY-MM-DD in the devices' zone, inclusive
	Unreviewed    bool
	Page          int // from 1
}

// ErrBadQuery means a filter is not one the inbox knows.
var ErrBadQuery = errors.New("bad filter")

// parseQuery reads the inbox's filters from a request's query string.
func parseQuery(r *http.Request) (Query, error) {
	v := r.URL.Query()
	q := Query{Store: v.Get("store"), Device: v.Get("device"), Since: v.Get("since"), Until: v.Get("until"), Page: 1}
	for _, n := range []struct{ key, val string }{{"store", q.Store}, {"device", q.Device}} {
		if n.val != "" && !config.ValidName(n.val) {
			return q, fmt.Errorf("%w: %s=%q is not a store or device name", ErrBadQuery, n.key, n.val)
		}
	}
	for _, d := range []struct{ key, val string }{{"since", q.Since}, {"until", q.Until}} {
		if d.val == "" {
			continue
		}
		if _, err := time.Parse(time.DateOnly, d.val); err != nil {
			return q, fmt.Errorf("%w: %s=%q is not a date YYYY-MM-DD", ErrBadQuery, d.key, d.val)
		}
	}
	switch v.Get("unreviewed") {
	case "", "0", "false":
	case "1", "true", "on":
		q.Unreviewed = true
	default:
		return q, fmt.Errorf("%w: unreviewed=%q is not 1 or 0", ErrBadQuery, v.Get("unreviewed"))
	}
	if p := v.Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 {
			return q, fmt.Errorf("%w: page=%q is not a page number", ErrBadQuery, p)
		}
		q.Page = n
	}
	return q, nil
}

// reviewed reports whether a manager has dealt with the incident: marked
// it reviewed, or a false press.
func reviewed(s custody.Summary) bool { return s.Reviewed || s.FalsePress }

// filter returns the items q selects, newest first.
func (q Query) filter(snap Snapshot) []Item {
	since := strings.ReplaceAll(q.Since, "-", "/")
	until := strings.ReplaceAll(q.Until, "-", "/")
	var out []Item
	for _, it := range snap.Items {
		switch {
		case q.Store != "" && it.Store != q.Store,
			q.Device != "" && it.Device != q.Device,
			since != "" && it.Day < since,
			until != "" && it.Day > until,
			q.Unreviewed && reviewed(snap.Records[it.Name()]):
			continue
		}
		out = append(out, it)
	}
	return out
}

// StoreCount is one store's incidents, and how many await review.
type StoreCount struct {
	Store                 string
	Incidents, Unreviewed int
}

// counts is each store's incidents, by store name.
func counts(snap Snapshot) []StoreCount {
	by := map[string]*StoreCount{}
	for _, it := range snap.Items {
		c := by[it.Store]
		if c == nil {
			c = &StoreCount{Store: it.Store}
			by[it.Store] = c
		}
		c.Incidents++
		if !reviewed(snap.Records[it.Name()]) {
			c.Unreviewed++
		}
	}
	out := make([]StoreCount, 0, len(by))
	for _, c := range by {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b StoreCount) int { return strings.Compare(a.Store, b.Store) })
	return out
}

// find returns the incident a path names, from the index; day, if not
// "", picks one of several copies. others are the days of any other
// incident of that name (a copy in another day's folder).
func (s *Server) find(ctx context.Context, r *http.Request) (it Item, others []string, err error) {
	store, device, id := r.PathValue("store"), r.PathValue("device"), r.PathValue("id")
	ref, err := bucket.ParseRef(store + "/" + device + "/" + id)
	if err != nil {
		return Item{}, nil, err
	}
	day := r.URL.Query().Get("day")
	for _, again := range []bool{false, true} {
		if again {
			s.index.forget() // perhaps uploaded since the last listing
		}
		snap, err := s.index.Get(ctx)
		if err != nil {
			return Item{}, nil, err
		}
		var match []Item
		for _, x := range snap.Items {
			if x.Store == ref.Store && x.Device == ref.Device && x.ID == ref.ID {
				match = append(match, x)
			}
		}
		if len(match) == 0 {
			continue
		}
		pick := 0
		for i, x := range match {
			if x.Day == day {
				pick = i
			}
		}
		for i, x := range match {
			if i != pick {
				others = append(others, x.Day)
			}
		}
		return match[pick], others, nil
	}
	return Item{}, nil, fmt.Errorf("%w: %s", bucket.ErrNoIncident, ref)
}

// actor names who made a request for the chain of custody: the console
// user, and the address the request came from.
func actor(r *http.Request) (who, from string) {
	u, _ := access.UserOf(r)
	from = r.RemoteAddr
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		from = host
	}
	return u.Name, from
}

// record adds a record of action on it to the chain of custody.
func (s *Server) record(ctx context.Context, r *http.Request, it Item, action custody.Action, detail string) error {
	who, from := actor(r)
	_, err := s.custody.Add(ctx, it.Store, it.Device, it.ID, custody.Record{Time: s.o.Now(), Action: action, Actor: who, From: from, Detail: detail})
	if err != nil {
		return fmt.Errorf("%w (the console's key needs s3:PutObject on %s/*: see 'mamoru storage init')", err, path.Join(s.o.Clips.Prefix, custody.Dir))
	}
	return nil
}

// fleet reads the devices' health reports.
func (s *Server) fleet(ctx context.Context) ([]fleet.Device, error) {
	b := fleet.Bucket{Client: &minio.Core{Client: s.o.Clips.Client}, Bucket: s.o.Clips.Bucket, Prefix: s.o.Clips.Prefix}
	return b.Scan(ctx, fleet.Options{Now: s.o.Now})
}
