//go:build !linux

package device

import "errors"

// cardFree cannot be measured here: the recorder runs on the Pi (Linux).
func cardFree(string) (int64, error) {
	return 0, errors.New("free space is measured on Linux only")
}
