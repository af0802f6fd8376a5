package uploader

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"

	"mamoru/bucket"
	"mamoru/outbox"
	"mamoru/signing"
)

// ProgressFile records, inside an incident directory, how far its upload
// has got, so that a restart resumes it without sending finished parts
// again.
const ProgressFile = "upload.json"

// progress is ProgressFile's content.
type progress struct {
	Object   string `json:"object"`    // the clip's object name
	ClipHash string `json:"clip_hash"` // the clip's SHA-256 this progress is for
	PartSize int64  `json:"part_size"`
	UploadID string `json:"upload_id,omitempty"`
	Parts    []part `json:"parts,omitempty"`
	// ClipDone is set once the clip's object is complete and checked, and
	// Checked says how (one of the checked constants).
	ClipDone bool   `json:"clip_done,omitempty"`
	Checked  string `json:"checked,omitempty"`
	// Began are the objects this device has asked the server to create
	// (a PUT, or a multipart upload's completion), each recorded durably
	// before the request goes, and taken off when the attempt is seen to
	// have created nothing (never written whole, or refused). Every write
	// is write-once, so a retry of one whose answer was lost (a crash, a
	// power cut) finds its object there and is refused (412): only an
	// object listed here may then count as this device's own.
	Began []string `json:"began,omitempty"`
	// Theirs are the objects found already written on this device's first
	// request for them: never this device's, however often it retries.
	Theirs []string `json:"theirs,omitempty"`
}

// How an object in the bucket was checked against what was sent, strongest
// first. A device with the write-only credentials 'storage init' prints
// cannot stat, so it relies on the server's answers.
const (
	// checkedStat: the object's size and SHA-256, read back with a stat.
	checkedStat = "stat"
	// checkedServer: the server's answer to the upload gave back the
	// SHA-256 that was sent, so it verified the body against it.
	checkedServer = "server checksum"
	// checkedSigned: the server said nothing of the checksum, but the
	// request's signature covered the body's SHA-256, which the server
	// must verify before it stores the body.
	checkedSigned = "signed body"
	// checkedEarlier: the object was already there, from a request of this
	// device that reached the server whole and whose answer was lost; that
	// request's signature covered the body's SHA-256.
	checkedEarlier = "earlier upload, signed body"
)

// part is one finished part of a multipart upload.
type part struct {
	Number int    `json:"number"`
	ETag   string `json:"etag"`
	SHA256 string `json:"sha256"` // base64, as S3 carries it
	Size   int64  `json:"size"`
}

// shipper sends one incident: the clip, checked, then the manifest.
type shipper struct {
	client   *minio.Core
	bucket   string
	dir      string
	object   string // directory in the bucket
	manifest outbox.Manifest
	partSize int64
	limit    *Limiter
	key      signing.Key // signs the manifest, if valid
	// sent counts the clip bytes handed to the server, for status.
	sent func(n int64)
	// checked says how the clip was checked, once it is in the bucket.
	checked string
	// lock and now lock each object written until now + lock.Days; now is
	// the wall clock, known to be set (NTP) when lock is on.
	lock bucket.Lock
	now  time.Time
	// p is the incident's progress, saved before each write it records.
	p progress
}

// readProgress returns the saved progress if it is for this clip and this
// part size and its parts can be parts of it, or a fresh one. The file is
// only ever written whole, but a card can still corrupt it, and an upload
// completed from parts that are not the clip's would fail for ever.
func (s *shipper) readProgress() progress {
	fresh := progress{Object: path.Join(s.object, outbox.ClipFile), ClipHash: s.manifest.Clip.SHA256, PartSize: s.partSize}
	b, err := os.ReadFile(filepath.Join(s.dir, ProgressFile))
	if err != nil {
		return fresh
	}
	var p progress
	if json.Unmarshal(b, &p) != nil || p.Object != fresh.Object || p.ClipHash != fresh.ClipHash {
		return fresh
	}
	if p.PartSize != fresh.PartSize || !s.partsFit(p) {
		// The parts cannot be used, but what this device began writing
		// is still its own, and what it found written is not.
		fresh.Began, fresh.Theirs = p.Began, p.Theirs
		return fresh
	}
	return p
}

// partsFit reports whether p's parts can be the clip's: each numbered
// within the clip, once, of the size that part must have, with an ETag,
// and only with an upload to belong to. (Their SHA-256s are checked
// against the clip when it is read.)
func (s *shipper) partsFit(p progress) bool {
	if len(p.Parts) > 0 && p.UploadID == "" {
		return false
	}
	size := s.manifest.Clip.Size
	n := int64(0)
	if s.partSize > 0 {
		n = (size + s.partSize - 1) / s.partSize
	}
	seen := map[int]bool{}
	for _, pt := range p.Parts {
		if pt.Number < 1 || int64(pt.Number) > n || seen[pt.Number] || pt.ETag == "" ||
			pt.Size != min(s.partSize, size-int64(pt.Number-1)*s.partSize) {
			return false
		}
		seen[pt.Number] = true
	}
	return true
}

func (s *shipper) saveProgress(p progress) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return outbox.WriteFileAtomic(filepath.Join(s.dir, ProgressFile), b)
}

// ship uploads the clip (resuming) and then the manifest. It returns nil
// only when both are in the bucket and the server's checksums agree with
// the local ones.
func (s *shipper) ship(ctx context.Context) error {
	s.p = s.readProgress()
	p := &s.p
	if !p.ClipDone {
		f, err := os.Open(filepath.Join(s.dir, outbox.ClipFile))
		if err != nil {
			return fmt.Errorf("open clip: %w", err)
		}
		defer f.Close()
		hashes, err := s.hashClip(f)
		if err != nil {
			return err
		}
		if s.manifest.Clip.Size <= s.partSize {
			err = s.putClip(ctx, f)
		} else {
			err = s.putParts(ctx, f, p, hashes)
		}
		if err != nil {
			return err
		}
		p.ClipDone, p.UploadID, p.Checked = true, "", s.checked
		if err := s.saveProgress(*p); err != nil {
			return err
		}
	}
	s.checked = p.Checked
	return s.putManifest(ctx)
}

// ErrClipMismatch means the clip on disk no longer matches its manifest:
// the card has corrupted it. It is never uploaded as if it were intact.
var ErrClipMismatch = errors.New("clip.mp4 does not match the SHA-256 in its manifest")

// hashClip checks the whole clip against the manifest and returns the
// SHA-256 of each part, in one pass over the file.
func (s *shipper) hashClip(f *os.File) ([][]byte, error) {
	whole := sha256.New()
	var parts [][]byte
	buf := make([]byte, 256<<10)
	for {
		h := sha256.New()
		n, err := io.CopyBuffer(io.MultiWriter(whole, h), io.LimitReader(f, s.partSize), buf)
		if err != nil {
			return nil, fmt.Errorf("read clip: %w", err)
		}
		if n == 0 && len(parts) > 0 {
			break
		}
		parts = append(parts, h.Sum(nil))
		if n < s.partSize {
			break
		}
	}
	if got := hex.EncodeToString(whole.Sum(nil)); got != s.manifest.Clip.SHA256 {
		return nil, fmt.Errorf("%w (%s on disk)", ErrClipMismatch, got)
	}
	return parts, nil
}

// putOptions are the options of every object an incident writes, the one
// place they are made: write-once (If-None-Match: *) and locked for the
// rules' retention. Anything else uploaded as evidence takes them too.
func (s *shipper) putOptions(contentType string) minio.PutObjectOptions {
	opts := s.createOptions(contentType)
	s.lock.WriteOnce(&opts, s.now)
	return opts
}

// createOptions are putOptions without If-None-Match, for starting a
// multipart upload: S3 checks the condition when the upload completes
// (bucket.IfAbsent), and AWS takes no conditional header before.
func (s *shipper) createOptions(contentType string) minio.PutObjectOptions {
	opts := minio.PutObjectOptions{
		ContentType: contentType,
		UserMetadata: map[string]string{
			"incident": s.manifest.Incident,
			"sha256":   s.manifest.Clip.SHA256, // the whole clip's, also for multipart objects
		},
	}
	s.lock.Retain(&opts, s.now)
	return opts
}

// create sends a request that creates object with If-None-Match (send,
// given the context to send it with), and reports whether object was
// already there as this device's own: refused (412) after an earlier
// request of this device for it may have reached the server and its
// answer was lost (a crash, a power cut). Someone else's object there is
// a *WrittenFirst.
//
// The object is recorded as begun (progress.Began) before the request
// goes, so a power cut at any moment after leaves the record. When this
// process sees the attempt fail without the request having been written
// whole (the network down), or the server refuse it, it takes the record
// off again: that attempt created nothing, and an object someone else
// writes there meanwhile is never taken for this device's.
func (s *shipper) create(ctx context.Context, object string, send func(context.Context) error) (existed bool, err error) {
	if s.dir == "" {
		// Not an incident (an audit segment): no upload.json tells this
		// device's earlier attempt from another's, so the caller judges a
		// refusal (*bucket.Exists) by what the name commits to.
		return false, s.lock.Classify(send(ctx))
	}
	again := slices.Contains(s.p.Began, object)
	if !again {
		s.p.Began = append(s.p.Began, object)
		if err := s.saveProgress(s.p); err != nil {
			return false, err
		}
	}
	var (
		mu sync.Mutex // guards the two below, set by the transport
		// conditional: the request being written carries If-None-Match
		// (minio-go may first ask the bucket's location, which does not);
		// wrote: such a request was written whole.
		conditional, wrote bool
	)
	trace := &httptrace.ClientTrace{
		WroteHeaderField: func(key string, _ []string) {
			if strings.EqualFold(key, "If-None-Match") {
				mu.Lock()
				conditional = true
				mu.Unlock()
			}
		},
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			mu.Lock()
			wrote = wrote || (conditional && info.Err == nil)
			conditional = false
			mu.Unlock()
		},
	}
	err = send(httptrace.WithClientTrace(ctx, trace))
	if err == nil {
		return false, nil
	}
	mu.Lock()
	reached := wrote
	mu.Unlock()
	err = s.lock.Classify(err)
	if _, there := errors.AsType[*bucket.Exists](err); !there {
		if er := minio.ToErrorResponse(err); !again && (!reached || er.StatusCode >= 400 && er.StatusCode < 500) {
			// This attempt created nothing: it never reached the server
			// whole, or the server refused it.
			s.p.Began = slices.DeleteFunc(s.p.Began, func(o string) bool { return o == object })
			if serr := s.saveProgress(s.p); serr != nil {
				return false, serr
			}
		}
		return false, err
	}
	if slices.Contains(s.p.Theirs, object) {
		return false, &WrittenFirst{Object: object, Err: err}
	}
	if again {
		return true, nil
	}
	// Found written on this device's first request: recorded, so that the
	// retries of a held incident still know it is not ours.
	s.p.Theirs = append(s.p.Theirs, object)
	if serr := s.saveProgress(s.p); serr != nil {
		return false, serr
	}
	return false, &WrittenFirst{Object: object, Err: err}
}

// WrittenFirst means Object was already in the bucket, and not from a
// request of this device (none had reached the server whole, or what is
// there is not what it sent): someone else wrote it first. The incident is
// held and its local copy kept; a 412 alone never deletes evidence.
type WrittenFirst struct {
	Object string
	Err    error
}

func (e *WrittenFirst) Error() string {
	return fmt.Sprintf("someone else wrote %s first; the incident is kept here: %v", e.Object, e.Err)
}
func (e *WrittenFirst) Unwrap() error { return e.Err }

// putClip sends a clip that fits in one part with a single PUT carrying its
// SHA-256, so the server refuses a body that differs from the manifest.
func (s *shipper) putClip(ctx context.Context, f *os.File) error {
	sum, _ := hex.DecodeString(s.manifest.Clip.SHA256)
	want := base64.StdEncoding.EncodeToString(sum)
	opts := s.putOptions("video/mp4")
	opts.UserMetadata["x-amz-checksum-sha256"] = want
	body := s.body(io.NewSectionReader(f, 0, s.manifest.Clip.Size))
	// The body's SHA-256 is also signed (not streamed in signed chunks), so
	// a body damaged on the way is refused as damaged, not as a bad key.
	opts.DisableContentSha256 = true
	object := path.Join(s.object, outbox.ClipFile)
	var info minio.UploadInfo
	existed, err := s.create(ctx, object, func(ctx context.Context) (err error) {
		info, err = s.client.PutObject(ctx, s.bucket, object, body, s.manifest.Clip.Size, "", s.manifest.Clip.SHA256, opts)
		return err
	})
	if err != nil {
		return err
	}
	if info.ChecksumSHA256 != "" && info.ChecksumSHA256 != want {
		return fmt.Errorf("server stored the clip with SHA-256 %s, sent %s", info.ChecksumSHA256, want)
	}
	s.checked, err = s.checkCreated(ctx, object, s.manifest.Clip.Size, want, info.ChecksumSHA256 != "", existed)
	return err
}

// putParts sends a clip part by part, each with its SHA-256, recording each
// finished part durably before the next.
func (s *shipper) putParts(ctx context.Context, f *os.File, p *progress, hashes [][]byte) error {
	object := path.Join(s.object, outbox.ClipFile)
	for _, pt := range p.Parts {
		if pt.SHA256 != base64.StdEncoding.EncodeToString(hashes[pt.Number-1]) {
			// Saved parts that are not the clip's cannot complete it.
			p.UploadID, p.Parts = "", nil
			break
		}
	}
	if p.UploadID == "" {
		opts := s.createOptions("video/mp4")
		opts.UserMetadata["X-Amz-Checksum-Algorithm"] = "SHA256"
		id, err := s.client.NewMultipartUpload(ctx, s.bucket, object, opts)
		if err != nil {
			return s.lock.Classify(err)
		}
		p.UploadID, p.Parts = id, nil
		if err := s.saveProgress(*p); err != nil {
			return err
		}
	}
	done := map[int]bool{}
	for _, pt := range p.Parts {
		done[pt.Number] = true
	}
	for i, h := range hashes {
		n := i + 1
		if done[n] {
			continue
		}
		off := int64(i) * s.partSize
		size := min(s.partSize, s.manifest.Clip.Size-off)
		sum := base64.StdEncoding.EncodeToString(h)
		hdr := http.Header{}
		hdr.Set("x-amz-checksum-sha256", sum)
		op, err := s.client.PutObjectPart(ctx, s.bucket, object, p.UploadID, n, s.body(io.NewSectionReader(f, off, size)), size,
			minio.PutObjectPartOptions{Sha256Hex: hex.EncodeToString(h), DisableContentSha256: true, CustomHeader: hdr})
		if bucket.IsNotFound(err) {
			// The saved upload was aborted or expired on the server: start
			// again (the device may not list uploads to find out sooner).
			p.UploadID, p.Parts = "", nil
			s.saveProgress(*p)
		}
		if err != nil {
			return s.lock.Classify(err)
		}
		if op.ChecksumSHA256 != "" && op.ChecksumSHA256 != sum {
			return fmt.Errorf("server stored part %d with SHA-256 %s, sent %s", n, op.ChecksumSHA256, sum)
		}
		p.Parts = append(p.Parts, part{Number: n, ETag: op.ETag, SHA256: sum, Size: size})
		if err := s.saveProgress(*p); err != nil {
			return err
		}
	}
	parts := make([]minio.CompletePart, len(p.Parts))
	composite := sha256.New()
	for i, pt := range sortedParts(p.Parts) {
		parts[i] = minio.CompletePart{PartNumber: pt.Number, ETag: pt.ETag, ChecksumSHA256: pt.SHA256}
		raw, _ := base64.StdEncoding.DecodeString(pt.SHA256)
		composite.Write(raw)
	}
	// S3's checksum of a multipart object is the SHA-256 of its parts'
	// SHA-256s, with the part count appended.
	want := fmt.Sprintf("%s-%d", base64.StdEncoding.EncodeToString(composite.Sum(nil)), len(parts))
	var info minio.UploadInfo
	existed, err := s.create(ctx, object, func(ctx context.Context) (err error) {
		info, err = s.client.CompleteMultipartUpload(ctx, s.bucket, object, p.UploadID, parts, bucket.IfAbsent())
		return err
	})
	if bucket.IsNotFound(err) {
		// The upload is gone: completed before a crash, or expired.
		// Send the clip again: if it was completed, the server refuses
		// the new upload as written, and Began shows it was ours.
		p.UploadID, p.Parts = "", nil
		s.saveProgress(*p)
	}
	if err != nil {
		return err
	}
	if got := info.ChecksumSHA256; got != "" && strings.TrimSuffix(got, fmt.Sprintf("-%d", len(parts))) != strings.TrimSuffix(want, fmt.Sprintf("-%d", len(parts))) {
		return fmt.Errorf("server completed the clip with SHA-256 %s, expected %s", got, want)
	}
	s.checked, err = s.checkCreated(ctx, object, s.manifest.Clip.Size, want, info.ChecksumSHA256 != "", existed)
	return err
}

func sortedParts(ps []part) []part {
	out := make([]part, len(ps))
	for _, p := range ps {
		if p.Number >= 1 && p.Number <= len(ps) {
			out[p.Number-1] = p
		}
	}
	return out
}

// check stats the object and compares its size and checksum with what was
// sent, and says how it was checked. A device whose credentials may only
// write (the policy 'storage init' prints) cannot stat; then the server's
// own verification of the upload is the proof: echoed says its answer gave
// the checksum back (and it matched).
func (s *shipper) check(ctx context.Context, object string, size int64, checksum string, echoed bool) (string, error) {
	// The server's answer to the upload, when nothing can be read back.
	answered := checkedSigned
	if echoed {
		answered = checkedServer
	}
	info, err := s.client.StatObject(ctx, s.bucket, object, minio.StatObjectOptions{Checksum: true})
	if bucket.IsAccessDenied(err) {
		return answered, nil
	}
	if err != nil {
		return "", s.lock.Classify(err)
	}
	if info.Size != size {
		return "", fmt.Errorf("%s in the bucket has %d bytes, sent %d", object, info.Size, size)
	}
	if info.ChecksumSHA256 == "" {
		return answered, nil // the server keeps no checksum to read back
	}
	base := func(c string) string { b, _, _ := strings.Cut(c, "-"); return b }
	if base(info.ChecksumSHA256) != base(checksum) {
		return "", fmt.Errorf("%s in the bucket has SHA-256 %s, sent %s", object, info.ChecksumSHA256, checksum)
	}
	return checkedStat, nil
}

// checkCreated is check for an object create has just made, or found
// there from this device's earlier request (existed). What is found there
// and disagrees with what was sent is someone else's: the incident is held
// (*WrittenFirst), never counted as shipped.
func (s *shipper) checkCreated(ctx context.Context, object string, size int64, checksum string, echoed, existed bool) (string, error) {
	checked, err := s.check(ctx, object, size, checksum, echoed)
	switch {
	case existed && err != nil:
		return "", &WrittenFirst{Object: object, Err: err}
	case existed && checked != checkedStat:
		return checkedEarlier, err
	}
	return checked, err
}

// putManifest sends the manifest's signature, then manifest.json last: its
// presence in the bucket means the incident is complete.
func (s *shipper) putManifest(ctx context.Context) error {
	b, err := os.ReadFile(filepath.Join(s.dir, outbox.ManifestFile))
	if err != nil {
		return fmt.Errorf("read manifest: %w", err)
	}
	if s.key.Valid() {
		sig := []byte(base64.StdEncoding.EncodeToString(s.key.Sign(b)) + "\n")
		if err := s.putSmall(ctx, outbox.SignatureFile, "text/plain", sig); err != nil {
			return err
		}
	}
	return s.putSmall(ctx, outbox.ManifestFile, "application/json", b)
}

// putSmall sends a small file with its SHA-256, and checks it.
func (s *shipper) putSmall(ctx context.Context, name, contentType string, b []byte) error {
	sum := sha256.Sum256(b)
	want := base64.StdEncoding.EncodeToString(sum[:])
	opts := s.putOptions(contentType)
	opts.UserMetadata["x-amz-checksum-sha256"] = want
	opts.DisableContentSha256 = true
	object := path.Join(s.object, name)
	var info minio.UploadInfo
	existed, err := s.create(ctx, object, func(ctx context.Context) (err error) {
		info, err = s.client.PutObject(ctx, s.bucket, object, bytes.NewReader(b), int64(len(b)), "", hex.EncodeToString(sum[:]), opts)
		return err
	})
	if err != nil {
		return err
	}
	if info.ChecksumSHA256 != "" && info.ChecksumSHA256 != want {
		return fmt.Errorf("server stored %s with SHA-256 %s, sent %s", name, info.ChecksumSHA256, want)
	}
	_, err = s.checkCreated(ctx, object, int64(len(b)), want, info.ChecksumSHA256 != "", existed)
	return err
}

// body wraps a part's reader with the bandwidth limit and the byte count.
func (s *shipper) body(r io.Reader) io.Reader {
	return &counted{r: s.limit.Reader(r), n: s.sent}
}

type counted struct {
	r io.Reader
	n func(int64)
}

func (c *counted) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 && c.n != nil {
		c.n(int64(n))
	}
	return n, err
}
