// Package testproc starts and stops the servers tests run as child
// processes (MinIO, versitygw, mailpit), and stops them by their own pid
// alone, never by name across the machine, where other sessions' servers
// may run.
package testproc

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Proc is a server a test started.
type Proc struct {
	name   string
	log    string // the file its output goes to
	cmd    *exec.Cmd
	exited chan struct{} // closed when it has exited
}

// Start starts cmd, the server name, whose output goes to the file log
// (the caller sets cmd.Stdout and cmd.Stderr). It dies with the test
// process, should that be killed.
func Start(t testing.TB, name string, cmd *exec.Cmd, log string) *Proc {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &Proc{name: name, log: log, cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(p.exited) }()
	return p
}

// WaitReady calls ready every interval until it reports true, and fails
// t, with the server's output, if the server exits first or timeout
// passes.
func (p *Proc) WaitReady(t testing.TB, timeout, interval time.Duration, ready func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(interval) {
		select {
		case <-p.exited:
			out, _ := os.ReadFile(p.log)
			t.Fatalf("%s exited at start:\n%s", p.name, out)
		default:
		}
		if ready() {
			return
		}
	}
	out, _ := os.ReadFile(p.log)
	t.Fatalf("%s not ready after %v:\n%s", p.name, timeout, out)
}

// Stop ends the server: SIGTERM, then SIGKILL if it has not exited 10 s
// later. A nil Proc is none.
func (p *Proc) Stop() {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}
