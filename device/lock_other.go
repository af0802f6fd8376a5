//go:build !unix

package device

import "errors"

// lockStateDir refuses: the recorder runs on the Pi (Linux). The managers'
// commands, built for Windows too, never run it.
func lockStateDir(string) (unlock func(), err error) {
	return nil, errors.New("device: the recorder runs only on Linux")
}
