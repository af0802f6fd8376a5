package capture

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"mamoru/backoff"
	"mamoru/clock"
	"mamoru/config"
)

// AudioBlock is the length of one audio frame in the ring and one sample in
// the clip: 20 ms, fine enough that a clip's audio starts within 20 ms of
// its video.
const AudioBlock = 20 * time.Millisecond

// ErrNoMicrophone means this build of mamoru cannot capture audio: the
// microphone is driven by miniaudio, a C library, and the build had no cgo.
var ErrNoMicrophone = errors.New("capture: this build has no microphone support (built without cgo); run the Raspberry Pi's build")

// AudioSource captures the microphone through miniaudio (malgo), encodes it
// to FLAC in 20 ms blocks and writes the blocks to Ring, stamped on
// Timeline. Run opens the device and closes it before it returns. In a
// build without cgo, Run returns ErrNoMicrophone.
type AudioSource struct {
	Config   config.Audio
	Timeline *Timeline // required
	Ring     *Ring     // required
	Log      *slog.Logger
	Backoff  backoff.Backoff
	// Clock runs the restart backoff and the silence limits; nil is
	// clock.Real().
	Clock clock.Clock
	// PCM, if set, is called with each 20 ms block of samples, interleaved
	// (Config.Channels channels at Config.SampleRate), and the media time of
	// its first sample, before the block is encoded; for a loudness meter.
	// It is called on the goroutine that runs Run. Implementations must not
	// retain pcm, which is reused for the next block, and must return
	// quickly: while PCM runs nothing is encoded, and a PCM that takes
	// longer than the blocks last makes the source drop samples.
	PCM func(t time.Duration, pcm []int16)

	health healthBox
	peak   atomic.Int32 // the loudest sample since Peak was last called
	st     *stamper     // lives across sessions; used by Run's goroutine only
}

// Health returns the source's state.
func (s *AudioSource) Health() Health { return s.health.get() }

// Peak returns the loudest sample since the last call, in dBFS (0 is full
// scale; silence is -inf), for a level meter.
func (s *AudioSource) Peak() float64 {
	return 20 * math.Log10(float64(s.peak.Swap(0))/32768)
}

func (s *AudioSource) measure(pcm []int16) {
	var p int32
	for _, v := range pcm {
		p = max(p, int32(v), -int32(v))
	}
	for {
		old := s.peak.Load()
		if p <= old || s.peak.CompareAndSwap(old, p) {
			return
		}
	}
}

// Format returns the sample format the source writes, for the clip's
// sample entry.
func (s *AudioSource) Format() (AudioFormat, error) {
	enc, err := newFLACEncoder(s.Config.SampleRate, s.Config.Channels, s.blockSamples())
	if err != nil {
		return AudioFormat{}, err
	}
	return AudioFormat{SampleRate: s.Config.SampleRate, Channels: s.Config.Channels, StreamInfo: enc.StreamInfo()}, nil
}

// AudioFormat describes the FLAC audio in the ring.
type AudioFormat struct {
	SampleRate, Channels int
	StreamInfo           []byte // the FLAC STREAMINFO block body
}

func (s *AudioSource) blockSamples() int {
	return s.Config.SampleRate * int(AudioBlock/time.Millisecond) / 1000
}

// Run captures until ctx ends, as Source says.
func (s *AudioSource) Run(ctx context.Context) error {
	if s.Timeline == nil || s.Ring == nil {
		return errors.New("capture: an AudioSource needs a Timeline and a Ring")
	}
	r := &restarter{clock: clock.Or(s.Clock), backoff: s.Backoff, health: &s.health,
		log: orDefault(s.Log).With("backend", s.Config.Backend, "device", s.Config.Device), what: "audio source"}
	return r.run(ctx, func(ctx context.Context) error { return s.session(ctx, r.clock, r.log) })
}

// blocks cuts PCM into fixed blocks, stamps and encodes them. It is fed by
// one goroutine.
type blocks struct {
	enc     *flacEncoder
	rate    int
	ch      int
	pcm     []int16 // the block being filled
	fill    int     // samples per channel in pcm
	startAt time.Duration
	st      *stamper
	write   func(Frame) error
	onPCM   func(time.Duration, []int16) // AudioSource.PCM
	onFrame func(time.Duration)
}

// st stamps the blocks; nil starts a new stamper.
func newBlocks(rate, ch, block int, st *stamper, write func(Frame) error) (*blocks, error) {
	if st == nil {
		s := newStamper(time.Duration(block) * time.Second / time.Duration(rate))
		st = &s
	}
	enc, err := newFLACEncoder(rate, ch, block)
	if err != nil {
		return nil, err
	}
	return &blocks{
		enc:   enc,
		rate:  rate,
		ch:    ch,
		pcm:   make([]int16, block*ch),
		st:    st,
		write: write,
	}, nil
}

// add takes interleaved samples whose first was captured at media time at.
func (b *blocks) add(at time.Duration, pcm []int16) error {
	block := len(b.pcm) / b.ch
	for i := 0; i < len(pcm)/b.ch; {
		if b.fill == 0 {
			b.startAt = at + time.Duration(i)*time.Second/time.Duration(b.rate)
		}
		n := min(block-b.fill, len(pcm)/b.ch-i)
		copy(b.pcm[b.fill*b.ch:], pcm[i*b.ch:(i+n)*b.ch])
		b.fill += n
		i += n
		if b.fill < block {
			continue
		}
		b.fill = 0
		t, _ := b.st.stamp(b.startAt)
		if b.onPCM != nil {
			b.onPCM(t, b.pcm)
		}
		data, err := b.enc.Encode(b.pcm)
		if err != nil {
			return err
		}
		if err := b.write(Frame{Track: Audio, Time: t, Key: true, Data: data}); err != nil {
			return err
		}
		if b.onFrame != nil {
			b.onFrame(t)
		}
	}
	return nil
}
