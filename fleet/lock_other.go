//go:build !unix

package fleet

// LockState does not lock on this system: run one watch per state
// directory.
func LockState(string) (unlock func(), err error) { return func() {}, nil }
