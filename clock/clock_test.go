package clock

import (
	"context"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

func TestSleep(t *testing.T) {
	c := clockwork.NewFakeClock()
	done := make(chan bool)
	go func() { done <- Sleep(context.Background(), c, 5*time.Second) }()
	if err := c.BlockUntilContext(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	c.Advance(5*time.Second - time.Nanosecond)
	select {
	case <-done:
		t.Fatal("Sleep returned before its time")
	default:
	}
	c.Advance(time.Nanosecond)
	if slept := <-done; !slept {
		t.Error("Sleep = false after its time, want true")
	}

	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- Sleep(ctx, c, time.Hour) }()
	if err := c.BlockUntilContext(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if slept := <-done; slept {
		t.Error("Sleep = true when its context ended, want false")
	}
	if Sleep(ctx, c, 0) {
		t.Error("Sleep on an ended context = true, want false")
	}
}
