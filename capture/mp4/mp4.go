// Package mp4 writes incident clips as fragmented MP4 files (ISO/IEC 14496-12)
// holding H.264 video and FLAC audio, repairs clips cut short by a power loss,
// and reads the samples of the clips it writes. The audio of a clip's viewing
// copy is ALAC (Apple Lossless) instead of FLAC, in the same layout.
//
// A clip is an init segment (ftyp, moov) followed by fragments (moof, mdat). The
// Writer appends each fragment and syncs the file, so a crash loses at most the
// fragment being written: everything before it stays playable. Finalize patches
// the durations in the moov once the incident is over; Recover truncates a clip
// whose writer never finished after its last complete fragment and patches the
// durations the same way.
//
// Every clip uses a movie timescale of 1000, a video timescale of 900000 and
// an audio timescale equal to the audio sample rate. Decode and presentation
// times are equal: the video must not contain B-frames.
//
// The video track's sample table carries one time-to-sample entry with no
// samples: its delta is the clip's frame rate, the nominal one until Finalize
// or Recover chooses one that fits the frames. FFmpeg reads its frame rate
// there rather than guess it from the first frames' times; a guess of 29.97
// fps for a 30 fps camera makes it retime two frames onto one every 33 s.
package mp4

import (
	"errors"
	"io"
	"math"
	"math/bits"
	"time"
)

// Sentinel errors returned (wrapped) by Recover.
var (
	// ErrNotClip means the file does not start with a complete init segment
	// (ftyp then moov with mvex) of a fragmented MP4 clip.
	ErrNotClip = errors.New("not a fragmented MP4 clip")
	// ErrNoFragments means the file has a complete init segment but no complete
	// fragment after it, so there is nothing to play.
	ErrNoFragments = errors.New("no complete fragment")
	// ErrUnsupported means a Reader met a clip whose tracks or boxes are not
	// those a Writer writes: more than one video or audio track, video other
	// than H.264 with 4-byte NAL unit lengths, audio other than FLAC or ALAC,
	// or a fragment larger than a Reader holds in memory.
	ErrUnsupported = errors.New("not a clip this package reads")
)

// VideoTrack describes the H.264 video of a clip.
type VideoTrack struct {
	// SPS and PPS are the sequence and picture parameter set NAL units, without
	// start code or length prefix, that every video sample refers to. They go
	// into the avcC box; the writer keeps no reference to them.
	SPS, PPS []byte
	// Width and Height are the displayed picture size in pixels, 1 to 65535.
	Width, Height int
	// FrameDuration is the nominal time from one frame to the next, which
	// the clip states as its frame rate until Finalize or Recover measures
	// it. It must be at least one tick of the video timescale.
	FrameDuration time.Duration
}

// AudioTrack describes the audio of a clip: FLAC, or ALAC in a viewing copy.
// Exactly one of StreamInfo and ALACCookie is set.
type AudioTrack struct {
	// SampleRate (Hz), Channels and BitsPerSample must equal the values in
	// StreamInfo or ALACCookie.
	SampleRate, Channels, BitsPerSample int
	// StreamInfo is the 34-byte body of the FLAC STREAMINFO metadata block,
	// without its 4-byte block header, for FLAC audio.
	StreamInfo []byte
	// ALACCookie is the 24-byte ALACSpecificConfig ("magic cookie") of ALAC
	// audio, as capture/alac's Encoder.Cookie returns it. It goes into the
	// 'alac' box of an 'alac' sample entry, the layout of Apple's "ALAC in
	// MP4" description.
	ALACCookie []byte
}

// Params describes a clip. At least one of Video and Audio must be non-nil.
type Params struct {
	Video *VideoTrack
	Audio *AudioTrack
	// Created is recorded as the creation time of the movie and its tracks.
	// A time before 1904 (including the zero Time) is recorded as 0, "unknown".
	Created time.Time
}

// A Sample is one video access unit or one FLAC or ALAC frame.
type Sample struct {
	// Time is the presentation time from the start of the clip, >= 0.
	Time time.Duration
	// Duration is how long the sample lasts. The Writer uses it only for the
	// last sample of a track in each fragment: every other sample lasts until
	// the Time of the sample after it (see Writer.WriteFragment).
	Duration time.Duration
	// Key marks a sync sample: an IDR access unit for video. It is ignored for
	// audio, where every frame is a sync sample.
	Key bool
	// Data is an AVCC access unit (NAL units each preceded by a 4-byte
	// big-endian length) for video, or one complete FLAC or ALAC frame for
	// audio.
	Data []byte
}

// File is what a Writer needs of an *os.File: sequential writes to append the
// clip, positioned writes to patch durations, and Sync to make it durable.
// An *os.File opened with O_APPEND does not qualify: its WriteAt fails.
type File interface {
	io.Writer
	io.WriterAt
	Sync() error
}

// Info summarises a clip.
type Info struct {
	// Duration runs from time 0 to the end of the track that ends last.
	Duration time.Duration
	// Video and Audio describe the tracks; an absent track has a zero TrackInfo.
	Video, Audio TrackInfo
	// Fragments is the number of complete fragments (moof and mdat pairs).
	Fragments int
	// Size is the length of the clip file in bytes.
	Size int64
}

// TrackInfo summarises one track of a clip.
type TrackInfo struct {
	// Samples is the number of samples in the track.
	Samples int
	// Start is the time of the first sample.
	Start time.Duration
	// Duration runs from Start to the end of the last sample.
	Duration time.Duration
	// FrameDuration is the time from frame to frame that a video track
	// states as its frame rate: VideoTrack.FrameDuration until Finalize or
	// Recover chooses it from the frames (see framerate.go). It is 0 for a
	// track that states no frame rate.
	FrameDuration time.Duration
}

const (
	movieTimescale = 1000
	// videoTimescale is ten times the usual 90 kHz. A frame rate stated as
	// videoTimescale/delta is then within 17 ppm of the measured one (at 90
	// kHz, 167 ppm), so a ten-minute clip's frames drift at most 10 ms from
	// the grid it states. A sample still may last 4772 s, longer than the
	// longest incident.
	videoTimescale = 900000
)

// rescale converts v from units of 1/from to units of 1/to, rounding to the
// nearest unit and saturating at math.MaxUint64. from must not be 0, and
// from*to must stay below 2^64-from, which holds for any two uint32
// timescales and for 1e9 with any uint32 timescale.
func rescale(v, from, to uint64) uint64 {
	hi, whole := bits.Mul64(v/from, to)
	part := (v%from*to + from/2) / from
	sum, carry := bits.Add64(whole, part, 0)
	if hi != 0 || carry != 0 {
		return math.MaxUint64
	}
	return sum
}

// ticks converts d, which must be >= 0, to units of 1/scale second.
func ticks(d time.Duration, scale uint32) uint64 {
	return rescale(uint64(d), uint64(time.Second), uint64(scale))
}

// duration converts t units of 1/scale second to a Duration, saturating at
// the largest Duration.
func duration(t uint64, scale uint32) time.Duration {
	ns := rescale(t, uint64(scale), uint64(time.Second))
	if ns > math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(ns)
}
