// Package capture turns the camera and microphone into timestamped media on
// one shared clock, keeps the most recent of it in an in-memory Ring, and
// assembles incident clips from the ring as fragmented MP4.
//
// Nothing in this package writes media to disk except a Clip, and a Clip
// exists only for an incident: while the recorder is only buffering, media
// lives in RAM, so an SD card does not wear.
package capture

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Track tells video from audio.
type Track uint8

const (
	Video Track = iota
	Audio
)

func (t Track) String() string {
	if t == Video {
		return "video"
	}
	return "audio"
}

// A Frame is one unit of media: a video access unit in AVCC form (4-byte
// length-prefixed NAL units, SPS and PPS in-band before each IDR) or one
// encoded audio block.
type Frame struct {
	Track Track
	// Time is when the frame's first sample was captured, on the recorder's
	// clock (see Timeline).
	Time time.Duration
	// Key marks a video IDR frame. Audio frames are always key frames.
	Key  bool
	Data []byte
}

// ErrOverrun means a reader asked for frames the ring has already dropped:
// it fell further behind than the ring holds.
var ErrOverrun = errors.New("capture: reader fell behind the ring")

// Ring keeps the most recent media in memory, bounded both by time (span)
// and by bytes, with an index of every frame. After NewRing it does not
// allocate: Write copies into a buffer allocated once.
//
// Frames are kept in arrival order; each track's frames are in time order.
// Every frame gets a sequence number, so readers can follow the ring without
// holding its lock while they write to disk.
type Ring struct {
	span time.Duration

	mu sync.Mutex // guards everything below
	// data is a circular byte buffer: live bytes run from the oldest frame's
	// offset to head, wrapping to 0 when a frame does not fit before the end.
	data         []byte
	head         int           // where the next frame's bytes go
	used         int           // bytes held by live frames
	recs         []record      // circular index of live frames
	first, count int           // index in recs of the oldest frame, and how many
	firstSeq     uint64        // sequence number of recs[first]
	newest       time.Duration // the latest frame time written
	written      chan struct{} // capacity 1: a value is waiting after any Write
}

type record struct {
	track Track
	key   bool
	time  time.Duration
	off   int
	n     int
}

// NewRing returns a ring of size bytes keeping at most span of media and at
// most frames frames.
func NewRing(size int, span time.Duration, frames int) *Ring {
	r := &Ring{
		span:    span,
		recs:    make([]record, frames),
		written: make(chan struct{}, 1),
	}
	r.data = ringMemory(r, size)
	return r
}

// Write copies f into the ring, dropping the oldest frames to make room.
// It keeps no reference to f.Data.
func (r *Ring) Write(f Frame) error {
	n := len(f.Data)
	if n > len(r.data)/4 {
		return fmt.Errorf("capture: %s frame of %d bytes does not fit a ring of %d bytes", f.Track, n, len(r.data))
	}
	r.mu.Lock()
	defer r.mu.Unlock()

	// Drop what is older than the span behind the newest frame of any
	// track, so that the frames of a track that stalled age out too.
	r.newest = max(r.newest, f.Time)
	for r.count > 0 && r.newest-r.at(0).time > r.span {
		r.dropOldest()
	}
	if r.count == len(r.recs) {
		r.dropOldest()
	}
	off := r.reserve(n)
	copy(r.data[off:off+n], f.Data)

	i := (r.first + r.count) % len(r.recs)
	r.recs[i] = record{track: f.Track, key: f.Key, time: f.Time, off: off, n: n}
	r.count++
	select {
	case r.written <- struct{}{}:
	default:
	}
	return nil
}

// reserve finds n contiguous bytes at head, dropping the oldest frames
// until they are free, and returns their offset. The live bytes run from the
// oldest frame's offset to head, wrapping at the end of data.
func (r *Ring) reserve(n int) int {
	for {
		if r.count == 0 {
			r.head = 0
		}
		tail := r.recs[r.first].off
		switch {
		case r.count == 0 || r.head > tail:
			if len(r.data)-r.head >= n {
				return r.take(r.head, n)
			}
			if r.count == 0 || tail >= n {
				return r.take(0, n)
			}
		case tail-r.head >= n:
			return r.take(r.head, n)
		}
		r.dropOldest()
	}
}

func (r *Ring) take(off, n int) int {
	r.head = off + n
	r.used += n
	return off
}

func (r *Ring) dropOldest() {
	r.used -= r.recs[r.first].n
	r.first = (r.first + 1) % len(r.recs)
	r.count--
	r.firstSeq++
}

// Reset drops everything, for example when capture stops.
func (r *Ring) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.firstSeq += uint64(r.count)
	r.first, r.count = 0, 0
	r.head, r.used = 0, 0
}

// Stats describes what the ring holds.
type Stats struct {
	Frames   int
	Bytes    int
	Capacity int
	// Buffered is the time from the oldest to the newest frame held.
	Buffered time.Duration
	// Newest is the newest frame's time, when the ring holds any.
	Newest  time.Duration
	NextSeq uint64
}

// Stats returns what the ring holds now.
func (r *Ring) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Stats{Frames: r.count, Bytes: r.used, Capacity: len(r.data), NextSeq: r.firstSeq + uint64(r.count)}
	if r.count > 0 {
		s.Buffered = r.newest - r.at(0).time
		s.Newest = r.newest
	}
	return s
}

// Start finds where a clip that should cover from time t begins: the last
// video key frame at or before t (or the oldest one held, if t is older than
// the ring), or, when the ring holds no video key frame, the last audio frame
// at or before t. It returns the clip's start time and the sequence number of
// the first frame, of either track, at or after that time. ok is false when
// the ring is empty.
func (r *Ring) Start(t time.Duration) (start time.Duration, seq uint64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	start, ok = r.lastAtOrBefore(t, true)
	if !ok {
		start, ok = r.lastAtOrBefore(t, false)
	}
	if !ok {
		return 0, 0, false
	}
	for i := range r.count {
		if r.at(i).time >= start {
			return start, r.firstSeq + uint64(i), true
		}
	}
	panic("unreachable: start is the time of a held frame")
}

// lastAtOrBefore returns the time of the last candidate frame at or before
// t, or of the oldest candidate if none is. Candidates are video key frames
// when videoKeys, else any frame.
func (r *Ring) lastAtOrBefore(t time.Duration, videoKeys bool) (time.Duration, bool) {
	var best time.Duration
	found := false
	for i := range r.count {
		rec := r.at(i)
		if videoKeys && (rec.track != Video || !rec.key) {
			continue
		}
		if found && rec.time > t {
			break
		}
		best, found = rec.time, true
	}
	return best, found
}

// at returns the i-th oldest record.
func (r *Ring) at(i int) *record {
	return &r.recs[(r.first+i)%len(r.recs)]
}

// Read copies frames from sequence number seq on into dst, their bytes into
// buf, and returns how many it copied and the sequence number to read next.
// It stops when dst or buf is full or the ring has no more frames. It
// returns ErrOverrun when seq has already been dropped. The returned frames'
// Data alias buf.
func (r *Ring) Read(seq uint64, dst []Frame, buf []byte) (n int, next uint64, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if seq < r.firstSeq {
		return 0, seq, fmt.Errorf("%w: frame %d was dropped, oldest held is %d", ErrOverrun, seq, r.firstSeq)
	}
	used := 0
	for ; n < len(dst) && seq < r.firstSeq+uint64(r.count); seq++ {
		rec := r.at(int(seq - r.firstSeq))
		if used+rec.n > len(buf) {
			if n == 0 {
				return 0, seq, fmt.Errorf("capture: read buffer of %d bytes cannot hold a frame of %d", len(buf), rec.n)
			}
			break
		}
		copy(buf[used:], r.data[rec.off:rec.off+rec.n])
		dst[n] = Frame{Track: rec.track, Time: rec.time, Key: rec.key, Data: buf[used : used+rec.n : used+rec.n]}
		used += rec.n
		n++
	}
	return n, seq, nil
}

// Written returns a channel that holds a value once any frame has been
// written since the last receive. It serves one reader at a time: the clip
// being recorded.
func (r *Ring) Written() <-chan struct{} {
	return r.written
}
