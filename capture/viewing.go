package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/mewkiz/flac/frame"

	"mamoru/capture/alac"
	"mamoru/capture/mp4"
)

// ErrBadAudio means a clip's audio cannot be made into a viewing copy: a
// FLAC frame does not decode, or its format is not the one the clip's
// STREAMINFO states, or not one ALAC holds.
var ErrBadAudio = errors.New("capture: the clip's FLAC audio does not decode")

// ErrAlreadyCopy means the clip given to ViewingCopy is a viewing copy
// already: its audio is ALAC.
var ErrAlreadyCopy = errors.New("capture: the clip is already a viewing copy")

// ViewingCopy writes to dst, which must be empty, the viewing copy of the
// clip in the first size bytes of src, and returns the copy's Info.
//
// The copy is the clip with its FLAC audio, which stock Windows players do
// not decode in MP4, re-encoded as ALAC (Apple Lossless), which they and
// Apple's players do: its video samples are the clip's bytes with the
// clip's timing, key frames and parameter sets; each FLAC frame becomes
// one ALAC frame of the same samples, at the same time and for the same
// duration; fragments are the clip's fragments, and the creation time the
// clip's. So the copy's audio decodes to exactly the clip's samples, and
// the copy is a function of the clip alone: the same clip always gives the
// same bytes.
//
// ViewingCopy holds one fragment of the clip and of the copy in memory at
// a time. It returns an error wrapping mp4.ErrNotClip or mp4.ErrUnsupported
// for a file that is not a clip mamoru writes, ErrBadAudio for audio that
// does not decode, and ErrAlreadyCopy for a viewing copy; dst may then hold
// part of a copy, which the caller discards.
func ViewingCopy(dst mp4.File, src io.ReaderAt, size int64) (mp4.Info, error) {
	rd, err := mp4.NewReader(src, size)
	if err != nil {
		return mp4.Info{}, fmt.Errorf("capture: viewing copy: %w", err)
	}
	p := rd.Params()
	var tr *transcoder
	if p.Audio != nil {
		if tr, err = newTranscoder(p.Audio); err != nil {
			return mp4.Info{}, err
		}
		p.Audio = tr.track
	}
	w, err := mp4.NewWriter(dst, p)
	if err != nil {
		return mp4.Info{}, fmt.Errorf("capture: viewing copy: %w", err)
	}
	for n := 1; ; n++ {
		video, audio, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return mp4.Info{}, fmt.Errorf("capture: viewing copy: %w", err)
		}
		if len(audio) > 0 {
			if audio, err = tr.transcode(audio); err != nil {
				return mp4.Info{}, fmt.Errorf("capture: viewing copy: fragment %d: %w", n, err)
			}
		}
		if err := w.WriteFragment(video, audio); err != nil {
			return mp4.Info{}, fmt.Errorf("capture: viewing copy: %w", err)
		}
	}
	if err := w.Finalize(); err != nil {
		return mp4.Info{}, fmt.Errorf("capture: viewing copy: %w", err)
	}
	return w.Info(), nil
}

// transcoder turns a clip's FLAC frames into ALAC frames of the same
// samples. Its buffers are reused from fragment to fragment.
type transcoder struct {
	flac   *mp4.AudioTrack // the clip's
	track  *mp4.AudioTrack // the copy's
	enc    *alac.Encoder
	pcm    []int32      // one frame's interleaved samples
	out    []byte       // the fragment's ALAC frames, back to back
	ends   []int        // where each frame ends in out
	copied []mp4.Sample // the fragment's ALAC samples
	src    bytes.Reader
}

func newTranscoder(a *mp4.AudioTrack) (*transcoder, error) {
	if a.ALACCookie != nil {
		return nil, ErrAlreadyCopy
	}
	// STREAMINFO: the largest block size is bytes 2-3.
	maxBlock := int(binary.BigEndian.Uint16(a.StreamInfo[2:]))
	enc, err := alac.NewEncoder(alac.Format{
		SampleRate:  a.SampleRate,
		Channels:    a.Channels,
		BitDepth:    a.BitsPerSample,
		FrameLength: max(alac.DefaultFrameLength, maxBlock),
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadAudio, err)
	}
	return &transcoder{
		flac: a,
		track: &mp4.AudioTrack{
			SampleRate:    a.SampleRate,
			Channels:      a.Channels,
			BitsPerSample: a.BitsPerSample,
			ALACCookie:    enc.Cookie(),
		},
		enc: enc,
	}, nil
}

// transcode returns the ALAC samples of the FLAC samples s, valid until the
// next call.
func (t *transcoder) transcode(s []mp4.Sample) ([]mp4.Sample, error) {
	t.out, t.ends, t.copied = t.out[:0], t.ends[:0], t.copied[:0]
	for i, x := range s {
		if err := t.decode(x.Data); err != nil {
			return nil, fmt.Errorf("audio sample %d at %v: %w", i, x.Time, err)
		}
		var err error
		if t.out, err = t.enc.Encode(t.out, t.pcm); err != nil {
			return nil, fmt.Errorf("audio sample %d at %v: %w: %w", i, x.Time, ErrBadAudio, err)
		}
		t.ends = append(t.ends, len(t.out))
	}
	start := 0
	for i, x := range s {
		x.Data = t.out[start:t.ends[i]]
		start = t.ends[i]
		t.copied = append(t.copied, x)
	}
	return t.copied, nil
}

// decode decodes the FLAC frame b into t.pcm, interleaved.
func (t *transcoder) decode(b []byte) (err error) {
	// mewkiz/flac parses bytes from outside; whatever it does with damaged
	// ones, the caller hears of bad audio, not a crash (FuzzDecodeFLAC
	// found no panic; this is the net under it).
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: the FLAC decoder failed: %v", ErrBadAudio, p)
		}
	}()
	a := t.flac
	t.src.Reset(b)
	f, err := frame.New(&t.src)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadAudio, err)
	}
	// A header may leave the depth and rate to STREAMINFO (code 0).
	if f.BitsPerSample == 0 {
		f.BitsPerSample = uint8(a.BitsPerSample)
	}
	switch {
	case int(f.BitsPerSample) != a.BitsPerSample:
		return fmt.Errorf("%w: a frame of %d bits a sample in a clip of %d", ErrBadAudio, f.BitsPerSample, a.BitsPerSample)
	case f.SampleRate != 0 && int(f.SampleRate) != a.SampleRate:
		return fmt.Errorf("%w: a frame at %d Hz in a clip at %d Hz", ErrBadAudio, f.SampleRate, a.SampleRate)
	case f.Channels.Count() != a.Channels:
		return fmt.Errorf("%w: a frame of %d channels in a clip of %d", ErrBadAudio, f.Channels.Count(), a.Channels)
	}
	if err := f.Parse(); err != nil {
		return fmt.Errorf("%w: %w", ErrBadAudio, err)
	}
	if t.src.Len() != 0 {
		return fmt.Errorf("%w: %d bytes after the frame in its sample", ErrBadAudio, t.src.Len())
	}
	n, ch := int(f.BlockSize), a.Channels
	for _, sf := range f.Subframes {
		if len(sf.Samples) != n {
			return fmt.Errorf("%w: a subframe of %d samples in a block of %d", ErrBadAudio, len(sf.Samples), n)
		}
	}
	t.pcm = t.pcm[:0]
	for i := range n {
		for c := range ch {
			t.pcm = append(t.pcm, f.Subframes[c].Samples[i])
		}
	}
	return nil
}
