package backoff

import (
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: 2 * time.Second}
	want := []time.Duration{100, 200, 400, 800, 1600, 2000, 2000}
	for i, w := range want {
		if got := b.Delay(i); got != w*time.Millisecond {
			t.Errorf("Delay(%d) = %v, want %v", i, got, w*time.Millisecond)
		}
	}
	if got := b.Delay(1 << 20); got != 2*time.Second {
		t.Errorf("Delay(huge) = %v, want the max", got)
	}
	j := Backoff{Min: time.Second, Max: time.Second, Jitter: 0.5}
	for range 100 {
		if got := j.Delay(3); got < time.Second || got > 1500*time.Millisecond {
			t.Fatalf("Delay with 50%% jitter = %v, want within [1s, 1.5s]", got)
		}
	}
}
