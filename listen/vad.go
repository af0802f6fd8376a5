package listen

import "math"

// The VAD's thresholds. They were set on the synthetic signals in
// vad_test.go and are not tuned on recordings from a real counter; the test
// prints what each kind of sound scores.
const (
	vadMinLevel     = -60.0 // dBFS: quieter frames are never voice
	vadMinBandRatio = 0.4   // share of the frame's energy in 300–3400 Hz
	vadMaxZCR       = 9000  // zero crossings per second; fricatives and hiss run higher
	vadMinSwing     = 4.0   // dB: standard deviation of frame levels over vadSwingFrames
	vadSwingFrames  = 25    // 500 ms: two syllables at 4 Hz
	vadHangover     = 15    // frames (300 ms) voice is held after the last voiced frame
	vadFloorDB      = -100.0
)

// VAD decides, per 20 ms frame of audio, whether someone is talking. A frame
// counts as voice when it is louder than -60 dBFS, at least 40% of its energy
// lies in the telephone speech band (300–3400 Hz), it has at most 9000 zero
// crossings a second, and frame levels over the last 500 ms swing by a
// standard deviation of 4 dB or more, as they do at syllable rate. Voice is
// held for 300 ms after the last voiced frame, bridging consonants and
// short gaps between words.
//
// So a steady hum, fan or tone is not voice (no swing, or energy outside the
// band), and neither is hiss (zero crossings). Music with vocals, a radio or
// television, and rhythmic clatter in the speech band are taken for voice;
// whispering is missed. Frames are counted from the first sample written;
// stereo is mixed to mono first. A VAD does not allocate after NewVAD.
type VAD struct {
	channels int
	frame    int // frames of audio in 20 ms
	rate     float64

	dcX, dcY float64 // DC blocker state
	hp, lp   biquad  // speech band
	prev     float64 // last DC-blocked sample, for zero crossings

	pos                int // audio frames into the current 20 ms frame
	full, band         float64
	crossings          int
	levels             [vadSwingFrames]float64 // ring of frame levels, dBFS
	next               int
	hold               int  // frames of hangover left
	voiced, frameVoice bool // held decision, and the last frame's own
	frames             uint64
}

// NewVAD returns a VAD for the format, or an error wrapping ErrFormat
// (see NewMeter).
func NewVAD(sampleRate, channels int) (*VAD, error) {
	if err := checkFormat(sampleRate, channels); err != nil {
		return nil, err
	}
	v := &VAD{channels: channels, frame: sampleRate / 50, rate: float64(sampleRate)}
	v.hp, v.lp = bandpass(300, 3400, v.rate)
	return v, nil
}

// Write classifies pcm, interleaved, of any whole number of frames; it does
// not retain pcm. A block that is not whole frames is refused with
// ErrPartialFrame and changes nothing.
func (v *VAD) Write(pcm []int16) error {
	if len(pcm)%v.channels != 0 {
		return ErrPartialFrame
	}
	for len(pcm) > 0 {
		n, _ := v.feed(pcm)
		pcm = pcm[n*v.channels:]
	}
	return nil
}

// Voiced is the decision for the last completed 20 ms frame, hangover
// included.
func (v *VAD) Voiced() bool { return v.voiced }

// feed takes frames up to the end of the current 20 ms frame and says how
// many it took and whether a frame was decided.
func (v *VAD) feed(pcm []int16) (frames int, decided bool) {
	frames = min(len(pcm)/v.channels, v.frame-v.pos)
	scale := 1 / (32768 * float64(v.channels))
	for i := range frames {
		var x float64
		for c := range v.channels {
			x += float64(pcm[i*v.channels+c])
		}
		x *= scale
		// One-pole DC blocker (about 8 Hz at 48 kHz): a microphone's offset
		// must not count as energy outside the speech band.
		y := x - v.dcX + 0.999*v.dcY
		v.dcX, v.dcY = x, y
		v.full += y * y
		b := v.lp.step(v.hp.step(y))
		v.band += b * b
		if (y >= 0) != (v.prev >= 0) {
			v.crossings++
		}
		v.prev = y
	}
	v.pos += frames
	if v.pos < v.frame {
		return frames, false
	}
	v.decide()
	return frames, true
}

func (v *VAD) decide() {
	n := float64(v.frame)
	level := vadFloorDB
	if v.full > 0 {
		level = max(vadFloorDB, 10*math.Log10(v.full/n)+3.01) // dBFS, sine-referenced
	}
	if v.frames == 0 {
		// Start with a flat history: a steady sound must not look like
		// a swing from silence.
		for i := range v.levels {
			v.levels[i] = level
		}
	}
	v.levels[v.next] = level
	v.next = (v.next + 1) % len(v.levels)
	var sum, sq float64
	for _, l := range v.levels {
		sum += l
		sq += l * l
	}
	mean := sum / float64(len(v.levels))
	swing := math.Sqrt(max(0, sq/float64(len(v.levels))-mean*mean))
	ratio := 0.0
	if v.full > 0 {
		ratio = v.band / v.full
	}
	zcr := float64(v.crossings) * v.rate / n
	v.frameVoice = level >= vadMinLevel && ratio >= vadMinBandRatio && zcr <= vadMaxZCR && swing >= vadMinSwing
	switch {
	case v.frameVoice:
		v.hold = vadHangover
		v.voiced = true
	case v.hold > 0:
		v.hold--
		v.voiced = true
	default:
		v.voiced = false
	}
	v.frames++
	v.pos, v.full, v.band, v.crossings = 0, 0, 0, 0
}
