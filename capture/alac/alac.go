// Package alac encodes PCM as Apple Lossless (ALAC) frames, for the viewing
// copy of a clip: an MP4 whose sound Windows' and Apple's own players decode
// without a codec pack, and which decodes to exactly the samples it was made
// from.
//
// An Encoder writes each frame either compressed or as an escape frame,
// whichever is smaller, and compressed only where it has proved the frame
// exact. A compressed frame predicts each channel with ALAC's adaptive
// predictor, starting from fixed coefficients of order 0 to 3 (the one
// whose residuals are smallest), and codes the residuals with ALAC's
// adaptive Golomb-Rice code; stereo channels are coded apart, without
// ALAC's mixing. An escape frame holds the samples as they are, each in
// BitDepth bits, behind a 23-bit element header (an SCE for mono, a CPE for
// stereo); every ALAC decoder reads it, as Apple's own encoder writes one
// whenever compression does not pay.
//
// The choice is of size with the risk bounded. The copy's whole point is
// that its sound is exactly the original's, and a compressed encoder has
// places where a subtle mistake changes a sample. So each compressed frame
// is decoded again, by a decoder written from Apple's reference decoder
// rather than by inverting the encoder, and kept only if it gives back
// every sample; and a frame whose reading could differ between Apple's
// decoder and FFmpeg's (a 32-bit overflow in the predictor, a coefficient
// leaving 16 bits, the two places where their adaptive Golomb-Rice
// decoders differ at the edges) is written as an escape frame instead. A
// mistake then costs size, not a sample. FFmpeg judges the frames in
// capture/mp4's tests. Escape frames alone would make a copy's sound raw
// PCM, 768 kbit/s for 48 kHz mono, about four times the recorder's FLAC
// for a tone; compressed, the copy is about the original's size.
//
// Only 16-bit PCM is compressed; other depths are written as escape frames.
//
// Frames are at most FrameLength samples per channel. The magic cookie says
// FrameLength, 4096 by default as Apple's encoder writes; a frame of fewer
// samples carries its own count (the "partial frame" flag), as the last
// frame of every Apple-encoded file does, so frames of any length up to
// FrameLength keep their timing without a decoder being asked for an
// unusual FrameLength.
//
// Encode appends to the caller's buffer; past its first frames, which size
// its scratch buffers, it allocates nothing else.
package alac

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// Sentinel errors returned (wrapped) by NewEncoder and Encoder.Encode.
var (
	// ErrFormat means the PCM format is one this encoder does not write:
	// channels other than 1 or 2, a bit depth other than 16, 20, 24 or 32,
	// a sample rate of 0, or a frame length out of range.
	ErrFormat = errors.New("alac: unsupported format")
	// ErrSamples means a block of samples cannot be one frame: empty, longer
	// than FrameLength, not a whole number of sample frames, or holding a
	// sample that does not fit in BitDepth bits.
	ErrSamples = errors.New("alac: bad block of samples")
)

// DefaultFrameLength is the frame length Apple's encoder uses, and the one
// its documentation recommends for compatibility.
const DefaultFrameLength = 4096

// maxFrameLength bounds FrameLength, and so the largest frame, to keep a
// decoder's buffers small; FFmpeg refuses cookies beyond 65535 samples.
const maxFrameLength = 65535

// CookieSize is the length of the magic cookie, the ALACSpecificConfig.
const CookieSize = 24

// Format describes the PCM an Encoder takes.
type Format struct {
	// SampleRate in Hz, 1 to 2^32-1.
	SampleRate int
	// Channels is 1 (mono) or 2 (stereo, left then right).
	Channels int
	// BitDepth is 16, 20, 24 or 32.
	BitDepth int
	// FrameLength is the most samples per channel in one frame: 1 to 65535,
	// or 0 for DefaultFrameLength.
	FrameLength int
}

// An Encoder turns blocks of PCM into ALAC frames. Each frame stands alone,
// but the Encoder reuses its buffers from frame to frame, so it is not safe
// for concurrent use.
type Encoder struct {
	f      Format
	cookie [CookieSize]byte

	// Scratch for compressed frames, allocated by NewEncoder.
	x, res, best []int32        // one channel's samples and residuals
	codes        [2]channelCode // each channel's coding
	dec          decoder        // checks each compressed frame
}

// minCompressed is the fewest samples per channel a compressed frame has;
// shorter frames are escape frames, as the predictor needs a few samples
// to start.
const minCompressed = 16

// NewEncoder returns an encoder for PCM of format f, or an error wrapping
// ErrFormat.
func NewEncoder(f Format) (*Encoder, error) {
	if f.FrameLength == 0 {
		f.FrameLength = DefaultFrameLength
	}
	switch {
	case f.Channels != 1 && f.Channels != 2:
		return nil, fmt.Errorf("%w: %d channels, want 1 or 2", ErrFormat, f.Channels)
	case f.BitDepth != 16 && f.BitDepth != 20 && f.BitDepth != 24 && f.BitDepth != 32:
		return nil, fmt.Errorf("%w: %d bits a sample, want 16, 20, 24 or 32", ErrFormat, f.BitDepth)
	case f.SampleRate < 1 || uint64(f.SampleRate) > 0xFFFFFFFF:
		return nil, fmt.Errorf("%w: sample rate %d Hz", ErrFormat, f.SampleRate)
	case f.FrameLength < 1 || f.FrameLength > maxFrameLength:
		return nil, fmt.Errorf("%w: frame length %d, want 1 to %d", ErrFormat, f.FrameLength, maxFrameLength)
	}
	e := &Encoder{f: f, x: make([]int32, f.FrameLength), res: make([]int32, f.FrameLength), best: make([]int32, f.FrameLength)}
	e.dec = decoder{frameLength: f.FrameLength, depth: f.BitDepth, channels: f.Channels,
		pcm: make([]int32, 0, f.FrameLength*f.Channels), res: make([]int32, f.FrameLength)}
	c := e.cookie[:]
	binary.BigEndian.PutUint32(c[0:], uint32(f.FrameLength))
	c[4] = 0 // compatibleVersion
	c[5] = byte(f.BitDepth)
	// pb, mb and kb: the adaptive Golomb-Rice code's parameters, by which
	// decoders read compressed frames (Apple's values).
	c[6], c[7], c[8] = agPB, agMB, agKB
	c[9] = byte(f.Channels)
	binary.BigEndian.PutUint16(c[10:], 255) // maxRun
	binary.BigEndian.PutUint32(c[12:], uint32(e.MaxFrameBytes()))
	// avgBitRate, an upper bound: no frame is larger than its escape frame,
	// which costs the PCM's own rate and a few bits.
	binary.BigEndian.PutUint32(c[16:], uint32(min(uint64(f.SampleRate)*uint64(f.Channels)*uint64(f.BitDepth), 0xFFFFFFFF)))
	binary.BigEndian.PutUint32(c[20:], uint32(f.SampleRate))
	return e, nil
}

// Format returns the encoder's format, its FrameLength filled in.
func (e *Encoder) Format() Format { return e.f }

// Cookie returns the 24-byte magic cookie (ALACSpecificConfig, big-endian)
// that a container stores for the decoder: in MP4, the body of the 'alac'
// full box inside the 'alac' sample entry. The caller must not modify it.
func (e *Encoder) Cookie() []byte { return e.cookie[:] }

// header bits of one element: tag (3), instance (4), unused (12), partial
// frame flag (1), bytes shifted (2), escape flag (1).
const elementHeaderBits = 3 + 4 + 12 + 4

// Element tags (ALACAudioTypes.h).
const (
	tagSCE = 0 // single channel element: mono
	tagCPE = 1 // channel pair element: stereo
	tagEND = 7
)

// frameBytes is the size of the escape frame of n samples per channel.
func (e *Encoder) frameBytes(n int) int {
	bits := elementHeaderBits + n*e.f.Channels*e.f.BitDepth + 3 // + END
	if n != e.f.FrameLength {
		bits += 32 // sample count of a partial frame
	}
	return (bits + 7) / 8
}

// MaxFrameBytes is the size of the largest frame the encoder writes, which
// the cookie records.
func (e *Encoder) MaxFrameBytes() int {
	// A partial frame carries 32 bits more than a full one, and holds at
	// least one sample fewer, which saves at least 16 bits per channel: one
	// short by one sample is the largest partial frame.
	m := e.frameBytes(e.f.FrameLength)
	if e.f.FrameLength > 1 {
		m = max(m, e.frameBytes(e.f.FrameLength-1))
	}
	return m
}

// Encode appends to dst the ALAC frame of pcm, which holds interleaved
// samples (left, right, left, ... for stereo), 1 to FrameLength per
// channel, each within BitDepth bits signed. It returns the extended
// buffer, or dst unchanged and an error wrapping ErrSamples. Encode keeps
// no reference to pcm or dst.
func (e *Encoder) Encode(dst []byte, pcm []int32) ([]byte, error) {
	ch, depth := e.f.Channels, e.f.BitDepth
	if len(pcm) == 0 || len(pcm)%ch != 0 || len(pcm)/ch > e.f.FrameLength {
		return dst, fmt.Errorf("%w: %d samples for %d channels, want 1 to %d per channel",
			ErrSamples, len(pcm), ch, e.f.FrameLength)
	}
	lo, hi := int64(-1)<<(depth-1), int64(1)<<(depth-1)-1
	for i, s := range pcm {
		if int64(s) < lo || int64(s) > hi {
			return dst, fmt.Errorf("%w: sample %d is %d, outside %d bits", ErrSamples, i, s, depth)
		}
	}
	n := len(pcm) / ch
	if out, ok := e.compressed(dst, pcm, n); ok {
		return out, nil
	}
	return e.escape(dst, pcm, n), nil
}

// header appends the header of a frame's element of n samples per channel:
// tag, instance 0, 12 unused bits, the partial frame flag (and count), no
// bytes shifted, and the escape flag.
func (e *Encoder) header(w *bitWriter, n int, escape bool) {
	tag := uint64(tagSCE)
	if e.f.Channels == 2 {
		tag = tagCPE
	}
	partial, esc := uint64(0), uint64(0)
	if n != e.f.FrameLength {
		partial = 1
	}
	if escape {
		esc = 1
	}
	w.put(tag, 3)
	w.put(0, 4)                   // element instance tag
	w.put(0, 12)                  // unused, must be 0
	w.put(partial<<3|0<<1|esc, 4) // partial frame, no bytes shifted, escape
	if partial != 0 {
		w.put(uint64(n), 32)
	}
}

// escape appends the escape frame of pcm, n samples per channel.
func (e *Encoder) escape(dst []byte, pcm []int32, n int) []byte {
	w := bitWriter{b: dst}
	w.grow(e.frameBytes(n))
	e.header(&w, n, true)
	depth := e.f.BitDepth
	mask := uint64(1)<<depth - 1
	for _, s := range pcm { // stereo escape frames interleave as pcm does
		w.put(uint64(s)&mask, depth)
	}
	w.put(tagEND, 3)
	return w.flush()
}

// compressed appends the compressed frame of pcm, n samples per channel,
// and reports true, if one can be made that is smaller than the escape
// frame and that decodes back to pcm; otherwise it returns dst unchanged
// and false.
func (e *Encoder) compressed(dst []byte, pcm []int32, n int) ([]byte, bool) {
	ch := e.f.Channels
	if e.f.BitDepth != 16 || n < minCompressed {
		return dst, false
	}
	chanBits := e.f.BitDepth + ch - 1 // a channel pair codes with one bit more
	bits := e.headerBits(n) + 16 + 3  // header, mixBits and mixRes, END
	for c := range ch {
		x := e.x[:n]
		for i := range x {
			x[i] = pcm[i*ch+c]
		}
		if !compress(&e.codes[c], x, e.res[:n], e.best[:n], chanBits) {
			return dst, false
		}
		bits += 16 + 16*len(e.codes[c].coefs) + e.codes[c].bits.len()
	}
	if bits >= e.headerBits(n)+3+n*ch*e.f.BitDepth {
		return dst, false
	}
	w := bitWriter{b: dst}
	w.grow((bits + 7) / 8)
	e.header(&w, n, false)
	w.put(0, 8) // mixBits
	w.put(0, 8) // mixRes 0: the channels as they are
	for c := range ch {
		code := &e.codes[c]
		w.put(0<<4|denShift, 8) // mode 0, denShift
		w.put(agPBFactor<<5|uint64(len(code.coefs)), 8)
		for _, k := range code.coefs {
			w.put(uint64(uint16(k)), 16)
		}
	}
	for c := range ch {
		w.appendBits(&e.codes[c].bits)
	}
	w.put(tagEND, 3)
	out := w.flush()
	// Keep the frame only if it decodes to pcm: a mistake here must cost
	// size, never a sample.
	got, err := e.dec.frame(e.dec.pcm[:0], out[len(dst):])
	e.dec.pcm = got
	if err != nil || !slices.Equal(got, pcm) {
		return dst, false
	}
	return out, true
}

// headerBits is the size of the element header of a frame of n samples
// per channel.
func (e *Encoder) headerBits(n int) int {
	if n != e.f.FrameLength {
		return elementHeaderBits + 32
	}
	return elementHeaderBits
}

// bitWriter appends bits most significant first.
type bitWriter struct {
	b    []byte
	acc  uint64 // pending bits, right-aligned
	nacc int    // number of pending bits, < 8 between calls
}

func (w *bitWriter) grow(n int) {
	if cap(w.b)-len(w.b) < n {
		b := make([]byte, len(w.b), len(w.b)+n)
		copy(b, w.b)
		w.b = b
	}
}

// put appends the low n bits of v, n <= 32.
func (w *bitWriter) put(v uint64, n int) {
	w.acc = w.acc<<n | v&(1<<n-1)
	w.nacc += n
	for w.nacc >= 8 {
		w.nacc -= 8
		w.b = append(w.b, byte(w.acc>>w.nacc))
	}
	w.acc &= 1<<w.nacc - 1
}

// flush pads the pending bits with zeros to a byte and returns the buffer.
func (w *bitWriter) flush() []byte {
	if w.nacc > 0 {
		w.put(0, 8-w.nacc)
	}
	return w.b
}

// reset empties w, keeping its buffer.
func (w *bitWriter) reset() { *w = bitWriter{b: w.b[:0]} }

// len is the number of bits w holds.
func (w *bitWriter) len() int { return 8*len(w.b) + w.nacc }

// appendBits appends the bits o holds.
func (w *bitWriter) appendBits(o *bitWriter) {
	for _, c := range o.b {
		w.put(uint64(c), 8)
	}
	w.put(o.acc, o.nacc)
}
