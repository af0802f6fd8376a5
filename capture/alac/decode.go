package alac

import (
	"errors"
	"fmt"
)

// errFrame is what a decoder says of a frame it cannot read.
var errFrame = errors.New("alac: malformed frame")

// decoder reads the frames an Encoder writes: one SCE or CPE element, an
// escape frame or a compressed one with mode 0, no bytes shifted and no
// mixing, then END. It is the Encoder's check on its own compressed
// frames, written from Apple's decoder (ALACDecoder.cpp, ag_dec.c,
// dp_dec.c) rather than by inverting the encoder.
type decoder struct {
	frameLength, depth, channels int
	pcm, res                     []int32
}

// frame appends the interleaved samples of frame b to dst.
func (d *decoder) frame(dst []int32, b []byte) ([]int32, error) {
	r := bitReader{b: b}
	tag := r.get(3)
	if want := uint32(d.channels - 1); tag != want {
		return dst, fmt.Errorf("%w: element %d, want %d", errFrame, tag, want)
	}
	r.get(4)
	if r.get(12) != 0 {
		return dst, fmt.Errorf("%w: unused header bits set", errFrame)
	}
	h := r.get(4)
	n := d.frameLength
	if h>>3 == 1 {
		n = int(r.get(32))
	}
	if h>>1&3 != 0 || n < 1 || n > d.frameLength {
		return dst, fmt.Errorf("%w: shifted bytes or %d samples", errFrame, n)
	}
	start := len(dst)
	dst = append(dst, make([]int32, n*d.channels)...)
	out := dst[start:]
	if h&1 == 1 { // escape
		for i := range out {
			out[i] = wrap(int64(r.get(d.depth)), d.depth)
		}
	} else {
		mixBits, mixRes := r.get(8), r.get(8)
		if mixBits != 0 || mixRes != 0 {
			return dst, fmt.Errorf("%w: mixed channels", errFrame)
		}
		var coefs [2][32]int32
		var orders [2]int
		for c := range d.channels {
			mode := r.get(8)
			pbFactor := r.get(3)
			order := int(r.get(5))
			if mode != denShift || pbFactor != agPBFactor || order > 4 {
				return dst, fmt.Errorf("%w: mode and shift %#x, pbFactor %d, order %d", errFrame, mode, pbFactor, order)
			}
			orders[c] = order
			for k := range order {
				coefs[c][k] = int32(int16(r.get(16)))
			}
		}
		chanBits := d.depth + d.channels - 1
		for c := range d.channels {
			res := d.res[:n]
			if err := r.rice(res, chanBits); err != nil {
				return dst, err
			}
			unpredict(res, coefs[c][:orders[c]], chanBits)
			for i, v := range res {
				out[i*d.channels+c] = v
			}
		}
	}
	if r.get(3) != tagEND {
		return dst, fmt.Errorf("%w: no END element", errFrame)
	}
	if r.n > 8*len(b) || 8*len(b)-r.n >= 8 {
		return dst, fmt.Errorf("%w: %d bits read of %d", errFrame, r.n, 8*len(b))
	}
	return dst, nil
}

// unpredict turns the residuals in x into samples, in place, adapting coefs
// as Apple's unpc_block does.
func unpredict(x []int32, coefs []int32, chanBits int) {
	order := len(coefs)
	if order == 0 {
		return
	}
	for j := 1; j <= order && j < len(x); j++ {
		x[j] = wrap(int64(x[j])+int64(x[j-1]), chanBits)
	}
	for j := order + 1; j < len(x); j++ {
		top := x[j-order-1]
		var sum int32
		for k := range order {
			sum += coefs[k] * (x[j-1-k] - top)
		}
		del := x[j]
		x[j] = wrap(int64(del)+int64(top)+int64((sum+1<<(denShift-1))>>denShift), chanBits)
		switch {
		case del > 0:
			for k := order - 1; k >= 0; k-- {
				dd := top - x[j-1-k]
				sgn := sign(dd)
				coefs[k] -= sgn
				del -= int32(order-k) * ((sgn * dd) >> denShift)
				if del <= 0 {
					break
				}
			}
		case del < 0:
			for k := order - 1; k >= 0; k-- {
				dd := top - x[j-1-k]
				sgn := sign(dd)
				coefs[k] += sgn
				del -= int32(order-k) * ((-sgn * dd) >> denShift)
				if del >= 0 {
					break
				}
			}
		}
	}
}

// bitReader reads bits most significant first; past the end it reads
// zeros and counts on, so a caller sees the overrun in n.
type bitReader struct {
	b []byte
	n int
}

func (r *bitReader) get(bits int) uint32 {
	var v uint32
	for bits > 0 {
		var cur uint32
		if i := r.n / 8; i < len(r.b) {
			cur = uint32(r.b[i])
		}
		left := 8 - r.n%8 // unread bits in the current byte
		take := min(left, bits)
		v = v<<take | cur>>(left-take)&(1<<take-1)
		r.n += take
		bits -= take
	}
	return v
}

// scalar reads one Golomb-Rice code of parameter k with escapes of escBits
// bits (dyn_get in ag_dec.c).
func (r *bitReader) scalar(k, escBits int) uint32 {
	q := uint32(0)
	for q < maxPrefix && r.get(1) == 1 {
		q++
	}
	if q == maxPrefix {
		return r.get(escBits)
	}
	m := uint32(1)<<k - 1
	v := q * m
	if k == 1 {
		return v
	}
	extra := r.get(k - 1)
	if extra == 0 {
		return v
	}
	// k bits in all: extra and one more.
	extra = extra<<1 | r.get(1)
	return v + extra - 1
}

// rice reads len(res) residuals (dyn_decomp in ag_dec.c).
func (r *bitReader) rice(res []int32, bitSize int) error {
	mb := uint32(agMB)
	pb := uint32(agPB * agPBFactor / 4)
	zmode := uint32(0)
	for c := 0; c < len(res); {
		if r.n > 8*len(r.b) {
			return fmt.Errorf("%w: residuals run past the frame", errFrame)
		}
		k := min(lg((mb>>agQBShift)+3), agKB)
		n := r.scalar(k, bitSize)
		x := n + zmode
		v := int32((x + 1) >> 1)
		if x&1 == 1 {
			v = -v
		}
		res[c] = v
		c++
		mb = pb*x + mb - (pb*mb)>>agQBShift
		if n > 0xFFFF {
			mb = 0xFFFF
		}
		zmode = 0
		if mb<<2 < 1<<agQBShift && c < len(res) {
			zmode = 1
			k := 7 - lg(mb) + int((mb+16)>>6)
			nz := int(r.scalar(k, 16))
			if c+nz > len(res) {
				return fmt.Errorf("%w: a run of zeros past the frame's end", errFrame)
			}
			for range nz {
				res[c] = 0
				c++
			}
			if nz >= 0xFFFF {
				zmode = 0
			}
			mb = 0
		}
	}
	return nil
}
