package flac

import "encoding/binary"

// bitWriter packs bits most significant first into buf through a 64-bit
// accumulator, storing 32 bits at a time. buf must reach 4 bytes past the
// last byte written; the Encoder sizes it so once.
type bitWriter struct {
	buf []byte
	pos int    // bytes stored in buf
	acc uint64 // pending bits in its low n bits
	n   uint   // pending bits, always under 32 between calls
}

func (w *bitWriter) reset() { w.pos, w.acc, w.n = 0, 0, 0 }

// write appends the low k bits of v, k at most 32; v has no higher bits.
func (w *bitWriter) write(v uint32, k uint) {
	w.acc = w.acc<<k | uint64(v)
	w.n += k
	if w.n >= 32 {
		w.n -= 32
		binary.BigEndian.PutUint32(w.buf[w.pos:], uint32(w.acc>>w.n))
		w.pos += 4
	}
}

// rice appends each folded residual in us as a Rice code of parameter k
// (k at most 14): the quotient u>>k in unary as zeros and a one, then the
// low k bits of u.
func (w *bitWriter) rice(us []uint32, k uint) {
	acc, n, pos, buf := w.acc, w.n, w.pos, w.buf
	mask := uint32(1)<<k - 1
	for _, u := range us {
		q := uint(u >> k)
		code := 1<<k | u&mask
		if q+k+1 > 32 {
			// A long quotient: its zeros first, at most 32 at a time.
			for q > 0 {
				z := min(q, 32)
				acc <<= z
				n += z
				q -= z
				if n >= 32 {
					n -= 32
					binary.BigEndian.PutUint32(buf[pos:], uint32(acc>>n))
					pos += 4
				}
			}
		}
		nb := q + k + 1
		acc = acc<<nb | uint64(code)
		n += nb
		if n >= 32 {
			n -= 32
			binary.BigEndian.PutUint32(buf[pos:], uint32(acc>>n))
			pos += 4
		}
	}
	w.acc, w.n, w.pos = acc, n, pos
}

// align pads with zero bits to a byte boundary and stores what is pending.
func (w *bitWriter) align() {
	if r := w.n % 8; r != 0 {
		w.write(0, 8-r)
	}
	for w.n >= 8 {
		w.n -= 8
		w.buf[w.pos] = byte(w.acc >> w.n)
		w.pos++
	}
}
