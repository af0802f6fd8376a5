package alac

import (
	"math"
	"testing"
)

// BenchmarkEncode encodes 20 ms (one clip frame) and 1 s of 48 kHz mono;
// capture's BenchmarkFLACEncode does the same for the recorder's FLAC.
func BenchmarkEncode(b *testing.B) {
	for _, bc := range []struct {
		name string
		n    int
	}{{"20ms", 960}, {"1s", 48000}} {
		b.Run(bc.name, func(b *testing.B) {
			e, err := NewEncoder(Format{SampleRate: 48000, Channels: 1, BitDepth: 16, FrameLength: bc.n})
			if err != nil {
				b.Fatal(err)
			}
			// A tone under noise, as a shop's microphone hears one.
			pcm := make([]int32, bc.n)
			for i := range pcm {
				pcm[i] = int32(8000*math.Sin(float64(i)/7)) + int32(int8(i*7919))
			}
			frame := make([]byte, 0, e.MaxFrameBytes())
			b.SetBytes(int64(2 * len(pcm)))
			for b.Loop() {
				if frame, err = e.Encode(frame[:0], pcm); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(frame)), "frame-bytes")
		})
	}
}
