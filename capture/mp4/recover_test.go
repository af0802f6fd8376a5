package mp4

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// syntheticClip writes n one-second fragments of synthetic media, finalized
// or not, and returns the file's bytes, its size after the init segment and
// after each fragment, and the Writer's Info.
func syntheticClip(t testing.TB, n int, finalize bool) ([]byte, []int64, Info) {
	t.Helper()
	m := syntheticMedia(n)
	var f memFile
	w, err := NewWriter(&f, Params{Video: m.video, Audio: m.audio, Created: time.Unix(1700000000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	sizes := []int64{int64(len(f.b))}
	vf, af := fragments(m.videoSamples, time.Second, n), fragments(m.audioSamples, time.Second, n)
	for k := range n {
		if err := w.WriteFragment(vf[k], af[k]); err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, int64(len(f.b)))
	}
	if finalize {
		if err := w.Finalize(); err != nil {
			t.Fatal(err)
		}
	}
	return f.b, sizes, w.Info()
}

// patched returns a copy of b with new written over the bytes that start
// skip bytes into the first occurrence of marker at or after from.
func patched(t testing.TB, b []byte, from int64, marker string, skip int, new string) []byte {
	t.Helper()
	i := bytes.Index(b[from:], []byte(marker))
	if i < 0 {
		t.Fatalf("%q not found after %d", marker, from)
	}
	c := slices.Clone(b)
	copy(c[int(from)+i+skip:], new)
	return c
}

func TestRecoverRejects(t *testing.T) {
	clip, sizes, _ := syntheticClip(t, 2, false)
	init := clip[:sizes[0]]
	random := make([]byte, 4096)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	u32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	box := func(typ string, body ...byte) []byte {
		return append(append(u32(uint32(8+len(body))), typ...), body...)
	}
	ftyp := clip[:binary.BigEndian.Uint32(clip)]
	moof := sizes[0]
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

	tests := []struct {
		name string
		file []byte
		want error
	}{
		{"empty", nil, ErrNotClip},
		{"text", []byte("this is not a video, just some text that is long enough\n"), ErrNotClip},
		{"random bytes", random, ErrNotClip},
		{"zeros", make([]byte, 4096), ErrNotClip},
		{"ftyp only", ftyp, ErrNotClip},
		{"moov cut short", init[:len(init)-1], ErrNotClip},
		{"mdat after ftyp", cat(ftyp, box("mdat", 1, 2, 3)), ErrNotClip},
		{"box of size 0", cat(ftyp, u32(0), []byte("moov")), ErrNotClip},
		{"box of size 4", cat(ftyp, u32(4), []byte("moov")), ErrNotClip},
		{"64-bit size past the end", cat(ftyp, u32(1), []byte("moov"), []byte{0x7F, 0, 0, 0, 0, 0, 0, 0}), ErrNotClip},
		{"64-bit size over 2^63", cat(ftyp, u32(1), []byte("moov"), []byte{0xFF, 0, 0, 0, 0, 0, 0, 0}), ErrNotClip},
		{"not fragmented", patched(t, clip, 0, "mvex", 0, "free"), ErrNotClip},
		{"no tracks", patched(t, patched(t, clip, 0, "trak", 0, "free"), 0, "trak", 0, "free"), ErrNotClip},
		{"no mvhd", patched(t, clip, 0, "mvhd", 0, "free"), ErrNotClip},
		{"track without mdhd", patched(t, clip, 0, "mdhd", 0, "free"), ErrNotClip},
		{"track without hdlr", patched(t, clip, 0, "hdlr", 0, "free"), ErrNotClip},
		{"mdhd timescale 0", patched(t, clip, 0, "mdhd", 24, "\x00\x00\x00\x00"), ErrNotClip},
		{"mvhd version 2", patched(t, clip, 0, "mvhd", 4, "\x02"), ErrNotClip},
		{"tkhd cut short", patched(t, clip, 0, "tkhd", -1, "\x14"), ErrNotClip},
		{"two tracks with ID 1", patched(t, clip, int64(bytes.Index(clip, []byte("tkhd"))+4), "tkhd", 4+20+3, "\x01"), ErrNotClip},
		{"init segment only", init, ErrNoFragments},
		{"init and garbage", cat(init, random), ErrNoFragments},
		{"init and a cut moof", clip[:moof+20], ErrNoFragments},
		{"moof without mdat", clip[:moof+int64(binary.BigEndian.Uint32(clip[moof:]))], ErrNoFragments},
		{"moof then free", patched(t, clip[:sizes[1]], moof, "mdat", 0, "free"), ErrNoFragments},
		{"traf for unknown track", patched(t, clip, moof, "tfhd", 4+4+3, "\x07"), ErrNoFragments},
		{"data offset before the mdat", patched(t, clip, moof, "trun", 4+8, "\x00\x00\x00\x00"), ErrNoFragments},
		{"negative data offset", patched(t, clip, moof, "trun", 4+8, "\xff\xff\x00\x00"), ErrNoFragments},
		{"data offset past the mdat", patched(t, clip, moof, "trun", 4+8, "\x7f\x00\x00\x00"), ErrNoFragments},
		{"sample larger than the mdat", patched(t, clip, moof, "trun", 4+16, "\x00\x10\x00\x00"), ErrNoFragments},
		{"trun too short for its count", patched(t, clip, moof, "trun", 4+4, "\x00\x01\x00\x00"), ErrNoFragments},
		{"tfdt version 3", patched(t, clip, moof, "tfdt", 4, "\x03"), ErrNoFragments},
		{"trun before tfhd", patched(t, clip, moof, "tfhd", 0, "free"), ErrNoFragments},
		{"tfhd cut short", patched(t, clip, moof, "tfhd", -1, "\x0c"), ErrNoFragments},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := tempClip(t, tc.file)
			_, err := Recover(f)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Recover() error = %v, want %v", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "mp4: recover "+f.Name()+": ") {
				t.Errorf("error %q does not name the package and file", err)
			}
			if got, _ := os.ReadFile(f.Name()); !bytes.Equal(got, tc.file) {
				t.Errorf("Recover() changed the file it rejected")
			}
		})
	}
}

func TestRecoverKeepsCompleteFragments(t *testing.T) {
	for _, finalized := range []bool{false, true} {
		clip, sizes, whole := syntheticClip(t, 4, finalized)
		moof := func(k int) int64 { return sizes[k] } // fragment k+1 starts here
		moofLen := func(k int) int64 { return int64(binary.BigEndian.Uint32(clip[sizes[k]:])) }
		tests := []struct {
			name      string
			file      []byte
			fragments int
		}{
			{"whole", clip, 4},
			{"cut after a fragment", clip[:sizes[2]], 2},
			{"cut in a moof header", clip[:sizes[2]+7], 2},
			{"cut in a moof", clip[:sizes[2]+moofLen(2)-1], 2},
			{"cut in an mdat header", clip[:sizes[2]+moofLen(2)+3], 2},
			{"cut in an mdat", clip[:sizes[3]-1], 2},
			{"garbage after a fragment", append(slices.Clone(clip[:sizes[3]]), "garbage garbage"...), 3},
			{"zeros after a fragment", append(slices.Clone(clip[:sizes[1]]), make([]byte, 5000)...), 1},
			{"fragment 3 goes back in time", patched(t, clip, moof(2), "tfdt", 4+4, strings.Repeat("\x00", 8)), 2},
			{"fragment 2 has no mdat", patched(t, clip, moof(1), "mdat", 0, "free"), 1},
			{"fragment 2 claims more data than its mdat", patched(t, clip, moof(1), "trun", 4+16, "\x00\x10\x00\x00"), 1},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				f := tempClip(t, tc.file)
				info, err := Recover(f)
				if err != nil {
					t.Fatalf("Recover() error = %v", err)
				}
				k := tc.fragments
				want := Info{
					Duration:  time.Duration(k) * time.Second,
					Video:     TrackInfo{Samples: 30 * k, Duration: time.Duration(k) * time.Second, FrameDuration: time.Second / 30},
					Audio:     TrackInfo{Samples: 50 * k, Duration: time.Duration(k) * time.Second},
					Fragments: k,
					Size:      sizes[k],
				}
				if info != want {
					t.Errorf("Recover() = %+v, want %+v", info, want)
				}
				got, err := os.ReadFile(f.Name())
				if err != nil {
					t.Fatal(err)
				}
				if int64(len(got)) != sizes[k] || !bytes.Equal(got[sizes[0]:], tc.file[sizes[0]:sizes[k]]) {
					t.Errorf("Recover() left %d bytes, want the %d bytes up to the end of fragment %d", len(got), sizes[k], k)
				}
				if d := be64(one(t, got[:sizes[0]], "moov", "mvhd"), 24); d != uint64(1000*k) {
					t.Errorf("mvhd duration = %d, want %d", d, 1000*k)
				}
				if k == 4 && info != whole {
					t.Errorf("Recover() = %+v, want the Writer's %+v", info, whole)
				}

				// Recovering again changes nothing.
				again, err := Recover(f)
				if err != nil || again != info {
					t.Errorf("second Recover() = %+v, %v; want %+v, nil", again, err, info)
				}
				if got2, _ := os.ReadFile(f.Name()); !bytes.Equal(got2, got) {
					t.Errorf("second Recover() changed the file")
				}
			})
		}
	}
}

// TestRecoverMatchesFinalize checks that recovering a clip whose Writer
// never finished gives the same bytes as finalizing it would have.
func TestRecoverMatchesFinalize(t *testing.T) {
	finalized, _, want := syntheticClip(t, 3, true)
	unfinished, _, _ := syntheticClip(t, 3, false)
	if bytes.Equal(finalized, unfinished) {
		t.Fatal("Finalize changed nothing")
	}
	f := tempClip(t, unfinished)
	info, err := Recover(f)
	if err != nil {
		t.Fatal(err)
	}
	if info != want {
		t.Errorf("Recover() = %+v, want %+v", info, want)
	}
	if got, _ := os.ReadFile(f.Name()); !bytes.Equal(got, finalized) {
		t.Errorf("recovered clip differs from the finalized one")
	}
}

func FuzzRecover(f *testing.F) {
	clip, sizes, _ := syntheticClip(f, 2, false)
	f.Add(clip)
	f.Add(clip[:sizes[1]+100])
	f.Add(clip[:sizes[0]])
	f.Add(clip[:sizes[0]-1])
	f.Add([]byte("\x00\x00\x00\x08ftyp\x00\x00\x00\x10moov\x00\x00\x00\x08mvex"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		file := tempClip(t, b)
		info, err := Recover(file)
		got, rerr := os.ReadFile(file.Name())
		if rerr != nil {
			t.Fatal(rerr)
		}
		if err != nil {
			if !errors.Is(err, ErrNotClip) && !errors.Is(err, ErrNoFragments) {
				t.Fatalf("Recover() error = %v, want ErrNotClip or ErrNoFragments", err)
			}
			if !bytes.Equal(got, b) {
				t.Fatal("Recover() changed a file it rejected")
			}
			return
		}
		if info.Fragments < 1 || info.Size != int64(len(got)) || info.Size > int64(len(b)) {
			t.Fatalf("Recover() = %+v for a file of %d bytes, now %d", info, len(b), len(got))
		}
		again, err := Recover(file)
		if err != nil || again != info {
			t.Fatalf("second Recover() = %+v, %v; want %+v, nil", again, err, info)
		}
	})
}

func FuzzAVCConfig(f *testing.F) {
	f.Add([]byte{0x67, 0x64, 0x00, 0x28, 0xAE, 0x40}, []byte{0x68, 0xCE, 0x3C, 0x80})
	f.Add([]byte{0x67, 0x42, 0xC0, 0x1E, 0xDA}, []byte{0x68, 0xCE})
	f.Add([]byte{0x67, 0x64, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03}, []byte{0x68, 0xCE})
	f.Fuzz(func(t *testing.T, sps, pps []byte) {
		rec, err := avcConfig(sps, pps)
		if err != nil {
			return
		}
		if len(rec) < 11+len(sps)+len(pps) || rec[0] != 1 || rec[4] != 0xFF || !bytes.Contains(rec, sps) {
			t.Fatalf("avcConfig(%x, %x) = %x", sps, pps, rec)
		}
	})
}
