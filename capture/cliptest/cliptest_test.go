package cliptest

import (
	"bufio"
	"crypto/rand"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Test clips: 3 s of 320x240 video at 30 frames/s with a 48 kHz mono tone.
const (
	clipSeconds = 3
	clipFrames  = 90
	clipRate    = 48000
)

// fragmentedFLAC makes a clip shaped like mamoru's: H.264 without B-frames
// and FLAC in a fragmented MP4. FFmpeg 5.1 calls FLAC in MP4 experimental.
func fragmentedFLAC(t *testing.T) string {
	return makeClip(t, "fragmented.mp4", "-c:v", "libx264", "-bf", "0",
		"-c:a", "flac", "-strict", "-2", "-movflags", "+frag_keyframe+empty_moov")
}

// plainAAC makes an ordinary MP4 with AAC audio and the index at the end.
func plainAAC(t *testing.T) string {
	return makeClip(t, "plain.mp4", "-c:v", "libx264", "-bf", "0", "-c:a", "aac")
}

func makeClip(t *testing.T, name string, codecArgs ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	args := []string{"-nostdin", "-v", "error",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000",
		"-t", "3"}
	args = append(args, codecArgs...)
	args = append(args, path)
	if out, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return path
}

// corrupt makes a file of random bytes named like a clip.
func corrupt(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "corrupt.mp4")
	b := make([]byte, 100<<10)
	rand.Read(b)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func near(got, want, tolerance float64) bool {
	return math.Abs(got-want) <= tolerance
}

func TestProbe(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		clip      func(*testing.T) string
		audio     string
		frameSize int // samples per audio packet
	}{
		{"fragmented FLAC", fragmentedFLAC, "flac", 4608},
		{"plain AAC", plainAAC, "aac", 1024},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := tt.clip(t)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			info := Probe(t, path)
			if !near(info.Duration, clipSeconds, 0.05) {
				t.Errorf("Duration = %v, want %v", info.Duration, clipSeconds)
			}
			if info.Size != fi.Size() {
				t.Errorf("Size = %d, want %d", info.Size, fi.Size())
			}
			if got, want := len(info.Streams), 2; got != want {
				t.Errorf("%d streams, want %d: %+v", got, want, info.Streams)
			}

			v, ok := info.Stream("video")
			if !ok {
				t.Fatalf("no video stream in %+v", info.Streams)
			}
			wantV := Stream{Index: 0, CodecType: "video", CodecName: "h264", Width: 320, Height: 240, FrameRate: 30, Duration: v.Duration, Packets: clipFrames}
			if v != wantV {
				t.Errorf("video stream = %+v, want %+v", v, wantV)
			}
			if !near(v.Duration, clipSeconds, 0.05) {
				t.Errorf("video Duration = %v, want %v", v.Duration, clipSeconds)
			}

			a, ok := info.Stream("audio")
			if !ok {
				t.Fatalf("no audio stream in %+v", info.Streams)
			}
			wantA := Stream{Index: 1, CodecType: "audio", CodecName: tt.audio, SampleRate: clipRate, Channels: 1, Duration: a.Duration, Packets: a.Packets}
			if a != wantA {
				t.Errorf("audio stream = %+v, want %+v", a, wantA)
			}
			if !near(a.Duration, clipSeconds, 0.05) {
				t.Errorf("audio Duration = %v, want %v", a.Duration, clipSeconds)
			}
			// AAC adds a packet of encoder delay at the front.
			if want := float64(clipSeconds * clipRate / tt.frameSize); !near(float64(a.Packets), want, 2) {
				t.Errorf("audio Packets = %d, want %v ± 2", a.Packets, want)
			}

			if s, ok := info.Stream("subtitle"); ok {
				t.Errorf("Stream(subtitle) = %+v, true; want none", s)
			}
		})
	}
}

func TestPackets(t *testing.T) {
	t.Parallel()
	path := fragmentedFLAC(t)

	video := Packets(t, path, "video")
	if got, want := len(video), clipFrames; got != want {
		t.Fatalf("%d video packets, want %d", got, want)
	}
	for i, p := range video {
		if want := float64(i) / 30; !near(p.PTS, want, 0.001) {
			t.Errorf("video packet %d: PTS = %v, want %v", i, p.PTS, want)
		}
		if !near(p.Duration, 1.0/30, 0.001) {
			t.Errorf("video packet %d: Duration = %v, want 1/30", i, p.Duration)
		}
		// libx264 puts a key frame every 250 frames: only the first here.
		if got, want := p.Key, i == 0; got != want {
			t.Errorf("video packet %d: Key = %v, want %v", i, got, want)
		}
		if p.Size <= 0 {
			t.Errorf("video packet %d: Size = %d, want > 0", i, p.Size)
		}
	}

	audio := Packets(t, path, "audio")
	if got, want := len(audio), 32; got != want { // 3 s in FLAC frames of 4608 samples
		t.Fatalf("%d audio packets, want %d", got, want)
	}
	for i, p := range audio {
		if want := float64(i*4608) / clipRate; !near(p.PTS, want, 0.001) {
			t.Errorf("audio packet %d: PTS = %v, want %v", i, p.PTS, want)
		}
		if !p.Key {
			t.Errorf("audio packet %d: Key = false, want true", i)
		}
		if p.Size <= 0 {
			t.Errorf("audio packet %d: Size = %d, want > 0", i, p.Size)
		}
	}
}

func TestSpacing(t *testing.T) {
	t.Parallel()
	const frame = 1.0 / 30
	// Frames on a 1/30 s grid but for one: frame 45 is shown 20 ms early,
	// and frames 60 on are shown three frames late (two missing).
	retimed := makeClip(t, "retimed.mp4", "-c:v", "libx264", "-bf", "0", "-an", "-fps_mode", "passthrough", "-enc_time_base:v", "1:90000",
		"-vf", "settb=1/90000,setpts='(N+2*gte(N,60))/30/TB-eq(N,45)*0.020/TB'")
	tests := []struct {
		name, kind     string
		clip           string
		shortAt, short float64
		longAt, long   float64
		tolerance      float64
	}{
		{"even video", "video", fragmentedFLAC(t), 0, frame, 0, frame, 0.001},
		{"retimed video", "video", retimed, 44 * frame, frame - 0.020, 59 * frame, 3 * frame, 0.001},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			shortest, longest := Spacing(t, tt.clip, tt.kind)
			t.Logf("shortest %+v, longest %+v", shortest, longest)
			if !near(shortest.Length, tt.short, tt.tolerance) || tt.short != frame && !near(shortest.At, tt.shortAt, tt.tolerance) {
				t.Errorf("shortest = %+v, want %.4f s at %.4f s", shortest, tt.short, tt.shortAt)
			}
			if !near(longest.Length, tt.long, tt.tolerance) || tt.long != frame && !near(longest.At, tt.longAt, tt.tolerance) {
				t.Errorf("longest = %+v, want %.4f s at %.4f s", longest, tt.long, tt.longAt)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		clip    func(*testing.T) string
		wantErr bool
	}{
		{"fragmented FLAC", fragmentedFLAC, false},
		{"plain AAC", plainAAC, false},
		{"corrupt", corrupt, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := DecodeErrors(t, tt.clip(t))
			if (got != "") != tt.wantErr {
				t.Errorf("DecodeErrors = %q, want errors: %v", got, tt.wantErr)
			}
		})
	}
}

func TestPlay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		clip func(*testing.T) string
	}{
		{"fragmented FLAC", fragmentedFLAC},
		{"plain AAC", plainAAC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := tt.clip(t)
			start := time.Now()
			pb := Play(t, path)
			t.Logf("Play took %v", time.Since(start))
			if !pb.Ended || pb.Error != "" {
				t.Errorf("Ended = %v, Error = %q; want ended without error", pb.Ended, pb.Error)
			}
			if !near(pb.Duration, clipSeconds, 0.05) {
				t.Errorf("Duration = %v, want %v", pb.Duration, clipSeconds)
			}
			if !near(pb.CurrentTime, clipSeconds, 0.05) {
				t.Errorf("CurrentTime = %v, want %v", pb.CurrentTime, clipSeconds)
			}
			if pb.VideoDecodedBytes <= 0 || pb.AudioDecodedBytes <= 0 {
				t.Errorf("decoded %d video bytes, %d audio bytes; want both > 0", pb.VideoDecodedBytes, pb.AudioDecodedBytes)
			}
			if pb.VideoWidth != 320 || pb.VideoHeight != 240 {
				t.Errorf("video is %dx%d, want 320x240", pb.VideoWidth, pb.VideoHeight)
			}
		})
	}
}

func TestPlayCorrupt(t *testing.T) {
	t.Parallel()
	pb := Play(t, corrupt(t))
	if pb.Ended || !strings.HasPrefix(pb.Error, "MEDIA_ERR_") {
		t.Errorf("Ended = %v, Error = %q; want not ended, with a MediaError", pb.Ended, pb.Error)
	}
	if !math.IsNaN(pb.Duration) {
		t.Errorf("Duration = %v, want NaN", pb.Duration)
	}
	if pb.VideoDecodedBytes != 0 || pb.AudioDecodedBytes != 0 {
		t.Errorf("decoded %d video bytes, %d audio bytes; want none", pb.VideoDecodedBytes, pb.AudioDecodedBytes)
	}
}

// toneLevel is the peak of the test clips' tone: ffmpeg's sine source
// plays at 1/8 of full scale.
const toneLevel = 0.125

// heard says what is wrong with how b played one of the test clips, which
// has a tone if tone is set, or "" if nothing is.
func heard(b Browser, pb Playback, tone bool) string {
	var problems []string
	if !pb.Ended || pb.Error != "" {
		problems = append(problems, fmt.Sprintf("Ended = %v, Error = %q; want ended without error", pb.Ended, pb.Error))
	}
	if !near(pb.Duration, clipSeconds, 0.05) || !near(pb.CurrentTime, clipSeconds, 0.05) {
		problems = append(problems, fmt.Sprintf("Duration = %v, CurrentTime = %v, want %v", pb.Duration, pb.CurrentTime, clipSeconds))
	}
	if pb.VideoFrames != clipFrames || pb.VideoWidth != 320 || pb.VideoHeight != 240 {
		problems = append(problems, fmt.Sprintf("%d video frames of %dx%d, want %d of 320x240", pb.VideoFrames, pb.VideoWidth, pb.VideoHeight, clipFrames))
	}
	switch b {
	case Chromium:
		if pb.VideoDecodedBytes <= 0 || (pb.AudioDecodedBytes > 0) != tone || pb.AudioPeak != 0 {
			problems = append(problems, fmt.Sprintf("decoded %d video bytes, %d audio bytes, audio peak %v; want video, audio %v, no peak",
				pb.VideoDecodedBytes, pb.AudioDecodedBytes, pb.AudioPeak, tone))
		}
	case Firefox:
		want := 0.0
		if tone {
			want = toneLevel
		}
		// Firefox resamples 48 kHz to its Web Audio rate, 44.1 kHz here, and
		// AAC is lossy: either may overshoot a little.
		if !near(pb.AudioPeak, want, 0.02) || pb.VideoDecodedBytes != 0 || pb.AudioDecodedBytes != 0 {
			problems = append(problems, fmt.Sprintf("audio peak %v, decoded %d video bytes, %d audio bytes; want a peak of %v, no byte counts",
				pb.AudioPeak, pb.VideoDecodedBytes, pb.AudioDecodedBytes, want))
		}
	}
	return strings.Join(problems, "; ")
}

// videoOnly makes a clip with no audio track.
func videoOnly(t *testing.T) string {
	return makeClip(t, "video.mp4", "-c:v", "libx264", "-bf", "0", "-an", "-movflags", "+frag_keyframe+empty_moov")
}

// TestPlayIn plays the test clips in each browser, and a clip without
// sound, which shows that neither browser's measure of sound is always
// above zero.
func TestPlayIn(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		clip func(*testing.T) string
		tone bool
	}{
		{"fragmented FLAC", fragmentedFLAC, true},
		{"plain AAC", plainAAC, true},
		{"no audio", videoOnly, false},
	}
	for _, b := range []Browser{Chromium, Firefox} {
		for _, tt := range tests {
			t.Run(b.String()+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				path := tt.clip(t)
				start := time.Now()
				pb := PlayIn(t, b, path)
				t.Logf("PlayIn took %v: %+v", time.Since(start), pb)
				if problem := heard(b, pb, tt.tone); problem != "" {
					t.Error(problem)
				}
			})
		}
	}
}

// TestPlayURLIn plays a clip from another server in each browser: the
// browser's Range requests reach that server, and its answers play.
func TestPlayURLIn(t *testing.T) {
	t.Parallel()
	path := fragmentedFLAC(t)
	for _, b := range []Browser{Chromium, Firefox} {
		t.Run(b.String(), func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var ranges []string // guarded by mu
			origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/media/clip.mp4" {
					http.NotFound(w, r)
					return
				}
				if rg := r.Header.Get("Range"); rg != "" {
					mu.Lock()
					ranges = append(ranges, rg)
					mu.Unlock()
				}
				http.ServeFile(w, r, path)
			}))
			defer origin.Close()
			pb := PlayURLIn(t, b, origin.URL+"/media/clip.mp4")
			if problem := heard(b, pb, true); problem != "" {
				t.Error(problem)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(ranges) == 0 {
				t.Errorf("%s sent the clip's server no Range request", b)
			}
			missing := PlayURLIn(t, b, origin.URL+"/media/missing.mp4")
			if missing.Ended || !strings.HasPrefix(missing.Error, "MEDIA_ERR_") {
				t.Errorf("a clip the server does not have: Ended = %v, Error = %q; want a MediaError", missing.Ended, missing.Error)
			}
		})
	}
}

// TestEnd checks that end waits for every process of a group, not only
// its leader, and kills those that outstay quitLimit.
func TestEnd(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("remaining reads /proc")
	}
	t.Parallel()
	// The shell leaves a child behind it that ignores SIGTERM (a disposition
	// it keeps across exec), and says so once it has.
	cmd := exec.Command("sh", "-c", "trap '' TERM; sleep 60 & trap - TERM; echo started; wait")
	ownGroup(cmd)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	leader := cmd.Process.Pid
	if left := remaining(leader); len(left) != 2 {
		t.Errorf("remaining(%d) = %v, want the shell and its sleep", leader, left)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	start := time.Now()
	stop(cmd.Process, exited)
	if left := remaining(leader); len(left) == 0 {
		t.Fatalf("after the leader quit, remaining(%d) = none; want its child, which ignores SIGTERM", leader)
	}
	if left := end(leader); len(left) != 0 {
		t.Errorf("end(%d) = %v, want none", leader, left)
	}
	if took := time.Since(start); took < quitLimit {
		t.Errorf("end took %v, want at least quitLimit (%v) before it killed the child", took, quitLimit)
	}
	if left := remaining(leader); len(left) != 0 {
		t.Errorf("after end, remaining(%d) = %v", leader, left)
	}
}

// TestPlayRate backs the choice of playbackRate: at that rate Chromium
// decodes exactly as much of each track as at normal speed.
func TestPlayRate(t *testing.T) {
	t.Parallel()
	path := fragmentedFLAC(t)
	normal := play(t, Chromium, source{path: path}, 1, 0)
	fast := play(t, Chromium, source{path: path}, playbackRate, 0)
	if !normal.Ended || !fast.Ended {
		t.Fatalf("Ended = %v at rate 1, %v at rate %v; want both", normal.Ended, fast.Ended, playbackRate)
	}
	if normal.VideoDecodedBytes <= 0 || normal.AudioDecodedBytes <= 0 {
		t.Errorf("rate 1 decoded %d video bytes, %d audio bytes; want both > 0", normal.VideoDecodedBytes, normal.AudioDecodedBytes)
	}
	if fast.VideoDecodedBytes != normal.VideoDecodedBytes || fast.AudioDecodedBytes != normal.AudioDecodedBytes {
		t.Errorf("rate %v decoded %d video bytes, %d audio bytes; want %d, %d as at rate 1", playbackRate,
			fast.VideoDecodedBytes, fast.AudioDecodedBytes, normal.VideoDecodedBytes, normal.AudioDecodedBytes)
	}
}

func TestPlayTimeout(t *testing.T) {
	t.Parallel()
	pb := play(t, Chromium, source{path: fragmentedFLAC(t)}, 1, time.Second)
	if pb.Ended || !strings.HasPrefix(pb.Error, "timed out after 1 s") {
		t.Errorf("Ended = %v, Error = %q; want not ended, timed out", pb.Ended, pb.Error)
	}
	if pb.CurrentTime >= clipSeconds {
		t.Errorf("CurrentTime = %v, want < %v", pb.CurrentTime, clipSeconds)
	}
}

// fatalRecorder is a testing.TB whose Fatalf records the message and ends
// the calling goroutine, as the real one does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// fatal runs f with a fatalRecorder and returns what it passed to Fatalf,
// or "" if f returned.
func fatal(t *testing.T, f func(testing.TB)) string {
	t.Helper()
	r := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r.msg
}

func TestMissingTools(t *testing.T) {
	path := fragmentedFLAC(t)
	tests := []struct {
		name string
		path []string // the tools on PATH
		call func(testing.TB)
		want string
	}{
		{"Probe", nil, func(t testing.TB) { Probe(t, path) }, "ffprobe is not installed (apt-get install ffmpeg)"},
		{"Packets", nil, func(t testing.TB) { Packets(t, path, "video") }, "ffprobe is not installed (apt-get install ffmpeg)"},
		{"DecodeErrors", []string{"ffprobe"}, func(t testing.TB) { DecodeErrors(t, path) }, "ffmpeg is not installed (apt-get install ffmpeg)"},
		{"Play", []string{"ffprobe", "ffmpeg"}, func(t testing.TB) { Play(t, path) }, "chromium is not installed (apt-get install chromium)"},
		{"Play without ffprobe", []string{"chromium"}, func(t testing.TB) { Play(t, path) }, "ffprobe is not installed (apt-get install ffmpeg)"},
		{"PlayIn Firefox", []string{"ffprobe", "ffmpeg", "chromium"}, func(t testing.TB) { PlayIn(t, Firefox, path) }, "firefox-esr is not installed (apt-get install firefox-esr)"},
		{"PlayIn Firefox without pulseaudio", []string{"ffprobe", "firefox-esr"}, func(t testing.TB) { PlayIn(t, Firefox, path) }, "pulseaudio is not installed (apt-get install pulseaudio)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bin := t.TempDir()
			for _, name := range tt.path {
				target, err := exec.LookPath(name)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(target, filepath.Join(bin, name)); err != nil {
					t.Fatal(err)
				}
			}
			t.Setenv("PATH", bin)
			if got := fatal(t, tt.call); !strings.Contains(got, tt.want) {
				t.Errorf("Fatalf(%q), want it to say %q", got, tt.want)
			}
		})
	}
}

func TestFatal(t *testing.T) {
	t.Parallel()
	path := fragmentedFLAC(t)
	bad := corrupt(t)
	tests := []struct {
		name string
		call func(testing.TB)
		want string
	}{
		{"Probe corrupt", func(t testing.TB) { Probe(t, bad) }, "Invalid data found"},
		{"Packets corrupt", func(t testing.TB) { Packets(t, bad, "video") }, "Invalid data found"},
		{"Packets no stream", func(t testing.TB) { Packets(t, path, "subtitle") }, "has no subtitle stream"},
		{"Packets bad type", func(t testing.TB) { Packets(t, path, "sound") }, `unknown codec type "sound"`},
		{"Play missing file", func(t testing.TB) { Play(t, path+".missing") }, "no such file"},
		{"PlayIn missing file", func(t testing.TB) { PlayIn(t, Firefox, path+".missing") }, "no such file"},
		{"PlayURLIn not a URL", func(t testing.TB) { PlayURLIn(t, Firefox, path) }, "is not an http or https URL"},
		{"PlayIn no browser", func(t testing.TB) { PlayIn(t, Browser(7), path) }, "no browser Browser(7)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fatal(t, tt.call); !strings.Contains(got, tt.want) {
				t.Errorf("Fatalf(%q), want it to say %q", got, tt.want)
			}
		})
	}
}

func TestNumber(t *testing.T) {
	tests := []struct {
		in      string
		want    float64
		wantErr bool
	}{
		{`3`, 3, false},
		{`"3.000000"`, 3, false},
		{`"48000"`, 48000, false},
		{`-0.021333`, -0.021333, false},
		{`"Infinity"`, math.Inf(1), false},
		{`"N/A"`, 7, false}, // unchanged
		{`null`, 7, false},  // unchanged
		{`"3s"`, 7, true},
		{`true`, 7, true},
	}
	for _, tt := range tests {
		n := number(7)
		err := n.UnmarshalJSON([]byte(tt.in))
		if (err != nil) != tt.wantErr || float64(n) != tt.want {
			t.Errorf("UnmarshalJSON(%s) = %v, %v; want %v, error %v", tt.in, float64(n), err, tt.want, tt.wantErr)
		}
	}
	n := number(7)
	if err := n.UnmarshalJSON([]byte(`"NaN"`)); err != nil || !math.IsNaN(float64(n)) {
		t.Errorf(`UnmarshalJSON("NaN") = %v, %v; want NaN`, float64(n), err)
	}
}

func FuzzNumber(f *testing.F) {
	for _, s := range []string{`3`, `"3.000000"`, `"N/A"`, `null`, `"NaN"`, `"-Infinity"`, `1e400`, `"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var n number
		if err := n.UnmarshalJSON([]byte(s)); err != nil && n != 0 {
			t.Errorf("UnmarshalJSON(%q) = %v with error %v; want it unchanged", s, float64(n), err)
		}
	})
}
