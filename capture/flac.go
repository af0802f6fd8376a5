package capture

import (
	"bytes"
	"fmt"

	"github.com/mewkiz/flac"
	"github.com/mewkiz/flac/frame"
	"github.com/mewkiz/flac/meta"
)

// flacEncoder turns blocks of 16-bit PCM into FLAC frames, one MP4 audio
// sample each. FLAC is lossless, which is what evidence should be, and
// github.com/mewkiz/flac is pure Go, so arm builds need no C codec.
type flacEncoder struct {
	enc        *flac.Encoder
	out        bytes.Buffer
	frame      frame.Frame
	subframes  []frame.Subframe
	streamInfo []byte
	block      int
}

// newFLACEncoder returns an encoder for blocks of exactly block samples per
// channel.
func newFLACEncoder(rate, channels, block int) (*flacEncoder, error) {
	e := &flacEncoder{block: block, subframes: make([]frame.Subframe, channels)}
	info := &meta.StreamInfo{
		BlockSizeMin:  uint16(block),
		BlockSizeMax:  uint16(block),
		SampleRate:    uint32(rate),
		NChannels:     uint8(channels),
		BitsPerSample: 16,
	}
	enc, err := flac.NewEncoder(&e.out, info)
	if err != nil {
		return nil, fmt.Errorf("capture: flac encoder: %w", err)
	}
	// The encoder wrote "fLaC", the 4-byte metadata block header and the
	// 34-byte STREAMINFO: keep the STREAMINFO for the MP4 dfLa box.
	head := e.out.Bytes()
	if len(head) != 4+4+34 {
		return nil, fmt.Errorf("capture: flac encoder wrote a %d-byte header, want 42", len(head))
	}
	e.streamInfo = bytes.Clone(head[8:])
	e.out.Reset()
	e.enc = enc

	chans := frame.ChannelsMono
	if channels == 2 {
		chans = frame.ChannelsLR
	}
	e.frame.Header = frame.Header{
		HasFixedBlockSize: true,
		BlockSize:         uint16(block),
		SampleRate:        uint32(rate),
		Channels:          chans,
		BitsPerSample:     16,
	}
	e.frame.Subframes = make([]*frame.Subframe, channels)
	for i := range e.subframes {
		e.subframes[i].Samples = make([]int32, block)
		e.subframes[i].NSamples = block
		e.frame.Subframes[i] = &e.subframes[i]
	}
	return e, nil
}

// StreamInfo returns the 34-byte FLAC STREAMINFO block body.
func (e *flacEncoder) StreamInfo() []byte { return e.streamInfo }

// Encode encodes one block of interleaved samples (block × channels of
// them) and returns the FLAC frame. The result is valid until the next call.
func (e *flacEncoder) Encode(pcm []int16) ([]byte, error) {
	ch := len(e.subframes)
	if len(pcm) != e.block*ch {
		return nil, fmt.Errorf("capture: flac block of %d samples, want %d", len(pcm), e.block*ch)
	}
	for c := range e.subframes {
		sf := &e.subframes[c]
		sf.SubHeader = frame.SubHeader{Pred: frame.PredVerbatim}
		for i := range e.block {
			sf.Samples[i] = int32(pcm[i*ch+c])
		}
	}
	e.out.Reset()
	if err := e.enc.WriteFrame(&e.frame); err != nil {
		return nil, fmt.Errorf("capture: flac encode: %w", err)
	}
	return e.out.Bytes(), nil
}
