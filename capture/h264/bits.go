package h264

import "fmt"

// A bitReader reads the RBSP inside NAL unit bytes, most significant bit
// first, skipping emulation prevention bytes (the 3 in 0x000003) as it goes,
// so it needs no copy of the bytes.
//
// Reads never fail outright: after the first problem (the bytes end, an
// Exp-Golomb code is longer than 32 bits, a value is out of range) every read
// returns 0, and failed, field and the rest record the problem. Parsers check
// failed where it matters. Recording it allocates nothing.
type bitReader struct {
	b     []byte
	i     int   // the next byte of b
	zeros int   // zero bytes just before b[i]
	cur   byte  // the byte being read
	left  uint8 // its unread bits

	failed bool
	field  string // the syntax element being read at the first problem
	why    problem
	value  int64 // for outOfRange: the value and its bounds
	lo, hi int64
}

type problem uint8

const (
	cutOff problem = iota
	tooLong
	outOfRange
)

// describe says what the first problem was, for an error message.
func (r *bitReader) describe() string {
	switch r.why {
	case tooLong:
		return fmt.Sprintf("%s is an Exp-Golomb code longer than 32 bits", r.field)
	case outOfRange:
		return fmt.Sprintf("%s is %d, outside %d..%d", r.field, r.value, r.lo, r.hi)
	}
	return fmt.Sprintf("the bytes end inside %s", r.field)
}

func (r *bitReader) fail(field string, why problem) {
	if !r.failed {
		r.failed, r.field, r.why = true, field, why
	}
}

// bit reads one bit.
func (r *bitReader) bit(field string) uint32 {
	if r.failed {
		return 0
	}
	if r.left == 0 {
		if r.i < len(r.b) && r.zeros >= 2 && r.b[r.i] == 3 {
			r.i++
			r.zeros = 0
		}
		if r.i >= len(r.b) {
			r.fail(field, cutOff)
			return 0
		}
		r.cur = r.b[r.i]
		r.i++
		if r.cur == 0 {
			r.zeros++
		} else {
			r.zeros = 0
		}
		r.left = 8
	}
	r.left--
	return uint32(r.cur>>r.left) & 1
}

// u reads an n-bit unsigned integer, n at most 32.
func (r *bitReader) u(n int, field string) uint32 {
	var v uint32
	for range n {
		v = v<<1 | r.bit(field)
	}
	return v
}

func (r *bitReader) flag(field string) bool { return r.bit(field) == 1 }

// ue reads an unsigned Exp-Golomb code (ITU-T H.264 9.1): at most 31 leading
// zero bits, so values up to 2^32-2.
func (r *bitReader) ue(field string) uint32 {
	zeros := 0
	for r.bit(field) == 0 {
		if r.failed {
			return 0
		}
		if zeros++; zeros > 31 {
			r.fail(field, tooLong)
			return 0
		}
	}
	return uint32(uint64(1)<<zeros - 1 + uint64(r.u(zeros, field)))
}

// se reads a signed Exp-Golomb code (ITU-T H.264 9.1.1).
func (r *bitReader) se(field string) int64 {
	k := int64(r.ue(field))
	if k%2 == 1 {
		return (k + 1) / 2
	}
	return -k / 2
}

// ueIn reads an unsigned Exp-Golomb code that must lie in lo..hi.
func (r *bitReader) ueIn(field string, lo, hi int64) int64 {
	return r.check(field, int64(r.ue(field)), lo, hi)
}

// seIn reads a signed Exp-Golomb code that must lie in lo..hi.
func (r *bitReader) seIn(field string, lo, hi int64) int64 {
	return r.check(field, r.se(field), lo, hi)
}

func (r *bitReader) check(field string, v, lo, hi int64) int64 {
	if r.failed {
		return 0
	}
	if v < lo || v > hi {
		r.fail(field, outOfRange)
		r.value, r.lo, r.hi = v, lo, hi
		return 0
	}
	return v
}
