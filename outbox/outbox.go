// Package outbox is the incident directories on disk, each holding clip.mp4
// and manifest.json (and, once signed, manifest.sig), waiting to be shipped
// to the bucket. A directory's manifest says whether its clip is still being
// recorded or is final. Files are written whole or not at all: a temporary
// file, fsynced, renamed over the old one, and the directory fsynced.
package outbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"mamoru/audit"
)

// Manifest states.
const (
	StateRecording = "recording" // the clip is still growing
	StateComplete  = "complete"  // the clip is final
	StateRecovered = "recovered" // the recorder died while recording; the clip was cut at its last complete fragment
)

// ManifestFile and ClipFile are the names inside an incident directory.
const (
	ManifestFile = "manifest.json"
	ClipFile     = "clip.mp4"
	// SignatureFile holds the device's ed25519 signature of manifest.json's
	// bytes, in base64. The manifest holds the clip's SHA-256, so the
	// signature covers both.
	SignatureFile = "manifest.sig"
)

// ManifestVersion is the version of the manifests this software writes.
// Version 2 added Object; a manifest without it was written before
// signatures were bound to their place in the bucket.
const ManifestVersion = 2

// Manifest describes one incident and its clip. The device signs its
// exact bytes at upload, so what it says is what the signature covers.
type Manifest struct {
	Version int `json:"version"`
	// Object is where the incident's objects live in the bucket, below the
	// storage prefix (ObjectKey). It binds the signature to that place:
	// copied anywhere else, the manifest says where it belongs. The prefix
	// is left out so that a move to another bucket or prefix keeps it true.
	Object    string    `json:"object,omitempty"`
	Device    string    `json:"device"`
	Store     string    `json:"store"`
	Incident  string    `json:"incident"`
	State     string    `json:"state"`
	Trigger   string    `json:"trigger"`
	Urgent    bool      `json:"urgent,omitempty"` // staff held the button
	PressTime time.Time `json:"press_time"`
	Presses   []Press   `json:"presses"`
	// PressesOmitted counts the presses after the first MaxPresses, which
	// the manifest leaves out to stay bounded (the audit log has each).
	PressesOmitted  int            `json:"presses_omitted,omitempty"`
	ClipStart       time.Time      `json:"clip_start"`
	ClipEnd         time.Time      `json:"clip_end,omitzero"`
	DurationSeconds float64        `json:"duration_seconds"`
	Tracks          []Track        `json:"tracks"`
	Clip            ClipDigest     `json:"clip"`
	Indicator       []IndicatorLog `json:"indicator"`
	Software        string         `json:"software_version"`
	// ClockSynced is false when NTP had not yet set the device's clock at
	// the press: its times may then be off (a Pi has no battery clock).
	ClockSynced     bool     `json:"clock_synced"`
	PreRollSyncedMS float64  `json:"preroll_synced_ms,omitzero"`
	Notes           []string `json:"notes,omitempty"`
	// AuditHead is the audit log's last entry when the incident was sealed
	// (its final manifest written). The signature covers it: a log that
	// later ends before it, or holds another entry there, was cut or
	// replaced.
	AuditHead *audit.Head `json:"audit_head,omitempty"`
}

// ObjectKey is where an incident's objects live in the bucket, below the
// storage prefix: <store>/<device>/<YYYY>/<MM>/<DD>/<incident id>, the date
// being the press's in loc (the device's time zone), so managers browsing
// the bucket find a day's incidents together.
func ObjectKey(m Manifest, loc *time.Location) string {
	return path.Join(m.Store, m.Device, m.PressTime.In(loc).Format("2006/01/02"), m.Incident)
}

// ErrBadObject means a manifest's object is not a place for its incident.
var ErrBadObject = errors.New("manifest's object is not <store>/<device>/<YYYY>/<MM>/<DD>/<incident> of its own store, device and incident")

// CheckObject reports whether m.Object, if set, is a place ObjectKey could
// give m: its own store, device and incident, under a day's folders. It
// does not judge the day, which depends on the zone the device was in.
func (m Manifest) CheckObject() error {
	if m.Object == "" {
		return nil
	}
	parts := strings.Split(m.Object, "/")
	if len(parts) != 6 || parts[0] != m.Store || parts[1] != m.Device || parts[5] != m.Incident || path.Clean(m.Object) != m.Object {
		return fmt.Errorf("%w: %q", ErrBadObject, m.Object)
	}
	if _, err := time.Parse("2006/01/02", strings.Join(parts[2:5], "/")); err != nil {
		return fmt.Errorf("%w: %q", ErrBadObject, m.Object)
	}
	return nil
}

// Finished reports whether the clip is final (any state but
// StateRecording): the incident waits to be shipped.
func (m Manifest) Finished() bool { return m.State != StateRecording }

// Press is one press that raised or extended the incident: staff's, a
// trigger source's, or the recorder's own on hearing a raised voice.
type Press struct {
	Time   time.Time `json:"time"`
	Source string    `json:"source"`
	// Sound is why the recorder pressed for itself (Source "sound"): the
	// raised voice it heard.
	Sound *Sound `json:"sound,omitempty"`
}

// Sound is a raised voice as the recorder heard it (package listen):
// voiced short-term loudness that stayed at least RaiseDB over the
// counter's usual level for the hour.
type Sound struct {
	// Start is when the level first reached the threshold; Seconds how
	// long it had stayed there when the recorder acted.
	Start   time.Time `json:"start"`
	Seconds float64   `json:"seconds"`
	// PeakLUFS is the loudest voiced short-term loudness by then, and
	// BaselineLUFS the usual level it was measured against: learned at
	// this counter, or the configured default when Learned is false.
	PeakLUFS     float64 `json:"peak_lufs"`
	BaselineLUFS float64 `json:"baseline_lufs"`
	Learned      bool    `json:"baseline_learned"`
	AboveDB      float64 `json:"above_db"`
	RaiseDB      float64 `json:"raise_db"`
}

// Track describes one track of the clip.
type Track struct {
	Kind            string  `json:"kind"` // "video" or "audio"
	Codec           string  `json:"codec"`
	Width           int     `json:"width,omitempty"`
	Height          int     `json:"height,omitempty"`
	SampleRate      int     `json:"sample_rate,omitempty"`
	Channels        int     `json:"channels,omitempty"`
	Frames          int     `json:"frames"`            // video frames, or FLAC frames
	Samples         int64   `json:"samples,omitempty"` // audio samples per channel
	StartSeconds    float64 `json:"start_seconds"`
	DurationSeconds float64 `json:"duration_seconds"`
}

// ClipDigest identifies the clip's bytes.
type ClipDigest struct {
	File   string `json:"file"`
	SHA256 string `json:"sha256,omitempty"`
	Size   int64  `json:"size"`
}

// IndicatorLog is the indicator's state from Time on.
type IndicatorLog struct {
	Time time.Time `json:"time"`
	On   bool      `json:"on"`
}

// MaxManifestBytes bounds manifest.json: a manager's tools refuse a larger
// one as not a manifest, so the device never writes one.
const MaxManifestBytes = 1 << 20

// MaxPresses is how many presses a manifest lists; more are counted in
// PressesOmitted. A thousand presses take about 100 KiB.
const MaxPresses = 1000

// ErrManifestTooLarge means a manifest would be MaxManifestBytes or more.
var ErrManifestTooLarge = errors.New("manifest too large")

// AddPress records p in m, or counts it once m lists MaxPresses.
func (m *Manifest) AddPress(p Press) {
	if len(m.Presses) >= MaxPresses {
		m.PressesOmitted++
		return
	}
	m.Presses = append(m.Presses, p)
}

// Outbox is the directory of incidents.
type Outbox struct {
	Dir string
}

// Incident is one directory of the outbox.
type Incident struct {
	Dir      string
	Manifest Manifest
}

// ErrBadManifest means an incident directory's manifest is missing or
// unreadable.
var ErrBadManifest = errors.New("outbox: bad manifest")

// ReadManifest reads dir's manifest.
func ReadManifest(dir string) (Manifest, error) {
	var m Manifest
	b, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return m, fmt.Errorf("%w: %v", ErrBadManifest, err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%w: %s: %v", ErrBadManifest, filepath.Join(dir, ManifestFile), err)
	}
	if m.Incident != filepath.Base(dir) {
		return m, fmt.Errorf("%w: %s names incident %q", ErrBadManifest, filepath.Join(dir, ManifestFile), m.Incident)
	}
	if err := m.CheckObject(); err != nil {
		return m, fmt.Errorf("%w: %s: %v", ErrBadManifest, filepath.Join(dir, ManifestFile), err)
	}
	return m, nil
}

// WriteManifest writes dir's manifest durably: to a temporary file, synced,
// renamed over the old one, and the directory synced.
func WriteManifest(dir string, m Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if len(b) >= MaxManifestBytes {
		return fmt.Errorf("outbox: %s: %w: %d bytes", filepath.Join(dir, ManifestFile), ErrManifestTooLarge, len(b))
	}
	return WriteFileAtomic(filepath.Join(dir, ManifestFile), append(b, '\n'))
}

// WriteFileAtomic replaces path with data so that after a power cut path
// holds either the old or the new bytes.
func WriteFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return SyncDir(filepath.Dir(path))
}

// SyncDir makes a directory's entries durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// List returns the outbox's incidents, oldest first. Directories whose
// manifest cannot be read are returned in bad.
func (o Outbox) List() (incidents []Incident, bad []string, err error) {
	entries, err := os.ReadDir(o.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("outbox: list: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || e.Name()[0] == '.' {
			continue
		}
		dir := filepath.Join(o.Dir, e.Name())
		m, err := ReadManifest(dir)
		if err != nil {
			bad = append(bad, dir)
			continue
		}
		incidents = append(incidents, Incident{Dir: dir, Manifest: m})
	}
	slices.SortFunc(incidents, func(a, b Incident) int { return strings.Compare(a.Manifest.Incident, b.Manifest.Incident) })
	return incidents, bad, nil
}

// Pending counts the incidents waiting to be shipped, those whose clip is
// finished, and their clips' bytes. An incident whose manifest cannot be
// read is not counted; err is List's.
func (o Outbox) Pending() (n int, bytes int64, err error) {
	incidents, _, err := o.List()
	n, bytes = CountPending(incidents)
	return n, bytes, err
}

// CountPending is Pending for incidents already listed.
func CountPending(incidents []Incident) (n int, bytes int64) {
	for _, in := range incidents {
		if in.Manifest.Finished() {
			n++
			bytes += in.Manifest.Clip.Size
		}
	}
	return n, bytes
}

// Bytes is the size of everything in the outbox's incident directories.
func (o Outbox) Bytes() int64 {
	var n int64
	filepath.WalkDir(o.Dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
