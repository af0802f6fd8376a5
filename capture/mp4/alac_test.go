package mp4

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"mamoru/capture/alac"
)

// noise is white noise, SplitMix64 of the sample's place: the same in every
// parallel subtest, without shared state.
func noise(i, c int) int16 {
	x := uint64(i)<<1 | uint64(c) + 0x9E3779B97F4A7C15
	x = (x ^ x>>30) * 0xBF58476D1CE4E5B9
	x = (x ^ x>>27) * 0x94D049BB133111EB
	return int16((x ^ x>>31) >> 48)
}

// TestALACClipDecodes writes clips of ALAC audio, with the real video of
// realMedia or alone, and has FFmpeg decode them: the PCM it decodes must be
// the PCM the frames were made of, sample for sample, for every kind of
// signal and both channel counts, including a last frame shorter than the
// others.
func TestALACClipDecodes(t *testing.T) {
	m := realMedia(t)
	const rate, block = 48000, 960
	signals := map[string]func(i, c int) int16{
		"silence": func(int, int) int16 { return 0 },
		"full-scale square": func(i, c int) int16 {
			if (i/24+c)%2 == 0 {
				return math.MaxInt16
			}
			return math.MinInt16
		},
		"white noise": noise,
		"tone":        func(i, c int) int16 { return int16(20000 * math.Sin(2*math.Pi*float64(i)*(440+float64(c)*110)/rate)) },
		// Residuals of a few steps, with many zeros: the Golomb-Rice
		// code's smallest parameters and its runs of zeros.
		"quiet noise": func(i, c int) int16 { return int16(noise(i, c) % 3) },
		"tone under noise": func(i, c int) int16 {
			return int16(8000*math.Sin(2*math.Pi*float64(i)*(300+float64(c)*50)/rate)) + int16(noise(i, c)%64)
		},
	}
	for name, signal := range signals {
		for _, channels := range []int{1, 2} {
			for _, video := range []bool{true, false} {
				name := name + map[int]string{1: " mono", 2: " stereo"}[channels]
				if video {
					name += " with video"
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					enc, err := alac.NewEncoder(alac.Format{SampleRate: rate, Channels: channels, BitDepth: 16})
					if err != nil {
						t.Fatal(err)
					}
					// 3 s of 20 ms frames and a last one of 517 samples.
					var pcm []byte
					var audio []Sample
					n, compressed := 0, 0
					for f := range 151 {
						size := block
						if f == 150 {
							size = 517
						}
						frame := make([]int32, size*channels)
						for i := range size {
							for c := range channels {
								v := signal(n+i, c)
								frame[i*channels+c] = int32(v)
								pcm = binary.LittleEndian.AppendUint16(pcm, uint16(v))
							}
						}
						data, err := enc.Encode(nil, frame)
						if err != nil {
							t.Fatal(err)
						}
						if data[2]&0x02 == 0 { // the escape flag clear
							compressed++
						}
						at := time.Duration(n) * time.Second / rate
						audio = append(audio, Sample{Time: at, Duration: time.Duration(n+size)*time.Second/rate - at, Data: data})
						n += size
					}
					// Noise does not compress; the rest must, or the
					// test would judge escape frames alone.
					if wantCompressed := name[:5] != "white"; (compressed > 140) != wantCompressed {
						t.Errorf("%d of 151 frames compressed", compressed)
					}
					t.Logf("%d of 151 frames compressed; %d bytes in all, %d of PCM", compressed, func() int {
						b := 0
						for _, a := range audio {
							b += len(a.Data)
						}
						return b
					}(), len(pcm))
					p := Params{Audio: &AudioTrack{SampleRate: rate, Channels: channels, BitsPerSample: 16, ALACCookie: enc.Cookie()}}
					var v []Sample
					if video {
						p.Video = m.video
						v = m.videoSamples[:90]
					}
					var f memFile
					w, err := NewWriter(&f, p)
					if err != nil {
						t.Fatal(err)
					}
					if err := w.WriteFragment(v, audio[:50]); err != nil {
						t.Fatal(err)
					}
					if err := w.WriteFragment(nil, audio[50:]); err != nil {
						t.Fatal(err)
					}
					if err := w.Finalize(); err != nil {
						t.Fatal(err)
					}
					path := filepath.Join(t.TempDir(), "alac.mp4")
					if err := os.WriteFile(path, f.b, 0o644); err != nil {
						t.Fatal(err)
					}

					got, _ := command(t, "ffmpeg", "-v", "error", "-i", path, "-map", "0:a", "-f", "s16le", "-")
					if !bytes.Equal(got, pcm) {
						t.Errorf("FFmpeg decoded %d bytes of PCM that differ from the %d encoded", len(got), len(pcm))
					}
					decodeClean(t, path)
					pr := probe(t, path, false)
					var sawALAC bool
					for _, s := range pr.Streams {
						if s.CodecType == "audio" {
							sawALAC = s.CodecName == "alac" && s.Channels == channels && s.SampleRate == "48000"
						}
					}
					if !sawALAC {
						t.Errorf("ffprobe streams %+v: want one ALAC stream of %d channels at 48 kHz", pr.Streams, channels)
					}
					if d := seconds(t, pr.Format.Duration); math.Abs(d-float64(n)/rate) > 0.001 {
						t.Errorf("ffprobe duration %.4f s, want %.4f", d, float64(n)/rate)
					}
				})
			}
		}
	}
}
