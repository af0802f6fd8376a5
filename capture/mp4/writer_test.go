package mp4

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// testBox is a box found by the tests' own reader, which is kept apart from
// the package's so that a bug in one cannot hide in the other.
type testBox struct {
	typ  string
	off  int // offset of the box in the slice it was found in
	size int
	body []byte
}

// boxesIn lists the boxes in b, which must hold whole boxes with 32-bit sizes.
func boxesIn(t testing.TB, b []byte) []testBox {
	t.Helper()
	var out []testBox
	for off := 0; off < len(b); {
		if len(b)-off < 8 {
			t.Fatalf("%d stray bytes at %d", len(b)-off, off)
		}
		size := int(binary.BigEndian.Uint32(b[off:]))
		if size < 8 || size > len(b)-off {
			t.Fatalf("box %q at %d has size %d, %d bytes left", b[off+4:off+8], off, size, len(b)-off)
		}
		out = append(out, testBox{string(b[off+4 : off+8]), off, size, b[off+8 : off+size]})
		off += size
	}
	return out
}

// find returns the bodies of the boxes at path below b, descending into the
// container boxes named on the way.
func find(t testing.TB, b []byte, path ...string) [][]byte {
	t.Helper()
	var out [][]byte
	for _, x := range boxesIn(t, b) {
		if x.typ != path[0] {
			continue
		}
		if len(path) == 1 {
			out = append(out, x.body)
		} else {
			out = append(out, find(t, x.body, path[1:]...)...)
		}
	}
	return out
}

func one(t testing.TB, b []byte, path ...string) []byte {
	t.Helper()
	got := find(t, b, path...)
	if len(got) != 1 {
		t.Fatalf("found %d %s boxes, want 1", len(got), strings.Join(path, "/"))
	}
	return got[0]
}

func be32(b []byte, off int) uint32 { return binary.BigEndian.Uint32(b[off:]) }
func be64(b []byte, off int) uint64 { return binary.BigEndian.Uint64(b[off:]) }

func TestTicks(t *testing.T) {
	tests := []struct {
		d     time.Duration
		scale uint32
		want  uint64
	}{
		{0, 90000, 0},
		{time.Second, 90000, 90000},
		{time.Second / 30, 90000, 3000}, // 33333333 ns rounds up
		{299 * time.Second / 30, 90000, 897000},
		{20 * time.Millisecond, 48000, 960},
		{5555, 90000, 0}, // 0.49995 of a tick
		{5556, 90000, 1}, // 0.50004 of a tick
		{1499 * time.Microsecond, 1000, 1},
		{1500 * time.Microsecond, 1000, 2},
		{math.MaxInt64, 90000, 830103483316930},
		{math.MaxInt64, 48000, 442721857769029},
	}
	for _, tc := range tests {
		if got := ticks(tc.d, tc.scale); got != tc.want {
			t.Errorf("ticks(%v, %d) = %d, want %d", tc.d, tc.scale, got, tc.want)
		}
	}
	if got := rescale(math.MaxUint64, 1, 1000); got != math.MaxUint64 {
		t.Errorf("rescale(MaxUint64, 1, 1000) = %d, want saturation at MaxUint64", got)
	}
	if got := duration(math.MaxUint64, 1); got != math.MaxInt64 {
		t.Errorf("duration(MaxUint64, 1) = %d, want saturation at MaxInt64", got)
	}
	if got, want := duration(897000, 90000), 9966666667*time.Nanosecond; got != want {
		t.Errorf("duration(897000, 90000) = %v, want %v", got, want)
	}
}

func TestEntryRate(t *testing.T) {
	tests := []struct{ rate, want int }{
		{8000, 8000},
		{44100, 44100},
		{48000, 48000},
		{65535, 65535},
		{88200, 44100},
		{96000, 48000},
		{176400, 44100},
		{192000, 48000},
		{131072, 32768},
		{100001, 65535}, // odd: no regular division fits
		{196610, 65535}, // halves once to 98305, odd
	}
	for _, tc := range tests {
		if got := entryRate(tc.rate); got != uint32(tc.want)<<16 {
			t.Errorf("entryRate(%d) = %d<<16 + %d, want %d<<16", tc.rate, got>>16, got&0xFFFF, tc.want)
		}
	}
}

func TestAVCConfig(t *testing.T) {
	pps := []byte{0x68, 0xCE, 0x3C, 0x80}
	record := func(sps []byte, profile, compat, level byte, trailer ...byte) []byte {
		r := []byte{1, profile, compat, level, 0xFF, 0xE1, 0, byte(len(sps))}
		r = append(r, sps...)
		r = append(r, 1, 0, byte(len(pps)))
		r = append(r, pps...)
		return append(r, trailer...)
	}
	baseline := []byte{0x67, 0x42, 0xC0, 0x1E, 0xDA, 0x02, 0x80, 0xBF, 0xE5}
	// High, level 4.0: seq_parameter_set_id 0, chroma_format_idc 1, 8-bit
	// luma and chroma: 1 010 1 1, then more SPS.
	high := []byte{0x67, 0x64, 0x00, 0x28, 0xAE, 0x40}
	// High 4:2:2, 10-bit: id 0, chroma_format_idc 2, depths 10 and 10:
	// 1 011 011 011.
	high422 := []byte{0x67, 0x7A, 0x00, 0x28, 0xB6, 0xE0}
	// High 4:4:4 Predictive with separate_colour_plane_flag: 1 00100 1 1 1.
	high444 := []byte{0x67, 0xF4, 0x00, 0x28, 0x93, 0x80}
	// High with constraint flags 0 and level 0: the 0x000003 after them is
	// an emulation prevention byte that must not be read as SPS bits.
	escaped := []byte{0x67, 0x64, 0x00, 0x00, 0x03, 0xAE}

	tests := []struct {
		name    string
		sps     []byte
		pps     []byte
		want    []byte
		wantErr string
	}{
		{"baseline has no trailer", baseline, pps, record(baseline, 0x42, 0xC0, 0x1E), ""},
		{"high 4:2:0 8-bit", high, pps, record(high, 0x64, 0x00, 0x28, 0xFD, 0xF8, 0xF8, 0), ""},
		{"high 4:2:2 10-bit", high422, pps, record(high422, 0x7A, 0x00, 0x28, 0xFE, 0xFA, 0xFA, 0), ""},
		{"high 4:4:4", high444, pps, record(high444, 0xF4, 0x00, 0x28, 0xFF, 0xF8, 0xF8, 0), ""},
		{"emulation prevention", escaped, pps, record(escaped, 0x64, 0x00, 0x00, 0xFD, 0xF8, 0xF8, 0), ""},
		{"empty SPS", nil, pps, nil, "not a sequence parameter set"},
		{"SPS is a PPS", pps, pps, nil, "not a sequence parameter set"},
		{"short SPS", baseline[:3], pps, nil, "not a sequence parameter set"},
		{"forbidden bit", append([]byte{0xE7}, baseline[1:]...), pps, nil, "not a sequence parameter set"},
		{"PPS is an SPS", baseline, baseline, nil, "not a picture parameter set"},
		{"empty PPS", baseline, nil, nil, "not a picture parameter set"},
		{"high SPS cut short", high[:4], pps, nil, "SPS is truncated"},
		{"high SPS all zero bits", []byte{0x67, 0x64, 0x00, 0x28, 0, 0, 0, 0, 0}, pps, nil, "truncated or malformed"},
		{"chroma_format_idc 4", []byte{0x67, 0x64, 0x00, 0x28, 0x97}, pps, nil, "chroma_format_idc 4"},
		{"long SPS", append(slices.Clone(baseline), make([]byte, 0x10000)...), pps, nil, "longer than 65535"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := avcConfig(tc.sps, tc.pps)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("avcConfig() error = %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("avcConfig() error = %v", err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Errorf("avcConfig() = %x, want %x", got, tc.want)
			}
		})
	}
}

func TestNewWriterRejects(t *testing.T) {
	m := syntheticMedia(1)
	video := func(edit func(v *VideoTrack)) *VideoTrack {
		v := *m.video
		edit(&v)
		return &v
	}
	audio := func(edit func(a *AudioTrack)) *AudioTrack {
		a := *m.audio
		edit(&a)
		return &a
	}
	tests := []struct {
		name    string
		p       Params
		wantErr string
	}{
		{"no tracks", Params{}, "neither a video nor an audio track"},
		{"zero width", Params{Video: video(func(v *VideoTrack) { v.Width = 0 })}, "video size 0x360"},
		{"huge height", Params{Video: video(func(v *VideoTrack) { v.Height = 70000 })}, "video size 640x70000"},
		{"no SPS", Params{Video: video(func(v *VideoTrack) { v.SPS = nil })}, "SPS"},
		{"no PPS", Params{Video: video(func(v *VideoTrack) { v.PPS = nil })}, "PPS"},
		{"short STREAMINFO", Params{Audio: audio(func(a *AudioTrack) { a.StreamInfo = a.StreamInfo[:33] })}, "33 bytes, want 34"},
		{"rate disagrees", Params{Audio: audio(func(a *AudioTrack) { a.SampleRate = 44100 })}, "44100 Hz"},
		{"channels disagree", Params{Audio: audio(func(a *AudioTrack) { a.Channels = 2 })}, "2 channels"},
		{"bits disagree", Params{Audio: audio(func(a *AudioTrack) { a.BitsPerSample = 24 })}, "24 bits"},
		{"rate 0", Params{Audio: audio(func(a *AudioTrack) {
			a.SampleRate, a.StreamInfo = 0, streamInfo(0, 1, 16)
		})}, "sample rate 0"},
		{"bad video beside good audio", Params{Video: video(func(v *VideoTrack) { v.PPS = []byte{0x68} }), Audio: m.audio}, "PPS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var f memFile
			w, err := NewWriter(&f, tc.p)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("NewWriter() = %v, %v; want an error saying %q", w, err, tc.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "mp4: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if len(f.b) != 0 {
				t.Errorf("NewWriter() wrote %d bytes before failing", len(f.b))
			}
		})
	}
}

func TestInitSegment(t *testing.T) {
	m := syntheticMedia(1)
	created := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	const createdMP4 uint64 = 3823675200 // seconds from 1904 to created

	t.Run("video and audio", func(t *testing.T) {
		var f memFile
		if _, err := NewWriter(&f, Params{Video: m.video, Audio: m.audio, Created: created}); err != nil {
			t.Fatal(err)
		}
		if f.syncs != 1 {
			t.Errorf("NewWriter synced %d times, want 1", f.syncs)
		}
		var types []string
		for _, b := range boxesIn(t, f.b) {
			types = append(types, b.typ)
		}
		if want := []string{"ftyp", "moov"}; !slices.Equal(types, want) {
			t.Fatalf("top-level boxes %v, want %v", types, want)
		}
		if got, want := string(one(t, f.b, "ftyp")), "isom\x00\x00\x00\x00isomiso6mp41avc1"; got != want {
			t.Errorf("ftyp = %q, want %q", got, want)
		}
		mvhd := one(t, f.b, "moov", "mvhd")
		if got := []uint64{uint64(mvhd[0]), be64(mvhd, 4), be64(mvhd, 12), uint64(be32(mvhd, 20)), be64(mvhd, 24), uint64(be32(mvhd, 108))}; !slices.Equal(got, []uint64{1, createdMP4, createdMP4, 1000, 0, 3}) {
			t.Errorf("mvhd version, created, modified, timescale, duration, next track = %v, want [1 %d %d 1000 0 3]", got, createdMP4, createdMP4)
		}
		traks := find(t, f.b, "moov", "trak")
		if len(traks) != 2 {
			t.Fatalf("found %d traks, want 2", len(traks))
		}
		for i, want := range []struct {
			id        uint32
			handler   string
			timescale uint32
			width     uint32
			volume    uint16
		}{{1, "vide", videoTimescale, 640 << 16, 0}, {2, "soun", 48000, 0, 0x0100}} {
			tkhd := one(t, traks[i], "tkhd")
			if id, width, volume := be32(tkhd, 20), be32(tkhd, 88), binary.BigEndian.Uint16(tkhd[48:]); id != want.id || width != want.width || volume != want.volume {
				t.Errorf("trak %d tkhd ID, width, volume = %d, %#x, %#x, want %d, %#x, %#x", i, id, width, volume, want.id, want.width, want.volume)
			}
			if flags := be32(tkhd, 0) & 0xFFFFFF; flags != 3 {
				t.Errorf("trak %d tkhd flags = %#x, want 3 (enabled, in movie)", i, flags)
			}
			mdhd := one(t, traks[i], "mdia", "mdhd")
			if ts := be32(mdhd, 20); ts != want.timescale {
				t.Errorf("trak %d mdhd timescale = %d, want %d", i, ts, want.timescale)
			}
			if lang := binary.BigEndian.Uint16(mdhd[32:]); lang != 0x55C4 {
				t.Errorf("trak %d mdhd language = %#x, want 0x55c4 (und)", i, lang)
			}
			if h := string(one(t, traks[i], "mdia", "hdlr")[8:12]); h != want.handler {
				t.Errorf("trak %d handler = %q, want %q", i, h, want.handler)
			}
			if url := one(t, traks[i], "mdia", "minf", "dinf", "dref"); !bytes.Equal(url, []byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 12, 'u', 'r', 'l', ' ', 0, 0, 0, 1}) {
				t.Errorf("trak %d dref = %x, want one self-contained url entry", i, url)
			}
			stbl := one(t, traks[i], "mdia", "minf", "stbl")
			// The video's stts states the frame rate in one entry of no
			// samples: 1/30 s in 1/900000 s ticks.
			wantStts := make([]byte, 8)
			if want.handler == "vide" {
				wantStts = []byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x75, 0x30}
			}
			if b := one(t, stbl, "stts"); !bytes.Equal(b, wantStts) {
				t.Errorf("trak %d stts = %x, want %x", i, b, wantStts)
			}
			for _, typ := range []string{"stsc", "stco"} {
				if b := one(t, stbl, typ); !bytes.Equal(b, make([]byte, 8)) {
					t.Errorf("trak %d %s = %x, want empty", i, typ, b)
				}
			}
			if b := one(t, stbl, "stsz"); !bytes.Equal(b, make([]byte, 12)) {
				t.Errorf("trak %d stsz = %x, want empty", i, b)
			}
		}

		stsd := one(t, traks[0], "mdia", "minf", "stbl", "stsd")
		entries := boxesIn(t, stsd[8:])
		if len(entries) != 1 || entries[0].typ != "avc1" {
			t.Fatalf("video sample entries %v, want one avc1", entries)
		}
		avc1 := entries[0].body
		if w, h := binary.BigEndian.Uint16(avc1[24:]), binary.BigEndian.Uint16(avc1[26:]); w != 640 || h != 360 {
			t.Errorf("avc1 size = %dx%d, want 640x360", w, h)
		}
		want, _ := avcConfig(m.video.SPS, m.video.PPS)
		if got := one(t, avc1[78:], "avcC"); !bytes.Equal(got, want) {
			t.Errorf("avcC = %x, want %x", got, want)
		}

		stsd = one(t, traks[1], "mdia", "minf", "stbl", "stsd")
		entries = boxesIn(t, stsd[8:])
		if len(entries) != 1 || entries[0].typ != "fLaC" {
			t.Fatalf("audio sample entries %v, want one fLaC", entries)
		}
		flac := entries[0].body
		if ch, bits, rate := binary.BigEndian.Uint16(flac[16:]), binary.BigEndian.Uint16(flac[18:]), be32(flac, 24); ch != 1 || bits != 16 || rate != 48000<<16 {
			t.Errorf("fLaC channels, bits, rate = %d, %d, %#x; want 1, 16, 48000<<16", ch, bits, rate)
		}
		wantDfla := append([]byte{0, 0, 0, 0, 0x80, 0, 0, 34}, m.audio.StreamInfo...)
		if got := one(t, flac[28:], "dfLa"); !bytes.Equal(got, wantDfla) {
			t.Errorf("dfLa = %x, want %x", got, wantDfla)
		}

		if mehd := one(t, f.b, "moov", "mvex", "mehd"); !bytes.Equal(mehd, []byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) {
			t.Errorf("mehd = %x, want version 1 with duration 0", mehd)
		}
		trex := find(t, f.b, "moov", "mvex", "trex")
		if len(trex) != 2 || be32(trex[0], 4) != 1 || be32(trex[1], 4) != 2 || be32(trex[0], 8) != 1 {
			t.Errorf("trex = %x, want one per track with sample description 1", trex)
		}
	})

	t.Run("audio only", func(t *testing.T) {
		var f memFile
		if _, err := NewWriter(&f, Params{Audio: m.audio}); err != nil {
			t.Fatal(err)
		}
		if got, want := string(one(t, f.b, "ftyp")), "isom\x00\x00\x00\x00isomiso6mp41"; got != want {
			t.Errorf("ftyp = %q, want %q", got, want)
		}
		if mvhd := one(t, f.b, "moov", "mvhd"); be64(mvhd, 4) != 0 || be32(mvhd, 108) != 2 {
			t.Errorf("mvhd creation time %d, next track %d; want 0 for a zero Created, 2", be64(mvhd, 4), be32(mvhd, 108))
		}
		if tkhd := one(t, f.b, "moov", "trak", "tkhd"); be32(tkhd, 20) != 1 {
			t.Errorf("audio track ID = %d, want 1", be32(tkhd, 20))
		}
	})
}

// trunEntry is one sample of a trun as the tests read it.
type trunEntry struct{ duration, size, flags uint32 }

// trafOf returns the tfdt and trun entries of track id in a moof body, and
// checks the tfhd and that each sample's data is where the trun says.
func trafOf(t testing.TB, clip []byte, moof testBox, id uint32) (tfdt uint64, entries []trunEntry, data [][]byte) {
	t.Helper()
	for _, traf := range find(t, moof.body, "traf") {
		tfhd := one(t, traf, "tfhd")
		if be32(tfhd, 4) != id {
			continue
		}
		if len(tfhd) != 8 || be32(tfhd, 0) != 0x020000 {
			t.Errorf("tfhd = %x, want version 0, flags default-base-is-moof, no optional fields", tfhd)
		}
		b := one(t, traf, "tfdt")
		if b[0] != 1 {
			t.Errorf("tfdt version %d, want 1", b[0])
		}
		tfdt = be64(b, 4)
		trun := one(t, traf, "trun")
		if be32(trun, 0) != 0x000701 {
			t.Errorf("trun version and flags %#x, want 0x000701", be32(trun, 0))
		}
		n := int(be32(trun, 4))
		off := moof.off + int(int32(be32(trun, 8)))
		if len(trun) != 12+12*n {
			t.Fatalf("trun is %d bytes for %d samples", len(trun), n)
		}
		for i := range n {
			e := trunEntry{be32(trun, 12+12*i), be32(trun, 16+12*i), be32(trun, 20+12*i)}
			entries = append(entries, e)
			data = append(data, clip[off:off+int(e.size)])
			off += int(e.size)
		}
		return tfdt, entries, data
	}
	return 0, nil, nil
}

func TestFragments(t *testing.T) {
	m := syntheticMedia(3)
	var f memFile
	w, err := NewWriter(&f, Params{Video: m.video, Audio: m.audio})
	if err != nil {
		t.Fatal(err)
	}
	vf, af := fragments(m.videoSamples, time.Second, 3), fragments(m.audioSamples, time.Second, 3)
	vf[1] = nil // a fragment with audio only
	for k := range 3 {
		if err := w.WriteFragment(vf[k], af[k]); err != nil {
			t.Fatal(err)
		}
		if f.syncs != k+2 {
			t.Errorf("after fragment %d the file was synced %d times, want %d", k, f.syncs, k+2)
		}
	}
	top := boxesIn(t, f.b)
	var types []string
	for _, b := range top {
		types = append(types, b.typ)
	}
	if want := []string{"ftyp", "moov", "moof", "mdat", "moof", "mdat", "moof", "mdat"}; !slices.Equal(types, want) {
		t.Fatalf("top-level boxes %v, want %v", types, want)
	}
	for k := range 3 {
		moof, mdat := top[2+2*k], top[3+2*k]
		if seq := be32(one(t, moof.body, "mfhd"), 4); seq != uint32(k+1) {
			t.Errorf("fragment %d mfhd sequence number %d, want %d", k, seq, k+1)
		}
		wantTrafs := 2
		if k == 1 {
			wantTrafs = 1
		}
		if n := len(find(t, moof.body, "traf")); n != wantTrafs {
			t.Errorf("fragment %d has %d trafs, want %d", k, n, wantTrafs)
		}
		var inMdat int
		for _, tr := range []struct {
			id      uint32
			samples []Sample
			tick    uint32
			scale   uint64
		}{{1, vf[k], videoTimescale / 30, videoTimescale}, {2, af[k], 960, 48000}} {
			tfdt, entries, data := trafOf(t, f.b, moof, tr.id)
			if len(entries) != len(tr.samples) {
				t.Errorf("fragment %d track %d has %d samples, want %d", k, tr.id, len(entries), len(tr.samples))
				continue
			}
			if len(entries) == 0 {
				continue
			}
			if want := uint64(k) * tr.scale; tfdt != want {
				t.Errorf("fragment %d track %d tfdt = %d, want %d", k, tr.id, tfdt, want)
			}
			for i, e := range entries {
				s := tr.samples[i]
				// sample_depends_on 2 (no other sample) for a sync sample;
				// sample_depends_on 1 and sample_is_non_sync_sample otherwise.
				want := trunEntry{tr.tick, uint32(len(s.Data)), 0x02000000}
				if tr.id == 1 && !s.Key {
					want.flags = 0x01010000
				}
				if e != want {
					t.Errorf("fragment %d track %d sample %d = %+v, want %+v", k, tr.id, i, e, want)
				}
				if !bytes.Equal(data[i], s.Data) {
					t.Errorf("fragment %d track %d sample %d data = %x, want %x", k, tr.id, i, data[i], s.Data)
				}
				inMdat += len(s.Data)
			}
		}
		if len(mdat.body) != inMdat {
			t.Errorf("fragment %d mdat holds %d bytes, want the %d bytes of its samples", k, len(mdat.body), inMdat)
		}
	}
	want := Info{
		Duration:  3 * time.Second,
		Video:     TrackInfo{Samples: 60, Duration: 3 * time.Second, FrameDuration: time.Second / 30},
		Audio:     TrackInfo{Samples: 150, Duration: 3 * time.Second},
		Fragments: 3,
		Size:      int64(len(f.b)),
	}
	if got := w.Info(); got != want {
		t.Errorf("Info() = %+v, want %+v", got, want)
	}

	if err := w.Finalize(); err != nil {
		t.Fatal(err)
	}
	if f.syncs != 5 {
		t.Errorf("after Finalize the file was synced %d times, want 5", f.syncs)
	}
	if d := be64(one(t, f.b, "moov", "mvhd"), 24); d != 3000 {
		t.Errorf("mvhd duration = %d, want 3000", d)
	}
	if d := be64(one(t, f.b, "moov", "mvex", "mehd"), 4); d != 3000 {
		t.Errorf("mehd duration = %d, want 3000", d)
	}
	for i, trak := range find(t, f.b, "moov", "trak") {
		if d := be64(one(t, trak, "tkhd"), 28); d != 3000 {
			t.Errorf("trak %d tkhd duration = %d, want 3000", i, d)
		}
		if d, want := be64(one(t, trak, "mdia", "mdhd"), 24), []uint64{3 * videoTimescale, 144000}[i]; d != want {
			t.Errorf("trak %d mdhd duration = %d, want %d", i, d, want)
		}
	}
	if err := w.WriteFragment(vf[0], nil); err == nil {
		t.Error("WriteFragment after Finalize succeeded")
	}
	if err := w.Finalize(); err == nil {
		t.Error("second Finalize succeeded")
	}
}

// TestLargeFragment writes a fragment of megabytes, as a pre-roll is: it
// reaches the file whole and in order, but never through a buffer larger
// than writeChunk or the largest sample.
func TestLargeFragment(t *testing.T) {
	m := syntheticMedia(2)
	// An AVCC sample of one NAL unit of n bytes: header, then fill.
	nal := func(header byte, n int, fill byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(n))
		b = append(b, header)
		return append(b, bytes.Repeat([]byte{fill}, n-1)...)
	}
	m.videoSamples[0].Data = nal(0x65, 2*writeChunk, 0xAA)
	for i := 1; i < len(m.videoSamples); i++ {
		m.videoSamples[i].Data = nal(0x41, 40<<10, byte(i))
	}
	var f memFile
	w, err := NewWriter(&f, Params{Video: m.video, Audio: m.audio})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFragment(m.videoSamples, m.audioSamples); err != nil {
		t.Fatal(err)
	}
	top := boxesIn(t, f.b)
	if len(top) != 4 || top[2].typ != "moof" || top[3].typ != "mdat" {
		t.Fatalf("top-level boxes %v, want ftyp, moov, moof, mdat", top)
	}
	var want int
	for _, tr := range []struct {
		id      uint32
		samples []Sample
	}{{1, m.videoSamples}, {2, m.audioSamples}} {
		_, entries, data := trafOf(t, f.b, top[2], tr.id)
		if len(entries) != len(tr.samples) {
			t.Fatalf("track %d has %d samples, want %d", tr.id, len(entries), len(tr.samples))
		}
		for i, s := range tr.samples {
			if !bytes.Equal(data[i], s.Data) {
				t.Fatalf("track %d sample %d: the file holds other bytes than the sample's", tr.id, i)
			}
			want += len(s.Data)
		}
	}
	if len(top[3].body) != want {
		t.Errorf("mdat holds %d bytes, want %d", len(top[3].body), want)
	}
	if got := w.Info().Size; got != int64(len(f.b)) {
		t.Errorf("Info().Size = %d, the file has %d bytes", got, len(f.b))
	}
	if limit := 2*writeChunk + 4; f.largest > limit {
		t.Errorf("the largest write was %d bytes, want at most %d (the largest sample)", f.largest, limit)
	}
	t.Logf("%d bytes in %d writes, the largest %d", len(f.b), f.writes, f.largest)
}

func TestSampleTiming(t *testing.T) {
	m := syntheticMedia(2)
	key, delta := m.videoSamples[0].Data, m.videoSamples[1].Data
	at := func(ms float64, isKey bool) Sample {
		s := Sample{Time: time.Duration(ms * float64(time.Millisecond)), Duration: time.Second / 30, Data: delta}
		if isKey {
			s.Key, s.Data = true, key
		}
		return s
	}
	frags := [][]Sample{
		// 66.7 ms is missing: the frame before it lasts twice as long.
		{at(0, true), at(33.333, false), at(100, false), at(133.333, false)},
		// Starts 16.7 ms before the previous fragment ends: moved to its end.
		{at(150, false), at(200, false)},
		// Starts long after the previous fragment ends: a gap between them.
		{at(1000, true)},
		// Durations of all but the last sample do not count.
		{at(2000, true), {Time: 2010 * time.Millisecond, Duration: time.Hour, Data: delta}, at(2020, false)},
	}
	want := []struct {
		tfdt      uint64
		durations []uint32
	}{
		{0, []uint32{30000, 60000, 30000, 30000}},
		{150000, []uint32{30000, 30000}},
		{900000, []uint32{30000}},
		{1800000, []uint32{9000, 9000, 30000}},
	}
	var f memFile
	w, err := NewWriter(&f, Params{Video: m.video})
	if err != nil {
		t.Fatal(err)
	}
	for k, s := range frags {
		if err := w.WriteFragment(s, nil); err != nil {
			t.Fatalf("fragment %d: %v", k, err)
		}
	}
	var moofs []testBox
	for _, b := range boxesIn(t, f.b) {
		if b.typ == "moof" {
			moofs = append(moofs, b)
		}
	}
	for k, moof := range moofs {
		tfdt, entries, _ := trafOf(t, f.b, moof, 1)
		var durations []uint32
		for _, e := range entries {
			durations = append(durations, e.duration)
		}
		if tfdt != want[k].tfdt || !slices.Equal(durations, want[k].durations) {
			t.Errorf("fragment %d tfdt %d durations %v, want %d %v", k, tfdt, durations, want[k].tfdt, want[k].durations)
		}
	}
	// The frame rate counts only the samples near a frame long: not the
	// doubled one, nor the short ones of the last fragment.
	wantInfo := TrackInfo{Samples: 10, Duration: 1848000 * time.Second / videoTimescale, FrameDuration: time.Second / 30}
	if got := w.Info().Video; got != wantInfo {
		t.Errorf("Info().Video = %+v, want %+v", got, wantInfo)
	}

	// A clip whose first sample comes late starts late.
	var g memFile
	w, err = NewWriter(&g, Params{Video: m.video, Audio: m.audio})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFragment([]Sample{at(500, true)}, m.audioSamples[:50]); err != nil {
		t.Fatal(err)
	}
	wantStart := Info{
		Duration:  time.Second,
		Video:     TrackInfo{Samples: 1, Start: 500 * time.Millisecond, Duration: 33333333, FrameDuration: 33333333},
		Audio:     TrackInfo{Samples: 50, Duration: time.Second},
		Fragments: 1,
		Size:      int64(len(g.b)),
	}
	if got := w.Info(); got != wantStart {
		t.Errorf("Info() = %+v, want %+v", got, wantStart)
	}
	if err := w.Finalize(); err != nil {
		t.Fatal(err)
	}
	// The late track's tkhd and mdhd hold its span, not its end.
	for _, c := range []struct {
		name string
		got  uint64
		want uint64
	}{
		{"mvhd", be64(one(t, g.b, "moov", "mvhd"), 24), 1000},
		{"mehd", be64(one(t, g.b, "moov", "mvex", "mehd"), 4), 1000},
		{"video tkhd", be64(find(t, g.b, "moov", "trak", "tkhd")[0], 28), 33},
		{"video mdhd", be64(find(t, g.b, "moov", "trak", "mdia", "mdhd")[0], 24), videoTimescale / 30},
		{"audio tkhd", be64(find(t, g.b, "moov", "trak", "tkhd")[1], 28), 1000},
		{"audio mdhd", be64(find(t, g.b, "moov", "trak", "mdia", "mdhd")[1], 24), 48000},
	} {
		if c.got != c.want {
			t.Errorf("%s duration = %d, want %d", c.name, c.got, c.want)
		}
	}
}

func TestWriteFragmentRejects(t *testing.T) {
	m := syntheticMedia(2)
	v, a := m.videoSamples, m.audioSamples
	with := func(s Sample, edit func(*Sample)) []Sample {
		edit(&s)
		return []Sample{s}
	}
	tests := []struct {
		name         string
		audioOnly    bool
		first        [2][]Sample // written before, if any
		video, audio []Sample
		wantErr      string
	}{
		{"video in an audio-only clip", true, [2][]Sample{}, v[:1], nil, "video samples for a clip without video"},
		{"first video not key", false, [2][]Sample{}, v[1:3], nil, "must be a key frame"},
		{"negative time", false, [2][]Sample{}, with(v[0], func(s *Sample) { s.Time = -1 }), nil, "negative time"},
		{"zero last duration", false, [2][]Sample{}, with(v[0], func(s *Sample) { s.Duration = 0 }), nil, "is not positive or overflows"},
		{"duration overflows", false, [2][]Sample{}, with(v[0], func(s *Sample) { s.Time, s.Duration = 1, math.MaxInt64 }), nil, "is not positive or overflows"},
		{"out of order", false, [2][]Sample{}, []Sample{v[0], v[2], v[1]}, nil, "video sample 1: ends no later than it starts"},
		{"same time", false, [2][]Sample{}, []Sample{v[0], v[0]}, nil, "video sample 0: ends no later"},
		{"less than a tick", false, [2][]Sample{}, with(v[0], func(s *Sample) { s.Duration = 500 * time.Nanosecond }), nil, "ends no later"},
		{"all before the previous fragment's end", false, [2][]Sample{v[:30], a[:50]}, nil, a[10:20], "audio sample 0: ends no later"},
		{"empty video data", false, [2][]Sample{}, with(v[0], func(s *Sample) { s.Data = nil }), nil, "no data"},
		{"annex B video", false, [2][]Sample{}, with(v[0], func(s *Sample) { s.Data = []byte{0, 0, 0, 1, 0x65, 0x88, 0x84} }), nil, "not AVCC"},
		{"AVCC length too long", false, [2][]Sample{}, with(v[0], func(s *Sample) { s.Data = []byte{0, 0, 0, 9, 0x65} }), nil, "not AVCC"},
		{"zero-length NAL", false, [2][]Sample{}, with(v[0], func(s *Sample) { s.Data = []byte{0, 0, 0, 0} }), nil, "not AVCC"},
		{"audio not FLAC", false, [2][]Sample{}, nil, with(a[0], func(s *Sample) { s.Data = []byte{0x12, 0x34} }), "FLAC frame sync code"},
		{"bad audio beside good video", false, [2][]Sample{}, v[:30], with(a[0], func(s *Sample) { s.Data = nil }), "audio sample 0: no data"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := Params{Video: m.video, Audio: m.audio}
			if tc.audioOnly {
				p.Video = nil
			}
			var f memFile
			w, err := NewWriter(&f, p)
			if err != nil {
				t.Fatal(err)
			}
			if tc.first[0] != nil || tc.first[1] != nil {
				if err := w.WriteFragment(tc.first[0], tc.first[1]); err != nil {
					t.Fatal(err)
				}
			}
			before, info := len(f.b), w.Info()
			err = w.WriteFragment(tc.video, tc.audio)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "mp4: ") {
				t.Fatalf("WriteFragment() error = %v, want one saying %q", err, tc.wantErr)
			}
			if len(f.b) != before || w.Info() != info {
				t.Errorf("the rejected fragment changed the clip: %d bytes, was %d", len(f.b), before)
			}
			// Bad samples do not break the Writer.
			next := fragments(v, time.Second, 2)[1]
			if tc.first[0] == nil {
				next = v[:30]
			}
			if tc.audioOnly {
				next = nil
			}
			if err := w.WriteFragment(next, nil); err != nil && !tc.audioOnly {
				t.Errorf("WriteFragment after a rejected fragment: %v", err)
			}
		})
	}

	var f memFile
	w, err := NewWriter(&f, Params{Video: m.video})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFragment(nil, nil); err != nil || len(f.b) != int(w.Info().Size) || w.Info().Fragments != 0 {
		t.Errorf("WriteFragment(nil, nil) = %v, wrote %d bytes; want nil, nothing", err, len(f.b)-int(w.Info().Size))
	}
}

func TestWriterBreaksOnWriteError(t *testing.T) {
	m := syntheticMedia(3)
	vf, af := fragments(m.videoSamples, time.Second, 3), fragments(m.audioSamples, time.Second, 3)
	f := memFile{failWrite: 3} // init, fragment 1, then half of fragment 2
	w, err := NewWriter(&f, Params{Video: m.video, Audio: m.audio})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFragment(vf[0], af[0]); err != nil {
		t.Fatal(err)
	}
	good := w.Info()
	err = w.WriteFragment(vf[1], af[1])
	if err == nil || !strings.Contains(err.Error(), "mp4: write fragment 2: disk full") {
		t.Fatalf("WriteFragment() error = %v, want the write error", err)
	}
	if err2 := w.WriteFragment(vf[2], af[2]); err2 != err {
		t.Errorf("WriteFragment after a write error = %v, want %v", err2, err)
	}
	if err2 := w.Finalize(); err2 != err {
		t.Errorf("Finalize after a write error = %v, want %v", err2, err)
	}
	if got := w.Info(); got != good {
		t.Errorf("Info() = %+v, want %+v as before the failed fragment", got, good)
	}

	// What reached the disk is the init segment, fragment 1 and half of 2.
	info, err := Recover(tempClip(t, f.b))
	if err != nil {
		t.Fatal(err)
	}
	if info != good {
		t.Errorf("Recover() = %+v, want %+v", info, good)
	}
}

// discard is a File that keeps nothing.
type discard struct{}

func (discard) Write(p []byte) (int, error)            { return len(p), nil }
func (discard) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }
func (discard) Sync() error                            { return nil }

func TestWriteFragmentAllocs(t *testing.T) {
	const n = 40
	m := syntheticMedia(n)
	vf, af := fragments(m.videoSamples, time.Second, n), fragments(m.audioSamples, time.Second, n)
	w, err := NewWriter(discard{}, Params{Video: m.video, Audio: m.audio})
	if err != nil {
		t.Fatal(err)
	}
	k := 0
	allocs := testing.AllocsPerRun(n-2, func() {
		if err := w.WriteFragment(vf[k], af[k]); err != nil {
			t.Fatal(err)
		}
		k++
	})
	if allocs != 0 {
		t.Errorf("WriteFragment allocates %.1f times per fragment, want 0", allocs)
	}
}

func TestWriterFinalizeError(t *testing.T) {
	m := syntheticMedia(1)
	w, err := NewWriter(failingWriteAt{}, Params{Audio: m.audio})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFragment(nil, m.audioSamples); err != nil {
		t.Fatal(err)
	}
	err = w.Finalize()
	if err == nil || !strings.HasPrefix(err.Error(), "mp4: finalize: ") || !errors.Is(err, errReadOnly) {
		t.Fatalf("Finalize() = %v, want the WriteAt error", err)
	}
	if err2 := w.Finalize(); err2 != err {
		t.Errorf("second Finalize() = %v, want %v", err2, err)
	}
}

var errReadOnly = errors.New("read-only file system")

// failingWriteAt is a File whose WriteAt fails.
type failingWriteAt struct{ discard }

func (failingWriteAt) WriteAt([]byte, int64) (int, error) { return 0, errReadOnly }
