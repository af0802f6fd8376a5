// Package listentest makes synthetic sound for tests of listening for a
// raised voice: none of it is a recording, and the tests that use it say
// so.
package listentest

import (
	"math"
	"math/rand/v2"
)

// Talker makes speech-like sound: a harmonic tone on a wandering pitch
// (110–150 Hz) shaped by three formant peaks (500, 1500, 2500 Hz), its
// amplitude rising and falling as syllables at 4 Hz, in phrases of 2 s
// with 0.6 s pauses, over a -70 dBFS noise floor.
type Talker struct {
	rate  int
	t     int // samples made so far
	phase float64
	rng   *rand.Rand
}

// NewTalker is a talker at rate (Hz, mono) whose noise floor is seeded by
// seed: the same seed makes the same sound.
func NewTalker(rate int, seed uint64) *Talker {
	return &Talker{rate: rate, rng: rand.New(rand.NewPCG(seed, 1))}
}

func formant(hz float64) float64 {
	g := func(c, w, a float64) float64 { d := (hz - c) / w; return a * math.Exp(-d*d/2) }
	return 0.05 + g(500, 150, 1) + g(1500, 250, 0.3) + g(2500, 300, 0.1)
}

// Next appends seconds of talk at dbfs (the syllable peaks' level) to dst.
func (s *Talker) Next(dst []int16, dbfs, seconds float64) []int16 {
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
