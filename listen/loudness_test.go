package listen

import (
	"errors"
	"math"
	"math/cmplx"
	"testing"
)

// BS.1770-4, Tables 1 and 2: the K-weighting coefficients at 48 kHz.
var (
	bs1770Shelf = biquad{b0: 1.53512485958697, b1: -2.69169618940638, b2: 1.19839281085285,
		a1: -1.69065929318241, a2: 0.73248077421585}
	bs1770HighPass = biquad{b0: 1, b1: -2, b2: 1, a1: -1.99004745483398, a2: 0.99007225036621}
)

func TestKWeightingCoefficients(t *testing.T) {
	shelf, hp := kWeighting(48000)
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"shelf b0", shelf.b0, bs1770Shelf.b0}, {"shelf b1", shelf.b1, bs1770Shelf.b1},
		{"shelf b2", shelf.b2, bs1770Shelf.b2}, {"shelf a1", shelf.a1, bs1770Shelf.a1},
		{"shelf a2", shelf.a2, bs1770Shelf.a2},
		{"high-pass a1", hp.a1, bs1770HighPass.a1}, {"high-pass a2", hp.a2, bs1770HighPass.a2},
	} {
		if math.Abs(c.got-c.want) > 1e-8 {
			t.Errorf("%s = %.14f, want %.14f (BS.1770-4)", c.name, c.got, c.want)
		}
	}
}

func kGainDB(shelf, hp biquad, hz, rate float64) float64 {
	return 20 * math.Log10(cmplx.Abs(shelf.response(hz, rate)*hp.response(hz, rate)))
}

// TestKWeightingResponse checks the whole curve's gain: against fixed points
// of the standard's filter at 48 kHz, and at other rates against the 48 kHz
// standard, where the bilinear transform's warping is small.
func TestKWeightingResponse(t *testing.T) {
	tests := []struct {
		hz, wantDB, tol float64
	}{
		{20, -13.28, 0.01}, // the RLB high-pass cuts deep below 40 Hz
		{50, -3.93, 0.01},
		{100, -1.13, 0.01},
		{500, 0.04, 0.01},
		{1000, 0.70, 0.01}, // close to the 0.691 dB the loudness formula takes back off
		{2000, 3.07, 0.01},
		{5000, 4.01, 0.01},
		{10000, 4.04, 0.01}, // the shelf's +4 dB
	}
	want48 := func(hz float64) float64 { return kGainDB(bs1770Shelf, bs1770HighPass, hz, 48000) }
	for _, rate := range []float64{48000, 44100, 16000} {
		shelf, hp := kWeighting(rate)
		for _, tt := range tests {
			if tt.hz >= rate/2*0.8 {
				continue
			}
			got := kGainDB(shelf, hp, tt.hz, rate)
			if rate == 48000 && math.Abs(got-tt.wantDB) > tt.tol {
				t.Errorf("gain at %g Hz, %g Hz rate = %.3f dB, want %.2f ±%.2f", tt.hz, rate, got, tt.wantDB, tt.tol)
			}
			// The bilinear transform bends the shelf (f0 1.7 kHz) as it
			// nears Nyquist: at 16 kHz the curve is off by up to 0.05 dB.
			tol := 0.002
			if rate < 44100 {
				tol = 0.06
			}
			if d := got - want48(tt.hz); math.Abs(d) > tol {
				t.Errorf("gain at %g Hz, %g Hz rate = %.3f dB, BS.1770 at 48 kHz %.3f", tt.hz, rate, got, want48(tt.hz))
			}
		}
	}
}

// sine writes seconds of a sine at dbfs (peak, re 32768) into every channel.
func sine(rate, channels int, hz, dbfs, seconds float64, phase *float64) []int16 {
	n := int(math.Round(seconds * float64(rate)))
	out := make([]int16, n*channels)
	a := 32768 * math.Pow(10, dbfs/20)
	for i := range n {
		v := int16(math.Round(a * math.Sin(*phase)))
		*phase += 2 * math.Pi * hz / float64(rate)
		for c := range channels {
			out[i*channels+c] = v
		}
	}
	return out
}

// TestLoudnessTech3341 runs the EBU Tech 3341 minimum-requirement cases that
// a momentary and short-term meter can show, generated here rather than read
// from the EBU's files. Tolerance ±0.1 LU as the document requires.
func TestLoudnessTech3341(t *testing.T) {
	type segment struct{ dbfs, seconds float64 }
	tests := []struct {
		name     string
		channels int
		rate     int
		segments []segment
		repeat   int
		// want is checked on every 100 ms step from checkFrom on.
		momentary, shortTerm float64
		checkFrom            float64
	}{
		{name: "case 1: stereo 1 kHz at -23 dBFS, 20 s", channels: 2, rate: 48000,
			segments: []segment{{-23, 20}}, repeat: 1, momentary: -23, shortTerm: -23, checkFrom: 3},
		{name: "case 2: stereo 1 kHz at -33 dBFS, 20 s", channels: 2, rate: 48000,
			segments: []segment{{-33, 20}}, repeat: 1, momentary: -33, shortTerm: -33, checkFrom: 3},
		{name: "case 1 at 44.1 kHz", channels: 2, rate: 44100,
			segments: []segment{{-23, 20}}, repeat: 1, momentary: -23, shortTerm: -23, checkFrom: 3},
		{name: "mono: one channel at -23 dBFS reads 3 dB below the stereo pair", channels: 1, rate: 48000,
			segments: []segment{{-23, 10}}, repeat: 1, momentary: -26.01, shortTerm: -26.01, checkFrom: 3},
		{name: "case 9: 20 × (1.34 s at -20, 1.66 s at -30 dBFS), short-term constant", channels: 2, rate: 48000,
			segments: []segment{{-20, 1.34}, {-30, 1.66}}, repeat: 20, momentary: math.NaN(), shortTerm: -23, checkFrom: 3},
		{name: "case 12-like: 20 × (0.18 s at -20, 0.22 s at -30 dBFS), momentary constant", channels: 2, rate: 48000,
			segments: []segment{{-20, 0.18}, {-30, 0.22}}, repeat: 20, momentary: -23, shortTerm: math.NaN(), checkFrom: 0.4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewMeter(tt.rate, tt.channels)
			if err != nil {
				t.Fatal(err)
			}
			var pcm []int16
			var phase float64
			for range tt.repeat {
				for _, s := range tt.segments {
					pcm = append(pcm, sine(tt.rate, tt.channels, 1000, s.dbfs, s.seconds, &phase)...)
				}
			}
			step := tt.rate / 10 * tt.channels
			checked := 0
			for i := 0; i+step <= len(pcm); i += step {
				if err := m.Write(pcm[i : i+step]); err != nil {
					t.Fatal(err)
				}
				at := float64(i+step) / float64(tt.rate*tt.channels)
				if at < tt.checkFrom-1e-9 {
					continue
				}
				checked++
				if got := m.Momentary(); !math.IsNaN(tt.momentary) && math.Abs(got-tt.momentary) > 0.1 {
					t.Fatalf("at %.1f s momentary = %.3f LUFS, want %.1f ±0.1", at, got, tt.momentary)
				}
				if got := m.ShortTerm(); !math.IsNaN(tt.shortTerm) && at >= 3 && math.Abs(got-tt.shortTerm) > 0.1 {
					t.Fatalf("at %.1f s short-term = %.3f LUFS, want %.1f ±0.1", at, got, tt.shortTerm)
				}
			}
			if checked == 0 {
				t.Fatal("no step was checked")
			}
		})
	}
}

// TestMeterBlockSizes: the result must not depend on how audio is cut into
// blocks, including blocks that straddle a 100 ms step.
func TestMeterBlockSizes(t *testing.T) {
	var phase float64
	pcm := sine(48000, 2, 440, -18, 5, &phase)
	ref, _ := NewMeter(48000, 2)
	if err := ref.Write(pcm); err != nil {
		t.Fatal(err)
	}
	for _, frames := range []int{1, 7, 960, 4799, 4800, 13000} {
		m, _ := NewMeter(48000, 2)
		for i := 0; i < len(pcm); i += frames * 2 {
			if err := m.Write(pcm[i:min(i+frames*2, len(pcm))]); err != nil {
				t.Fatal(err)
			}
		}
		if got, want := m.ShortTerm(), ref.ShortTerm(); math.Abs(got-want) > 1e-9 {
			t.Errorf("%d-frame blocks: short-term = %v, want %v", frames, got, want)
		}
		if got, want := m.Momentary(), ref.Momentary(); math.Abs(got-want) > 1e-9 {
			t.Errorf("%d-frame blocks: momentary = %v, want %v", frames, got, want)
		}
	}
}

func TestMeterEdges(t *testing.T) {
	m, err := NewMeter(48000, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.ShortTerm(); !math.IsInf(got, -1) {
		t.Errorf("short-term before 3 s = %v, want -Inf", got)
	}
	if err := m.Write(make([]int16, 3)); !errors.Is(err, ErrPartialFrame) {
		t.Errorf("Write(3 samples, stereo) = %v, want ErrPartialFrame", err)
	}
	if err := m.Write(make([]int16, 48000*2*3)); err != nil {
		t.Fatal(err)
	}
	if got := m.ShortTerm(); !math.IsInf(got, -1) {
		t.Errorf("short-term of silence = %v, want -Inf", got)
	}
	for _, f := range []struct{ rate, ch int }{{0, 1}, {44100, 3}, {11025, 1}, {48000, 0}, {384000, 1}} {
		if _, err := NewMeter(f.rate, f.ch); !errors.Is(err, ErrFormat) {
			t.Errorf("NewMeter(%d, %d) = %v, want ErrFormat", f.rate, f.ch, err)
		}
	}
}
