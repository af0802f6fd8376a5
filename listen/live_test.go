//go:build unix

package listen

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"mamoru/capture/pulsetest"
)

// TestLiveAgreesWithOffline plays a corpus timeline (calm talk over the
// choir music, then a +18 dB passage, then calm again) through a real
// PulseAudio sink, records its monitor as the recorder would hear it, and
// runs the detector on the recording and on the timeline's own samples:
// both must report the same detections at the same times, and read the
// same levels. The figures in the corpus are then the recorder's figures
// for the same sound reaching the same sink.
func TestLiveAgreesWithOffline(t *testing.T) {
	needCorpusTools(t)
	pulsetest.Start(t)
	dir := t.TempDir()
	part := corpusParts[0]
	calm, err := utterances(dir, part.voices[:2], part.calm)
	if err != nil {
		t.Fatal(err)
	}
	angry, err := utterances(dir, part.voices[:2], part.angry)
	if err != nil {
		t.Fatal(err)
	}
	music, err := part.song.render(dir)
	if err != nil {
		t.Fatal(err)
	}
	bg := background{music: true, relDB: -10}

	// The baseline is learned offline from 150 s of calm talk over the
	// same music and restored into both detectors, as a recorder restores
	// its saved baseline at start: a short live run cannot learn one.
	warm := build(part, bg, calm, angry, music, 150, 150, 10)
	learner, err := NewDetector(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(warm.pcm); i += block {
		if _, err := learner.Feed(nil, sampleTime(i), warm.pcm[i:min(i+block, len(warm.pcm))]); err != nil {
			t.Fatal(err)
		}
	}
	saved, err := learner.Baseline().MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	baseline, err := ParseBaseline(saved)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := baseline.At(corpusStart.Hour(), 0); !ok {
		t.Fatal("150 s of calm talk did not teach the baseline")
	}

	// 30 s: a raised passage 12–14 s in, then calm talk to the end. A
	// second of silence before it lets parec, which starts alongside
	// paplay, connect before the sound begins; a second after lets the
	// sink play it all out before paplay returns.
	tl := build(part, bg, calm, angry, music, 30, 12, 16)
	if len(tl.passages) != 1 || tl.passages[0].raise != 18 {
		t.Fatalf("the live timeline has passages %+v, want one at +18 dB", tl.passages)
	}
	wav := filepath.Join(dir, "live.wav")
	silence := make([]int16, testRate)
	writeWAV(t, wav, slices.Concat(silence, tl.pcm, silence))
	stop := pulsetest.Record(t)
	pulsetest.Play(t, wav)
	rec := stop()
	lag := align(tl.pcm, rec)
	if lag < 0 || lag+len(tl.pcm) > len(rec) {
		t.Fatalf("the timeline (%d samples) was not found whole in the recording (%d samples): lag %d", len(tl.pcm), len(rec), lag)
	}
	rec = rec[lag : lag+len(tl.pcm)]
	var diff int
	for i := range rec {
		diff = max(diff, abs(int(rec[i])-int(tl.pcm[i])))
	}
	t.Logf("the recording differs from the timeline by at most %d in 32768", diff)

	offline, offLevels := hear(t, baseline, tl.pcm)
	live, liveLevels := hear(t, baseline, rec)
	t.Logf("offline: %d reports; live (the sound began %.3f s into the recording): %d reports", len(offline), float64(lag)/testRate, len(live))
	for i, d := range offline {
		t.Logf("offline report %d: start %v after the passage, lasted %v, ended %v, +%.1f dB", i, d.Start.Sub(sampleTime(tl.passages[0].start)), d.Duration, d.Ended, d.AboveDB)
	}
	if len(offline) != 2 || offline[0].Ended || !offline[1].Ended {
		t.Errorf("offline: %d reports, want the passage confirmed and ended", len(offline))
	}
	if len(live) != len(offline) {
		t.Fatalf("live: %d reports, offline %d", len(live), len(offline))
	}
	const tolerance = 100 * time.Millisecond // one step of the meter
	for i := range live {
		l, o := live[i], offline[i]
		if (l.Start.Sub(o.Start)).Abs() > tolerance || (l.Duration-o.Duration).Abs() > tolerance || l.Ended != o.Ended {
			t.Errorf("report %d: live %+v, offline %+v", i, l, o)
		}
		if math.Abs(l.PeakLUFS-o.PeakLUFS) > 1 {
			t.Errorf("report %d: live peak %.2f LUFS, offline %.2f", i, l.PeakLUFS, o.PeakLUFS)
		}
	}
	var worst float64
	for i := range liveLevels {
		a, b := liveLevels[i].ShortTermLUFS, offLevels[i].ShortTermLUFS
		if math.IsInf(a, -1) || math.IsInf(b, -1) {
			continue
		}
		worst = max(worst, math.Abs(a-b))
	}
	t.Logf("short-term loudness, live against offline, every 100 ms: at most %.2f dB apart", worst)
	if worst > 1 {
		t.Errorf("live and offline short-term loudness differ by up to %.2f dB, want at most 1", worst)
	}
}

// hear runs pcm through a detector with the defaults and the baseline,
// in 20 ms blocks from corpusStart, and returns its reports and its levels
// after every 100 ms step.
func hear(t *testing.T, b Baseline, pcm []int16) ([]Detection, []Levels) {
	t.Helper()
	d, err := NewDetector(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	d.SetBaseline(b)
	var got []Detection
	var levels []Levels
	for i := 0; i+block <= len(pcm); i += block {
		if got, err = d.Feed(got, sampleTime(i), pcm[i:i+block]); err != nil {
			t.Fatal(err)
		}
		if (i/block)%5 == 4 {
			levels = append(levels, d.Levels())
		}
	}
	return got, levels
}

// align finds where want begins in got: first to 10 ms by the energy
// envelope of the whole of want, then to the sample by the least squared
// difference over the second from want's loudest 10 ms (quiet stretches
// may be all zeros, and match anywhere).
func align(want, got []int16) int {
	const hop = testRate / 100
	env := func(s []int16) []float64 {
		e := make([]float64, len(s)/hop)
		for i := range e {
			for _, x := range s[i*hop : (i+1)*hop] {
				e[i] += float64(x) * float64(x)
			}
			e[i] = math.Log10(1 + e[i])
		}
		return e
	}
	we, ge := env(want), env(got)
	best, lag := math.Inf(1), -1
	for l := 0; l+len(we) <= len(ge); l++ {
		var d float64
		for i, w := range we {
			d += math.Abs(ge[l+i] - w)
		}
		if d < best {
			best, lag = d, l
		}
	}
	if lag < 0 {
		return -1
	}
	from := hop * min(slices.Index(we, slices.Max(we)), len(we)-100)
	best, coarse := math.Inf(1), lag*hop
	for l := max(0, coarse-2*hop); l <= coarse+2*hop && l+from+testRate <= len(got); l++ {
		var d float64
		for i := from; i < from+testRate; i++ {
			e := float64(got[l+i]) - float64(want[i])
			d += e * e
		}
		if d < best {
			best, lag = d, l
		}
	}
	return lag
}

// writeWAV writes mono 16-bit PCM at testRate as a WAV file.
func writeWAV(t *testing.T, name string, pcm []int16) {
	t.Helper()
	var b bytes.Buffer
	size := uint32(2 * len(pcm))
	b.WriteString("RIFF")
	binary.Write(&b, binary.LittleEndian, 36+size)
	b.WriteString("WAVEfmt ")
	binary.Write(&b, binary.LittleEndian, struct {
		Size                   uint32
		Format, Channels       uint16
		Rate, ByteRate         uint32
		BlockAlign, BitsPerSmp uint16
	}{16, 1, 1, testRate, 2 * testRate, 2, 16})
	b.WriteString("data")
	binary.Write(&b, binary.LittleEndian, size)
	binary.Write(&b, binary.LittleEndian, pcm)
	if err := os.WriteFile(name, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func abs(x int) int { return max(x, -x) }
