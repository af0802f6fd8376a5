//go:build unix

package fleet

import (
	"errors"
	"testing"
)

// A second watch on one state directory is refused while the first runs.
func TestLockState(t *testing.T) {
	dir := t.TempDir()
	unlock, err := LockState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LockState(dir); !errors.Is(err, ErrWatched) {
		t.Errorf("a second LockState = %v, want ErrWatched", err)
	}
	unlock()
	again, err := LockState(dir)
	if err != nil {
		t.Errorf("LockState after unlock = %v", err)
	} else {
		again()
	}
}
