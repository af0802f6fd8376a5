package flac

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"

	mflac "github.com/mewkiz/flac"
)

// TestCRC checks the table-driven CRCs against the bit-at-a-time
// definitions, at every length the slicing-by-8 loop treats differently.
func TestCRC(t *testing.T) {
	slow := func(b []byte, width uint, poly uint32) uint32 {
		var c uint32
		top := uint32(1) << (width - 1)
		for _, v := range b {
			c ^= uint32(v) << (width - 8)
			for range 8 {
				if c&top != 0 {
					c = c<<1 ^ poly
				} else {
					c <<= 1
				}
			}
			c &= 1<<width - 1
		}
		return c
	}
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 40 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		if got, want := uint32(crc8(b)), slow(b, 8, 0x07); got != want {
			t.Errorf("crc8 of %d bytes = %#x, want %#x", n, got, want)
		}
		if got, want := uint32(crc16(b)), slow(b, 16, 0x8005); got != want {
			t.Errorf("crc16 of %d bytes = %#x, want %#x", n, got, want)
		}
	}
	// The check value of CRC-16/BUYPASS (unreflected 0x8005 from 0).
	if got := crc16([]byte("123456789")); got != 0xFEE8 {
		t.Errorf("crc16(123456789) = %#x, want 0xfee8", got)
	}
}

// TestFrameNumbers encodes frames numbered at each edge of the coded
// number's lengths, 1 to 6 bytes, and has github.com/mewkiz/flac read the
// numbers back; past 2^31-1 the count wraps to 0.
func TestFrameNumbers(t *testing.T) {
	enc, err := NewEncoder(48000, 1, 960)
	if err != nil {
		t.Fatal(err)
	}
	for _, num := range []uint32{0, 0x7F, 0x80, 0x7FF, 0x800, 0xFFFF, 0x10000, 1<<21 - 1, 1 << 21, 1<<26 - 1, 1 << 26, 1<<31 - 1} {
		enc.num = num
		pcm := make([]int16, 960)
		pcm[5] = int16(num)
		f, err := enc.Encode(pcm)
		if err != nil {
			t.Fatal(err)
		}
		var s bytes.Buffer
		s.WriteString("fLaC")
		s.Write([]byte{0x80, 0, 0, 34})
		s.Write(enc.StreamInfo())
		s.Write(f)
		dec, err := mflac.New(&s)
		if err != nil {
			t.Fatal(err)
		}
		fr, err := dec.ParseNext()
		if err != nil {
			t.Fatalf("frame %d: %v", num, err)
		}
		if fr.Num != uint64(num) || fr.Subframes[0].Samples[5] != int32(int16(num)) {
			t.Errorf("frame %d decoded as number %d, sample %d", num, fr.Num, fr.Subframes[0].Samples[5])
		}
		if _, err := dec.ParseNext(); err != io.EOF {
			t.Errorf("frame %d: after it %v, want EOF", num, err)
		}
	}
	if enc.num != 0 {
		t.Errorf("after frame 2^31-1 the next is %d, want 0", enc.num)
	}
}

// TestRiceEstimate checks the promise the verbatim fallback rests on: the
// bits riceParam counts are never fewer than the Rice codes take, and its
// parameter is the best of all 15 to within a bit a sample.
func TestRiceEstimate(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		n := 1 + r.IntN(300)
		scale := uint32(1) << r.IntN(22)
		us := make([]uint32, n)
		var sum uint64
		for i := range us {
			us[i] = r.Uint32N(scale)
			sum += uint64(us[i])
		}
		exact := func(k uint) uint64 {
			b := uint64(n) * uint64(k+1)
			for _, u := range us {
				b += uint64(u >> k)
			}
			return b
		}
		k, est := riceParam(sum, uint64(n))
		if got := exact(k); est < got {
			t.Fatalf("n %d, sum %d: estimate %d bits for k %d, written %d", n, sum, est, k, got)
		}
		best := exact(0)
		for k := uint(1); k <= maxRiceParam; k++ {
			best = min(best, exact(k))
		}
		if got := exact(k); got > best+uint64(n) {
			t.Errorf("n %d, sum %d: k %d costs %d bits, the best %d", n, sum, k, got, best)
		}
	}
}
