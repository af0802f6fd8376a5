//go:build cgo

package capture

import (
	"context"
	"testing"
	"time"

	"mamoru/clock"
	"mamoru/config"
)

// The source hands its PCM tap each block it writes to the ring, at the
// block's media time. miniaudio's null backend captures silence in real
// time, so this takes a few blocks' time.
func TestAudioSourceTapsPCM(t *testing.T) {
	cfg := config.Default().Audio
	cfg.Backend, cfg.Channels = config.BackendNull, 2
	type tap struct {
		t       time.Duration
		samples int
	}
	taps := make(chan tap, 64)
	ring := NewRing(1<<20, 10*time.Second, 1024)
	s := &AudioSource{
		Config: cfg, Timeline: NewTimeline(clock.Real(), nil), Ring: ring, Log: discard,
		PCM: func(t time.Duration, pcm []int16) {
			select {
			case taps <- tap{t, len(pcm)}:
			default: // the test has what it needs
			}
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var got []tap
	for len(got) < 3 {
		select {
		case tp := <-taps:
			got = append(got, tp)
		case <-time.After(guard):
			t.Fatalf("the tap saw %d blocks in %v, want 3; health %+v", len(got), guard, s.Health())
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	frames := make([]Frame, 64)
	n, _, err := ring.Read(0, frames, make([]byte, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	for i, tp := range got {
		if want := s.blockSamples() * cfg.Channels; tp.samples != want {
			t.Errorf("tap %d: %d samples, want %d (20 ms of %d channels)", i, tp.samples, want, cfg.Channels)
		}
		if i >= n || frames[i].Time != tp.t || frames[i].Track != Audio {
			t.Errorf("tap %d at %v; the ring's frame %d of %d: %+v", i, tp.t, i, n, frames[min(i, n)])
		}
	}
}
