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
}

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
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
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
	raw, err := c.small(ctx, path.Join(dir, outbox.ManifestFile))
	if err != nil {
		return m, nil, err
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return m, nil, fmt.Errorf("%s: %w", path.Join(dir, outbox.ManifestFile), err)
	}
	return m, raw, nil
}

// small reads a small object whole.
func (c Clips) small(ctx context.Context, object string) ([]byte, error) {
	o, err := c.Client.GetObject(ctx, c.Bucket, object, minio.GetObjectOptions{})
	if err != nil {
		return nil, Classify(err)
	}
	defer o.Close()
	b, err := io.ReadAll(io.LimitReader(o, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", object, Classify(err))
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
	es, err := c.List(ctx, Filter{ID: id})
	if err != nil {
		return Entry{}, err
	}
	if len(es) == 0 {
		return Entry{}, fmt.Errorf("%w: %s", ErrNoIncident, id)
	}
	return es[0], nil
}

// Get downloads the incident's clip and manifest into dir/<id>/ and
// verifies the clip against the manifest. progress, if set, is called as
// bytes arrive. A clip that does not verify is removed, and the error says
// so.
func (c Clips) Get(ctx context.Context, e Entry, dir string, progress func(done, total int64)) (string, error) {
	out := filepath.Join(dir, e.Manifest.Incident)
	if err := os.MkdirAll(out, 0o750); err != nil {
		return "", err
	}
	o, err := c.Client.GetObject(ctx, c.Bucket, e.Clip(), minio.GetObjectOptions{})
	if err != nil {
		return "", Classify(err)
	}
	defer o.Close()
	tmp := filepath.Join(out, outbox.ClipFile+".part")
	f, err := os.Create(tmp)
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp)
	h := sha256.New()
	w := &progressWriter{w: io.MultiWriter(f, h), total: e.Manifest.Clip.Size, report: progress}
	_, err = io.Copy(w, o)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("download %s: %w", e.Clip(), Classify(err))
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != e.Manifest.Clip.SHA256 {
		return "", fmt.Errorf("%w: downloaded clip has SHA-256 %s, the manifest says %s", ErrNotVerified, got, e.Manifest.Clip.SHA256)
	}
	if err := os.Rename(tmp, filepath.Join(out, outbox.ClipFile)); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(out, outbox.ManifestFile), e.Raw, 0o640); err != nil {
		return "", err
	}
	sig, err := c.signature(ctx, e)
	if err != nil {
		return "", err
	}
	if sig != nil {
		if err := os.WriteFile(filepath.Join(out, outbox.SignatureFile), sig, 0o640); err != nil {
			return "", err
		}
	}
	return out, nil
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
