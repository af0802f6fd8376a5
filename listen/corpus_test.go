package listen

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The corpus of issue 18: espeak-ng talk at a counter, calm and raised by
// 12 and 18 dB, over a shop's background (pink noise, or General MIDI music
// with a sung or played lead), measured offline through the detector with
// its defaults exactly as the recorder runs it. See bench/README.md for
// the figures and what they do not show.
//
// Raised speech here is calm speech scaled up: a real raised voice also
// rises in pitch and shifts its energy towards 1–3 kHz, which K-weighting
// favours, so real shouting may read louder than its scale suggests, and
// the VAD sees it differently.

// calmDB is the calm talker's active speech level at the microphone, dBFS:
// with espeak-ng's peaks some 15 dB over its active level, a +18 dB
// passage peaks near -5 dBFS and is not clipped.
const calmDB = -38.0

// A corpusPart is voices, sentences and music that go together. The tuned
// part is what the detector's settings were checked against; the held-out
// part, other voices, sentences, music and seeds, was not looked at while
// tuning and checks that the figures carry over.
type corpusPart struct {
	name        string
	voices      []voice
	calm, angry []string
	song        song
	seed        uint64
	backgrounds []background
}

// A background is what the shop sounds like under the talk: music or pink
// noise, its level relative to calmDB. report marks a case measured and
// reported with no target; the race detector skips those.
type background struct {
	music  bool
	relDB  float64
	report bool
}

func (b background) String() string {
	kind := "pink noise"
	if b.music {
		kind = "music"
	}
	return fmt.Sprintf("%s %+g dB", kind, b.relDB)
}

var corpusParts = []corpusPart{{
	name: "tuned",
	voices: []voice{
		{"en-us", 160, 50}, {"en-gb", 175, 40}, {"en-us+f3", 150, 60}, {"en-gb-x-rp", 190, 45},
	},
	calm: []string{
		"Could you tell me where the batteries are, please?",
		"I bought this kettle here last week and it has stopped working.",
		"Do you have this jacket in a larger size?",
		"That comes to twelve pounds fifty. Would you like a bag?",
		"Can I pay by card, or is it cash only today?",
		"The receipt should be in the bag, with the box.",
		"I'm sorry, we don't have any more of those in stock.",
		"We open at nine tomorrow morning and close at six.",
	},
	angry: []string{
		"This is the third time I have come back about this!",
		"I want to speak to the manager, right now!",
		"No, you listen to me. I want my money back!",
		"Don't you dare tell me to calm down!",
	},
	song: song{name: "choir", bpm: 100, bars: 76, seed: 1, lead: []byte{gmChoirAahs, gmVoiceOohs}, chords: gmPiano},
	seed: 1,
	backgrounds: []background{
		{music: true, relDB: -20}, {music: true, relDB: -10},
		// Loud music, up to where the detector stops working: music 6 dB
		// over the talk hides it from the VAD and sets the baseline.
		{music: true, relDB: -6, report: true}, {music: true, relDB: 0, report: true}, {music: true, relDB: 6, report: true},
		{relDB: -20}, {relDB: -10},
	},
}, {
	name:   "held-out",
	voices: []voice{{"en-gb-scotland", 165, 55}, {"en-029+f2", 180, 70}, {"en-us+m3", 140, 35}},
	calm: []string{
		"Is there a car park near here, or should I use the street?",
		"Those are two for one until the end of the month.",
		"Could you check whether you have any more in the back?",
		"Thank you, and have a nice evening.",
	},
	angry: []string{
		"You promised me this would be fixed by Friday!",
		"Stop talking over me and give me a refund!",
		"I have been standing here for forty minutes!",
	},
	song: song{name: "sax", bpm: 124, bars: 92, seed: 2, lead: []byte{gmAltoSax, gmFlute}, chords: gmNylonGuitar},
	seed: 2,
	backgrounds: []background{
		{music: true, relDB: -10}, {relDB: -10},
	},
}}

// A passage is raised talk in a timeline: one to three sentences back to
// back, raise dB over calmDB, from its first voiced sample to its last.
type passage struct {
	raise      float64
	start, end int // samples
}

type timeline struct {
	part     string
	bg       background
	pcm      []int16
	passages []passage
	clipped  int // samples clipped to int16
}

// utterances renders every sentence in every voice, trimmed to its voiced
// span and scaled to an active level of 0 dBFS.
func utterances(dir string, voices []voice, sentences []string) ([][]float64, error) {
	var out [][]float64
	for _, v := range voices {
		for _, s := range sentences {
			pcm, err := speak(dir, v, s)
			if err != nil {
				return nil, err
			}
			a, b := voicedSpan(pcm)
			pcm = pcm[a:b]
			g := math.Pow(10, -activeDB(pcm)/20) / 32768
			u := make([]float64, len(pcm))
			for i, x := range pcm {
				u[i] = float64(x) * g
			}
			out = append(out, u)
		}
	}
	return out, nil
}

// build lays out seconds of talk over bg: calm talk for warmup seconds
// and up to a sixth more, then calm talk with a raised passage every
// 75–135 s, alternately +18 and +12 dB (which comes first is chance). Calm
// sentences vary ±3 dB around calmDB; turns are separated by 0.2–1.5 s,
// sometimes 2–6 s, now and then 10–30 s of background alone. music is the
// rendered song, looped from a random point, for a music background.
func build(part corpusPart, bg background, calm, angry [][]float64, music []int16, seconds, warmup float64, seed uint64) timeline {
	rng := rand.New(rand.NewPCG(part.seed, seed))
	n := int(seconds * testRate)
	mix := make([]float64, n)
	if bg.music {
		g := math.Pow(10, (calmDB+bg.relDB-activeDB(music))/20) / 32768
		off := rng.IntN(len(music))
		for i := range mix {
			mix[i] = float64(music[(off+i)%len(music)]) * g
		}
	} else {
		addPinkNoise(mix, calmDB+bg.relDB, rng.Uint64())
	}
	place := func(u []float64, at int, db float64) bool {
		if at+len(u) > n {
			return false
		}
		g := math.Pow(10, db/20)
		for i, x := range u {
			mix[at+i] += x * g
		}
		return true
	}
	tl := timeline{part: part.name, bg: bg}
	sec := func(lo, hi float64) int { return int((lo + (hi-lo)*rng.Float64()) * testRate) }
	raise := []float64{18, 12}[rng.IntN(2)]
	pos, next := sec(0.5, 2), sec(warmup, warmup*7/6)
	for pos < n {
		if pos >= next {
			p := passage{raise: raise, start: pos}
			for range 1 + rng.IntN(3) {
				u := angry[rng.IntN(len(angry))]
				if !place(u, pos, calmDB+raise) {
					break
				}
				p.end = pos + len(u)
				pos = p.end + sec(0.1, 0.5)
			}
			if p.end > p.start {
				tl.passages = append(tl.passages, p)
			}
			raise = 30 - raise // 18, 12, 18, ...
			next = pos + sec(75, 135)
			pos += sec(0.5, 3)
			continue
		}
		u := calm[rng.IntN(len(calm))]
		if !place(u, pos, calmDB+6*rng.Float64()-3) {
			break
		}
		pos += len(u)
		switch r := rng.Float64(); {
		case r < 0.05:
			pos += sec(10, 30)
		case r < 0.3:
			pos += sec(2, 6)
		default:
			pos += sec(0.2, 1.5)
		}
	}
	tl.pcm = make([]int16, n)
	for i, x := range mix {
		s := math.Round(x * 32768)
		if s > 32767 || s < -32768 {
			tl.clipped++
		}
		tl.pcm[i] = int16(max(-32768, min(32767, s)))
	}
	return tl
}

// corpusStart is when every timeline begins, in the afternoon: each is
// heard by a new detector, which learns that hour's baseline from it.
var corpusStart = time.Date(2026, 11, 30, 14, 0, 0, 0, time.UTC)

func sampleTime(i int) time.Time {
	return corpusStart.Add(time.Duration(int64(i) * int64(time.Second) / testRate))
}

// outcome is what the detector made of a timeline.
type outcome struct {
	tl        timeline
	latencies []time.Duration // per passage: passage start to confirmation; -1 if missed
	above     []float64       // per passage: the most its voiced level rose over the baseline, dB
	falses    []time.Time     // confirmations that match no passage
	unlearned int             // detections made before the baseline was learned
	calm      time.Duration   // the timeline outside passages and their 3 s tails
	baseline  float64
}

// tail is how long after a passage ends its sound stays in the
// short-term window.
const tail = 3 * time.Second

// listenTo runs the timeline through a new detector with the default
// settings and an empty baseline, fed in 20 ms blocks stamped with their
// capture times, as the recorder feeds it; and matches what it reports
// with the passages. A confirmation matches a passage if it comes between
// the passage's start and 3 s (the short-term window) after its end.
func listenTo(tl timeline) (outcome, error) {
	d, err := NewDetector(DefaultConfig())
	if err != nil {
		return outcome{}, err
	}
	above := make([]float64, len(tl.passages))
	for i := range above {
		above[i] = math.Inf(-1)
	}
	var got []Detection
	k := 0 // the passage under way or next
	for i := 0; i < len(tl.pcm); i += block {
		if got, err = d.Feed(got, sampleTime(i), tl.pcm[i:min(i+block, len(tl.pcm))]); err != nil {
			return outcome{}, err
		}
		for k < len(tl.passages) && sampleTime(i).After(sampleTime(tl.passages[k].end).Add(tail)) {
			k++
		}
		if k < len(tl.passages) && i >= tl.passages[k].start {
			l := d.Levels()
			above[k] = max(above[k], l.VoicedLUFS-l.BaselineLUFS)
		}
	}
	o := match(tl, got, d.Baseline())
	o.above = above
	return o, nil
}

func match(tl timeline, got []Detection, b Baseline) outcome {
	o := outcome{tl: tl, calm: time.Duration(int64(len(tl.pcm)) * int64(time.Second) / testRate)}
	o.baseline, _ = b.At(corpusStart.Hour(), math.NaN())
	o.latencies = make([]time.Duration, len(tl.passages))
	for i, p := range tl.passages {
		o.latencies[i] = -1
		o.calm -= sampleTime(p.end).Add(tail).Sub(sampleTime(p.start))
	}
	for _, det := range got {
		if det.Ended {
			continue
		}
		if !det.Learned {
			o.unlearned++
		}
		confirmed := det.Start.Add(det.Duration)
		matched := false
		for i, p := range tl.passages {
			start, end := sampleTime(p.start), sampleTime(p.end).Add(tail)
			if !confirmed.Before(start) && !confirmed.After(end) {
				if o.latencies[i] < 0 {
					o.latencies[i] = confirmed.Sub(start)
				}
				matched = true
			}
		}
		if !matched {
			o.falses = append(o.falses, confirmed)
		}
	}
	return o
}

// corpusMinutes is each timeline's length: 10 minutes, an hour over the
// six timelines that carry a target, unless MAMORU_LISTEN_CORPUS_MINUTES
// says otherwise (the longer figures in bench/README.md). Under the race
// detector, which slows this arithmetic some fifteenfold, and under qemu
// it is 5 minutes: the first passage comes after three, so that is a check
// that the figures hold, not a measurement of them.
func corpusMinutes(t testing.TB) float64 {
	if s := os.Getenv("MAMORU_LISTEN_CORPUS_MINUTES"); s != "" {
		m, err := strconv.ParseFloat(s, 64)
		if err != nil || m < 4 {
			t.Fatalf("MAMORU_LISTEN_CORPUS_MINUTES=%q: want a number of minutes, at least 4", s)
		}
		return m
	}
	if raceEnabled || os.Getenv("MAMORU_TEST_EXEC") != "" {
		return 5
	}
	return 10
}

// sounds are a corpus part's rendered speech and music.
type sounds struct {
	calm, angry [][]float64
	music       []int16
}

// render renders every part's speech and music, on every core.
func render(t testing.TB) []sounds {
	t.Helper()
	needCorpusTools(t)
	dir := t.TempDir()
	out := make([]sounds, len(corpusParts))
	errs := make([]error, 3*len(corpusParts))
	var wg sync.WaitGroup
	for i, p := range corpusParts {
		wg.Go(func() { out[i].music, errs[3*i] = p.song.render(dir) })
		wg.Go(func() { out[i].calm, errs[3*i+1] = utterances(dir, p.voices, p.calm) })
		wg.Go(func() { out[i].angry, errs[3*i+2] = utterances(dir, p.voices, p.angry) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCorpus measures the detector at its defaults on the corpus and holds
// it to issue 18's targets: every +18 dB passage confirmed within 3 s of
// its start, and at most one false detection per hour of calm talk over
// music. +12 dB passages and pink noise are reported, with no target.
func TestCorpus(t *testing.T) {
	minutes := corpusMinutes(t)
	began := time.Now()
	snd := render(t)
	t.Logf("rendered the corpus's speech and music in %v", time.Since(began).Round(time.Millisecond))
	// Each timeline is built, heard and dropped by one worker: a long
	// corpus does not fit in memory at once.
	var outs []outcome
	var errs []error
	var mu sync.Mutex // guards outs and errs
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i, p := range corpusParts {
		for j, bg := range p.backgrounds {
			if bg.report && raceEnabled {
				continue // they assert nothing, and the race detector is slow
			}
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				// Three minutes of calm talk first, as a new recorder
				// hears before anything happens: time to learn its
				// baseline from 60 s of voiced talk.
				tl := build(p, bg, snd[i].calm, snd[i].angry, snd[i].music, 60*minutes, 180, uint64(j))
				o, err := listenTo(tl)
				o.tl.pcm = nil
				mu.Lock()
				defer mu.Unlock()
				outs = append(outs, o)
				errs = append(errs, err)
			})
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(outs, func(a, b outcome) int {
		return strings.Compare(a.tl.part+a.tl.bg.String(), b.tl.part+b.tl.bg.String())
	})
	t.Logf("%d timelines of %g minutes, built and heard in %v; calm talk at %g dBFS active level",
		len(outs), minutes, time.Since(began).Round(time.Millisecond), calmDB)
	for _, o := range outs {
		logOutcome(t, o)
		if o.unlearned > 0 && !o.tl.bg.report {
			t.Errorf("%s, %v: %d detections before the baseline was learned; the calm talk before the first passage is too short", o.tl.part, o.tl.bg, o.unlearned)
		}
		if o.tl.clipped > 0 {
			t.Errorf("%s, %v: %d samples clipped; lower calmDB", o.tl.part, o.tl.bg, o.tl.clipped)
		}
	}
	for _, part := range corpusParts {
		var mine []outcome
		for _, o := range outs {
			if o.tl.part == part.name && !o.tl.bg.report {
				mine = append(mine, o)
			}
		}
		s := summarize(mine)
		t.Logf("%s: +18 dB: %s; +12 dB: %s; false detections: %s over music, %s over pink noise",
			part.name, s.detected(18), s.detected(12), s.falseRate(true), s.falseRate(false))
		if n, hit := s.hits(18); hit < n {
			t.Errorf("%s: %d of %d +18 dB passages confirmed within 3 s, want all", part.name, hit, n)
		}
		if f, h := s.falses[true], s.calm[true].Hours(); float64(f) > h {
			t.Errorf("%s: %d false detections in %.2f h of calm talk over music, want at most 1 an hour", part.name, f, h)
		}
	}
}

func logOutcome(t *testing.T, o outcome) {
	t.Helper()
	var lat []string
	for i, p := range o.tl.passages {
		l := "missed"
		if o.latencies[i] >= 0 {
			l = fmt.Sprintf("%.1fs", o.latencies[i].Seconds())
		}
		lat = append(lat, fmt.Sprintf("+%g %.1fs→%s (%+.1f)", p.raise, float64(p.end-p.start)/testRate, l, o.above[i]))
	}
	var falses []string
	for _, f := range o.falses {
		falses = append(falses, f.Sub(corpusStart).Round(100*time.Millisecond).String())
	}
	base := "not learned"
	if !math.IsNaN(o.baseline) {
		base = fmt.Sprintf("%.1f LUFS", o.baseline)
	}
	t.Logf("%s, %v: baseline %s; passages (raise length→latency (most over the baseline, dB)) %s; false at %v",
		o.tl.part, o.tl.bg, base, strings.Join(lat, " "), falses)
}

// tally adds outcomes up by raise and by background kind (music or not).
type tally struct {
	passages, hitsIn3s map[float64]int
	detectedAny        map[float64]int
	latencies          map[float64][]time.Duration
	above              map[float64][]float64
	falses             map[bool]int
	calm               map[bool]time.Duration
}

func summarize(outs []outcome) tally {
	s := tally{map[float64]int{}, map[float64]int{}, map[float64]int{}, map[float64][]time.Duration{}, map[float64][]float64{},
		map[bool]int{}, map[bool]time.Duration{}}
	for _, o := range outs {
		for i, p := range o.tl.passages {
			s.passages[p.raise]++
			s.above[p.raise] = append(s.above[p.raise], o.above[i])
			if l := o.latencies[i]; l >= 0 {
				s.detectedAny[p.raise]++
				s.latencies[p.raise] = append(s.latencies[p.raise], l)
				if l <= 3*time.Second {
					s.hitsIn3s[p.raise]++
				}
			}
		}
		s.falses[o.tl.bg.music] += len(o.falses)
		s.calm[o.tl.bg.music] += o.calm
	}
	return s
}

// hits is how many passages at raise there were and how many of them
// were confirmed within 3 s.
func (s tally) hits(raise float64) (n, hit int) {
	return s.passages[raise], s.hitsIn3s[raise]
}

func (s tally) detected(raise float64) string {
	l := slices.Clone(s.latencies[raise])
	slices.Sort(l)
	str := fmt.Sprintf("%d of %d confirmed (%d within 3 s)", s.detectedAny[raise], s.passages[raise], s.hitsIn3s[raise])
	if len(l) > 0 {
		str += fmt.Sprintf(", latency median %.2f s, max %.2f s", l[len(l)/2].Seconds(), l[len(l)-1].Seconds())
	}
	a := slices.Clone(s.above[raise])
	slices.Sort(a)
	if len(a) > 0 {
		str += fmt.Sprintf("; voiced level over the baseline min %.1f, median %.1f, max %.1f dB", a[0], a[len(a)/2], a[len(a)-1])
	}
	return str
}

func (s tally) falseRate(music bool) string {
	h := s.calm[music].Hours()
	return fmt.Sprintf("%d in %.2f h of calm talk (%.1f/h)", s.falses[music], h, float64(s.falses[music])/h)
}
