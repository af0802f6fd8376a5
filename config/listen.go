package config

import (
	"time"

	"mamoru/listen"
)

// The values of listen.action.
const (
	// ListenAlert sends sound.raised through the alert targets and records
	// nothing new.
	ListenAlert = "alert"
	// ListenIncident also raises an incident, as a press does, with the
	// trigger source SoundSource; never an urgent one.
	ListenIncident = "incident"
)

// SoundSource is the trigger source of an incident a raised voice raised
// (listen.action = "incident"): reserved, like the counter's own sources.
const SoundSource = "sound"

// Listen is the [listen] table: whether the recorder listens for a raised
// voice in the microphone's sound it already captures, and what it does on
// hearing one (package listen says how it decides). Off by default.
type Listen struct {
	Enabled bool   `toml:"enabled"`
	Action  string `toml:"action"`
	// RaiseDB, HysteresisDB, SustainSeconds, CooldownSeconds, MinVoiced
	// and DefaultBaselineLUFS are listen.Config's fields of those names.
	RaiseDB             float64 `toml:"raise_db"`
	HysteresisDB        float64 `toml:"hysteresis_db"`
	SustainSeconds      float64 `toml:"sustain_seconds"`
	CooldownSeconds     int     `toml:"cooldown_seconds"`
	MinVoiced           float64 `toml:"min_voiced"`
	DefaultBaselineLUFS float64 `toml:"default_baseline_lufs"`
}

func defaultListen() Listen {
	d := listen.DefaultConfig()
	return Listen{
		Action: ListenAlert, RaiseDB: d.RaiseDB, HysteresisDB: d.HysteresisDB,
		SustainSeconds: d.Sustain.Seconds(), CooldownSeconds: int(d.Cooldown / time.Second),
		MinVoiced: d.MinVoiced, DefaultBaselineLUFS: d.DefaultBaselineLUFS,
	}
}

// Detector is the detector's configuration for the microphone a.
func (l Listen) Detector(a Audio) listen.Config {
	return listen.Config{
		SampleRate: a.SampleRate, Channels: a.Channels,
		RaiseDB: l.RaiseDB, HysteresisDB: l.HysteresisDB,
		Sustain:             time.Duration(l.SustainSeconds * float64(time.Second)),
		Cooldown:            time.Duration(l.CooldownSeconds) * time.Second,
		MinVoiced:           l.MinVoiced,
		DefaultBaselineLUFS: l.DefaultBaselineLUFS,
	}
}

// validate checks the table whether or not it is enabled, so that a
// mistake is found before the day it is turned on. audio is the
// microphone it would listen to.
func (l *Listen) validate(audio Audio, bad func(key, format string, args ...any)) {
	if l.Enabled && !audio.Enabled {
		bad("listen.enabled", "needs 'audio.enabled' = true: it listens to the microphone's sound, which is not captured")
	}
	if l.Action != ListenAlert && l.Action != ListenIncident {
		bad("listen.action", "must be %q (send sound.raised to the alert targets) or %q (also raise an incident) (got %q)", ListenAlert, ListenIncident, l.Action)
	}
	between := func(key string, v, lo, hi float64, unit string) {
		if !(v >= lo && v <= hi) { // NaN too
			bad(key, "must be between %g and %g%s (got %g)", lo, hi, unit, v)
		}
	}
	between("listen.raise_db", l.RaiseDB, 6, 40, " dB")
	if l.RaiseDB >= 6 && l.RaiseDB <= 40 {
		between("listen.hysteresis_db", l.HysteresisDB, 1, l.RaiseDB, " dB (raise_db)")
	}
	between("listen.sustain_seconds", l.SustainSeconds, 0.1, 30, " s")
	between("listen.cooldown_seconds", float64(l.CooldownSeconds), 0, 3600, " s")
	between("listen.min_voiced", l.MinVoiced, 0.05, 1, "")
	between("listen.default_baseline_lufs", l.DefaultBaselineLUFS, -70, -10, " LUFS")
}
