//go:build unix && !linux

package capture

import (
	"errors"
	"fmt"
	"syscall"
)

// setDeathSignal does nothing: only Linux can kill a child when its parent
// dies, and only Linux runs a camera.
func setDeathSignal(*syscall.SysProcAttr) {}

// liveInGroup returns pgid if any process of group pgid is left, exited but
// not yet reaped ones included: without /proc, the group can only be asked
// whether it is empty.
func liveInGroup(pgid int) ([]int, error) {
	switch err := syscall.Kill(-pgid, 0); {
	case errors.Is(err, syscall.ESRCH):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("process group %d: %w", pgid, err)
	}
	return []int{pgid}, nil
}
