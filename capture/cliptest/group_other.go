//go:build !linux

package cliptest

import (
	"os"
	"os/exec"
	"syscall"
)

// ownGroup leaves cmd as it is: off Linux the browser alone is stopped.
func ownGroup(cmd *exec.Cmd) {}

// signalGroup sends sig to the leader.
func signalGroup(leader int, sig syscall.Signal) {
	if p, err := os.FindProcess(leader); err == nil {
		p.Signal(sig)
	}
}

// remaining returns nothing: off Linux there is no /proc to look in.
func remaining(leader int) []int { return nil }
