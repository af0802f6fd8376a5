package listen

import (
	"math"
	"math/rand/v2"
)

// Synthetic sounds for the tests, mono at rate. None is a recording: they
// stand in for the kinds of sound a counter hears, and the tests say so.

// noiseSignal appends white noise at dbfs RMS (sine-referenced), its
// amplitude multiplied by mod(t).
func noiseSignal(dst []int16, rate int, dbfs, seconds float64, seed uint64, mod func(t float64) float64) []int16 {
	rng := rand.New(rand.NewPCG(seed, 2))
	a := 32768 * math.Pow(10, dbfs/20) / math.Sqrt2
	n := int(math.Round(seconds * float64(rate)))
	for i := range n {
		x := a * rng.NormFloat64() * mod(float64(i)/float64(rate))
		dst = append(dst, int16(max(-32768, min(32767, math.Round(x)))))
	}
	return dst
}

// bandNoise is white noise through the speech band filter: speech-shaped
// enough to fool an energy-ratio VAD.
func bandNoise(dst []int16, rate int, dbfs, seconds float64, seed uint64, mod func(t float64) float64) []int16 {
	start := len(dst)
	dst = noiseSignal(dst, rate, dbfs+9, seconds, seed, mod)
	hp, lp := bandpass(300, 3400, float64(rate))
	for i := start; i < len(dst); i++ {
		dst[i] = int16(max(-32768, min(32767, lp.step(hp.step(float64(dst[i]))))))
	}
	return dst
}

// hum appends mains hum: 50 Hz and its odd harmonics falling 6 dB each,
// peak at dbfs, steady.
func hum(dst []int16, rate int, dbfs, seconds float64) []int16 {
	a := 32768 * math.Pow(10, dbfs/20) / 1.6
	n := int(math.Round(seconds * float64(rate)))
	for i := range n {
		t := float64(i) / float64(rate)
		var x float64
		for k, g := 1, 1.0; k <= 15; k, g = k+2, g/2 {
			x += g * math.Sin(2*math.Pi*50*float64(k)*t)
		}
		dst = append(dst, int16(math.Round(a*x)))
	}
	return dst
}

func steady(float64) float64 { return 1 }

// syllables is a 4 Hz on/off amplitude pattern.
func syllables(t float64) float64 {
	e := math.Sin(math.Pi * 4 * t)
	return e * e
}
