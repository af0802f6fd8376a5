package bucket

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mamoru/atomicfile"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"

	"mamoru/config"
	"mamoru/outbox"
	"mamoru/signing"
)

// Clips is a manager's view of the bucket: the incidents every device has
// shipped, found by their manifests.
type Clips struct {
	Client *minio.Client
	Bucket string
	Prefix string
	// Keyring is the devices' public keys: Get and VerifyObject check each
	// manifest's signature by it.
	Keyring signing.Keyring
}

// Entry is one incident in the bucket.
type Entry struct {
	Dir      string // the incident's directory in the bucket
	Manifest outbox.Manifest
	Raw      []byte // manifest.json as stored: its signature is over these bytes
}

// Clip is the clip's object name.
func (e Entry) Clip() string { return path.Join(e.Dir, outbox.ClipFile) }

// Filter narrows List.
type Filter struct {
	Since  time.Time // incidents pressed at or after
	Store  string
	Device string
	ID     string // one incident

	// Unreadable, if set, is told of each manifest List skips because it
	// cannot be read (not JSON, or over 1 MiB): one device's bad object
	// must not hide every other incident. err wraps ErrUnreadable and
	// names the object.
	Unreadable func(object string, err error)
}

// ErrUnreadable means a manifest in the bucket is not one: not JSON, or
// larger than any manifest a device writes.
var ErrUnreadable = errors.New("unreadable manifest")

// ErrNoIncident means no incident in the bucket has the id asked for.
var ErrNoIncident = errors.New("no such incident in the bucket")

// List returns the incidents that match f, newest first. An incident is
// listed once its manifest is in the bucket, which the uploader sends last.
func (c Clips) List(ctx context.Context, f Filter) ([]Entry, error) {
	root := c.Prefix
	if f.Store != "" {
		root = path.Join(root, f.Store)
		if f.Device != "" {
			root = path.Join(root, f.Device)
		}
	}
	if root != "" {
		root += "/"
	}
	var dirs []string
	for o := range c.Client.ListObjects(ctx, c.Bucket, minio.ListObjectsOptions{Prefix: root, Recursive: true}) {
		if o.Err != nil {
			return nil, Classify(o.Err)
		}
		if path.Base(o.Key) != outbox.ManifestFile {
			continue
		}
		dir := path.Dir(o.Key)
		if f.ID != "" && path.Base(dir) != f.ID {
			continue
		}
		// Objects are under <store>/<device>/<YYYY>/<MM>/<DD>/<id>: a day
		// older than Since is skipped without reading its manifests.
		if !f.Since.IsZero() && !dayMayHold(dir, f.Since) {
			continue
		}
		if f.Device != "" && f.Store == "" && path.Base(path.Dir(path.Dir(path.Dir(path.Dir(dir))))) != f.Device {
			continue
		}
		dirs = append(dirs, dir)
	}
	entries := make([]Entry, len(dirs))
	errs := make([]error, len(dirs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, dir := range dirs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			m, raw, err := c.manifest(ctx, dir)
			entries[i], errs[i] = Entry{Dir: dir, Manifest: m, Raw: raw}, err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if errors.Is(err, ErrUnreadable) {
			if f.Unreadable != nil {
				f.Unreadable(path.Join(dirs[i], outbox.ManifestFile), err)
			}
			errs[i] = nil
			entries[i].Dir = "" // dropped below
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	entries = slices.DeleteFunc(entries, func(e Entry) bool { return e.Dir == "" })
	entries = slices.DeleteFunc(entries, func(e Entry) bool { return !f.Since.IsZero() && e.Manifest.PressTime.Before(f.Since) })
	slices.SortFunc(entries, func(a, b Entry) int { return b.Manifest.PressTime.Compare(a.Manifest.PressTime) })
	return entries, nil
}

// dayMayHold reports whether the day folder of dir (…/YYYY/MM/DD/id) can
// hold a press at or after since; a day is checked with a day's margin for
// time zones.
func dayMayHold(dir string, since time.Time) bool {
	parts := strings.Split(dir, "/")
	if len(parts) < 4 {
		return true
	}
	day, err := time.Parse("2006/01/02", strings.Join(parts[len(parts)-4:len(parts)-1], "/"))
	if err != nil {
		return true
	}
	return !day.Add(48 * time.Hour).Before(since)
}

func (c Clips) manifest(ctx context.Context, dir string) (outbox.Manifest, []byte, error) {
	var m outbox.Manifest
	object := path.Join(dir, outbox.ManifestFile)
	raw, err := c.small(ctx, object)
	if errors.Is(err, errTooLarge) {
		return m, nil, fmt.Errorf("%w %v", ErrUnreadable, err)
	}
	if err != nil {
		return m, nil, err
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return m, nil, fmt.Errorf("%w %s: %v", ErrUnreadable, object, err)
	}
	return m, raw, nil
}

// smallMax bounds a manifest or a signature: a device writes a few KiB,
// and never a manifest this large.
const smallMax = outbox.MaxManifestBytes

// errTooLarge means an object is larger than its reader allows.
var errTooLarge = errors.New("larger than")

// small reads a small object whole, and refuses one over smallMax.
func (c Clips) small(ctx context.Context, object string) ([]byte, error) {
	return c.readAtMost(ctx, object, smallMax)
}

// readAtMost reads an object whole, and refuses one over max bytes with an
// error wrapping errTooLarge that names it and the bound.
func (c Clips) readAtMost(ctx context.Context, object string, max int64) ([]byte, error) {
	o, err := c.Client.GetObject(ctx, c.Bucket, object, minio.GetObjectOptions{})
	if err != nil {
		return nil, Classify(err)
	}
	defer o.Close()
	b, err := io.ReadAll(io.LimitReader(o, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", object, Classify(err))
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: %w %d bytes", object, errTooLarge, max)
	}
	return b, nil
}

// signature reads the incident's manifest.sig, or nil if it has none.
func (c Clips) signature(ctx context.Context, e Entry) ([]byte, error) {
	b, err := c.small(ctx, path.Join(e.Dir, outbox.SignatureFile))
	if IsNotFound(err) {
		return nil, nil
	}
	return b, err
}

// Find returns the incident r names. A bare id may name incidents of
// several devices (ids are unique per device only), and a copy may sit in
// another day's folder: Find then returns an *AmbiguousError listing every
// one, and never picks one itself.
func (c Clips) Find(ctx context.Context, r Ref) (Entry, error) {
	var unreadable []error
	var unreadableAt []string // their directories below the prefix
	es, err := c.List(ctx, Filter{Store: r.Store, Device: r.Device, ID: r.ID, Unreadable: func(object string, err error) {
		if at := c.place(Entry{Dir: path.Dir(object)}); r.Day == "" || at == r.Place() {
			unreadable, unreadableAt = append(unreadable, err), append(unreadableAt, at)
		}
	}})
	if err != nil {
		return Entry{}, err
	}
	if r.Day != "" {
		es = slices.DeleteFunc(es, func(e Entry) bool { return c.place(e) != r.Place() })
	}
	switch {
	case len(es) == 0 && len(unreadable) > 0:
		return Entry{}, errors.Join(unreadable...)
	case len(es) == 0:
		return Entry{}, fmt.Errorf("%w: %s", ErrNoIncident, r)
	case len(es)+len(unreadable) > 1:
		// An unreadable match counts: it may be the one meant.
		amb := &AmbiguousError{Ref: r}
		for _, e := range es {
			amb.Matches = append(amb.Matches, fmt.Sprintf("%s (at %s)", c.RefOf(e), c.place(e)))
		}
		for _, at := range unreadableAt {
			amb.Matches = append(amb.Matches, fmt.Sprintf("an unreadable manifest at %s", at))
		}
		return Entry{}, amb
	}
	return es[0], nil
}

// ErrAmbiguous means an incident's name fits more than one incident.
var ErrAmbiguous = errors.New("names more than one incident")

// AmbiguousError is a name that fits several incidents, with every match.
type AmbiguousError struct {
	Ref     Ref
	Matches []string // each "store/device/id (at <store>/<device>/<YYYY>/<MM>/<DD>/<id>)"
}

func (e *AmbiguousError) Error() string {
	return e.Heading() + "\n  " + strings.Join(e.Matches, "\n  ")
}

// Heading is the error's first line, before the matches.
func (e *AmbiguousError) Heading() string {
	return fmt.Sprintf("%s %v: name one as store/device/id, or by the place it is at:", e.Ref, ErrAmbiguous)
}

func (e *AmbiguousError) Unwrap() error { return ErrAmbiguous }

// Ref names an incident as a manager types it: store/device/id, or a bare
// id where it is unique in the bucket, or its place below the prefix,
// store/device/YYYY/MM/DD/id, where copies share a store/device/id.
type Ref struct {
	Store, Device string // both or neither
	Day           string // YYYY/MM/DD, or "" for any day
	ID            string
}

func (r Ref) String() string {
	switch {
	case r.Store == "":
		return r.ID
	case r.Day != "":
		return r.Place()
	}
	return r.Store + "/" + r.Device + "/" + r.ID
}

// Place is r's directory below the prefix, when r names a day.
func (r Ref) Place() string { return path.Join(r.Store, r.Device, r.Day, r.ID) }

// ErrBadRef means a string names no incident: not store/device/id or id.
var ErrBadRef = errors.New("not an incident (store/device/id, like shop-1/counter-1/20261123-154502-000042, or its id alone)")

// ParseRef reads "store/device/id", "id" or "store/device/YYYY/MM/DD/id".
// Each part must be well formed, so that none can reach outside the
// prefix or the download directory.
func ParseRef(s string) (Ref, error) {
	parts := strings.Split(s, "/")
	var r Ref
	switch len(parts) {
	case 1:
		r.ID = parts[0]
	case 3, 6:
		r = Ref{Store: parts[0], Device: parts[1], ID: parts[len(parts)-1]}
		if len(parts) == 6 {
			r.Day = strings.Join(parts[2:5], "/")
			if d, err := time.Parse("2006/01/02", r.Day); err != nil || d.Format("2006/01/02") != r.Day {
				return Ref{}, fmt.Errorf("%q is %w", s, ErrBadRef)
			}
		}
		if !config.ValidName(r.Store) || !config.ValidName(r.Device) {
			return Ref{}, fmt.Errorf("%q is %w", s, ErrBadRef)
		}
	default:
		return Ref{}, fmt.Errorf("%q is %w", s, ErrBadRef)
	}
	if !ValidIncidentID(r.ID) {
		return Ref{}, fmt.Errorf("%q: %q is %w", s, r.ID, ErrBadID)
	}
	return r, nil
}

// place is e's directory below the prefix: where its manifest says it
// belongs, if it is where it belongs.
func (c Clips) place(e Entry) string {
	if p := strings.Trim(c.Prefix, "/"); p != "" {
		return strings.TrimPrefix(e.Dir, p+"/")
	}
	return e.Dir
}

// RefOf names e as store/device/id, from its key in the bucket; an object
// not at <store>/<device>/<YYYY>/<MM>/<DD>/<id> gets its manifest's words.
func (c Clips) RefOf(e Entry) Ref {
	parts := strings.Split(c.place(e), "/")
	if len(parts) == 6 {
		return Ref{Store: parts[0], Device: parts[1], ID: parts[5]}
	}
	return Ref{Store: e.Manifest.Store, Device: e.Manifest.Device, ID: e.Manifest.Incident}
}

// incidentID is the form of the ids a device gives its incidents: the
// press time to the second, then the device's counter (device/incident.go).
var incidentID = regexp.MustCompile(`^[0-9]{8}-[0-9]{6}-[0-9]{6,20}$`)

// ValidIncidentID reports whether id is a well-formed incident id, and so a
// safe name for a directory.
func ValidIncidentID(id string) bool { return incidentID.MatchString(id) }

var (
	// ErrBadID means a string is not a well-formed incident id.
	ErrBadID = errors.New("not an incident id (like 20261123-154502-000042)")
	// ErrMisplaced means a manifest's incident, store or device disagree
	// with where it sits in the bucket.
	ErrMisplaced = errors.New("manifest does not match its place in the bucket")
	// ErrExists means a download would replace a file that is already there.
	ErrExists = errors.New("already exists: not replaced")
	// ErrSymlink means a download's directory is a symbolic link, which it
	// does not follow.
	ErrSymlink = errors.New("is a symbolic link: not followed")
)

// checkPlace refuses a manifest whose incident, store or device are not
// those of its key, <prefix>/<store>/<device>/<YYYY>/<MM>/<DD>/<id>: the
// manifest is outside bytes, the key is where the bucket keeps it.
func (c Clips) checkPlace(e Entry) error {
	parts := strings.Split(c.place(e), "/")
	key := path.Join(e.Dir, outbox.ManifestFile)
	m := e.Manifest
	if len(parts) != 6 || !ValidIncidentID(parts[5]) {
		return fmt.Errorf("%w: %s is not at <store>/<device>/<YYYY>/<MM>/<DD>/<incident id>", ErrMisplaced, key)
	}
	if m.Store != parts[0] || m.Device != parts[1] || m.Incident != parts[5] {
		return fmt.Errorf("%w: %s says store %q, device %q, incident %q; its key says %q, %q, %q", ErrMisplaced, key, m.Store, m.Device, m.Incident, parts[0], parts[1], parts[5])
	}
	return nil
}

// Get downloads the incident's clip, manifest and signature into
// dir/<id>/, id being the incident's folder in the bucket, and verifies the
// clip against the manifest and the manifest's signature by the keyring
// (Authenticate). progress, if set, is called as bytes arrive.
//
// The manifest is outside bytes, so Get trusts it for nothing but the
// clip's digest and size: it refuses a manifest that disagrees with its
// key or that Authenticate refuses, a dir/<id> that is a symbolic link,
// and any file already there; it reads no more of the clip than the
// manifest's size. Whatever it refuses, it keeps nothing of the download,
// and the error says why.
func (c Clips) Get(ctx context.Context, e Entry, dir string, progress func(done, total int64)) (out string, a Authenticity, err error) {
	id := path.Base(e.Dir)
	if !ValidIncidentID(id) {
		return "", a, fmt.Errorf("%w: %q", ErrBadID, id)
	}
	if a, err = c.Authenticate(ctx, e); err != nil {
		return "", a, err
	}
	out, err = c.get(ctx, e, dir, a.Sig, progress)
	return out, a, err
}

func (c Clips) get(ctx context.Context, e Entry, dir string, sig []byte, progress func(done, total int64)) (out string, err error) {
	id := path.Base(e.Dir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", err
	}
	out = filepath.Join(dir, id)
	var made []string // what to remove if the download is refused, last first
	defer func() {
		if err != nil {
			for _, p := range slices.Backward(made) {
				os.Remove(p)
			}
		}
	}()
	switch err := os.Mkdir(out, 0o750); {
	case err == nil:
		made = append(made, out)
	case !errors.Is(err, os.ErrExist):
		return "", err
	default:
		fi, err := os.Lstat(out)
		if err != nil {
			return "", err
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			return "", fmt.Errorf("%s %w", out, ErrSymlink)
		}
		if !fi.IsDir() {
			return "", fmt.Errorf("%s %w", out, ErrExists)
		}
	}
	clipPath := filepath.Join(out, outbox.ClipFile)
	for _, name := range []string{outbox.ClipFile, outbox.ManifestFile, outbox.SignatureFile} {
		if _, err := os.Lstat(filepath.Join(out, name)); !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("%s %w", filepath.Join(out, name), ErrExists)
		}
	}

	o, err := c.Client.GetObject(ctx, c.Bucket, e.Clip(), minio.GetObjectOptions{})
	if err != nil {
		return "", Classify(err)
	}
	defer o.Close()
	f, err := os.CreateTemp(out, "."+outbox.ClipFile+".*.part")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	size := e.Manifest.Clip.Size
	h := sha256.New()
	w := &progressWriter{w: io.MultiWriter(f, h), total: size, report: progress}
	n, err := io.Copy(w, io.LimitReader(o, max(size, 0)))
	if err == nil {
		// One byte more than the manifest says is enough to refuse it.
		var extra [1]byte
		if k, _ := io.ReadFull(o, extra[:]); k > 0 {
			err = fmt.Errorf("%w: %s is larger than the %d bytes its manifest says", ErrNotVerified, e.Clip(), size)
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, ErrNotVerified) {
		return "", err
	}
	if err != nil {
		return "", fmt.Errorf("download %s: %w", e.Clip(), Classify(err))
	}
	if err := compare(e.Manifest, hex.EncodeToString(h.Sum(nil)), n); err != nil {
		return "", fmt.Errorf("%s: %w", e.Clip(), err)
	}
	if err := linkNew(f.Name(), clipPath); err != nil {
		return "", err
	}
	made = append(made, clipPath)
	files := []struct {
		name string
		b    []byte
	}{{outbox.ManifestFile, e.Raw}, {outbox.SignatureFile, sig}}
	for _, file := range files {
		if file.b == nil {
			continue
		}
		p := filepath.Join(out, file.name)
		if err := writeNew(p, file.b); err != nil {
			return "", err
		}
		made = append(made, p)
	}
	return out, nil
}

// writeNew writes b to a new file p. O_EXCL with O_CREATE fails on any
// existing name, a symbolic link included, so it neither replaces a file
// nor writes through a link.
func writeNew(p string, b []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s %w", p, ErrExists)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(p)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(p)
		return err
	}
	return nil
}

// linkNew gives the finished file tmp its name p, refusing to replace
// anything there (ErrExists).
func linkNew(tmp, p string) error {
	if err := atomicfile.LinkNew(tmp, p); errors.Is(err, atomicfile.ErrExists) {
		return fmt.Errorf("%s %w", p, ErrExists)
	} else if err != nil {
		return err
	}
	return nil
}

type progressWriter struct {
	w      io.Writer
	done   int64
	total  int64
	report func(done, total int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.done += int64(n)
	if p.report != nil {
		p.report(p.done, p.total)
	}
	return n, err
}

// ErrNotVerified means a clip's bytes do not match its manifest.
var ErrNotVerified = errors.New("NOT VERIFIED")

// VerifyObject checks the incident where it is in the bucket: its
// manifest's signature by the keyring (Authenticate), then the clip,
// streamed through SHA-256, against the manifest.
func (c Clips) VerifyObject(ctx context.Context, e Entry) (Authenticity, error) {
	a, err := c.Authenticate(ctx, e)
	if err != nil {
		return a, err
	}
	o, err := c.Client.GetObject(ctx, c.Bucket, e.Clip(), minio.GetObjectOptions{})
	if err != nil {
		return a, Classify(err)
	}
	defer o.Close()
	h := sha256.New()
	n, err := io.Copy(h, o)
	if err != nil {
		return a, fmt.Errorf("read %s: %w", e.Clip(), Classify(err))
	}
	return a, compare(e.Manifest, hex.EncodeToString(h.Sum(nil)), n)
}

// VerifyLocal checks a downloaded incident: p is its directory, or its
// clip.mp4 with manifest.json beside it. Its manifest.sig is judged by kr
// (Authenticate); where the incident lay in the bucket is not known here,
// so a manifest bound to its place is checked only to name a place of its
// own store, device and incident.
func VerifyLocal(p string, kr signing.Keyring) (outbox.Manifest, Authenticity, error) {
	dir := p
	if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
		dir = filepath.Dir(p)
	}
	var m outbox.Manifest
	var a Authenticity
	b, err := os.ReadFile(filepath.Join(dir, outbox.ManifestFile))
	if err != nil {
		return m, a, fmt.Errorf("%w: %v", outbox.ErrBadManifest, err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, a, fmt.Errorf("%w: %s: %v", outbox.ErrBadManifest, filepath.Join(dir, outbox.ManifestFile), err)
	}
	sig, err := os.ReadFile(filepath.Join(dir, outbox.SignatureFile))
	if errors.Is(err, os.ErrNotExist) {
		sig, err = nil, nil
	}
	if err != nil {
		return m, a, err
	}
	if a, err = Authenticate(m, b, sig, "", kr); err != nil {
		return m, a, err
	}
	f, err := os.Open(filepath.Join(dir, outbox.ClipFile))
	if err != nil {
		return m, a, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return m, a, err
	}
	return m, a, compare(m, hex.EncodeToString(h.Sum(nil)), n)
}

func compare(m outbox.Manifest, sum string, size int64) error {
	if sum != m.Clip.SHA256 || size != m.Clip.Size {
		return fmt.Errorf("%w: clip has SHA-256 %s (%d bytes), the manifest says %s (%d bytes)", ErrNotVerified, sum, size, m.Clip.SHA256, m.Clip.Size)
	}
	return nil
}

// Share returns a URL that plays the incident's clip in a browser until it
// expires (at most 7 days, S3's limit for signed URLs).
func (c Clips) Share(ctx context.Context, e Entry, expires time.Duration) (*url.URL, error) {
	if expires <= 0 || expires > 7*24*time.Hour {
		return nil, fmt.Errorf("--expires must be between 1s and 168h (got %s)", expires)
	}
	params := url.Values{}
	params.Set("response-content-type", "video/mp4")
	params.Set("response-content-disposition", fmt.Sprintf("inline; filename=%q", e.Manifest.Incident+".mp4"))
	u, err := c.Client.PresignedGetObject(ctx, c.Bucket, e.Clip(), expires, params)
	return u, Classify(err)
}
