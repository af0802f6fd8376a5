package mp4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// layout is what patching durations and reading fragments need to know of a
// clip's moov. The Writer gets it by parsing the moov it built, Recover by
// parsing the moov it finds, so both patch the same way.
type layout struct {
	timescale uint32 // movie timescale, from mvhd
	mvhd      field
	mehd      field // off == 0 when the moov has no mehd
	tracks    []trackLayout
}

// trackLayout describes one trak of a moov and its trex.
type trackLayout struct {
	id        uint32
	handler   string // "vide", "soun", ...
	timescale uint32
	tkhd      field
	mdhd      field
	// defaultDuration, defaultSize and defaultFlags come from the track's trex.
	defaultDuration, defaultSize, defaultFlags uint32
	// frame is the delta of an stts holding one entry of no samples, which
	// states the frame rate (off == 0 when the stts is otherwise), and
	// nominal the delta found there.
	frame   field
	nominal uint32
}

// field is the file offset of a duration field, 8 bytes wide in a version 1
// box and 4 bytes otherwise.
type field struct {
	off  int64
	wide bool
}

// progress is what the fragments written so far hold for one track.
type progress struct {
	samples int
	// start is the decode time of the first sample and end the time the last
	// sample ends, both in track ticks. end only grows.
	start, end uint64
	// timing is kept for a track that states a frame rate.
	timing
}

// walkPath calls fn with the body and body's file offset of each box in b
// (at file offset off) found at path, a box type for each level down.
func walkPath(b []byte, off int64, path []string, fn func(body []byte, at int64) error) error {
	return walk(b, off, func(typ string, body []byte, at int64) error {
		switch {
		case typ != path[0]:
			return nil
		case len(path) == 1:
			return fn(body, at)
		}
		return walkPath(body, at, path[1:], fn)
	})
}

// walk calls fn with the type, body and body's file offset of each box in b,
// which starts at file offset off. A size of 0 means "to the end of b".
// Fewer than 8 bytes after the last box are ignored, as some muxers end a
// container with a 4-byte zero terminator.
func walk(b []byte, off int64, fn func(typ string, body []byte, at int64) error) error {
	for i := 0; len(b)-i >= 8; {
		rest := b[i:]
		size, hdr := uint64(binary.BigEndian.Uint32(rest)), 8
		switch size {
		case 0:
			size = uint64(len(rest))
		case 1:
			if len(rest) < 16 {
				return errors.New("truncated box header")
			}
			size, hdr = binary.BigEndian.Uint64(rest[8:]), 16
		}
		if size < uint64(hdr) || size > uint64(len(rest)) {
			return fmt.Errorf("%q box size %d does not fit", rest[4:8], size)
		}
		if err := fn(string(rest[4:8]), rest[hdr:size], off+int64(i+hdr)); err != nil {
			return err
		}
		i += int(size)
	}
	return nil
}

// fullBox checks that body, the body of a FullBox of type typ, has version 0
// or 1 and at least n0 (version 0) or n1 (version 1) bytes, and reports
// whether it has version 1.
func fullBox(typ string, body []byte, n0, n1 int) (v1 bool, err error) {
	if len(body) < 4 {
		return false, fmt.Errorf("%s box is truncated", typ)
	}
	n := n0
	switch body[0] {
	case 0:
	case 1:
		v1, n = true, n1
	default:
		return false, fmt.Errorf("%s box has unknown version %d", typ, body[0])
	}
	if len(body) < n {
		return false, fmt.Errorf("%s box is truncated", typ)
	}
	return v1, nil
}

// timedHeader parses the body of an mvhd or mdhd box, which share their
// first fields, and returns its timescale and duration field.
func timedHeader(typ string, body []byte, at int64) (uint32, field, error) {
	v1, err := fullBox(typ, body, 20, 32)
	if err != nil {
		return 0, field{}, err
	}
	var ts uint32
	var f field
	if v1 {
		ts, f = binary.BigEndian.Uint32(body[20:]), field{at + 24, true}
	} else {
		ts, f = binary.BigEndian.Uint32(body[12:]), field{at + 16, false}
	}
	if ts == 0 {
		return 0, field{}, fmt.Errorf("%s box has timescale 0", typ)
	}
	return ts, f, nil
}

// parseMoov parses body, the body of a moov box at file offset at.
func parseMoov(body []byte, at int64) (layout, error) {
	var l layout
	var mvex bool
	type trex struct{ id, duration, size, flags uint32 }
	var trexes []trex
	err := walk(body, at, func(typ string, b []byte, at int64) error {
		switch typ {
		case "mvhd":
			ts, f, err := timedHeader(typ, b, at)
			l.timescale, l.mvhd = ts, f
			return err
		case "trak":
			t, err := parseTrak(b, at)
			l.tracks = append(l.tracks, t)
			return err
		case "mvex":
			mvex = true
			return walk(b, at, func(typ string, b []byte, at int64) error {
				switch typ {
				case "mehd":
					v1, err := fullBox(typ, b, 8, 12)
					l.mehd = field{at + 4, v1}
					return err
				case "trex":
					if _, err := fullBox(typ, b, 24, 24); err != nil {
						return err
					}
					trexes = append(trexes, trex{
						id:       binary.BigEndian.Uint32(b[4:]),
						duration: binary.BigEndian.Uint32(b[12:]),
						size:     binary.BigEndian.Uint32(b[16:]),
						flags:    binary.BigEndian.Uint32(b[20:]),
					})
				}
				return nil
			})
		}
		return nil
	})
	switch {
	case err != nil:
		return layout{}, err
	case l.timescale == 0:
		return layout{}, errors.New("moov has no mvhd")
	case !mvex:
		return layout{}, errors.New("moov has no mvex: the file is not fragmented")
	case len(l.tracks) == 0:
		return layout{}, errors.New("moov has no tracks")
	}
	for i, t := range l.tracks {
		for _, u := range l.tracks[:i] {
			if t.id == u.id {
				return layout{}, fmt.Errorf("moov has two tracks with ID %d", t.id)
			}
		}
		for _, x := range trexes {
			if x.id == t.id {
				l.tracks[i].defaultDuration, l.tracks[i].defaultSize, l.tracks[i].defaultFlags = x.duration, x.size, x.flags
			}
		}
	}
	return l, nil
}

// parseTrak parses body, the body of a trak box at file offset at.
func parseTrak(body []byte, at int64) (trackLayout, error) {
	var t trackLayout
	err := walk(body, at, func(typ string, b []byte, at int64) error {
		switch typ {
		case "tkhd":
			v1, err := fullBox(typ, b, 24, 36)
			if err != nil {
				return err
			}
			if v1 {
				t.id, t.tkhd = binary.BigEndian.Uint32(b[20:]), field{at + 28, true}
			} else {
				t.id, t.tkhd = binary.BigEndian.Uint32(b[12:]), field{at + 20, false}
			}
		case "mdia":
			return walk(b, at, func(typ string, b []byte, at int64) error {
				switch typ {
				case "mdhd":
					ts, f, err := timedHeader(typ, b, at)
					t.timescale, t.mdhd = ts, f
					return err
				case "hdlr":
					if _, err := fullBox(typ, b, 12, 12); err != nil {
						return err
					}
					t.handler = string(b[8:12])
				case "minf":
					return walkPath(b, at, []string{"stbl", "stts"}, func(b []byte, at int64) error {
						if _, err := fullBox("stts", b, 4, 4); err != nil {
							return err
						}
						// One entry of no samples states the frame rate.
						if len(b) >= 16 && binary.BigEndian.Uint32(b[4:]) == 1 && binary.BigEndian.Uint32(b[8:]) == 0 {
							t.frame, t.nominal = field{at + 12, false}, binary.BigEndian.Uint32(b[12:])
						}
						return nil
					})
				}
				return nil
			})
		}
		return nil
	})
	switch {
	case err != nil:
		return t, err
	case t.id == 0:
		return t, errors.New("trak has no tkhd or track ID 0")
	case t.timescale == 0:
		return t, fmt.Errorf("track %d has no mdhd", t.id)
	case t.handler == "":
		return t, fmt.Errorf("track %d has no hdlr", t.id)
	}
	return t, nil
}

// run is what one traf of a moof adds to its track.
type run struct {
	track   int // index in layout.tracks
	tfdt    uint64
	hasTfdt bool
	samples int
	ticks   uint64 // sum of sample durations
	// durs are the samples' durations, for a track that states a frame
	// rate; unknown is set if a trun gave them the default duration.
	durs    []uint32
	unknown bool
}

// fragment is what a moof holds.
type fragment struct {
	runs []run
	// lo and hi bound the sample data the moof refers to (file offsets, hi
	// exclusive); lo > hi when it refers to none.
	lo, hi int64
}

// parseMoof parses body, the body of a moof box that starts at file offset
// moof, for a clip whose moov is described by l. Sample data must lie within
// the first limit bytes of the file.
func parseMoof(body []byte, at, moof, limit int64, l *layout) (fragment, error) {
	fr := fragment{lo: math.MaxInt64, hi: 0}
	next := moof // where the data of a traf without an explicit base starts
	err := walk(body, at, func(typ string, b []byte, at int64) error {
		if typ != "traf" {
			return nil
		}
		r, end, err := parseTraf(b, at, moof, next, limit, l, &fr)
		fr.runs = append(fr.runs, r)
		next = end
		return err
	})
	return fr, err
}

// parseTraf parses body, the body of a traf box at file offset at, adding
// the data it refers to to fr's bounds. implicit is the data base when the
// tfhd names none. It returns the end of the traf's data.
func parseTraf(body []byte, at, moof, implicit, limit int64, l *layout, fr *fragment) (run, int64, error) {
	r := run{track: -1}
	var defDuration, defSize uint32
	var data int64 // where the next trun's data starts when it has no data_offset
	base := implicit
	err := walk(body, at, func(typ string, b []byte, at int64) error {
		switch typ {
		case "tfhd":
			if r.track >= 0 {
				return errors.New("traf has two tfhd boxes")
			}
			if _, err := fullBox(typ, b, 8, 8); err != nil {
				return err
			}
			flags := binary.BigEndian.Uint32(b) & 0xFFFFFF
			id := binary.BigEndian.Uint32(b[4:])
			for i, t := range l.tracks {
				if t.id == id {
					r.track = i
					defDuration, defSize = t.defaultDuration, t.defaultSize
				}
			}
			if r.track < 0 {
				return fmt.Errorf("traf refers to unknown track %d", id)
			}
			need := 8
			for _, f := range [...]struct {
				flag uint32
				n    int
			}{{0x01, 8}, {0x02, 4}, {0x08, 4}, {0x10, 4}, {0x20, 4}} {
				if flags&f.flag != 0 {
					need += f.n
				}
			}
			if len(b) < need {
				return errors.New("tfhd box is truncated")
			}
			p := b[8:]
			if flags&0x01 != 0 {
				off := binary.BigEndian.Uint64(p)
				if off > uint64(limit) {
					return fmt.Errorf("tfhd base data offset %d is past the end of the file", off)
				}
				base, p = int64(off), p[8:]
			} else if flags&0x020000 != 0 { // default-base-is-moof
				base = moof
			}
			if flags&0x02 != 0 { // sample_description_index
				p = p[4:]
			}
			if flags&0x08 != 0 {
				defDuration, p = binary.BigEndian.Uint32(p), p[4:]
			}
			if flags&0x10 != 0 {
				defSize = binary.BigEndian.Uint32(p)
			}
			data = base
		case "tfdt":
			v1, err := fullBox(typ, b, 8, 12)
			if err != nil {
				return err
			}
			r.hasTfdt = true
			if v1 {
				r.tfdt = binary.BigEndian.Uint64(b[4:])
			} else {
				r.tfdt = uint64(binary.BigEndian.Uint32(b[4:]))
			}
		case "trun":
			if r.track < 0 {
				return errors.New("trun before tfhd")
			}
			var keep *[]uint32
			if l.tracks[r.track].frame.off != 0 {
				keep = &r.durs
			}
			tr, err := parseTrun(b, defDuration, defSize, keep)
			if err != nil {
				return err
			}
			r.unknown = r.unknown || keep != nil && !tr.each
			start := data
			if tr.hasOff {
				start = base + int64(tr.off)
			}
			if start < 0 || start > limit || tr.size > uint64(limit-start) {
				return fmt.Errorf("trun data at %d, %d bytes, is outside the file", start, tr.size)
			}
			data = start + int64(tr.size)
			if tr.n > 0 {
				fr.lo, fr.hi = min(fr.lo, start), max(fr.hi, data)
			}
			r.samples += tr.n
			r.ticks += tr.dur
		}
		return nil
	})
	if err == nil && r.track < 0 {
		err = errors.New("traf has no tfhd")
	}
	return r, data, err
}

// trunSums is what one trun box holds.
type trunSums struct {
	n         int    // samples
	dur, size uint64 // sums of the sample durations and sizes
	off       int32  // data_offset, if hasOff
	hasOff    bool
	each      bool // each sample has its own duration
}

// parseTrun parses the body of a trun box whose track's default sample
// duration and size are defDuration and defSize. If keep is not nil, it
// appends the samples' own durations to it.
func parseTrun(b []byte, defDuration, defSize uint32, keep *[]uint32) (trunSums, error) {
	var t trunSums
	if _, err := fullBox("trun", b, 8, 8); err != nil {
		return t, err
	}
	flags := binary.BigEndian.Uint32(b) & 0xFFFFFF
	count := binary.BigEndian.Uint32(b[4:])
	p := b[8:]
	if flags&0x01 != 0 {
		if len(p) < 4 {
			return t, errors.New("trun box is truncated")
		}
		t.off, t.hasOff, p = int32(binary.BigEndian.Uint32(p)), true, p[4:]
	}
	if flags&0x04 != 0 { // first_sample_flags
		if len(p) < 4 {
			return t, errors.New("trun box is truncated")
		}
		p = p[4:]
	}
	entry := 0
	for _, f := range [...]uint32{0x100, 0x200, 0x400, 0x800} {
		if flags&f != 0 {
			entry += 4
		}
	}
	if uint64(count)*uint64(entry) > uint64(len(p)) {
		return t, fmt.Errorf("trun box is too short for %d samples", count)
	}
	t.n, t.each = int(count), flags&0x100 != 0
	if !t.each {
		t.dur = uint64(count) * uint64(defDuration)
	}
	if flags&0x200 == 0 {
		t.size = uint64(count) * uint64(defSize)
	}
	if entry > 0 {
		for i := range t.n {
			e := p[i*entry:]
			if flags&0x100 != 0 {
				d := binary.BigEndian.Uint32(e)
				t.dur += uint64(d)
				if keep != nil {
					*keep = append(*keep, d)
				}
				e = e[4:]
			}
			if flags&0x200 != 0 {
				t.size += uint64(binary.BigEndian.Uint32(e))
			}
		}
	}
	return t, nil
}

// patch writes the durations that prog implies into the moov of a clip laid
// out as l. Each track's tkhd and mdhd get the span of its samples, from the
// start of the first to the end of the last, which is how demuxers such as
// FFmpeg read them: the track's own start comes from its first tfdt. mvhd
// and mehd get the time from 0 to the end of the track that ends last.
func (l *layout) patch(w io.WriterAt, prog []progress) error {
	var movie uint64
	anchor := l.firstSample(prog)
	for i := range l.tracks {
		t := &l.tracks[i]
		p := prog[i]
		movie = max(movie, rescale(p.end, uint64(t.timescale), uint64(l.timescale)))
		span := p.end - p.start
		if err := writeField(w, t.tkhd, rescale(span, uint64(t.timescale), uint64(l.timescale))); err != nil {
			return err
		}
		if err := writeField(w, t.mdhd, span); err != nil {
			return err
		}
		if t.frame.off != 0 {
			frame := p.frameFor(t.nominal, rescale(anchor, uint64(time.Second), uint64(t.timescale)))
			if err := writeField(w, t.frame, uint64(frame)); err != nil {
				return err
			}
			t.nominal = frame // what the clip states now
		}
	}
	if err := writeField(w, l.mvhd, movie); err != nil {
		return err
	}
	if l.mehd.off != 0 {
		return writeField(w, l.mehd, movie)
	}
	return nil
}

// writeField writes v into f, saturating a 4-byte field at 0xFFFFFFFF.
func writeField(w io.WriterAt, f field, v uint64) error {
	var b [8]byte
	p := b[:8]
	if f.wide {
		binary.BigEndian.PutUint64(p, v)
	} else {
		p = b[:4]
		binary.BigEndian.PutUint32(p, uint32(min(v, math.MaxUint32)))
	}
	_, err := w.WriteAt(p, f.off)
	return err
}

// info summarises a clip laid out as l whose fragments hold prog.
func (l *layout) info(prog []progress, fragments int, size int64) Info {
	in := Info{Fragments: fragments, Size: size}
	var video, audio bool
	for i, t := range l.tracks {
		p := prog[i]
		ti := TrackInfo{Samples: p.samples}
		if p.samples > 0 {
			ti.Start = duration(p.start, t.timescale)
			ti.Duration = duration(p.end-p.start, t.timescale)
		}
		if t.frame.off != 0 {
			ti.FrameDuration = duration(uint64(t.nominal), t.timescale)
		}
		in.Duration = max(in.Duration, duration(p.end, t.timescale))
		switch {
		case t.handler == "vide" && !video:
			in.Video, video = ti, true
		case t.handler == "soun" && !audio:
			in.Audio, audio = ti, true
		}
	}
	return in
}

// add applies r to p, reporting false if r starts before p ends.
func (p *progress) add(r run) bool {
	start := p.end
	if r.hasTfdt {
		start = r.tfdt
	}
	if start < p.end || start+r.ticks < start {
		return false
	}
	if r.samples == 0 {
		return true
	}
	if p.samples == 0 {
		p.start = start
	}
	p.samples += r.samples
	p.end = start + r.ticks
	p.timing.add(start, r.samples, r.durs, r.unknown)
	return true
}
