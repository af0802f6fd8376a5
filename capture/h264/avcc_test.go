package h264

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func TestAVCCUnits(t *testing.T) {
	sps, idr := []byte{0x67, 1, 2}, []byte{0x65, 0x88, 0x84}
	whole := AppendAVCC(nil, AccessUnit{NALUs: [][]byte{sps, idr}})
	tests := []struct {
		name    string
		sample  []byte
		want    [][]byte
		wantErr bool
	}{
		{"empty", nil, nil, false},
		{"whole", whole, [][]byte{sps, idr}, false},
		{"stray bytes after the last unit", append(whole[:len(whole):len(whole)], 0, 0), [][]byte{sps, idr}, true},
		{"length runs past the end", whole[:len(whole)-1], [][]byte{sps}, true},
		{"zero length", append([]byte{0, 0, 0, 0}, whole...), nil, true},
		{"length beyond 2 GiB", []byte{0xff, 0xff, 0xff, 0xff, 0x65}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got [][]byte
			var gotErr error
			for nal, err := range AVCCUnits(tt.sample) {
				if err != nil {
					gotErr = err
					continue // the iterator must stop by itself
				}
				got = append(got, nal)
			}
			if !equalNALs(got, tt.want) {
				t.Errorf("units = %x, want %x", got, tt.want)
			}
			if (gotErr != nil) != tt.wantErr || gotErr != nil && !errors.Is(gotErr, ErrInvalidAVCC) {
				t.Errorf("error = %v, want one wrapping ErrInvalidAVCC: %v", gotErr, tt.wantErr)
			}
		})
	}
}

func TestAVCCUnitsStopsWhenTold(t *testing.T) {
	sample := AppendAVCC(nil, AccessUnit{NALUs: [][]byte{{0x67, 1}, {0x68, 2}, {0x65, 3}}})
	n := 0
	for range AVCCUnits(sample) {
		n++
		break
	}
	if n != 1 {
		t.Errorf("the loop body ran %d times after a break, want 1", n)
	}
}

func TestAVCCUnitsDoesNotAllocate(t *testing.T) {
	sample := AppendAVCC(nil, AccessUnit{NALUs: [][]byte{testSPS, testPPS, {0x65, 0x88, 0x84}}})
	var sps []byte
	allocs := testing.AllocsPerRun(100, func() {
		for nal, err := range AVCCUnits(sample) {
			if err == nil && NALType(nal) == NALSPS {
				sps = nal
			}
		}
	})
	if allocs != 0 || !bytes.Equal(sps, testSPS) {
		t.Errorf("walking a whole sample: %v allocations, SPS %x; want 0 and %x", allocs, sps, testSPS)
	}
}

func TestNALType(t *testing.T) {
	tests := []struct {
		nal  []byte
		want byte
	}{
		{nil, 0},
		{[]byte{0x67, 0x64}, NALSPS},
		{[]byte{0x68}, NALPPS},
		{[]byte{0x65}, NALIDR},
		{[]byte{0x41}, NALSlice},
		{[]byte{0x09, 0xf0}, NALAUD},
		{[]byte{0xe6}, NALSEI}, // forbidden_zero_bit and nal_ref_idc are not the type
	}
	for _, tt := range tests {
		if got := NALType(tt.nal); got != tt.want {
			t.Errorf("NALType(%x) = %d, want %d", tt.nal, got, tt.want)
		}
	}
}

// FuzzAVCCUnits walks any bytes as an AVCC sample. It must not panic, must
// yield only non-empty units that, length-prefixed again, rebuild the start
// of the input, and must report an error exactly when that is not all of it.
func FuzzAVCCUnits(f *testing.F) {
	f.Add([]byte{})
	f.Add(AppendAVCC(nil, AccessUnit{NALUs: [][]byte{testSPS, testPPS, {0x65, 0x88}}}))
	f.Add([]byte{0, 0, 0, 1, 0x65, 0, 0})
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0x80, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, sample []byte) {
		var rebuilt []byte
		var failed error
		for nal, err := range AVCCUnits(sample) {
			if failed != nil {
				t.Fatal("the iterator went on after an error")
			}
			if err != nil {
				failed = err
				continue
			}
			if len(nal) == 0 {
				t.Fatal("an empty NAL unit")
			}
			rebuilt = append(binary.BigEndian.AppendUint32(rebuilt, uint32(len(nal))), nal...)
		}
		if !bytes.HasPrefix(sample, rebuilt) {
			t.Fatalf("the units rebuild %x, not a prefix of %x", rebuilt, sample)
		}
		if whole := len(rebuilt) == len(sample); whole != (failed == nil) || failed != nil && !errors.Is(failed, ErrInvalidAVCC) {
			t.Fatalf("consumed %d of %d bytes, error %v", len(rebuilt), len(sample), failed)
		}
	})
}
