package capture

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"mamoru/capture/h264"
)

// stream720p returns 10 s of real 720p30 H.264 at 2.5 Mbps from ffmpeg.
func stream720p(b *testing.B) []byte {
	b.Helper()
	out, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
		"-frames:v", "300", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-bf", "0",
		"-g", "30", "-b:v", "2500k", "-maxrate", "2500k", "-bufsize", "1250k", "-f", "h264", "-").Output()
	if err != nil {
		b.Fatalf("ffmpeg (apt-get install ffmpeg): %v", err)
	}
	return out
}

// BenchmarkVideoPath is the per-frame work of buffering 720p30: parse the
// access unit, convert it to AVCC and copy it into the ring. It must not
// allocate in steady state.
func BenchmarkVideoPath(b *testing.B) {
	stream := stream720p(b)
	ring := NewRing(64<<20, 33*time.Second, 4096)
	p := h264.NewParser(&loop{b: stream})
	buf := make([]byte, 0, 1<<20)
	var t time.Duration
	b.ReportAllocs()
	b.SetBytes(int64(len(stream) / 300))
	for b.Loop() {
		au, err := p.Next()
		if err != nil {
			b.Fatal(err)
		}
		buf = h264.AppendAVCC(buf[:0], au)
		t += time.Second / 30
		if err := ring.Write(Frame{Track: Video, Time: t, Key: au.IDR, Data: buf}); err != nil {
			b.Fatal(err)
		}
	}
}

// loop reads its bytes over and over: an endless camera.
type loop struct {
	b   []byte
	off int
}

func (l *loop) Read(p []byte) (int, error) {
	n := copy(p, l.b[l.off:])
	l.off = (l.off + n) % len(l.b)
	return n, nil
}

// BenchmarkPreRollDurable measures what happens at a press: 30 s of 720p30
// at 2.5 Mbps and 48 kHz FLAC are copied from the ring into a new clip,
// written and fsynced. Target: at most 300 ms.
func BenchmarkPreRollDurable(b *testing.B) {
	b.ReportAllocs()
	stream := stream720p(b)
	var aus [][]byte
	var keys []bool
	p := h264.NewParser(bytes.NewReader(stream))
	for {
		au, err := p.Next()
		if err != nil {
			break
		}
		aus = append(aus, h264.AppendAVCC(nil, au))
		keys = append(keys, au.IDR)
	}
	enc, err := newFLACEncoder(48000, 1, 960)
	if err != nil {
		b.Fatal(err)
	}
	pcm := make([]int16, 960)
	for i := range pcm {
		pcm[i] = int16(i * 37)
	}
	block, _ := enc.Encode(pcm)
	block = bytes.Clone(block)
	format := AudioFormat{SampleRate: 48000, Channels: 1, StreamInfo: enc.StreamInfo()}

	ring := NewRing(96<<20, 35*time.Second, 8192)
	period := time.Second / 30
	var audio time.Duration
	for i := range 32 * 30 { // 32 s, so a key frame precedes press - 30 s
		t := time.Duration(i) * period
		ring.Write(Frame{Track: Video, Time: t, Key: keys[i%len(aus)], Data: aus[i%len(aus)]})
		for ; audio < t+period; audio += AudioBlock {
			ring.Write(Frame{Track: Audio, Time: audio, Key: true, Data: block})
		}
	}
	press := 32 * time.Second
	dir := b.TempDir()
	b.ResetTimer()
	var bytesOut int64
	for i := 0; b.Loop(); i++ {
		start, seq, _ := ring.Start(press - 30*time.Second)
		c, err := CreateClip(ClipParams{Path: filepath.Join(dir, time.Now().Format("150405.000000000")+".mp4"),
			Ring: ring, Start: start, Seq: seq, Audio: &format, VideoPeriod: period})
		if err != nil {
			b.Fatal(err)
		}
		for {
			n, err := c.Pull()
			if err != nil {
				b.Fatal(err)
			}
			if err := c.Flush(press + time.Hour); err != nil {
				b.Fatal(err)
			}
			if n >= press-AudioBlock {
				break
			}
		}
		bytesOut = c.Info().Size
		c.Abort()
	}
	b.ReportMetric(float64(bytesOut)/1e6, "MB-preroll")
}
