// Package testproc stops the servers tests start as child processes
// (MinIO, versitygw, mailpit) by their own pid alone, never by name across
// the machine, where other sessions' servers may run.
package testproc

import (
	"os"
	"syscall"
	"time"
)

// Stop ends p: SIGTERM, then SIGKILL if it has not exited 10 s later.
// exited must close when p has exited (its Wait returned).
func Stop(p *os.Process, exited <-chan struct{}) {
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = p.Kill()
		<-exited
	}
}
