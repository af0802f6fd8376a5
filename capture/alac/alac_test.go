package alac

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// decode returns the interleaved samples of frame: an escape frame read by
// decodeEscape, a compressed one by the package's decoder, the one the
// Encoder checks its frames with (FFmpeg judges both in capture/mp4).
func decode(t testing.TB, cookie, frame []byte) []int32 {
	t.Helper()
	if len(frame) > 2 && frame[2]&0x02 != 0 { // the escape flag, bit 22
		return decodeEscape(t, cookie, frame)
	}
	d := decoder{frameLength: int(binary.BigEndian.Uint32(cookie)), depth: int(cookie[5]), channels: int(cookie[9])}
	d.res = make([]int32, d.frameLength)
	got, err := d.frame(nil, frame)
	if err != nil {
		t.Fatalf("compressed frame: %v", err)
	}
	return got
}

// decodeEscape is an independent reader of escape frames, after
// ALACDecoder.cpp. It returns the interleaved samples.
func decodeEscape(t testing.TB, cookie, frame []byte) []int32 {
	t.Helper()
	frameLength := int(binary.BigEndian.Uint32(cookie))
	depth, ch := int(cookie[5]), int(cookie[9])
	r := testBitReader{b: frame}
	var out []int32
	for {
		tag := r.get(3)
		if tag == tagEND {
			break
		}
		want := uint64(tagSCE)
		if ch == 2 {
			want = tagCPE
		}
		if tag != want {
			t.Fatalf("element tag %d, want %d", tag, want)
		}
		if inst, unused := r.get(4), r.get(12); inst != 0 || unused != 0 {
			t.Fatalf("instance %d, unused bits %#x, want 0, 0", inst, unused)
		}
		h := r.get(4)
		if h&1 != 1 || h>>1&3 != 0 {
			t.Fatalf("header bits %04b: want an escape frame, no bytes shifted", h)
		}
		n := frameLength
		if h>>3 == 1 {
			n = int(r.get(32))
			if n == frameLength {
				t.Fatalf("partial frame flag set on a frame of %d samples, the frame length", n)
			}
		}
		for range n * ch {
			v := int32(r.get(depth)<<(32-depth)) >> (32 - depth)
			out = append(out, v)
		}
	}
	if r.n > 8*len(frame) {
		t.Fatalf("frame of %d bytes is cut off", len(frame))
	}
	if rest := 8*len(frame) - r.n; rest >= 8 || frame[len(frame)-1]&(1<<rest-1) != 0 {
		t.Fatalf("frame ends with %d bits of padding, not zero bits to a byte", rest)
	}
	return out
}

type testBitReader struct {
	b []byte
	n int
}

func (r *testBitReader) get(bits int) uint64 {
	var v uint64
	for range bits {
		var bit uint64
		if r.n < 8*len(r.b) {
			bit = uint64(r.b[r.n/8] >> (7 - r.n%8) & 1)
		}
		r.n++
		v = v<<1 | bit
	}
	return v
}

func TestCookie(t *testing.T) {
	e, err := NewEncoder(Format{SampleRate: 48000, Channels: 2, BitDepth: 16})
	if err != nil {
		t.Fatal(err)
	}
	// frameLength 4096, version 0, 16 bits, pb 40, mb 10, kb 14, 2 channels,
	// maxRun 255, maxFrameBytes 16388 (23 + 4096×2×16 + 3 bits), avgBitRate
	// 1536000, sampleRate 48000.
	want := []byte{
		0, 0, 0x10, 0, 0, 16, 40, 10, 14, 2, 0, 255,
		0, 0, 0x40, 0x04, 0, 0x17, 0x70, 0, 0, 0, 0xBB, 0x80,
	}
	if got := e.Cookie(); !slices.Equal(got, want) {
		t.Errorf("cookie\n got % x\nwant % x", got, want)
	}
}

func TestMaxFrameBytes(t *testing.T) {
	for _, f := range []Format{
		{SampleRate: 48000, Channels: 1, BitDepth: 16},
		{SampleRate: 48000, Channels: 2, BitDepth: 16},
		{SampleRate: 44100, Channels: 1, BitDepth: 24, FrameLength: 960},
		{SampleRate: 8000, Channels: 2, BitDepth: 32, FrameLength: 1},
	} {
		e, err := NewEncoder(f)
		if err != nil {
			t.Fatal(err)
		}
		f = e.Format()
		largest := 0
		for n := max(f.FrameLength-3, 1); n <= f.FrameLength; n++ {
			// Noise: no compressed frame beats the escape frame.
			frame, err := e.Encode(nil, signals(n, f.Channels, f.BitDepth)["white noise"])
			if err != nil {
				t.Fatal(err)
			}
			largest = max(largest, len(frame))
		}
		if got := e.MaxFrameBytes(); got != largest {
			t.Errorf("%+v: MaxFrameBytes %d, want %d, the largest frame", f, got, largest)
		}
		if got := int(binary.BigEndian.Uint32(e.Cookie()[12:])); got != largest {
			t.Errorf("%+v: cookie's maxFrameBytes %d, want %d", f, got, largest)
		}
	}
}

// signals are the edge cases every encoder test runs over: n samples of ch
// interleaved channels within depth bits.
func signals(n, ch, depth int) map[string][]int32 {
	top, bottom := int32(1)<<(depth-1)-1, int32(-1)<<(depth-1)
	rng := rand.New(rand.NewPCG(1, 2))
	s := map[string][]int32{}
	s["silence"] = make([]int32, n*ch)
	square := make([]int32, n*ch)
	noise := make([]int32, n*ch)
	ramp := make([]int32, n*ch)
	for i := range square {
		square[i] = top
		if i/ch/24%2 == 1 {
			square[i] = bottom
		}
		noise[i] = int32(rng.Int64N(int64(top)-int64(bottom)+1) + int64(bottom))
		ramp[i] = int32(int64(bottom) + int64(i)*(int64(top)-int64(bottom))/int64(len(ramp)))
	}
	tone := make([]int32, n*ch)
	for i := range tone {
		tone[i] = int32(float64(top) * 0.6 * math.Sin(float64(i/ch)*float64(1+i%ch)/9))
	}
	s["full-scale square"] = square
	s["white noise"] = noise
	s["ramp"] = ramp
	s["tone"] = tone
	return s
}

func TestEncodeRoundTrip(t *testing.T) {
	for _, f := range []Format{
		{SampleRate: 48000, Channels: 1, BitDepth: 16},
		{SampleRate: 48000, Channels: 2, BitDepth: 16},
		{SampleRate: 48000, Channels: 1, BitDepth: 16, FrameLength: 960},
		{SampleRate: 96000, Channels: 2, BitDepth: 24},
		{SampleRate: 44100, Channels: 1, BitDepth: 20},
		{SampleRate: 32000, Channels: 2, BitDepth: 32},
	} {
		e, err := NewEncoder(f)
		if err != nil {
			t.Fatal(err)
		}
		fl := e.Format().FrameLength
		// A full frame, a partial last frame, one sample.
		for _, n := range []int{fl, fl - 7, 1} {
			for name, pcm := range signals(n, f.Channels, f.BitDepth) {
				prefix := []byte{0xAA}
				frame, err := e.Encode(prefix, pcm)
				if err != nil {
					t.Fatalf("%+v %s, %d samples: %v", f, name, n, err)
				}
				if frame[0] != 0xAA {
					t.Fatalf("Encode did not append to dst")
				}
				if got := decode(t, e.Cookie(), frame[1:]); !slices.Equal(got, pcm) {
					t.Errorf("%+v %s, %d samples: decoded samples differ from the input", f, name, n)
				}
				// What compresses must be compressed when it can be:
				// 16 bits and enough samples.
				escape := frame[1+2]&0x02 != 0
				if compressible := name != "white noise" && f.BitDepth == 16 && n >= minCompressed; compressible == escape {
					t.Errorf("%+v %s, %d samples: escape frame %v, want %v", f, name, n, escape, !compressible)
				}
				if len(frame)-1 > e.MaxFrameBytes() {
					t.Errorf("%+v %s: frame of %d bytes, more than MaxFrameBytes %d", f, name, len(frame)-1, e.MaxFrameBytes())
				}
			}
		}
	}
}

func TestNewEncoderRefuses(t *testing.T) {
	for _, f := range []Format{
		{SampleRate: 48000, Channels: 0, BitDepth: 16},
		{SampleRate: 48000, Channels: 3, BitDepth: 16},
		{SampleRate: 48000, Channels: 1, BitDepth: 8},
		{SampleRate: 48000, Channels: 1, BitDepth: 33},
		{SampleRate: 0, Channels: 1, BitDepth: 16},
		{SampleRate: 48000, Channels: 1, BitDepth: 16, FrameLength: -1},
		{SampleRate: 48000, Channels: 1, BitDepth: 16, FrameLength: 65536},
	} {
		if _, err := NewEncoder(f); !errors.Is(err, ErrFormat) {
			t.Errorf("NewEncoder(%+v) = %v, want ErrFormat", f, err)
		}
	}
}

func TestEncodeRefuses(t *testing.T) {
	e, err := NewEncoder(Format{SampleRate: 48000, Channels: 2, BitDepth: 16, FrameLength: 4})
	if err != nil {
		t.Fatal(err)
	}
	for name, pcm := range map[string][]int32{
		"empty":          nil,
		"odd for stereo": {1, 2, 3},
		"too long":       make([]int32, 10),
		"above 16 bits":  {32768, 0},
		"below 16 bits":  {0, -32769},
	} {
		dst := []byte{1, 2}
		got, err := e.Encode(dst, pcm)
		if !errors.Is(err, ErrSamples) {
			t.Errorf("%s: err %v, want ErrSamples", name, err)
		}
		if !slices.Equal(got, dst) {
			t.Errorf("%s: dst changed to % x", name, got)
		}
	}
}

// FuzzEncode checks that any block of samples decodes back to itself.
func FuzzEncode(f *testing.F) {
	f.Add([]byte{0, 0, 0xFF, 0x7F, 0, 0x80}, uint8(0), uint16(0))
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8}, uint8(1), uint16(3))
	f.Fuzz(func(t *testing.T, raw []byte, shape uint8, frameLength uint16) {
		ch := 1 + int(shape&1)
		depth := []int{16, 20, 24, 32}[shape>>1&3]
		e, err := NewEncoder(Format{SampleRate: 48000, Channels: ch, BitDepth: depth, FrameLength: int(frameLength)})
		if err != nil {
			t.Fatal(err)
		}
		var pcm []int32
		for len(raw) >= 4 && len(pcm) < ch*e.Format().FrameLength {
			v := int32(binary.LittleEndian.Uint32(raw))
			pcm = append(pcm, v<<(32-depth)>>(32-depth))
			raw = raw[4:]
		}
		pcm = pcm[:len(pcm)/ch*ch]
		frame, err := e.Encode(nil, pcm)
		if len(pcm) == 0 {
			if !errors.Is(err, ErrSamples) {
				t.Fatalf("empty block: err %v, want ErrSamples", err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if got := decode(t, e.Cookie(), frame); !slices.Equal(got, pcm) {
			t.Fatalf("decoded\n%v\nwant\n%v", got, pcm)
		}
	})
}
