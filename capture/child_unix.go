//go:build unix

package capture

import (
	"fmt"
	"os/exec"
	"syscall"
	"time"
)

// startInGroup makes cmd start in a process group of its own, whose id is
// its pid, and be stopped by SIGTERM to the whole group.
func startInGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// The encoder must never outlive mamoru: if mamoru dies, the indicator
	// may go dark, so the camera must stop with it.
	setDeathSignal(cmd.SysProcAttr)
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
}

// killGroup sends SIGKILL to every process in cmd's group. A group that is
// gone already is no error.
func killGroup(cmd *exec.Cmd) {
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

// reapTimeout bounds reapGroup's wait. A process dies within microseconds of
// SIGKILL unless it is stuck in the kernel (a wedged camera driver), which
// no waiting cures.
const reapTimeout = 2 * time.Second

// reapGroup kills what is left of cmd's process group, once Wait has
// returned, and waits until every process of it has exited. It returns an
// error naming the processes still alive after reapTimeout.
//
// While any process of the group lives, the group id stays taken, so the
// SIGKILL cannot reach an unrelated group; once none does, it finds nothing.
func reapGroup(cmd *exec.Cmd) error {
	pgid := cmd.Process.Pid
	killGroup(cmd)
	// SIGKILL takes effect when the kernel next schedules each process, so
	// this polls until it has. The deadline and the waits are real time, as
	// the kernel's are; they are short because the first look almost always
	// finds the group gone.
	deadline := time.Now().Add(reapTimeout)
	for wait := 100 * time.Microsecond; ; wait = min(2*wait, 20*time.Millisecond) {
		live, err := liveInGroup(pgid)
		if err != nil || len(live) == 0 {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process group %d: pids %v alive %v after SIGKILL", pgid, live, reapTimeout)
		}
		time.Sleep(wait)
	}
}
