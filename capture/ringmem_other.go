//go:build !unix

package capture

func ringMemory(_ *Ring, size int) []byte { return make([]byte, size) }
