package outbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testID = "20261123-233000-000001"

func testManifest(id, state string, size int64) Manifest {
	press := time.Date(2026, 11, 23, 8, 30, 0, 0, time.FixedZone("JST", 9*3600))
	return Manifest{
		Version: 1, Device: "counter-1", Store: "shibuya", Incident: id, State: state, Trigger: "button",
		PressTime: press, Presses: []Press{{Time: press, Source: "button"}}, ClipStart: press.Add(-30 * time.Second),
		ClipEnd: press.Add(30 * time.Second), DurationSeconds: 60,
		Tracks:    []Track{{Kind: "video", Codec: "avc1.64001f", Width: 1280, Height: 720, Frames: 1800, DurationSeconds: 60}},
		Clip:      ClipDigest{File: ClipFile, SHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", Size: size},
		Indicator: []IndicatorLog{{Time: press.Add(-time.Hour), On: true}}, Software: "test", ClockSynced: true,
	}
}

// writeManifest makes box/id holding manifest.json with b.
func writeManifest(t testing.TB, box, id string, b []byte) string {
	t.Helper()
	dir := filepath.Join(box, id)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ManifestFile), b, 0o640); err != nil {
		t.Fatal(err)
	}
	return dir
}

func manifestBytes(m Manifest) []byte {
	b, _ := json.MarshalIndent(m, "", "  ")
	return b
}

// manifestSeeds are manifest.json contents for an incident named testID,
// and whether they are good.
var manifestSeeds = []struct {
	name string
	b    []byte
	ok   bool
}{
	{"complete", manifestBytes(testManifest(testID, StateComplete, 1234)), true},
	{"recording", manifestBytes(testManifest(testID, StateRecording, 0)), true},
	{"another incident's", manifestBytes(testManifest("20261123-233100-000002", StateComplete, 1234)), false},
	{"torn", manifestBytes(testManifest(testID, StateComplete, 1234))[:100], false},
	{"null", []byte("null"), false},
	{"empty", nil, false},
	{"a bad time", []byte(`{"incident":"` + testID + `","press_time":"yesterday"}`), false},
	{"bound to its place", manifestBytes(withObject("shibuya/counter-1/2026/11/23/" + testID)), true},
	{"bound to another device's place", manifestBytes(withObject("shibuya/counter-2/2026/11/23/" + testID)), false},
	{"bound outside the prefix", manifestBytes(withObject("shibuya/counter-1/2026/11/../../../" + testID)), false},
}

func withObject(object string) Manifest {
	m := testManifest(testID, StateComplete, 1234)
	m.Version, m.Object = ManifestVersion, object
	return m
}

// A manifest's object is its own store, device and incident under a day.
func TestCheckObject(t *testing.T) {
	m := testManifest(testID, StateComplete, 1)
	if got, want := ObjectKey(m, time.UTC), "shibuya/counter-1/2026/11/22/"+testID; got != want {
		t.Errorf("ObjectKey in UTC = %s, want %s (the press was 08:30 in Tokyo)", got, want)
	}
	for _, tc := range []struct {
		object string
		ok     bool
	}{
		{"", true}, // a manifest from before objects were named
		{ObjectKey(m, m.PressTime.Location()), true},
		{"shibuya/counter-1/2026/11/22/" + testID, true},
		{"shinjuku/counter-1/2026/11/23/" + testID, false},
		{"shibuya/counter-1/2026/11/23/20261123-233000-000002", false},
		{"shibuya/counter-1/2026/13/23/" + testID, false},
		{"shibuya/counter-1/2026/11/23/" + testID + "/", false},
		{"mamoru/shibuya/counter-1/2026/11/23/" + testID, false},
		{"shibuya/counter-1/./11/23/" + testID, false},
	} {
		m.Object = tc.object
		if err := m.CheckObject(); (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrBadObject)) {
			t.Errorf("CheckObject(%q) = %v, want ok %v", tc.object, err, tc.ok)
		}
	}
}

func TestReadManifest(t *testing.T) {
	for _, tc := range manifestSeeds {
		dir := writeManifest(t, t.TempDir(), testID, tc.b)
		m, err := ReadManifest(dir)
		if tc.ok && (err != nil || m.Incident != testID) {
			t.Errorf("%s: ReadManifest = %q, %v; want incident %s", tc.name, m.Incident, err, testID)
		}
		if !tc.ok && !errors.Is(err, ErrBadManifest) {
			t.Errorf("%s: ReadManifest error %v, want ErrBadManifest", tc.name, err)
		}
	}
	if _, err := ReadManifest(filepath.Join(t.TempDir(), testID)); !errors.Is(err, ErrBadManifest) {
		t.Errorf("ReadManifest of a directory without a manifest: %v, want ErrBadManifest", err)
	}
}

// FuzzReadManifest: whatever manifest.json holds, ReadManifest does not
// panic; it refuses with ErrBadManifest, or returns the directory's
// incident, which written back reads the same.
func FuzzReadManifest(f *testing.F) {
	for _, tc := range manifestSeeds {
		f.Add(tc.b)
	}
	box := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := writeManifest(t, box, testID, b)
		m, err := ReadManifest(dir)
		if err != nil {
			if !errors.Is(err, ErrBadManifest) {
				t.Fatalf("ReadManifest error %v does not wrap ErrBadManifest", err)
			}
			return
		}
		if m.Incident != testID {
			t.Fatalf("ReadManifest of %s returned incident %q", dir, m.Incident)
		}
		if err := WriteManifest(dir, m); err != nil {
			t.Fatalf("WriteManifest of a manifest ReadManifest returned: %v", err)
		}
		again, err := ReadManifest(dir)
		if err != nil {
			t.Fatalf("ReadManifest of the manifest written back: %v", err)
		}
		if got, want := manifestBytes(again), manifestBytes(m); !bytes.Equal(got, want) {
			t.Fatalf("written back and read again:\n%s\nwant\n%s", got, want)
		}
	})
}

func TestPending(t *testing.T) {
	for _, tc := range []struct {
		name      string
		incidents map[string]Manifest // by directory name
		broken    []string            // directories whose manifest is not JSON
		n         int
		bytes     int64
	}{
		{"empty", nil, nil, 0, 0},
		{"finished, in any state", map[string]Manifest{
			"20261123-090000-000001": testManifest("20261123-090000-000001", StateComplete, 100),
			"20261123-090000-000002": testManifest("20261123-090000-000002", StateRecovered, 20),
		}, nil, 2, 120},
		{"still recording", map[string]Manifest{
			"20261123-090000-000001": testManifest("20261123-090000-000001", StateComplete, 100),
			"20261123-090000-000002": testManifest("20261123-090000-000002", StateRecording, 5000),
		}, nil, 1, 100},
		{"an unreadable manifest", map[string]Manifest{
			"20261123-090000-000001": testManifest("20261123-090000-000001", StateComplete, 100),
		}, []string{"20261123-090000-000002"}, 1, 100},
		{"a manifest in the wrong directory", map[string]Manifest{
			"20261123-090000-000001": testManifest("20261123-090000-000009", StateComplete, 100),
		}, nil, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			box := t.TempDir()
			for name, m := range tc.incidents {
				writeManifest(t, box, name, manifestBytes(m))
			}
			for _, name := range tc.broken {
				writeManifest(t, box, name, []byte("{"))
			}
			n, bytes, err := Outbox{Dir: box}.Pending()
			if n != tc.n || bytes != tc.bytes || err != nil {
				t.Errorf("Pending = %d, %d, %v; want %d, %d, nil", n, bytes, err, tc.n, tc.bytes)
			}
		})
	}
	if n, bytes, err := (Outbox{Dir: filepath.Join(t.TempDir(), "none")}).Pending(); n != 0 || bytes != 0 || err != nil {
		t.Errorf("Pending of an outbox not yet made = %d, %d, %v; want 0, 0, nil", n, bytes, err)
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o640)
	if _, _, err := (Outbox{Dir: file}).Pending(); err == nil {
		t.Error("Pending of a file, not a directory: no error")
	}
}

// A manifest stays under the size a manager's tools read: a button
// pressed thousands of times in one incident lists the first MaxPresses
// and counts the rest, and a manifest that would still be too large is
// refused by name rather than written.
func TestManifestBounded(t *testing.T) {
	m := Manifest{Version: ManifestVersion, Store: "s", Device: "d", Incident: "20261123-154502-000042", State: StateComplete}
	dir := filepath.Join(t.TempDir(), m.Incident)
	os.Mkdir(dir, 0o750)
	at := time.Date(2026, 11, 23, 15, 45, 2, 0, time.UTC)
	for i := range 20000 {
		m.AddPress(Press{Time: at.Add(time.Duration(i) * 30 * time.Millisecond), Source: "button"})
	}
	if len(m.Presses) != MaxPresses || m.PressesOmitted != 20000-MaxPresses {
		t.Errorf("after 20000 presses: %d listed, %d omitted; want %d and %d", len(m.Presses), m.PressesOmitted, MaxPresses, 20000-MaxPresses)
	}
	if err := WriteManifest(dir, m); err != nil {
		t.Fatalf("WriteManifest: %v", err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, ManifestFile)); fi.Size() >= MaxManifestBytes {
		t.Errorf("manifest of %d bytes, want under %d", fi.Size(), MaxManifestBytes)
	}
	m.Notes = []string{strings.Repeat("x", MaxManifestBytes)}
	if err := WriteManifest(dir, m); !errors.Is(err, ErrManifestTooLarge) || !strings.Contains(err.Error(), filepath.Join(dir, ManifestFile)) {
		t.Errorf("WriteManifest of an oversized manifest: %v; want %v naming the file", err, ErrManifestTooLarge)
	}
	if got, err := ReadManifest(dir); err != nil || got.PressesOmitted != 20000-MaxPresses {
		t.Errorf("the bounded manifest was replaced or lost: %v, %d omitted", err, got.PressesOmitted)
	}
}
