package audit

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

var testNow = clockwork.NewFakeClockAt(time.Date(2026, 11, 23, 9, 0, 0, 123456789, time.FixedZone("JST", 9*3600)))

// record writes a log at path of a start, the event with field k = v, and
// a stop, and returns its bytes.
func record(t testing.TB, path, event, v string) []byte {
	t.Helper()
	os.Remove(path)
	a, err := Open(path, testNow)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range [][]string{{"start"}, {event, "k", v}, {"stop"}} {
		if err := a.Record(e[0], e[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	a.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzVerify: Verify of any bytes does not panic; it refuses them with
// ErrChain, or counts one entry a line; and a log Open accepts (cutting a
// torn last line) verifies once continued.
func FuzzVerify(f *testing.F) {
	dir := f.TempDir()
	valid := record(f, filepath.Join(dir, "seed.log"), "capture", "started")
	f.Add(valid)
	f.Add(valid[:len(valid)-10])                                     // torn
	f.Add(bytes.Replace(valid, []byte(`"seq"`), []byte(`"Seq"`), 1)) // a key's case
	f.Add([]byte{})
	f.Add([]byte("\n"))
	f.Add([]byte("{}\n"))
	f.Add([]byte(`{"seq":0,"time":"2026-11-23T09:00:00Z","event":"x","prev":"","hash":""}` + "\n"))
	path := filepath.Join(dir, "audit.log")
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(path, b, 0o640); err != nil {
			t.Fatal(err)
		}
		n, verr := Verify(path)
		if verr != nil && !errors.Is(verr, ErrChain) {
			t.Fatalf("Verify error %v does not wrap ErrChain", verr)
		}
		if verr == nil {
			if lines := bytes.Count(b, []byte("\n")); n != lines || len(b) > 0 && b[len(b)-1] != '\n' {
				t.Fatalf("Verify = %d entries for %d lines of %q", n, lines, b)
			}
			entries, err := ReadAll(path)
			if n > 0 && err != nil || len(entries) != n {
				t.Fatalf("ReadAll of a log that verifies with %d entries: %d entries, %v", n, len(entries), err)
			}
		}
		a, err := Open(path, testNow)
		if err != nil {
			if !errors.Is(err, ErrChain) {
				t.Fatalf("Open error %v does not wrap ErrChain", err)
			}
			if verr == nil {
				t.Fatalf("Open refused a log that verifies: %v", err)
			}
			return
		}
		err = a.Record("next")
		a.Close()
		if err != nil {
			t.Fatal(err)
		}
		got, err := Verify(path)
		if err != nil || verr == nil && got != n+1 {
			t.Fatalf("a log Open accepted, continued: Verify = %d, %v (before: %d, %v)", got, err, n, verr)
		}
	})
}

// FuzzTamper: a single byte changed anywhere in a valid log makes Verify
// refuse it.
func FuzzTamper(f *testing.F) {
	f.Add("indicator", "true", uint(2), byte('S'))  // a key's case: "Seq"
	f.Add("capture", "stopped", uint(0), byte(' ')) // a leading space
	f.Add("upload", "<&>", uint(300), byte('0'))    // in a hash, or an escape
	f.Add("press", "\xff", uint(1<<20), byte('\r')) // invalid UTF-8; near the end
	f.Add("indicator", "on", uint(120), byte('\n')) // a line split
	dir := f.TempDir()
	path := filepath.Join(dir, "audit.log")
	f.Fuzz(func(t *testing.T, event, v string, pos uint, x byte) {
		valid := record(t, path, event, v)
		if n, err := Verify(path); n != 3 || err != nil {
			t.Fatalf("Verify of the log as written = %d, %v; want 3, nil", n, err)
		}
		i := int(pos % uint(len(valid)))
		if valid[i] == x {
			return
		}
		b := bytes.Clone(valid)
		b[i] = x
		if err := os.WriteFile(path, b, 0o640); err != nil {
			t.Fatal(err)
		}
		if n, err := Verify(path); !errors.Is(err, ErrChain) {
			t.Fatalf("byte %d changed from %q to %q: Verify = %d, %v; want ErrChain\n%s", i, valid[i], x, n, err, b)
		}
	})
}
