//go:build !cgo

package capture

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"mamoru/config"
)

// Without cgo there is no microphone: Run says so at once, and does not
// retry what cannot work.
func TestAudioSourceWithoutCgo(t *testing.T) {
	s := &AudioSource{
		Config: config.Default().Audio, Timeline: NewTimeline(clockwork.NewFakeClock(), nil),
		Ring: NewRing(1<<20, time.Second, 64), Log: discard, Clock: clockwork.NewFakeClock(),
	}
	if err := s.Run(context.Background()); !errors.Is(err, ErrNoMicrophone) {
		t.Errorf("Run = %v, want ErrNoMicrophone", err)
	}
	if h := s.Health(); h.Running || h.Restarts != 0 || h.LastError != ErrNoMicrophone.Error() {
		t.Errorf("Health() = %+v, want not running, no restarts, the reason", h)
	}
	if _, err := Devices(config.Default().Audio); !errors.Is(err, ErrNoMicrophone) {
		t.Errorf("Devices: %v, want ErrNoMicrophone", err)
	}
}
