package listen

import (
	"errors"
	"fmt"
	"math"
)

// Sentinel errors a caller may branch on.
var (
	// ErrFormat means a sample rate or channel count this package does not
	// take: see NewMeter.
	ErrFormat = errors.New("listen: unsupported audio format")
	// ErrPartialFrame means a block's length is not a whole number of
	// frames (one sample per channel); the block was not used.
	ErrPartialFrame = errors.New("listen: block is not a whole number of frames")
)

const (
	maxChannels = 2
	// subBlocks100ms is how many 100 ms steps the short-term window holds.
	shortTermSteps = 30 // 3 s
	momentarySteps = 4  // 400 ms
)

// checkFormat accepts what the recorder can deliver and the package's
// framing needs: whole 20 ms frames and 100 ms steps, so a rate that is a
// multiple of 50 Hz, and mono or stereo (channel weight 1.0 each; BS.1770's
// surround weights are not needed at a counter).
func checkFormat(rate, channels int) error {
	if rate < 8000 || rate > 192000 || rate%50 != 0 {
		return fmt.Errorf("%w: sample rate %d Hz (want a multiple of 50 between 8000 and 192000)", ErrFormat, rate)
	}
	if channels < 1 || channels > maxChannels {
		return fmt.Errorf("%w: %d channels (want 1 or 2)", ErrFormat, channels)
	}
	return nil
}

// Meter measures BS.1770-4 loudness of interleaved signed 16-bit PCM:
// momentary (400 ms window) and short-term (3 s window), both updated
// every 100 ms of audio, aligned to the first sample written. Full scale is
// 32768, so a sine of peak 32767 is 0 dBFS.
//
// A Meter does not allocate after NewMeter.
type Meter struct {
	channels int
	step     int // frames in 100 ms
	k        [maxChannels][2]biquad
	acc      [maxChannels]float64 // Σ y² per channel in the current step
	pos      int                  // frames into the current step
	// power is a ring of Σ G·z per completed 100 ms step (G = 1 for each
	// channel here); next is where the next step goes, steps how many were
	// ever completed (saturating at len(power)).
	power       [shortTermSteps]float64
	next, steps int
}

// NewMeter returns a meter for sampleRate (a multiple of 50 Hz from 8 kHz
// to 192 kHz) and 1 or 2 channels, or an error wrapping ErrFormat.
func NewMeter(sampleRate, channels int) (*Meter, error) {
	if err := checkFormat(sampleRate, channels); err != nil {
		return nil, err
	}
	m := &Meter{channels: channels, step: sampleRate / 10}
	for c := range channels {
		m.k[c][0], m.k[c][1] = kWeighting(float64(sampleRate))
	}
	return m, nil
}

// Write measures pcm, interleaved by channel, of any whole number of frames.
// It does not retain pcm. A block that is not whole frames is refused with
// ErrPartialFrame and changes nothing.
func (m *Meter) Write(pcm []int16) error {
	if len(pcm)%m.channels != 0 {
		return ErrPartialFrame
	}
	for len(pcm) > 0 {
		n, _ := m.feed(pcm)
		pcm = pcm[n*m.channels:]
	}
	return nil
}

// feed measures frames from pcm up to the end of the current 100 ms step
// and says how many frames it took and whether that step completed.
func (m *Meter) feed(pcm []int16) (frames int, stepped bool) {
	frames = min(len(pcm)/m.channels, m.step-m.pos)
	for c := range m.channels {
		shelf, hp := &m.k[c][0], &m.k[c][1]
		sum := m.acc[c]
		for i := c; i < frames*m.channels; i += m.channels {
			y := hp.step(shelf.step(float64(pcm[i]) / 32768))
			sum += y * y
		}
		m.acc[c] = sum
	}
	m.pos += frames
	if m.pos < m.step {
		return frames, false
	}
	var z float64
	for c := range m.channels {
		z += m.acc[c] / float64(m.step) // G = 1.0 for L, R, C and mono
		m.acc[c] = 0
	}
	m.power[m.next] = z
	m.next = (m.next + 1) % len(m.power)
	m.steps = min(m.steps+1, len(m.power))
	m.pos = 0
	return frames, true
}

// mean is the mean of the last n steps' power, and false until n steps
// have completed.
func (m *Meter) mean(n int) (float64, bool) {
	if m.steps < n {
		return 0, false
	}
	var sum float64
	for i := 1; i <= n; i++ {
		sum += m.power[(m.next-i+len(m.power))%len(m.power)]
	}
	return sum / float64(n), true
}

// lufs turns a mean square Σ G·z into loudness; silence is -Inf.
func lufs(z float64) float64 {
	if z <= 0 {
		return math.Inf(-1)
	}
	return -0.691 + 10*math.Log10(z)
}

// Momentary is the loudness in LUFS of the last 400 ms, as of the last
// completed 100 ms step; -Inf before 400 ms have been written, and for
// digital silence.
func (m *Meter) Momentary() float64 {
	z, ok := m.mean(momentarySteps)
	if !ok {
		return math.Inf(-1)
	}
	return lufs(z)
}

// ShortTerm is the loudness in LUFS of the last 3 s, as of the last
// completed 100 ms step; -Inf before 3 s have been written, and for
// digital silence.
func (m *Meter) ShortTerm() float64 {
	z, ok := m.mean(shortTermSteps)
	if !ok {
		return math.Inf(-1)
	}
	return lufs(z)
}
