//go:build !unix

package capture

import "os/exec"

// startInGroup leaves cmd as it is: without Unix process groups, stopping
// cmd kills the child alone (os/exec's default), and what it started may
// live on. The recorder runs on Linux; other systems build mamoru for the
// managers' commands, which run no camera.
func startInGroup(*exec.Cmd) {}

// killGroup kills the child.
func killGroup(cmd *exec.Cmd) { cmd.Process.Kill() }

// reapGroup does nothing: Wait has reaped the child, and there is no group.
func reapGroup(*exec.Cmd) error { return nil }
