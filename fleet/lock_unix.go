//go:build unix

package fleet

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// LockState takes an exclusive lock on a watch's state directory for as
// long as the process lives, or returns ErrWatched: two watches on one
// directory would each say every alert.
func LockState(dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("fleet: lock %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrWatched, dir)
		}
		return nil, fmt.Errorf("fleet: lock %s: %w", dir, err)
	}
	return func() { f.Close() }, nil
}
