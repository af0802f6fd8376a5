package flac_test

import (
	"encoding/binary"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"mamoru/capture/flac"
)

// verbatimBound is the most a frame may take: the longest header, every
// channel verbatim at 16 bits with its subframe header, and the CRC-16.
func verbatimBound(channels, block int) int { return 15 + channels*(1+2*block) + 2 }

// TestRoundTrip encodes each signal and decodes the frames with two
// independent decoders, github.com/mewkiz/flac's and ffmpeg's: both must
// give back every sample exactly, and no frame may be larger than the
// samples written as they are.
func TestRoundTrip(t *testing.T) {
	const rate, block, blocks = 48000, 960, 8
	for _, sig := range signals {
		t.Run(sig.name, func(t *testing.T) {
			enc, err := flac.NewEncoder(rate, sig.channels, block)
			if err != nil {
				t.Fatal(err)
			}
			var want []int16
			var frames [][]byte
			for b := range blocks {
				pcm := sig.block(b, block)
				want = append(want, pcm...)
				f, err := enc.Encode(pcm)
				if err != nil {
					t.Fatal(err)
				}
				if max := verbatimBound(sig.channels, block); len(f) > max {
					t.Errorf("block %d: frame of %d bytes, more than verbatim's %d", b, len(f), max)
				}
				frames = append(frames, slices.Clone(f))
			}
			s := stream(enc.StreamInfo(), frames)
			got, nums, err := decodeMewkiz(s)
			if err != nil {
				t.Fatalf("mewkiz decode: %v", err)
			}
			checkSamples(t, "mewkiz", got, want)
			for i, n := range nums {
				if n != uint64(i) {
					t.Errorf("frame %d is numbered %d", i, n)
				}
			}
			checkSamples(t, "ffmpeg", decodeFFmpeg(t, s), want)
			t.Logf("%d bytes a block", len(s[42:])/blocks)
		})
	}
}

func checkSamples(t *testing.T, decoder string, got, want []int16) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s decoded %d samples, want %d", decoder, len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: sample %d = %d, want %d", decoder, i, got[i], want[i])
		}
	}
}

// TestFrameSizes pins what each kind of sound costs, so a change that
// quietly loses compression fails: silence is a CONSTANT subframe per
// channel, a stereo pair of identical channels costs about one channel,
// and noise costs its verbatim size.
func TestFrameSizes(t *testing.T) {
	const block = 960
	size := func(sig signal) int {
		enc, err := flac.NewEncoder(48000, sig.channels, block)
		if err != nil {
			t.Fatal(err)
		}
		f, err := enc.Encode(sig.block(3, block))
		if err != nil {
			t.Fatal(err)
		}
		return len(f)
	}
	byName := func(name string) signal {
		i := slices.IndexFunc(signals, func(s signal) bool { return s.name == name })
		return signals[i]
	}
	// Header: 4 bytes of codes, a 1-byte frame number, the 16-bit block
	// size, CRC-8; each CONSTANT subframe 3 bytes; CRC-16.
	for _, c := range []struct {
		name string
		want int
	}{{"silence", 8 + 3 + 2}, {"dc", 8 + 3 + 2}, {"stereo silence", 8 + 2*3 + 2}} {
		if got := size(byName(c.name)); got != c.want {
			t.Errorf("%s: frame of %d bytes, want %d", c.name, got, c.want)
		}
	}
	// Noise does not compress: verbatim, 2 bytes a sample.
	if got, want := size(byName("noise")), 8+1+2*block+2; got != want {
		t.Errorf("noise: frame of %d bytes, want %d (verbatim)", got, want)
	}
	if got, want := size(byName("stereo noise")), 8+2*(1+2*block)+2; got != want {
		t.Errorf("stereo noise: frame of %d bytes, want %d (verbatim)", got, want)
	}
	// Identical channels: the side channel is all zero, a 3-byte CONSTANT
	// subframe (17 bits of zero and the header).
	mono := size(byName("tone"))
	for _, name := range []string{"stereo identical tone"} {
		if got, want := size(byName(name)), mono+4; got > want {
			t.Errorf("%s: frame of %d bytes, want at most %d (mono's %d and a constant side)", name, got, want, mono)
		}
	}
	// A tone compresses to well under half its PCM.
	if mono > block {
		t.Errorf("tone: frame of %d bytes, want at most %d", mono, block)
	}
}

// TestStereoAssignments checks that each of FLAC's four ways to code a
// stereo pair is chosen where it is the cheapest, so TestRoundTrip
// decodes each of them: a channel the other repeats but for hiss is coded
// as the side; a pair that differ by opposite hiss as mid and side;
// independent channels as they are.
func TestStereoAssignments(t *testing.T) {
	for _, c := range []struct {
		signal string
		want   byte
	}{
		{"stereo independent", 0b0001},
		{"stereo tone, tone and hiss", 0b1000},      // left/side
		{"stereo tone and hiss, tone", 0b1001},      // side/right
		{"stereo tone plus and minus hiss", 0b1010}, // mid/side
		{"stereo identical tone", 0b1010},           // mid (= left) and a zero side
	} {
		sig := signals[slices.IndexFunc(signals, func(s signal) bool { return s.name == c.signal })]
		enc, err := flac.NewEncoder(48000, 2, 960)
		if err != nil {
			t.Fatal(err)
		}
		f, err := enc.Encode(sig.block(2, 960))
		if err != nil {
			t.Fatal(err)
		}
		if got := f[3] >> 4; got != c.want {
			t.Errorf("%s: channel assignment %04b, want %04b", c.signal, got, c.want)
		}
	}
}

// TestStreamInfo checks the STREAMINFO body field by field (RFC 9639,
// 8.2): the block size, rate, channels and depth, and zero for what a
// recorder cannot know up front.
func TestStreamInfo(t *testing.T) {
	for _, c := range []struct{ rate, channels, block int }{{48000, 1, 960}, {44100, 2, 4096}, {655350, 2, 16}} {
		enc, err := flac.NewEncoder(c.rate, c.channels, c.block)
		if err != nil {
			t.Fatal(err)
		}
		si := enc.StreamInfo()
		if len(si) != 34 {
			t.Fatalf("STREAMINFO is %d bytes, want 34", len(si))
		}
		minB, maxB := binary.BigEndian.Uint16(si), binary.BigEndian.Uint16(si[2:])
		v := binary.BigEndian.Uint64(si[10:])
		rate, ch, depth, total := int(v>>44), int(v>>41&7)+1, int(v>>36&31)+1, v&(1<<36-1)
		if int(minB) != c.block || int(maxB) != c.block || rate != c.rate || ch != c.channels || depth != 16 {
			t.Errorf("%+v: STREAMINFO says blocks %d..%d, %d Hz, %d channels, %d bits", c, minB, maxB, rate, ch, depth)
		}
		if total != 0 || !allZero(si[4:10]) || !allZero(si[18:]) {
			t.Errorf("%+v: STREAMINFO frame sizes %x, total %d, MD5 %x; want all zero (unknown)", c, si[4:10], total, si[18:])
		}
	}
}

func allZero(b []byte) bool { return !slices.ContainsFunc(b, func(v byte) bool { return v != 0 }) }

// TestEncodeRefusesOtherBlockSizes: a block that is not the encoder's size
// is refused with ErrBlockSize, the message naming both sizes, and does not
// use a frame number.
func TestEncodeRefusesOtherBlockSizes(t *testing.T) {
	enc, err := flac.NewEncoder(48000, 2, 960)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 959, 1919, 1921, 960 * 4} {
		_, err := enc.Encode(make([]int16, n))
		if !errors.Is(err, flac.ErrBlockSize) {
			t.Fatalf("Encode(%d samples) = %v, want ErrBlockSize", n, err)
		}
		if msg := err.Error(); !strings.Contains(msg, "1920") || !strings.Contains(msg, " "+strconv.Itoa(n)+" ") {
			t.Errorf("Encode(%d samples): %q does not name both sizes", n, msg)
		}
	}
	f, err := enc.Encode(make([]int16, 1920))
	if err != nil {
		t.Fatal(err)
	}
	if f[4] != 0 {
		t.Errorf("first frame after refusals numbered %d, want 0", f[4])
	}
}

func TestNewEncoderRefuses(t *testing.T) {
	for _, c := range []struct{ rate, channels, block int }{
		{48000, 0, 960}, {48000, 3, 960}, {0, 1, 960}, {1 << 20, 1, 960}, {48000, 1, 15}, {48000, 1, 65536},
	} {
		if _, err := flac.NewEncoder(c.rate, c.channels, c.block); !errors.Is(err, flac.ErrFormat) {
			t.Errorf("NewEncoder(%d, %d, %d) = %v, want ErrFormat", c.rate, c.channels, c.block, err)
		}
	}
}

// TestNoAllocs: after NewEncoder, Encode allocates nothing, mono or stereo.
func TestNoAllocs(t *testing.T) {
	for _, sig := range signals {
		enc, err := flac.NewEncoder(48000, sig.channels, 960)
		if err != nil {
			t.Fatal(err)
		}
		pcm := sig.block(1, 960)
		if n := testing.AllocsPerRun(20, func() { _, _ = enc.Encode(pcm) }); n != 0 {
			t.Errorf("%s: %v allocations per Encode, want 0", sig.name, n)
		}
	}
}

// FuzzRoundTrip encodes blocks made from the fuzzer's bytes, taken as
// samples or as the steps of a walk (which the predictors do compress), at
// block sizes and rates that exercise every header code, and decodes them
// with github.com/mewkiz/flac: every sample must come back.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte{}, false, false, uint8(0))
	f.Add([]byte{0x00, 0x80, 0xff, 0x7f}, true, false, uint8(3))
	f.Add([]byte{1, 2, 3, 250, 7}, false, true, uint8(5))
	f.Add([]byte("speech is noise with a shape"), true, true, uint8(12))
	blocks := []int{16, 17, 192, 255, 256, 576, 960, 1000, 1152, 4096, 4608, 65535}
	rates := []int{48000, 44100, 8000, 11025, 22000, 96000, 192000, 655350, 100001, 88200}
	f.Fuzz(func(t *testing.T, data []byte, stereo, walk bool, sel uint8) {
		block, rate := blocks[int(sel)%len(blocks)], rates[int(sel)/len(blocks)%len(rates)]
		channels := 1
		if stereo {
			channels = 2
		}
		enc, err := flac.NewEncoder(rate, channels, block)
		if err != nil {
			t.Fatal(err)
		}
		var want []int16
		var frames [][]byte
		var acc int16
		for b := range 2 {
			pcm := make([]int16, block*channels)
			for i := range pcm {
				if len(data) < 2 {
					break
				}
				j := (b*len(pcm) + i) * 2 % (len(data) - 1)
				v := int16(binary.LittleEndian.Uint16(data[j:]))
				if walk {
					acc += v >> 6
					v = acc
				}
				pcm[i] = v
			}
			want = append(want, pcm...)
			fr, err := enc.Encode(pcm)
			if err != nil {
				t.Fatal(err)
			}
			if max := verbatimBound(channels, block); len(fr) > max {
				t.Errorf("frame of %d bytes, more than verbatim's %d", len(fr), max)
			}
			frames = append(frames, slices.Clone(fr))
		}
		got, _, err := decodeMewkiz(stream(enc.StreamInfo(), frames))
		if err != nil {
			t.Fatalf("mewkiz decode (%d Hz, %d channels, block %d): %v", rate, channels, block, err)
		}
		checkSamples(t, "mewkiz", got, want)
	})
}
