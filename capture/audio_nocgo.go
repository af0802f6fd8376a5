//go:build !cgo

package capture

import (
	"context"
	"log/slog"

	"mamoru/clock"
	"mamoru/config"
)

// HasMicrophone reports whether this build can capture audio: not without
// cgo, which miniaudio needs.
const HasMicrophone = false

// Devices returns ErrNoMicrophone: this build cannot reach miniaudio.
func Devices(config.Audio) ([]string, error) { return nil, ErrNoMicrophone }

// session fails at once, and for good: this build cannot open a microphone.
func (s *AudioSource) session(context.Context, clock.Clock, *slog.Logger) error {
	return fatalError{ErrNoMicrophone}
}
