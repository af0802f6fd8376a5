package audit

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// writeLog records n entries at path and returns the log's bytes, line by
// line.
func writeLog(t testing.TB, path string, n int) [][]byte {
	t.Helper()
	os.Remove(path)
	a, err := Open(path, testNow)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := a.Record("press", "n", string(rune('a'+i%26))); err != nil {
			t.Fatal(err)
		}
	}
	a.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(b, []byte("\n"))[:n]
}

// A segment is any run of a log's lines; anything else is refused.
func TestParseSegment(t *testing.T) {
	lines := writeLog(t, filepath.Join(t.TempDir(), "audit.log"), 5)
	join := func(ls ...[]byte) []byte { return bytes.Join(ls, nil) }
	for _, tc := range []struct {
		name        string
		b           []byte
		first, last uint64
		ok          bool
	}{
		{"whole log", join(lines...), 0, 4, true},
		{"middle", join(lines[2:4]...), 2, 3, true},
		{"one entry", lines[4], 4, 4, true},
		{"a gap", join(lines[1], lines[3]), 0, 0, false},
		{"out of order", join(lines[2], lines[1]), 0, 0, false},
		{"torn", lines[2][:len(lines[2])-3], 0, 0, false},
		{"empty", nil, 0, 0, false},
		{"edited", bytes.Replace(lines[1], []byte(`"n":"b"`), []byte(`"n":"x"`), 1), 0, 0, false},
		{"entry 0 linked", bytes.Replace(lines[0], []byte(`"prev":""`), []byte(`"prev":"ab"`), 1), 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es, err := ParseSegment(tc.b)
			if !tc.ok {
				if !errors.Is(err, ErrSegment) {
					t.Errorf("ParseSegment = %d entries, %v; want ErrSegment", len(es), err)
				}
				return
			}
			if err != nil || es[0].Seq != tc.first || es[len(es)-1].Seq != tc.last {
				t.Errorf("ParseSegment = %d entries, %v; want %d to %d", len(es), err, tc.first, tc.last)
			}
		})
	}
}

func TestSegmentName(t *testing.T) {
	id := SegmentID{Chain: "0123456789abcdef", First: 12, Last: 345, Hash: "fedcba9876543210"}
	name := id.Name()
	if name != "0123456789abcdef/000000000012-000000000345-fedcba9876543210.jsonl" {
		t.Errorf("Name = %q", name)
	}
	if got, ok := ParseSegmentName(name); !ok || got != id {
		t.Errorf("ParseSegmentName(%q) = %+v %v", name, got, ok)
	}
	for _, bad := range []string{
		"0a/000000000012-000000000011-ab.jsonl", // last before first
		"0a/12-345-ab.jsonl",
		"000000000012-000000000345-ab.jsonl",
		"../000000000012-000000000345-ab.jsonl",
		"0a/000000000012-000000000345-ab.json",
		"0a/000000000012-000000000345.jsonl", // no hash
		"0a/000000000012-000000000345-AB.jsonl",
		"0a/+00000000012-000000000345-ab.jsonl",
	} {
		if _, ok := ParseSegmentName(bad); ok {
			t.Errorf("ParseSegmentName(%q) accepted", bad)
		}
	}
	// A segment holds what its name says, and nothing else does.
	lines := writeLog(t, filepath.Join(t.TempDir(), "audit.log"), 3)
	es, err := ParseSegment(bytes.Join(lines, nil))
	if err != nil {
		t.Fatal(err)
	}
	id = SegmentOf(Chain(es[0]), 0, es[2])
	if !id.Holds(es) || id.Holds(es[:2]) || id.Holds(es[1:]) || SegmentOf("0a", 0, es[2]).Holds(es) {
		t.Errorf("Holds: %+v", id)
	}
}

// A head beyond the end is a cut; another hash at its place, a
// replacement.
func TestCheckHead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	writeLog(t, path, 3)
	entries, err := ReadAll(path)
	if err != nil {
		t.Fatal(err)
	}
	h := Head{Seq: 2, Hash: entries[2].Hash}
	if err := CheckHead(entries, h); err != nil {
		t.Errorf("CheckHead of the log's own head: %v", err)
	}
	if err := CheckHead(entries[:2], h); !errors.Is(err, ErrCut) {
		t.Errorf("CheckHead of a log cut before the head: %v, want ErrCut", err)
	}
	if err := CheckHead(nil, h); !errors.Is(err, ErrCut) {
		t.Errorf("CheckHead of an emptied log: %v, want ErrCut", err)
	}
	h.Hash = entries[1].Hash
	if err := CheckHead(entries, h); !errors.Is(err, ErrReplaced) {
		t.Errorf("CheckHead with another hash: %v, want ErrReplaced", err)
	}
}

// FuzzParseSegment: any bytes are refused with ErrSegment or are entries
// that a log could hold, one a line, consecutive and linked; and a valid
// segment with one byte changed is refused.
func FuzzParseSegment(f *testing.F) {
	lines := writeLog(f, filepath.Join(f.TempDir(), "audit.log"), 4)
	f.Add(bytes.Join(lines, nil), uint(0), byte(0))
	f.Add(bytes.Join(lines[1:3], nil), uint(40), byte('1'))
	f.Add(lines[3], uint(7), byte('\n'))
	f.Add([]byte("{}\n"), uint(0), byte(0))
	f.Add([]byte(`{"seq":5,"time":"2026-11-23T09:00:00Z","event":"x","prev":"","hash":""}`+"\n"), uint(0), byte(0))
	f.Fuzz(func(t *testing.T, b []byte, pos uint, x byte) {
		es, err := ParseSegment(b)
		if err != nil {
			if !errors.Is(err, ErrSegment) {
				t.Fatalf("ParseSegment error %v does not wrap ErrSegment", err)
			}
			return
		}
		if len(es) != bytes.Count(b, []byte("\n")) {
			t.Fatalf("%d entries from %d lines", len(es), bytes.Count(b, []byte("\n")))
		}
		for i := 1; i < len(es); i++ {
			if es[i].Seq != es[i-1].Seq+1 || es[i].Prev != es[i-1].Hash || es[i].Hash != es[i].digest() {
				t.Fatalf("entry %d does not follow entry %d", es[i].Seq, es[i-1].Seq)
			}
		}
		i := int(pos % uint(len(b)))
		if b[i] == x {
			return
		}
		c := bytes.Clone(b)
		c[i] = x
		if es2, err := ParseSegment(c); err == nil && len(es2) == len(es) && es2[0].Seq == es[0].Seq && es2[0].Prev == es[0].Prev {
			// A changed byte may only pass if it makes other valid entries
			// linked the same way, which would need a hash collision.
			t.Fatalf("byte %d changed from %q to %q and the segment still parses:\n%s", i, b[i], x, c)
		}
	})
}

// FuzzParseSegmentName: a name from the bucket is taken only if it is
// exactly the name SegmentName gives its parts.
func FuzzParseSegmentName(f *testing.F) {
	f.Add("0123456789abcdef/000000000012-000000000345-0a.jsonl")
	f.Add("0/000000000000-000000000000-0.jsonl")
	f.Add("../000000000012-000000000345-0.jsonl")
	f.Add("0/+00000000012-000000000345-0.jsonl")
	f.Fuzz(func(t *testing.T, name string) {
		id, ok := ParseSegmentName(name)
		if ok && id.Name() != name {
			t.Fatalf("ParseSegmentName(%q) = %+v, which names %q", name, id, id.Name())
		}
	})
}
