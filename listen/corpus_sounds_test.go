package listen

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// The corpus's sounds, made at test time from tools Debian ships: speech
// from espeak-ng, resampled to 48 kHz by sox; music written here as General
// MIDI and rendered by fluidsynth with the TimGM6mb soundfont; pink noise
// made here. Nothing is downloaded and no audio is committed.

// soundFont is the General MIDI soundfont of Debian's timgm6mb-soundfont.
const soundFont = "/usr/share/sounds/sf2/TimGM6mb.sf2"

// needCorpusTools fails the test, rather than skipping it, when a tool is
// missing: CI installs them all (.ci/install-deps), so a missing one is a
// broken machine, not a reason for the figures to go unchecked.
func needCorpusTools(t testing.TB) {
	t.Helper()
	for tool, pkg := range map[string]string{"espeak-ng": "espeak-ng", "sox": "sox", "fluidsynth": "fluidsynth"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing (apt-get install %s; .ci/install-deps installs it)", tool, pkg)
		}
	}
	if _, err := os.Stat(soundFont); err != nil {
		t.Fatalf("the General MIDI soundfont is missing: %v (apt-get install timgm6mb-soundfont)", err)
	}
}

// A voice is how espeak-ng speaks: its voice name (a language, optionally
// +variant), words a minute and pitch (0–99).
type voice struct {
	name         string
	speed, pitch int
}

func (v voice) String() string { return fmt.Sprintf("%s -s %d -p %d", v.name, v.speed, v.pitch) }

// speak renders text in v as 48 kHz mono PCM at espeak-ng's own level
// (amplitude 100), with the leading and trailing silence it adds. Like
// the other renderers it returns an error rather than failing the test,
// so that it may run on any goroutine.
func speak(dir string, v voice, text string) ([]int16, error) {
	wav := filepath.Join(dir, fmt.Sprintf("speech-%x.wav", rand.Uint64()))
	if out, err := exec.Command("espeak-ng", "-v", v.name, "-s", fmt.Sprint(v.speed), "-p", fmt.Sprint(v.pitch),
		"-w", wav, text).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("espeak-ng %s: %v\n%s", v, err, out)
	}
	defer os.Remove(wav)
	return resample(wav)
}

// resample reads any file sox reads as 48 kHz mono 16-bit PCM.
func resample(file string) ([]int16, error) {
	var out, errOut bytes.Buffer
	cmd := exec.Command("sox", file, "-t", "raw", "-r", "48000", "-e", "signed", "-b", "16", "-c", "1", "-L", "-")
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("sox %s: %v\n%s", file, err, errOut.Bytes())
	}
	return samples(out.Bytes()), nil
}

func samples(b []byte) []int16 {
	s := make([]int16, len(b)/2)
	for i := range s {
		s[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
	}
	return s
}

// activeDB is the level of pcm's sound in dBFS (RMS, sine-referenced like
// the VAD's): the mean power of its 20 ms frames within 30 dB of the
// loudest, so the silence around and between words does not count. It is
// a rough active speech level in the spirit of ITU-T P.56.
func activeDB(pcm []int16) float64 {
	const frame = testRate / 50
	var powers []float64
	for i := 0; i+frame <= len(pcm); i += frame {
		var p float64
		for _, s := range pcm[i : i+frame] {
			x := float64(s) / 32768
			p += x * x
		}
		powers = append(powers, p/frame)
	}
	if len(powers) == 0 {
		return math.Inf(-1)
	}
	loudest := slices.Max(powers)
	var sum float64
	var n int
	for _, p := range powers {
		if p >= loudest/1000 {
			sum += p
			n++
		}
	}
	return 10*math.Log10(sum/float64(n)) + 3.01
}

// voicedSpan is where the sound in pcm starts and ends, in samples: the
// first and last 20 ms frames within 30 dB of the loudest.
func voicedSpan(pcm []int16) (start, end int) {
	const frame = testRate / 50
	var powers []float64
	for i := 0; i+frame <= len(pcm); i += frame {
		var p float64
		for _, s := range pcm[i : i+frame] {
			p += float64(s) * float64(s)
		}
		powers = append(powers, p)
	}
	loudest := slices.Max(powers)
	first, last := -1, 0
	for i, p := range powers {
		if p >= loudest/1000 {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	return first * frame, (last + 1) * frame
}

// addPinkNoise adds pink noise (equal power per octave, Paul Kellet's
// economy filter on white noise) at dbfs RMS, sine-referenced, to dst.
func addPinkNoise(dst []float64, dbfs float64, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 3))
	// 2.98 is the filter's RMS gain on unit white noise, measured over
	// ten minutes of it.
	g := math.Pow(10, (dbfs-3.01)/20) / 2.98
	var b0, b1, b2 float64
	for i := range dst {
		w := rng.NormFloat64()
		b0 = 0.99765*b0 + w*0.0990460
		b1 = 0.96300*b1 + w*0.2965164
		b2 = 0.57000*b2 + w*1.0526913
		dst[i] += g * (b0 + b1 + b2 + w*0.1848)
	}
}

// A song is General MIDI music written for the corpus: a chord progression
// under a sung or played lead, at a tempo, for some bars.
type song struct {
	name   string
	bpm    int
	bars   int
	seed   uint64
	lead   []byte // GM programs (0-based) the lead passes between, phrase by phrase
	chords byte   // GM program of the chordal instrument
}

// GM programs, 0-based.
const (
	gmPiano       = 0
	gmEPiano      = 4
	gmNylonGuitar = 24
	gmFingerBass  = 33
	gmStrings     = 48
	gmChoirAahs   = 52
	gmVoiceOohs   = 53
	gmAltoSax     = 65
	gmFlute       = 73
)

// midi writes the song as a standard MIDI file, format 0: channel 0 the
// chords, 1 bass, 2 a string pad, 3 the lead, 9 drums. The lead sings in
// two-bar phrases with a breath between, mostly by step, as a voice does:
// music with voice-like content is the hard case for the VAD.
func (s song) midi() []byte {
	const tpq = 480 // ticks per quarter note
	rng := rand.New(rand.NewPCG(s.seed, 4))
	type event struct {
		tick int
		msg  []byte
	}
	var evs []event
	note := func(ch byte, key, vel int, at, dur int) {
		evs = append(evs, event{at, []byte{0x90 | ch, byte(key), byte(vel)}}, event{at + dur, []byte{0x80 | ch, byte(key), 0}})
	}
	for ch, prog := range map[byte]byte{0: s.chords, 1: gmFingerBass, 2: gmStrings, 3: s.lead[0]} {
		evs = append(evs, event{0, []byte{0xC0 | ch, prog}})
	}
	// I–V–vi–IV and relatives in C major: roots and triads.
	progressions := [][]int{{0, 7, 9, 5}, {9, 5, 0, 7}, {0, 9, 5, 7}, {2, 7, 0, 9}}
	triad := func(root int) []int {
		switch root % 12 {
		case 2, 4, 9: // D, E, A minor
			return []int{root, root + 3, root + 7}
		default:
			return []int{root, root + 4, root + 7}
		}
	}
	scale := []int{0, 2, 4, 5, 7, 9, 11}
	bar := 4 * tpq
	melody := 3 // index into the scale, an octave above middle C's
	prog := progressions[0]
	for b := range s.bars {
		if b%4 == 0 {
			prog = progressions[rng.IntN(len(progressions))]
		}
		at := b * bar
		root := prog[b%4]
		chord := triad(root)
		// Chords: on beats 1 and 3, with a push on the "and" of 2.
		for _, beat := range []int{0, 3 * tpq / 2, 2 * tpq} {
			for _, k := range chord {
				note(0, 60+k, 60+rng.IntN(15), at+beat, tpq-40)
			}
		}
		// Pad: the whole bar, soft.
		for _, k := range chord {
			note(2, 48+k, 45, at, bar-20)
		}
		// Bass: root in eighths, the fifth on the last.
		for e := range 8 {
			k := 36 + root
			if e == 7 {
				k += 7
			}
			note(1, k, 80+rng.IntN(10), at+e*tpq/2, tpq/2-30)
		}
		// Drums: kick on 1 and 3, snare on 2 and 4, closed hat in eighths.
		for beat := range 4 {
			drum := 36
			if beat%2 == 1 {
				drum = 38
			}
			note(9, drum, 90, at+beat*tpq, tpq/4)
		}
		for e := range 8 {
			note(9, 42, 50+rng.IntN(20), at+e*tpq/2, tpq/8)
		}
		// Lead: phrases of two bars, then a bar and a half's breath;
		// every other phrase in the next of the lead's voices.
		phrase := b / 4
		if b%4 == 0 && len(s.lead) > 1 {
			evs = append(evs, event{at, []byte{0xC3, s.lead[phrase%len(s.lead)]}})
		}
		if b%4 >= 2 && !(b%4 == 3 && rng.IntN(2) == 0) {
			continue
		}
		for t := 0; t < bar; {
			dur := []int{tpq / 2, tpq, tpq, 3 * tpq / 2, 2 * tpq}[rng.IntN(5)]
			dur = min(dur, bar-t)
			melody = max(0, min(13, melody+rng.IntN(5)-2))
			key := 72 + 12*(melody/7) + scale[melody%7] - 12
			note(3, key, 85+rng.IntN(20), at+t, dur-20)
			t += dur
		}
	}
	slices.SortStableFunc(evs, func(a, b event) int {
		if a.tick != b.tick {
			return a.tick - b.tick
		}
		// Note-offs before note-ons at the same tick.
		return int(b.msg[0]&0xF0) - int(a.msg[0]&0xF0)
	})
	var track bytes.Buffer
	varint := func(v int) {
		var buf [4]byte
		n := 0
		buf[n] = byte(v & 0x7F)
		for v >>= 7; v > 0; v >>= 7 {
			n++
			buf[n] = byte(v&0x7F) | 0x80
		}
		for ; n >= 0; n-- {
			track.WriteByte(buf[n])
		}
	}
	tempo := 60_000_000 / s.bpm
	varint(0)
	track.Write([]byte{0xFF, 0x51, 3, byte(tempo >> 16), byte(tempo >> 8), byte(tempo)})
	last := 0
	for _, e := range evs {
		varint(e.tick - last)
		track.Write(e.msg)
		last = e.tick
	}
	varint(bar) // a bar of tail for the reverb
	track.Write([]byte{0xFF, 0x2F, 0})
	var f bytes.Buffer
	f.WriteString("MThd")
	binary.Write(&f, binary.BigEndian, struct {
		Len                   uint32
		Format, Tracks, Ticks uint16
	}{6, 0, 1, tpq})
	f.WriteString("MTrk")
	binary.Write(&f, binary.BigEndian, uint32(track.Len()))
	f.Write(track.Bytes())
	return f.Bytes()
}

// render plays the song through fluidsynth with the soundfont, as 48 kHz
// mono PCM (fluidsynth renders stereo; the channels are averaged).
func (s song) render(dir string) ([]int16, error) {
	mid := filepath.Join(dir, s.name+".mid")
	raw := filepath.Join(dir, s.name+".raw")
	if err := os.WriteFile(mid, s.midi(), 0o644); err != nil {
		return nil, err
	}
	if out, err := exec.Command("fluidsynth", "-n", "-i", "-q", "-r", "48000", "-g", "0.5",
		"-F", raw, "-T", "raw", "-O", "s16", "-E", "little", soundFont, mid).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("fluidsynth %s: %v\n%s", s.name, err, out)
	}
	b, err := os.ReadFile(raw)
	if err != nil {
		return nil, err
	}
	os.Remove(raw)
	stereo := samples(b)
	mono := make([]int16, len(stereo)/2)
	for i := range mono {
		mono[i] = int16((int(stereo[2*i]) + int(stereo[2*i+1])) / 2)
	}
	return mono, nil
}
