package capture

import (
	"bytes"
	"io"
	"math"
	"testing"

	"github.com/mewkiz/flac"
)

// TestFLACRoundTrip decodes what the encoder wrote with an independent
// decoder and checks every sample came back: the audio is lossless.
func TestFLACRoundTrip(t *testing.T) {
	for _, channels := range []int{1, 2} {
		const rate, block, blocks = 48000, 960, 20
		enc, err := newFLACEncoder(rate, channels, block)
		if err != nil {
			t.Fatal(err)
		}
		var stream bytes.Buffer
		stream.WriteString("fLaC")
		stream.Write([]byte{0x80, 0, 0, 34}) // last metadata block, STREAMINFO, 34 bytes
		stream.Write(enc.StreamInfo())
		var want []int16
		for b := range blocks {
			pcm := make([]int16, block*channels)
			for i := range pcm {
				n := b*block*channels + i
				pcm[i] = int16(12000*math.Sin(float64(n)/7) + float64(n%97))
			}
			want = append(want, pcm...)
			frame, err := enc.Encode(pcm)
			if err != nil {
				t.Fatal(err)
			}
			stream.Write(frame)
		}
		dec, err := flac.New(&stream)
		if err != nil {
			t.Fatal(err)
		}
		var got []int16
		for {
			f, err := dec.ParseNext()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("channels %d: decode frame: %v", channels, err)
			}
			for i := range int(f.BlockSize) {
				for c := range channels {
					got = append(got, int16(f.Subframes[c].Samples[i]))
				}
			}
		}
		if len(got) != len(want) {
			t.Fatalf("channels %d: decoded %d samples, want %d", channels, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("channels %d: sample %d = %d, want %d", channels, i, got[i], want[i])
			}
		}
	}
}
