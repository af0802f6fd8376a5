package mp4

import "encoding/binary"

// boxes appends ISO BMFF boxes to b. A Writer keeps one and reuses b for
// every fragment, so writing a fragment allocates nothing once b has grown.
type boxes struct {
	b []byte
}

// open appends the header of a box of type typ whose size is filled in by
// close, and returns the box's offset in b for close.
func (e *boxes) open(typ string) int {
	at := len(e.b)
	e.b = append(e.b, 0, 0, 0, 0)
	e.b = append(e.b, typ[:4]...)
	return at
}

// openFull is open for a FullBox, which carries a version and 24 bits of flags.
func (e *boxes) openFull(typ string, version uint8, flags uint32) int {
	at := e.open(typ)
	e.u32(uint32(version)<<24 | flags&0xFFFFFF)
	return at
}

// close sets the size of the box opened at offset at to end at len(b).
// Boxes built here are far smaller than 4 GiB; the mdat is sized separately.
func (e *boxes) close(at int) {
	binary.BigEndian.PutUint32(e.b[at:], uint32(len(e.b)-at))
}

func (e *boxes) u8(v uint8)   { e.b = append(e.b, v) }
func (e *boxes) u16(v uint16) { e.b = binary.BigEndian.AppendUint16(e.b, v) }
func (e *boxes) u32(v uint32) { e.b = binary.BigEndian.AppendUint32(e.b, v) }
func (e *boxes) u64(v uint64) { e.b = binary.BigEndian.AppendUint64(e.b, v) }

func (e *boxes) bytes(p []byte)         { e.b = append(e.b, p...) }
func (e *boxes) str(s string)           { e.b = append(e.b, s...) }
func (e *boxes) zeros(n int)            { e.b = append(e.b, make([]byte, n)...) }
func (e *boxes) put32(at int, v uint32) { binary.BigEndian.PutUint32(e.b[at:], v) }

// matrix appends the identity transformation matrix of mvhd and tkhd.
func (e *boxes) matrix() {
	e.u32(0x00010000)
	e.u32(0)
	e.u32(0)
	e.u32(0)
	e.u32(0x00010000)
	e.u32(0)
	e.u32(0)
	e.u32(0)
	e.u32(0x40000000)
}
