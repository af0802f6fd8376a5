package listen

import (
	"math"
	"math/cmplx"
)

// biquad is a direct-form-I second-order section, a0 normalised to 1.
// Its state is in float64: the RLB high-pass has poles within 1e-2 of the
// unit circle, where float32 state would add audible error at low levels.
type biquad struct {
	b0, b1, b2, a1, a2 float64
	x1, x2, y1, y2     float64
}

func (f *biquad) step(x float64) float64 {
	y := f.b0*x + f.b1*f.x1 + f.b2*f.x2 - f.a1*f.y1 - f.a2*f.y2
	f.x2, f.x1 = f.x1, x
	f.y2, f.y1 = f.y1, y
	return y
}

// response is the filter's complex gain at frequency hz.
func (f *biquad) response(hz, rate float64) complex128 {
	z1 := cmplx.Exp(complex(0, -2*math.Pi*hz/rate)) // z^-1
	z2 := z1 * z1
	num := complex(f.b0, 0) + complex(f.b1, 0)*z1 + complex(f.b2, 0)*z2
	den := 1 + complex(f.a1, 0)*z1 + complex(f.a2, 0)*z2
	return num / den
}

// kWeighting returns BS.1770's two stages for a sample rate: the high-shelf
// pre-filter (head effects, about +4 dB above 2 kHz) and the RLB high-pass.
// BS.1770 tabulates their coefficients only at 48 kHz; like libebur128 this
// derives them from the analog prototypes (shelf: f0, gain and Q; high-pass:
// f0 and Q) by the bilinear transform with pre-warping, which reproduces
// the table at 48 kHz to within 1e-8 (see TestKWeightingCoefficients).
func kWeighting(rate float64) (shelf, highpass biquad) {
	const (
		shelfF0   = 1681.974450955533
		shelfGain = 3.999843853973347 // dB
		shelfQ    = 0.7071752369554196
		hpF0      = 38.13547087602444
		hpQ       = 0.5003270373238773
	)
	k := math.Tan(math.Pi * shelfF0 / rate)
	vh := math.Pow(10, shelfGain/20)
	vb := math.Pow(vh, 0.4996667741545416)
	a0 := 1 + k/shelfQ + k*k
	shelf = biquad{
		b0: (vh + vb*k/shelfQ + k*k) / a0,
		b1: 2 * (k*k - vh) / a0,
		b2: (vh - vb*k/shelfQ + k*k) / a0,
		a1: 2 * (k*k - 1) / a0,
		a2: (1 - k/shelfQ + k*k) / a0,
	}
	// BS.1770 keeps the high-pass numerator at 1, -2, 1 at 48 kHz rather
	// than normalising it, which lifts the pass band by 20·log10(a0) ≈
	// 0.043 dB; the -0.691 dB constant includes that lift. Scaling the
	// numerator by a0(48 kHz)/a0(rate) keeps the same lift at every rate
	// (libebur128 keeps 1, -2, 1 and so reads 0.09 LU high at 16 kHz).
	hpA0 := func(rate float64) float64 {
		k := math.Tan(math.Pi * hpF0 / rate)
		return 1 + k/hpQ + k*k
	}
	k = math.Tan(math.Pi * hpF0 / rate)
	a0 = hpA0(rate)
	g := hpA0(48000) / a0
	highpass = biquad{
		b0: g, b1: -2 * g, b2: g,
		a1: 2 * (k*k - 1) / a0,
		a2: (1 - k/hpQ + k*k) / a0,
	}
	return shelf, highpass
}

// bandpass returns the two RBJ-cookbook sections (Butterworth Q) that make the
// VAD's speech band: a high-pass at lo and a low-pass at hi.
func bandpass(lo, hi, rate float64) (hp, lp biquad) {
	const q = math.Sqrt2 / 2
	w := 2 * math.Pi * lo / rate
	cos, alpha := math.Cos(w), math.Sin(w)/(2*q)
	a0 := 1 + alpha
	hp = biquad{
		b0: (1 + cos) / 2 / a0, b1: -(1 + cos) / a0, b2: (1 + cos) / 2 / a0,
		a1: -2 * cos / a0, a2: (1 - alpha) / a0,
	}
	w = 2 * math.Pi * hi / rate
	cos, alpha = math.Cos(w), math.Sin(w)/(2*q)
	a0 = 1 + alpha
	lp = biquad{
		b0: (1 - cos) / 2 / a0, b1: (1 - cos) / a0, b2: (1 - cos) / 2 / a0,
		a1: -2 * cos / a0, a2: (1 - alpha) / a0,
	}
	return hp, lp
}
