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

// BenchmarkFLACEncode encodes 20 ms and 1 s of 48 kHz mono as the
// audio source does; capture/alac's BenchmarkEncode is its counterpart for
// the viewing copy.
func BenchmarkFLACEncode(b *testing.B) {
	for _, bc := range []struct {
		name  string
		block int
	}{{"20ms", 960}, {"1s", 48000}} {
		b.Run(bc.name, func(b *testing.B) {
			enc, err := newFLACEncoder(48000, 1, bc.block)
			if err != nil {
				b.Fatal(err)
			}
			// A tone under noise, as capture/alac's BenchmarkEncode.
			pcm := make([]int16, bc.block)
			for i := range pcm {
				pcm[i] = int16(8000*math.Sin(float64(i)/7)) + int16(int8(i*7919))
			}
			var frame []byte
			b.ReportAllocs()
			b.SetBytes(int64(2 * len(pcm)))
			for b.Loop() {
				if frame, err = enc.Encode(pcm); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(frame)), "frame-bytes")
		})
	}
}
