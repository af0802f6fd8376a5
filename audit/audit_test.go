package audit

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

func TestAuditChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	now := clockwork.NewFakeClockAt(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	a, err := Open(path, now)
	if err != nil {
		t.Fatal(err)
	}
	a.Record("indicator", "on", "true")
	a.Record("capture", "state", "started")
	a.Close()

	// Reopening continues the chain.
	a, err = Open(path, now)
	if err != nil {
		t.Fatal(err)
	}
	a.Record("capture", "state", "stopped")
	a.Close()
	if n, err := Verify(path); n != 3 || err != nil {
		t.Fatalf("Verify = %d, %v; want 3, nil", n, err)
	}

	// A torn last line (power cut mid-write) is cut off on open.
	orig, _ := os.ReadFile(path)
	os.WriteFile(path, append(bytes.Clone(orig), []byte(`{"seq":3,"ti`)...), 0o640)
	if _, err := Verify(path); !errors.Is(err, ErrChain) {
		t.Errorf("Verify with a torn tail = %v, want ErrChain", err)
	}
	a, err = Open(path, now)
	if err != nil {
		t.Fatalf("Open after a torn write: %v", err)
	}
	a.Record("capture", "state", "started")
	a.Close()
	if n, err := Verify(path); n != 4 || err != nil {
		t.Fatalf("after recovery Verify = %d, %v; want 4, nil", n, err)
	}

	// Editing an old entry breaks the chain, and opening refuses to go on.
	tampered := bytes.Replace(orig, []byte(`"on":"true"`), []byte(`"on":"fals"`), 1)
	os.WriteFile(path, tampered, 0o640)
	if _, err := Verify(path); !errors.Is(err, ErrChain) {
		t.Errorf("Verify of an edited log = %v, want ErrChain", err)
	}
	if _, err := Open(path, now); !errors.Is(err, ErrChain) {
		t.Errorf("Open of an edited log = %v, want ErrChain", err)
	}
}

// failing is an audit log file whose writes fail while full is set, as a
// full card's do, after writing part of what they were given.
type failing struct {
	*os.File
	full bool
}

func (f *failing) Write(b []byte) (int, error) {
	if f.full {
		n, _ := f.File.Write(b[:len(b)/2])
		return n, syscall.ENOSPC
	}
	return f.File.Write(b)
}

// A write that fails is reported, naming the entry, and leaves no part of
// itself in the chain: the log goes on once writes succeed again, and its
// head is the last entry written whole.
func TestRecordFailsWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	os.WriteFile(path, nil, 0o640)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	ff := &failing{File: f}
	a, err := OpenFile(ff, path, testNow)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, ok := a.Head(); ok {
		t.Error("an empty log has a head")
	}
	if err := a.Record("start"); err != nil {
		t.Fatal(err)
	}
	h0, _ := a.Head()
	ff.full = true
	err = a.Record("indicator", "on", "true")
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "entry 1 (indicator)") || !strings.Contains(err.Error(), path) {
		t.Errorf("Record on a full card = %v; want ENOSPC naming the log and entry 1", err)
	}
	if h, _ := a.Head(); h != h0 {
		t.Errorf("head after a failed write %+v, want %+v", h, h0)
	}
	ff.full = false
	if err := a.Record("indicator", "on", "false"); err != nil {
		t.Fatal(err)
	}
	if n, err := Verify(path); n != 2 || err != nil {
		t.Errorf("Verify = %d, %v; want the 2 entries written whole", n, err)
	}
	entries, _ := ReadAll(path)
	if h, _ := a.Head(); len(entries) != 2 || h != (Head{Seq: 1, Hash: entries[1].Hash}) {
		t.Errorf("head %+v for entries %+v", h, entries)
	}
}

// cardWithReserve is a log file on a card with no room but what the
// reserve at path holds: a write fails (after writing part of its bytes)
// unless the reserve has given up room since the last write.
type cardWithReserve struct {
	*os.File
	reserve string
	room    int64 // the reserve's size when the card was last full
}

func (c *cardWithReserve) Write(b []byte) (int, error) {
	st, _ := os.Stat(c.reserve)
	if st.Size() >= c.room {
		n, _ := c.File.Write(b[:len(b)/3])
		return n, syscall.ENOSPC
	}
	c.room = st.Size()
	return c.File.Write(b)
}

// On a full card the log writes into its reserve, a MiB at a time, and
// its chain stays whole; once the reserve is spent, writes fail.
func TestReserveKeepsRoomForTheLog(t *testing.T) {
	dir := t.TempDir()
	path, reserve := filepath.Join(dir, "audit.log"), filepath.Join(dir, "audit.reserve")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	card := &cardWithReserve{File: f, reserve: reserve}
	a, err := OpenFile(card, path, testNow)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if n, err := a.Reserve(reserve, 2*reserveStep); n != 2*reserveStep || err != nil {
		t.Fatalf("Reserve = %d, %v", n, err)
	}
	card.room = 2 * reserveStep // the card is full
	for i := range 2 {
		if err := a.Record("press", "result", "refused", "reason", "spool full"); err != nil {
			t.Fatalf("entry %d on a full card with a reserve: %v", i, err)
		}
	}
	if err := a.Record("press"); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("with the reserve spent: %v, want ENOSPC", err)
	}
	if n, err := Verify(path); n != 2 || err != nil {
		t.Errorf("Verify = %d, %v; want the 2 entries written whole", n, err)
	}
	// Room again: Reserve fills it back.
	if n, err := a.Reserve(reserve, 2*reserveStep); n != 2*reserveStep || err != nil {
		t.Errorf("Reserve again = %d, %v", n, err)
	}
}
