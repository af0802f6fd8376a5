package mp4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// Sample flags of trun (ISO/IEC 14496-12 8.8.3.1).
const (
	flagsSync    = 0x02000000 // sample_depends_on = 2: depends on no other sample
	flagsNonSync = 0x01010000 // sample_depends_on = 1 and sample_is_non_sync_sample
)

// secondsTo1970 is the time from the MP4 epoch, 1904-01-01 UTC, to the Unix epoch.
const secondsTo1970 = 2082844800

// mp4Time returns t in seconds since 1904, or 0 for a time before 1904.
func mp4Time(t time.Time) uint64 {
	s := t.Unix() + secondsTo1970
	if s < 0 {
		return 0
	}
	return uint64(s)
}

// buildInit returns the init segment (ftyp and moov) of a clip described by p.
// Track IDs follow the order video, audio, counting from 1.
func buildInit(p Params) ([]byte, error) {
	if p.Video == nil && p.Audio == nil {
		return nil, errors.New("mp4: params have neither a video nor an audio track")
	}
	var avcC []byte
	if v := p.Video; v != nil {
		if v.Width < 1 || v.Width > 0xFFFF || v.Height < 1 || v.Height > 0xFFFF {
			return nil, fmt.Errorf("mp4: video size %dx%d: each side must be 1 to 65535", v.Width, v.Height)
		}
		if t := ticks(max(v.FrameDuration, 0), videoTimescale); t < 1 || t > math.MaxUint32 {
			return nil, fmt.Errorf("mp4: video frame duration %v: must be 1 to 2^32-1 ticks of 1/%d s", v.FrameDuration, videoTimescale)
		}
		var err error
		if avcC, err = avcConfig(v.SPS, v.PPS); err != nil {
			return nil, err
		}
	}
	if a := p.Audio; a != nil {
		if err := checkAudio(a); err != nil {
			return nil, err
		}
	}

	created := mp4Time(p.Created)
	var e boxes
	at := e.open("ftyp")
	e.str("isom")
	e.u32(0) // minor_version
	e.str("isomiso6mp41")
	if p.Video != nil {
		e.str("avc1")
	}
	e.close(at)

	moov := e.open("moov")
	ntracks := uint32(0)
	if p.Video != nil {
		ntracks++
	}
	if p.Audio != nil {
		ntracks++
	}
	at = e.openFull("mvhd", 1, 0)
	e.u64(created)
	e.u64(created) // modification_time
	e.u32(movieTimescale)
	e.u64(0)          // duration, patched by Finalize or Recover
	e.u32(0x00010000) // rate 1.0
	e.u16(0x0100)     // volume 1.0
	e.zeros(2 + 8)    // reserved
	e.matrix()
	e.zeros(24) // pre_defined
	e.u32(ntracks + 1)
	e.close(at)

	id := uint32(0)
	if v := p.Video; v != nil {
		id++
		trak := e.openTrak(id, created, videoTimescale, uint32(v.Width), uint32(v.Height), "vide", "VideoHandler")
		vmhd := e.openFull("vmhd", 0, 1)
		e.zeros(8) // graphicsmode, opcolor
		e.close(vmhd)
		e.dinf()
		stbl := e.openStbl()
		entry := e.open("avc1")
		e.zeros(6)
		e.u16(1)    // data_reference_index
		e.zeros(16) // pre_defined, reserved, pre_defined[3]
		e.u16(uint16(v.Width))
		e.u16(uint16(v.Height))
		e.u32(0x00480000) // horizresolution 72 dpi
		e.u32(0x00480000) // vertresolution 72 dpi
		e.u32(0)          // reserved
		e.u16(1)          // frame_count
		e.zeros(32)       // compressorname
		e.u16(0x0018)     // depth: colour, no alpha
		e.u16(0xFFFF)     // pre_defined = -1
		cfg := e.open("avcC")
		e.bytes(avcC)
		e.close(cfg)
		e.close(entry)
		e.closeTrak(stbl, trak, uint32(ticks(v.FrameDuration, videoTimescale)))
	}
	if a := p.Audio; a != nil {
		id++
		trak := e.openTrak(id, created, uint32(a.SampleRate), 0, 0, "soun", "SoundHandler")
		smhd := e.openFull("smhd", 0, 0)
		e.zeros(4) // balance, reserved
		e.close(smhd)
		e.dinf()
		stbl := e.openStbl()
		if a.ALACCookie != nil {
			entry := e.audioEntry("alac", a)
			// Apple's layout: a full box of type 'alac' holding the cookie.
			cfg := e.openFull("alac", 0, 0)
			e.bytes(a.ALACCookie)
			e.close(cfg)
			e.close(entry)
		} else {
			entry := e.audioEntry("fLaC", a)
			dfla := e.openFull("dfLa", 0, 0)
			// One FLAC metadata block: last-metadata-block flag set, type 0
			// (STREAMINFO), 24-bit length 34, then the block.
			e.u8(0x80)
			e.u8(0)
			e.u16(uint16(len(a.StreamInfo)))
			e.bytes(a.StreamInfo)
			e.close(dfla)
			e.close(entry)
		}
		e.closeTrak(stbl, trak, 0)
	}

	mvex := e.open("mvex")
	at = e.openFull("mehd", 1, 0)
	e.u64(0) // fragment_duration, patched by Finalize or Recover
	e.close(at)
	for tid := uint32(1); tid <= id; tid++ {
		at = e.openFull("trex", 0, 0)
		e.u32(tid)
		e.u32(1) // default_sample_description_index
		e.u32(0) // default_sample_duration
		e.u32(0) // default_sample_size
		e.u32(0) // default_sample_flags
		e.close(at)
	}
	e.close(mvex)
	e.close(moov)
	return e.b, nil
}

// audioEntry opens an AudioSampleEntry of type typ for a and appends its
// fields; the caller appends the codec's box and closes the entry.
func (e *boxes) audioEntry(typ string, a *AudioTrack) int {
	entry := e.open(typ)
	e.zeros(6)
	e.u16(1) // data_reference_index
	e.zeros(8)
	e.u16(uint16(a.Channels))
	e.u16(uint16(a.BitsPerSample))
	e.zeros(4) // pre_defined, reserved
	e.u32(entryRate(a.SampleRate))
	return entry
}

// openTrak appends the start of a trak box up to and including the opening of
// its minf box, and returns the offsets closeTrak needs. width and height are 0
// for an audio track.
func (e *boxes) openTrak(id uint32, created uint64, timescale, width, height uint32, handler, name string) [3]int {
	trak := e.open("trak")
	at := e.openFull("tkhd", 1, 3) // track_enabled | track_in_movie
	e.u64(created)
	e.u64(created)
	e.u32(id)
	e.u32(0) // reserved
	e.u64(0) // duration, patched by Finalize or Recover
	e.zeros(8)
	e.u16(0) // layer
	e.u16(0) // alternate_group
	if handler == "soun" {
		e.u16(0x0100) // volume 1.0
	} else {
		e.u16(0)
	}
	e.u16(0) // reserved
	e.matrix()
	e.u32(width << 16)
	e.u32(height << 16)
	e.close(at)

	mdia := e.open("mdia")
	at = e.openFull("mdhd", 1, 0)
	e.u64(created)
	e.u64(created)
	e.u32(timescale)
	e.u64(0)      // duration, patched by Finalize or Recover
	e.u16(0x55C4) // language "und"
	e.u16(0)      // pre_defined
	e.close(at)
	at = e.openFull("hdlr", 0, 0)
	e.u32(0) // pre_defined
	e.str(handler)
	e.zeros(12)
	e.str(name)
	e.u8(0)
	e.close(at)
	minf := e.open("minf")
	return [3]int{trak, mdia, minf}
}

// dinf appends a data information box saying the media is in this file.
func (e *boxes) dinf() {
	dinf := e.open("dinf")
	dref := e.openFull("dref", 0, 0)
	e.u32(1)
	url := e.openFull("url ", 0, 1) // self-contained
	e.close(url)
	e.close(dref)
	e.close(dinf)
}

// openStbl opens the sample table and its stsd box, leaving room for the one
// sample entry, and returns the offsets closeTrak needs.
func (e *boxes) openStbl() [2]int {
	stbl := e.open("stbl")
	stsd := e.openFull("stsd", 0, 0)
	e.u32(1) // entry_count
	return [2]int{stbl, stsd}
}

// closeTrak closes the stsd opened by openStbl, appends the empty sample
// tables of a fragmented track and closes the boxes opened by openTrak.
// A frame delta other than 0 goes into the stts as one entry of no samples,
// to state the frame rate.
func (e *boxes) closeTrak(stbl [2]int, trak [3]int, frame uint32) {
	e.close(stbl[1])
	at := e.openFull("stts", 0, 0)
	if frame != 0 {
		e.u32(1) // entry_count
		e.u32(0) // sample_count: the samples are in the fragments
		e.u32(frame)
	} else {
		e.u32(0)
	}
	e.close(at)
	for _, typ := range [...]string{"stsc", "stco"} {
		at := e.openFull(typ, 0, 0)
		e.u32(0) // entry_count
		e.close(at)
	}
	at = e.openFull("stsz", 0, 0)
	e.u32(0) // sample_size
	e.u32(0) // sample_count
	e.close(at)
	e.close(stbl[0])
	e.close(trak[2])
	e.close(trak[1])
	e.close(trak[0])
}

// entryRate returns the samplerate field of an audio sample entry, a 16.16
// fixed-point number. Rates above 65535 Hz are halved until they fit, or
// stored as 65535 Hz when halving cannot make them fit, as the FLAC-in-ISOBMFF
// encapsulation requires; the true rate is the media timescale and STREAMINFO
// or the ALAC cookie.
func entryRate(rate int) uint32 {
	for rate > 0xFFFF && rate%2 == 0 {
		rate /= 2
	}
	if rate > 0xFFFF {
		rate = 0xFFFF
	}
	return uint32(rate) << 16
}

// checkAudio reports whether a's fields agree with its STREAMINFO block or
// ALAC cookie, exactly one of which it must have.
func checkAudio(a *AudioTrack) error {
	if a.ALACCookie != nil {
		return checkALACCookie(a)
	}
	si := a.StreamInfo
	if len(si) != 34 {
		return fmt.Errorf("mp4: FLAC STREAMINFO is %d bytes, want 34", len(si))
	}
	rate := int(si[10])<<12 | int(si[11])<<4 | int(si[12])>>4
	channels := int(si[12]>>1&7) + 1
	depth := int(si[12]&1)<<4 | int(si[13]>>4) + 1
	if rate == 0 {
		return errors.New("mp4: FLAC STREAMINFO has sample rate 0")
	}
	if a.SampleRate != rate || a.Channels != channels || a.BitsPerSample != depth {
		return fmt.Errorf("mp4: audio track says %d Hz, %d channels, %d bits; STREAMINFO says %d Hz, %d channels, %d bits",
			a.SampleRate, a.Channels, a.BitsPerSample, rate, channels, depth)
	}
	return nil
}

// checkALACCookie reports whether a's fields agree with its ALAC cookie.
func checkALACCookie(a *AudioTrack) error {
	c := a.ALACCookie
	switch {
	case a.StreamInfo != nil:
		return errors.New("mp4: audio track has both a FLAC STREAMINFO and an ALAC cookie")
	case len(c) != 24:
		return fmt.Errorf("mp4: ALAC cookie is %d bytes, want 24", len(c))
	}
	depth, channels, rate := int(c[5]), int(c[9]), int(binary.BigEndian.Uint32(c[20:]))
	if rate == 0 {
		return errors.New("mp4: ALAC cookie has sample rate 0")
	}
	if a.SampleRate != rate || a.Channels != channels || a.BitsPerSample != depth {
		return fmt.Errorf("mp4: audio track says %d Hz, %d channels, %d bits; ALAC cookie says %d Hz, %d channels, %d bits",
			a.SampleRate, a.Channels, a.BitsPerSample, rate, channels, depth)
	}
	return nil
}

// avcConfig returns an AVCDecoderConfigurationRecord (ISO/IEC 14496-15
// 5.3.3.1) for one SPS and one PPS, with 4-byte NAL unit lengths. For profiles
// whose SPS carries chroma_format_idc it includes the chroma format and bit
// depths, read from the SPS.
func avcConfig(sps, pps []byte) ([]byte, error) {
	if len(sps) < 4 || sps[0]&0x9F != 7 {
		return nil, errors.New("mp4: SPS is not a sequence parameter set NAL unit")
	}
	if len(pps) < 2 || pps[0]&0x9F != 8 {
		return nil, errors.New("mp4: PPS is not a picture parameter set NAL unit")
	}
	if len(sps) > 0xFFFF || len(pps) > 0xFFFF {
		return nil, errors.New("mp4: SPS or PPS longer than 65535 bytes")
	}
	body := unescape(sps[1:])
	if len(body) < 4 {
		return nil, errors.New("mp4: SPS is truncated")
	}
	profile := body[0]
	rec := make([]byte, 0, 11+len(sps)+len(pps)+4)
	rec = append(rec,
		1,       // configurationVersion
		profile, // AVCProfileIndication
		body[1], // profile_compatibility
		body[2], // AVCLevelIndication
		0xFC|3,  // lengthSizeMinusOne = 3
		0xE0|1,  // numOfSequenceParameterSets
		byte(len(sps)>>8), byte(len(sps)))
	rec = append(rec, sps...)
	rec = append(rec, 1, byte(len(pps)>>8), byte(len(pps)))
	rec = append(rec, pps...)
	if hasChromaFormat(profile) {
		chroma, luma, chromaDepth, err := parseChroma(body[3:])
		if err != nil {
			return nil, err
		}
		rec = append(rec, 0xFC|chroma, 0xF8|luma, 0xF8|chromaDepth, 0) // no SPS extensions
	}
	return rec, nil
}

// hasChromaFormat reports whether an SPS of the given profile_idc carries
// chroma_format_idc and bit depths (ITU-T H.264 7.3.2.1.1), which is also when
// an avcC record must carry them.
func hasChromaFormat(profile byte) bool {
	switch profile {
	case 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135, 144:
		return true
	}
	return false
}

// parseChroma reads the SPS fields from seq_parameter_set_id up to
// bit_depth_chroma_minus8 out of b, the SPS RBSP after level_idc.
func parseChroma(b []byte) (chroma, luma, chromaDepth byte, err error) {
	r := bitReader{b: b}
	id := r.ue()
	chromaIdc := r.ue()
	if chromaIdc == 3 {
		r.bit() // separate_colour_plane_flag
	}
	l := r.ue()
	c := r.ue()
	switch {
	case r.failed:
		return 0, 0, 0, errors.New("mp4: SPS is truncated or malformed")
	case id > 31 || chromaIdc > 3 || l > 6 || c > 6:
		return 0, 0, 0, fmt.Errorf("mp4: SPS has invalid id %d, chroma_format_idc %d or bit depths %d, %d", id, chromaIdc, l+8, c+8)
	}
	return byte(chromaIdc), byte(l), byte(c), nil
}

// unescape returns the RBSP of NAL unit bytes b: b with every emulation
// prevention byte (the 3 in 0x000003) removed.
func unescape(b []byte) []byte {
	out := make([]byte, 0, len(b))
	zeros := 0
	for _, c := range b {
		if zeros >= 2 && c == 3 {
			zeros = 0
			continue
		}
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
		out = append(out, c)
	}
	return out
}

// bitReader reads an RBSP most significant bit first. Reading past the end
// or an Exp-Golomb code longer than 32 bits yields zeros and sets failed.
type bitReader struct {
	b      []byte
	n      int // bits read
	failed bool
}

func (r *bitReader) bit() uint32 {
	if r.n >= 8*len(r.b) {
		r.failed = true
		return 0
	}
	v := r.b[r.n/8] >> (7 - r.n%8) & 1
	r.n++
	return uint32(v)
}

// ue reads an unsigned Exp-Golomb code (ITU-T H.264 9.1).
func (r *bitReader) ue() uint32 {
	zeros := 0
	for r.bit() == 0 {
		if r.failed || zeros == 31 {
			r.failed = true
			return 0
		}
		zeros++
	}
	var v uint32
	for range zeros {
		v = v<<1 | r.bit()
	}
	return 1<<zeros - 1 + v
}
