package bucket

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

	"mamoru/outbox"
)

// Clips is a manager's view of the bucket: the incidents every device has
// shipped, found by their manifests.
type Clips struct {
	Client *minio.Client
	Bucket string
	Prefix string
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
		return m, nil, fmt.Errorf("%w %s: %v", ErrUnreadable, object, errTooLarge)
	}
	if err != nil {
		return m, nil, err
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return m, nil, fmt.Errorf("%w %s: %v", ErrUnreadable, object, err)
	}
	return m, raw, nil
}

// smallMax bounds a manifest or a signature: a device writes a few KiB.
const smallMax = 1 << 20

var errTooLarge = fmt.Errorf("larger than %d bytes", smallMax)

// small reads a small object whole, and refuses one over smallMax.
func (c Clips) small(ctx context.Context, object string) ([]byte, error) {
	o, err := c.Client.GetObject(ctx, c.Bucket, object, minio.GetObjectOptions{})
	if err != nil {
		return nil, Classify(err)
	}
	defer o.Close()
	b, err := io.ReadAll(io.LimitReader(o, smallMax+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", object, Classify(err))
	}
	if len(b) > smallMax {
		return nil, fmt.Errorf("%s: %w", object, errTooLarge)
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

// ErrBadSignature means a manifest is not signed by the device's key, or
// not signed at all when a key was given.
var ErrBadSignature = errors.New("SIGNATURE NOT VERIFIED")

// checkSignature verifies sig (manifest.sig's content) over raw with pub.
func checkSignature(raw, sig []byte, pub ed25519.PublicKey) error {
	if sig == nil {
		return fmt.Errorf("%w: the incident has no %s", ErrBadSignature, outbox.SignatureFile)
	}
	s, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sig)))
	if err != nil || !ed25519.Verify(pub, raw, s) {
		return fmt.Errorf("%w: %s does not match manifest.json and this device's public key: the manifest was altered, or another device signed it", ErrBadSignature, outbox.SignatureFile)
	}
	return nil
}

// Find returns the incident with id.
func (c Clips) Find(ctx context.Context, id string) (Entry, error) {
	var unreadable []error
	es, err := c.List(ctx, Filter{ID: id, Unreadable: func(_ string, err error) { unreadable = append(unreadable, err) }})
	if err != nil {
		return Entry{}, err
	}
	if len(es) == 0 && len(unreadable) > 0 {
		return Entry{}, errors.Join(unreadable...)
	}
	if len(es) == 0 {
		return Entry{}, fmt.Errorf("%w: %s", ErrNoIncident, id)
	}
	return es[0], nil
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
	rel := e.Dir
	if p := strings.Trim(c.Prefix, "/"); p != "" {
		rel = strings.TrimPrefix(rel, p+"/")
	}
	parts := strings.Split(rel, "/")
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
// clip against the manifest. progress, if set, is called as bytes arrive.
//
// The manifest is outside bytes, so Get trusts it for nothing but the
// clip's digest and size: it refuses a manifest that disagrees with its
// key, a dir/<id> that is a symbolic link, and any file already there;
// it reads no more of the clip than the manifest's size. Whatever it
// refuses, it keeps nothing of the download, and the error says why.
func (c Clips) Get(ctx context.Context, e Entry, dir string, progress func(done, total int64)) (out string, err error) {
	id := path.Base(e.Dir)
	if !ValidIncidentID(id) {
		return "", fmt.Errorf("%w: %q", ErrBadID, id)
	}
	if err := c.checkPlace(e); err != nil {
		return "", err
	}
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
	sig, err := c.signature(ctx, e)
	if err != nil {
		return "", err
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
// anything there: a hard link fails on an existing name, where a rename
// would replace it. A file system without hard links (FAT on a USB stick)
// gets a rename after a check.
func linkNew(tmp, p string) error {
	err := os.Link(tmp, p)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s %w", p, ErrExists)
	}
	if err == nil {
		return nil
	}
	if _, lerr := os.Lstat(p); !errors.Is(lerr, os.ErrNotExist) {
		return fmt.Errorf("%s %w", p, ErrExists)
	}
	return os.Rename(tmp, p)
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

// VerifyObject streams the incident's clip from the bucket through SHA-256
// and compares it with the manifest, and with pub (if not nil) checks the
// manifest's signature.
func (c Clips) VerifyObject(ctx context.Context, e Entry, pub ed25519.PublicKey) error {
	if pub != nil {
		sig, err := c.signature(ctx, e)
		if err != nil {
			return err
		}
		if err := checkSignature(e.Raw, sig, pub); err != nil {
			return err
		}
	}
	o, err := c.Client.GetObject(ctx, c.Bucket, e.Clip(), minio.GetObjectOptions{})
	if err != nil {
		return Classify(err)
	}
	defer o.Close()
	h := sha256.New()
	n, err := io.Copy(h, o)
	if err != nil {
		return fmt.Errorf("read %s: %w", e.Clip(), Classify(err))
	}
	return compare(e.Manifest, hex.EncodeToString(h.Sum(nil)), n)
}

// VerifyLocal checks a downloaded incident: p is its directory, or its
// clip.mp4 with manifest.json beside it. With pub, manifest.sig must be a
// signature of manifest.json by that device's key.
func VerifyLocal(p string, pub ed25519.PublicKey) (outbox.Manifest, error) {
	dir := p
	if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
		dir = filepath.Dir(p)
	}
	var m outbox.Manifest
	b, err := os.ReadFile(filepath.Join(dir, outbox.ManifestFile))
	if err != nil {
		return m, fmt.Errorf("%w: %v", outbox.ErrBadManifest, err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%w: %s: %v", outbox.ErrBadManifest, filepath.Join(dir, outbox.ManifestFile), err)
	}
	if pub != nil {
		sig, err := os.ReadFile(filepath.Join(dir, outbox.SignatureFile))
		if errors.Is(err, os.ErrNotExist) {
			sig, err = nil, nil
		}
		if err != nil {
			return m, err
		}
		if err := checkSignature(b, sig, pub); err != nil {
			return m, err
		}
	}
	f, err := os.Open(filepath.Join(dir, outbox.ClipFile))
	if err != nil {
		return m, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return m, err
	}
	return m, compare(m, hex.EncodeToString(h.Sum(nil)), n)
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
