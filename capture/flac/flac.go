// Package flac encodes blocks of 16-bit PCM as FLAC frames (RFC 9639), one
// frame per block, for the recorder's fragmented MP4: each frame is one MP4
// audio sample, and the STREAMINFO body goes into the dfLa box.
//
// An Encoder codes each channel of a block as whichever of three subframe
// kinds is smallest: CONSTANT when every sample is the same (digital
// silence costs a few bytes a block), FIXED with a predictor of order 0 to
// 4 and partitioned Rice-coded residuals, or VERBATIM, the samples as they
// are, when prediction does not pay (white noise). The predictor order is
// the one whose residuals have the smallest sum of magnitudes, found for all
// orders in one pass; the Rice partition order and each partition's
// parameter come from the partitions' sums of magnitudes by the closed-form
// estimate. The estimate never undercounts the bits written, so no channel
// is coded larger than verbatim. For stereo the encoder also weighs
// left/side, side/right and mid/side by the same estimate, taken over one
// partition, and codes the cheapest pair; the side channel takes 17 bits a
// sample, and is chosen only where its estimate beats 16, so a stereo
// frame too stays within a few bytes of the samples written as they are.
//
// This is FLAC's fast end, about what "flac -0" and FFmpeg's
// compression_level 0 do: no LPC, no search beyond the estimates. Its
// frames are as small as github.com/mewkiz/flac's and no larger than
// FFmpeg's at that level (TestSizeAgainstFFmpeg), in about a tenth of
// mewkiz's time (BenchmarkEncode).
//
// The STREAMINFO says the block size (minimum and maximum alike), the sample
// rate, the channel count and 16 bits a sample, and leaves the frame sizes,
// the total sample count and the MD5 signature as zero, which RFC 9639
// (section 8.2) defines as "unknown" or "not computed": a recorder's stream
// has no end it knows of when the dfLa box is written.
//
// Every frame is numbered from 0 (the fixed-blocksize strategy), modulo
// 2^31 as the frame number field allows, so a stream of frames in order is
// a valid FLAC stream after "fLaC" and the STREAMINFO block.
//
// After NewEncoder, Encode allocates nothing: its scratch and output buffers
// are sized for the worst case once.
package flac

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
)

// Sentinel errors returned (wrapped) by NewEncoder and Encoder.Encode.
var (
	// ErrFormat means the format is one this encoder does not write:
	// channels other than 1 or 2, a sample rate out of FLAC's range, or a
	// block size out of 16..65535.
	ErrFormat = errors.New("flac: unsupported format")
	// ErrBlockSize means a block passed to Encode does not hold exactly the
	// encoder's block size of samples for each channel.
	ErrBlockSize = errors.New("flac: wrong block size")
)

const (
	bitsPerSample = 16
	// maxRiceParam is the largest parameter the 4-bit RICE method codes; 15
	// is its escape code, which this encoder does not write.
	maxRiceParam = 14
	// maxPartitionOrder bounds the search; libFLAC's presets stop at 8 too.
	maxPartitionOrder = 8
	maxFixedOrder     = 4
	// maxHeaderBytes is the longest frame header this encoder writes: sync
	// and codes (4), a 6-byte frame number, a 16-bit block size, a 16-bit
	// sample rate and the CRC-8.
	maxHeaderBytes = 4 + 6 + 2 + 2 + 1
)

// Channel assignments in the frame header (RFC 9639, 9.1.3).
const (
	assignLeftSide  = 0b1000
	assignSideRight = 0b1001
	assignMidSide   = 0b1010
)

// An Encoder codes fixed-size blocks of interleaved 16-bit PCM as FLAC
// frames. It is not safe for concurrent use.
type Encoder struct {
	rate, channels, block int
	streamInfo            [34]byte
	// head is the frame header up to the frame number: sync, block size
	// code, sample rate code, channel assignment placeholder, sample size.
	head [4]byte
	// tail is what follows the frame number: the block size and sample
	// rate when their codes say they follow the number.
	tail  [4]byte
	ntail int
	num   uint32 // the next frame's number

	// ch holds the block's channels de-interleaved; for stereo ch[2] is
	// mid and ch[3] side. an holds their analyses.
	ch  [4][]int32
	an  [4]analysis
	res []uint32 // folded residuals of the channel being written
	w   bitWriter
}

// NewEncoder returns an encoder for blocks of blockSize samples per channel
// of rate Hz, channels 1 or 2, 16 bits a sample.
func NewEncoder(rate, channels, blockSize int) (*Encoder, error) {
	switch {
	case channels != 1 && channels != 2:
		return nil, fmt.Errorf("%w: %d channels, want 1 or 2", ErrFormat, channels)
	case rate < 1 || rate > 1<<20-1:
		return nil, fmt.Errorf("%w: sample rate %d Hz, want 1 to %d", ErrFormat, rate, 1<<20-1)
	case blockSize < 16 || blockSize > 65535:
		return nil, fmt.Errorf("%w: block size %d, want 16 to 65535", ErrFormat, blockSize)
	}
	e := &Encoder{rate: rate, channels: channels, block: blockSize}
	e.writeStreamInfo()
	e.writeHeadTemplate()
	n := 1
	if channels == 2 {
		n = 4
	}
	for i := range n {
		e.ch[i] = make([]int32, blockSize)
	}
	e.res = make([]uint32, blockSize)
	// The worst frame: the header, each channel verbatim at 17 bits (a side
	// channel) with its subframe header, the CRC-16, and 8 bytes the bit
	// writer's 32-bit stores may reach past the end.
	maxFrame := maxHeaderBytes + channels*(1+(blockSize*(bitsPerSample+1)+7)/8) + 2
	e.w.buf = make([]byte, maxFrame+8)
	return e, nil
}

func (e *Encoder) writeStreamInfo() {
	si := e.streamInfo[:]
	binary.BigEndian.PutUint16(si[0:], uint16(e.block))
	binary.BigEndian.PutUint16(si[2:], uint16(e.block))
	// si[4:10]: minimum and maximum frame size, 0 = unknown.
	// 20 bits rate, 3 bits channels-1, 5 bits bits-per-sample-1, then the
	// top 4 of 36 bits of total samples (0 = unknown).
	v := uint32(e.rate)<<12 | uint32(e.channels-1)<<9 | uint32(bitsPerSample-1)<<4
	binary.BigEndian.PutUint32(si[10:], v)
	// si[14:18]: the rest of the total sample count; si[18:34]: the MD5
	// signature, all zero = not computed.
}

// writeHeadTemplate fills the parts of the frame header that are the same
// for every frame (RFC 9639, 9.1).
func (e *Encoder) writeHeadTemplate() {
	var bsCode byte
	switch b := e.block; {
	case b == 192:
		bsCode = 1
	case b == 576 || b == 1152 || b == 2304 || b == 4608:
		bsCode = byte(2 + bits.TrailingZeros(uint(b/576)))
	case b >= 256 && b <= 32768 && b&(b-1) == 0:
		bsCode = byte(8 + bits.TrailingZeros(uint(b/256)))
	case b <= 256:
		bsCode = 6
		e.tail[e.ntail] = byte(b - 1)
		e.ntail++
	default:
		bsCode = 7
		binary.BigEndian.PutUint16(e.tail[e.ntail:], uint16(b-1))
		e.ntail += 2
	}
	var rateCode byte
	switch r := e.rate; r {
	case 88200:
		rateCode = 1
	case 176400:
		rateCode = 2
	case 192000:
		rateCode = 3
	case 8000:
		rateCode = 4
	case 16000:
		rateCode = 5
	case 22050:
		rateCode = 6
	case 24000:
		rateCode = 7
	case 32000:
		rateCode = 8
	case 44100:
		rateCode = 9
	case 48000:
		rateCode = 10
	case 96000:
		rateCode = 11
	default:
		switch {
		case r%1000 == 0 && r/1000 <= 255:
			rateCode = 12
			e.tail[e.ntail] = byte(r / 1000)
			e.ntail++
		case r <= 65535:
			rateCode = 13
			binary.BigEndian.PutUint16(e.tail[e.ntail:], uint16(r))
			e.ntail += 2
		case r%10 == 0 && r/10 <= 65535:
			rateCode = 14
			binary.BigEndian.PutUint16(e.tail[e.ntail:], uint16(r/10))
			e.ntail += 2
		default:
			rateCode = 0 // from STREAMINFO
		}
	}
	// 14-bit sync, reserved 0, blocking strategy 0 (fixed).
	e.head[0], e.head[1] = 0xFF, 0xF8
	e.head[2] = bsCode<<4 | rateCode
	// Channel assignment (set per frame), sample size 0b100 = 16 bits,
	// reserved 0.
	e.head[3] = 0b100 << 1
}

// StreamInfo returns the 34-byte STREAMINFO metadata block body (RFC 9639,
// 8.2) for the stream the encoder writes. Frame sizes and the total sample
// count are 0 (unknown) and the MD5 signature is zero (not computed). The
// caller must not modify the slice.
func (e *Encoder) StreamInfo() []byte { return e.streamInfo[:] }

// BlockSize returns the number of samples per channel in every block.
func (e *Encoder) BlockSize() int { return e.block }

// Encode codes one block of interleaved samples, BlockSize of them per
// channel, and returns the complete FLAC frame. The frame aliases the
// encoder's buffer: it is valid until the next call to Encode. A block of
// another length is refused with an error wrapping ErrBlockSize, and does
// not use up a frame number.
func (e *Encoder) Encode(pcm []int16) ([]byte, error) {
	if len(pcm) != e.block*e.channels {
		return nil, fmt.Errorf("%w: %d samples for %d channels, want %d (%d per channel)",
			ErrBlockSize, len(pcm), e.channels, e.block*e.channels, e.block)
	}
	w := &e.w
	w.reset()
	var assign byte
	first, second := 0, -1
	if e.channels == 1 {
		x := e.ch[0]
		for i, s := range pcm {
			x[i] = int32(s)
		}
		e.an[0] = analyze(x)
	} else {
		assign, first, second = e.stereo(pcm)
	}

	// Frame header.
	n := copy(w.buf, e.head[:])
	w.buf[3] |= assign << 4
	n += putFrameNumber(w.buf[n:], e.num)
	n += copy(w.buf[n:], e.tail[:e.ntail])
	w.buf[n] = crc8(w.buf[:n])
	w.pos = n + 1

	e.writeSubframe(e.ch[first], e.an[first], e.bps(first))
	if second >= 0 {
		e.writeSubframe(e.ch[second], e.an[second], e.bps(second))
	}
	w.align()
	crc := crc16(w.buf[:w.pos])
	w.buf[w.pos], w.buf[w.pos+1] = byte(crc>>8), byte(crc)
	w.pos += 2
	e.num = (e.num + 1) & (1<<31 - 1)
	return w.buf[:w.pos], nil
}

// bps returns the bits a sample of e.ch[i]: the side channel needs one more.
func (e *Encoder) bps(i int) uint {
	if i == 3 {
		return bitsPerSample + 1
	}
	return bitsPerSample
}

// stereo de-interleaves a stereo block, forms mid and side, analyses all
// four, and picks the channel assignment whose two channels the estimate
// says are cheapest. It returns the assignment and the indexes in e.ch of
// the channels to write.
func (e *Encoder) stereo(pcm []int16) (assign byte, first, second int) {
	l, r, m, s := e.ch[0], e.ch[1], e.ch[2], e.ch[3]
	_, _, _ = l[len(r)-1], m[len(r)-1], s[len(r)-1]
	for i := range r {
		a, b := int32(pcm[2*i]), int32(pcm[2*i+1])
		l[i], r[i] = a, b
		m[i], s[i] = (a+b)>>1, a-b
	}
	// A channel costs the lesser of its estimate and its verbatim size,
	// which for the side channel is a bit a sample more: noise stays left
	// and right.
	var cost [4]uint64
	for i := range cost {
		bps := uint64(bitsPerSample)
		if i == 3 {
			bps++
		}
		a := analyze(e.ch[i])
		e.an[i] = a
		cost[i] = min(a.estimate(len(r)), uint64(len(r))*bps)
	}
	lr, ls, rs, ms := cost[0]+cost[1], cost[0]+cost[3], cost[3]+cost[1], cost[2]+cost[3]
	switch min(lr, ls, rs, ms) {
	case lr:
		return 1, 0, 1
	case ms:
		return assignMidSide, 2, 3
	case ls:
		return assignLeftSide, 0, 3
	default:
		return assignSideRight, 3, 1
	}
}

// An analysis is what one pass over a channel finds: whether it is
// constant, and the fixed predictor order whose residuals have the smallest
// sum of magnitudes, with that sum.
type analysis struct {
	constant bool
	order    int
	sum      uint64
}

// estimate returns a rough count of the bits a channel of n samples costs
// as a FIXED subframe of its best order with one Rice partition: enough to
// rank channels against each other.
func (a analysis) estimate(n int) uint64 {
	if a.constant {
		return 0
	}
	_, bits := riceParam(2*a.sum, uint64(n-a.order))
	return bits
}

// analyze finds x's analysis in one pass. All orders are summed over the
// same samples, from the fifth on, so they compare fairly; x has at least
// 16 samples.
func analyze(x []int32) analysis {
	if allEqual(x) {
		return analysis{constant: true}
	}
	var s0, s1, s2, s3, s4 uint64
	// The four samples before i, as differences of rising order.
	p := x[3]
	d1 := x[3] - x[2]
	d2 := d1 - (x[2] - x[1])
	d3 := d2 - ((x[2] - x[1]) - (x[1] - x[0]))
	for _, v := range x[4:] {
		e1 := v - p
		e2 := e1 - d1
		e3 := e2 - d2
		e4 := e3 - d3
		s0 += uint64(abs(v))
		s1 += uint64(abs(e1))
		s2 += uint64(abs(e2))
		s3 += uint64(abs(e3))
		s4 += uint64(abs(e4))
		p, d1, d2, d3 = v, e1, e2, e3
	}
	a := analysis{sum: s0}
	for o, s := range [...]uint64{s1, s2, s3, s4} {
		if s < a.sum {
			a.order, a.sum = o+1, s
		}
	}
	return a
}

// allEqual reports whether x is constant; on sound it stops at once.
func allEqual(x []int32) bool {
	for _, v := range x[1:] {
		if v != x[0] {
			return false
		}
	}
	return true
}

func abs(v int32) uint32 {
	m := v >> 31
	return uint32((v ^ m) - m)
}

// riceParam returns the Rice parameter for n folded residuals that sum to
// sum, and the bits they take with it, not counting the 4-bit parameter.
// The closed form puts the best real parameter at log2(ln2·sum/n); the
// best integer one is its floor or the next, whichever costs less. The
// bits are n·(k+1) + sum>>k, which is never less than what is written,
// since the sum of the quotients is at most the quotient of the sum.
func riceParam(sum, n uint64) (k uint, cost uint64) {
	if n == 0 {
		return 0, 0
	}
	// ln2 ≈ 0.693147 ≈ 45426/65536.
	mean := sum * 45426 >> 16 / n
	k = uint(bits.Len64(mean))
	if k > 0 {
		k--
	}
	k = min(k, maxRiceParam)
	cost = n*uint64(k+1) + sum>>k
	if k < maxRiceParam {
		if c := n*uint64(k+2) + sum>>(k+1); c < cost {
			return k + 1, c
		}
	}
	return k, cost
}

// writeSubframe writes x, of analysis a, as the smallest of a CONSTANT,
// FIXED or VERBATIM subframe of bps bits a sample (RFC 9639, 9.2).
func (e *Encoder) writeSubframe(x []int32, a analysis, bps uint) {
	w := &e.w
	// Each subframe header: a zero bit, 6 bits of type, no wasted bits.
	if a.constant {
		w.write(0b0_000000_0, 8)
		w.write(uint32(x[0])&(1<<bps-1), bps)
		return
	}
	order := a.order
	res := e.res[:len(x)-order]
	fold(res, x, order)
	porder, pbits := partitions(res, len(x), order)
	if uint64(order)*uint64(bps)+6+pbits >= uint64(len(x))*uint64(bps) {
		w.write(0b0_000001_0, 8)
		mask := uint32(1)<<bps - 1
		for _, v := range x {
			w.write(uint32(v)&mask, bps)
		}
		return
	}
	w.write(uint32(0b0_001000_0|order<<1), 8)
	mask := uint32(1)<<bps - 1
	for _, v := range x[:order] {
		w.write(uint32(v)&mask, bps)
	}
	// Residual coding method 0b00 (4-bit Rice parameters), partition order.
	w.write(uint32(porder), 6)
	psize := len(x) >> porder
	start := 0
	for p := range 1 << porder {
		end := (p+1)*psize - order
		part := res[start:end]
		var sum uint64
		for _, u := range part {
			sum += uint64(u)
		}
		k, _ := riceParam(sum, uint64(len(part)))
		w.write(uint32(k), 4)
		w.rice(part, k)
		start = end
	}
}

// fold writes x's residuals from the fixed predictor of the given order
// into res, len(x)-order of them, folded to unsigned (0, -1, 1, -2 ... as
// 0, 1, 2, 3 ...). The previous samples ride in variables as differences,
// so each loop reads x once.
func fold(res []uint32, x []int32, order int) {
	w := x[order:]
	res = res[:len(w)]
	switch order {
	case 0:
		for i, v := range w {
			res[i] = zigzag(v)
		}
	case 1:
		p := x[0]
		for i, v := range w {
			res[i] = zigzag(v - p)
			p = v
		}
	case 2:
		p, d1 := x[1], x[1]-x[0]
		for i, v := range w {
			e1 := v - p
			res[i] = zigzag(e1 - d1)
			p, d1 = v, e1
		}
	case 3:
		p, d1 := x[2], x[2]-x[1]
		d2 := d1 - (x[1] - x[0])
		for i, v := range w {
			e1 := v - p
			e2 := e1 - d1
			res[i] = zigzag(e2 - d2)
			p, d1, d2 = v, e1, e2
		}
	case 4:
		p, d1 := x[3], x[3]-x[2]
		d2 := d1 - (x[2] - x[1])
		d3 := d2 - ((x[2] - x[1]) - (x[1] - x[0]))
		for i, v := range w {
			e1 := v - p
			e2 := e1 - d1
			e3 := e2 - d2
			res[i] = zigzag(e3 - d3)
			p, d1, d2, d3 = v, e1, e2, e3
		}
	}
}

func zigzag(v int32) uint32 { return uint32(v<<1) ^ uint32(v>>31) }

// partitions returns the Rice partition order that codes res, the folded
// residuals of a block of n samples after a predictor of the given order,
// in the fewest bits, and those bits. It sums the residuals in the finest
// partitions the block allows, then merges neighbours order by order.
func partitions(res []uint32, n, order int) (best int, bestBits uint64) {
	top := 0
	for top < maxPartitionOrder && n%(2<<top) == 0 && n>>(top+1) > order {
		top++
	}
	var sums [1 << maxPartitionOrder]uint64
	psize := n >> top
	start := 0
	for p := range 1 << top {
		end := (p+1)*psize - order
		var s uint64
		for _, u := range res[start:end] {
			s += uint64(u)
		}
		sums[p] = s
		start = end
	}
	bestBits = ^uint64(0)
	for o := top; ; o-- {
		psize := uint64(n >> o)
		total := uint64(0)
		for p := range 1 << o {
			cnt := psize
			if p == 0 {
				cnt -= uint64(order)
			}
			_, b := riceParam(sums[p], cnt)
			total += 4 + b
		}
		if total <= bestBits {
			best, bestBits = o, total
		}
		if o == 0 {
			break
		}
		for p := range 1 << (o - 1) {
			sums[p] = sums[2*p] + sums[2*p+1]
		}
	}
	return best, bestBits
}

// putFrameNumber writes v in FLAC's UTF-8-like coding (RFC 9639, 9.1.5)
// and returns the bytes written, 1 to 6 for v below 2^31.
func putFrameNumber(b []byte, v uint32) int {
	if v < 0x80 {
		b[0] = byte(v)
		return 1
	}
	// n continuation bytes of 6 bits each; the lead byte has n+1 ones.
	n := 1
	for v >= 1<<(5*n+6) {
		n++
	}
	for i := n; i > 0; i-- {
		b[i] = 0x80 | byte(v&0x3F)
		v >>= 6
	}
	b[0] = byte(uint(0xFF00)>>(n+1)) | byte(v)
	return n + 1
}
