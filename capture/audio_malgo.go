//go:build cgo

package capture

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gen2brain/malgo"

	"mamoru/clock"
	"mamoru/config"
)

// HasMicrophone reports whether this build can capture audio: it can,
// through miniaudio.
const HasMicrophone = true

// backendNull is miniaudio's null backend. malgo v0.11.24 gives
// malgo.BackendNull the value 13, which is miniaudio's custom backend.
const backendNull malgo.Backend = 14

func backends(name string) []malgo.Backend {
	switch name {
	case config.BackendALSA:
		return []malgo.Backend{malgo.BackendAlsa}
	case config.BackendPulse:
		return []malgo.Backend{malgo.BackendPulseaudio}
	case config.BackendNull:
		return []malgo.Backend{backendNull}
	}
	return []malgo.Backend{malgo.BackendPulseaudio, malgo.BackendAlsa}
}

// Devices lists the names of the capture devices the configured backend sees.
func Devices(cfg config.Audio) ([]string, error) {
	mctx, err := malgo.InitContext(backends(cfg.Backend), malgo.ContextConfig{}, nil)
	if err != nil {
		return nil, fmt.Errorf("capture: audio backend %q: %w", cfg.Backend, err)
	}
	defer func() { mctx.Uninit(); mctx.Free() }()
	infos, err := mctx.Devices(malgo.Capture)
	if err != nil {
		return nil, fmt.Errorf("capture: list audio devices: %w", err)
	}
	names := make([]string, len(infos))
	for i := range infos {
		names[i] = infos[i].Name()
	}
	return names, nil
}

// session opens the device, captures until ctx ends or the device fails,
// and closes the device.
func (s *AudioSource) session(ctx context.Context, clk clock.Clock, log *slog.Logger) error {
	cfg := s.Config
	mctx, err := malgo.InitContext(backends(cfg.Backend), malgo.ContextConfig{}, nil)
	if err != nil {
		return fmt.Errorf("audio backend %q: %w", cfg.Backend, err)
	}
	defer func() { mctx.Uninit(); mctx.Free() }()

	dc := malgo.DefaultDeviceConfig(malgo.Capture)
	dc.Capture.Format = malgo.FormatS16
	dc.Capture.Channels = uint32(cfg.Channels)
	dc.SampleRate = uint32(cfg.SampleRate)
	// Callbacks every 100 ms, and 600 ms of buffer behind them: the
	// device (PulseAudio's record stream, ALSA's ring) holds only periods ×
	// period of sound, and drops the oldest when the callback thread is
	// late. Three periods, miniaudio's default, is 30 ms, which a starved
	// Pi misses, and samples are lost; a callback that comes late now
	// finds them waiting. Each callback crosses from C into Go, and each
	// crossing keeps Go's scheduler monitor (sysmon) from backing off for
	// a while: at 10 ms the crossings cost more than the encoding, and
	// going from 40 ms to 100 ms took a third off mamoru's CPU
	// (bench/README.md). A block's samples are stamped as exactly as
	// before (from the callback's own frame count); they reach the ring up
	// to 100 ms later, which a clip, written behind the press, never sees.
	dc.PeriodSizeInMilliseconds = 100
	dc.Periods = 6
	if cfg.Device != "" {
		infos, err := mctx.Devices(malgo.Capture)
		if err != nil {
			return fmt.Errorf("list audio devices: %w", err)
		}
		var names []string
		for i := range infos {
			name := infos[i].Name()
			names = append(names, fmt.Sprintf("%q", name))
			if strings.Contains(strings.ToLower(name), strings.ToLower(cfg.Device)) && dc.Capture.DeviceID == nil {
				dc.Capture.DeviceID = infos[i].ID.Pointer()
			}
		}
		if dc.Capture.DeviceID == nil {
			return fmt.Errorf("'audio.device' %q matches no capture device; the %s backend has: %s",
				cfg.Device, cfg.Backend, strings.Join(names, ", "))
		}
	}

	// One stamper for the source's whole life, so a reopened device's
	// blocks never stamp before the last one's.
	if s.st == nil {
		st := newStamper(AudioBlock)
		s.st = &st
	}
	b, err := newBlocks(cfg.SampleRate, cfg.Channels, s.blockSamples(), s.st, s.Ring.Write)
	if err != nil {
		return err
	}
	b.onPCM, b.onFrame = s.PCM, s.health.frame

	// The callback runs on miniaudio's thread: it only copies samples into
	// a free chunk and hands it over, so encoding and GC never stall capture.
	// 512 chunks of 20 ms: the encoder may stall for ten seconds (a starved
	// Pi) before a sample is lost.
	const chunks = 512
	free := make(chan *chunk, chunks)
	full := make(chan *chunk, chunks)
	for range chunks {
		free <- &chunk{pcm: make([]int16, 0, cfg.SampleRate*cfg.Channels/50)}
	}
	var dropped atomic.Int64
	// lastCallback is when miniaudio last called, as time since opened on
	// clk: the silence limits run on the source's clock, the stamps on the
	// Timeline.
	var lastCallback atomic.Int64
	opened := clk.Now()
	stopped := make(chan struct{}, 1)
	rate := time.Duration(cfg.SampleRate)
	onData := func(_, in []byte, frames uint32) {
		lastCallback.Store(int64(clk.Since(opened)))
		at := s.Timeline.Now() - time.Duration(frames)*time.Second/rate
		for len(in) > 0 {
			var c *chunk
			select {
			case c = <-free:
			default:
				dropped.Add(int64(len(in) / 2 / cfg.Channels))
				return
			}
			n := min(len(in)/2, cap(c.pcm))
			c.pcm = c.pcm[:n]
			for i := range c.pcm {
				c.pcm[i] = int16(binary.LittleEndian.Uint16(in[2*i:]))
			}
			c.at = at
			at += time.Duration(n/cfg.Channels) * time.Second / rate
			in = in[2*n:]
			full <- c
		}
	}
	onStop := func() {
		select {
		case stopped <- struct{}{}:
		default:
		}
	}
	dev, err := malgo.InitDevice(mctx.Context, dc, malgo.DeviceCallbacks{Data: onData, Stop: onStop})
	if err != nil {
		return fmt.Errorf("open audio device %q on backend %q: %w", cfg.Device, cfg.Backend, err)
	}
	defer dev.Uninit()
	if got := dev.SampleRate(); got != uint32(cfg.SampleRate) {
		return fmt.Errorf("audio device runs at %d Hz, want %d ('audio.sample_rate')", got, cfg.SampleRate)
	}
	lastCallback.Store(int64(clk.Since(opened)))
	if err := dev.Start(); err != nil {
		return fmt.Errorf("start audio device: %w", err)
	}
	defer dev.Stop()
	s.health.running(true)
	log.Info("audio capture open", "rate", cfg.SampleRate, "channels", cfg.Channels)

	// A new PulseAudio stream may deliver its first samples seconds late;
	// after that, silence from the device for this long is a failure.
	const firstGrace, silence = 10 * time.Second, 3 * time.Second
	started := false
	tick := clk.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-stopped:
			return errSessionEnded
		case c := <-full:
			started = true
			s.measure(c.pcm)
			err := b.add(c.at, c.pcm)
			free <- c
			if err != nil {
				return err
			}
		case <-tick.Chan():
			if n := dropped.Swap(0); n > 0 {
				log.Warn("audio samples dropped: the encoder fell behind", "samples", n)
			}
			limit := silence
			if !started {
				limit = firstGrace
			}
			if idle := clk.Since(opened) - time.Duration(lastCallback.Load()); idle > limit {
				return errNoAudio(idle.Round(time.Second))
			}
		}
	}
}

// chunk carries PCM from miniaudio's callback thread to the encoder.
type chunk struct {
	at  time.Duration
	pcm []int16
}

func errNoAudio(d time.Duration) error {
	return fmt.Errorf("no audio from the device for %v", d)
}
