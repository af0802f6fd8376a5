package h264

// ParamSets remembers a stream's latest sequence and picture parameter sets,
// so that every IDR access unit it writes carries them in-band. rpicam-vid
// --inline and x264 repeat them before every IDR, but many encoders
// (h264_v4l2m2m, USB cameras, an installer's own command) send them once, at
// the start: a clip that starts at a later IDR could not be decoded without
// them.
//
// It keeps one SPS and one PPS, the last of each seen. Streams that switch
// between several parameter set ids are not supported.
type ParamSets struct {
	sps, pps []byte
}

// Update remembers au's SPS and PPS, if it has them. It copies them, reusing
// its own buffers.
func (p *ParamSets) Update(au AccessUnit) {
	if au.SPS != nil {
		p.sps = append(p.sps[:0], au.SPS...)
	}
	if au.PPS != nil {
		p.pps = append(p.pps[:0], au.PPS...)
	}
}

// Known reports whether an SPS and a PPS have been seen.
func (p *ParamSets) Known() bool { return p.sps != nil && p.pps != nil }

// AppendAVCC appends au to dst as AppendAVCC does. An IDR access unit that
// lacks its SPS or PPS gets the remembered ones in front of its other NAL
// units, replacing any parameter set it has, so that it decodes on its own.
// key reports whether the result can start a clip: an IDR whose parameter
// sets are in it. Call Update with au first.
func (p *ParamSets) AppendAVCC(dst []byte, au AccessUnit) (out []byte, key bool) {
	if !au.IDR {
		return AppendAVCC(dst, au), false
	}
	if au.SPS != nil && au.PPS != nil {
		return AppendAVCC(dst, au), true
	}
	if !p.Known() {
		return AppendAVCC(dst, au), false
	}
	dst = appendAVCCNAL(appendAVCCNAL(dst, p.sps), p.pps)
	return appendNALs(dst, au.NALUs, true), true
}
