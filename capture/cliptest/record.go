package cliptest

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/mewkiz/flac"
	"github.com/mewkiz/flac/frame"
	"github.com/mewkiz/flac/meta"

	"mamoru/capture/h264"
	"mamoru/capture/mp4"
)

// TestPattern returns seconds of 320x240 30 fps H.264 (Annex B, no
// B-frames, an IDR each second) of ffmpeg's test pattern.
func TestPattern(t testing.TB, seconds int) []byte {
	t.Helper()
	stream, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
		"-frames:v", strconv.Itoa(30*seconds), "-c:v", "libx264", "-preset", "ultrafast", "-bf", "0", "-g", "30",
		"-f", "h264", "-").Output()
	if err != nil {
		t.Fatalf("ffmpeg (apt-get install ffmpeg): %v", err)
	}
	return stream
}

// Record writes a clip of the given length as the recorder lays one out,
// for tests outside package capture: 320x240 30 fps H.264 from ffmpeg's
// test pattern with an IDR each second, and a 48 kHz 16-bit tone (440 Hz,
// 660 Hz on a second channel) in 20 ms FLAC frames from the recorder's
// FLAC library, in fragments of half a second. It returns the clip's path
// in dir and the PCM it holds, s16le interleaved.
func Record(t testing.TB, dir string, channels, seconds int) (string, []byte) {
	t.Helper()
	stream := TestPattern(t, seconds)
	var video []mp4.Sample
	vt := &mp4.VideoTrack{Width: 320, Height: 240, FrameDuration: time.Second / 30}
	p := h264.NewParser(bytes.NewReader(stream))
	for i := 0; ; i++ {
		au, err := p.Next()
		if err != nil {
			break
		}
		if au.IDR && vt.SPS == nil {
			for _, nal := range au.NALUs {
				switch h264.NALType(nal) {
				case h264.NALSPS:
					vt.SPS = bytes.Clone(nal)
				case h264.NALPPS:
					vt.PPS = bytes.Clone(nal)
				}
			}
		}
		at := time.Duration(i) * time.Second / 30
		video = append(video, mp4.Sample{Time: at, Duration: time.Second / 30, Key: au.IDR, Data: h264.AppendAVCC(nil, au)})
	}

	const rate, block = 48000, 960
	var out bytes.Buffer
	enc, err := flac.NewEncoder(&out, &meta.StreamInfo{BlockSizeMin: block, BlockSizeMax: block,
		SampleRate: rate, NChannels: uint8(channels), BitsPerSample: 16})
	if err != nil {
		t.Fatal(err)
	}
	at := mp4.AudioTrack{SampleRate: rate, Channels: channels, BitsPerSample: 16, StreamInfo: bytes.Clone(out.Bytes()[8:])}
	chans := frame.ChannelsMono
	if channels == 2 {
		chans = frame.ChannelsLR
	}
	var pcm []byte
	var audio []mp4.Sample
	for n := 0; n < seconds*rate; n += block {
		f := &frame.Frame{Header: frame.Header{HasFixedBlockSize: true, BlockSize: block, SampleRate: rate, Channels: chans, BitsPerSample: 16}}
		for c := range channels {
			sf := &frame.Subframe{SubHeader: frame.SubHeader{Pred: frame.PredVerbatim}, NSamples: block, Samples: make([]int32, block)}
			f.Subframes = append(f.Subframes, sf)
			for j := range block {
				sf.Samples[j] = int32(int16(12000 * math.Sin(2*math.Pi*float64(n+j)*float64(440+220*c)/rate)))
			}
		}
		for j := range block {
			for c := range channels {
				pcm = binary.LittleEndian.AppendUint16(pcm, uint16(f.Subframes[c].Samples[j]))
			}
		}
		out.Reset()
		if err := enc.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
		t := time.Duration(n) * time.Second / rate
		audio = append(audio, mp4.Sample{Time: t, Duration: 20 * time.Millisecond, Key: true, Data: bytes.Clone(out.Bytes())})
	}

	path := filepath.Join(dir, "clip.mp4")
	file, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	w, err := mp4.NewWriter(file, mp4.Params{Video: vt, Audio: &at, Created: time.Date(2026, 11, 30, 9, 15, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	for from := time.Duration(0); from < time.Duration(seconds)*time.Second; from += 500 * time.Millisecond {
		in := func(s []mp4.Sample) []mp4.Sample {
			var r []mp4.Sample
			for _, x := range s {
				if x.Time >= from && x.Time < from+500*time.Millisecond {
					r = append(r, x)
				}
			}
			return r
		}
		if err := w.WriteFragment(in(video), in(audio)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finalize(); err != nil {
		t.Fatal(err)
	}
	if err := file.Close(); err != nil {
		t.Fatal(err)
	}
	return path, pcm
}
