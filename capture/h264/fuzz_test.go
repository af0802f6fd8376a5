package h264

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// Limits small enough for the fuzzer to reach.
const (
	fuzzMaxAccessUnit = 4096
	fuzzWindow        = 512
)

// FuzzParser feeds any bytes to a Parser, whole and in chunks. It must not
// panic, must end with io.EOF or one of its sentinels, must make the same of
// the bytes however they are read, and must keep within its bounds.
func FuzzParser(f *testing.F) {
	rng := rand.New(rand.NewPCG(13, 14))
	f.Add([]byte{}, uint8(0))
	f.Add([]byte("no start code here"), uint8(3))
	f.Add(make([]byte, 600), uint8(7))
	f.Add(bytes.Repeat([]byte{0, 0, 1}, 100), uint8(1))
	f.Add(bytes.Repeat([]byte{0, 0, 1, 0x41, 0x80}, 100), uint8(2))
	f.Add(annexB([][]byte{testSPS, testPPS, slice(NALIDR, 0, sliceAI, 40, rng)}, [][]byte{slice(NALSlice, 0, sliceAP, 30, rng)}), uint8(5))
	f.Add(annexB([][]byte{testAUD, testSPS, testPPS, testSEI, slice(NALIDR, 0, sliceAI, 40, rng), slice(NALIDR, 9, sliceAI, 40, rng)},
		[][]byte{testAUD, slice(NALSlice, 0, sliceAB, 30, rng)}), uint8(11))
	f.Add(join(sc3(testSPS), []byte{0, 0, 0}, sc3(nil), sc4(slice(NALIDR, 0, sliceI, 10, rng)), sc3([]byte{0x41}), []byte{0, 0}), uint8(63))
	f.Add(join(sc3(slice(NALIDR, 0, sliceI, 10, rng)), bytes.Repeat([]byte{0x55}, 5000)), uint8(200))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		parse := func(r io.Reader) parsed {
			p := NewParser(r)
			p.MaxAccessUnitSize = fuzzMaxAccessUnit
			p.StartCodeWindow = fuzzWindow
			// Every access unit takes at least a start code and a byte.
			return parseAll(p, len(data)/4+2)
		}
		whole := parse(bytes.NewReader(data))
		chunked := parse(&chunkReader{b: data, n: 1 + int(chunk)%64})

		for _, err := range []error{whole.err, chunked.err} {
			if err != io.EOF && !errors.Is(err, ErrNoStartCode) && !errors.Is(err, ErrAccessUnitTooLarge) {
				t.Fatalf("parsing ended with %v, want io.EOF or a sentinel", err)
			}
		}
		if sentinel(whole.err) != sentinel(chunked.err) || len(whole.aus) != len(chunked.aus) {
			t.Fatalf("whole: %d access units, then %v; in chunks of %d: %d, then %v",
				len(whole.aus), whole.err, 1+int(chunk)%64, len(chunked.aus), chunked.err)
		}
		var all [][]byte
		for i, au := range whole.aus {
			if !equalNALs(au.nalus, chunked.aus[i].nalus) || au.idr != chunked.aus[i].idr || au.b != chunked.aus[i].b {
				t.Fatalf("access unit %d differs when read in chunks", i)
			}
			checkFuzzedAU(t, i, au)
			all = append(all, au.nalus...)
		}
		if whole.err == io.EOF && !equalNALs(all, splitNALs(data)) {
			t.Fatalf("the access units' NAL units differ from the stream's")
		}
	})
}

func sentinel(err error) error {
	for _, s := range []error{ErrNoStartCode, ErrAccessUnitTooLarge} {
		if errors.Is(err, s) {
			return s
		}
	}
	return err
}

func checkFuzzedAU(t *testing.T, i int, au parsedAU) {
	t.Helper()
	if len(au.nalus) == 0 || len(au.nalus) > MaxNALUnits {
		t.Fatalf("access unit %d has %d NAL units", i, len(au.nalus))
	}
	if !au.nalusWellFormed || !au.spsOK || !au.ppsOK {
		t.Fatalf("access unit %d: NAL units well formed %v, SPS and PPS among them %v %v", i, au.nalusWellFormed, au.spsOK, au.ppsOK)
	}
	size, avcc := 0, 0
	for _, nal := range au.nalus {
		size += 3 + len(nal)
		if typ := nal[0] & 0x1f; typ != NALAUD && typ != NALFiller {
			avcc += 4 + len(nal)
		}
	}
	if size > fuzzMaxAccessUnit {
		t.Fatalf("access unit %d takes %d bytes, more than the limit %d", i, size, fuzzMaxAccessUnit)
	}
	if len(au.avcc) != avcc {
		t.Fatalf("access unit %d is %d bytes as AVCC, want %d", i, len(au.avcc), avcc)
	}
}

// Sequence parameter sets from libx264: Constrained Baseline 1280x720, High
// 640x360, High 4:2:2 10-bit 1366x768, Main interlaced 1920x1080, High 4:0:0
// 1366x768 and High 4:4:4 1366x768.
var x264SPS = []string{
	"6742c01fda014016ec0440000003004000000f23c60ca8",
	"6764001eacd940a02ff970110000030001000003003c0f162d96",
	"677a0020b6cd94056061e6f0110000030001000003003c0f183196",
	"674d4028f403c0227ef0110000030001000003003c1f162ea0",
	"67640020f36501581878bf016c80000003008000001e078c18cb",
	"67f40020919b280ac0c3c5f80880000003008000001e078c18cb",
}

func TestX264SPS(t *testing.T) {
	tests := []struct {
		hex                   string
		profile               uint8
		chroma, width, height int
		frameMbsOnly          bool
	}{
		{x264SPS[0], 66, 1, 1280, 720, true},
		{x264SPS[1], 100, 1, 640, 360, true},
		{x264SPS[2], 122, 2, 1366, 768, true},
		{x264SPS[3], 77, 1, 1920, 1080, false},
		{x264SPS[4], 100, 0, 1366, 768, true},
		{x264SPS[5], 244, 3, 1366, 768, true},
	}
	for _, tt := range tests {
		got, err := ParseSPS(mustHex(tt.hex))
		if err != nil {
			t.Errorf("ParseSPS(%s) = %v", tt.hex, err)
			continue
		}
		if got.ProfileIDC != tt.profile || got.ChromaFormatIDC != tt.chroma || got.Width != tt.width || got.Height != tt.height ||
			got.FrameMbsOnly != tt.frameMbsOnly {
			t.Errorf("ParseSPS(%s) = %+v, want profile %d, chroma_format_idc %d, %dx%d, frame_mbs_only %v",
				tt.hex, got, tt.profile, tt.chroma, tt.width, tt.height, tt.frameMbsOnly)
		}
	}
}

// FuzzParseSPS feeds any bytes to ParseSPS: it must not panic, must fail
// only with ErrInvalidSPS, and must return only sizes and fields in range.
func FuzzParseSPS(f *testing.F) {
	for _, h := range x264SPS {
		f.Add(mustHex(h))
	}
	for _, mod := range []func(*spsSpec){
		func(*spsSpec) {},
		func(s *spsSpec) { s.profile, s.chroma, s.scaling = 244, 3, [][]int64{nil, {-8}, {127, -128, -7}} },
		func(s *spsSpec) {
			s.pocType, s.pocCycle, s.frameMbsOnly, s.crop = 1, []int64{3, -3}, false, &[4]uint64{1, 2, 3, 4}
		},
		func(s *spsSpec) {
			s.vui = &vuiSpec{sarIDC: extendedSAR, sarWidth: 4, sarHeight: 3, signalType: true, timing: &[2]uint64{1, 50},
				nalHRD: 2, vclHRD: 1, restriction: &[2]uint64{0, 1}}
		},
	} {
		s := baseSPS()
		mod(&s)
		f.Add(s.nal())
	}
	f.Add([]byte{0x67})
	f.Add([]byte{0x67, 0x64, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, nal []byte) {
		s, err := ParseSPS(nal)
		if err != nil {
			if !errors.Is(err, ErrInvalidSPS) || s != (SPS{}) {
				t.Fatalf("ParseSPS = %+v, %v; want the zero SPS and ErrInvalidSPS", s, err)
			}
			return
		}
		if s.Width < 1 || s.Width > s.CodedWidth || s.Height < 1 || s.Height > s.CodedHeight ||
			s.CodedWidth%16 != 0 || s.CodedHeight%16 != 0 || s.CodedWidth > 16*maxMbs || s.CodedHeight > 32*maxMbs {
			t.Fatalf("ParseSPS size %dx%d, coded %dx%d", s.Width, s.Height, s.CodedWidth, s.CodedHeight)
		}
		if s.ID > 31 || s.ChromaFormatIDC > 3 || s.BitDepthLuma < 8 || s.BitDepthLuma > 14 || s.BitDepthChroma < 8 ||
			s.BitDepthChroma > 14 || s.Log2MaxFrameNum < 4 || s.Log2MaxFrameNum > 16 || s.PicOrderCntType > 2 ||
			s.MaxNumRefFrames > 16 || s.MaxNumReorderFrames > 16 || s.MaxDecFrameBuffering > 16 {
			t.Fatalf("ParseSPS returned fields out of range: %+v", s)
		}
	})
}
