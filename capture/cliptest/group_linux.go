//go:build linux

package cliptest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
)

// ownGroup makes cmd the leader of a new process group, which the
// processes it starts join: a browser's renderers and content processes.
func ownGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// signalGroup sends sig to every process in the group that leader leads,
// and to its crash helper.
func signalGroup(leader int, sig syscall.Signal) {
	syscall.Kill(-leader, sig)
	for _, pid := range helpers(leader) {
		syscall.Kill(pid, sig)
	}
}

// remaining returns the processes still running (zombies aside) of the
// group that leader leads, and its crash helper: Firefox starts
// crashhelper with its own pid as first argument, in a session of its
// own, so the group alone would not show it. A zombie has ended: whoever
// adopted it (pid 1) reaps it, not us.
func remaining(leader int) []int {
	var pids []int
	for _, pid := range processes() {
		if pgid, state, ok := stat(pid); ok && state != 'Z' && pgid == leader {
			pids = append(pids, pid)
		}
	}
	for _, pid := range helpers(leader) {
		if _, state, ok := stat(pid); ok && state != 'Z' {
			pids = append(pids, pid)
		}
	}
	return pids
}

// helpers returns the processes that are crashhelper for leader.
func helpers(leader int) []int {
	var pids []int
	for _, pid := range processes() {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if err != nil {
			continue
		}
		args := bytes.Split(b, []byte{0})
		if len(args) > 1 && filepath.Base(string(args[0])) == "crashhelper" && string(args[1]) == strconv.Itoa(leader) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// processes returns the pids in /proc.
func processes() []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// stat returns a process's group and state from /proc/<pid>/stat.
func stat(pid int) (pgid int, state byte, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 3 || len(f[0]) != 1 {
		return 0, 0, false
	}
	pgid, err = strconv.Atoi(string(f[2]))
	return pgid, f[0][0], err == nil
}
