package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const minimal = `
[device]
id = "counter-1"
store = "shibuya"
state_dir = "/var/lib/mamoru"
`

func TestParseDefaults(t *testing.T) {
	c, err := Parse("m.toml", []byte(minimal), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Device.ID, want.Device.Store = "counter-1", "shibuya"
	want.Device.Label = "counter-1" // the label defaults to the id
	// Where it came from, kept for errors found later.
	c.origin = nil
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got %+v, want %+v", c, want)
	}
	if got := c.Location().String(); got != "Asia/Tokyo" {
		t.Errorf("Location() = %s, want Asia/Tokyo", got)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string // each error line, in order
	}{
		{"unknown key", minimal + "[capture]\npre_second = 10\n",
			[]string{"m.toml:7: 'capture.pre_second' is not a known key"}},
		{"unknown table", minimal + "[camera]\nfps = 10\n",
			[]string{"m.toml:6: 'camera' is not a known key"}},
		{"unknown key and bad value", minimal + "[capture]\npre_second = 10\npost_seconds = 0\n",
			[]string{
				"m.toml:7: 'capture.pre_second' is not a known key",
				"m.toml:8: 'capture.post_seconds' must be between 1 and 600 (got 0)",
			}},
		{"bad value and unknown table", minimal + "[capture]\npost_seconds = 0\n[camera]\nfps = 10\n[video]\nfps = 500\n",
			[]string{
				"m.toml:7: 'capture.post_seconds' must be between 1 and 600 (got 0)",
				"m.toml:8: 'camera' is not a known key",
				"m.toml:11: 'video.fps' must be between 1 and 120 (got 500)",
			}},
		{"wrong type", minimal + "[capture]\npre_seconds = \"ten\"\n",
			[]string{"m.toml:7: 'capture.pre_seconds' must be of type integer, not string"}},
		{"out of range", minimal + "[capture]\npost_seconds = 0\n",
			[]string{"m.toml:7: 'capture.post_seconds' must be between 1 and 600 (got 0)"}},
		{"missing id", "[device]\nstore = \"s\"\n",
			[]string{"m.toml: 'device.id' must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit (got \"\")"}},
		{"bad source", minimal + "[video]\nsource = \"webcam\"\n",
			[]string{`m.toml:7: 'video.source' must be one of ["rpicam" "v4l2" "testsrc" "command"] (got "webcam")`}},
		{"command needs command", minimal + "[video]\nsource = \"command\"\n",
			[]string{"m.toml: 'video.command' is required for source \"command\": a shell command writing H.264 Annex-B to stdout"}},
		{"nothing enabled", minimal + "[video]\nenabled = false\n[audio]\nenabled = false\n",
			[]string{"m.toml:7: 'video.enabled' and 'audio.enabled' are both false: nothing would be recorded"}},
		{"ring too small", minimal + "[capture]\nring_max_mb = 2\n",
			[]string{"m.toml:7: 'capture.ring_max_mb' is too small to hold pre_seconds = 30 at these bitrates: at least 18 is needed (got 2; 0 sizes it automatically)"}},
		{"max below pre+post", minimal + "[capture]\npre_seconds = 60\npost_seconds = 60\nmax_incident_seconds = 100\n",
			[]string{"m.toml:9: 'capture.max_incident_seconds' must be at least pre_seconds + post_seconds = 120 (got 100)"}},
		{"bad zone", strings.Replace(minimal, "[device]", "[device]\ntimezone = \"Tokyo\"", 1),
			[]string{"m.toml:3: 'device.timezone' must be an IANA time zone such as \"Asia/Tokyo\" (got \"Tokyo\")"}},
		{"syntax", "[device\n", []string{"m.toml:1: expected ']' to close table name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("m.toml", []byte(tt.src), nil)
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("errors.As(*Error) failed for %T", err)
			}
		})
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	env := []string{"MAMORU_CAPTURE_POST_SECONDS=5", "MAMORU_AUDIO_ENABLED=false", "MAMORU_VIDEO_SOURCE=testsrc"}
	c, err := Parse("m.toml", []byte(minimal), env)
	if err != nil {
		t.Fatal(err)
	}
	if c.Capture.PostSeconds != 5 || c.Audio.Enabled || c.Video.Source != SourceTestsrc {
		t.Errorf("got post=%d audio=%v source=%q, want 5 false testsrc", c.Capture.PostSeconds, c.Audio.Enabled, c.Video.Source)
	}
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"MAMORU_CAPTURE_PRE_SECONDS=lots"}, `MAMORU_CAPTURE_PRE_SECONDS: 'capture.pre_seconds' must be a whole number (got "lots")`},
		// A bad value set by the environment is named by its variable, not
		// by the file's line it overrides.
		{[]string{"MAMORU_CAPTURE_POST_SECONDS=0"}, `MAMORU_CAPTURE_POST_SECONDS: 'capture.post_seconds' must be between 1 and 600 (got 0)`},
	} {
		_, err = Parse("m.toml", []byte(minimal+"[capture]\npost_seconds = 10\n"), tc.env)
		if err == nil || err.Error() != tc.want {
			t.Errorf("environment %q: got %v, want %q", tc.env, err, tc.want)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.toml")
	_, err := Load(path, nil)
	if got, want := err.Error(), path+": cannot read the configuration: no such file or directory"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestRingBytes(t *testing.T) {
	c := Default()
	// 30 s pre + 1 s slack + 2 s of GOPs at 2.5 Mbps ×1.5 plus 96 kB/s audio.
	want := 2 * 18 << 20
	if got := c.RingBytes(); got != want {
		t.Errorf("RingBytes() = %d, want %d", got, want)
	}
	c.Capture.RingMaxMB = 50
	if got := c.RingBytes(); got != 50<<20 {
		t.Errorf("RingBytes() with ring_max_mb=50 = %d, want %d", got, 50<<20)
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	// The example shipped for installers must always load.
	src, err := os.ReadFile("../docs/mamoru.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse("mamoru.example.toml", src, nil); err != nil {
		t.Fatal(err)
	}
}

// The example's [alerts] block, commented out so that a new device alerts
// no one, loads once uncommented, and sets a target of every kind.
func TestExampleAlertsAreValid(t *testing.T) {
	src, err := os.ReadFile("../docs/mamoru.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(src), "\n# [alerts]\n")
	if !ok {
		t.Fatal("the example has no commented-out [alerts] block")
	}
	var lines []string
	for line := range strings.Lines("# [alerts]\n" + block) {
		line = strings.TrimPrefix(strings.TrimPrefix(line, "#"), " ")
		lines = append(lines, line)
	}
	c, err := Parse("mamoru.example.toml", append(src, strings.Join(lines, "")...), nil)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, tg := range c.Alerts.Targets {
		kinds = append(kinds, tg.Kind)
	}
	if slices.Sort(kinds); !slices.Equal(kinds, slices.Sorted(slices.Values(Kinds))) {
		t.Errorf("the example's targets are of kinds %q, want one of each of %q", kinds, Kinds)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte(minimal + "[capture]\npre_seconds = 10\n[video]\nsource=\"command\"\ncommand=\"x\"\n"))
	f.Add([]byte("[device\n"))
	f.Add([]byte("a = [1, {b = 2}]\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		c, err := Parse("f.toml", src, nil)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not a *config.Error", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that Validate rejects: %v", err)
		}
	})
}

// A trigger source is a short plain name, never one of the counter's own.
func TestTriggerSources(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want string // in the error, or "" for valid
	}{
		{`["pos", "intercom-2"]`, ""},
		{`["button"]`, `'device.trigger_sources' entry 1 "button": is the counter's own source`},
		{`["pos", "sim"]`, `'device.trigger_sources' entry 2 "sim": is the counter's own source`},
		{`["POS"]`, `'device.trigger_sources' entry 1 "POS": must be 1 to 32 lower-case letters`},
		{`["a\u001b[2J"]`, `'device.trigger_sources' entry 1`},
	} {
		_, err := Parse("m.toml", []byte("[device]\nid = \"c1\"\nstore = \"s1\"\ntrigger_sources = "+tc.src+"\n"), nil)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.src, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.src, err, tc.want)
		}
	}
}

// A label is what people read on a phone's lock screen: any script,
// nothing unseen.
func TestDeviceLabel(t *testing.T) {
	for _, tc := range []struct {
		label string // as written in the TOML string, escapes and all
		env   string // MAMORU_DEVICE_LABEL, if not ""
		want  string // the label, or the error
	}{
		{label: "", want: "counter-1"},
		{label: "カウンター1", want: "カウンター1"},
		{label: "1階　レジ前", want: "1階　レジ前"}, // an ideographic space inside
		{label: "Counter 1 (front)", want: "Counter 1 (front)"},
		{label: "カウンター1", env: "窓口2", want: "窓口2"},
		{label: `a\u001b[2Jb`, want: `m.toml:3: 'device.label' may hold only visible characters and spaces: U+001B is not one (got "a\x1b[2Jb")`},
		{label: `counter\nBcc: x@example.com`, want: `m.toml:3: 'device.label' may hold only visible characters and spaces: U+000A is not one`},
		{label: `abc\u202Eevil`, want: `m.toml:3: 'device.label' may hold only visible characters and spaces: U+202E is not one`},
		{label: " counter", want: `m.toml:3: 'device.label' must not start or end with a space (got " counter")`},
		{label: "カウンター\u3000", want: `m.toml:3: 'device.label' must not start or end with a space`},
		{label: strings.Repeat("あ", 65), want: "m.toml:3: 'device.label' must be at most 64 characters (got 65)"},
		{env: "x\x01", want: `MAMORU_DEVICE_LABEL: 'device.label' may hold only visible characters and spaces: U+0001 is not one`},
	} {
		src := "[device]\nid = \"counter-1\"\nlabel = \"" + tc.label + "\"\nstore = \"shibuya\"\n"
		var env []string
		if tc.env != "" {
			env = []string{"MAMORU_DEVICE_LABEL=" + tc.env}
		}
		c, err := Parse("m.toml", []byte(src), env)
		switch {
		case err != nil && !strings.HasPrefix(err.Error(), tc.want):
			t.Errorf("label %q, env %q: %v; want %s", tc.label, tc.env, err, tc.want)
		case err == nil && c.Device.Label != tc.want:
			t.Errorf("label %q, env %q: got label %q, want %s", tc.label, tc.env, c.Device.Label, tc.want)
		}
	}
}
