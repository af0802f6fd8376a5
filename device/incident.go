package device

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"mamoru/audit"
	"mamoru/capture"
	"mamoru/capture/mp4"
	"mamoru/clock"
	"mamoru/outbox"
)

// incident records one clip: from the key frame at or before the first
// press − pre_seconds to the last press + post_seconds, capped at
// max_incident_seconds. It runs in its own goroutine, owned by the Recorder.
type incident struct {
	id     string
	dir    string
	ring   *capture.Ring
	tl     *capture.Timeline
	clock  clock.Clock // runs the fragment ticker
	log    *slog.Logger
	params capture.ClipParams
	post   time.Duration
	limit  time.Duration // latest end: clip start + max_incident_seconds
	// head returns the audit log's head, for the final manifest.
	head func() *audit.Head

	mu       sync.Mutex // guards end, manifest and stopped
	end      time.Duration
	manifest outbox.Manifest
	stopped  bool

	clip *capture.Clip // created by begin, written by run

	wake chan struct{} // capacity 1: end changed
	done chan struct{}
	err  error // set before done is closed
}

// extend moves the end to press + post, up to the limit, and records the
// press. It reports false when the incident has already ended.
func (in *incident) extend(press time.Duration, p outbox.Press) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopped {
		return false
	}
	in.end = min(max(in.end, press+in.post), in.limit)
	in.manifest.AddPress(p)
	in.poke()
	return true
}

// stop ends the incident at t (shutdown or a fault): nothing after t is
// recorded.
func (in *incident) stop(t time.Duration) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.end = min(in.end, t)
	in.stopped = true
	in.poke()
}

// markUrgent records that staff held the button: the incident is urgent.
func (in *incident) markUrgent() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.manifest.Urgent = true
}

func (in *incident) poke() {
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

// ending returns the end and whether the incident was cut short there.
func (in *incident) ending() (end time.Duration, stopped bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.end, in.stopped
}

func (in *incident) state() (end time.Duration, m outbox.Manifest) {
	in.mu.Lock()
	defer in.mu.Unlock()
	m = in.manifest
	m.Presses = append([]outbox.Press(nil), m.Presses...)
	return in.end, m
}

// run records the clip and writes the final manifest.
func (in *incident) run(ctx context.Context, indicator func(from, to time.Time) []outbox.IndicatorLog) {
	defer close(in.done)
	in.err = in.record(ctx, indicator)
}

// begin creates the clip and writes the pre-roll to it, synced, before the
// press is acknowledged: a power cut a moment later cannot lose it. pressed
// is the press's time on the timeline: the manifest records how long after
// it the pre-roll was on disk, the incident's directory, id counter and
// first manifest included.
func (in *incident) begin(pressed time.Duration) error {
	clip, err := capture.CreateClip(in.params)
	if err != nil {
		return err
	}
	end, _ := in.state()
	for range 1000 {
		if _, err := clip.Pull(); err != nil {
			clip.Abort()
			return err
		}
		full := clip.Full()
		if err := clip.Flush(end); err != nil {
			clip.Abort()
			return err
		}
		if !full {
			break // the ring is drained
		}
	}
	took := in.tl.Now() - pressed
	in.mu.Lock()
	in.manifest.PreRollSyncedMS = float64(took.Microseconds()) / 1000
	in.mu.Unlock()
	in.log.Info("pre-roll on disk", "incident", in.id, "took", took.Round(time.Millisecond), "written", clip.Info().Size)
	_, m := in.state()
	if err := outbox.WriteManifest(in.dir, m); err != nil {
		in.log.Error("cannot update manifest", "incident", in.id, "err", err)
	}
	in.clip = clip
	return nil
}

func (in *incident) record(ctx context.Context, indicator func(from, to time.Time) []outbox.IndicatorLog) error {
	clip := in.clip
	tick := in.clock.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	shutdown := ctx.Done()
	for {
		newest, err := clip.Pull()
		if err != nil {
			clip.Abort()
			return err
		}
		end, stopped := in.ending()
		// Done when the newest media has reached the end (for a clip cut
		// short, the moment it was cut: capture is about to close), or, if
		// a track stalled, a moment after the end has passed on the clock.
		reached := newest >= end+capture.AudioBlock || stopped && newest >= end
		finished := reached || in.tl.Now() > end+2*time.Second
		if finished {
			info, err := clip.Close(end)
			if err != nil {
				return err
			}
			return in.finish(info, clip.Dropped(), indicator)
		}
		if clip.PendingTime() >= capture.FragmentEvery || clip.Full() {
			if err := clip.Flush(end); err != nil {
				clip.Abort()
				return err
			}
		}
		select {
		case <-shutdown:
			// Shutdown: keep what has been captured.
			in.stop(in.tl.Now())
			shutdown = nil
		case <-in.params.Ring.Written():
		case <-in.wake:
		case <-tick.Chan():
		}
	}
}

// finish hashes the clip and writes the final manifest.
func (in *incident) finish(info mp4.Info, dropped int, indicator func(from, to time.Time) []outbox.IndicatorLog) error {
	_, m := in.state()
	m.State = outbox.StateComplete
	describe(&m, info, in.params)
	m.ClipEnd = m.ClipStart.Add(info.Duration)
	m.Indicator = indicator(m.ClipStart, m.ClipEnd)
	if dropped > 0 {
		m.Notes = append(m.Notes, fmt.Sprintf("%d video frames could not be decoded without their key frame and were left out", dropped))
	}
	if err := digest(in.dir, &m); err != nil {
		return err
	}
	m.AuditHead = in.head()
	if err := outbox.WriteManifest(in.dir, m); err != nil {
		return err
	}
	in.mu.Lock()
	in.manifest = m
	in.mu.Unlock()
	return nil
}

// describe fills the manifest's tracks from the clip's info.
func describe(m *outbox.Manifest, info mp4.Info, p capture.ClipParams) {
	m.DurationSeconds = info.Duration.Seconds()
	m.Tracks = m.Tracks[:0]
	if info.Video.Samples > 0 {
		m.Tracks = append(m.Tracks, outbox.Track{Kind: "video", Codec: "h264",
			Frames: info.Video.Samples, StartSeconds: info.Video.Start.Seconds(), DurationSeconds: info.Video.Duration.Seconds()})
	}
	if info.Audio.Samples > 0 && p.Audio != nil {
		m.Tracks = append(m.Tracks, outbox.Track{Kind: "audio", Codec: "flac", SampleRate: p.Audio.SampleRate, Channels: p.Audio.Channels,
			Frames: info.Audio.Samples, Samples: int64(info.Audio.Samples) * int64(p.Audio.SampleRate) * int64(capture.AudioBlock/time.Millisecond) / 1000,
			StartSeconds: info.Audio.Start.Seconds(), DurationSeconds: info.Audio.Duration.Seconds()})
	}
}

// digest sets the clip's size and SHA-256 in the manifest.
func digest(dir string, m *outbox.Manifest) error {
	f, err := os.Open(filepath.Join(dir, outbox.ClipFile))
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("hash clip: %w", err)
	}
	m.Clip = outbox.ClipDigest{File: outbox.ClipFile, SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}
	return nil
}

// incidentIDs hands out incident ids: the local time of the press, then a
// counter kept on disk, so ids sort by time and stay unique across reboots
// even when the clock reads 1970 before NTP has set it.
type incidentIDs struct {
	path string
	loc  *time.Location
}

func (g incidentIDs) next(t time.Time) (string, error) {
	n := uint64(0)
	if b, err := os.ReadFile(g.path); err == nil {
		n, _ = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	n++
	if err := outbox.WriteFileAtomic(g.path, []byte(strconv.FormatUint(n, 10)+"\n")); err != nil {
		return "", fmt.Errorf("incident counter: %w", err)
	}
	return fmt.Sprintf("%s-%06d", t.In(g.loc).Format("20060102-150405"), n), nil
}

func (ru *run) incidentDone() {
	in := ru.cur
	ru.cur = nil
	if ru.state == StateIncident {
		ru.state = StateBuffering
	}
	_, m := in.state()
	if in.err != nil {
		// Keep what was written: cut the clip after its last complete
		// fragment now, rather than at the next start.
		ru.incidentErr = fmt.Sprintf("incident %s: %v", in.id, in.err)
		ru.log.Error("incident clip failed; keeping what was written", "id", in.id, "err", in.err)
		u := unfinished{dir: in.dir, m: m, why: "writing the clip failed: " + in.err.Error()}
		if rerr := recoverClip(u.dir, &m, ru.r.Config.Audio, u.why, ru.r.auditHead()); rerr != nil {
			// Left in state recording, it is not uploaded as it is.
			ru.log.Error("cannot finalize the partial clip; trying again every 5 s", "id", in.id, "err", rerr)
			ru.emit(Event{Kind: EventIncident, Incident: in.id, State: IncidentFailed, Err: in.err})
			ru.unfinished = append(ru.unfinished, u)
			return
		}
	}
	ru.saved(in.params.Path, m)
}

// IncidentFailed is the state status shows for an incident whose clip
// failed and could not be finalized yet.
const IncidentFailed = "failed"

// unfinished is an incident to finalize once the disk allows.
type unfinished struct {
	dir string
	m   outbox.Manifest // as it was when the clip failed
	why string
}

// finishUnfinished tries again to finalize the clips that could not be.
func (ru *run) finishUnfinished() {
	left := ru.unfinished[:0]
	for _, u := range ru.unfinished {
		m := u.m
		m.Notes = slices.Clone(m.Notes)
		if err := recoverClip(u.dir, &m, ru.r.Config.Audio, u.why, ru.r.auditHead()); err != nil {
			left = append(left, u)
			continue
		}
		ru.log.Info("finalized a clip that had failed", "id", m.Incident)
		ru.saved(filepath.Join(u.dir, outbox.ClipFile), m)
	}
	ru.unfinished = left
}

// saved records that an incident's clip is final and can be uploaded.
func (ru *run) saved(clip string, m outbox.Manifest) {
	ru.emit(Event{Kind: EventIncident, Incident: m.Incident, State: m.State, SHA256: m.Clip.SHA256, Clip: clip, Manifest: &m})
	if ru.r.Uploader != nil {
		ru.r.Uploader.Poke()
	}
	ru.log.Info("incident saved", "id", m.Incident, "state", m.State, "clip", clip, "seconds", fmt.Sprintf("%.1f", m.DurationSeconds), "bytes", m.Clip.Size)
}

// indicatorHistory remembers the indicator's changes for the manifests. It
// is read by incident goroutines.
type indicatorHistory struct {
	mu      sync.Mutex // guards changes
	changes []outbox.IndicatorLog
}

func (h *indicatorHistory) add(t time.Time, on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.changes = append(h.changes, outbox.IndicatorLog{Time: t, On: on})
	if len(h.changes) > 1000 {
		h.changes = append(h.changes[:0], h.changes[len(h.changes)-500:]...)
	}
}

func (h *indicatorHistory) now() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.changes) > 0 && h.changes[len(h.changes)-1].On
}

// between returns the state at from and every change up to to.
func (h *indicatorHistory) between(from, to time.Time) []outbox.IndicatorLog {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := []outbox.IndicatorLog{{Time: from, On: false}}
	for _, c := range h.changes {
		switch {
		case !c.Time.After(from):
			out[0].On = c.On
		case !c.Time.After(to):
			out = append(out, c)
		}
	}
	return out
}
