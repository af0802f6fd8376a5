package h264

import "fmt"

// maxMbs bounds the picture's width and height in macroblocks: 65536 pixels,
// well past the 1055 macroblocks of level 6.2.
const maxMbs = 4096

// An SPS is what a sequence parameter set (ITU-T H.264 7.3.2.1.1) says about
// the pictures that refer to it.
type SPS struct {
	ProfileIDC uint8
	// ConstraintFlags is the byte after profile_idc: constraint_set0_flag in
	// the most significant bit, then constraint_set1_flag to
	// constraint_set5_flag and two reserved bits.
	ConstraintFlags uint8
	LevelIDC        uint8
	ID              int // seq_parameter_set_id, 0 to 31

	// ChromaFormatIDC is 0 for monochrome, 1 for 4:2:0, 2 for 4:2:2 and 3 for
	// 4:4:4. Profiles before High have no field for it and are 4:2:0.
	ChromaFormatIDC     int
	SeparateColourPlane bool
	BitDepthLuma        int  // 8 to 14
	BitDepthChroma      int  // 8 to 14
	ScalingMatrix       bool // seq_scaling_matrix_present_flag

	Log2MaxFrameNum int // 4 to 16
	PicOrderCntType int // 0 to 2
	MaxNumRefFrames int
	// FrameMbsOnly is false when pictures may be coded as fields
	// (interlaced).
	FrameMbsOnly bool

	// CodedWidth and CodedHeight are the size of the decoded frame in luma
	// samples: whole macroblocks.
	CodedWidth, CodedHeight int
	// Width and Height are the displayed picture size, after frame cropping.
	// They are at least 1.
	Width, Height int

	// From the VUI (Annex E), zero where it is absent. A VUI cut short is
	// not an error (decoders ignore the rest, and some encoders write such
	// VUIs): the groups of fields it does not hold whole stay zero.

	// SARWidth and SARHeight are the sample (pixel) aspect ratio.
	SARWidth, SARHeight int
	// NumUnitsInTick and TimeScale are the timing information: a frame lasts
	// 2*NumUnitsInTick/TimeScale seconds.
	NumUnitsInTick, TimeScale uint32
	FixedFrameRate            bool
	// BitstreamRestriction reports whether MaxNumReorderFrames and
	// MaxDecFrameBuffering were given. MaxNumReorderFrames 0 promises that
	// frames are decoded in display order: no B-frames.
	BitstreamRestriction bool
	MaxNumReorderFrames  int
	MaxDecFrameBuffering int
}

// highProfile reports whether profile_idc is one whose SPS carries
// chroma_format_idc, bit depths and scaling lists.
func highProfile(idc uint8) bool {
	switch idc {
	case 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135:
		return true
	}
	return false
}

// ParseSPS reads a sequence parameter set NAL unit: nal without start code or
// length prefix, header byte included, emulation prevention bytes in place.
// It reads every profile's SPS, including the High profiles' chroma format,
// bit depths and scaling lists, and applies frame cropping to the size. An
// error wraps ErrInvalidSPS and names the field that is cut off or out of
// range. ParseSPS does not retain nal.
func ParseSPS(nal []byte) (SPS, error) {
	var s SPS
	if len(nal) == 0 {
		return s, fmt.Errorf("%w: empty NAL unit", ErrInvalidSPS)
	}
	if nal[0]&0x80 != 0 {
		return s, fmt.Errorf("%w: forbidden_zero_bit is set", ErrInvalidSPS)
	}
	if t := nal[0] & 0x1f; t != NALSPS {
		return s, fmt.Errorf("%w: NAL unit type is %d, want %d", ErrInvalidSPS, t, NALSPS)
	}
	r := bitReader{b: nal[1:]}
	s.ProfileIDC = uint8(r.u(8, "profile_idc"))
	s.ConstraintFlags = uint8(r.u(8, "constraint_set_flags"))
	s.LevelIDC = uint8(r.u(8, "level_idc"))
	s.ID = int(r.ueIn("seq_parameter_set_id", 0, 31))

	s.ChromaFormatIDC = 1
	s.BitDepthLuma, s.BitDepthChroma = 8, 8
	if highProfile(s.ProfileIDC) {
		s.ChromaFormatIDC = int(r.ueIn("chroma_format_idc", 0, 3))
		if s.ChromaFormatIDC == 3 {
			s.SeparateColourPlane = r.flag("separate_colour_plane_flag")
		}
		s.BitDepthLuma = 8 + int(r.ueIn("bit_depth_luma_minus8", 0, 6))
		s.BitDepthChroma = 8 + int(r.ueIn("bit_depth_chroma_minus8", 0, 6))
		r.flag("qpprime_y_zero_transform_bypass_flag")
		s.ScalingMatrix = r.flag("seq_scaling_matrix_present_flag")
		if s.ScalingMatrix {
			lists := 8
			if s.ChromaFormatIDC == 3 {
				lists = 12
			}
			for i := range lists {
				if r.flag("seq_scaling_list_present_flag") {
					size := 16
					if i >= 6 {
						size = 64
					}
					skipScalingList(&r, size)
				}
			}
		}
	}

	s.Log2MaxFrameNum = 4 + int(r.ueIn("log2_max_frame_num_minus4", 0, 12))
	s.PicOrderCntType = int(r.ueIn("pic_order_cnt_type", 0, 2))
	switch s.PicOrderCntType {
	case 0:
		r.ueIn("log2_max_pic_order_cnt_lsb_minus4", 0, 12)
	case 1:
		r.flag("delta_pic_order_always_zero_flag")
		r.se("offset_for_non_ref_pic")
		r.se("offset_for_top_to_bottom_field")
		n := r.ueIn("num_ref_frames_in_pic_order_cnt_cycle", 0, 255)
		for range n {
			r.se("offset_for_ref_frame")
		}
	}
	s.MaxNumRefFrames = int(r.ueIn("max_num_ref_frames", 0, 16))
	r.flag("gaps_in_frame_num_value_allowed_flag")
	widthMbs := r.ueIn("pic_width_in_mbs_minus1", 0, maxMbs-1) + 1
	heightUnits := r.ueIn("pic_height_in_map_units_minus1", 0, maxMbs-1) + 1
	s.FrameMbsOnly = r.flag("frame_mbs_only_flag")
	if !s.FrameMbsOnly {
		r.flag("mb_adaptive_frame_field_flag")
	}
	r.flag("direct_8x8_inference_flag")
	var crop [4]int64 // left, right, top, bottom, in crop units
	if r.flag("frame_cropping_flag") {
		crop[0] = int64(r.ue("frame_crop_left_offset"))
		crop[1] = int64(r.ue("frame_crop_right_offset"))
		crop[2] = int64(r.ue("frame_crop_top_offset"))
		crop[3] = int64(r.ue("frame_crop_bottom_offset"))
	}
	vui := r.flag("vui_parameters_present_flag")
	if r.failed {
		return SPS{}, fmt.Errorf("%w: %s", ErrInvalidSPS, r.describe())
	}

	fieldFactor := int64(1) // frames are two fields' map units tall
	if !s.FrameMbsOnly {
		fieldFactor = 2
	}
	codedW, codedH := widthMbs*16, heightUnits*16*fieldFactor
	// ITU-T H.264 7.4.2.1.1: crop offsets count chroma samples, or luma
	// samples when there is no chroma array.
	unitX, unitY := int64(1), fieldFactor
	if !s.SeparateColourPlane && s.ChromaFormatIDC != 0 {
		if s.ChromaFormatIDC != 3 {
			unitX = 2
		}
		if s.ChromaFormatIDC == 1 {
			unitY *= 2
		}
	}
	w := codedW - unitX*(crop[0]+crop[1])
	h := codedH - unitY*(crop[2]+crop[3])
	if w < 1 || h < 1 {
		return SPS{}, fmt.Errorf("%w: frame cropping (left %d, right %d, top %d, bottom %d) leaves nothing of %dx%d",
			ErrInvalidSPS, crop[0], crop[1], crop[2], crop[3], codedW, codedH)
	}
	s.CodedWidth, s.CodedHeight = int(codedW), int(codedH)
	s.Width, s.Height = int(w), int(h)

	if vui {
		parseVUI(&r, &s)
	}
	return s, nil
}

// skipScalingList reads past a scaling_list() (ITU-T H.264 7.3.2.1.1.1) of
// size coefficients.
func skipScalingList(r *bitReader, size int) {
	last, next := int64(8), int64(8)
	for range size {
		if next != 0 {
			delta := r.seIn("delta_scale", -128, 127)
			next = (last + delta + 256) % 256
			if r.failed {
				return
			}
		}
		if next != 0 {
			last = next
		}
	}
}

// Sample aspect ratios of aspect_ratio_idc 1 to 16 (ITU-T H.264 Table E-1).
var sampleAspectRatios = [...][2]int{
	{1, 1}, {12, 11}, {10, 11}, {16, 11}, {40, 33}, {24, 11}, {20, 11}, {32, 11},
	{80, 33}, {18, 11}, {15, 11}, {64, 33}, {160, 99}, {4, 3}, {3, 2}, {2, 1},
}

const extendedSAR = 255

// parseVUI reads vui_parameters() (ITU-T H.264 E.1.1) into s. Each group of
// fields is stored only if it was read whole.
func parseVUI(r *bitReader, s *SPS) {
	if r.flag("aspect_ratio_info_present_flag") {
		var sar [2]int
		idc := int(r.u(8, "aspect_ratio_idc"))
		switch {
		case idc == extendedSAR:
			sar[0] = int(r.u(16, "sar_width"))
			sar[1] = int(r.u(16, "sar_height"))
		case idc >= 1 && idc <= len(sampleAspectRatios):
			sar = sampleAspectRatios[idc-1]
		}
		if r.failed {
			return
		}
		s.SARWidth, s.SARHeight = sar[0], sar[1]
	}
	if r.flag("overscan_info_present_flag") {
		r.flag("overscan_appropriate_flag")
	}
	if r.flag("video_signal_type_present_flag") {
		r.u(3, "video_format")
		r.flag("video_full_range_flag")
		if r.flag("colour_description_present_flag") {
			r.u(8, "colour_primaries")
			r.u(8, "transfer_characteristics")
			r.u(8, "matrix_coefficients")
		}
	}
	if r.flag("chroma_loc_info_present_flag") {
		r.ue("chroma_sample_loc_type_top_field")
		r.ue("chroma_sample_loc_type_bottom_field")
	}
	if r.flag("timing_info_present_flag") {
		tick := r.u(32, "num_units_in_tick")
		scale := r.u(32, "time_scale")
		fixed := r.flag("fixed_frame_rate_flag")
		if r.failed {
			return
		}
		s.NumUnitsInTick, s.TimeScale, s.FixedFrameRate = tick, scale, fixed
	}
	nalHRD := r.flag("nal_hrd_parameters_present_flag")
	if nalHRD {
		skipHRD(r)
	}
	vclHRD := r.flag("vcl_hrd_parameters_present_flag")
	if vclHRD {
		skipHRD(r)
	}
	if nalHRD || vclHRD {
		r.flag("low_delay_hrd_flag")
	}
	r.flag("pic_struct_present_flag")
	if r.flag("bitstream_restriction_flag") {
		r.flag("motion_vectors_over_pic_boundaries_flag")
		r.ue("max_bytes_per_pic_denom")
		r.ue("max_bits_per_mb_denom")
		r.ue("log2_max_mv_length_horizontal")
		r.ue("log2_max_mv_length_vertical")
		reorder := r.ueIn("max_num_reorder_frames", 0, 16)
		buffering := r.ueIn("max_dec_frame_buffering", 0, 16)
		if r.failed {
			return
		}
		s.BitstreamRestriction = true
		s.MaxNumReorderFrames, s.MaxDecFrameBuffering = int(reorder), int(buffering)
	}
}

// skipHRD reads past hrd_parameters() (ITU-T H.264 E.1.2).
func skipHRD(r *bitReader) {
	n := r.ueIn("cpb_cnt_minus1", 0, 31) + 1
	r.u(4, "bit_rate_scale")
	r.u(4, "cpb_size_scale")
	for range n {
		r.ue("bit_rate_value_minus1")
		r.ue("cpb_size_value_minus1")
		r.flag("cbr_flag")
	}
	r.u(5, "initial_cpb_removal_delay_length_minus1")
	r.u(5, "cpb_removal_delay_length_minus1")
	r.u(5, "dpb_output_delay_length_minus1")
	r.u(5, "time_offset_length")
}
