package device

// The real parts, built for cmd and the end-to-end tests to hand to a
// Recorder; Run itself builds none.

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"mamoru/backoff"
	"mamoru/bucket"
	"mamoru/capture"
	"mamoru/clock"
	"mamoru/config"
	"mamoru/health"
	"mamoru/uploader"
)

// NewCapture builds the real capture parts the configuration describes:
// the camera's encoder and the microphone as sources, the ring sized for
// pre_seconds, and the timeline on c and wall. Nothing is opened until the
// recorder starts capture behind the indicator.
func NewCapture(cfg config.Config, c, wall clock.Clock, log *slog.Logger) (Capture, error) {
	parts := Capture{
		Timeline: capture.NewTimeline(c, wall),
		Ring:     capture.NewRing(cfg.RingBytes(), cfg.RingSpan(), ringFrames(cfg)),
	}
	retry := backoff.Backoff{Min: time.Second, Max: 30 * time.Second, Jitter: 0.2}
	if cfg.Video.Enabled {
		parts.Video = &capture.VideoSource{Config: cfg.Video, Timeline: parts.Timeline, Ring: parts.Ring, Clock: c, Log: log, Backoff: retry}
	}
	if cfg.Audio.Enabled && !capture.HasMicrophone {
		return Capture{}, fmt.Errorf("device: audio.enabled = true, but %w (or set audio.enabled = false)", capture.ErrNoMicrophone)
	}
	if cfg.Audio.Enabled {
		audio := &capture.AudioSource{Config: cfg.Audio, Timeline: parts.Timeline, Ring: parts.Ring, Clock: c, Log: log, Backoff: retry}
		f, err := audio.Format()
		if err != nil {
			return Capture{}, err
		}
		parts.Audio, parts.AudioFormat = audio, &f
		// The ear is there whenever the microphone is, so that an
		// installer can watch the levels before turning listening on.
		ear, err := NewEar(cfg, parts.Timeline, log)
		if err != nil {
			return Capture{}, err
		}
		audio.PCM, parts.Ear = ear.Hear, ear
	}
	return parts, nil
}

// NewUploader builds the uploader that ships rec's outbox to the bucket its
// configuration names, on rec's Clock, reporting each incident shipped to
// rec.
func NewUploader(rec *Recorder) *uploader.Uploader {
	cfg := rec.Config
	return &uploader.Uploader{
		Outbox: Outbox(cfg.Device.StateDir), Storage: cfg.Storage, Location: cfg.Location(),
		Log: rec.Log.With("part", "uploader"), SigningKey: cfg.Device.SigningKey,
		Backoff: backoff.Backoff{Min: time.Second, Max: 2 * time.Minute, Jitter: 0.3},
		Clock:   rec.Clock,
		Lock:    bucket.LockFor(cfg.Policy), ClockSynced: rec.ClockSynced,
		Store: cfg.Device.Store, Device: cfg.Device.ID,
		Shipped:     rec.Shipped,
		AuditLog:    filepath.Join(cfg.Device.StateDir, auditFile), // its segments
		AuditSynced: rec.auditHead,
	}
}

// NewHealth builds the writer that keeps rec's report in the bucket its
// configuration names, as health.json, on rec's clocks. It has a client of
// its own, with its own connections: a clip upload holding one up does not
// hold up the report.
func NewHealth(rec *Recorder) (*health.Writer, error) {
	cfg := rec.Config
	c, err := bucket.NewClient(cfg.Storage)
	if err != nil {
		return nil, err
	}
	return &health.Writer{
		Bucket: uploader.HealthObject{Client: c, Bucket: cfg.Storage.Bucket},
		Key:    health.Key(cfg.Storage.Prefix, cfg.Device.Store, cfg.Device.ID),
		Clock:  rec.Clock, Wall: rec.Wall, Zone: cfg.Location(), Log: rec.Log.With("part", "health"),
	}, nil
}
