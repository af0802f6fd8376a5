package capture

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// setDeathSignal makes the kernel kill the child when mamoru dies. Strictly,
// when the thread that started it exits; Go ends a thread before the
// program only when a goroutine exits with its thread locked, and none that
// starts a camera does.
func setDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }

// liveInGroup returns the pids of the processes of group pgid that have not
// exited. A process that has exited but awaits its reaping by init (a
// zombie, which holds no files and no device) does not count: init reaps
// when it will, seconds later in some containers.
func liveInGroup(pgid int) ([]int, error) {
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return nil, err
	}
	var live []int
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // it has been reaped since the listing
		}
		st, ok := parseProcStat(b)
		if ok && st.pgrp == pgid && st.state != 'Z' && st.state != 'X' {
			live = append(live, st.pid)
		}
	}
	return live, nil
}

// procStat is what liveInGroup (and the tests) read of /proc/<pid>/stat.
type procStat struct {
	pid, pgrp int
	state     byte   // R, S, D, Z (exited, not reaped), ...
	starttime uint64 // clock ticks after boot: with pid, names one process
}

// parseProcStat reads /proc/<pid>/stat (proc(5)). The command name, in
// parentheses, may hold spaces and parentheses itself, so the fields after
// it are counted from the last ')'.
func parseProcStat(b []byte) (procStat, bool) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 1 || end < open {
		return procStat{}, false
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return procStat{}, false
	}
	// f[0] is field 3 of proc(5), state; f[2] field 5, pgrp; f[19] field
	// 22, starttime.
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, false
	}
	pgrp, err1 := strconv.Atoi(f[2])
	start, err2 := strconv.ParseUint(f[19], 10, 64)
	if err1 != nil || err2 != nil {
		return procStat{}, false
	}
	return procStat{pid: pid, pgrp: pgrp, state: f[0][0], starttime: start}, true
}
