// Package atomicfile writes a file so that, after a crash or a power cut,
// its name holds either what was there before or all of the new bytes,
// never part of them: the bytes go to a temporary file in the same folder,
// are synced, and only then get the name, whose folder is synced in turn.
package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrExists means Write with New, or LinkNew, found a file (or a link)
// already at the name, and left it as it was.
var ErrExists = errors.New("already exists: not replaced")

// Options say how Write writes.
type Options struct {
	// Mode is the file's permission bits.
	Mode os.FileMode
	// New refuses to replace anything already at the name (ErrExists).
	New bool
	// Check, if set, is given the temporary file's path once the bytes
	// are in it and synced; its error leaves the name as it was.
	Check func(tmp string) error
}

// Write writes data to path as o says. The temporary file is named
// ".<base>.tmp-<random>" beside path and is gone when Write returns.
func Write(path string, data []byte, o Options) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails harmlessly once renamed
	err = f.Chmod(o.Mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && o.Check != nil {
		err = o.Check(f.Name())
	}
	if err != nil {
		return err
	}
	if o.New {
		err = LinkNew(f.Name(), path)
	} else {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return err
	}
	syncDir(filepath.Dir(path))
	return nil
}

// LinkNew gives the finished file tmp the name path, refusing to replace
// anything there (ErrExists): a hard link fails on an existing name,
// where a rename would replace it. A file system without hard links (FAT
// on a USB stick) gets a rename after a check. tmp keeps its own name
// when it is linked: the caller removes it.
func LinkNew(tmp, path string) error {
	err := os.Link(tmp, path)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s %w", path, ErrExists)
	}
	if err == nil {
		return nil
	}
	if _, lerr := os.Lstat(path); !errors.Is(lerr, os.ErrNotExist) {
		return fmt.Errorf("%s %w", path, ErrExists)
	}
	return os.Rename(tmp, path)
}

// syncDir makes a name given in dir survive a power cut. A folder that
// cannot be opened or synced (Windows) is left to the file system.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
