//go:build unix

package capture

import (
	"runtime"
	"syscall"
)

// ringMemory returns size bytes for a ring's data, mapped outside the Go
// heap: the garbage collector sizes its heap target from the live heap, and
// a ring of tens of MB counted there would let garbage grow by as much again
// before a collection. Mapped memory is also only resident once written.
// The mapping is released when owner becomes unreachable; the data must
// never escape owner (the Ring copies out of it).
func ringMemory(owner *Ring, size int) []byte {
	b, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return make([]byte, size)
	}
	runtime.AddCleanup(owner, func(b []byte) { syscall.Munmap(b) }, b)
	return b
}
