package device

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestAuditChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	now := func() time.Time { return time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC) }
	a, err := OpenAudit(path, now)
	if err != nil {
		t.Fatal(err)
	}
	a.Log("indicator", "on", "true")
	a.Log("capture", "state", "started")
	a.Close()

	// Reopening continues the chain.
	a, err = OpenAudit(path, now)
	if err != nil {
		t.Fatal(err)
	}
	a.Log("capture", "state", "stopped")
	a.Close()
	if n, err := VerifyAudit(path); n != 3 || err != nil {
		t.Fatalf("VerifyAudit = %d, %v; want 3, nil", n, err)
	}

	// A torn last line (power cut mid-write) is cut off on open.
	orig, _ := os.ReadFile(path)
	os.WriteFile(path, append(bytes.Clone(orig), []byte(`{"seq":3,"ti`)...), 0o640)
	if _, err := VerifyAudit(path); !errors.Is(err, ErrAuditChain) {
		t.Errorf("VerifyAudit with a torn tail = %v, want ErrAuditChain", err)
	}
	a, err = OpenAudit(path, now)
	if err != nil {
		t.Fatalf("OpenAudit after a torn write: %v", err)
	}
	a.Log("capture", "state", "started")
	a.Close()
	if n, err := VerifyAudit(path); n != 4 || err != nil {
		t.Fatalf("after recovery VerifyAudit = %d, %v; want 4, nil", n, err)
	}

	// Editing an old entry breaks the chain, and opening refuses to go on.
	tampered := bytes.Replace(orig, []byte(`"on":"true"`), []byte(`"on":"fals"`), 1)
	os.WriteFile(path, tampered, 0o640)
	if _, err := VerifyAudit(path); !errors.Is(err, ErrAuditChain) {
		t.Errorf("VerifyAudit of an edited log = %v, want ErrAuditChain", err)
	}
	if _, err := OpenAudit(path, now); !errors.Is(err, ErrAuditChain) {
		t.Errorf("OpenAudit of an edited log = %v, want ErrAuditChain", err)
	}
}
