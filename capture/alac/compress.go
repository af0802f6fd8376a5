package alac

// Compressed frames, after Apple's reference (ALACEncoder.cpp, dp_enc.c,
// ag_enc.c): each channel is predicted by ALAC's adaptive predictor, whose
// coefficients the decoder adapts sample by sample exactly as the encoder
// does, and the residuals are coded with ALAC's adaptive Golomb-Rice code.
// Stereo channels are coded apart (mixRes 0), which every decoder takes as
// plain left and right.

// Adaptive Golomb-Rice parameters: the cookie's (mb, kb) and pb times the
// frame's pbFactor/4, with pbFactor 4 as Apple writes it.
const (
	agMB       = 10
	agKB       = 14
	agPB       = 40
	agPBFactor = 4
	agQBShift  = 9
	denShift   = 9 // the predictor's coefficients are fixed point, 9 fraction bits
	maxPrefix  = 9 // a unary prefix of 9 ones escapes to the value itself
)

// predictors are the starting coefficients tried for each channel, scaled
// by 1<<denShift: none (the samples themselves), first, second and third
// order (x₁; 2x₁ - x₂; 3x₁ - 3x₂ + x₃). The predictor adapts from there.
var predictors = [][]int16{
	nil,
	{1 << denShift},
	{2 << denShift, -1 << denShift},
	{3 << denShift, -3 << denShift, 1 << denShift, 0},
}

// channelCode is how one channel of a compressed frame is coded.
type channelCode struct {
	coefs []int16 // the starting coefficients written in the frame
	bits  bitWriter
}

// compress writes into c the coding of samples x (one channel, each within
// chanBits bits signed) by the predictor whose residuals are smallest, and
// reports false if they cannot be coded so that every decoder agrees on
// them. res and best are scratch of len(x).
func compress(c *channelCode, x, res, best []int32, chanBits int) bool {
	found, least := false, uint64(0)
	for _, p := range predictors {
		if len(p) > 0 && len(x) <= len(p)+1 {
			continue
		}
		if !predict(res, x, p, chanBits) {
			continue
		}
		// The Golomb-Rice code's length follows the residuals' magnitude.
		var size uint64
		for _, r := range res {
			size += uint64(max(r, -r))
		}
		if !found || size < least {
			found, least = true, size
			c.coefs = p
			copy(best, res)
		}
	}
	c.bits.reset()
	return found && c.bits.rice(best, chanBits)
}

// wrap sign-extends the low bits of v, as the decoder's (v << s) >> s does.
func wrap(v int64, bits int) int32 {
	s := 64 - bits
	return int32(v << s >> s)
}

// sign is -1, 0 or 1.
func sign(v int32) int32 {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

// fits32 reports whether v is an int32: where it is not, C decoders
// overflow in ways that need not agree.
func fits32(v int64) bool { return v >= -1<<31 && v < 1<<31 }

// predict writes the residuals of x under ALAC's adaptive predictor that
// starts from coefs (unpc_block in Apple's decoder, run backwards), and
// reports false if any step would overflow the decoder's 32-bit arithmetic
// or its 16-bit coefficients.
func predict(res, x []int32, start []int16, chanBits int) bool {
	order := len(start)
	res[0] = x[0]
	if order == 0 {
		copy(res[1:], x[1:])
		return true
	}
	var coefs [32]int32
	for k, c := range start {
		coefs[k] = int32(c)
	}
	for j := 1; j <= order; j++ {
		res[j] = wrap(int64(x[j])-int64(x[j-1]), chanBits)
	}
	for j := order + 1; j < len(x); j++ {
		top := x[j-order-1]
		var sum int64
		for k := range order {
			sum += int64(coefs[k]) * (int64(x[j-1-k]) - int64(top))
			if !fits32(sum) {
				return false
			}
		}
		sum += 1 << (denShift - 1)
		if !fits32(sum) {
			return false
		}
		r := wrap(int64(x[j])-int64(top)-sum>>denShift, chanBits)
		res[j] = r
		// Adapt the coefficients as the decoder will, from the oldest.
		del := r
		if sg := sign(r); sg != 0 {
			for k := order - 1; k >= 0; k-- {
				dd := top - x[j-1-k]
				sgn := sign(dd)
				coefs[k] -= sgn * sg
				if coefs[k] < -1<<15 || coefs[k] >= 1<<15 {
					return false
				}
				del -= int32(order-k) * (sgn * sg * dd >> denShift)
				if sg > 0 && del <= 0 || sg < 0 && del >= 0 {
					break
				}
			}
		}
	}
	return true
}

// lg returns the index of the highest set bit of v, v > 0.
func lg(v uint32) int {
	n := -1
	for ; v != 0; v >>= 1 {
		n++
	}
	return n
}

// rice appends the residuals res in ALAC's adaptive Golomb-Rice code
// (dyn_comp in Apple's ag_enc.c), with escapes of bitSize bits, and reports
// false where Apple's decoder and FFmpeg's could read the code differently.
func (w *bitWriter) rice(res []int32, bitSize int) bool {
	mb := uint32(agMB)
	pb := uint32(agPB * agPBFactor / 4)
	zmode := uint32(0)
	for c := 0; c < len(res); {
		k := min(lg((mb>>agQBShift)+3), agKB)
		del := res[c]
		c++
		var n uint32
		if del < 0 {
			n = uint32(-int64(del))*2 - 1
		} else {
			n = uint32(del) * 2
		}
		n -= zmode
		// Apple clamps the mean on n, FFmpeg on n + zmode.
		if (n > 0xFFFF) != (n+zmode > 0xFFFF) {
			return false
		}
		w.code(n, k, bitSize, 25)
		mb = pb*(n+zmode) + mb - (pb*mb)>>agQBShift
		if n > 0xFFFF {
			mb = 0xFFFF
		}
		zmode = 0
		if mb<<2 < 1<<agQBShift && c < len(res) {
			if mb == 0 { // Apple's and FFmpeg's logarithms of 0 differ
				return false
			}
			zmode = 1
			nz := uint32(0)
			for c < len(res) && res[c] == 0 {
				nz++
				c++
				if nz >= 0xFFFF {
					zmode = 0
					break
				}
			}
			k := 7 - lg(mb) + int((mb+16)>>6)
			w.code(nz, k, 16, 25)
			mb = 0
		}
	}
	return true
}

// code appends n in the Golomb-Rice code of parameter k (divisor 2^k - 1)
// that ALAC uses, or, where the unary part would reach maxPrefix or the
// code exceed limit bits, as maxPrefix ones and n in escBits bits.
func (w *bitWriter) code(n uint32, k, escBits, limit int) {
	m := uint32(1)<<k - 1
	q := n / m
	if q < maxPrefix {
		r := n % m
		bits := int(q) + k + 1
		if r == 0 {
			bits--
		}
		if bits <= limit {
			w.put(uint64(1)<<q-1, int(q))
			if r == 0 {
				w.put(0, k) // the unary part's end, then k-1 zeros
			} else {
				w.put(uint64(r+1), k+1) // a 0 (the end), then r+1 in k bits
			}
			return
		}
	}
	w.put(1<<maxPrefix-1, maxPrefix)
	w.put(uint64(n), escBits)
}
