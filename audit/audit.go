// Package audit is the hash-chained log of everything that bears on the
// operating rules: the indicator, capture, presses, incidents and uploads.
// Verify checks a whole log; Open continues one, cutting a torn last line.
package audit

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"mamoru/clock"
)

// Log is the append-only, hash-chained log of every indicator and
// capture state change. Each line is a JSON entry whose hash covers the
// previous entry's hash, so a line removed or edited later breaks the chain
// from that line on. It is the evidence that nothing was captured while the
// indicator was off.
type Log struct {
	mu   sync.Mutex // guards the fields below
	f    File
	path string
	seq  uint64
	prev string
	// size is the length of the whole entries written; torn is set when a
	// failed write may have left bytes after it that are not yet cut off.
	size int64
	torn bool
	wall clock.Clock // stamps entries: the time of day is the point
	// reserve is the file holding room for the log (Reserve), or "".
	reserve string
}

// File is what a Log writes: an *os.File opened for appending, or a
// stand-in (a test's, whose writes fail).
type File interface {
	io.ReadWriter
	Sync() error
	Truncate(size int64) error
	Close() error
}

// Head names the last entry of a chain: its sequence number and hash. A
// manifest carries the head of the log when it was sealed, so a log that
// later ends before it, or holds another entry there, is found out.
type Head struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// Entry is one line of the audit log.
type Entry struct {
	Seq    uint64            `json:"seq"`
	Time   time.Time         `json:"time"`
	Event  string            `json:"event"`
	Fields map[string]string `json:"fields,omitempty"`
	Prev   string            `json:"prev"`
	Hash   string            `json:"hash"`
}

// ErrChain means the audit log was altered.
var ErrChain = errors.New("audit: log chain broken")

// Open opens (creating) the log at path and continues its chain. A torn
// last line, left by a power cut in the middle of a write, is cut off and
// the chain continues from the line before. Entries are stamped with the
// wall clock.
func Open(path string, wall clock.Clock) (*Log, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("audit: open audit log: %w", err)
	}
	return OpenFile(f, path, wall)
}

// OpenFile is Open for a file already open for reading and appending,
// positioned at its start; path names it in errors. The Log owns f.
func OpenFile(f File, path string, wall clock.Clock) (*Log, error) {
	last, good, err := scan(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: audit log %s: %w", path, err)
	}
	if err := f.Truncate(good); err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: audit log %s: %w", path, err)
	}
	a := &Log{f: f, path: path, size: good, wall: wall}
	if last != nil {
		a.seq, a.prev = last.Seq+1, last.Hash
	}
	return a, nil
}

// scan verifies the chain and returns the last entry and the length of
// the intact prefix. Only a torn final line is forgiven.
func scan(r io.Reader) (last *Entry, good int64, err error) {
	err = Walk(r, func(e Entry, line []byte) error {
		last = &e
		good += int64(len(line))
		return nil
	})
	return last, good, err
}

// Walk reads a log from its first entry, checks each whole line against
// the chain and hands it to fn with its bytes (the newline included; fn
// must not retain them). It stops at the first line that breaks the chain
// (an error wrapping ErrChain), at fn's first error, or at the end; a
// last line without its newline, being written or torn, is not handed on.
func Walk(r io.Reader, fn func(e Entry, line []byte) error) error {
	br := bufio.NewReader(r)
	prev := ""
	var seq uint64
	for {
		line, rerr := br.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			e, err := parseLine(line, seq, prev)
			if err != nil {
				return err
			}
			if err := fn(e, line); err != nil {
				return err
			}
			prev = e.Hash
			seq++
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// parseLine checks that line (with its newline) is entry seq, linked to
// prev, exactly as Record wrote it.
func parseLine(line []byte, seq uint64, prev string) (Entry, error) {
	var e Entry
	if err := json.Unmarshal(line, &e); err != nil {
		return e, fmt.Errorf("%w: entry %d is not JSON", ErrChain, seq)
	}
	if e.Seq != seq || e.Prev != prev || e.Hash != e.digest() {
		return e, fmt.Errorf("%w at entry %d", ErrChain, seq)
	}
	// The hash covers the entry's values, not its bytes, and json.Unmarshal
	// ignores some changes (a key's case): the line must be the bytes Record
	// wrote for those values.
	if b, _ := json.Marshal(e); !bytes.Equal(b, line[:len(line)-1]) {
		return e, fmt.Errorf("%w at entry %d: not as written", ErrChain, seq)
	}
	return e, nil
}

// Verify checks a whole audit log and returns how many entries it has.
func Verify(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	last, good, err := scan(f)
	if err != nil {
		return 0, err
	}
	if st, err := f.Stat(); err == nil && st.Size() != good {
		return 0, fmt.Errorf("%w: %d bytes after the last whole entry", ErrChain, st.Size()-good)
	}
	if last == nil {
		return 0, nil
	}
	return int(last.Seq) + 1, nil
}

func (e *Entry) digest() string {
	c := *e
	c.Hash = ""
	b, _ := json.Marshal(c)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Record appends an entry and syncs it to disk. kv are alternating keys and
// values. An entry that cannot be written whole and synced (the card is
// full, or failing) is not in the chain: Record cuts off whatever part of
// it reached the file, now or before the next entry, and returns an error
// naming the entry. The caller must treat that as a fault.
func (a *Log) Record(event string, kv ...string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.torn {
		if err := a.f.Truncate(a.size); err != nil {
			return fmt.Errorf("audit: audit log %s: cut the entry %d that failed: %w", a.path, a.seq, err)
		}
		a.torn = false
	}
	// JSON holds only valid UTF-8: the entry is hashed as it will read back.
	valid := func(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
	e := Entry{Seq: a.seq, Time: a.wall.Now().Round(0), Event: valid(event), Prev: a.prev}
	if len(kv) > 0 || e.Seq == 0 {
		e.Fields = make(map[string]string, len(kv)/2+1)
		for i := 0; i+1 < len(kv); i += 2 {
			e.Fields[valid(kv[i])] = valid(kv[i+1])
		}
	}
	if e.Seq == 0 {
		// A chain is named by its first entry's hash (Chain): a random
		// nonce there keeps two chains apart even when they begin with the
		// same event at the same time (a clock not yet set).
		nonce := make([]byte, 8)
		rand.Read(nonce)
		e.Fields["chain_nonce"] = hex.EncodeToString(nonce)
	}
	e.Hash = e.digest()
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	_, err = a.f.Write(b)
	if errors.Is(err, syscall.ENOSPC) && a.f.Truncate(a.size) == nil && a.release() {
		_, err = a.f.Write(b) // into the room the reserve gave up
	}
	if err == nil {
		err = a.f.Sync()
	}
	if err != nil {
		a.torn = a.f.Truncate(a.size) != nil
		return fmt.Errorf("audit: audit log %s: write entry %d (%s): %w", a.path, e.Seq, e.Event, err)
	}
	a.seq++
	a.prev = e.Hash
	a.size += int64(len(b))
	return nil
}

// reserveStep is how much of its reserve the log gives up at a time.
const reserveStep = 1 << 20

// Reserve keeps n bytes of the card for the log, in the file at path, so
// that clips filling the card never leave the log without room: when a
// write finds the card full, the reserve gives up a MiB and the write is
// tried again. Call it again (every minute, say) to fill the reserve back
// to n where the card has room; it returns the reserve's size then. The
// bytes are written, not just allotted, so that they are the card's.
func (a *Log) Reserve(path string, n int64) (int64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reserve = path
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o640)
	if err != nil {
		return 0, fmt.Errorf("audit: reserve room for the log: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("audit: reserve room for the log: %w", err)
	}
	have := st.Size()
	if have >= n {
		return have, nil
	}
	zeros := make([]byte, 64<<10)
	for have < n {
		w, err := f.WriteAt(zeros[:min(int64(len(zeros)), n-have)], have)
		have += int64(w)
		if err != nil {
			f.Truncate(have)
			return have, fmt.Errorf("audit: reserve room for the log in %s: %d of %d bytes: %w", path, have, n, err)
		}
	}
	if err := f.Sync(); err != nil {
		return have, fmt.Errorf("audit: reserve room for the log in %s: %w", path, err)
	}
	return have, nil
}

// release gives up a step of the reserve, and reports whether there was
// any to give.
func (a *Log) release() bool {
	if a.reserve == "" {
		return false
	}
	st, err := os.Stat(a.reserve)
	if err != nil || st.Size() == 0 {
		return false
	}
	return os.Truncate(a.reserve, max(st.Size()-reserveStep, 0)) == nil
}

// Head returns the last entry written, or false if the log is empty.
func (a *Log) Head() (Head, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.prev == "" {
		return Head{}, false
	}
	return Head{Seq: a.seq - 1, Hash: a.prev}, true
}

// Close closes the log.
func (a *Log) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.f.Close()
}

// ReadAll returns every entry; for tests and tools.
func ReadAll(path string) ([]Entry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var e Entry
		if err := json.Unmarshal(line, &e); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}
