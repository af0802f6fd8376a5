package h264

import (
	"bytes"
	"math/rand/v2"
	"os/exec"
	"slices"
	"testing"
)

// avccNALs splits an MP4 sample back into its NAL units.
func avccNALs(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var nals [][]byte
	for nal, err := range AVCCUnits(b) {
		if err != nil {
			t.Fatal(err)
		}
		nals = append(nals, nal)
	}
	return nals
}

func TestParamSetsCompleteIDRs(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	idr := slice(NALIDR, 0, sliceAI, 300, rng)
	p := slice(NALSlice, 0, sliceAP, 100, rng)
	newPPS := nalu(NALPPS, 0xcf, 0x3c, 0x80)

	// Access units in stream order, each with the sample and key flag that
	// must come of it.
	steps := []struct {
		name string
		au   [][]byte
		want [][]byte
		key  bool
	}{
		{"IDR before any parameter set cannot start a clip", [][]byte{idr}, [][]byte{idr}, false},
		{"P frame", [][]byte{p}, [][]byte{p}, false},
		{"IDR with its own", [][]byte{testAUD, testSPS, testPPS, testSEI, idr}, [][]byte{testSPS, testPPS, testSEI, idr}, true},
		{"P frame stays as it is", [][]byte{p}, [][]byte{p}, false},
		{"bare IDR gets them", [][]byte{testAUD, testSEI, idr}, [][]byte{testSPS, testPPS, testSEI, idr}, true},
		{"a new PPS alone is kept and used", [][]byte{newPPS, idr}, [][]byte{testSPS, newPPS, idr}, true},
		{"and remembered", [][]byte{idr}, [][]byte{testSPS, newPPS, idr}, true},
	}
	var ps ParamSets
	for _, s := range steps {
		stream := annexB(s.au)
		au, err := NewParser(bytes.NewReader(stream)).Next()
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		ps.Update(au)
		out, key := ps.AppendAVCC(nil, au)
		if got := avccNALs(t, out); !slices.EqualFunc(got, s.want, bytes.Equal) || key != s.key {
			t.Errorf("%s: got %d NAL units %x key %v, want %x key %v", s.name, len(got), got, key, s.want, s.key)
		}
	}
}

// A real x264 stream with its SPS and PPS only at the start, as
// h264_v4l2m2m and many USB cameras send them, decodes from a later IDR
// once ParamSets has completed it.
func TestParamSetsDecodeFromALaterIDR(t *testing.T) {
	stream := encode(t, "160x120", 60, 15)
	p := NewParser(bytes.NewReader(stream))
	var ps ParamSets
	var samples [][]byte // from the last IDR on
	idrs, stripped := 0, 0
	for {
		au, err := p.Next()
		if err != nil {
			break
		}
		if idrs > 0 && au.IDR {
			// Take this IDR's parameter sets away, as such an encoder would
			// never have sent them.
			au.NALUs = slices.DeleteFunc(au.NALUs, func(n []byte) bool { t := NALType(n); return t == NALSPS || t == NALPPS })
			au.SPS, au.PPS = nil, nil
			stripped++
		}
		ps.Update(au)
		out, key := ps.AppendAVCC(nil, au)
		if au.IDR {
			idrs++
			if !key {
				t.Fatalf("IDR %d: not a key frame", idrs)
			}
			samples = samples[:0]
		}
		samples = append(samples, out)
	}
	if idrs != 4 || stripped != 3 {
		t.Fatalf("%d IDRs, %d stripped; want 4 and 3", idrs, stripped)
	}
	// Back to Annex B, starting at the last IDR, and into ffmpeg.
	var tail []byte
	for _, s := range samples {
		for _, nal := range avccNALs(t, s) {
			tail = append(append(tail, 0, 0, 0, 1), nal...)
		}
	}
	cmd := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-f", "h264", "-i", "-", "-f", "null", "-")
	cmd.Stdin = bytes.NewReader(tail)
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("ffmpeg decoding from the last IDR: %v: %s", err, out)
	}
}
