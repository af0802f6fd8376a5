package h264

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// spsSpec holds the syntax elements of a sequence parameter set
// (ITU-T H.264 7.3.2.1.1), for building one bit by bit.
type spsSpec struct {
	profile, constraints, level, id uint64

	chroma                                   uint64
	separatePlane                            bool
	bitDepthLumaMinus8, bitDepthChromaMinus8 uint64
	// scaling has one entry per scaling list when the matrix is present: nil
	// for a list that is not, else its delta_scale values.
	scaling [][]int64

	log2MaxFrameNumMinus4 uint64
	pocType               uint64
	log2MaxPocLsbMinus4   uint64
	pocCycle              []int64
	maxRefFrames          uint64
	widthMbsMinus1        uint64
	heightUnitsMinus1     uint64
	frameMbsOnly          bool
	crop                  *[4]uint64 // left, right, top, bottom
	vui                   *vuiSpec
}

type vuiSpec struct {
	sarIDC, sarWidth, sarHeight uint64
	signalType                  bool
	timing                      *[2]uint64 // num_units_in_tick, time_scale
	nalHRD, vclHRD              uint64     // cpb_cnt_minus1+1, or 0 for none
	restriction                 *[2]uint64 // max_num_reorder_frames, max_dec_frame_buffering
}

// baseSPS is High profile 1280x720 4:2:0.
func baseSPS() spsSpec {
	return spsSpec{profile: 100, level: 31, chroma: 1, log2MaxFrameNumMinus4: 0, pocType: 0, log2MaxPocLsbMinus4: 2,
		maxRefFrames: 1, widthMbsMinus1: 79, heightUnitsMinus1: 44, frameMbsOnly: true}
}

// baseWant is what ParseSPS should make of baseSPS.
func baseWant() SPS {
	return SPS{ProfileIDC: 100, LevelIDC: 31, ChromaFormatIDC: 1, BitDepthLuma: 8, BitDepthChroma: 8, Log2MaxFrameNum: 4,
		MaxNumRefFrames: 1, FrameMbsOnly: true, CodedWidth: 1280, CodedHeight: 720, Width: 1280, Height: 720}
}

func (s spsSpec) nal() []byte {
	var w bitWriter
	w.u(8, s.profile)
	w.u(8, s.constraints)
	w.u(8, s.level)
	w.ue(s.id)
	if highProfile(uint8(s.profile)) {
		w.ue(s.chroma)
		if s.chroma == 3 {
			w.flag(s.separatePlane)
		}
		w.ue(s.bitDepthLumaMinus8)
		w.ue(s.bitDepthChromaMinus8)
		w.flag(false)
		w.flag(s.scaling != nil)
		for _, list := range s.scaling {
			w.flag(list != nil)
			for _, d := range list {
				w.se(d)
			}
		}
	}
	w.ue(s.log2MaxFrameNumMinus4)
	w.ue(s.pocType)
	switch s.pocType {
	case 0:
		w.ue(s.log2MaxPocLsbMinus4)
	case 1:
		w.flag(false)
		w.se(-2)
		w.se(3)
		w.ue(uint64(len(s.pocCycle)))
		for _, o := range s.pocCycle {
			w.se(o)
		}
	}
	w.ue(s.maxRefFrames)
	w.flag(false)
	w.ue(s.widthMbsMinus1)
	w.ue(s.heightUnitsMinus1)
	w.flag(s.frameMbsOnly)
	if !s.frameMbsOnly {
		w.flag(true)
	}
	w.flag(true)
	w.flag(s.crop != nil)
	if s.crop != nil {
		for _, c := range s.crop {
			w.ue(c)
		}
	}
	w.flag(s.vui != nil)
	if v := s.vui; v != nil {
		w.flag(v.sarIDC != 0)
		if v.sarIDC != 0 {
			w.u(8, v.sarIDC)
			if v.sarIDC == extendedSAR {
				w.u(16, v.sarWidth)
				w.u(16, v.sarHeight)
			}
		}
		w.flag(true) // overscan_info_present_flag
		w.flag(false)
		w.flag(v.signalType)
		if v.signalType {
			w.u(3, 5)
			w.flag(true)
			w.flag(true)
			w.u(24, 0x010101)
		}
		w.flag(true) // chroma_loc_info_present_flag
		w.ue(1)
		w.ue(1)
		w.flag(v.timing != nil)
		if v.timing != nil {
			w.u(32, v.timing[0])
			w.u(32, v.timing[1])
			w.flag(true)
		}
		for _, cpbs := range []uint64{v.nalHRD, v.vclHRD} {
			w.flag(cpbs != 0)
			if cpbs != 0 {
				w.ue(cpbs - 1)
				w.u(4, 3)
				w.u(4, 4)
				for range cpbs {
					w.ue(12345)
					w.ue(54321)
					w.flag(false)
				}
				w.u(20, 0xfffff)
			}
		}
		if v.nalHRD != 0 || v.vclHRD != 0 {
			w.flag(false)
		}
		w.flag(false) // pic_struct_present_flag
		w.flag(v.restriction != nil)
		if v.restriction != nil {
			w.flag(true)
			w.ue(2)
			w.ue(1)
			w.ue(16)
			w.ue(16)
			w.ue(v.restriction[0])
			w.ue(v.restriction[1])
		}
	}
	return append([]byte{0x67}, escape(w.rbsp())...)
}

func TestParseSPS(t *testing.T) {
	tests := []struct {
		name string
		spec func(*spsSpec)
		want func(*SPS)
	}{
		{"High 720p", func(*spsSpec) {}, func(*SPS) {}},
		{"Constrained Baseline", func(s *spsSpec) { s.profile, s.constraints = 66, 0xc0 },
			func(s *SPS) { s.ProfileIDC, s.ConstraintFlags = 66, 0xc0 }},
		{"Baseline ignores the High fields", func(s *spsSpec) { s.profile, s.chroma = 66, 3 },
			func(s *SPS) { s.ProfileIDC = 66 }},
		{"largest id", func(s *spsSpec) { s.id = 31 }, func(s *SPS) { s.ID = 31 }},
		{"4:2:0 crop to 1366x768", func(s *spsSpec) { s.widthMbsMinus1, s.heightUnitsMinus1, s.crop = 85, 47, &[4]uint64{0, 5, 0, 0} },
			func(s *SPS) { s.CodedWidth, s.CodedHeight, s.Width, s.Height = 1376, 768, 1366, 768 }},
		{"4:2:0 crop to 1080p", func(s *spsSpec) { s.widthMbsMinus1, s.heightUnitsMinus1, s.crop = 119, 67, &[4]uint64{0, 0, 0, 4} },
			func(s *SPS) { s.CodedWidth, s.CodedHeight, s.Width, s.Height = 1920, 1088, 1920, 1080 }},
		{"4:2:0 crop on every side", func(s *spsSpec) { s.crop = &[4]uint64{1, 2, 3, 4} },
			func(s *SPS) { s.Width, s.Height = 1280-2*3, 720-2*7 }},
		{"4:2:2 crop", func(s *spsSpec) { s.profile, s.chroma, s.crop = 122, 2, &[4]uint64{1, 2, 3, 4} },
			func(s *SPS) { s.ProfileIDC, s.ChromaFormatIDC, s.Width, s.Height = 122, 2, 1280-2*3, 720-7 }},
		{"4:4:4 crop", func(s *spsSpec) { s.profile, s.chroma, s.crop = 244, 3, &[4]uint64{1, 2, 3, 4} },
			func(s *SPS) { s.ProfileIDC, s.ChromaFormatIDC, s.Width, s.Height = 244, 3, 1280-3, 720-7 }},
		{"separate colour planes crop", func(s *spsSpec) { s.profile, s.chroma, s.separatePlane, s.crop = 244, 3, true, &[4]uint64{1, 2, 3, 4} },
			func(s *SPS) {
				s.ProfileIDC, s.ChromaFormatIDC, s.SeparateColourPlane, s.Width, s.Height = 244, 3, true, 1280-3, 720-7
			}},
		{"monochrome crop", func(s *spsSpec) { s.chroma, s.crop = 0, &[4]uint64{1, 2, 3, 4} },
			func(s *SPS) { s.ChromaFormatIDC, s.Width, s.Height = 0, 1280-3, 720-7 }},
		{"interlaced 1080", func(s *spsSpec) {
			s.widthMbsMinus1, s.heightUnitsMinus1, s.frameMbsOnly, s.crop = 119, 33, false, &[4]uint64{0, 0, 0, 2}
		}, func(s *SPS) {
			s.FrameMbsOnly, s.CodedWidth, s.CodedHeight, s.Width, s.Height = false, 1920, 1088, 1920, 1080
		}},
		{"interlaced monochrome crop", func(s *spsSpec) { s.chroma, s.frameMbsOnly, s.crop = 0, false, &[4]uint64{0, 0, 1, 2} },
			func(s *SPS) { s.ChromaFormatIDC, s.FrameMbsOnly, s.CodedHeight, s.Height = 0, false, 1440, 1440-6 }},
		{"10-bit", func(s *spsSpec) { s.profile, s.bitDepthLumaMinus8, s.bitDepthChromaMinus8 = 110, 2, 2 },
			func(s *SPS) { s.ProfileIDC, s.BitDepthLuma, s.BitDepthChroma = 110, 10, 10 }},
		{"14-bit", func(s *spsSpec) { s.profile, s.bitDepthLumaMinus8, s.bitDepthChromaMinus8 = 244, 6, 6 },
			func(s *SPS) { s.ProfileIDC, s.BitDepthLuma, s.BitDepthChroma = 244, 14, 14 }},
		{"scaling lists", func(s *spsSpec) {
			full := make([]int64, 64)
			for i := range full {
				full[i] = int64(i%5) - 2
			}
			// A delta that makes nextScale 0 ends the list early.
			s.scaling = [][]int64{nil, {-8}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, nil, nil, {127, -128, -7},
				full, {-8}}
		}, func(s *SPS) { s.ScalingMatrix = true }},
		{"4:4:4 scaling lists", func(s *spsSpec) {
			s.profile, s.chroma = 244, 3
			s.scaling = make([][]int64, 12)
			s.scaling[11] = []int64{-8}
		}, func(s *SPS) { s.ProfileIDC, s.ChromaFormatIDC, s.ScalingMatrix = 244, 3, true }},
		{"scaling matrix with no lists", func(s *spsSpec) { s.scaling = make([][]int64, 8) },
			func(s *SPS) { s.ScalingMatrix = true }},
		{"pic_order_cnt_type 1", func(s *spsSpec) { s.pocType, s.pocCycle = 1, []int64{1, -1, 1 << 20, -(1 << 20)} },
			func(s *SPS) { s.PicOrderCntType = 1 }},
		{"pic_order_cnt_type 2", func(s *spsSpec) { s.pocType = 2 }, func(s *SPS) { s.PicOrderCntType = 2 }},
		{"largest frame_num", func(s *spsSpec) { s.log2MaxFrameNumMinus4 = 12 }, func(s *SPS) { s.Log2MaxFrameNum = 16 }},
		{"16 reference frames", func(s *spsSpec) { s.maxRefFrames = 16 }, func(s *SPS) { s.MaxNumRefFrames = 16 }},
		{"VUI with nothing of use", func(s *spsSpec) { s.vui = &vuiSpec{} }, func(*SPS) {}},
		{"VUI square pixels and timing", func(s *spsSpec) {
			s.vui = &vuiSpec{sarIDC: 1, signalType: true, timing: &[2]uint64{1, 60}}
		}, func(s *SPS) {
			s.SARWidth, s.SARHeight, s.NumUnitsInTick, s.TimeScale, s.FixedFrameRate = 1, 1, 1, 60, true
		}},
		{"VUI table aspect ratio", func(s *spsSpec) { s.vui = &vuiSpec{sarIDC: 16} },
			func(s *SPS) { s.SARWidth, s.SARHeight = 2, 1 }},
		{"VUI extended aspect ratio", func(s *spsSpec) { s.vui = &vuiSpec{sarIDC: extendedSAR, sarWidth: 65535, sarHeight: 3} },
			func(s *SPS) { s.SARWidth, s.SARHeight = 65535, 3 }},
		{"VUI reserved aspect ratio", func(s *spsSpec) { s.vui = &vuiSpec{sarIDC: 17} }, func(*SPS) {}},
		{"VUI with HRD and bitstream restriction", func(s *spsSpec) {
			s.vui = &vuiSpec{timing: &[2]uint64{1001, 60000}, nalHRD: 2, vclHRD: 32, restriction: &[2]uint64{0, 4}}
		}, func(s *SPS) {
			s.NumUnitsInTick, s.TimeScale, s.FixedFrameRate = 1001, 60000, true
			s.BitstreamRestriction, s.MaxNumReorderFrames, s.MaxDecFrameBuffering = true, 0, 4
		}},
		{"VUI says B-frames", func(s *spsSpec) { s.vui = &vuiSpec{restriction: &[2]uint64{2, 4}} },
			func(s *SPS) { s.BitstreamRestriction, s.MaxNumReorderFrames, s.MaxDecFrameBuffering = true, 2, 4 }},
		{"VUI with a bad HRD is ignored", func(s *spsSpec) { s.vui = &vuiSpec{sarIDC: 1, nalHRD: 33, restriction: &[2]uint64{0, 1}} },
			func(s *SPS) { s.SARWidth, s.SARHeight = 1, 1 }},
		{"largest size", func(s *spsSpec) { s.widthMbsMinus1, s.heightUnitsMinus1, s.frameMbsOnly = maxMbs-1, maxMbs-1, false },
			func(s *SPS) {
				s.FrameMbsOnly, s.CodedWidth, s.CodedHeight, s.Width, s.Height = false, 16*maxMbs, 32*maxMbs, 16*maxMbs, 32*maxMbs
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := baseSPS()
			tt.spec(&spec)
			want := baseWant()
			tt.want(&want)
			got, err := ParseSPS(spec.nal())
			if err != nil {
				t.Fatalf("ParseSPS(%x) = %v", spec.nal(), err)
			}
			if got != want {
				t.Errorf("ParseSPS(%x) =\n%+v\nwant\n%+v", spec.nal(), got, want)
			}
		})
	}
}

func TestParseSPSErrors(t *testing.T) {
	build := func(f func(*spsSpec)) []byte {
		s := baseSPS()
		f(&s)
		return s.nal()
	}
	tests := []struct {
		name    string
		nal     []byte
		wantMsg string
	}{
		{"empty", nil, "empty"},
		{"a PPS", testPPS, "type is 8"},
		{"forbidden bit", append([]byte{0xe7}, testSPS[1:]...), "forbidden_zero_bit"},
		{"header only", []byte{0x67}, "end inside profile_idc"},
		{"cut after level_idc", []byte{0x67, 0x64, 0x00, 0x1f}, "end inside seq_parameter_set_id"},
		{"cut before the VUI flag", build(func(s *spsSpec) {})[:9], "the bytes end inside"},
		{"Exp-Golomb code too long", append([]byte{0x67, 0x64, 0x00, 0x1f}, escape(make([]byte, 8))...),
			"seq_parameter_set_id is an Exp-Golomb code longer than 32 bits"},
		{"id", build(func(s *spsSpec) { s.id = 32 }), "seq_parameter_set_id is 32, outside 0..31"},
		{"chroma_format_idc", build(func(s *spsSpec) { s.chroma = 4 }), "chroma_format_idc is 4"},
		{"bit depth", build(func(s *spsSpec) { s.bitDepthChromaMinus8 = 7 }), "bit_depth_chroma_minus8 is 7"},
		{"delta_scale", build(func(s *spsSpec) { s.scaling = [][]int64{{128}} }), "delta_scale is 128"},
		{"log2_max_frame_num", build(func(s *spsSpec) { s.log2MaxFrameNumMinus4 = 13 }), "log2_max_frame_num_minus4 is 13"},
		{"pic_order_cnt_type", build(func(s *spsSpec) { s.pocType = 3 }), "pic_order_cnt_type is 3"},
		{"pic_order_cnt_lsb", build(func(s *spsSpec) { s.log2MaxPocLsbMinus4 = 13 }), "log2_max_pic_order_cnt_lsb_minus4 is 13"},
		{"pic_order_cnt cycle", build(func(s *spsSpec) { s.pocType, s.pocCycle = 1, make([]int64, 256) }),
			"num_ref_frames_in_pic_order_cnt_cycle is 256"},
		{"reference frames", build(func(s *spsSpec) { s.maxRefFrames = 17 }), "max_num_ref_frames is 17"},
		{"width", build(func(s *spsSpec) { s.widthMbsMinus1 = maxMbs }), "pic_width_in_mbs_minus1 is 4096"},
		{"height", build(func(s *spsSpec) { s.heightUnitsMinus1 = 1 << 31 }), "pic_height_in_map_units_minus1 is 2147483648"},
		{"crop takes the width", build(func(s *spsSpec) { s.crop = &[4]uint64{320, 320, 0, 0} }), "leaves nothing of 1280x720"},
		{"crop takes the height", build(func(s *spsSpec) { s.crop = &[4]uint64{0, 0, 180, 180} }), "leaves nothing"},
		{"huge crop", build(func(s *spsSpec) { s.crop = &[4]uint64{1<<32 - 2, 1<<32 - 2, 1<<32 - 2, 1<<32 - 2} }), "leaves nothing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSPS(tt.nal)
			if !errors.Is(err, ErrInvalidSPS) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("ParseSPS(%x) = %+v, %v; want an ErrInvalidSPS saying %q", tt.nal, got, err, tt.wantMsg)
			}
			if got != (SPS{}) {
				t.Errorf("ParseSPS(%x) returned %+v with its error, want the zero SPS", tt.nal, got)
			}
		})
	}
}

// TestParseSPSCutShort cuts an SPS at every length. Cut before its VUI, it is
// an error; cut inside, it reads as the whole SPS with the VUI's groups of
// fields either whole or zero, never a wrong value.
func TestParseSPSCutShort(t *testing.T) {
	spec := baseSPS()
	spec.crop = &[4]uint64{1, 2, 3, 4}
	spec.vui = &vuiSpec{sarIDC: extendedSAR, sarWidth: 4, sarHeight: 3, timing: &[2]uint64{1001, 60000},
		nalHRD: 1, restriction: &[2]uint64{0, 2}}
	nal := spec.nal()
	full, err := ParseSPS(nal)
	if err != nil {
		t.Fatal(err)
	}
	if !full.BitstreamRestriction || full.TimeScale == 0 || full.SARWidth == 0 {
		t.Fatalf("whole SPS reads as %+v, want every VUI group", full)
	}
	core := func(s SPS) SPS {
		s.SARWidth, s.SARHeight, s.NumUnitsInTick, s.TimeScale, s.FixedFrameRate = 0, 0, 0, 0, false
		s.BitstreamRestriction, s.MaxNumReorderFrames, s.MaxDecFrameBuffering = false, 0, 0
		return s
	}
	var sawPartial bool
	for n := range len(nal) {
		got, err := ParseSPS(nal[:n])
		if err != nil {
			if !errors.Is(err, ErrInvalidSPS) {
				t.Errorf("ParseSPS(first %d bytes) = %v, want ErrInvalidSPS", n, err)
			}
			continue
		}
		if core(got) != core(full) {
			t.Errorf("ParseSPS(first %d bytes) =\n%+v\nwant\n%+v", n, got, full)
		}
		sar := [2]int{got.SARWidth, got.SARHeight}
		timing := [3]any{got.NumUnitsInTick, got.TimeScale, got.FixedFrameRate}
		restriction := [3]any{got.BitstreamRestriction, got.MaxNumReorderFrames, got.MaxDecFrameBuffering}
		if sar != [2]int{} && sar != [2]int{full.SARWidth, full.SARHeight} ||
			timing != [3]any{uint32(0), uint32(0), false} && timing != [3]any{full.NumUnitsInTick, full.TimeScale, full.FixedFrameRate} ||
			restriction != [3]any{false, 0, 0} && restriction != [3]any{full.BitstreamRestriction, full.MaxNumReorderFrames, full.MaxDecFrameBuffering} {
			t.Errorf("ParseSPS(first %d bytes) has VUI fields %v %v %v, want each zero or %+v", n, sar, timing, restriction, full)
		}
		if got.TimeScale != 0 && !got.BitstreamRestriction {
			sawPartial = true
		}
	}
	if !sawPartial {
		t.Error("no cut kept the timing but lost the bitstream restriction; the test misses the case it is for")
	}
}

// TestBitReader writes Exp-Golomb codes, escapes them as a NAL unit would
// be, and reads them back.
func TestBitReader(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	values := []uint64{0, 1, 2, 3, 0, 0, 0, 1<<32 - 2, 1 << 20, 1<<22 - 1, 255, 256}
	for range 1000 {
		// Mostly large values: long runs of zero bits need escaping.
		values = append(values, min(rng.Uint64N(1<<rng.IntN(33)), 1<<32-2))
	}
	var w bitWriter
	for i, v := range values {
		if i%2 == 0 {
			w.ue(v)
		} else {
			w.se(int64(v>>1) * int64(1-2*(i/2%2)))
		}
	}
	escaped := escape(w.rbsp())
	r := bitReader{b: escaped}
	for i, v := range values {
		if i%2 == 0 {
			if got := r.ue("v"); uint64(got) != v {
				t.Fatalf("value %d: ue = %d, want %d", i, got, v)
			}
		} else if got, want := r.se("v"), int64(v>>1)*int64(1-2*(i/2%2)); got != want {
			t.Fatalf("value %d: se = %d, want %d", i, got, want)
		}
	}
	if r.failed {
		t.Fatalf("reader failed: %s", r.describe())
	}
	if r.bit("stop") != 1 || r.failed {
		t.Errorf("rbsp_stop_one_bit is not where the reader ended")
	}
}
