package capture

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

// fill makes frame data that tells which frame it belongs to.
func fill(buf []byte, seq int) []byte {
	for i := range buf {
		buf[i] = byte(seq*7 + i)
	}
	return buf
}

func TestRingKeepsEveryHeldFrameIntact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	r := NewRing(64<<10, 2*time.Second, 500)
	scratch := make([]byte, 16<<10)
	dst := make([]Frame, 600)
	buf := make([]byte, 64<<10)
	written := 0
	for i := range 5000 {
		n := 1 + rng.IntN(len(scratch))
		f := Frame{Track: Track(i % 2), Time: time.Duration(i) * 10 * time.Millisecond, Data: fill(scratch[:n], i)}
		if err := r.Write(f); err != nil {
			t.Fatal(err)
		}
		written++
		st := r.Stats()
		if st.Bytes > st.Capacity {
			t.Fatalf("after frame %d: %d bytes held in a ring of %d", i, st.Bytes, st.Capacity)
		}
		if st.Buffered > 2*time.Second {
			t.Fatalf("after frame %d: buffered %v, want at most the 2s span", i, st.Buffered)
		}
		first := st.NextSeq - uint64(st.Frames)
		got, next, err := r.Read(first, dst, buf)
		if err != nil {
			t.Fatal(err)
		}
		if got != st.Frames || next != st.NextSeq {
			t.Fatalf("after frame %d: read %d frames up to %d, want %d up to %d", i, got, next, st.Frames, st.NextSeq)
		}
		for j, fr := range dst[:got] {
			seq := int(first) + j
			if want := fill(make([]byte, len(fr.Data)), seq); !bytes.Equal(fr.Data, want) {
				t.Fatalf("after frame %d: frame %d was overwritten", i, seq)
			}
			if want := time.Duration(seq) * 10 * time.Millisecond; fr.Time != want {
				t.Fatalf("frame %d time = %v, want %v", seq, fr.Time, want)
			}
		}
	}
}

func TestRingReadAfterDropIsOverrun(t *testing.T) {
	r := NewRing(1<<10, time.Second, 4)
	for i := range 10 {
		r.Write(Frame{Time: time.Duration(i), Data: []byte{byte(i)}})
	}
	_, _, err := r.Read(0, make([]Frame, 4), make([]byte, 16))
	if !errors.Is(err, ErrOverrun) {
		t.Errorf("Read(0) error = %v, want ErrOverrun", err)
	}
}

func TestRingStart(t *testing.T) {
	ms := time.Millisecond
	// Video at 10 fps with a key frame every second, audio every 20 ms.
	// Each video frame is written after the audio of the following 100 ms,
	// as on a real device where the encoder delays video.
	r := NewRing(1<<20, time.Hour, 10000)
	for v := range 50 {
		vt := time.Duration(v) * 100 * ms
		for a := vt; a < vt+100*ms; a += 20 * ms {
			r.Write(Frame{Track: Audio, Time: a, Key: true, Data: []byte{1}})
		}
		r.Write(Frame{Track: Video, Time: vt, Key: v%10 == 0, Data: []byte{2}})
	}
	tests := []struct {
		t     time.Duration
		start time.Duration
	}{
		{2500 * ms, 2000 * ms}, // key frame before
		{3000 * ms, 3000 * ms}, // exactly on a key frame
		{-time.Second, 0},      // older than the ring: the oldest key frame
		{time.Hour, 4000 * ms}, // newer than the ring: the newest key frame
	}
	for _, tt := range tests {
		start, seq, ok := r.Start(tt.t)
		if !ok || start != tt.start {
			t.Errorf("Start(%v) = %v, ok %v; want %v", tt.t, start, ok, tt.start)
			continue
		}
		// Every frame at or after start must be at or after seq, and the
		// frame at seq is not older than start.
		dst := make([]Frame, 10000)
		n, _, _ := r.Read(seq, dst, make([]byte, 1<<20))
		if dst[0].Time < start {
			t.Errorf("Start(%v): first frame read at %v is before the start %v", tt.t, dst[0].Time, start)
		}
		all, _, _ := r.Read(r.Stats().NextSeq-uint64(r.Stats().Frames), dst, make([]byte, 1<<20))
		held := 0
		for _, f := range dst[:all] {
			if f.Time >= start {
				held++
			}
		}
		if n != held {
			t.Errorf("Start(%v): %d frames from seq, but %d frames at or after start", tt.t, n, held)
		}
	}
}

func TestRingStartAudioOnly(t *testing.T) {
	r := NewRing(1<<20, time.Hour, 1000)
	for i := range 100 {
		r.Write(Frame{Track: Audio, Key: true, Time: time.Duration(i) * 20 * time.Millisecond, Data: []byte{1}})
	}
	start, seq, ok := r.Start(1010 * time.Millisecond)
	if !ok || start != time.Second || seq != 50 {
		t.Errorf("Start = %v, %d, %v; want 1s, 50, true", start, seq, ok)
	}
}

func TestRingStaleTrackAgesOut(t *testing.T) {
	r := NewRing(1<<20, time.Second, 1000)
	r.Write(Frame{Track: Video, Key: true, Time: 0, Data: []byte{1}})
	for i := range 100 {
		r.Write(Frame{Track: Audio, Key: true, Time: time.Duration(i) * 20 * time.Millisecond, Data: []byte{1}})
	}
	// The camera died at 0; its key frame must not make a clip start 2 s early.
	if start, _, _ := r.Start(1900 * time.Millisecond); start < 900*time.Millisecond {
		t.Errorf("Start = %v, want the stale video key frame aged out", start)
	}
}

func TestRingRejectsHugeFrame(t *testing.T) {
	r := NewRing(1<<10, time.Second, 4)
	if err := r.Write(Frame{Data: make([]byte, 1<<10)}); err == nil {
		t.Error("Write of a frame as large as the ring succeeded")
	}
}

// BenchmarkRingWrite measures the per-frame cost of buffering 720p30 at
// 2.5 Mbps with 48 kHz audio in 20 ms blocks: it must not allocate.
func BenchmarkRingWrite(b *testing.B) {
	r := NewRing(36<<20, 33*time.Second, 4096)
	video := make([]byte, 2500_000/8/30)
	audio := make([]byte, 1500)
	b.ReportAllocs()
	b.SetBytes(int64(len(video)))
	t := time.Duration(0)
	for i := 0; b.Loop(); i++ {
		t += 33 * time.Millisecond
		if err := r.Write(Frame{Track: Video, Key: i%30 == 0, Time: t, Data: video}); err != nil {
			b.Fatal(err)
		}
		if i%2 == 0 {
			r.Write(Frame{Track: Audio, Key: true, Time: t, Data: audio})
		}
	}
}
