package mp4

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
	"time"
)

// readAll reads every fragment of clip, failing the test on an error, and
// returns copies of the samples per fragment.
func readAll(t testing.TB, clip []byte) (Params, [][2][]Sample) {
	t.Helper()
	rd, err := NewReader(bytes.NewReader(clip), int64(len(clip)))
	if err != nil {
		t.Fatal(err)
	}
	var frags [][2][]Sample
	for {
		v, a, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var f [2][]Sample
		for k, s := range [2][]Sample{v, a} {
			for _, x := range s {
				x.Data = bytes.Clone(x.Data)
				f[k] = append(f[k], x)
			}
		}
		frags = append(frags, f)
	}
	return rd.Params(), frags
}

// rewrite writes a clip of p and frags with a Writer and finalizes it.
func rewrite(t testing.TB, p Params, frags [][2][]Sample) []byte {
	t.Helper()
	var f memFile
	w, err := NewWriter(&f, p)
	if err != nil {
		t.Fatal(err)
	}
	for i, fr := range frags {
		if err := w.WriteFragment(fr[0], fr[1]); err != nil {
			t.Fatalf("fragment %d: %v", i, err)
		}
	}
	if err := w.Finalize(); err != nil {
		t.Fatal(err)
	}
	return f.b
}

// TestReaderRewritesClip reads a clip and writes what it read: the Writer
// must make the same bytes, so the Reader lost nothing a clip holds, and its
// times turn back into the same ticks.
func TestReaderRewritesClip(t *testing.T) {
	for _, n := range []int{1, 3} {
		clip, _, _ := syntheticClip(t, n, true)
		p, frags := readAll(t, clip)
		if len(frags) != n {
			t.Fatalf("read %d fragments, want %d", len(frags), n)
		}
		m := syntheticMedia(n)
		var v, a []Sample
		for _, f := range frags {
			v, a = append(v, f[0]...), append(a, f[1]...)
		}
		if len(v) != len(m.videoSamples) || len(a) != len(m.audioSamples) {
			t.Fatalf("read %d video and %d audio samples, want %d and %d", len(v), len(a), len(m.videoSamples), len(m.audioSamples))
		}
		for i, s := range v {
			w := m.videoSamples[i]
			if ticks(s.Time, videoTimescale) != ticks(w.Time, videoTimescale) || s.Key != w.Key || !bytes.Equal(s.Data, w.Data) {
				t.Fatalf("video sample %d: got time %v key %v, want %v %v (or data differs)", i, s.Time, s.Key, w.Time, w.Key)
			}
		}
		if !p.Created.Equal(time.Unix(1700000000, 0)) {
			t.Errorf("Created = %v, want %v", p.Created, time.Unix(1700000000, 0))
		}
		if !reflect.DeepEqual(p.Audio, m.audio) {
			t.Errorf("audio params\n got %+v\nwant %+v", p.Audio, m.audio)
		}
		if p.Video.Width != 640 || p.Video.Height != 360 || !bytes.Equal(p.Video.SPS, m.video.SPS) || !bytes.Equal(p.Video.PPS, m.video.PPS) {
			t.Errorf("video params %+v, want %+v", p.Video, m.video)
		}
		if again := rewrite(t, p, frags); !bytes.Equal(again, clip) {
			t.Errorf("%d fragments: the clip written from what the Reader read differs from the clip", n)
		}
	}
}

func TestReaderRejects(t *testing.T) {
	clip, sizes, _ := syntheticClip(t, 2, true)
	for _, tc := range []struct {
		name string
		b    []byte
		init error // from NewReader, or nil
	}{
		{"empty", nil, ErrNotClip},
		{"no moov", clip[:sizes[0]-1], ErrNotClip},
		{"cut in a fragment", clip[:sizes[1]+50], nil},
		{"trailing bytes", append(bytes.Clone(clip), 0, 0, 0, 8, 'f', 'r', 'e', 'e', 1), nil},
		{"data outside its mdat", patched(t, clip, sizes[0], "trun", 12, "\x7f"), nil},
		{"two audio sample entries", patched(t, clip, 0, "fLaC", -8, "\x00\x00\x00\x02"), ErrUnsupported},
		{"not FLAC", patched(t, clip, 0, "fLaC", 0, "mp4a"), ErrUnsupported},
	} {
		rd, err := NewReader(bytes.NewReader(tc.b), int64(len(tc.b)))
		if tc.init != nil {
			if !errors.Is(err, tc.init) {
				t.Errorf("%s: NewReader error %v, want %v", tc.name, err, tc.init)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: NewReader: %v", tc.name, err)
		}
		for err == nil {
			_, _, err = rd.Next()
		}
		if err == io.EOF {
			t.Errorf("%s: read to io.EOF, want an error", tc.name)
		}
		if _, _, again := rd.Next(); again != err {
			t.Errorf("%s: Next after an error returned %v, want the same error %v", tc.name, again, err)
		}
	}
}

// FuzzReader reads whatever it is given in bounded memory, and whatever it
// reads without an error a Writer writes again.
func FuzzReader(f *testing.F) {
	clip, sizes, _ := syntheticClip(f, 2, true)
	f.Add(clip)
	f.Add(clip[:sizes[1]+100])
	f.Add(clip[:sizes[0]])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		rd, err := NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			if !errors.Is(err, ErrNotClip) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("NewReader error %v, want ErrNotClip or ErrUnsupported", err)
			}
			return
		}
		for range len(b) {
			v, a, err := rd.Next()
			if err != nil {
				return
			}
			for _, s := range append(v, a...) {
				if s.Time < 0 || s.Duration < 0 {
					t.Fatalf("sample at %v lasting %v", s.Time, s.Duration)
				}
			}
		}
		t.Fatal("more fragments than bytes")
	})
}

// eofAtEnd is an io.ReaderAt that, as io.ReaderAt allows and an S3
// object's reader does, says io.EOF with a read that reaches the end.
type eofAtEnd struct{ r *bytes.Reader }

func (e eofAtEnd) ReadAt(p []byte, off int64) (int, error) {
	n, err := e.r.ReadAt(p, off)
	if err == nil && off+int64(n) == e.r.Size() {
		err = io.EOF
	}
	return n, err
}

// A reader that says io.EOF with a whole read of a clip's last bytes is
// read to the end, fragment by fragment, like any other.
func TestReaderTakesEOFWithAWholeRead(t *testing.T) {
	clip, _, _ := syntheticClip(t, 3, true)
	rd, err := NewReader(eofAtEnd{bytes.NewReader(clip)}, int64(len(clip)))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		_, _, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("fragment %d: %v", n+1, err)
		}
		n++
	}
	if n != 3 {
		t.Errorf("read %d fragments, want 3", n)
	}
}
