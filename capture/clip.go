package capture

import (
	"errors"
	"fmt"
	"os"
	"time"

	"mamoru/capture/h264"
	"mamoru/capture/mp4"
)

// Fragment sizes. While an incident runs, a fragment is written and synced
// every FragmentEvery of media, so a power cut loses less than that; the
// pre-roll goes out in fragments of up to maxFragmentBytes, so the whole
// pre-roll is durable within a few syncs of the press, and a clip holds no
// more than that of media in memory.
const (
	FragmentEvery    = 500 * time.Millisecond
	maxFragmentBytes = 4 << 20
)

// ErrNoMedia means the clip ended before a single frame reached it.
var ErrNoMedia = errors.New("capture: no media for the clip")

// ClipParams says what goes into a clip.
type ClipParams struct {
	Path  string
	Ring  *Ring
	Start time.Duration // media time the clip starts at: a video key frame, from Ring.Start
	Seq   uint64        // the ring sequence number to read from, from Ring.Start
	// Audio describes the ring's audio; nil when audio is off.
	Audio *AudioFormat
	// VideoPeriod is the nominal frame interval, the duration of the last frame.
	VideoPeriod time.Duration
	Created     time.Time
}

// A Clip copies media from the ring to a fragmented MP4 file as it
// arrives. Its methods are called from one goroutine.
type Clip struct {
	p    ClipParams
	file *os.File
	w    *mp4.Writer // nil until the first fragment, which needs the SPS

	next    uint64  // ring sequence number to read next
	data    []byte  // bytes of pending frames
	pending []Frame // frames read but not yet written; Data aliases data
	read    []Frame // Ring.Read's destination
	video   bool    // the clip has a video track
	sawKey  bool    // a video key frame has been written
	last    [2]time.Duration
	dropped int // frames that could not go into the clip
}

// CreateClip creates the clip file. Nothing is written until the first Flush.
func CreateClip(p ClipParams) (*Clip, error) {
	f, err := os.OpenFile(p.Path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("capture: create clip: %w", err)
	}
	return &Clip{
		p:    p,
		file: f,
		next: p.Seq,
		data: make([]byte, 0, maxFragmentBytes),
		read: make([]Frame, 1024),
	}, nil
}

// Pull copies every frame the ring holds past what was pulled before, and
// returns the media time of the newest frame pulled so far. It returns
// ErrOverrun if the clip fell so far behind that the ring dropped frames it
// needed.
func (c *Clip) Pull() (newest time.Duration, err error) {
	for {
		if c.Full() {
			return c.newest(), nil
		}
		n, next, err := c.p.Ring.Read(c.next, c.read, c.data[len(c.data):cap(c.data)])
		if err != nil {
			return c.newest(), err
		}
		c.next = next
		for _, f := range c.read[:n] {
			c.data = c.data[:len(c.data)+len(f.Data)]
			if f.Time < c.p.Start {
				continue
			}
			c.pending = append(c.pending, f)
			c.last[f.Track] = max(c.last[f.Track], f.Time)
		}
		if n < len(c.read) {
			return c.newest(), nil
		}
	}
}

func (c *Clip) newest() time.Duration { return max(c.last[Video], c.last[Audio]) }

// Full reports whether the media pulled but not written fills the clip's
// buffer: Pull takes no more until a Flush.
func (c *Clip) Full() bool { return cap(c.data)-len(c.data) < maxFragmentBytes/4 }

// PendingTime is how much media has been pulled but not written.
func (c *Clip) PendingTime() time.Duration {
	if len(c.pending) == 0 {
		return 0
	}
	return c.newest() - c.pending[0].Time
}

// Flush writes the pending frames before end as one fragment and syncs it.
// The newest frame of each track stays pending, because its duration is
// known only when the next one arrives.
func (c *Clip) Flush(end time.Duration) error {
	return c.write(end, false)
}

// Close writes every pending frame before end, gives the last frame of each
// track its nominal duration, patches the clip's durations and closes the
// file.
func (c *Clip) Close(end time.Duration) (mp4.Info, error) {
	err := c.write(end, true)
	if err == nil && c.w == nil {
		err = ErrNoMedia
	}
	if err == nil {
		err = c.w.Finalize()
	}
	var info mp4.Info
	if c.w != nil {
		info = c.w.Info()
	}
	if cerr := c.file.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("capture: close clip: %w", cerr)
	}
	return info, err
}

// Abort closes the file as it stands: whatever fragments were written stay
// playable, and recovery finalizes it later.
func (c *Clip) Abort() { c.file.Close() }

// Info describes what has been written so far.
func (c *Clip) Info() mp4.Info {
	if c.w == nil {
		return mp4.Info{}
	}
	return c.w.Info()
}

// Dropped is the number of frames left out: video before the first key
// frame, or video that appeared only after the clip was started without it.
func (c *Clip) Dropped() int { return c.dropped }

func (c *Clip) write(end time.Duration, final bool) error {
	if c.w == nil {
		if err := c.start(); err != nil || c.w == nil {
			return err
		}
	}
	var video, audio []mp4.Sample
	var keep []Frame
	// Hold back the newest frame of each track unless this is the end.
	var hold [2]int
	hold[Video], hold[Audio] = -1, -1
	if !final {
		for i := len(c.pending) - 1; i >= 0; i-- {
			if t := c.pending[i].Track; hold[t] < 0 {
				hold[t] = i
			}
		}
	}
	for i, f := range c.pending {
		if f.Time >= end {
			if !final {
				keep = append(keep, f)
			}
			continue
		}
		if i == hold[f.Track] {
			keep = append(keep, f)
			continue
		}
		if f.Track == Video {
			// Video before the first key frame cannot be decoded.
			if !c.video || !c.sawKey && !f.Key {
				c.dropped++
				continue
			}
			c.sawKey = true
		}
		s := mp4.Sample{Time: f.Time - c.p.Start, Key: f.Key, Data: f.Data}
		if f.Track == Video {
			s.Duration = c.p.VideoPeriod
			video = append(video, s)
		} else {
			s.Duration = AudioBlock
			audio = append(audio, s)
		}
	}
	// Each sample lasts until the next of its track; only the clip's last
	// sample keeps its nominal duration.
	fixDurations(video, keep, Video, c.p.Start)
	fixDurations(audio, keep, Audio, c.p.Start)
	if len(video)+len(audio) > 0 {
		if err := c.w.WriteFragment(video, audio); err != nil {
			return fmt.Errorf("capture: write fragment: %w", err)
		}
	}
	// Move what is kept to the front of data, so data does not grow.
	n := 0
	for i := range keep {
		n += copy(c.data[n:], keep[i].Data)
	}
	off := 0
	for i := range keep {
		l := len(keep[i].Data)
		keep[i].Data = c.data[off : off+l : off+l]
		off += l
	}
	c.data = c.data[:n]
	c.pending = append(c.pending[:0], keep...)
	return nil
}

// fixDurations sets each sample's duration to the gap to the next sample of
// the track, the next being the first kept frame for the last sample.
func fixDurations(s []mp4.Sample, keep []Frame, t Track, start time.Duration) {
	for i := 0; i+1 < len(s); i++ {
		s[i].Duration = s[i+1].Time - s[i].Time
	}
	if len(s) == 0 {
		return
	}
	for _, f := range keep {
		if f.Track == t {
			s[len(s)-1].Duration = f.Time - start - s[len(s)-1].Time
			return
		}
	}
}

// start writes the init segment once the first frames are pending: the SPS
// and PPS come from the first video key frame.
func (c *Clip) start() error {
	var p mp4.Params
	p.Created = c.p.Created
	for _, f := range c.pending {
		if f.Track != Video || !f.Key {
			continue
		}
		sps, pps := parameterSets(f.Data)
		if sps == nil || pps == nil {
			return fmt.Errorf("capture: key frame at %v has no SPS/PPS", f.Time)
		}
		info, err := h264.ParseSPS(sps)
		if err != nil {
			return fmt.Errorf("capture: key frame at %v: %w", f.Time, err)
		}
		p.Video = &mp4.VideoTrack{SPS: sps, PPS: pps, Width: info.Width, Height: info.Height, FrameDuration: c.p.VideoPeriod}
		break
	}
	if c.p.Audio != nil {
		for _, f := range c.pending {
			if f.Track == Audio {
				p.Audio = &mp4.AudioTrack{SampleRate: c.p.Audio.SampleRate, Channels: c.p.Audio.Channels, BitsPerSample: 16, StreamInfo: c.p.Audio.StreamInfo}
				break
			}
		}
	}
	if p.Video == nil && p.Audio == nil {
		return nil // nothing yet
	}
	w, err := mp4.NewWriter(c.file, p)
	if err != nil {
		return fmt.Errorf("capture: start clip: %w", err)
	}
	c.w = w
	c.video = p.Video != nil
	return nil
}

// parameterSets returns the first SPS and PPS NAL units inside an AVCC
// access unit, aliasing it.
func parameterSets(au []byte) (sps, pps []byte) {
	for nal, err := range h264.AVCCUnits(au) {
		if err != nil {
			break
		}
		switch h264.NALType(nal) {
		case h264.NALSPS:
			if sps == nil {
				sps = nal
			}
		case h264.NALPPS:
			if pps == nil {
				pps = nal
			}
		}
	}
	return sps, pps
}
