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
