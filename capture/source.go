package capture

import (
	"sync"
	"time"
)

// Health is what a source reports about itself for status and the watchdog.
type Health struct {
	Running   bool          `json:"running"`
	Frames    uint64        `json:"frames"`
	LastFrame time.Duration `json:"-"` // media time of the newest frame
	Restarts  int           `json:"restarts"`
	LastError string        `json:"last_error,omitempty"`
}

// healthBox is a Health shared between a source's goroutine and readers.
type healthBox struct {
	mu sync.Mutex // guards h
	h  Health
}

func (b *healthBox) get() Health {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.h
}

func (b *healthBox) frame(t time.Duration) {
	b.mu.Lock()
	b.h.Frames++
	b.h.LastFrame = t
	b.mu.Unlock()
}

func (b *healthBox) running(on bool) {
	b.mu.Lock()
	b.h.Running = on
	b.mu.Unlock()
}

func (b *healthBox) failed(err error) {
	b.mu.Lock()
	b.h.Running = false
	b.h.Restarts++
	b.h.LastError = err.Error()
	b.mu.Unlock()
}
