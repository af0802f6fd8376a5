package h264

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"math/bits"
	"math/rand/v2"
	"testing"
)

// This file builds H.264 bytes for the tests: bit strings, NAL units, Annex B
// streams, and an independent way to split a whole stream into NAL units.

// A bitWriter writes bits most significant first, as H.264 syntax does.
type bitWriter struct {
	b    []byte
	used uint8 // bits used in the last byte; 0 means it is full (or b is empty)
}

func (w *bitWriter) bit(v uint64) {
	if w.used == 0 {
		w.b = append(w.b, 0)
	}
	w.b[len(w.b)-1] |= byte(v&1) << (7 - w.used)
	w.used = (w.used + 1) % 8
}

func (w *bitWriter) u(n int, v uint64) {
	for i := n - 1; i >= 0; i-- {
		w.bit(v >> i)
	}
}

func (w *bitWriter) flag(v bool) {
	if v {
		w.bit(1)
	} else {
		w.bit(0)
	}
}

func (w *bitWriter) ue(v uint64) {
	n := bits.Len64(v + 1)
	w.u(n-1, 0)
	w.u(n, v+1)
}

func (w *bitWriter) se(v int64) {
	if v > 0 {
		w.ue(uint64(2*v - 1))
	} else {
		w.ue(uint64(-2 * v))
	}
}

// rbsp ends the bit string with rbsp_trailing_bits and returns its bytes.
func (w *bitWriter) rbsp() []byte {
	w.bit(1)
	for w.used != 0 {
		w.bit(0)
	}
	return w.b
}

// escape inserts emulation prevention bytes into rbsp (ITU-T H.264 7.4.1).
func escape(rbsp []byte) []byte {
	var out []byte
	zeros := 0
	for _, c := range rbsp {
		if zeros >= 2 && c <= 3 {
			out = append(out, 3)
			zeros = 0
		}
		out = append(out, c)
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return out
}

// nalu returns a NAL unit of type typ (nal_ref_idc 3) with payload, which
// must already be escaped.
func nalu(typ byte, payload ...byte) []byte {
	return append([]byte{0x60 | typ}, payload...)
}

// slice returns a slice NAL unit of type typ whose header has firstMb and
// sliceType, followed by n bytes of payload.
func slice(typ byte, firstMb uint64, sliceType uint64, n int, rng *rand.Rand) []byte {
	var w bitWriter
	w.ue(firstMb)
	w.ue(sliceType)
	w.ue(0) // pic_parameter_set_id
	hdr := w.rbsp()
	return nalu(typ, escape(append(hdr, payload(n, rng)...))...)
}

// payload returns n bytes of slice data: random, as entropy-coded data is,
// and ending in the rbsp_stop_one_bit. The caller escapes it.
func payload(n int, rng *rand.Rand) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	if n > 0 {
		b[n-1] = 0x80
	}
	return b
}

// Slice types (ITU-T H.264 Table 7-6); 5 to 9 mean every slice of the
// picture has the same type.
const (
	sliceP  = 0
	sliceB  = 1
	sliceI  = 2
	sliceAP = 5
	sliceAB = 6
	sliceAI = 7
)

// The NAL units of a small, valid-looking 4:2:0 stream.
var (
	testSPS = mustHex(x264SPS[0])
	testPPS = nalu(NALPPS, 0xce, 0x3c, 0x80)
	testSEI = nalu(NALSEI, 0x05, 0x02, 0xab, 0xcd, 0x80)
	testAUD = []byte{0x09, 0xf0}
)

// annexB joins access units into a byte stream, each NAL unit after a 4-byte
// start code.
func annexB(aus ...[][]byte) []byte {
	var b []byte
	for _, au := range aus {
		for _, nal := range au {
			b = append(b, 0, 0, 0, 1)
			b = append(b, nal...)
		}
	}
	return b
}

// splitNALs returns the NAL units of a whole stream by searching it for
// start codes, as a check on Parser that shares none of its code.
func splitNALs(stream []byte) [][]byte {
	var nals [][]byte
	start := -1
	for i := 0; i+3 <= len(stream); i++ {
		if stream[i] != 0 || stream[i+1] != 0 || stream[i+2] != 1 {
			continue
		}
		if start >= 0 {
			nals = appendNAL(nals, stream[start:i])
		}
		start = i + 3
		i += 2
	}
	if start >= 0 {
		nals = appendNAL(nals, stream[start:])
	}
	return nals
}

func appendNAL(nals [][]byte, nal []byte) [][]byte {
	nal = bytes.TrimRight(nal, "\x00")
	if len(nal) == 0 {
		return nals
	}
	return append(nals, nal)
}

// parsed is what a Parser made of a stream: copies of its access units and
// the error that ended it.
type parsed struct {
	aus []parsedAU
	err error
}

type parsedAU struct {
	nalus           [][]byte
	idr, b          bool
	sps, pps        []byte
	avcc            []byte
	spsOK, ppsOK    bool // SPS and PPS alias a NAL unit of the access unit
	nalusWellFormed bool
}

// parseAll runs p to its end, at most limit access units.
func parseAll(p *Parser, limit int) parsed {
	var out parsed
	for range limit {
		au, err := p.Next()
		if err != nil {
			out.err = err
			return out
		}
		out.aus = append(out.aus, copyAU(au))
	}
	out.err = errors.New("too many access units")
	return out
}

func copyAU(au AccessUnit) parsedAU {
	c := parsedAU{idr: au.IDR, b: au.HasBSlice, spsOK: au.SPS == nil, ppsOK: au.PPS == nil, nalusWellFormed: true}
	for _, nal := range au.NALUs {
		c.nalus = append(c.nalus, bytes.Clone(nal))
		if len(nal) == 0 || nal[len(nal)-1] == 0 || bytes.Contains(nal, startCode) {
			c.nalusWellFormed = false
		}
		if au.SPS != nil && &nal[0] == &au.SPS[0] && len(nal) == len(au.SPS) {
			c.spsOK = true
		}
		if au.PPS != nil && &nal[0] == &au.PPS[0] && len(nal) == len(au.PPS) {
			c.ppsOK = true
		}
	}
	c.sps, c.pps = bytes.Clone(au.SPS), bytes.Clone(au.PPS)
	c.avcc = AppendAVCC(nil, au)
	return c
}

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	b []byte
	n int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.n)], r.b)
	r.b = r.b[n:]
	return n, nil
}

// loopReader returns b again and again, forever, without allocating.
type loopReader struct {
	b   []byte
	off int
}

func (r *loopReader) Read(p []byte) (int, error) {
	n := copy(p, r.b[r.off:])
	r.off = (r.off + n) % len(r.b)
	return n, nil
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// TestSplitNALs checks the tests' own splitter, since the other tests trust
// it.
func TestSplitNALs(t *testing.T) {
	stream := []byte{0, 0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 2, 0, 0, 0, 0, 1, 0, 0, 1, 0x65, 0, 0, 3, 0}
	got := splitNALs(stream)
	want := [][]byte{{0x67, 1}, {0x68, 2}, {0x65, 0, 0, 3}}
	if !equalNALs(got, want) {
		t.Errorf("splitNALs = %x, want %x", got, want)
	}
}

func equalNALs(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
