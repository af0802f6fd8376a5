package listen

import (
	"math"
	"math/rand/v2"
)

// Synthetic sounds for the tests, mono at rate. None is a recording: they
// stand in for the kinds of sound a counter hears, and the tests say so.

// talker makes speech-like sound: a harmonic tone on a wandering pitch
// (110–150 Hz) shaped by three formant peaks (500, 1500, 2500 Hz), its
// amplitude rising and falling as syllables at 4 Hz, in phrases of 2 s
// with 0.6 s pauses, over a -70 dBFS noise floor.
type talker struct {
	rate  int
	t     int // samples made so far
	phase float64
	rng   *rand.Rand
}

func newTalker(rate int, seed uint64) *talker {
	return &talker{rate: rate, rng: rand.New(rand.NewPCG(seed, 1))}
}

func formant(hz float64) float64 {
	g := func(c, w, a float64) float64 { d := (hz - c) / w; return a * math.Exp(-d*d/2) }
	return 0.05 + g(500, 150, 1) + g(1500, 250, 0.3) + g(2500, 300, 0.1)
}

// next appends seconds of talk at dbfs (the syllable peaks' level) to dst.
func (s *talker) next(dst []int16, dbfs, seconds float64) []int16 {
	n := int(math.Round(seconds * float64(s.rate)))
	amp := 32768 * math.Pow(10, dbfs/20)
	var norm float64 // peak of the harmonic sum, so dbfs means peak level
	for k := 1; float64(k)*130 < 3800; k++ {
		norm += formant(float64(k) * 130)
	}
	noise := 32768 * math.Pow(10, -70.0/20)
	var weights [40]float64
	for range n {
		t := float64(s.t) / float64(s.rate)
		f0 := 130 + 20*math.Sin(2*math.Pi*0.3*t)
		if s.t%(s.rate/100) == 0 { // the pitch moves slowly: weigh harmonics every 10 ms
			for k := range weights {
				weights[k] = 0
				if hz := float64(k+1) * f0; hz < 3800 {
					weights[k] = formant(hz)
				}
			}
		}
		s.t++
		s.phase += 2 * math.Pi * f0 / float64(s.rate)
		// sin(kφ) by the Chebyshev recurrence: one Sin and one Cos a sample
		// rather than one Sin a harmonic.
		var v float64
		c2 := 2 * math.Cos(s.phase)
		sPrev, sk := 0.0, math.Sin(s.phase)
		for _, w := range weights {
			v += w * sk
			sPrev, sk = sk, c2*sk-sPrev
		}
		env := 0.0
		if math.Mod(t, 2.6) < 2 { // phrase, then a pause
			e := math.Sin(math.Pi * 4 * t)
			env = e * e
		}
		x := amp*env*v/norm + noise*s.rng.NormFloat64()
		dst = append(dst, int16(max(-32768, min(32767, math.Round(x)))))
	}
	return dst
}

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
