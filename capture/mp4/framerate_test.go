package mp4

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestFrameRateIsStated writes clips whose frame times are not a perfect
// grid, as a camera's are not, and checks that FFmpeg reads the frame rate
// the clip states and decodes it without an error. FFmpeg otherwise guesses
// the rate from the first frames' times, and a 30 fps clip guessed as 29.97
// decodes with "non monotonically increasing dts" every 33 s.
func TestFrameRateIsStated(t *testing.T) {
	m := realMedia(t)
	const period = time.Second / 30
	// jitter is a repeatable 0 to 4 ms, the wander of frames stamped on
	// arrival.
	jitter := func(i int) time.Duration {
		return time.Duration((i*7919)%9) * time.Millisecond / 2
	}
	exactly := func(want time.Duration) func(time.Duration) bool {
		return func(d time.Duration) bool { return d == want }
	}
	// near: over frames frames, a grid of d drifts less than an eighth of a
	// frame from one of want.
	near := func(want time.Duration, frames int) func(time.Duration) bool {
		return func(d time.Duration) bool { return 8*time.Duration(frames)*max(d-want, want-d) < want }
	}
	tests := []struct {
		name string
		// at is the time of frame i.
		at     func(i int) time.Duration
		frames int
		// want says what the clip should state as its frame.
		want   string
		wantOK func(time.Duration) bool
		// misread: FFmpeg misreads this clip when it has to guess.
		misread bool
	}{
		{
			// The first two seconds come 0.3 % slow and the next two as
			// fast, as they did from a camera that was still settling: the
			// clip that FFmpeg read as 29.97 fps.
			name: "30 fps settling at the start",
			at: func(i int) time.Duration {
				d := time.Duration(i) * period
				switch {
				case i <= 60:
					d += time.Duration(i) * period * 3 / 1000
				case i <= 120:
					d += time.Duration(120-i) * period * 3 / 1000
				}
				return d + jitter(i)
			},
			frames:  2400,
			want:    "1/30 s",
			wantOK:  exactly(period),
			misread: true,
		},
		{
			// A camera that runs at 29.97 fps where 30 was asked for, and
			// stops for two seconds in the middle: the rate is measured,
			// and the gap does not count. 30 fps would drift 1.2 frames.
			name: "29.97 fps with a gap",
			at: func(i int) time.Duration {
				d := time.Duration(i) * time.Second * 1001 / 30000
				if i >= 600 {
					d += 2 * time.Second
				}
				return d + jitter(i)
			},
			frames: 1200,
			want:   "about 1001/30000 s",
			wantOK: near(time.Second*1001/30000, 1200),
		},
		{
			// Seven frames that came in a burst after a slow start,
			// stamped 7/8 of a frame apart, as a starved recorder does:
			// no grid of 30 fps gives each its own point, so the clip
			// states a shorter frame that does.
			name: "a burst after a slow start",
			at: func(i int) time.Duration {
				return time.Duration(i)*period - time.Duration(min(i, 7))*period/8 + jitter(i)/4
			},
			frames:  300,
			want:    "from 7/8 to 63/64 of 1/30 s",
			wantOK:  func(d time.Duration) bool { return d >= period*7/8 && d <= period*63/64 },
			misread: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// The 300 frames of test video repeat: each 30-frame group
			// starts with an IDR and refers to nothing outside it. Each
			// frame lasts until the next, as the recorder's clips do.
			var video []Sample
			for i := range tc.frames {
				s := m.videoSamples[i%len(m.videoSamples)]
				s.Time, s.Duration = tc.at(i), tc.at(i+1)-tc.at(i)
				video = append(video, s)
			}
			mm := media{video: m.video, videoSamples: video}
			last := video[len(video)-1]
			n := int((last.Time+last.Duration)/time.Second) + 1
			path, _, info := writeClip(t, t.TempDir(), mm, time.Second, n, true)
			if d := info.Video.FrameDuration; !tc.wantOK(d) {
				t.Errorf("Info().Video.FrameDuration = %v, want %s", d, tc.want)
			}
			rate := probe(t, path, false).Streams[0].RFrameRate
			if d := frameOf(t, rate); !tc.wantOK(d) {
				t.Errorf("ffprobe reads the frame rate as %s (%v a frame), want %s", rate, d, tc.want)
			}
			decodeClean(t, path)

			// The same clip without the stated rate shows what it prevents.
			if !tc.misread {
				return
			}
			guessed := withoutFrameRate(t, path)
			r := probe(t, guessed, false).Streams[0].RFrameRate
			_, stderr := command(t, "ffmpeg", "-v", "error", "-i", guessed, "-f", "null", "-")
			if r == rate || len(stderr) == 0 {
				t.Errorf("without its stated rate FFmpeg reads the clip as %s and decodes it with %q: "+
					"this clip no longer shows the misreading it guards against", r, stderr)
			}
		})
	}
}

// frameOf returns the frame duration of a rate ffprobe prints as "num/den".
func frameOf(t *testing.T, rate string) time.Duration {
	t.Helper()
	var num, den int64
	if _, err := fmt.Sscanf(rate, "%d/%d", &num, &den); err != nil || num <= 0 {
		t.Fatalf("ffprobe rate %q: %v", rate, err)
	}
	return time.Duration(den * int64(time.Second) / num)
}

// withoutFrameRate copies the clip at path with the entry count of its
// video stts set to 0, as a clip that states no frame rate has, and
// returns the copy's path.
func withoutFrameRate(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The one stts with an entry: size 24, "stts", version and flags 0,
	// entry_count 1, sample_count 0.
	stts := []byte{0, 0, 0, 24, 's', 't', 't', 's', 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}
	i := bytes.Index(b, stts)
	if i < 0 || bytes.Contains(b[i+1:], stts) {
		t.Fatalf("%s does not have exactly one stts stating a frame rate", path)
	}
	b[i+15] = 0
	out := filepath.Join(t.TempDir(), "guessed.mp4")
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}
