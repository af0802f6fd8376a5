package capture

import (
	"fmt"

	"mamoru/capture/flac"
)

// flacEncoder turns blocks of 16-bit PCM into FLAC frames, one MP4 audio
// sample each. FLAC is lossless, which is what evidence should be, and
// capture/flac is pure Go, so arm builds need no C codec; it allocates
// nothing per block and costs a tenth of github.com/mewkiz/flac's encoder,
// which capture used before. Its StreamInfo is the 34-byte STREAMINFO body
// for the dfLa box; Encode takes exactly one block of interleaved samples
// and returns a frame valid until the next call.
type flacEncoder = flac.Encoder

// newFLACEncoder returns an encoder for blocks of exactly block samples per
// channel.
func newFLACEncoder(rate, channels, block int) (*flacEncoder, error) {
	enc, err := flac.NewEncoder(rate, channels, block)
	if err != nil {
		return nil, fmt.Errorf("capture: flac encoder: %w", err)
	}
	return enc, nil
}
