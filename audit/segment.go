package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// A segment is a run of a log's entries, first to last, exactly as the log
// holds them: the device uploads the entries written since its last upload
// as one write-once, signed object, so the log in the bucket grows as the
// one on the card does and a card cut or emptied later cannot take back
// what was sent. Segments are named by the chain they belong to (Chain)
// and their first and last sequence numbers (SegmentName).

// SegmentMaxEntries bounds a segment; a longer backlog goes as several.
const SegmentMaxEntries = 2000

// SegmentMaxBytes bounds a segment a reader accepts: SegmentMaxEntries of
// generous entries.
const SegmentMaxBytes = 8 << 20

// Errors a segment or a head can be refused with.
var (
	// ErrSegment: a segment is not whole, consecutive, linked entries.
	ErrSegment = errors.New("audit: bad segment")
	// ErrCut: a head lies beyond the log's end; the log was cut after it
	// was recorded, or emptied.
	ErrCut = errors.New("audit: log cut short")
	// ErrReplaced: the log holds another entry where a head says one was.
	ErrReplaced = errors.New("audit: log entry replaced")
)

// Chain names the chain that begins with genesis, entry 0: a log set aside
// or emptied starts a new chain with a new name, so its segments never
// take the old one's names.
func Chain(genesis Entry) string {
	if len(genesis.Hash) < 16 {
		return genesis.Hash
	}
	return genesis.Hash[:16]
}

// SegmentID names a segment: its chain, its first and last sequence
// numbers, and the start of its last entry's hash, which commits to every
// entry before it. Two segments with one name hold the same entries; a
// log rewritten on the card and sent again can never take the name of
// what was sent before.
type SegmentID struct {
	Chain       string
	First, Last uint64
	Hash        string // the last entry's hash, its first 16 digits
}

// SegmentOf is the id of the segment of chain holding entries first to
// last, last being the last entry.
func SegmentOf(chain string, first uint64, last Entry) SegmentID {
	return SegmentID{Chain: chain, First: first, Last: last.Seq, Hash: last.Hash[:min(16, len(last.Hash))]}
}

// Name is "<chain>/<first>-<last>-<hash>.jsonl", the numbers zero-padded so
// names sort in the chain's order.
func (id SegmentID) Name() string {
	return fmt.Sprintf("%s/%012d-%012d-%s.jsonl", id.Chain, id.First, id.Last, id.Hash)
}

// Holds reports whether entries (a parsed segment) are what id names.
func (id SegmentID) Holds(entries []Entry) bool {
	if len(entries) == 0 {
		return false
	}
	first, last := entries[0], entries[len(entries)-1]
	return first.Seq == id.First && SegmentOf(id.Chain, first.Seq, last) == id && (first.Seq != 0 || Chain(first) == id.Chain)
}

// ParseSegmentName reads a name Name made.
func ParseSegmentName(name string) (SegmentID, bool) {
	chain, rest, ok := strings.Cut(name, "/")
	if !ok || !hexDigits(chain) {
		return SegmentID{}, false
	}
	rest, ok = strings.CutSuffix(rest, ".jsonl")
	parts := strings.Split(rest, "-")
	if !ok || len(parts) != 3 || len(parts[0]) != 12 || len(parts[1]) != 12 || !hexDigits(parts[2]) {
		return SegmentID{}, false
	}
	first, err1 := strconv.ParseUint(parts[0], 10, 64)
	last, err2 := strconv.ParseUint(parts[1], 10, 64)
	if err1 != nil || err2 != nil || last < first {
		return SegmentID{}, false
	}
	return SegmentID{Chain: chain, First: first, Last: last, Hash: parts[2]}, true
}

// hexDigits reports whether s is 1 to 64 lower-case hexadecimal digits, as
// a hash or its start is written.
func hexDigits(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// SegmentMessage is what a segment's signature signs: its object key below
// the bucket's prefix (so a segment copied elsewhere fails), a newline,
// then its bytes.
func SegmentMessage(place string, segment []byte) []byte {
	return append([]byte(place+"\n"), segment...)
}

// ParseSegment checks that b is whole entries, each as Record wrote it,
// numbered one after another and each linked to the one before, and
// returns them. The first entry's link is to the previous segment, which
// the caller checks (entry 0 links to nothing).
func ParseSegment(b []byte) ([]Entry, error) {
	if len(b) > SegmentMaxBytes {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrSegment, len(b), SegmentMaxBytes)
	}
	if len(b) == 0 || b[len(b)-1] != '\n' {
		return nil, fmt.Errorf("%w: does not end with a whole entry", ErrSegment)
	}
	var out []Entry
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		line := b[:i+1]
		b = b[i+1:]
		var seq uint64
		var prev string
		if len(out) > 0 {
			seq, prev = out[len(out)-1].Seq+1, out[len(out)-1].Hash
		} else {
			first, err := firstOf(line)
			if err != nil {
				return nil, err
			}
			seq, prev = first.Seq, first.Prev
			if seq == 0 && prev != "" {
				return nil, fmt.Errorf("%w: entry 0 links to %q", ErrSegment, prev)
			}
		}
		e, err := parseLine(line, seq, prev)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSegment, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// firstOf reads the sequence number and link of a segment's first line,
// which parseLine then checks whole.
func firstOf(line []byte) (Entry, error) {
	var e Entry
	if err := json.Unmarshal(line, &e); err != nil {
		return e, fmt.Errorf("%w: its first entry is not JSON", ErrSegment)
	}
	return e, nil
}

// CheckHead reports whether the entries of a log, from entry 0, hold the
// head h: an error wrapping ErrCut if they end before it, ErrReplaced if
// another entry stands at its place.
func CheckHead(entries []Entry, h Head) error {
	if h.Seq >= uint64(len(entries)) {
		if len(entries) == 0 {
			return fmt.Errorf("%w: a head names entry %d, and the log is empty", ErrCut, h.Seq)
		}
		return fmt.Errorf("%w: a head names entry %d, and the log ends at entry %d", ErrCut, h.Seq, len(entries)-1)
	}
	if got := entries[h.Seq].Hash; got != h.Hash {
		return fmt.Errorf("%w: entry %d has hash %.16s…, a head recorded %.16s…", ErrReplaced, h.Seq, got, h.Hash)
	}
	return nil
}
