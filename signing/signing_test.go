package signing

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// NewKey writes a key ReadKey reads, mode 0600, with nothing else left in
// the directory; a name that exists, even empty, it leaves as it is.
func TestNewKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "signing.key")
	pub, err := NewKey(path)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ReadKey(path)
	if err != nil || k.Public() != pub {
		t.Fatalf("ReadKey = %v, %v; want the key whose public key is %s", k.Public(), err, pub)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the directory holds %v; want the key alone, no temporary file", entries)
	}

	empty := filepath.Join(dir, "empty.key")
	os.WriteFile(empty, nil, 0o600)
	if _, err := NewKey(empty); !errors.Is(err, fs.ErrExist) {
		t.Errorf("NewKey on a name that exists = %v, want fs.ErrExist", err)
	}
	if b, err := os.ReadFile(empty); err != nil || len(b) != 0 {
		t.Errorf("NewKey changed a file that existed: %q, %v", b, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("the directory holds %v after a refused NewKey; want no temporary file left", entries)
	}
}
