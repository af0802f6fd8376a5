package flac_test

import (
	"testing"

	"mamoru/capture/flac"
)

// BenchmarkEncode encodes one 20 ms block of 48 kHz audio, the recorder's
// frame, with this package and with github.com/mewkiz/flac as capture did
// before it, on a tone and on speech-like noise, mono and stereo.
// frame-bytes is the size of the last frame.
func BenchmarkEncode(b *testing.B) {
	const block = 960
	type encoder interface{ Encode([]int16) ([]byte, error) }
	for _, impl := range []struct {
		name string
		new  func(rate, channels, block int) (encoder, error)
	}{
		{"own", func(r, c, n int) (encoder, error) { return flac.NewEncoder(r, c, n) }},
		{"mewkiz", func(r, c, n int) (encoder, error) { return newMewkizEncoder(r, c, n) }},
	} {
		for _, sig := range []signal{
			{"tone", 1, tone}, {"speech", 1, speech}, {"silence", 1, func(int, int) int16 { return 0 }},
			{"tone", 2, tone}, {"speech", 2, speech}, {"silence", 2, func(int, int) int16 { return 0 }},
		} {
			name := impl.name + "/mono/" + sig.name
			if sig.channels == 2 {
				name = impl.name + "/stereo/" + sig.name
			}
			b.Run(name, func(b *testing.B) {
				enc, err := impl.new(48000, sig.channels, block)
				if err != nil {
					b.Fatal(err)
				}
				// Ten different blocks, so no one block's luck decides.
				pcm := make([][]int16, 10)
				for i := range pcm {
					pcm[i] = sig.block(i, block)
				}
				var frame []byte
				b.ReportAllocs()
				b.SetBytes(int64(2 * block * sig.channels))
				i := 0
				for b.Loop() {
					if frame, err = enc.Encode(pcm[i%len(pcm)]); err != nil {
						b.Fatal(err)
					}
					i++
				}
				b.ReportMetric(float64(len(frame)), "frame-bytes")
			})
		}
	}
}
