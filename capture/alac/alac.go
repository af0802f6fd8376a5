// Package alac encodes PCM as Apple Lossless (ALAC) frames, for the viewing
// copy of a clip: an MP4 whose sound Windows' and Apple's own players decode
// without a codec pack, and which decodes to exactly the samples it was made
// from.
//
// An Encoder writes every frame as an ALAC escape frame: the samples as they
// are, each in BitDepth bits, behind a 23-bit element header (an SCE for
// mono, a CPE for stereo), then the END element and padding to a byte. This
// is a choice of risk over size. The escape frame is part of the format
// every ALAC decoder implements (Apple's reference falls back to it whenever
// compression does not pay), it has no predictor, no adaptive Golomb-Rice
// coder and no stereo mixing that could be subtly wrong, and so it is
// lossless by construction. What it costs is size: the copy's audio is raw
// PCM, 768 kbit/s for 48 kHz mono, where the recorder's FLAC, with its fixed
// predictors, takes from about a quarter of that (a pure tone) to nearly all
// of it (noise). Beside 720p video at 2.5 Mbit/s the copy is then at most
// about a quarter larger than the original, which a copy made to be handed
// over can afford.
//
// Frames are at most FrameLength samples per channel. The magic cookie says
// FrameLength, 4096 by default as Apple's encoder writes; a frame of fewer
// samples carries its own count (the "partial frame" flag), as the last
// frame of every Apple-encoded file does, so frames of any length up to
// FrameLength keep their timing without a decoder being asked for an
// unusual FrameLength.
//
// An Encoder allocates only in NewEncoder; Encode appends to the caller's
// buffer.
package alac

import (
	"encoding/binary"
	"errors"
	"fmt"
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

// An Encoder turns blocks of PCM into ALAC frames. It holds no state
// between frames, so it is safe for concurrent use.
type Encoder struct {
	f      Format
	cookie [CookieSize]byte
}

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
	e := &Encoder{f: f}
	c := e.cookie[:]
	binary.BigEndian.PutUint32(c[0:], uint32(f.FrameLength))
	c[4] = 0 // compatibleVersion
	c[5] = byte(f.BitDepth)
	c[6], c[7], c[8] = 40, 10, 14 // pb, mb, kb: Apple's values; no compressed frame uses them
	c[9] = byte(f.Channels)
	binary.BigEndian.PutUint16(c[10:], 255) // maxRun
	binary.BigEndian.PutUint32(c[12:], uint32(e.MaxFrameBytes()))
	// avgBitRate: escape frames cost the PCM's own rate, slightly more.
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
	w := bitWriter{b: dst}
	w.grow(e.frameBytes(n))
	tag := uint64(tagSCE)
	if ch == 2 {
		tag = tagCPE
	}
	partial := uint64(0)
	if n != e.f.FrameLength {
		partial = 1
	}
	w.put(tag, 3)
	w.put(0, 4)                 // element instance tag
	w.put(0, 12)                // unused, must be 0
	w.put(partial<<3|0<<1|1, 4) // partial frame, no bytes shifted, escape
	if partial != 0 {
		w.put(uint64(n), 32)
	}
	mask := uint64(1)<<depth - 1
	for _, s := range pcm { // stereo escape frames interleave as pcm does
		w.put(uint64(s)&mask, depth)
	}
	w.put(tagEND, 3)
	return w.flush(), nil
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
