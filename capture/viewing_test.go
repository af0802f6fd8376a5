package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"mamoru/capture/cliptest"
	"mamoru/capture/h264"
	"mamoru/capture/mp4"
)

// recordClip makes a clip the way the recorder does: H.264 of ffmpeg's
// test pattern (cliptest.TestPattern) and a tone from the recorder's FLAC encoder go through a
// Ring into a Clip, in fragments of FragmentEvery. It returns the clip's
// path and the PCM it holds, s16le interleaved.
func recordClip(t testing.TB, dir string, channels int, seconds int) (string, []byte) {
	t.Helper()
	stream := cliptest.TestPattern(t, seconds)
	const rate, block = 48000, 960
	enc, err := newFLACEncoder(rate, channels, block)
	if err != nil {
		t.Fatal(err)
	}
	ring := NewRing(64<<20, time.Hour, 1<<16)
	period := time.Second / 30
	var pcm []byte
	frame := make([]int16, block*channels)
	n := 0
	p := h264.NewParser(bytes.NewReader(stream))
	for i := 0; ; i++ {
		au, err := p.Next()
		if err != nil {
			break
		}
		at := time.Duration(i) * period
		if err := ring.Write(Frame{Track: Video, Time: at, Key: au.IDR, Data: h264.AppendAVCC(nil, au)}); err != nil {
			t.Fatal(err)
		}
		for ; time.Duration(n)*time.Second/rate < at+period; n += block {
			for j := range block {
				for c := range channels {
					// A tone per channel, and a full-scale click every 0.25 s.
					v := int16(12000 * math.Sin(2*math.Pi*float64(n+j)*float64(440+220*c)/rate))
					if (n+j)%12000 == 0 {
						v = math.MaxInt16
					}
					frame[j*channels+c] = v
					pcm = binary.LittleEndian.AppendUint16(pcm, uint16(v))
				}
			}
			data, err := enc.Encode(frame)
			if err != nil {
				t.Fatal(err)
			}
			if err := ring.Write(Frame{Track: Audio, Time: time.Duration(n) * time.Second / rate, Key: true, Data: data}); err != nil {
				t.Fatal(err)
			}
		}
	}
	start, seq, ok := ring.Start(0)
	if !ok || start != 0 {
		t.Fatalf("ring.Start(0) = %v, %v", start, ok)
	}
	path := filepath.Join(dir, "clip.mp4")
	c, err := CreateClip(ClipParams{Path: path, Ring: ring, Start: start, Seq: seq, VideoPeriod: period,
		Audio:   &AudioFormat{SampleRate: rate, Channels: channels, StreamInfo: enc.StreamInfo()},
		Created: time.Date(2026, 11, 30, 9, 15, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	end := time.Duration(seconds) * time.Second
	for at := FragmentEvery; at < end; at += FragmentEvery {
		if _, err := c.Pull(); err != nil {
			t.Fatal(err)
		}
		if err := c.Flush(at); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Pull(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Close(end + time.Second); err != nil {
		t.Fatal(err)
	}
	return path, pcm
}

// viewingCopy makes the viewing copy of the clip at in as the file out.
func viewingCopy(t testing.TB, in, out string) (mp4.Info, error) {
	t.Helper()
	src, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		t.Fatal(err)
	}
	dst, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	return ViewingCopy(dst, src, st.Size())
}

// run runs a command and returns its stdout, failing the test if it exits
// non-zero or prints anything on stderr.
func run(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return stdout.Bytes()
}

// sameMedia has FFmpeg check that the copy at copyPath holds the media of
// the clip at clip: its audio decodes to identical PCM, its video to
// identical frames with identical times, its video packets are identical,
// and decoding it prints nothing. It returns the clip's PCM.
func sameMedia(t *testing.T, clip, copyPath string) []byte {
	t.Helper()
	orig := run(t, "ffmpeg", "-v", "error", "-i", clip, "-map", "0:a", "-f", "s16le", "-")
	got := run(t, "ffmpeg", "-v", "error", "-i", copyPath, "-map", "0:a", "-f", "s16le", "-")
	if len(got) == 0 || !bytes.Equal(got, orig) {
		t.Errorf("the copy's audio decodes to %d bytes of PCM, the original's to %d: not identical", len(got), len(orig))
	}
	for _, args := range [][]string{
		{"-map", "0:v", "-f", "framemd5", "-"},               // decoded frames, with their times
		{"-map", "0:v", "-c", "copy", "-f", "framemd5", "-"}, // the packets' bytes
	} {
		a := run(t, "ffmpeg", append([]string{"-v", "error", "-i", clip}, args...)...)
		b := run(t, "ffmpeg", append([]string{"-v", "error", "-i", copyPath}, args...)...)
		if !bytes.Equal(a, b) || bytes.Count(a, []byte("\n")) < 30 {
			t.Errorf("ffmpeg %s: the copy's video differs from the original's", strings.Join(args, " "))
		}
	}
	run(t, "ffmpeg", "-v", "error", "-i", copyPath, "-f", "null", "-") // prints nothing
	return orig
}

// A clip a power cut left short, once Recover has made it whole, copies
// like any other.
func TestViewingCopyOfRecoveredClip(t *testing.T) {
	dir := t.TempDir()
	clip, _ := recordClip(t, dir, 2, 3)
	b, err := os.ReadFile(clip)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut.mp4")
	if err := os.WriteFile(cut, b[:len(b)*2/3], 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(cut, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	info, err := mp4.Recover(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if info.Duration < time.Second || info.Duration > 2500*time.Millisecond {
		t.Fatalf("recovered %v of a 3 s clip cut at two thirds", info.Duration)
	}
	copyPath := filepath.Join(dir, "copy.mp4")
	if _, err := viewingCopy(t, cut, copyPath); err != nil {
		t.Fatal(err)
	}
	sameMedia(t, cut, copyPath)
}

// TestViewingCopy makes the viewing copy of clips recorded as the recorder
// records them and has FFmpeg judge it: the same PCM as the original and as
// recorded, the same decoded video frames with the same timing, the same
// video packets, streams h264 and alac, the original's duration, a clean
// decode; and the same copy every time.
func TestViewingCopy(t *testing.T) {
	for _, channels := range []int{1, 2} {
		t.Run(map[int]string{1: "mono", 2: "stereo"}[channels], func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			clip, pcm := recordClip(t, dir, channels, 4)
			copyPath := filepath.Join(dir, "copy.mp4")
			info, err := viewingCopy(t, clip, copyPath)
			if err != nil {
				t.Fatal(err)
			}

			orig := sameMedia(t, clip, copyPath)
			if !bytes.HasPrefix(pcm, orig) || len(orig) < len(pcm)*9/10 {
				t.Errorf("the original decodes to %d bytes of PCM that are not the first of the %d recorded", len(orig), len(pcm))
			}
			run(t, "ffmpeg", "-v", "error", "-i", copyPath, "-f", "null", "-") // prints nothing

			probe := func(path string) string {
				return string(run(t, "ffprobe", "-v", "error", "-show_entries", "stream=codec_name,channels,sample_rate,duration:format=duration",
					"-of", "compact", path))
			}
			p, q := probe(clip), probe(copyPath)
			if want := strings.Replace(p, "codec_name=flac", "codec_name=alac", 1); q != want {
				t.Errorf("ffprobe of the copy:\n%s\nwant, as the original but for the codec:\n%s", q, want)
			}
			if !strings.Contains(q, "codec_name=h264") || !strings.Contains(q, "codec_name=alac") {
				t.Errorf("ffprobe of the copy:\n%s\nwant an h264 and an alac stream", q)
			}
			if info.Duration < 4*time.Second || info.Video.Samples != 120 {
				t.Errorf("copy's Info %+v: want 120 video samples, 4 s or more", info)
			}

			// Deterministic: a second copy is the same bytes.
			again := filepath.Join(dir, "again.mp4")
			if _, err := viewingCopy(t, clip, again); err != nil {
				t.Fatal(err)
			}
			a, _ := os.ReadFile(copyPath)
			b, _ := os.ReadFile(again)
			if !bytes.Equal(a, b) {
				t.Error("two copies of one clip differ")
			}
			if st, _ := os.Stat(clip); st != nil {
				t.Logf("%s: original %d bytes, copy %d bytes", t.Name(), st.Size(), len(a))
			}

			if _, err := exec.LookPath("mediainfo"); err != nil {
				t.Log("mediainfo is not installed (apt-get install mediainfo): not asked")
				return
			}
			mi := string(run(t, "mediainfo", "--Inform=General;%VideoCount% %AudioCount% %Duration%\n", copyPath)) +
				string(run(t, "mediainfo", "--Inform=Audio;%Format% %Channel(s)% %SamplingRate%", copyPath))
			if !strings.HasPrefix(mi, "1 1 ") || !strings.Contains(mi, "ALAC "+strconv.Itoa(channels)+" 48000") {
				t.Errorf("mediainfo reads the copy as %q, want a video and an ALAC track", mi)
			}
		})
	}
}

func TestViewingCopyRefuses(t *testing.T) {
	dir := t.TempDir()
	clip, _ := recordClip(t, dir, 1, 1)
	b, err := os.ReadFile(clip)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(dir, "copy.mp4")
	if _, err := viewingCopy(t, clip, cp); err != nil {
		t.Fatal(err)
	}
	// A FLAC frame's sync code is 0xFFF8; damage the data after the first
	// one in the second fragment (the first may be video alone).
	at := bytes.LastIndex(b, []byte{0xFF, 0xF8})
	bad := bytes.Clone(b)
	bad[at+20] ^= 0xFF
	badPath := filepath.Join(dir, "bad.mp4")
	if err := os.WriteFile(badPath, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	notClip := filepath.Join(dir, "not.mp4")
	if err := os.WriteFile(notClip, []byte("hello, this is not a clip"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		want       error
	}{
		{"not a clip", notClip, mp4.ErrNotClip},
		{"damaged audio", badPath, ErrBadAudio},
		{"a copy", cp, ErrAlreadyCopy},
	} {
		_, err := viewingCopy(t, tc.path, filepath.Join(dir, "out.mp4"))
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
	}
}

// BenchmarkViewingCopy copies a 60 s stereo clip recorded as the recorder
// records one; the copy of a 10-minute clip takes ten times as long, in the
// same memory, as the copy holds one fragment at a time.
func BenchmarkViewingCopy(b *testing.B) {
	dir := b.TempDir()
	clip, _ := recordClip(b, dir, 2, 60)
	st, err := os.Stat(clip)
	if err != nil {
		b.Fatal(err)
	}
	out := filepath.Join(dir, "copy.mp4")
	b.SetBytes(st.Size())
	b.ReportAllocs()
	var size int64
	for b.Loop() {
		os.Remove(out)
		info, err := viewingCopy(b, clip, out)
		if err != nil {
			b.Fatal(err)
		}
		size = info.Size
	}
	b.ReportMetric(float64(st.Size())/1e6, "MB-clip")
	b.ReportMetric(float64(size)/1e6, "MB-copy")
}

// memFile is an mp4.File in memory.
type memFile struct{ b []byte }

func (m *memFile) Write(p []byte) (int, error) { m.b = append(m.b, p...); return len(p), nil }
func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	return copy(m.b[off:], p), nil
}
func (m *memFile) Sync() error { return nil }

// FuzzViewingCopy copies damaged clips: whatever the bytes, ViewingCopy
// returns an error or a copy, and never panics.
func FuzzViewingCopy(f *testing.F) {
	clip, _ := recordClip(f, f.TempDir(), 2, 1)
	b, err := os.ReadFile(clip)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b, uint32(0), byte(0))
	f.Fuzz(func(t *testing.T, b []byte, at uint32, x byte) {
		if len(b) > 0 {
			b = bytes.Clone(b)
			b[int(at)%len(b)] ^= x
		}
		var out memFile
		if _, err := ViewingCopy(&out, bytes.NewReader(b), int64(len(b))); err == nil && len(out.b) == 0 {
			t.Fatal("no error and no copy")
		}
	})
}

// FuzzDecodeFLAC decodes damaged FLAC frames as ViewingCopy does: an error
// or samples of the clip's format, never a panic.
func FuzzDecodeFLAC(f *testing.F) {
	for _, ch := range []int{1, 2} {
		enc, err := newFLACEncoder(48000, ch, 960)
		if err != nil {
			f.Fatal(err)
		}
		pcm := make([]int16, 960*ch)
		for i := range pcm {
			pcm[i] = int16(9000 * math.Sin(float64(i)/5))
		}
		frame, err := enc.Encode(pcm)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(bytes.Clone(frame), uint8(ch))
	}
	f.Fuzz(func(t *testing.T, b []byte, ch uint8) {
		channels := 1 + int(ch&1)
		a := &mp4.AudioTrack{SampleRate: 48000, Channels: channels, BitsPerSample: 16, StreamInfo: make([]byte, 34)}
		a.StreamInfo[3] = 0xC0 // block size max 960
		tr, err := newTranscoder(a)
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.decode(b); err != nil {
			if !errors.Is(err, ErrBadAudio) {
				t.Fatalf("error %v, want ErrBadAudio", err)
			}
			return
		}
		if len(tr.pcm)%channels != 0 {
			t.Fatalf("%d samples for %d channels", len(tr.pcm), channels)
		}
	})
}

// An audio-only clip with a gap (frames the microphone dropped) copies
// with every packet at the original's time and for the original's
// duration, and the same PCM.
func TestViewingCopyKeepsAudioTiming(t *testing.T) {
	dir := t.TempDir()
	const rate, block = 48000, 960
	enc, err := newFLACEncoder(rate, 1, block)
	if err != nil {
		t.Fatal(err)
	}
	var audio []mp4.Sample
	pcm := make([]int16, block)
	for k := range 150 {
		if k >= 60 && k < 65 { // 100 ms lost
			continue
		}
		for i := range pcm {
			pcm[i] = int16(10000 * math.Sin(float64(k*block+i)/6))
		}
		frame, err := enc.Encode(pcm)
		if err != nil {
			t.Fatal(err)
		}
		audio = append(audio, mp4.Sample{Time: time.Duration(k) * 20 * time.Millisecond, Duration: 20 * time.Millisecond, Key: true, Data: bytes.Clone(frame)})
	}
	clip := filepath.Join(dir, "clip.mp4")
	f, err := os.Create(clip)
	if err != nil {
		t.Fatal(err)
	}
	w, err := mp4.NewWriter(f, mp4.Params{Audio: &mp4.AudioTrack{SampleRate: rate, Channels: 1, BitsPerSample: 16, StreamInfo: enc.StreamInfo()}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(audio); i += 25 {
		if err := w.WriteFragment(nil, audio[i:min(i+25, len(audio))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finalize(); err != nil {
		t.Fatal(err)
	}
	f.Close()

	copyPath := filepath.Join(dir, "copy.mp4")
	if _, err := viewingCopy(t, clip, copyPath); err != nil {
		t.Fatal(err)
	}
	packets := func(path string) string {
		return string(run(t, "ffprobe", "-v", "error", "-select_streams", "a", "-show_entries", "packet=pts,dts:stream=duration", "-of", "csv", path))
	}
	a, b := packets(clip), packets(copyPath)
	// The frame after the gap is at its time, 120 ms after the one before.
	if !strings.Contains(a, "packet,56640,56640\npacket,62400,62400\n") || !strings.Contains(a, "stream,3.000000") {
		t.Errorf("the original has no gap from 1.18 s to 1.30 s, or does not last 3 s:\n%s", a)
	}
	if a != b || strings.Count(a, "packet,") != 145 {
		t.Errorf("audio packets' times or the track's duration of the copy differ from the original's:\n%s\n---\n%s", b, a)
	}
	orig := run(t, "ffmpeg", "-v", "error", "-i", clip, "-f", "s16le", "-")
	got := run(t, "ffmpeg", "-v", "error", "-i", copyPath, "-f", "s16le", "-")
	if len(got) == 0 || !bytes.Equal(got, orig) {
		t.Errorf("the copy decodes to %d bytes of PCM, the original to %d: not identical", len(got), len(orig))
	}
}
