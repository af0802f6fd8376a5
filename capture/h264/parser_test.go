package h264

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

// readers returns the ways the tests feed a stream to a Parser: whole, in
// the odd shapes testing/iotest makes, and in chunks of every size from 1 to
// 64 bytes, so start codes and headers fall across reads everywhere. A
// Parser must make the same of a stream whichever way it comes.
func readers(stream []byte) map[string]io.Reader {
	rs := map[string]io.Reader{
		"whole":         bytes.NewReader(stream),
		"one byte":      iotest.OneByteReader(bytes.NewReader(stream)),
		"half":          iotest.HalfReader(bytes.NewReader(stream)),
		"data with EOF": iotest.DataErrReader(bytes.NewReader(stream)),
	}
	for n := 1; n <= 64; n++ {
		rs[fmt.Sprintf("chunks of %d", n)] = &chunkReader{b: stream, n: n}
	}
	return rs
}

// join makes a stream from parts: byte slices, and NAL units marked by sc3 or
// sc4 to get a start code of that length first.
func join(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func sc3(nal []byte) []byte { return append([]byte{0, 0, 1}, nal...) }
func sc4(nal []byte) []byte { return append([]byte{0, 0, 0, 1}, nal...) }

func TestParserAccessUnits(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	idr := func(firstMb uint64) []byte { return slice(NALIDR, firstMb, sliceAI, 300, rng) }
	p := func(firstMb uint64) []byte { return slice(NALSlice, firstMb, sliceAP, 100, rng) }
	eos := []byte{0x0a}
	filler := nalu(NALFiller, 0xff, 0xff, 0x80)
	prefix := nalu(14, 0x80, 0x00, 0x01, 0x80)
	idr0, idr40, idr80, p0, p0b, p40, p80 := idr(0), idr(40), idr(80), p(0), p(0), p(40), p(80)

	tests := []struct {
		name   string
		stream []byte
		want   [][][]byte
	}{{
		name:   "one slice a frame",
		stream: annexB([][]byte{testSPS, testPPS, idr0}, [][]byte{p0}, [][]byte{p0b}),
		want:   [][][]byte{{testSPS, testPPS, idr0}, {p0}, {p0b}},
	}, {
		name:   "several slices a frame",
		stream: annexB([][]byte{testSPS, testPPS, idr0, idr40, idr80}, [][]byte{p0, p40, p80}, [][]byte{p0b, p80}),
		want:   [][][]byte{{testSPS, testPPS, idr0, idr40, idr80}, {p0, p40, p80}, {p0b, p80}},
	}, {
		name:   "access unit delimiters",
		stream: annexB([][]byte{testAUD, testSPS, testPPS, idr0}, [][]byte{testAUD, p0}, [][]byte{testAUD, p0b, p40}),
		want:   [][][]byte{{testAUD, testSPS, testPPS, idr0}, {testAUD, p0}, {testAUD, p0b, p40}},
	}, {
		name:   "parameter sets and SEI before the IDR frame",
		stream: annexB([][]byte{testSEI, p0}, [][]byte{testSPS, testPPS, testSEI, idr0}, [][]byte{testSEI, p0b}),
		want:   [][][]byte{{testSEI, p0}, {testSPS, testPPS, testSEI, idr0}, {testSEI, p0b}},
	}, {
		name:   "3-byte start codes",
		stream: join(sc3(testSPS), sc3(testPPS), sc3(idr0), sc3(p0), sc3(p40), sc3(p0b)),
		want:   [][][]byte{{testSPS, testPPS, idr0}, {p0, p40}, {p0b}},
	}, {
		name: "mixed start codes and zero padding",
		stream: join([]byte{0, 0, 0, 0}, sc4(testSPS), []byte{0, 0}, sc3(testPPS), sc4(idr0),
			[]byte{0, 0, 0, 0, 0, 0}, sc3(p0), sc3(p40), []byte{0, 0, 0}),
		want: [][][]byte{{testSPS, testPPS, idr0}, {p0, p40}},
	}, {
		name:   "empty NAL units",
		stream: join(sc3(nil), sc4(testSPS), sc3(nil), sc3(nil), sc4(testPPS), sc3(idr0), sc3(nil), sc3(p0), sc3(nil)),
		want:   [][][]byte{{testSPS, testPPS, idr0}, {p0}},
	}, {
		name:   "end of sequence",
		stream: annexB([][]byte{testSPS, testPPS, idr0, eos}, [][]byte{idr0}, [][]byte{p0, eos}, [][]byte{testSPS, testPPS, idr0}),
		want:   [][][]byte{{testSPS, testPPS, idr0, eos}, {idr0}, {p0, eos}, {testSPS, testPPS, idr0}},
	}, {
		name:   "filler data",
		stream: annexB([][]byte{testSPS, testPPS, idr0, filler}, [][]byte{p0, filler, p40}),
		want:   [][][]byte{{testSPS, testPPS, idr0, filler}, {p0, filler, p40}},
	}, {
		name:   "prefix NAL unit",
		stream: annexB([][]byte{idr0}, [][]byte{prefix, p0}),
		want:   [][][]byte{{idr0}, {prefix, p0}},
	}, {
		name:   "parameter sets alone",
		stream: annexB([][]byte{testSPS, testPPS}),
		want:   [][][]byte{{testSPS, testPPS}},
	}, {
		name:   "junk before the first start code",
		stream: join([]byte("not video"), annexB([][]byte{testSPS, testPPS, idr0}, [][]byte{p0})),
		want:   [][][]byte{{testSPS, testPPS, idr0}, {p0}},
	}, {
		name:   "stream ends inside a start code",
		stream: join(annexB([][]byte{idr0}, [][]byte{p0}), []byte{0, 0}),
		want:   [][][]byte{{idr0}, {p0}},
	}, {
		name:   "stream ends after a start code",
		stream: join(annexB([][]byte{idr0}, [][]byte{p0}), []byte{0, 0, 0, 1}),
		want:   [][][]byte{{idr0}, {p0}},
	}, {
		name:   "stream ends after a slice's header byte",
		stream: join(annexB([][]byte{idr0}), []byte{0, 0, 1, 0x41}),
		want:   [][][]byte{{idr0}, {{0x41}}},
	}, {
		name:   "slice whose second byte is cut off by a start code",
		stream: join(annexB([][]byte{idr0}), []byte{0, 0, 1, 0x41, 0, 0, 1}, sc3(p0)),
		want:   [][][]byte{{idr0, {0x41}}, {p0}},
	}, {
		name:   "empty stream",
		stream: nil,
		want:   nil,
	}, {
		name:   "zeros then a stream",
		stream: join(make([]byte, 1000), annexB([][]byte{idr0})),
		want:   [][][]byte{{idr0}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for how, r := range readers(tt.stream) {
				got := parseAll(NewParser(r), 100)
				if got.err != io.EOF {
					t.Fatalf("%s: error %v, want io.EOF", how, got.err)
				}
				checkAUs(t, how, got.aus, tt.want)
			}
		})
	}
}

// checkAUs compares access units with the NAL units they should hold.
func checkAUs(t *testing.T, how string, got []parsedAU, want [][][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d access units, want %d", how, len(got), len(want))
	}
	for i, au := range got {
		if !equalNALs(au.nalus, want[i]) {
			t.Fatalf("%s: access unit %d is\n%x\nwant\n%x", how, i, au.nalus, want[i])
		}
		var wantIDR bool
		var wantSPS, wantPPS []byte
		for _, nal := range want[i] {
			switch nal[0] & 0x1f {
			case NALIDR:
				wantIDR = true
			case NALSPS:
				if wantSPS == nil {
					wantSPS = nal
				}
			case NALPPS:
				if wantPPS == nil {
					wantPPS = nal
				}
			}
		}
		if au.idr != wantIDR {
			t.Errorf("%s: access unit %d: IDR = %v, want %v", how, i, au.idr, wantIDR)
		}
		if !bytes.Equal(au.sps, wantSPS) || !bytes.Equal(au.pps, wantPPS) || !au.spsOK || !au.ppsOK {
			t.Errorf("%s: access unit %d: SPS %x, PPS %x (aliasing its NAL units: %v, %v), want %x, %x",
				how, i, au.sps, au.pps, au.spsOK, au.ppsOK, wantSPS, wantPPS)
		}
	}
}

func TestHasBSlice(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	// first_mb_in_slice 2^22-1 codes as 22 zero bits and more, so its bytes
	// need an emulation prevention byte before slice_type.
	const farMb = 1<<22 - 1
	far := slice(NALSlice, farMb, sliceB, 50, rng)
	if !bytes.Contains(far, []byte{0, 0, 3}) {
		t.Fatalf("slice header %x has no emulation prevention byte; the test needs one", far[:8])
	}
	tests := []struct {
		name string
		au   [][]byte
		want bool
	}{
		{"I", [][]byte{slice(NALIDR, 0, sliceI, 50, rng)}, false},
		{"all I", [][]byte{slice(NALIDR, 0, sliceAI, 50, rng)}, false},
		{"P", [][]byte{slice(NALSlice, 0, sliceP, 50, rng)}, false},
		{"all P", [][]byte{slice(NALSlice, 0, sliceAP, 50, rng)}, false},
		{"B", [][]byte{slice(NALSlice, 0, sliceB, 50, rng)}, true},
		{"all B", [][]byte{slice(NALSlice, 0, sliceAB, 50, rng)}, true},
		{"B in the second slice", [][]byte{slice(NALSlice, 0, sliceP, 50, rng), slice(NALSlice, 99, sliceB, 50, rng)}, true},
		{"B after emulation prevention", [][]byte{slice(NALSlice, 0, sliceP, 50, rng), far}, true},
		{"slice_type out of range", [][]byte{slice(NALSlice, 0, 11, 50, rng)}, false},
		{"slice header cut off", [][]byte{{0x41, 0x80}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseAll(NewParser(bytes.NewReader(annexB(tt.au))), 10)
			if got.err != io.EOF || len(got.aus) != 1 {
				t.Fatalf("got %d access units and error %v, want 1 and io.EOF", len(got.aus), got.err)
			}
			if got.aus[0].b != tt.want {
				t.Errorf("HasBSlice = %v, want %v", got.aus[0].b, tt.want)
			}
		})
	}
}

func TestNoStartCode(t *testing.T) {
	const window = 1000
	junk := func(n int) []byte { return bytes.Repeat([]byte{0xff}, n) }
	nal := []byte{0x67, 0x42}
	tests := []struct {
		name    string
		stream  []byte
		wantAUs int
		wantErr error
	}{
		{"garbage past the window", junk(5000), 0, ErrNoStartCode},
		{"garbage filling the window", junk(window), 0, ErrNoStartCode},
		{"garbage, then the end", junk(10), 0, ErrNoStartCode},
		{"zeros only", make([]byte, 10), 0, ErrNoStartCode},
		{"start code ends at the window's end", join(junk(window-3), sc3(nal)), 1, io.EOF},
		{"start code ends one byte past the window", join(junk(window-2), sc3(nal)), 0, ErrNoStartCode},
		{"start code past the window", join(junk(3*window), sc3(nal)), 0, ErrNoStartCode},
		{"no bytes", nil, 0, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for how, r := range readers(tt.stream) {
				p := NewParser(r)
				p.StartCodeWindow = window
				got := parseAll(p, 10)
				if len(got.aus) != tt.wantAUs || !errors.Is(got.err, tt.wantErr) {
					t.Fatalf("%s: %d access units and error %v, want %d and %v", how, len(got.aus), got.err, tt.wantAUs, tt.wantErr)
				}
			}
		})
	}
}

func TestAccessUnitTooLarge(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	idr := slice(NALIDR, 0, sliceAI, 1000, rng)
	p1 := slice(NALSlice, 0, sliceAP, 300, rng)
	p2 := slice(NALSlice, 0, sliceAP, 300, rng)
	// With 3-byte start codes, an access unit's size is its NAL units plus 3
	// bytes each.
	size := func(nals ...[]byte) int {
		n := 0
		for _, nal := range nals {
			n += 3 + len(nal)
		}
		return n
	}
	bigFirst := join(sc3(testSPS), sc3(testPPS), sc3(idr), sc3(p1), sc3(p2))
	bigLast := join(sc3(p1), sc3(p2), sc3(idr))
	tests := []struct {
		name    string
		stream  []byte
		max     int
		wantAUs int
		wantErr error
	}{
		{"first access unit at the limit", bigFirst, size(testSPS, testPPS, idr), 3, io.EOF},
		{"first access unit over the limit", bigFirst, size(testSPS, testPPS, idr) - 1, 0, ErrAccessUnitTooLarge},
		{"last access unit at the limit", bigLast, size(idr), 3, io.EOF},
		{"last access unit over the limit", bigLast, size(idr) - 1, 2, ErrAccessUnitTooLarge},
		{"trailing zeros count", join(bigLast, make([]byte, 10)), size(idr) + 9, 2, ErrAccessUnitTooLarge},
		{"garbage without start codes", join(sc3(p1), bytes.Repeat([]byte{0x55}, 100_000)), 50_000, 0, ErrAccessUnitTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for how, r := range readers(tt.stream) {
				p := NewParser(r)
				p.MaxAccessUnitSize = tt.max
				got := parseAll(p, 10)
				if len(got.aus) != tt.wantAUs || !errors.Is(got.err, tt.wantErr) {
					t.Fatalf("%s: %d access units and error %v, want %d and %v", how, len(got.aus), got.err, tt.wantAUs, tt.wantErr)
				}
			}
		})
	}
}

func TestTooManyNALUnits(t *testing.T) {
	// Slices that continue a picture: first_mb_in_slice is not 0.
	more := []byte{0x41, 0x7f}
	au := func(n int) []byte {
		b := sc3([]byte{0x41, 0x80})
		for range n - 1 {
			b = append(b, sc3(more)...)
		}
		return b
	}
	tests := []struct {
		n       int
		wantAUs int
		wantErr error
	}{
		{MaxNALUnits, 2, io.EOF},
		{MaxNALUnits + 1, 0, ErrAccessUnitTooLarge},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.n), func(t *testing.T) {
			stream := join(au(tt.n), au(1))
			got := parseAll(NewParser(&chunkReader{b: stream, n: 1000}), 10)
			if len(got.aus) != tt.wantAUs || !errors.Is(got.err, tt.wantErr) {
				t.Fatalf("%d access units and error %v, want %d and %v", len(got.aus), got.err, tt.wantAUs, tt.wantErr)
			}
			if tt.wantAUs > 0 && len(got.aus[0].nalus) != tt.n {
				t.Errorf("first access unit has %d NAL units, want %d", len(got.aus[0].nalus), tt.n)
			}
		})
	}
}

var errBroken = errors.New("pipe broke")

// errAfter returns all of b and err from its first Read.
type errAfter struct {
	b    []byte
	err  error
	done bool
}

func (r *errAfter) Read(p []byte) (int, error) {
	if r.done {
		return 0, r.err
	}
	r.done = true
	return copy(p, r.b), r.err
}

type stuckReader struct{}

func (stuckReader) Read([]byte) (int, error) { return 0, nil }

type liarReader struct{}

func (liarReader) Read(p []byte) (int, error) { return len(p) + 1, nil }

func TestReadErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	stream := annexB([][]byte{testSPS, testPPS, slice(NALIDR, 0, sliceAI, 100, rng)},
		[][]byte{slice(NALSlice, 0, sliceAP, 100, rng)}, [][]byte{slice(NALSlice, 0, sliceAP, 100, rng)})
	tests := []struct {
		name    string
		r       io.Reader
		wantAUs int // the last access unit is never known to be complete
		wantErr error
	}{
		{"error after the data", io.MultiReader(bytes.NewReader(stream), iotest.ErrReader(errBroken)), 2, errBroken},
		{"error with the data", &errAfter{b: stream, err: errBroken}, 2, errBroken},
		{"error first", iotest.ErrReader(errBroken), 0, errBroken},
		{"timeout", iotest.TimeoutReader(bytes.NewReader(stream)), 2, iotest.ErrTimeout},
		{"reader returns nothing", stuckReader{}, 0, io.ErrNoProgress},
		{"reader claims too much", liarReader{}, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewParser(tt.r)
			got := parseAll(p, 10)
			if len(got.aus) != tt.wantAUs || got.err == nil || got.err == io.EOF ||
				(tt.wantErr != nil && !errors.Is(got.err, tt.wantErr)) {
				t.Fatalf("%d access units and error %v, want %d and %v", len(got.aus), got.err, tt.wantAUs, tt.wantErr)
			}
			if _, err := p.Next(); err != got.err {
				t.Errorf("Next after error %v returned %v, want the same error", got.err, err)
			}
		})
	}
}

func TestEndOfStreamRepeats(t *testing.T) {
	p := NewParser(bytes.NewReader(annexB([][]byte{testSPS})))
	if _, err := p.Next(); err != nil {
		t.Fatalf("Next = %v, want the access unit", err)
	}
	for i := range 3 {
		if _, err := p.Next(); err != io.EOF {
			t.Fatalf("Next %d after the end = %v, want io.EOF", i, err)
		}
	}
}

func TestAppendAVCC(t *testing.T) {
	filler := nalu(NALFiller, 0xff, 0x80)
	idr := []byte{0x65, 0x88, 0x84}
	tests := []struct {
		name string
		au   AccessUnit
		dst  []byte
		want []byte
	}{{
		name: "parameter sets and SEI stay, delimiter and filler go",
		au:   AccessUnit{NALUs: [][]byte{testAUD, {0x67, 1, 2}, {0x68, 3}, {0x06, 4}, idr, filler}},
		want: []byte{0, 0, 0, 3, 0x67, 1, 2, 0, 0, 0, 2, 0x68, 3, 0, 0, 0, 2, 0x06, 4, 0, 0, 0, 3, 0x65, 0x88, 0x84},
	}, {
		name: "appends to dst",
		au:   AccessUnit{NALUs: [][]byte{idr}},
		dst:  []byte{0xaa},
		want: []byte{0xaa, 0, 0, 0, 3, 0x65, 0x88, 0x84},
	}, {
		name: "empty NAL units are skipped",
		au:   AccessUnit{NALUs: [][]byte{{}, idr}},
		want: []byte{0, 0, 0, 3, 0x65, 0x88, 0x84},
	}, {
		name: "nothing",
		au:   AccessUnit{},
		dst:  []byte{},
		want: []byte{},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := AppendAVCC(tt.dst, tt.au); !bytes.Equal(got, tt.want) {
				t.Errorf("AppendAVCC = %x, want %x", got, tt.want)
			}
		})
	}
}

// testStream returns one GOP of a plausible 720p camera stream: SPS, PPS and
// a 50 KB IDR frame, then P frames of about 10 KB.
func testStream(gop int) []byte {
	rng := rand.New(rand.NewPCG(9, 10))
	aus := [][][]byte{{testSPS, testPPS, slice(NALIDR, 0, sliceAI, 50_000, rng)}}
	for range gop - 1 {
		aus = append(aus, [][]byte{slice(NALSlice, 0, sliceAP, 9_000+rng.IntN(2_000), rng)})
	}
	return annexB(aus...)
}

func TestParserDoesNotAllocate(t *testing.T) {
	stream := testStream(30)
	p := NewParser(&loopReader{b: stream})
	dst := make([]byte, 0, 1<<20)
	next := func() {
		au, err := p.Next()
		if err != nil {
			t.Fatal(err)
		}
		dst = AppendAVCC(dst[:0], au)
	}
	for range 100 { // let the buffers grow
		next()
	}
	if got := testing.AllocsPerRun(300, next); got != 0 {
		t.Errorf("Next and AppendAVCC allocate %v times per access unit, want 0", got)
	}
}

func TestParseSPSDoesNotAllocate(t *testing.T) {
	if got := testing.AllocsPerRun(100, func() { _, _ = ParseSPS(testSPS) }); got != 0 {
		t.Errorf("ParseSPS allocates %v times, want 0", got)
	}
}

// BenchmarkParser cuts a 720p camera stream into access units and turns each
// into an MP4 sample, as the recorder does. One op is one 30-frame GOP.
func BenchmarkParser(b *testing.B) {
	const gop = 30
	stream := testStream(gop)
	p := NewParser(&loopReader{b: stream})
	dst := make([]byte, 0, 1<<20)
	for range 2 * gop { // let the buffers grow
		if _, err := p.Next(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		for range gop {
			au, err := p.Next()
			if err != nil {
				b.Fatal(err)
			}
			dst = AppendAVCC(dst[:0], au)
		}
	}
}
