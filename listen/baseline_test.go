package listen

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestBaselineLearning(t *testing.T) {
	var b Baseline
	if got, ok := b.At(9, -40); got != -40 || ok {
		t.Errorf("empty At(9) = %v, %v; want the default -40, false", got, ok)
	}
	// A level spread evenly over -40..-20 dB: the median is -30.
	for i := range learnedSteps {
		b.observe(9, -40+20*float64((i*7919)%1000)/999)
	}
	got, ok := b.At(9, -40)
	if !ok || math.Abs(got-(-30)) > 1 {
		t.Errorf("after %d steps At(9) = %.2f, %v; want -30 ±1, true", learnedSteps, got, ok)
	}
	if got, ok := b.At(10, -40); !ok || got != b.all.lufs {
		t.Errorf("unheard hour At(10) = %.2f, %v; want the all-hours %.2f, true", got, ok, b.all.lufs)
	}
	// Once learned, a minute of shouting 20 dB over moves it 3 dB at most.
	before := b.hours[9].lufs
	for range 600 {
		b.observe(9, -10)
	}
	if moved := b.hours[9].lufs - before; moved > 3.0001 || moved <= 0 {
		t.Errorf("a minute at -10 LUFS moved the learned baseline %.3f dB, want (0, 3]", moved)
	}
	for _, x := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		b.observe(9, x)
	}
	if math.IsNaN(b.hours[9].lufs) || math.IsInf(b.hours[9].lufs, 0) {
		t.Errorf("non-finite input got into the estimate: %v", b.hours[9].lufs)
	}
}

func TestBaselineRoundTrip(t *testing.T) {
	var b Baseline
	for h := range 24 {
		for range 10 * h {
			b.observe(h, -50+float64(h))
		}
	}
	data, err := b.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > MaxBaselineSize/4 {
		t.Errorf("saved baseline is %d bytes, want well under %d", len(data), MaxBaselineSize)
	}
	got, err := ParseBaseline(data)
	if err != nil {
		t.Fatalf("ParseBaseline(%s) = %v", data, err)
	}
	for h := range 24 {
		if g, w := got.hours[h], b.hours[h]; g.steps != w.steps || math.Abs(g.lufs-w.lufs) > 0.005 {
			t.Errorf("hour %d = %+v, want %+v", h, g, w)
		}
	}
}

func TestParseBaselineRefuses(t *testing.T) {
	good, _ := Baseline{}.MarshalJSON()
	hours := strings.Repeat(`{"lufs":-40,"steps":1},`, 23) + `{"lufs":-40,"steps":1}`
	tests := []struct {
		name, data, want string
	}{
		{"empty", ``, "EOF"},
		{"not JSON", `hello`, "invalid character"},
		{"version 2", `{"version":2,"all":{"lufs":-40,"steps":1},"hours":[` + hours + `]}`, "version 2"},
		{"23 hours", `{"version":1,"all":{"lufs":-40,"steps":1},"hours":[` + strings.Repeat(`{"lufs":-40,"steps":1},`, 22) + `{"lufs":-40,"steps":1}]}`, "23 hours"},
		{"level above 0", `{"version":1,"all":{"lufs":3,"steps":1},"hours":[` + hours + `]}`, "outside"},
		{"negative steps", `{"version":1,"all":{"lufs":-40,"steps":-1},"hours":[` + hours + `]}`, "cannot unmarshal"},
		{"unknown field", `{"version":1,"gain":7,"all":{"lufs":-40,"steps":1},"hours":[` + hours + `]}`, "unknown field"},
		{"trailing data", string(good) + `{}`, "after the baseline"},
		{"too large", strings.Repeat(" ", MaxBaselineSize+1), "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseBaseline([]byte(tt.data))
			if !errors.Is(err, ErrBadBaseline) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseBaseline = %v, want ErrBadBaseline saying %q", err, tt.want)
			}
		})
	}
}

// FuzzParseBaseline: no input panics; whatever parses saves and parses
// back the same.
func FuzzParseBaseline(f *testing.F) {
	var b Baseline
	for i := range 700 {
		b.observe(i%24, -45+float64(i%9))
	}
	seed, _ := b.MarshalJSON()
	f.Add(seed)
	empty, _ := Baseline{}.MarshalJSON()
	f.Add(empty)
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseBaseline(data)
		if err != nil {
			if !errors.Is(err, ErrBadBaseline) {
				t.Fatalf("error %v does not wrap ErrBadBaseline", err)
			}
			return
		}
		again, err := got.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseBaseline(again)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", again, err)
		}
		for h := range 24 {
			if back.hours[h].steps != got.hours[h].steps || math.Abs(back.hours[h].lufs-got.hours[h].lufs) > 0.005 {
				t.Fatalf("hour %d: %+v after a round trip, want %+v", h, back.hours[h], got.hours[h])
			}
		}
	})
}
