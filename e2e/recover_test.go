package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"mamoru/audit"
	"mamoru/capture/cliptest"
	"mamoru/device"
	"mamoru/outbox"
)

// TestRecoverIncidents starts a recorder on the incident directories a power
// cut and worse leave behind: a clip cut in the middle of its last fragment
// is cut back to the fragment before and finalized, and every directory that
// cannot be made sense of is moved aside, logged and reported.
func TestRecoverIncidents(t *testing.T) {
	cfg := testConfig(t)
	incidents := filepath.Join(cfg.Device.StateDir, "incidents")

	// (a) A real clip, then cut as a power cut would leave it.
	first := start(t, cfg)
	waitFor(t, cfg, "a full pre-roll", func(s device.Status) bool {
		return s.State == device.StateBuffering && s.BufferedSeconds >= float64(cfg.Capture.PreSeconds)
	})
	res, err := device.Trigger(t.Context(), cfg.Device.StateDir, "cli")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, cfg, "the clip", func(s device.Status) bool {
		return len(s.Incidents) == 1 && s.Incidents[0].State == outbox.StateComplete
	})
	first.shutdown(t)

	whole, err := outbox.ReadManifest(filepath.Dir(res.Clip))
	if err != nil {
		t.Fatal(err)
	}
	lastFragment := cutLastFragment(t, res.Clip)
	// The manifest as it stands while recording: written at the press and
	// again once the pre-roll is on disk.
	err = outbox.WriteManifest(filepath.Dir(res.Clip), outbox.Manifest{
		Version: whole.Version, Device: whole.Device, Store: whole.Store, Incident: whole.Incident,
		State: outbox.StateRecording, Trigger: whole.Trigger, PressTime: whole.PressTime, Presses: whole.Presses,
		ClipStart: whole.ClipStart, Clip: outbox.ClipDigest{File: outbox.ClipFile},
		Software: whole.Software, PreRollSyncedMS: whole.PreRollSyncedMS,
	})
	if err != nil {
		t.Fatal(err)
	}

	// (b) garbage where a clip should be, (c) no manifest, (d) a manifest
	// that is not JSON. Each keeps a file, to show that nothing is deleted.
	garbage := bytes.Repeat([]byte("not an mp4 "), 1000)
	recording, err := json.Marshal(outbox.Manifest{
		Version: 1, Device: cfg.Device.ID, Store: cfg.Device.Store, Incident: "20261123-100000-000900",
		State: outbox.StateRecording, Trigger: "sim", Clip: outbox.ClipDigest{File: outbox.ClipFile},
	})
	if err != nil {
		t.Fatal(err)
	}
	broken := map[string]map[string][]byte{
		"20261123-100000-000900": {outbox.ClipFile: garbage, outbox.ManifestFile: recording},
		"20261123-100001-000901": {outbox.ClipFile: garbage},
		"20261123-100002-000902": {outbox.ClipFile: garbage, outbox.ManifestFile: []byte(`{"incident": "20261123-100002-000902", "state": "rec`)},
	}
	for name, files := range broken {
		dir := filepath.Join(incidents, name)
		if err := os.Mkdir(dir, 0o750); err != nil {
			t.Fatal(err)
		}
		for file, b := range files {
			if err := os.WriteFile(filepath.Join(dir, file), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}

	second := start(t, cfg)
	st := waitFor(t, cfg, "buffering after recovery", func(s device.Status) bool { return s.State == device.StateBuffering })

	// (a) is recovered: cut after its last complete fragment, hashed and
	// described.
	if len(st.Incidents) != 1 {
		t.Fatalf("status incidents = %+v, want only %s", st.Incidents, whole.Incident)
	}
	if in := st.Incidents[0]; in.ID != whole.Incident || in.State != outbox.StateRecovered || in.Clip != res.Clip {
		t.Errorf("status incident = %+v, want %s recovered at %s", in, whole.Incident, res.Clip)
	}
	clip, err := os.ReadFile(res.Clip)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(clip)) != lastFragment {
		t.Errorf("recovered clip is %d bytes, want %d: cut where its last fragment began", len(clip), lastFragment)
	}
	m, err := outbox.ReadManifest(filepath.Dir(res.Clip))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(clip)
	if m.State != outbox.StateRecovered || m.Clip.SHA256 != hex.EncodeToString(sum[:]) || m.Clip.Size != int64(len(clip)) || st.Incidents[0].Size != m.Clip.Size {
		t.Errorf("manifest state %q clip %+v, status size %d; want recovered, SHA-256 %x and size %d", m.State, m.Clip, st.Incidents[0].Size, sum, len(clip))
	}
	if m.DurationSeconds <= 0 || m.DurationSeconds >= whole.DurationSeconds {
		t.Errorf("recovered clip lasts %.3f s, want more than 0 and less than the whole clip's %.3f s", m.DurationSeconds, whole.DurationSeconds)
	}
	if got := m.ClipEnd.Sub(m.ClipStart).Seconds(); math.Abs(got-m.DurationSeconds) > 0.001 {
		t.Errorf("manifest clip_start %v to clip_end %v is %.3f s, duration_seconds %.3f", m.ClipStart, m.ClipEnd, got, m.DurationSeconds)
	}
	if len(m.Tracks) != 2 || m.Tracks[0].Kind != "video" || m.Tracks[1].Kind != "audio" || m.Tracks[0].Frames == 0 || m.Tracks[1].Frames == 0 {
		t.Errorf("manifest tracks = %+v, want video and audio", m.Tracks)
	}
	if len(m.Notes) == 0 {
		t.Error("the recovered manifest does not say why it was recovered")
	}
	info := cliptest.Probe(t, res.Clip)
	_, okV := info.Stream("video")
	_, okA := info.Stream("audio")
	if !okV || !okA {
		t.Errorf("recovered clip's streams = %+v, want video and audio", info.Streams)
	}
	gop := float64(cfg.Video.KeyframeInterval) / float64(cfg.Video.FPS)
	if math.Abs(info.Duration-m.DurationSeconds) > gop {
		t.Errorf("ffprobe duration %.3f, manifest %.3f: more than a GOP apart", info.Duration, m.DurationSeconds)
	}
	if out := cliptest.DecodeErrors(t, res.Clip); out != "" {
		t.Errorf("recovered clip does not decode cleanly:\n%s", out)
	}

	// (b), (c) and (d) are moved aside whole, and reported.
	var want []string
	for name, files := range broken {
		to := filepath.Join(incidents, ".set-aside", name)
		want = append(want, to)
		if _, err := os.Stat(filepath.Join(incidents, name)); !os.IsNotExist(err) {
			t.Errorf("%s is still in the outbox (stat: %v)", name, err)
		}
		for file, b := range files {
			got, err := os.ReadFile(filepath.Join(to, file))
			if err != nil {
				t.Errorf("set aside %s: %v", name, err)
			} else if !bytes.Equal(got, b) {
				t.Errorf("set aside %s/%s was changed", name, file)
			}
		}
	}
	got := slices.Sorted(slices.Values(st.SetAside))
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("status set_aside = %q, want %q", got, want)
	}

	// Once done, recovery leaves nothing for the next start to do.
	second.shutdown(t)
	third := start(t, cfg)
	st = waitFor(t, cfg, "buffering once more", func(s device.Status) bool { return s.State == device.StateBuffering })
	// What was set aside is still listed, read from the card, until a
	// person removes it.
	if got := slices.Sorted(slices.Values(st.SetAside)); !slices.Equal(got, want) || len(st.Incidents) != 1 || st.Incidents[0].State != outbox.StateRecovered {
		t.Errorf("third run: status set_aside %q, incidents %+v; want still %q set aside and the recovered incident", got, st.Incidents, want)
	}
	third.shutdown(t)

	// The audit log is intact and tells all of it, once.
	if _, err := audit.Verify(filepath.Join(cfg.Device.StateDir, "audit.log")); err != nil {
		t.Fatal(err)
	}
	entries, err := audit.ReadAll(filepath.Join(cfg.Device.StateDir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	asides := map[string]int{}
	recovered := 0
	for _, e := range entries {
		switch {
		case e.Event == "incident_set_aside":
			asides[e.Fields["dir"]]++
			if e.Fields["why"] == "" {
				t.Errorf("audit %d: %s set aside without a reason", e.Seq, e.Fields["dir"])
			}
		case e.Event == "incident" && e.Fields["state"] == outbox.StateRecovered:
			recovered++
			if e.Fields["id"] != whole.Incident || e.Fields["sha256"] != m.Clip.SHA256 {
				t.Errorf("audit %d: recovered %v, want %s with SHA-256 %s", e.Seq, e.Fields, whole.Incident, m.Clip.SHA256)
			}
		}
	}
	for name := range broken {
		if asides[name] != 1 {
			t.Errorf("audit log has %d incident_set_aside entries for %s, want 1", asides[name], name)
		}
	}
	if len(asides) != len(broken) || recovered != 1 {
		t.Errorf("audit log sets aside %v and recovers %d incidents, want %d set aside and 1 recovered", asides, recovered, len(broken))
	}
	auditOrder(t, cfg)
}

// cutLastFragment truncates the clip at path in the middle of its last
// fragment (a moof box and the mdat box after it), as a power cut while
// appending it would, and returns the offset where that fragment began.
func cutLastFragment(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	var offsets []int64
	for off := int64(0); off < int64(len(b)); {
		if int64(len(b))-off < 8 {
			t.Fatalf("%s: %d stray bytes at %d", path, int64(len(b))-off, off)
		}
		size := int64(binary.BigEndian.Uint32(b[off:]))
		if size < 8 || off+size > int64(len(b)) {
			t.Fatalf("%s: box of size %d at %d (64-bit sizes are not expected in a clip)", path, size, off)
		}
		types = append(types, string(b[off+4:off+8]))
		offsets = append(offsets, off)
		off += size
	}
	n := len(types)
	if n < 6 || types[0] != "ftyp" || types[1] != "moov" || types[n-2] != "moof" || types[n-1] != "mdat" {
		t.Fatalf("%s: top-level boxes %q, want ftyp, moov and at least two fragments", path, types)
	}
	last := offsets[n-2]
	if err := os.Truncate(path, last+(int64(len(b))-last)/2); err != nil {
		t.Fatal(err)
	}
	return last
}
