package mp4

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// These tests check clips with the real ffmpeg and ffprobe.

func TestClipPlays(t *testing.T) {
	m := realMedia(t)
	tests := []struct {
		name         string
		video, audio bool
		videoFrom    int // index of the first video sample used
		finalize     bool
	}{
		{"video and audio", true, true, 0, true},
		{"video only", true, false, 0, true},
		{"audio only", false, true, 0, true},
		{"video starts late", true, true, 60, true},
		{"not finalized", true, true, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mm := m
			mm.videoSamples = m.videoSamples[tc.videoFrom:]
			if !tc.video {
				mm.video, mm.videoSamples = nil, nil
			}
			if !tc.audio {
				mm.audio, mm.audioSamples = nil, nil
			}
			path, sizes, info := writeClip(t, t.TempDir(), mm, time.Second, 10, tc.finalize)
			checkPlays(t, path, mm, 10*time.Second, tc.finalize)

			want := Info{Fragments: 10, Size: sizes[10], Duration: 10 * time.Second}
			if tc.video {
				start := time.Duration(tc.videoFrom) * time.Second / 30
				want.Video = TrackInfo{Samples: 300 - tc.videoFrom, Start: start, Duration: 10*time.Second - start, FrameDuration: time.Second / 30}
			}
			if tc.audio {
				want.Audio = TrackInfo{Samples: 500, Duration: 10 * time.Second}
			}
			if info != want {
				t.Errorf("Info() = %+v, want %+v", info, want)
			}
		})
	}
}

// checkPlays checks with ffprobe and ffmpeg that the clip at path holds the
// samples of m that start before d, that it decodes without errors and, if
// it is finalized, that it lasts d.
func checkPlays(t *testing.T, path string, m media, d time.Duration, finalized bool) {
	t.Helper()
	var video, audio []Sample
	for _, s := range m.videoSamples {
		if s.Time < d {
			video = append(video, s)
		}
	}
	for _, s := range m.audioSamples {
		if s.Time < d {
			audio = append(audio, s)
		}
	}
	near := func(what, got string, want time.Duration) {
		t.Helper()
		if g := seconds(t, got); math.Abs(g-want.Seconds()) > 0.1 {
			t.Errorf("%s = %.3f s, want %.3f s", what, g, want.Seconds())
		}
	}

	// FFmpeg takes the duration of a fragmented track to be the end of its
	// last sample and then adds the track's start to it, so it reports too
	// long a duration for a track that starts after 0, whatever the moov
	// says. Durations are checked only where that cannot happen.
	late := len(video) > 0 && video[0].Time > 0 || len(audio) > 0 && audio[0].Time > 0

	p := probe(t, path, true)
	if finalized && !late {
		near("format duration", p.Format.Duration, d)
	}
	wantStreams := 0
	if m.video != nil {
		wantStreams++
	}
	if m.audio != nil {
		wantStreams++
	}
	if len(p.Streams) != wantStreams {
		t.Fatalf("ffprobe found %d streams, want %d", len(p.Streams), wantStreams)
	}
	hashes := packetHashes(t, path)
	for _, s := range p.Streams {
		var samples []Sample
		var step int64
		var scale uint32
		switch s.CodecType {
		case "video":
			if s.CodecName != "h264" || s.Width != m.video.Width || s.Height != m.video.Height || s.TimeBase != fmt.Sprintf("1/%d", videoTimescale) {
				t.Errorf("video stream is %s %dx%d in %s, want h264 %dx%d in 1/%d",
					s.CodecName, s.Width, s.Height, s.TimeBase, m.video.Width, m.video.Height, videoTimescale)
			}
			if s.RFrameRate != "30/1" {
				t.Errorf("video frame rate reads as %s, want 30/1", s.RFrameRate)
			}
			samples, step, scale = video, videoTimescale/30, videoTimescale
		case "audio":
			if s.CodecName != "flac" || s.SampleRate != "48000" || s.Channels != 1 || s.TimeBase != "1/48000" {
				t.Errorf("audio stream is %s %s Hz %d ch in %s, want flac 48000 Hz 1 ch in 1/48000",
					s.CodecName, s.SampleRate, s.Channels, s.TimeBase)
			}
			samples, step, scale = audio, 960, 48000
		default:
			t.Fatalf("stream %d has type %q", s.Index, s.CodecType)
		}
		if len(samples) == 0 {
			t.Fatalf("no %s samples before %v", s.CodecType, d)
		}
		first, last := samples[0], samples[len(samples)-1]
		near(s.CodecType+" start", s.StartTime, first.Time)
		if finalized && first.Time == 0 {
			near(s.CodecType+" duration", s.Duration, last.Time+last.Duration)
		}

		var n int
		var prev int64
		for _, pk := range p.Packets {
			if pk.StreamIndex != s.Index {
				continue
			}
			if n < len(samples) {
				if want := int64(ticks(samples[n].Time, scale)); pk.PTS != want {
					t.Errorf("%s packet %d has pts %d, want %d", s.CodecType, n, pk.PTS, want)
				}
				if n > 0 && pk.PTS-prev != step {
					t.Errorf("%s packets %d and %d are %d apart, want %d", s.CodecType, n-1, n, pk.PTS-prev, step)
				}
				if key := strings.Contains(pk.Flags, "K"); key != samples[n].Key {
					t.Errorf("%s packet %d key = %v, want %v", s.CodecType, n, key, samples[n].Key)
				}
			}
			prev = pk.PTS
			n++
		}
		if n != len(samples) {
			t.Errorf("ffprobe found %d %s packets, want %d", n, s.CodecType, len(samples))
		}
		got := hashes[s.Index]
		if len(got) != len(samples) {
			t.Errorf("framemd5 found %d %s packets, want %d", len(got), s.CodecType, len(samples))
			continue
		}
		for i, sample := range samples {
			sum := md5.Sum(sample.Data)
			if want := hex.EncodeToString(sum[:]); got[i] != want {
				t.Errorf("%s packet %d has MD5 %s, want %s (the data of sample %d)", s.CodecType, i, got[i], want, i)
				break
			}
		}
	}
	decodeClean(t, path)
}

// TestHighProfileAVCConfig checks the avcC of a High profile stream, which
// carries chroma format and bit depths, byte for byte against the one ffmpeg
// writes for the same stream, and that such a clip decodes.
func TestHighProfileAVCConfig(t *testing.T) {
	requireFFmpeg(t)
	dir := t.TempDir()
	raw := filepath.Join(dir, "high.h264")
	command(t, "ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
		"-frames:v", "60", "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high",
		"-bf", "0", "-g", "30", "-f", "h264", raw)
	stream, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	v, samples, err := h264Samples(stream, 30)
	if err != nil {
		t.Fatal(err)
	}
	if v.SPS[1] != 100 {
		t.Fatalf("ffmpeg made profile_idc %d, want 100 (High)", v.SPS[1])
	}
	v.Width, v.Height = 320, 240

	theirs := filepath.Join(dir, "ffmpeg.mp4")
	command(t, "ffmpeg", "-v", "error", "-f", "h264", "-i", raw, "-c", "copy", theirs)
	b, err := os.ReadFile(theirs)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte("avcC"))
	if i < 4 {
		t.Fatal("ffmpeg's clip has no avcC")
	}
	want := b[i+4 : i-4+int(binary.BigEndian.Uint32(b[i-4:]))]
	got, err := avcConfig(v.SPS, v.PPS)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("avcConfig = %x, want %x as ffmpeg writes it", got, want)
	}

	m := media{video: v, videoSamples: samples}
	path, _, _ := writeClip(t, dir, m, time.Second, 2, true)
	checkPlays(t, path, m, 2*time.Second, true)
}

// TestRecoverPlays cuts clips at many points, as a power loss would, and
// checks that Recover leaves exactly the complete fragments, playable.
func TestRecoverPlays(t *testing.T) {
	m := realMedia(t)
	for _, finalized := range []bool{false, true} {
		name := "unfinalized"
		if finalized {
			name = "finalized"
		}
		t.Run(name, func(t *testing.T) {
			path, sizes, whole := writeClip(t, t.TempDir(), m, time.Second, 10, finalized)
			clip, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			moofLen := func(k int) int64 { return int64(binary.BigEndian.Uint32(clip[sizes[k]:])) }

			type cut struct {
				name      string
				at        int64
				fragments int // -1: not a clip
			}
			cuts := []cut{
				{"inside ftyp", 10, -1},
				{"inside moov", sizes[0] - 100, -1},
				{"after moov", sizes[0], 0},
				{"inside first moof", sizes[0] + moofLen(0)/2, 0},
				{"inside first mdat", sizes[1] - 1, 0},
				{"whole clip", sizes[10], 10},
			}
			for _, k := range []int{1, 4, 9} {
				cuts = append(cuts,
					cut{"after fragment " + strconv.Itoa(k), sizes[k], k},
					cut{"inside moof header " + strconv.Itoa(k+1), sizes[k] + 3, k},
					cut{"inside moof " + strconv.Itoa(k+1), sizes[k] + moofLen(k)/2, k},
					cut{"inside mdat header " + strconv.Itoa(k+1), sizes[k] + moofLen(k) + 5, k},
					cut{"inside mdat " + strconv.Itoa(k+1), sizes[k+1] - 1, k},
				)
			}
			for _, c := range cuts {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					f := tempClip(t, clip[:c.at])
					info, err := Recover(f)
					switch c.fragments {
					case -1, 0:
						want := ErrNotClip
						if c.fragments == 0 {
							want = ErrNoFragments
						}
						if !errors.Is(err, want) {
							t.Fatalf("Recover() error = %v, want %v", err, want)
						}
						if b, _ := os.ReadFile(f.Name()); !bytes.Equal(b, clip[:c.at]) {
							t.Errorf("Recover() changed the file it rejected")
						}
						return
					}
					if err != nil {
						t.Fatalf("Recover() error = %v", err)
					}
					k := c.fragments
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
					if k == 10 && info != whole {
						t.Errorf("Recover() = %+v, want the Writer's Info %+v", info, whole)
					}
					if st, err := f.Stat(); err != nil || st.Size() != sizes[k] {
						t.Errorf("file size after Recover = %d (%v), want %d", st.Size(), err, sizes[k])
					}
					checkPlays(t, f.Name(), m, time.Duration(k)*time.Second, true)
				})
			}
		})
	}
}
