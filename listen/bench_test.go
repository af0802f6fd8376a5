package listen

import (
	"mamoru/listen/listentest"
	"testing"
	"time"
)

// talkBlocks is 10 s of synthetic talk in 20 ms blocks, for the hot paths.
func talkBlocks(tb testing.TB) [][]int16 {
	tb.Helper()
	pcm := listentest.NewTalker(testRate, 11).Next(nil, -30, 10)
	var blocks [][]int16
	for i := 0; i+block <= len(pcm); i += block {
		blocks = append(blocks, pcm[i:i+block])
	}
	return blocks
}

// TestNoAllocations holds the hot paths to the package doc: nothing is
// allocated per block, with detections being reported included.
func TestNoAllocations(t *testing.T) {
	blocks := talkBlocks(t)
	d, err := NewDetector(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	m, _ := NewMeter(testRate, 1)
	v, _ := NewVAD(testRate, 1)
	dst := make([]Detection, 0, 4)
	at := time.Date(2026, 11, 30, 14, 0, 0, 0, time.Local)
	i := 0
	allocs := testing.AllocsPerRun(2000, func() {
		b := blocks[i%len(blocks)]
		i++
		dst, _ = d.Feed(dst[:0], at.Add(time.Duration(i)*20*time.Millisecond), b)
		_ = m.Write(b)
		_ = v.Write(b)
		_ = d.Levels()
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per 20 ms block, want 0", allocs)
	}
	// And while detections are reported: decide appends into dst's room.
	allocs = testing.AllocsPerRun(1000, func() {
		i++
		dst = d.decide(dst[:0], at.Add(time.Duration(i)*100*time.Millisecond), -20+float64(i%40), true, -40, true)
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per step while detecting, want 0", allocs)
	}
}

func benchBlocks(b *testing.B, feed func([]int16, time.Time)) {
	blocks := talkBlocks(b)
	at := time.Date(2026, 11, 30, 14, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		feed(blocks[i%len(blocks)], at.Add(time.Duration(i)*20*time.Millisecond))
	}
	perBlock := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(perBlock, "ns/block")
	// One block is 20 ms of audio: the share of one core it takes.
	b.ReportMetric(100*perBlock/float64(20*time.Millisecond), "%core")
}

// BenchmarkDetector is the whole per-block cost: meter, VAD, detector, at
// 48 kHz mono in 20 ms blocks.
func BenchmarkDetector(b *testing.B) {
	d, _ := NewDetector(DefaultConfig())
	dst := make([]Detection, 0, 4)
	benchBlocks(b, func(pcm []int16, at time.Time) { dst, _ = d.Feed(dst[:0], at, pcm) })
}

func BenchmarkMeter(b *testing.B) {
	m, _ := NewMeter(testRate, 1)
	benchBlocks(b, func(pcm []int16, _ time.Time) { _ = m.Write(pcm) })
}

func BenchmarkVAD(b *testing.B) {
	v, _ := NewVAD(testRate, 1)
	benchBlocks(b, func(pcm []int16, _ time.Time) { _ = v.Write(pcm) })
}
