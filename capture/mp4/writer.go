package mp4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// writeChunk is the most a Writer buffers before writing to its file.
const writeChunk = 256 << 10

// A Writer writes one clip as a fragmented MP4 file.
//
// A Writer is not safe for concurrent use: call its methods from one
// goroutine. After a write or sync error the Writer is broken and every
// later call returns that error; the file then still holds every fragment
// written before the failure, and Recover can make it playable.
type Writer struct {
	f      File
	lay    layout
	prog   []progress // per track of lay
	vi, ai int        // indexes of the video and audio track in lay, or -1
	alac   bool       // the audio is ALAC, not FLAC

	size      int64    // bytes written
	fragments int      // fragments written
	e         boxes    // fragment buffer, reused
	durs      []uint32 // sample durations of the fragment being built, reused
	finalized bool
	err       error // sticky
}

// NewWriter writes the init segment of a clip described by p to f and syncs
// f. f must be empty; the clip starts at offset 0. The caller keeps f open
// until it is done with the Writer and closes it afterwards. NewWriter keeps
// no reference to p or the slices in it.
func NewWriter(f File, p Params) (*Writer, error) {
	init, err := buildInit(p)
	if err != nil {
		return nil, err
	}
	// The moov follows the ftyp and runs to the end of init; its body starts
	// after its 8-byte header.
	body := int(binary.BigEndian.Uint32(init)) + 8
	lay, err := parseMoov(init[body:], int64(body))
	if err != nil {
		return nil, fmt.Errorf("mp4: built a moov it cannot parse: %w", err)
	}
	w := &Writer{f: f, lay: lay, vi: -1, ai: -1, alac: p.Audio != nil && p.Audio.ALACCookie != nil}
	w.prog = make([]progress, len(w.lay.tracks))
	for i, t := range w.lay.tracks {
		switch t.handler {
		case "vide":
			w.vi = i
		case "soun":
			w.ai = i
		}
	}
	if _, err := f.Write(init); err != nil {
		return nil, fmt.Errorf("mp4: write init segment: %w", err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("mp4: sync init segment: %w", err)
	}
	w.size = int64(len(init))
	return w, nil
}

// WriteFragment appends one fragment (a moof box and an mdat box holding the
// video samples, then the audio samples) and syncs the file. Either slice
// may be empty; if both are, WriteFragment does nothing. It keeps no
// reference to the samples.
//
// Samples of a track must be in increasing Time order. In the track's ticks
// (1/900000 s for video, 1/SampleRate s for audio), sample i of a slice lasts
// from ticks(Time[i]) to ticks(Time[i+1]), and the last sample of the slice
// from ticks(Time) to ticks(Time+Duration), where ticks rounds to the
// nearest tick. So the Duration of every sample but the last is ignored: a
// gap before a sample lengthens the sample before it, and rounding never
// accumulates. The fragment's tfdt is ticks(Time) of the first sample, unless
// that is before the end of the track's previous fragment, in which case the
// first sample starts where the previous fragment ended. A sample must last
// at least one tick.
//
// The first video sample of a clip must be a key frame. Video Data must be
// AVCC (4-byte lengths) and audio Data must start with a FLAC frame sync code
// or, in a clip of ALAC audio, with an ALAC channel element.
// WriteFragment returns an error, writing nothing, for samples that break
// these rules, for samples of a track the clip does not have, and after
// Finalize.
func (w *Writer) WriteFragment(video, audio []Sample) error {
	if w.err != nil {
		return w.err
	}
	if w.finalized {
		return errors.New("mp4: write fragment: clip is finalized")
	}
	if len(video) == 0 && len(audio) == 0 {
		return nil
	}
	w.durs = w.durs[:0]
	vp, err := w.plan("video", w.vi, video)
	if err != nil {
		return err
	}
	ap, err := w.plan("audio", w.ai, audio)
	if err != nil {
		return err
	}
	if uint64(vp.bytes)+uint64(ap.bytes) > math.MaxUint32-8 { // on 32-bit arm too
		return errors.New("mp4: write fragment: samples exceed 4 GiB")
	}

	e := &w.e
	e.b = e.b[:0]
	moof := e.open("moof")
	at := e.openFull("mfhd", 0, 0)
	e.u32(uint32(w.fragments + 1)) // sequence_number
	e.close(at)
	vOff := w.traf(w.vi, vp, video, w.durs[:len(video)])
	aOff := w.traf(w.ai, ap, audio, w.durs[len(video):])
	e.close(moof)
	data := len(e.b) + 8 // mdat payload, relative to the moof (default-base-is-moof)
	if vOff >= 0 {
		e.put32(vOff, uint32(data))
	}
	if aOff >= 0 {
		e.put32(aOff, uint32(data+vp.bytes))
	}
	e.u32(uint32(8 + vp.bytes + ap.bytes))
	e.str("mdat")
	// The samples go out through the buffer in writeChunk pieces, so a
	// pre-roll of many megabytes is not copied whole: the caller's frames
	// are the only full copy.
	var written int
	put := func(data []byte) error {
		if len(e.b)+len(data) > writeChunk && len(e.b) > 0 {
			if _, err := w.f.Write(e.b); err != nil {
				return err
			}
			written += len(e.b)
			e.b = e.b[:0]
		}
		if len(data) > writeChunk {
			n, err := w.f.Write(data)
			written += n
			return err
		}
		e.b = append(e.b, data...)
		return nil
	}
	for i := 0; i < len(video) && err == nil; i++ {
		err = put(video[i].Data)
	}
	for i := 0; i < len(audio) && err == nil; i++ {
		err = put(audio[i].Data)
	}
	if err == nil {
		_, err = w.f.Write(e.b)
		written += len(e.b)
	}
	if err != nil {
		w.err = fmt.Errorf("mp4: write fragment %d: %w", w.fragments+1, err)
		return w.err
	}
	if err := w.f.Sync(); err != nil {
		w.err = fmt.Errorf("mp4: sync fragment %d: %w", w.fragments+1, err)
		return w.err
	}
	w.size += int64(written)
	w.fragments++
	w.commit(w.vi, vp, w.durs[:len(video)])
	w.commit(w.ai, ap, w.durs[len(video):])
	return nil
}

// plan is how one track's samples fit into a fragment.
type plan struct {
	start, end uint64 // ticks
	bytes      int
}

// plan checks the samples s of one track (kind "video" or "audio", index ti
// in w.lay or -1), appends their durations in ticks to w.durs and returns
// where they go.
func (w *Writer) plan(kind string, ti int, s []Sample) (plan, error) {
	if len(s) == 0 {
		return plan{}, nil
	}
	if ti < 0 {
		return plan{}, fmt.Errorf("mp4: write fragment: %s samples for a clip without %s", kind, kind)
	}
	for i := range s {
		if s[i].Time < 0 {
			return plan{}, fmt.Errorf("mp4: %s sample %d: negative time %v", kind, i, s[i].Time)
		}
	}
	last := len(s) - 1
	if d := s[last].Duration; d <= 0 || d > math.MaxInt64-s[last].Time {
		return plan{}, fmt.Errorf("mp4: %s sample %d: duration %v is not positive or overflows", kind, last, d)
	}
	p := w.prog[ti]
	if kind == "video" && p.samples == 0 && !s[0].Key {
		return plan{}, errors.New("mp4: video sample 0: the first video sample of a clip must be a key frame")
	}
	scale := w.lay.tracks[ti].timescale
	pl := plan{start: max(ticks(s[0].Time, scale), p.end)}
	at := pl.start
	for i := range s {
		var end uint64
		if i < last {
			end = ticks(s[i+1].Time, scale)
		} else {
			end = ticks(s[i].Time+s[i].Duration, scale)
		}
		if end <= at {
			return plan{}, fmt.Errorf("mp4: %s sample %d: ends no later than it starts (times must increase by at least one tick)", kind, i)
		}
		if end-at > math.MaxUint32 {
			return plan{}, fmt.Errorf("mp4: %s sample %d: lasts longer than 2^32 ticks", kind, i)
		}
		if err := checkData(kind, w.alac, s[i].Data); err != nil {
			return plan{}, fmt.Errorf("mp4: %s sample %d: %w", kind, i, err)
		}
		w.durs = append(w.durs, uint32(end-at))
		pl.bytes += len(s[i].Data)
		at = end
	}
	pl.end = at
	return pl, nil
}

// checkData reports whether b looks like the data of one sample of kind, in
// a clip whose audio is ALAC if alac is set.
func checkData(kind string, alac bool, b []byte) error {
	if len(b) == 0 {
		return errors.New("no data")
	}
	if uint64(len(b)) > math.MaxUint32 {
		return errors.New("data exceeds 4 GiB")
	}
	if kind == "audio" && alac {
		// The frame's first element: SCE (0), CPE (1) or LFE (3).
		if tag := b[0] >> 5; tag != 0 && tag != 1 && tag != 3 {
			return fmt.Errorf("data does not start with an ALAC channel element (tag %d)", tag)
		}
		return nil
	}
	if kind == "audio" {
		if len(b) < 2 || b[0] != 0xFF || b[1]&0xFE != 0xF8 {
			return errors.New("data does not start with a FLAC frame sync code")
		}
		return nil
	}
	for len(b) > 0 {
		if len(b) < 4 {
			return errors.New("data is not AVCC: trailing bytes after the last NAL unit")
		}
		n := binary.BigEndian.Uint32(b)
		if n == 0 || uint64(n) > uint64(len(b)-4) {
			return fmt.Errorf("data is not AVCC: NAL unit length %d does not fit", n)
		}
		b = b[4+n:]
	}
	return nil
}

// traf appends the traf box of track ti holding samples s, which last durs
// ticks and are placed as pl says, and returns the offset of its trun's
// data_offset field in w.e, or -1 if s is empty.
func (w *Writer) traf(ti int, pl plan, s []Sample, durs []uint32) int {
	if len(s) == 0 {
		return -1
	}
	e := &w.e
	traf := e.open("traf")
	at := e.openFull("tfhd", 0, 0x020000) // default-base-is-moof
	e.u32(w.lay.tracks[ti].id)
	e.close(at)
	at = e.openFull("tfdt", 1, 0)
	e.u64(pl.start)
	e.close(at)
	// data-offset, sample-duration, sample-size and sample-flags present
	trun := e.openFull("trun", 0, 0x000701)
	e.u32(uint32(len(s)))
	off := len(e.b)
	e.u32(0) // data_offset, set once the moof's size is known
	for i := range s {
		flags := uint32(flagsSync)
		if ti == w.vi && !s[i].Key {
			flags = flagsNonSync
		}
		e.u32(durs[i])
		e.u32(uint32(len(s[i].Data)))
		e.u32(flags)
	}
	e.close(trun)
	e.close(traf)
	return off
}

// commit records that samples lasting durs, placed as pl, were written to
// track ti.
func (w *Writer) commit(ti int, pl plan, durs []uint32) {
	if len(durs) == 0 {
		return
	}
	r := run{tfdt: pl.start, hasTfdt: true, samples: len(durs), ticks: pl.end - pl.start}
	if w.lay.tracks[ti].frame.off != 0 {
		r.durs = durs
	}
	w.prog[ti].add(r)
}

// Finalize writes the durations of the clip into its moov with WriteAt and
// syncs the file: Info().Duration into mvhd and mehd, each track's
// TrackInfo.Duration into its tkhd and mdhd, and the frame rate chosen from
// the video's frames (Info().Video.FrameDuration) into its stts. The Writer
// writes nothing more afterwards; the caller closes the file. Calling Finalize twice is an error.
func (w *Writer) Finalize() error {
	if w.err != nil {
		return w.err
	}
	if w.finalized {
		return errors.New("mp4: finalize: clip is already finalized")
	}
	if err := w.lay.patch(w.f, w.prog); err != nil {
		w.err = fmt.Errorf("mp4: finalize: %w", err)
		return w.err
	}
	if err := w.f.Sync(); err != nil {
		w.err = fmt.Errorf("mp4: finalize: sync: %w", err)
		return w.err
	}
	w.finalized = true
	return nil
}

// Info describes the clip as written so far.
func (w *Writer) Info() Info {
	return w.lay.info(w.prog, w.fragments, w.size)
}
