package flac_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	mflac "github.com/mewkiz/flac"
	"github.com/mewkiz/flac/frame"
	"github.com/mewkiz/flac/meta"
)

// stream assembles a FLAC stream: the marker, one STREAMINFO block (the
// last metadata block) and the frames.
func stream(streamInfo []byte, frames [][]byte) []byte {
	var b bytes.Buffer
	b.WriteString("fLaC")
	b.Write([]byte{0x80, 0, 0, byte(len(streamInfo))})
	b.Write(streamInfo)
	for _, f := range frames {
		b.Write(f)
	}
	return b.Bytes()
}

// decodeMewkiz decodes a stream with github.com/mewkiz/flac and returns
// its interleaved samples and the frames' numbers.
func decodeMewkiz(s []byte) (pcm []int16, nums []uint64, err error) {
	dec, err := mflac.New(bytes.NewReader(s))
	if err != nil {
		return nil, nil, err
	}
	for {
		f, err := dec.ParseNext()
		if err == io.EOF {
			return pcm, nums, nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("frame %d: %w", len(nums), err)
		}
		nums = append(nums, f.Num)
		for i := range int(f.BlockSize) {
			for _, sf := range f.Subframes {
				pcm = append(pcm, int16(sf.Samples[i]))
			}
		}
	}
}

// decodeFFmpeg decodes a stream with ffmpeg's FLAC decoder into
// interleaved samples.
func decodeFFmpeg(t testing.TB, s []byte) []int16 {
	t.Helper()
	path := filepath.Join(t.TempDir(), "stream.flac")
	if err := os.WriteFile(path, s, 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(ffmpeg(t), "-v", "error", "-f", "flac", "-i", path, "-f", "s16le", "-")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("ffmpeg decode: %v: %s", err, stderr.Bytes())
	}
	pcm := make([]int16, len(out)/2)
	for i := range pcm {
		pcm[i] = int16(binary.LittleEndian.Uint16(out[2*i:]))
	}
	return pcm
}

func ffmpeg(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatalf("ffmpeg (apt-get install ffmpeg): %v", err)
	}
	return p
}

// A signal is a generator of blocks of interleaved 16-bit PCM.
type signal struct {
	name     string
	channels int
	// sample returns channel c's sample n (counted from the stream's start).
	sample func(n, c int) int16
}

func (s signal) block(b, size int) []int16 {
	pcm := make([]int16, size*s.channels)
	for i := range size {
		for c := range s.channels {
			pcm[i*s.channels+c] = s.sample(b*size+i, c)
		}
	}
	return pcm
}

// noise returns the n-th of a fixed sequence of random values in
// [-32768, 32767], the same for every call.
func noise(n, c int) int16 {
	r := rand.New(rand.NewPCG(uint64(n), uint64(c)))
	return int16(r.Uint32())
}

func tone(n, c int) int16 {
	return int16(12000 * math.Sin(2*math.Pi*float64(n)*(440+110*float64(c))/48000))
}

// speech is noise shaped somewhat as speech is: low-passed, with its
// loudness rising and falling four times a second.
func speech(n, c int) int16 {
	var lp float64
	for i := range 8 { // a short FIR low-pass of the noise
		lp += float64(noise(n-i, c)) / 8
	}
	env := 0.2 + 0.8*math.Abs(math.Sin(2*math.Pi*float64(n)*2/48000))
	return int16(lp * env)
}

func square(n, c int) int16 {
	if (n/50)%2 == 0 {
		return math.MaxInt16
	}
	return math.MinInt16
}

// signals are the test's inputs: the easy, the hard and the extreme.
var signals = []signal{
	{"silence", 1, func(n, c int) int16 { return 0 }},
	{"dc", 1, func(n, c int) int16 { return -1234 }},
	{"square full scale", 1, square},
	{"noise", 1, noise},
	{"tone", 1, tone},
	{"speech", 1, speech},
	{"extremes alternating", 1, func(n, c int) int16 {
		if n%2 == 0 {
			return math.MinInt16
		}
		return math.MaxInt16
	}},
	{"extremes, one in 7", 1, func(n, c int) int16 {
		switch n % 7 {
		case 0:
			return math.MinInt16
		case 3:
			return math.MaxInt16
		}
		return tone(n, c)
	}},
	{"stereo silence", 2, func(n, c int) int16 { return 0 }},
	{"stereo identical tone", 2, func(n, c int) int16 { return tone(n, 0) }},
	{"stereo identical noise", 2, func(n, c int) int16 { return noise(n, 0) }},
	{"stereo independent", 2, func(n, c int) int16 {
		if c == 0 {
			return tone(n, 0)
		}
		return noise(n, 1)
	}},
	{"stereo tones", 2, tone},
	{"stereo noise", 2, noise},
	{"stereo speech", 2, speech},
	{"stereo square", 2, square},
	{"stereo extremes opposed", 2, func(n, c int) int16 {
		if (n+c)%2 == 0 {
			return math.MinInt16
		}
		return math.MaxInt16
	}},
	// One for each channel assignment (TestStereoAssignments).
	{"stereo tone, tone and hiss", 2, func(n, c int) int16 { return tone(n, 0) + int16(c)*(noise(n, 0)>>8) }},
	{"stereo tone and hiss, tone", 2, func(n, c int) int16 { return tone(n, 0) + int16(1-c)*(noise(n, 0)>>8) }},
	{"stereo tone plus and minus hiss", 2, func(n, c int) int16 { return tone(n, 0) + int16(1-2*c)*(noise(n, 0)>>8) }},
	{"stereo left silent right noise", 2, func(n, c int) int16 {
		if c == 0 {
			return 0
		}
		return noise(n, c)
	}},
}

// mewkizEncoder is what capture used before this package: it drives
// github.com/mewkiz/flac's Encoder one frame at a time. The benchmarks
// and the size comparison measure against it.
type mewkizEncoder struct {
	enc       *mflac.Encoder
	out       bytes.Buffer
	frame     frame.Frame
	subframes []frame.Subframe
	block     int
}

func newMewkizEncoder(rate, channels, block int) (*mewkizEncoder, error) {
	e := &mewkizEncoder{block: block, subframes: make([]frame.Subframe, channels)}
	enc, err := mflac.NewEncoder(&e.out, &meta.StreamInfo{BlockSizeMin: uint16(block), BlockSizeMax: uint16(block),
		SampleRate: uint32(rate), NChannels: uint8(channels), BitsPerSample: 16})
	if err != nil {
		return nil, err
	}
	e.out.Reset()
	e.enc = enc
	chans := frame.ChannelsMono
	if channels == 2 {
		chans = frame.ChannelsLR
	}
	e.frame.Header = frame.Header{HasFixedBlockSize: true, BlockSize: uint16(block), SampleRate: uint32(rate),
		Channels: chans, BitsPerSample: 16}
	e.frame.Subframes = make([]*frame.Subframe, channels)
	for i := range e.subframes {
		e.subframes[i].Samples = make([]int32, block)
		e.subframes[i].NSamples = block
		e.frame.Subframes[i] = &e.subframes[i]
	}
	return e, nil
}

func (e *mewkizEncoder) Encode(pcm []int16) ([]byte, error) {
	ch := len(e.subframes)
	for c := range e.subframes {
		sf := &e.subframes[c]
		sf.SubHeader = frame.SubHeader{Pred: frame.PredVerbatim}
		for i := range e.block {
			sf.Samples[i] = int32(pcm[i*ch+c])
		}
	}
	e.out.Reset()
	if err := e.enc.WriteFrame(&e.frame); err != nil {
		return nil, err
	}
	return e.out.Bytes(), nil
}
