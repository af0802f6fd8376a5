package config

import (
	"strings"
	"testing"
	"time"

	"mamoru/listen"
)

// [listen] is off by default, and its defaults are the detector's.
func TestListenDefaults(t *testing.T) {
	c := mustParse(t, "")
	if c.Listen.Enabled || c.Listen.Action != ListenAlert {
		t.Errorf("default listen: enabled %v, action %q; want off, %q", c.Listen.Enabled, c.Listen.Action, ListenAlert)
	}
	got, want := c.Listen.Detector(c.Audio), listen.DefaultConfig()
	if got != want {
		t.Errorf("default detector config %+v, want listen.DefaultConfig %+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("the default detector config is refused: %v", err)
	}
}

func TestListenKeys(t *testing.T) {
	c := mustParse(t, "[listen]\nenabled = true\naction = \"incident\"\nraise_db = 12\nhysteresis_db = 4.5\nsustain_seconds = 1.5\ncooldown_seconds = 120\nmin_voiced = 0.4\ndefault_baseline_lufs = -35\n")
	d := c.Listen.Detector(c.Audio)
	want := listen.Config{SampleRate: 48000, Channels: 1, RaiseDB: 12, HysteresisDB: 4.5, Sustain: 1500 * time.Millisecond,
		Cooldown: 2 * time.Minute, MinVoiced: 0.4, DefaultBaselineLUFS: -35}
	if !c.Listen.Enabled || c.Listen.Action != ListenIncident || d != want {
		t.Errorf("got %+v → %+v, want enabled incident → %+v", c.Listen, d, want)
	}
	c, err := Parse("mamoru.toml", []byte(minimal+"[listen]\nenabled = true\n"), []string{"MAMORU_LISTEN_RAISE_DB=18.5"})
	if err != nil || c.Listen.RaiseDB != 18.5 {
		t.Errorf("MAMORU_LISTEN_RAISE_DB=18.5: raise_db %v, err %v", c.Listen.RaiseDB, err)
	}
}

// Every mistake is named with its key and line, all at once, whether or
// not listening is enabled; a value the config accepts the detector
// accepts too.
func TestListenErrors(t *testing.T) {
	for _, tc := range []struct {
		src, env string
		want     []string
	}{
		{"[audio]\nenabled = false\n[listen]\nenabled = true\n", "",
			[]string{"mamoru.toml:9: 'listen.enabled' needs 'audio.enabled' = true"}},
		{"[listen]\naction = \"record\"\n", "", []string{"mamoru.toml:7: 'listen.action' must be \"alert\"", `(got "record")`}},
		{"[listen]\nraise_db = 5\n", "", []string{"mamoru.toml:7: 'listen.raise_db' must be between 6 and 40 dB (got 5)"}},
		{"[listen]\nraise_db = 10\nhysteresis_db = 11\n", "", []string{"mamoru.toml:8: 'listen.hysteresis_db' must be between 1 and 10 dB (raise_db) (got 11)"}},
		{"[listen]\nsustain_seconds = 0.05\ncooldown_seconds = -1\n", "", []string{
			"mamoru.toml:7: 'listen.sustain_seconds' must be between 0.1 and 30 s (got 0.05)",
			"mamoru.toml:8: 'listen.cooldown_seconds' must be between 0 and 3600 s (got -1)"}},
		{"[listen]\nmin_voiced = 0\ndefault_baseline_lufs = -5\n", "", []string{
			"mamoru.toml:7: 'listen.min_voiced' must be between 0.05 and 1 (got 0)",
			"mamoru.toml:8: 'listen.default_baseline_lufs' must be between -70 and -10 LUFS (got -5)"}},
		{"[listen]\nraise_db = \"loud\"\n", "", []string{"mamoru.toml:7: 'listen.raise_db' must be of type number, not string"}},
		{"[listen]\nthreshold = 3\n", "", []string{"mamoru.toml:7: 'listen.threshold' is not a known key"}},
		{"", "MAMORU_LISTEN_RAISE_DB=loud", []string{"MAMORU_LISTEN_RAISE_DB: 'listen.raise_db' must be a number (got \"loud\")"}},
	} {
		var env []string
		if tc.env != "" {
			env = []string{tc.env}
		}
		_, err := Parse("mamoru.toml", []byte(minimal+tc.src), env)
		if err == nil {
			t.Errorf("%q %s: accepted", tc.src, tc.env)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q %s:\n got %v\nwant %q", tc.src, tc.env, err, w)
			}
		}
	}
}

func mustParse(t *testing.T, src string) Config {
	t.Helper()
	c, err := Parse("mamoru.toml", []byte(minimal+src), nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
