package mp4

import "math"

// A video track states its frame rate in an stts of one entry with no
// samples, whose delta is the frame duration (FFmpeg reads it as
// r_frame_rate). The clip states the nominal frame until Finalize or Recover
// chooses the one that describes its frames; for that they keep each
// frame's time, 4 bytes a frame.
//
// FFmpeg puts the frames it decodes on the grid of that rate, counted from
// the clip's earliest sample, and complains of "non monotonically
// increasing dts" where two land on one grid point. So the stated frame is
// the first of these whose grid gives every frame a point of its own:
//
//  1. the nominal, if over the whole clip its grid stays within an eighth of
//     a frame of the frames that last about a nominal frame (a camera at 30
//     fps, or one 100 ppm off);
//  2. the mean of those frames (a camera at 29.97 fps where 30 was asked for,
//     or a slow one whose frames mostly last longer), not counting gaps such
//     as a camera restarting; or the mean of all frames when fewer than half
//     last about a nominal frame;
//  3. that mean shortened in steps of 1/64, up to 8 steps (frames that came
//     in a burst, after a slow start, and were stamped closer together);
//  4. the shortest frame, whose grid always has a point for each frame.

// timing is the times of a track's samples.
type timing struct {
	runs []timedRun
	durs []uint32 // each sample's duration, in order
	// unknown is set when a trun gave its samples the default duration, as
	// clips written by others may: their times are not kept, and the frame
	// stated stays as it is.
	unknown bool
}

// timedRun is a run of n samples back to back from start (ticks).
type timedRun struct {
	start uint64
	n     int
}

// add records n samples from start lasting durs, when either durs or unknown
// says the track keeps times.
func (tm *timing) add(start uint64, n int, durs []uint32, unknown bool) {
	if len(durs) == 0 && !unknown {
		return
	}
	tm.unknown = tm.unknown || unknown || len(durs) != n
	if tm.unknown {
		tm.runs, tm.durs = nil, nil
		return
	}
	tm.runs = append(tm.runs, timedRun{start, n})
	tm.durs = append(tm.durs, durs...)
}

// frameFor returns the frame duration, in ticks, that the track should state
// (see the list above); nominal is the one it states now and anchor the
// time, in the track's ticks, of the clip's earliest sample.
func (tm *timing) frameFor(nominal uint32, anchor uint64) uint32 {
	if tm.unknown || len(tm.durs) == 0 || nominal == 0 {
		return nominal
	}
	var steady, all uint64
	var n int
	shortest := uint32(math.MaxUint32)
	for _, d := range tm.durs {
		all += uint64(d)
		shortest = min(shortest, d)
		if 2*uint64(d) > uint64(nominal) && 2*uint64(d) < 3*uint64(nominal) {
			steady += uint64(d)
			n++
		}
	}
	if 2*n < len(tm.durs) {
		steady, n = all, len(tm.durs)
	} else {
		want := uint64(n) * uint64(nominal)
		if drift := max(steady, want) - min(steady, want); 8*drift <= uint64(nominal) && tm.fits(nominal, anchor) {
			return nominal
		}
	}
	mean := uint32((steady + uint64(n)/2) / uint64(n))
	for k := range uint64(9) {
		if c := uint32(uint64(mean) * (64 - k) / 64); c > 0 && tm.fits(c, anchor) {
			return c
		}
	}
	return max(shortest, 1)
}

// fits reports whether, on a grid of frame ticks from anchor, each sample's
// nearest grid point is later than the one before's.
func (tm *timing) fits(frame uint32, anchor uint64) bool {
	f := uint64(frame)
	prev, first := uint64(0), true
	i := 0
	for _, r := range tm.runs {
		t := r.start
		for _, d := range tm.durs[i : i+r.n] {
			point := (2*(t-min(t, anchor)) + f) / (2 * f)
			if !first && point <= prev {
				return false
			}
			prev, first = point, false
			t += uint64(d)
		}
		i += r.n
	}
	return true
}

// firstSample returns the time of the clip's earliest sample, in
// nanoseconds.
func (l *layout) firstSample(prog []progress) uint64 {
	first := uint64(math.MaxUint64)
	for i, t := range l.tracks {
		if prog[i].samples > 0 {
			first = min(first, uint64(duration(prog[i].start, t.timescale)))
		}
	}
	if first == math.MaxUint64 {
		return 0
	}
	return first
}
