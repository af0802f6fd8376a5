// Package h264 cuts a live H.264 Annex B byte stream (ITU-T H.264 Annex B), as
// an encoder writes it to a pipe, into access units, turns an access unit into
// an MP4 sample and walks a sample's NAL units back, and reads the sequence
// parameter set.
//
// Everything here reads bytes from outside the program: no input makes it
// panic, and memory stays bounded whatever the stream holds. A Parser does not
// allocate once its buffers have grown to fit the stream's largest access
// unit.
package h264

import (
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
)

// NAL unit types (ITU-T H.264 Table 7-1) that callers look for, as NALType
// returns them.
const (
	NALSlice  = 1  // coded slice of a non-IDR picture
	NALIDR    = 5  // coded slice of an IDR picture
	NALSEI    = 6  // supplemental enhancement information
	NALSPS    = 7  // sequence parameter set
	NALPPS    = 8  // picture parameter set
	NALAUD    = 9  // access unit delimiter
	NALFiller = 12 // filler data
)

// NALType returns the type of NAL unit nal, the low five bits of its first
// byte, or 0 (unspecified) if nal is empty.
func NALType(nal []byte) byte {
	if len(nal) == 0 {
		return 0
	}
	return nal[0] & 0x1f
}

// nalPartitionA is a coded slice data partition A: it carries the slice
// header, so it can begin a picture as types 1 and 5 can.
const nalPartitionA = 2

// Sentinel errors returned, wrapped with detail, by Parser.Next and ParseSPS.
var (
	// ErrNoStartCode means the stream does not begin with H.264 Annex B: no
	// start code within Parser.StartCodeWindow bytes of its start.
	ErrNoStartCode = errors.New("h264: no start code")
	// ErrAccessUnitTooLarge means an access unit exceeds
	// Parser.MaxAccessUnitSize bytes or MaxNALUnits NAL units.
	ErrAccessUnitTooLarge = errors.New("h264: access unit too large")
	// ErrInvalidSPS means ParseSPS was given bytes that are not a sequence
	// parameter set it can read.
	ErrInvalidSPS = errors.New("h264: invalid SPS")
	// ErrInvalidAVCC means AVCCUnits was given bytes that are not a whole
	// AVCC sample: a NAL unit length that is zero or runs past the end.
	ErrInvalidAVCC = errors.New("h264: invalid AVCC sample")
)

// An AccessUnit is the NAL units of one coded picture, with what callers need
// to know about them.
type AccessUnit struct {
	// NALUs are the access unit's NAL units in stream order, each without its
	// start code and trailing zero bytes, and never empty. They alias the
	// Parser's buffer and are valid until the next call to Next.
	NALUs [][]byte
	// IDR reports whether the access unit holds a slice of an IDR picture.
	IDR bool
	// HasBSlice reports whether a slice header in the access unit has a B
	// slice_type (1 or 6). Clips carry no composition offsets, so such a
	// stream plays out of order.
	HasBSlice bool
	// SPS and PPS are the first sequence and picture parameter set NAL units
	// in the access unit, or nil; they alias NALUs.
	SPS, PPS []byte
}

// AppendAVCC appends au to dst as an MP4 sample (ISO/IEC 14496-15): each NAL
// unit as a 4-byte big-endian length and then its bytes. Access unit
// delimiters and filler data are dropped; SPS, PPS and SEI stay in-band. It
// does not allocate when dst has room. NAL units must be shorter than 4 GiB,
// which those from a Parser are.
func AppendAVCC(dst []byte, au AccessUnit) []byte {
	return appendNALs(dst, au.NALUs, false)
}

// appendNALs appends nals as AVCC, without access unit delimiters and
// filler data, and without parameter sets if dropParams.
func appendNALs(dst []byte, nals [][]byte, dropParams bool) []byte {
	for _, nal := range nals {
		if len(nal) == 0 {
			continue
		}
		switch NALType(nal) {
		case NALAUD, NALFiller:
			continue
		case NALSPS, NALPPS:
			if dropParams {
				continue
			}
		}
		dst = appendAVCCNAL(dst, nal)
	}
	return dst
}

// appendAVCCNAL appends one NAL unit as AVCC: its 4-byte length, then it.
func appendAVCCNAL(dst, nal []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(nal)))
	return append(dst, nal...)
}

// AVCCUnits returns an iterator over the NAL units of sample, an access unit
// as AppendAVCC writes it (each NAL unit a 4-byte big-endian length, then its
// bytes). Each NAL unit is yielded with a nil error and aliases sample. If
// sample does not end exactly after a NAL unit (a length of zero, or one that
// runs past the end), the iterator yields nil and an error wrapping
// ErrInvalidAVCC, and stops. It does not allocate when sample is whole.
func AVCCUnits(sample []byte) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		for off := 0; off < len(sample); {
			rest := sample[off:]
			if len(rest) < 4 {
				yield(nil, fmt.Errorf("%w: %d stray bytes at offset %d", ErrInvalidAVCC, len(rest), off))
				return
			}
			n := binary.BigEndian.Uint32(rest)
			if n == 0 || uint64(n) > uint64(len(rest)-4) {
				yield(nil, fmt.Errorf("%w: NAL unit length %d at offset %d, %d bytes left", ErrInvalidAVCC, n, off, len(rest)-4))
				return
			}
			if !yield(rest[4:4+n:4+n], nil) {
				return
			}
			off += 4 + int(n)
		}
	}
}
