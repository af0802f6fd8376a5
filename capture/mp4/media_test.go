package mp4

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/bits"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// This file holds what the tests need to make real media with ffmpeg and to
// look at clips with ffprobe, plus synthetic media for tests that need none.

// requireFFmpeg fails the test, rather than skipping it, when ffmpeg or
// ffprobe is missing: the clips must be checked by a real demuxer and decoder.
func requireFFmpeg(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is required to check clips (install ffmpeg): %v", tool, err)
		}
	}
}

// command runs a command and returns its stdout, failing the test if it exits
// non-zero.
func command(t testing.TB, name string, args ...string) (stdout, stderr []byte) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, errOut.Bytes())
	}
	return out.Bytes(), errOut.Bytes()
}

// media is the content of a test clip.
type media struct {
	video        *VideoTrack
	videoSamples []Sample
	audio        *AudioTrack
	audioSamples []Sample
}

// ffmpegMedia is 10 s of 640x360 30 fps H.264 (Constrained Baseline, an IDR
// every 30 frames) and 10 s of 48 kHz mono 16-bit FLAC in 960-sample frames,
// made once per test binary.
var ffmpegMedia = sync.OnceValues(func() (media, error) {
	var m media
	h264, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
		"-frames:v", "300", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
		"-bf", "0", "-g", "30", "-f", "h264", "-").Output()
	if err != nil {
		return m, fmt.Errorf("ffmpeg h264: %w", err)
	}
	if m.video, m.videoSamples, err = h264Samples(h264, 30); err != nil {
		return m, err
	}
	m.video.Width, m.video.Height = 640, 360
	flac, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000",
		"-t", "10", "-ac", "1", "-c:a", "flac", "-frame_size", "960", "-f", "flac", "-").Output()
	if err != nil {
		return m, fmt.Errorf("ffmpeg flac: %w", err)
	}
	m.audio, m.audioSamples, err = flacSamples(flac)
	return m, err
})

func realMedia(t testing.TB) media {
	t.Helper()
	requireFFmpeg(t)
	m, err := ffmpegMedia()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.videoSamples) != 300 || len(m.audioSamples) != 500 {
		t.Fatalf("test media has %d video and %d audio samples, want 300 and 500", len(m.videoSamples), len(m.audioSamples))
	}
	return m
}

// h264Samples splits an Annex B stream into AVCC access units at fps frames
// per second, taking out the parameter sets and access unit delimiters.
func h264Samples(stream []byte, fps int) (*VideoTrack, []Sample, error) {
	v := &VideoTrack{FrameDuration: time.Second / time.Duration(fps)}
	var samples []Sample
	var au []byte
	key, vcl := false, false
	flush := func() {
		if vcl {
			samples = append(samples, Sample{Key: key, Data: au})
		}
		au, key, vcl = nil, false, false
	}
	for _, nal := range splitAnnexB(stream) {
		typ := nal[0] & 0x1F
		switch {
		case typ == 1 || typ == 5:
			// A slice with first_mb_in_slice == 0 (ue(v) "1") starts a picture.
			if vcl && len(nal) > 1 && nal[1]&0x80 != 0 {
				flush()
			}
			vcl = true
			key = key || typ == 5
		case vcl && (typ == 6 || typ == 7 || typ == 8 || typ == 9 || (typ >= 14 && typ <= 18)):
			flush()
		}
		switch typ {
		case 7:
			if v.SPS == nil {
				v.SPS = nal
			}
			continue
		case 8:
			if v.PPS == nil {
				v.PPS = nal
			}
			continue
		case 9:
			continue
		}
		au = binary.BigEndian.AppendUint32(au, uint32(len(nal)))
		au = append(au, nal...)
	}
	flush()
	if v.SPS == nil || v.PPS == nil || len(samples) == 0 {
		return nil, nil, fmt.Errorf("h264 stream has no SPS, PPS or pictures")
	}
	for i := range samples {
		samples[i].Time = time.Duration(i) * time.Second / time.Duration(fps)
		samples[i].Duration = time.Duration(i+1)*time.Second/time.Duration(fps) - samples[i].Time
	}
	return v, samples, nil
}

// splitAnnexB returns the NAL units of an Annex B byte stream.
func splitAnnexB(b []byte) [][]byte {
	var nals [][]byte
	start := -1
	for i := 0; i+2 < len(b); i++ {
		if b[i] != 0 || b[i+1] != 0 || b[i+2] != 1 {
			continue
		}
		if start >= 0 {
			nals = append(nals, bytes.TrimRight(b[start:i], "\x00"))
		}
		start = i + 3
		i += 2
	}
	if start >= 0 && start < len(b) {
		nals = append(nals, b[start:])
	}
	return nals
}

// flacSamples splits a native FLAC stream into its STREAMINFO and frames.
func flacSamples(b []byte) (*AudioTrack, []Sample, error) {
	if !bytes.HasPrefix(b, []byte("fLaC")) {
		return nil, nil, fmt.Errorf("not a FLAC stream")
	}
	a := &AudioTrack{}
	p := 4
	for last := false; !last; {
		if len(b) < p+4 {
			return nil, nil, fmt.Errorf("FLAC metadata is cut off")
		}
		last = b[p]&0x80 != 0
		n := int(b[p+1])<<16 | int(b[p+2])<<8 | int(b[p+3])
		if b[p]&0x7F == 0 {
			a.StreamInfo = b[p+4 : p+4+n]
		}
		p += 4 + n
	}
	if len(a.StreamInfo) != 34 {
		return nil, nil, fmt.Errorf("FLAC STREAMINFO is %d bytes", len(a.StreamInfo))
	}
	si := a.StreamInfo
	a.SampleRate = int(si[10])<<12 | int(si[11])<<4 | int(si[12])>>4
	a.Channels = int(si[12]>>1&7) + 1
	a.BitsPerSample = int(si[12]&1)<<4 | int(si[13]>>4) + 1

	var samples []Sample
	var pos int // in samples since the start
	for number := uint64(0); p < len(b); number++ {
		block, n, ok := flacHeader(b[p:])
		if !ok || n != number {
			return nil, nil, fmt.Errorf("no FLAC frame %d at byte %d", number, p)
		}
		end := p + 2
		for ; end < len(b); end++ {
			if _, n, ok := flacHeader(b[end:]); ok && n == number+1 {
				break
			}
		}
		rate := time.Duration(a.SampleRate)
		t := time.Duration(pos) * time.Second / rate
		samples = append(samples, Sample{
			Time:     t,
			Duration: time.Duration(pos+block)*time.Second/rate - t,
			Key:      true,
			Data:     b[p:end],
		})
		pos += block
		p = end
	}
	return a, samples, nil
}

// flacHeader parses the frame header at the start of b and returns the
// frame's block size and frame number, checking the header's CRC-8.
func flacHeader(b []byte) (block int, number uint64, ok bool) {
	if len(b) < 6 || b[0] != 0xFF || b[1]&0xFE != 0xF8 || b[3]&1 != 0 {
		return 0, 0, false
	}
	blockCode, rateCode := b[2]>>4, b[2]&0xF
	if blockCode == 0 || rateCode == 0xF {
		return 0, 0, false
	}
	// The frame number is coded like UTF-8: L leading ones in the first
	// byte mean L bytes in all, no leading one means one byte.
	n := bits.LeadingZeros8(^b[4])
	switch n {
	case 0:
		n = 1
	case 1, 8:
		return 0, 0, false
	}
	mask := byte(0x7F)
	if n > 1 {
		mask >>= n
	}
	number = uint64(b[4] & mask)
	p := 5
	for i := 1; i < n; i++ {
		if p >= len(b) || b[p]&0xC0 != 0x80 {
			return 0, 0, false
		}
		number = number<<6 | uint64(b[p]&0x3F)
		p++
	}
	need := p + 1
	switch blockCode {
	case 6:
		need++
	case 7:
		need += 2
	}
	switch rateCode {
	case 12:
		need++
	case 13, 14:
		need += 2
	}
	if len(b) < need {
		return 0, 0, false
	}
	switch {
	case blockCode == 1:
		block = 192
	case blockCode <= 5:
		block = 576 << (blockCode - 2)
	case blockCode == 6:
		block = int(b[p]) + 1
	case blockCode == 7:
		block = int(b[p])<<8 | int(b[p+1]) + 1
	default:
		block = 256 << (blockCode - 8)
	}
	if crc8(b[:need-1]) != b[need-1] {
		return 0, 0, false
	}
	return block, number, true
}

// crc8 is the CRC of FLAC frame headers: polynomial x^8+x^2+x+1, initial 0.
func crc8(b []byte) byte {
	var c byte
	for _, x := range b {
		c ^= x
		for range 8 {
			if c&0x80 != 0 {
				c = c<<1 ^ 0x07
			} else {
				c <<= 1
			}
		}
	}
	return c
}

// fragments cuts samples into consecutive slices by time: slice k holds the
// samples with Time in [k*d, (k+1)*d), for n slices.
func fragments(samples []Sample, d time.Duration, n int) [][]Sample {
	out := make([][]Sample, n)
	for _, s := range samples {
		k := min(int(s.Time/d), n-1)
		out[k] = append(out[k], s)
	}
	return out
}

// writeClip writes m to a new file in dir in n fragments of d each and
// finalizes it if finalize is set. It returns the file's path and the file
// size after the init segment and after each fragment.
func writeClip(t testing.TB, dir string, m media, d time.Duration, n int, finalize bool) (string, []int64, Info) {
	t.Helper()
	path := filepath.Join(dir, "clip.mp4")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := NewWriter(f, Params{Video: m.video, Audio: m.audio, Created: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	sizes := []int64{w.Info().Size}
	vf, af := fragments(m.videoSamples, d, n), fragments(m.audioSamples, d, n)
	for k := range n {
		if err := w.WriteFragment(vf[k], af[k]); err != nil {
			t.Fatalf("fragment %d: %v", k, err)
		}
		sizes = append(sizes, w.Info().Size)
	}
	if finalize {
		if err := w.Finalize(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path, sizes, w.Info()
}

// probeResult is the part of ffprobe's JSON output the tests look at.
type probeResult struct {
	Streams []struct {
		Index      int    `json:"index"`
		CodecType  string `json:"codec_type"`
		CodecName  string `json:"codec_name"`
		Width      int    `json:"width"`
		Height     int    `json:"height"`
		SampleRate string `json:"sample_rate"`
		Channels   int    `json:"channels"`
		TimeBase   string `json:"time_base"`
		RFrameRate string `json:"r_frame_rate"`
		StartTime  string `json:"start_time"`
		Duration   string `json:"duration"`
	} `json:"streams"`
	Format struct {
		Duration string `json:"duration"`
	} `json:"format"`
	Packets []struct {
		StreamIndex int    `json:"stream_index"`
		PTS         int64  `json:"pts"`
		Size        string `json:"size"`
		Flags       string `json:"flags"`
	} `json:"packets"`
}

// probe runs ffprobe on the clip at path, with its packets if packets is set.
func probe(t testing.TB, path string, packets bool) probeResult {
	t.Helper()
	args := []string{"-v", "error", "-show_streams", "-show_format", "-of", "json"}
	if packets {
		args = append(args, "-show_packets")
	}
	out, stderr := command(t, "ffprobe", append(args, path)...)
	if len(stderr) > 0 {
		t.Errorf("ffprobe %s printed:\n%s", path, stderr)
	}
	var p probeResult
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("ffprobe output: %v", err)
	}
	return p
}

// seconds parses a duration ffprobe printed.
func seconds(t testing.TB, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("ffprobe duration %q: %v", s, err)
	}
	return f
}

// decodeClean decodes every stream of the clip at path with ffmpeg and fails
// the test if ffmpeg prints anything at level error.
func decodeClean(t testing.TB, path string) {
	t.Helper()
	_, stderr := command(t, "ffmpeg", "-v", "error", "-i", path, "-f", "null", "-")
	if len(stderr) > 0 {
		t.Errorf("ffmpeg decoding %s printed:\n%s", path, stderr)
	}
}

// packetHashes returns the MD5 of each packet of the clip at path, per
// stream index, as ffmpeg's framemd5 muxer reports them with -c copy.
func packetHashes(t testing.TB, path string) map[int][]string {
	t.Helper()
	out, _ := command(t, "ffmpeg", "-v", "error", "-i", path, "-map", "0", "-c", "copy", "-f", "framemd5", "-")
	hashes := map[int][]string{}
	for line := range strings.Lines(string(out)) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) != 6 {
			t.Fatalf("framemd5 line %q", line)
		}
		i, err := strconv.Atoi(strings.TrimSpace(f[0]))
		if err != nil {
			t.Fatalf("framemd5 line %q", line)
		}
		hashes[i] = append(hashes[i], strings.TrimSpace(f[5]))
	}
	return hashes
}

// syntheticMedia is media that only looks like H.264 and FLAC from outside:
// a fixed SPS and PPS, AVCC samples holding one short NAL unit each, and
// audio samples that start with a FLAC sync code. seconds of each at 30 fps
// and 50 frames per second of 48 kHz audio.
func syntheticMedia(seconds int) media {
	m := media{
		video: &VideoTrack{
			SPS:   []byte{0x67, 0x42, 0xC0, 0x1E, 0xDA, 0x02, 0x80, 0xBF, 0xE5},
			PPS:   []byte{0x68, 0xCE, 0x3C, 0x80},
			Width: 640, Height: 360, FrameDuration: time.Second / 30,
		},
		audio: &AudioTrack{SampleRate: 48000, Channels: 1, BitsPerSample: 16, StreamInfo: streamInfo(48000, 1, 16)},
	}
	for i := range 30 * seconds {
		nal := []byte{0x41, byte(i), byte(i >> 8)}
		if i%30 == 0 {
			nal[0] = 0x65
		}
		data := binary.BigEndian.AppendUint32(nil, uint32(len(nal)))
		t := time.Duration(i) * time.Second / 30
		m.videoSamples = append(m.videoSamples, Sample{
			Time:     t,
			Duration: time.Duration(i+1)*time.Second/30 - t,
			Key:      i%30 == 0,
			Data:     append(data, nal...),
		})
	}
	for i := range 50 * seconds {
		m.audioSamples = append(m.audioSamples, Sample{
			Time:     time.Duration(i) * 20 * time.Millisecond,
			Duration: 20 * time.Millisecond,
			Key:      true,
			Data:     []byte{0xFF, 0xF8, 0xC9, 0x08, byte(i), byte(i >> 8), 0x55},
		})
	}
	return m
}

// streamInfo returns a STREAMINFO body for a fixed block size of 960.
func streamInfo(rate, channels, bits int) []byte {
	si := make([]byte, 34)
	binary.BigEndian.PutUint16(si[0:], 960)
	binary.BigEndian.PutUint16(si[2:], 960)
	si[10] = byte(rate >> 12)
	si[11] = byte(rate >> 4)
	si[12] = byte(rate<<4) | byte(channels-1)<<1 | byte(bits-1)>>4
	si[13] = byte(bits-1) << 4
	return si
}

// memFile is a File in memory. Its nth Write (counting from 1) writes half
// of its bytes and fails when failWrite is n.
type memFile struct {
	b         []byte
	writes    int
	largest   int // bytes of the largest single Write
	syncs     int
	failWrite int
}

func (m *memFile) Write(p []byte) (int, error) {
	m.writes++
	m.largest = max(m.largest, len(p))
	if m.writes == m.failWrite {
		m.b = append(m.b, p[:len(p)/2]...)
		return len(p) / 2, fmt.Errorf("disk full")
	}
	m.b = append(m.b, p...)
	return len(p), nil
}

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m.b)) {
		return 0, fmt.Errorf("WriteAt %d bytes at %d: outside the %d bytes written", len(p), off, len(m.b))
	}
	return copy(m.b[off:], p), nil
}

func (m *memFile) Sync() error {
	m.syncs++
	return nil
}

// tempClip writes b to a new file and opens it for reading and writing.
func tempClip(t testing.TB, b []byte) *os.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), "clip.mp4")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
