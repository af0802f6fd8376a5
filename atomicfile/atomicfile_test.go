package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	read := func() string {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if err := Write(p, []byte("one"), Options{Mode: 0o600}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); read() != "one" || fi.Mode().Perm() != 0o600 {
		t.Errorf("after Write: %q, mode %v; want \"one\", 0600", read(), fi.Mode().Perm())
	}
	// Replacing is allowed, unless New.
	if err := Write(p, []byte("two"), Options{Mode: 0o640}); err != nil || read() != "two" {
		t.Errorf("replace: %v, %q", err, read())
	}
	if err := Write(p, []byte("three"), Options{Mode: 0o640, New: true}); !errors.Is(err, ErrExists) || read() != "two" {
		t.Errorf("New over a file: %v, %q; want ErrExists and the file as it was", err, read())
	}
	// A link at the name is not written through.
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("target"), 0o600)
	link := filepath.Join(dir, "link")
	os.Symlink(target, link)
	if err := Write(link, []byte("x"), Options{Mode: 0o600, New: true}); !errors.Is(err, ErrExists) {
		t.Errorf("New over a link: %v, want ErrExists", err)
	}
	if b, _ := os.ReadFile(target); string(b) != "target" {
		t.Errorf("written through a link: %q", b)
	}
	// A check that refuses leaves the name alone.
	refused := errors.New("refused")
	var checked string
	err := Write(p, []byte("four"), Options{Mode: 0o600, Check: func(tmp string) error {
		b, _ := os.ReadFile(tmp)
		checked = string(b)
		return refused
	}})
	if !errors.Is(err, refused) || checked != "four" || read() != "two" {
		t.Errorf("refused check: %v, checked %q, file %q", err, checked, read())
	}
	// No temporary file is left behind.
	es, _ := os.ReadDir(dir)
	for _, e := range es {
		if n := e.Name(); n != "f" && n != "target" && n != "link" {
			t.Errorf("left behind: %s", n)
		}
	}
}
