package alac

import (
	"encoding/binary"
	"slices"
	"testing"
)

// TestCode checks every Golomb-Rice parameter against the reading of
// ag_dec.c's dyn_get for values up to past the escape.
func TestCode(t *testing.T) {
	for k := 1; k <= agKB; k++ {
		for _, esc := range []int{16, 17} {
			var w bitWriter
			var want []uint32
			for n := uint32(0); n < 1<<16; n += 1 + n/64 {
				w.code(n, k, esc, 25)
				want = append(want, n)
			}
			w.put(0, 7)
			r := bitReader{b: w.flush()}
			for _, n := range want {
				if got := r.scalar(k, esc); got != n {
					t.Fatalf("k %d, escape %d bits: value %d read as %d", k, esc, n, got)
				}
			}
		}
	}
}

// FuzzRice checks that residuals the coder accepts read back the same,
// zero runs and escapes included.
func FuzzRice(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0x80, 0x7F}, uint8(16))
	f.Add([]byte{0xFF, 0x7F, 0, 0x80, 0, 0, 3, 0}, uint8(17))
	f.Fuzz(func(t *testing.T, raw []byte, bits uint8) {
		chanBits := 16 + int(bits&1)
		var res []int32
		for ; len(raw) >= 2 && len(res) < 4096; raw = raw[2:] {
			v := int32(int16(binary.LittleEndian.Uint16(raw)))
			if raw[0]&0x10 != 0 {
				v &= 0x3 // small values and zeros, for runs
			}
			res = append(res, v)
		}
		if len(res) == 0 {
			return
		}
		var w bitWriter
		if !w.rice(res, chanBits) {
			return
		}
		r := bitReader{b: w.flush()}
		got := make([]int32, len(res))
		if err := r.rice(got, chanBits); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, res) {
			t.Fatalf("read\n%v\nwant\n%v", got, res)
		}
	})
}

// FuzzPredict checks that the residuals of any predictor the encoder
// accepts turn back into the samples.
func FuzzPredict(f *testing.F) {
	f.Add([]byte{0, 0, 0xFF, 0x7F, 0, 0x80, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, uint8(2))
	f.Fuzz(func(t *testing.T, raw []byte, which uint8) {
		p := predictors[int(which)%len(predictors)]
		chanBits := 16 + int(which>>7)
		var x []int32
		for ; len(raw) >= 2 && len(x) < 4096; raw = raw[2:] {
			x = append(x, int32(int16(binary.LittleEndian.Uint16(raw))))
		}
		if len(x) <= len(p)+1 {
			return
		}
		res := make([]int32, len(x))
		if !predict(res, x, p, chanBits) {
			return
		}
		coefs := make([]int32, len(p))
		for k, c := range p {
			coefs[k] = int32(c)
		}
		unpredict(res, coefs, chanBits)
		if !slices.Equal(res, x) {
			t.Fatalf("predictor %v: samples\n%v\nread back as\n%v", p, x, res)
		}
	})
}
