package mp4

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// maxFragmentData is the largest mdat a Reader reads into memory. A clip's
// fragments hold at most a few megabytes (capture's pre-roll goes out in 4
// MiB pieces); one far larger is not a clip's.
const maxFragmentData = 64 << 20

// maxFragmentSamples is the most samples a Reader takes from one fragment,
// which bounds its sample lists as maxFragmentData bounds their data. A
// clip's half-second fragment holds about 40; its largest, the pre-roll's
// 4 MiB pieces, a few thousand.
const maxFragmentSamples = 1 << 16

// A Reader reads the samples of a clip, fragment by fragment, as a Writer
// wrote them: a clip of one H.264 video track, one FLAC or ALAC audio
// track, or both. It holds in memory the moov and one fragment at a time.
//
// A Reader reads only what it can check: every box it uses must fit in its
// parent, every sample must lie inside the mdat after its moof, and a
// track's decode times must not go back. Anything else it meets is an
// error; after an error, Next returns that error again.
type Reader struct {
	r      io.ReaderAt
	size   int64
	lay    layout
	params Params
	vi, ai int // indexes of the video and audio track in lay, or -1

	next      int64       // file offset of the next fragment
	fragments int         // fragments read
	end       []uint64    // per track of lay: where its last sample ended, in ticks
	data      []byte      // the mdat body of the last fragment, reused
	samples   [2][]Sample // video and audio samples of the last fragment, reused
	err       error       // sticky
}

// NewReader reads the init segment of the clip in the first size bytes of
// r. An error wraps ErrNotClip if the file does not start with an ftyp and
// a moov of a fragmented movie, and ErrUnsupported if its tracks are not
// those a Writer writes.
func NewReader(r io.ReaderAt, size int64) (*Reader, error) {
	rd, err := newReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("mp4: read clip: %w", err)
	}
	return rd, nil
}

func newReader(r io.ReaderAt, size int64) (*Reader, error) {
	ftyp, err := readHeader(r, 0, size)
	if err != nil {
		return nil, fmt.Errorf("ftyp: %w: %w", err, ErrNotClip)
	}
	if ftyp.typ != "ftyp" {
		return nil, fmt.Errorf("file starts with a %q box, want ftyp: %w", ftyp.typ, ErrNotClip)
	}
	moov, err := readHeader(r, ftyp.end(), size)
	if err != nil {
		return nil, fmt.Errorf("moov: %w: %w", err, ErrNotClip)
	}
	if moov.typ != "moov" {
		return nil, fmt.Errorf("%q box after ftyp, want moov: %w", moov.typ, ErrNotClip)
	}
	body, err := readBody(r, moov)
	if err != nil {
		return nil, fmt.Errorf("moov: %w: %w", err, ErrNotClip)
	}
	at := moov.off + moov.hdr
	lay, err := parseMoov(body, at)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, ErrNotClip)
	}
	rd := &Reader{r: r, size: size, lay: lay, vi: -1, ai: -1, next: moov.end()}
	if rd.params, err = parseParams(body, &rd.lay); err != nil {
		return nil, fmt.Errorf("%w: %w", err, ErrUnsupported)
	}
	for i, t := range lay.tracks {
		switch t.handler {
		case "vide":
			rd.vi = i
		case "soun":
			rd.ai = i
		}
	}
	rd.end = make([]uint64, len(lay.tracks))
	return rd, nil
}

// Params describes the clip as NewWriter would need it to write the same
// init segment: the video's SPS, PPS, size and the frame rate the clip
// states, the audio's format and its STREAMINFO or ALAC cookie, and the
// creation time (the zero Time if the clip records none). Its slices are
// the Reader's own; the caller must not modify them.
func (rd *Reader) Params() Params { return rd.params }

// Next reads the next fragment and returns its video and audio samples, in
// the form Writer.WriteFragment takes: Time is the sample's decode time
// from the start of the clip and Duration how long it lasts, both from the
// track's ticks rounded to the nearest nanosecond, so that a Writer turns
// them back into the same ticks. Every audio sample is a key sample. The
// slices and the samples' Data are valid until the next call to Next.
//
// Next returns io.EOF after the last fragment, when the file ends exactly
// where a fragment does. It returns an error wrapping ErrUnsupported for a
// fragment whose mdat holds more than 64 MiB or that has more than 65536
// samples.
func (rd *Reader) Next() (video, audio []Sample, err error) {
	if rd.err != nil {
		return nil, nil, rd.err
	}
	if rd.next == rd.size {
		return nil, nil, io.EOF
	}
	v, a, err := rd.fragment()
	if err != nil {
		rd.err = fmt.Errorf("mp4: read clip: fragment %d at byte %d: %w", rd.fragments+1, rd.next, err)
		return nil, nil, rd.err
	}
	rd.fragments++
	return v, a, nil
}

// sampleRef is where a sample of a fragment is and how long it lasts.
type sampleRef struct {
	track      int // index in lay.tracks
	off        int64
	size       uint32
	dur, flags uint32
}

// fragment reads the fragment at rd.next and moves rd.next past it.
func (rd *Reader) fragment() (video, audio []Sample, err error) {
	moof, err := readHeader(rd.r, rd.next, rd.size)
	if err != nil {
		return nil, nil, err
	}
	if moof.typ != "moof" {
		return nil, nil, fmt.Errorf("%q box where a moof should be", moof.typ)
	}
	mdat, err := readHeader(rd.r, moof.end(), rd.size)
	if err != nil {
		return nil, nil, err
	}
	if mdat.typ != "mdat" {
		return nil, nil, fmt.Errorf("%q box after a moof, want mdat", mdat.typ)
	}
	if mdat.size-mdat.hdr > maxFragmentData {
		return nil, nil, fmt.Errorf("mdat of %d bytes is larger than %d: %w", mdat.size, maxFragmentData, ErrUnsupported)
	}
	body, err := readBody(rd.r, moof)
	if err != nil {
		return nil, nil, err
	}
	var refs []sampleRef
	starts := make([]uint64, len(rd.lay.tracks))
	seen := make([]bool, len(rd.lay.tracks))
	next := moof.off // where the data of a traf without an explicit base starts
	err = walk(body, moof.off+moof.hdr, func(typ string, b []byte, _ int64) error {
		if typ != "traf" {
			return nil
		}
		t, start, hasTfdt, end, err := rd.traf(b, moof.off, next, &refs)
		if err != nil {
			return err
		}
		next = end
		if seen[t] {
			return fmt.Errorf("two trafs of track %d", rd.lay.tracks[t].id)
		}
		seen[t] = true
		if !hasTfdt {
			start = rd.end[t]
		}
		starts[t] = start
		return nil
	})
	if err != nil {
		return nil, nil, err
	}

	lo, hi := mdat.off+mdat.hdr, mdat.end()
	for _, s := range refs {
		if s.off < lo || s.off > hi || int64(s.size) > hi-s.off {
			return nil, nil, fmt.Errorf("a sample of track %d lies outside the mdat", rd.lay.tracks[s.track].id)
		}
	}
	n := int(hi - lo)
	if cap(rd.data) < n {
		rd.data = make([]byte, n)
	}
	rd.data = rd.data[:n]
	if err := readAt(rd.r, rd.data, lo); err != nil {
		return nil, nil, err
	}

	for t := range seen {
		if seen[t] && starts[t] < rd.end[t] {
			return nil, nil, fmt.Errorf("track %d goes back in time", rd.lay.tracks[t].id)
		}
	}
	rd.samples[0], rd.samples[1] = rd.samples[0][:0], rd.samples[1][:0]
	at := starts
	for _, s := range refs {
		t := &rd.lay.tracks[s.track]
		start, end := at[s.track], at[s.track]+uint64(s.dur)
		if end < start {
			return nil, nil, fmt.Errorf("track %d: time overflows", t.id)
		}
		at[s.track] = end
		rd.end[s.track] = end
		sample := Sample{
			Time:     duration(start, t.timescale),
			Duration: duration(end, t.timescale) - duration(start, t.timescale),
			Key:      true,
			Data:     rd.data[s.off-lo : s.off-lo+int64(s.size)],
		}
		k := 1
		if s.track == rd.vi {
			k = 0
			sample.Key = s.flags&0x00010000 == 0 // sample_is_non_sync_sample clear
		} else if s.track != rd.ai {
			return nil, nil, fmt.Errorf("samples of track %d, neither video nor audio", t.id)
		}
		rd.samples[k] = append(rd.samples[k], sample)
	}
	rd.next = mdat.end()
	return rd.samples[0], rd.samples[1], nil
}

// traf parses body, the body of a traf box of the moof at file offset moof,
// and appends its samples to refs. implicit is the data base when the tfhd
// names none. It returns the track's index in rd.lay, the tfdt if the traf
// has one, and the end of the traf's data.
func (rd *Reader) traf(body []byte, moof, implicit int64, refs *[]sampleRef) (track int, tfdt uint64, hasTfdt bool, end int64, err error) {
	track = -1
	var defDuration, defSize, defFlags uint32
	base := implicit
	var data int64 // where the next trun's data starts when it has no data_offset
	err = walk(body, 0, func(typ string, b []byte, _ int64) error {
		switch typ {
		case "tfhd":
			if track >= 0 {
				return errors.New("traf has two tfhd boxes")
			}
			if _, err := fullBox(typ, b, 8, 8); err != nil {
				return err
			}
			flags := binary.BigEndian.Uint32(b) & 0xFFFFFF
			id := binary.BigEndian.Uint32(b[4:])
			for i, t := range rd.lay.tracks {
				if t.id == id {
					track = i
					defDuration, defSize, defFlags = t.defaultDuration, t.defaultSize, t.defaultFlags
				}
			}
			if track < 0 {
				return fmt.Errorf("traf refers to unknown track %d", id)
			}
			// The optional fields, each present when its flag is set.
			var f [5][]byte
			p := b[8:]
			for i, x := range [...]struct {
				flag uint32
				n    int
			}{{0x01, 8}, {0x02, 4}, {0x08, 4}, {0x10, 4}, {0x20, 4}} {
				if flags&x.flag == 0 {
					continue
				}
				if len(p) < x.n {
					return errors.New("tfhd box is truncated")
				}
				f[i], p = p[:x.n], p[x.n:]
			}
			switch {
			case f[0] != nil:
				off := binary.BigEndian.Uint64(f[0])
				if off > uint64(rd.size) {
					return fmt.Errorf("tfhd base data offset %d is past the end of the file", off)
				}
				base = int64(off)
			case flags&0x020000 != 0: // default-base-is-moof
				base = moof
			}
			if f[1] != nil && binary.BigEndian.Uint32(f[1]) != 1 {
				return fmt.Errorf("tfhd names sample description %d, the moov has one: %w", binary.BigEndian.Uint32(f[1]), ErrUnsupported)
			}
			if f[2] != nil {
				defDuration = binary.BigEndian.Uint32(f[2])
			}
			if f[3] != nil {
				defSize = binary.BigEndian.Uint32(f[3])
			}
			if f[4] != nil {
				defFlags = binary.BigEndian.Uint32(f[4])
			}
			data = base
		case "tfdt":
			v1, err := fullBox(typ, b, 8, 12)
			if err != nil {
				return err
			}
			hasTfdt = true
			if v1 {
				tfdt = binary.BigEndian.Uint64(b[4:])
			} else {
				tfdt = uint64(binary.BigEndian.Uint32(b[4:]))
			}
		case "trun":
			if track < 0 {
				return errors.New("trun before tfhd")
			}
			var err error
			data, err = rd.trun(b, track, base, data, defDuration, defSize, defFlags, refs)
			return err
		}
		return nil
	})
	if err == nil && track < 0 {
		err = errors.New("traf has no tfhd")
	}
	return track, tfdt, hasTfdt, data, err
}

// trun parses the body of a trun box of track, appending its samples to
// refs. Its data_offset counts from base; without one its data starts at
// data. It returns the end of its data.
func (rd *Reader) trun(b []byte, track int, base, data int64, defDuration, defSize, defFlags uint32, refs *[]sampleRef) (int64, error) {
	if _, err := fullBox("trun", b, 8, 8); err != nil {
		return 0, err
	}
	flags := binary.BigEndian.Uint32(b) & 0xFFFFFF
	count := binary.BigEndian.Uint32(b[4:])
	p := b[8:]
	if flags&0x01 != 0 {
		if len(p) < 4 {
			return 0, errors.New("trun box is truncated")
		}
		data = base + int64(int32(binary.BigEndian.Uint32(p)))
		p = p[4:]
	}
	first, hasFirst := uint32(0), flags&0x04 != 0
	if hasFirst {
		if len(p) < 4 {
			return 0, errors.New("trun box is truncated")
		}
		first, p = binary.BigEndian.Uint32(p), p[4:]
	}
	entry := 0
	for _, f := range [...]uint32{0x100, 0x200, 0x400, 0x800} {
		if flags&f != 0 {
			entry += 4
		}
	}
	if uint64(count)*uint64(max(entry, 1)) > uint64(len(p)) {
		return 0, fmt.Errorf("trun box is too short for %d samples", count)
	}
	if uint64(len(*refs))+uint64(count) > maxFragmentSamples {
		return 0, fmt.Errorf("more than %d samples in a fragment: %w", maxFragmentSamples, ErrUnsupported)
	}
	for i := range int(count) {
		s := sampleRef{track: track, off: data, size: defSize, dur: defDuration, flags: defFlags}
		if i == 0 && hasFirst {
			s.flags = first
		}
		e := p[i*entry:]
		if flags&0x100 != 0 {
			s.dur, e = binary.BigEndian.Uint32(e), e[4:]
		}
		if flags&0x200 != 0 {
			s.size, e = binary.BigEndian.Uint32(e), e[4:]
		}
		if flags&0x400 != 0 {
			s.flags = binary.BigEndian.Uint32(e)
		}
		if data < 0 || data > rd.size || int64(s.size) > rd.size-data {
			return 0, fmt.Errorf("trun data at %d is outside the file", data)
		}
		data += int64(s.size)
		*refs = append(*refs, s)
	}
	return data, nil
}

// parseParams reads the Params of the clip whose moov body is body, laid
// out as l.
func parseParams(body []byte, l *layout) (Params, error) {
	var p Params
	var entries [][]byte // each trak's sample entry, in the order of l.tracks
	err := walk(body, 0, func(typ string, b []byte, _ int64) error {
		switch typ {
		case "mvhd":
			v1, err := fullBox(typ, b, 20, 32)
			if err != nil {
				return err
			}
			var created uint64
			if v1 {
				created = binary.BigEndian.Uint64(b[4:])
			} else {
				created = uint64(binary.BigEndian.Uint32(b[4:]))
			}
			if created != 0 && created < math.MaxInt64-secondsTo1970 {
				p.Created = time.Unix(int64(created)-secondsTo1970, 0).UTC()
			}
		case "trak":
			var entry []byte
			err := walkPath(b, 0, []string{"mdia", "minf", "stbl", "stsd"}, func(b []byte, _ int64) error {
				if _, err := fullBox("stsd", b, 8, 8); err != nil {
					return err
				}
				if n := binary.BigEndian.Uint32(b[4:]); n != 1 {
					return fmt.Errorf("stsd has %d sample entries, want 1", n)
				}
				return walk(b[8:], 0, func(typ string, b []byte, _ int64) error {
					entry = append([]byte(typ), b...)
					return nil
				})
			})
			if err != nil {
				return err
			}
			entries = append(entries, entry)
		}
		return nil
	})
	if err != nil {
		return Params{}, err
	}
	if len(entries) != len(l.tracks) {
		return Params{}, errors.New("a trak has no sample description")
	}
	for i, t := range l.tracks {
		e := entries[i]
		switch {
		case t.handler == "vide" && p.Video == nil:
			if p.Video, err = parseVideoEntry(e, t); err != nil {
				return Params{}, err
			}
		case t.handler == "soun" && p.Audio == nil:
			if p.Audio, err = parseAudioEntry(e, t); err != nil {
				return Params{}, err
			}
		default:
			return Params{}, fmt.Errorf("track %d: a %q track besides the clip's video and audio", t.id, t.handler)
		}
	}
	return p, nil
}

// parseVideoEntry reads the avc1 sample entry e (its type, then its body)
// of track t.
func parseVideoEntry(e []byte, t trackLayout) (*VideoTrack, error) {
	if len(e) < 4 || string(e[:4]) != "avc1" {
		return nil, fmt.Errorf("video track %d is %q, want avc1", t.id, e[:min(len(e), 4)])
	}
	b := e[4:]
	const fields = 78 // VisualSampleEntry's fields before its boxes
	if len(b) < fields {
		return nil, errors.New("avc1 sample entry is truncated")
	}
	v := &VideoTrack{
		Width:  int(binary.BigEndian.Uint16(b[24:])),
		Height: int(binary.BigEndian.Uint16(b[26:])),
	}
	if t.frame.off != 0 {
		v.FrameDuration = duration(uint64(t.nominal), t.timescale)
	}
	var avcC []byte
	err := walk(b[fields:], 0, func(typ string, b []byte, _ int64) error {
		if typ == "avcC" {
			avcC = b
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// The record a Writer makes: version 1, 4-byte lengths, one SPS, one PPS.
	r := avcC
	if len(r) < 8 || r[0] != 1 || r[4]&3 != 3 || r[5]&0x1F != 1 {
		return nil, errors.New("avcC is not one SPS and one PPS with 4-byte NAL unit lengths")
	}
	n := int(binary.BigEndian.Uint16(r[6:]))
	if len(r) < 8+n+3 {
		return nil, errors.New("avcC is truncated")
	}
	v.SPS, r = r[8:8+n], r[8+n:]
	if r[0] != 1 {
		return nil, errors.New("avcC has other than one PPS")
	}
	n = int(binary.BigEndian.Uint16(r[1:]))
	if len(r) < 3+n {
		return nil, errors.New("avcC is truncated")
	}
	v.PPS = r[3 : 3+n]
	// A Writer must give a copy the same record.
	if again, err := avcConfig(v.SPS, v.PPS); err != nil || !bytes.Equal(again, avcC) {
		return nil, errors.New("avcC is not the record a Writer makes of its SPS and PPS")
	}
	return v, nil
}

// parseAudioEntry reads the fLaC or alac sample entry e (its type, then its
// body) of track t.
func parseAudioEntry(e []byte, t trackLayout) (*AudioTrack, error) {
	const fields = 28 // AudioSampleEntry's fields before its boxes
	if len(e) < 4+fields {
		return nil, fmt.Errorf("audio track %d: sample entry is truncated", t.id)
	}
	typ, b := string(e[:4]), e[4:]
	a := &AudioTrack{
		Channels:      int(binary.BigEndian.Uint16(b[16:])),
		BitsPerSample: int(binary.BigEndian.Uint16(b[18:])),
		SampleRate:    int(t.timescale),
	}
	var want string
	switch typ {
	case "fLaC":
		want = "dfLa"
	case "alac":
		want = "alac"
	default:
		return nil, fmt.Errorf("audio track %d is %q, want fLaC or alac", t.id, typ)
	}
	var cfg []byte
	err := walk(b[fields:], 0, func(typ string, b []byte, _ int64) error {
		if typ == want {
			cfg = b
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return nil, fmt.Errorf("%s sample entry has no %s box", typ, want)
	}
	if _, err := fullBox(want, cfg, 4, 4); err != nil || cfg[0] != 0 {
		return nil, fmt.Errorf("%s box is not a version 0 full box", want)
	}
	cfg = cfg[4:]
	if typ == "alac" {
		a.ALACCookie = cfg
	} else {
		// The STREAMINFO block, the only one a Writer puts there.
		if len(cfg) != 4+34 || cfg[0]&0x7F != 0 {
			return nil, errors.New("dfLa box does not hold one STREAMINFO block")
		}
		a.StreamInfo = cfg[4:]
	}
	if err := checkAudio(a); err != nil {
		return nil, err
	}
	return a, nil
}
