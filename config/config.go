// Package config holds mamoru's configuration: its defaults, how it is loaded
// (defaults, then the TOML file, then MAMORU_* environment variables) and its
// validation; the recording hours it sets (Schedule); and the operating rules
// and store notice rendered from it (Render). Every error names the key it is
// about and, where the key is in the file, the line. Secrets (storage keys,
// the signing key, the alert targets' secrets, passwords and tokens) are
// read only by LoadSecrets, for the commands that use them. Who is alerted
// (Alerts) is set in the file only.
package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pelletier/go-toml/v2"

	"mamoru/signing"
)

// Config is the whole configuration of one device. Its zero value is not
// usable: start from Default or Load.
type Config struct {
	Device   Device   `toml:"device"`
	Capture  Capture  `toml:"capture"`
	Video    Video    `toml:"video"`
	Audio    Audio    `toml:"audio"`
	Hardware Hardware `toml:"hardware"`
	Storage  Storage  `toml:"storage"`
	Policy   Policy   `toml:"policy"`
	Alerts   Alerts   `toml:"alerts"`
	Listen   Listen   `toml:"listen"`

	origin *origin // nil unless from Load or Parse
}

// Device names the device and where it keeps its state.
type Device struct {
	ID    string `toml:"id"`
	Store string `toml:"store"`
	// Label is what people call the device, as alerts and status name it
	// ("カウンター1"); Load and Parse set it to ID when the file leaves it
	// out, and "" in a Config built by hand means ID too.
	Label    string `toml:"label"`
	Timezone string `toml:"timezone"`
	StateDir string `toml:"state_dir"`
	// SigningKeyFile is the device's ed25519 key (PKCS#8 PEM, mode 0600 or 0400),
	// written by `mamoru provision`; the uploader signs each manifest with
	// it. "" signs nothing.
	SigningKeyFile string `toml:"signing_key_file"`
	// TriggerSources are the names, besides "cli", that a press through the
	// control socket may give as its source (a POS terminal, an intercom).
	// "button", "sim" and "sound" are the recorder's own and cannot be claimed.
	TriggerSources []string `toml:"trigger_sources"`

	// SigningKey is read from SigningKeyFile by LoadSecrets.
	SigningKey signing.Key `toml:"-"`
}

// Capture bounds the clip around a press and the memory the ring may use.
type Capture struct {
	PreSeconds         int `toml:"pre_seconds"`
	PostSeconds        int `toml:"post_seconds"`
	MaxIncidentSeconds int `toml:"max_incident_seconds"`
	// RingMaxMB is the ring's size in MiB; 0 sizes it from the video bitrate.
	RingMaxMB int `toml:"ring_max_mb"`
}

// Video sources.
const (
	SourceRpicam  = "rpicam"
	SourceV4L2    = "v4l2"
	SourceTestsrc = "testsrc"
	SourceCommand = "command"
)

// Video configures the camera.
type Video struct {
	Enabled bool   `toml:"enabled"`
	Source  string `toml:"source"`
	// Device is the V4L2 device for source "v4l2".
	Device string `toml:"device"`
	// Command is a shell command writing H.264 Annex-B to stdout, for source "command".
	Command          string `toml:"command"`
	Width            int    `toml:"width"`
	Height           int    `toml:"height"`
	FPS              int    `toml:"fps"`
	BitrateKbps      int    `toml:"bitrate_kbps"`
	KeyframeInterval int    `toml:"keyframe_interval"` // in frames
}

// Audio backends.
const (
	BackendAuto  = "auto"
	BackendALSA  = "alsa"
	BackendPulse = "pulse"
	BackendNull  = "null"
)

// Audio configures the microphone.
type Audio struct {
	Enabled bool   `toml:"enabled"`
	Backend string `toml:"backend"`
	// Device is a substring of the capture device's name; empty means the default device.
	Device     string `toml:"device"`
	SampleRate int    `toml:"sample_rate"`
	Channels   int    `toml:"channels"`
}

// Hardware drivers.
const (
	DriverSim  = "sim"
	DriverGPIO = "gpio"
)

// Hardware selects the counter hardware: the indicator and the incident
// button, and for driver "gpio" their pins (periph.io names: "GPIO17").
type Hardware struct {
	Driver             string `toml:"driver"`
	IndicatorPin       string `toml:"indicator_pin"`
	IndicatorActiveLow bool   `toml:"indicator_active_low"`
	// SignPin drives a relay for a lit "recording" sign; "" if none.
	SignPin       string `toml:"sign_pin"`
	SignActiveLow bool   `toml:"sign_active_low"`
	ButtonPin     string `toml:"button_pin"`
	// ButtonActiveLow: the button pulls the pin to ground, with the pull-up on.
	ButtonActiveLow  bool   `toml:"button_active_low"`
	LongPressSeconds int    `toml:"long_press_seconds"`
	BuzzerPin        string `toml:"buzzer_pin"`
}

// Default returns the configuration used for every key the file leaves out.
func Default() Config {
	return Config{
		Device: Device{Timezone: "Asia/Tokyo", StateDir: "/var/lib/mamoru"},
		Capture: Capture{
			PreSeconds:         30,
			PostSeconds:        30,
			MaxIncidentSeconds: 600,
		},
		Video: Video{
			Enabled:          true,
			Source:           SourceRpicam,
			Device:           "/dev/video0",
			Width:            1280,
			Height:           720,
			FPS:              30,
			BitrateKbps:      2500,
			KeyframeInterval: 30,
		},
		Audio: Audio{
			Enabled:    true,
			Backend:    BackendAuto,
			SampleRate: 48000,
			Channels:   1,
		},
		Hardware: Hardware{Driver: DriverSim, IndicatorPin: "GPIO17", ButtonPin: "GPIO27", ButtonActiveLow: true, LongPressSeconds: 3},
		Storage:  defaultStorage(),
		Policy:   defaultPolicy(),
		Listen:   defaultListen(),
	}
}

// Error is a configuration error about one key.
type Error struct {
	File string // the file, or the environment variable the value came from
	Line int    // 1-based; 0 when the key is not in the file
	Key  string // dotted, e.g. "capture.post_seconds"
	Msg  string
	// Err is the cause, when there is one to test with errors.Is: a key
	// file's fs.ErrNotExist or fs.ErrPermission.
	Err error
}

func (e *Error) Error() string {
	where := e.File
	if e.Line > 0 {
		where = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	msg := e.Msg
	if e.Key != "" {
		msg = fmt.Sprintf("'%s' %s", e.Key, e.Msg)
	}
	if where == "" {
		return msg
	}
	return where + ": " + msg
}

func (e *Error) Unwrap() error { return e.Err }

// Errors is every error found in one configuration, in file order.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find each *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// EnvPrefix starts every environment variable that overrides a key:
// MAMORU_CAPTURE_POST_SECONDS overrides capture.post_seconds.
const EnvPrefix = "MAMORU_"

// origin is where a configuration was read from, kept so that errors found
// after loading (LoadSecrets, Render) can name the key's line too.
type origin struct {
	name    string
	src     []byte
	fromEnv map[string]string // dotted key → the variable that set it
}

// Place says where key was set, on an error about it found after
// loading, as a target that cannot be reached: the file and the key's
// line, or the environment variable. A Config built by hand leaves e
// as it is.
func (c Config) Place(e *Error) *Error {
	c.origin.place(Errors{e})
	return e
}

// place says where each error's key was set: the environment variable, or
// the file and its line. Errors already placed are left alone. They are
// then sorted into file order; those not on a line of the file come last.
func (o *origin) place(errs Errors) {
	if o == nil {
		return
	}
	for _, e := range errs {
		if e.File != "" {
			continue
		}
		if v, ok := o.fromEnv[e.Key]; ok {
			e.File = v
			continue
		}
		e.File = o.name
		e.Line = lineOf(o.src, e.Key)
	}
	slices.SortStableFunc(errs, func(a, b *Error) int {
		return cmp.Compare(o.rank(a), o.rank(b))
	})
}

func (o *origin) rank(e *Error) int {
	if e.File == o.name && e.Line > 0 {
		return e.Line
	}
	return math.MaxInt
}

// Load reads the configuration: Default, then the file at path, then the
// environment (as returned by os.Environ), then Validate. It reads no
// secret (LoadSecrets does), so the commands that neither talk to the
// bucket nor sign work for a person who may not read the device's 0600 key
// files. Its errors are Errors, each naming the key.
func Load(path string, environ []string) (Config, error) {
	src, err := readConfig(path)
	if err != nil {
		return Config{}, err
	}
	return Parse(path, src, environ)
}

// LoadWithSecrets is Load and then LoadSecrets, for the commands that talk
// to the bucket or sign. It reports the problems of both in one Errors: a
// key file that cannot be read along with a bad value elsewhere.
func LoadWithSecrets(path string, environ []string) (Config, error) {
	return LoadWith(path, environ, LoadOptions{})
}

func readConfig(path string) ([]byte, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, Errors{{File: path, Msg: fmt.Sprintf("cannot read the configuration: %v", errors.Unwrap(err)), Err: err}}
	}
	return src, nil
}

// Parse is Load for a file already read; name is used in errors.
func Parse(name string, src []byte, environ []string) (Config, error) {
	c, errs, _ := parse(name, src, environ)
	return result(c, errs)
}

// parse decodes src over Default, applies the environment and validates.
// decoded is false after a syntax or type error: go-toml stops there, so
// nothing else can be judged. An unknown key does not stop it: go-toml
// skips the key and decodes the rest, so the known keys are judged too.
func parse(name string, src []byte, environ []string) (c Config, errs Errors, decoded bool) {
	c = Default()
	dec := toml.NewDecoder(bytes.NewReader(src))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		var strict *toml.StrictMissingError
		if !errors.As(err, &strict) {
			return Config{}, indexTargets(src, decodeErrors(name, err)), false
		}
		errs = indexTargets(src, decodeErrors(name, err))
	}
	c.Alerts.markSet(src)
	fromEnv, envErrs := applyEnvTo(&c, environ)
	c.origin = &origin{name: name, src: src, fromEnv: fromEnv}
	if c.Device.Label == "" {
		c.Device.Label = c.Device.ID
	}
	c.Alerts.fillDefaults()
	errs = append(errs, envErrs...)
	errs = append(errs, c.validate()...)
	return c, errs, true
}

// result places errs and returns c, or errs if there are any.
func result(c Config, errs Errors) (Config, error) {
	if len(errs) > 0 {
		c.origin.place(errs)
		return Config{}, errs
	}
	return c, nil
}

// LoadSecrets reads the secrets c names: the storage credentials, from
// storage.access_key_file and storage.secret_key_file (each of mode 0600 or 0400)
// or else from MAMORU_S3_ACCESS_KEY and MAMORU_S3_SECRET_KEY in environ,
// the signing key from device.signing_key_file, and each alert target's
// secret_file, password_file and token_file (0600 or 0400 too), and the
// certificate authorities of storage.ca_file and each target's ca_file.
// It is the step, apart
// from Load, for the commands that talk to the bucket or sign: run,
// selftest, storage init, check. Its errors are Errors naming the key and,
// for a Config from Load or Parse, its line.
func (c *Config) LoadSecrets(environ []string) error {
	errs := c.loadSecrets(environ, LoadOptions{})
	if len(errs) > 0 {
		c.origin.place(errs)
		return errs
	}
	return nil
}

// loadSecrets reads the secrets, the key files found where o says. With
// o.KeyDir the signing key is not read: the device makes its own.
func (c *Config) loadSecrets(environ []string, o LoadOptions) Errors {
	errs := c.Storage.loadCredentials(environ, o)
	c.Device.SigningKey = signing.Key{}
	if c.Device.SigningKeyFile != "" && o.KeyDir == "" {
		key, err := signing.ReadKey(c.Device.SigningKeyFile)
		if err != nil {
			errs = append(errs, &Error{Key: "device.signing_key_file", Msg: err.Error()})
		}
		c.Device.SigningKey = key
	}
	return append(errs, c.Alerts.loadSecrets(o)...)
}

func decodeErrors(name string, err error) Errors {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		var out Errors
		for _, de := range strict.Errors {
			row, _ := de.Position()
			key := strings.Join(de.Key(), ".")
			msg, ok := replacedKeys[key]
			if !ok {
				msg = "is not a known key"
			}
			out = append(out, &Error{File: name, Line: row, Key: key, Msg: msg})
		}
		return out
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, _ := de.Position()
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		if m := typeErr.FindStringSubmatch(msg); m != nil && tomlType[m[3]] != "" {
			msg = fmt.Sprintf("must be of type %s, not %s", tomlType[m[3]], m[1])
		}
		return Errors{{File: name, Line: row, Key: strings.Join(de.Key(), "."), Msg: msg}}
	}
	return Errors{{File: name, Msg: err.Error()}}
}

// indexTargets names which target each decoding error about an
// [[alerts.target]] key is in, from its line: go-toml says
// "alerts.target.url" for every one of them.
func indexTargets(src []byte, errs Errors) Errors {
	for _, e := range errs {
		k, ok := strings.CutPrefix(e.Key, "alerts.target.")
		if !ok || e.Line == 0 {
			continue
		}
		e.Key = targetKey(arrayIndex(src, "alerts.target", e.Line), k)
		if e.Msg == "is not a known key" {
			e.Msg = fmt.Sprintf("is not a known key: an [[alerts.target]] takes %s, each kind some of them", strings.Join(keysOfAnyKind(), ", "))
		}
	}
	return errs
}

// replacedKeys are keys an older mamoru read, with what to write instead.
var replacedKeys = map[string]string{
	"policy.object_lock_days": "is no longer read: each clip is now locked for 'policy.retention_days'; " +
		"write policy.object_lock = \"compliance\" (no one can delete a clip before then), \"governance\" (the default: " +
		"only a user granted s3:BypassGovernanceRetention can) or \"none\", and delete this line",
}

// typeErr matches go-toml's "cannot decode TOML string into struct field config.Capture.PreSeconds of type int".
var typeErr = regexp.MustCompile(`cannot decode TOML (\w+) into struct field config\.(\w+\.\w+) of type ([\w.\[\]]+)$`)

var tomlType = map[string]string{
	"int": "integer", "float64": "number", "string": "string", "bool": "boolean", "config.Secret": "string",
	"[]string": "array of strings", "[]config.Target": "array of tables ([[alerts.target]])",
}

// applyEnvTo overrides keys of c, a pointer to a struct of TOML tables,
// from MAMORU_TABLE_KEY variables, and returns the variable that set each
// dotted key.
func applyEnvTo(c any, environ []string) (fromEnv map[string]string, errs Errors) {
	fromEnv = map[string]string{}
	v := reflect.ValueOf(c).Elem()
	for i := range v.NumField() {
		if !v.Type().Field(i).IsExported() {
			continue
		}
		sec := v.Type().Field(i).Tag.Get("toml")
		sv := v.Field(i)
		for j := range sv.NumField() {
			key := sv.Type().Field(j).Tag.Get("toml")
			if key == "-" {
				continue
			}
			name := EnvPrefix + strings.ToUpper(sec+"_"+key)
			f := sv.Field(j)
			if f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Struct {
				errs = append(errs, refuseTables(environ, name, sec+"."+key)...)
				continue
			}
			val, ok := lookup(environ, name)
			if !ok {
				continue
			}
			fromEnv[sec+"."+key] = name
			switch f.Kind() {
			case reflect.String:
				f.SetString(val)
			case reflect.Int:
				n, err := strconv.Atoi(val)
				if err != nil {
					errs = append(errs, &Error{File: name, Key: sec + "." + key, Msg: fmt.Sprintf("must be a whole number (got %q)", val)})
					continue
				}
				f.SetInt(int64(n))
			case reflect.Float64:
				x, err := strconv.ParseFloat(val, 64)
				if err != nil {
					errs = append(errs, &Error{File: name, Key: sec + "." + key, Msg: fmt.Sprintf("must be a number (got %q)", val)})
					continue
				}
				f.SetFloat(x)
			case reflect.Slice: // a list: entries separated by ';'
				f.Set(reflect.ValueOf(strings.Split(val, ";")))
			case reflect.Bool:
				b, err := strconv.ParseBool(val)
				if err != nil {
					errs = append(errs, &Error{File: name, Key: sec + "." + key, Msg: fmt.Sprintf("must be true or false (got %q)", val)})
					continue
				}
				f.SetBool(b)
			}
		}
	}
	return fromEnv, errs
}

// refuseTables refuses every variable that tries to set an array of
// tables (MAMORU_ALERTS_TARGET, MAMORU_ALERTS_TARGET_1_URL, …): such
// tables are set in the file only, and one key of one table from the
// environment would half-work at best.
func refuseTables(environ []string, name, key string) Errors {
	var errs Errors
	for _, kv := range environ {
		v, _, _ := strings.Cut(kv, "=")
		if v == name || strings.HasPrefix(v, name+"_") {
			errs = append(errs, &Error{File: v, Key: key, Msg: fmt.Sprintf("cannot be set by the environment: the [[%s]] tables are set in the configuration file only; unset %s", key, v)})
		}
	}
	return errs
}

func lookup(environ []string, name string) (string, bool) {
	for _, kv := range slices.Backward(environ) {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v, true
		}
	}
	return "", false
}

// lineOf finds the 1-based line of a dotted key ("capture.post_seconds") in
// TOML source, or 0. It understands [table] headers and bare keys, which is
// all a mamoru configuration uses, and a key of the n-th (from 1) of an
// array of tables ("alerts.target[2].url", at its table's header if the
// table leaves the key out).
func lineOf(src []byte, key string) int {
	if m := arrayKey.FindStringSubmatch(key); m != nil {
		n, _ := strconv.Atoi(m[2])
		return lineInArray(src, m[1], n-1, m[3])
	}
	if !strings.Contains(key, ".") {
		return 0
	}
	// "policy.basic_policy.en" is written as en under [policy.basic_policy]
	// or as basic_policy.en under [policy]: try each table it may be in.
	current := ""
	for i, line := range strings.Split(string(src), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			current = strings.TrimSpace(strings.Trim(line, "[]"))
			if current == key { // the table itself: [policy.basic_policy]
				return i + 1
			}
			continue
		}
		k, _, ok := strings.Cut(line, "=")
		if ok && current != "" && current+"."+strings.ReplaceAll(strings.TrimSpace(k), " ", "") == key {
			return i + 1
		}
	}
	// A key inside an inline table: the line of the table's own key.
	if parent := key[:strings.LastIndex(key, ".")]; strings.Contains(parent, ".") {
		return lineOf(src, parent)
	}
	return 0
}

// arrayKey matches a key in an array of tables: "alerts.target[2].url".
var arrayKey = regexp.MustCompile(`^([a-z_.]+)\[(\d+)\]\.(\w+)$`)

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// triggerSource is what a trigger source's name may be: nothing that can
// carry a terminal escape into a manifest or the audit log.
var triggerSource = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// maxLabel bounds a label, in characters: it heads an alert on a phone's
// lock screen, where little more fits.
const maxLabel = 64

// checkLabel says what is wrong with a label people read (the device's,
// an alert target's), or "". A label is shown in e-mail subjects, push
// titles and terminals, so it may hold any letter, digit, mark,
// punctuation, symbol or space of any script, and nothing that is not
// seen: no control character (a terminal escape, a line break that would
// start a new mail header) and no format character (a right-to-left
// override that would make it read as something else).
func checkLabel(s string) string {
	switch {
	case !utf8.ValidString(s):
		return "must be UTF-8 text"
	case strings.TrimSpace(s) != s || strings.Trim(s, "\u3000") != s:
		return fmt.Sprintf("must not start or end with a space (got %q)", s)
	case utf8.RuneCountInString(s) > maxLabel:
		return fmt.Sprintf("must be at most %d characters (got %d)", maxLabel, utf8.RuneCountInString(s))
	}
	for _, r := range s {
		if !unicode.IsGraphic(r) {
			return fmt.Sprintf("may hold only visible characters and spaces: %U is not one (got %q)", r, s)
		}
	}
	return ""
}

// ReservedSources are the recorder's own press sources: only the hardware
// drivers give "button" and "sim", and only listening gives SoundSource.
var ReservedSources = []string{"button", "sim", SoundSource}

// Validate checks every key and returns all problems found, or nil.
func (c *Config) Validate() error {
	if errs := c.validate(); len(errs) > 0 {
		return errs
	}
	return nil
}

func (c *Config) validate() Errors {
	var errs Errors
	bad := func(key, format string, args ...any) {
		errs = append(errs, &Error{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	between := func(key string, v, lo, hi int) {
		if v < lo || v > hi {
			bad(key, "must be between %d and %d (got %d)", lo, hi, v)
		}
	}
	oneOf := func(key, v string, allowed ...string) {
		if !slices.Contains(allowed, v) {
			bad(key, "must be one of %q (got %q)", allowed, v)
		}
	}

	if !idPattern.MatchString(c.Device.ID) {
		bad("device.id", "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit (got %q)", c.Device.ID)
	}
	if !idPattern.MatchString(c.Device.Store) {
		bad("device.store", "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit (got %q)", c.Device.Store)
	}
	if c.Device.Label != "" {
		if msg := checkLabel(c.Device.Label); msg != "" {
			bad("device.label", "%s", msg)
		}
	}
	for i, src := range c.Device.TriggerSources {
		switch {
		case !triggerSource.MatchString(src):
			bad("device.trigger_sources", "entry %d %q: must be 1 to 32 lower-case letters, digits or '-', starting with a letter", i+1, src)
		case slices.Contains(ReservedSources, src):
			bad("device.trigger_sources", "entry %d %q: is the counter's own source and cannot be given by the control socket", i+1, src)
		}
	}
	if _, err := time.LoadLocation(c.Device.Timezone); err != nil || c.Device.Timezone == "" {
		bad("device.timezone", "must be an IANA time zone such as \"Asia/Tokyo\" (got %q)", c.Device.Timezone)
	}
	if !strings.HasPrefix(c.Device.StateDir, "/") {
		bad("device.state_dir", "must be an absolute path (got %q)", c.Device.StateDir)
	}

	between("capture.pre_seconds", c.Capture.PreSeconds, 0, 600)
	between("capture.post_seconds", c.Capture.PostSeconds, 1, 600)
	between("capture.max_incident_seconds", c.Capture.MaxIncidentSeconds, 1, 3600)
	if c.Capture.MaxIncidentSeconds < c.Capture.PreSeconds+c.Capture.PostSeconds {
		bad("capture.max_incident_seconds", "must be at least pre_seconds + post_seconds = %d (got %d)",
			c.Capture.PreSeconds+c.Capture.PostSeconds, c.Capture.MaxIncidentSeconds)
	}

	if !c.Video.Enabled && !c.Audio.Enabled {
		bad("video.enabled", "and 'audio.enabled' are both false: nothing would be recorded")
	}
	if c.Video.Enabled {
		oneOf("video.source", c.Video.Source, SourceRpicam, SourceV4L2, SourceTestsrc, SourceCommand)
		if c.Video.Source == SourceV4L2 && !strings.HasPrefix(c.Video.Device, "/dev/") {
			bad("video.device", "must be a device path such as \"/dev/video0\" for source \"v4l2\" (got %q)", c.Video.Device)
		}
		if c.Video.Source == SourceCommand && strings.TrimSpace(c.Video.Command) == "" {
			bad("video.command", "is required for source \"command\": a shell command writing H.264 Annex-B to stdout")
		}
		between("video.width", c.Video.Width, 64, 3840)
		between("video.height", c.Video.Height, 64, 2160)
		if c.Video.Width%2 != 0 || c.Video.Height%2 != 0 {
			bad("video.width", "and 'video.height' must be even (got %dx%d)", c.Video.Width, c.Video.Height)
		}
		between("video.fps", c.Video.FPS, 1, 120)
		between("video.bitrate_kbps", c.Video.BitrateKbps, 100, 50000)
		between("video.keyframe_interval", c.Video.KeyframeInterval, 1, max(c.Video.FPS, 1)*10)
	}
	if c.Audio.Enabled {
		oneOf("audio.backend", c.Audio.Backend, BackendAuto, BackendALSA, BackendPulse, BackendNull)
		if !slices.Contains([]int{8000, 16000, 22050, 24000, 32000, 44100, 48000}, c.Audio.SampleRate) {
			bad("audio.sample_rate", "must be one of 8000, 16000, 22050, 24000, 32000, 44100 or 48000 (got %d)", c.Audio.SampleRate)
		}
		between("audio.channels", c.Audio.Channels, 1, 2)
	}
	oneOf("hardware.driver", c.Hardware.Driver, DriverSim, DriverGPIO)
	if c.Hardware.Driver == DriverGPIO {
		pins := map[string]string{}
		for _, p := range []struct{ key, name string }{
			{"hardware.indicator_pin", c.Hardware.IndicatorPin}, {"hardware.button_pin", c.Hardware.ButtonPin},
			{"hardware.sign_pin", c.Hardware.SignPin}, {"hardware.buzzer_pin", c.Hardware.BuzzerPin},
		} {
			if p.name == "" {
				if p.key == "hardware.indicator_pin" || p.key == "hardware.button_pin" {
					bad(p.key, "is required for driver \"gpio\" (e.g. \"GPIO17\")")
				}
				continue
			}
			if other, dup := pins[p.name]; dup {
				bad(p.key, "is %q, already used by '%s'", p.name, other)
			}
			pins[p.name] = p.key
		}
	}
	between("hardware.long_press_seconds", c.Hardware.LongPressSeconds, 1, 29)
	c.Storage.validate(bad)
	c.Policy.validate(bad)
	c.Alerts.validate(bad)
	c.Listen.validate(c.Audio, bad)

	if c.Capture.RingMaxMB != 0 && len(errs) == 0 {
		if need := c.minRingMB(); c.Capture.RingMaxMB < need {
			bad("capture.ring_max_mb", "is too small to hold pre_seconds = %d at these bitrates: at least %d is needed (got %d; 0 sizes it automatically)",
				c.Capture.PreSeconds, need, c.Capture.RingMaxMB)
		}
	}
	return errs
}

// Schedule returns the recording hours. It is valid after Validate.
func (c *Config) Schedule() *Schedule {
	s, err := ParseSchedule(c.Policy.RecordingHours, c.Policy.ClosedDates, c.Location())
	if err != nil {
		return nil
	}
	return s
}

// Location returns the device's time zone. It is valid after Validate.
func (c *Config) Location() *time.Location {
	loc, err := time.LoadLocation(c.Device.Timezone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// RingSpan is how much media the ring keeps: the pre-roll, plus two key
// frame intervals so a key frame at or before press − pre_seconds is always
// held, plus a second of slack for the writer catching up.
func (c *Config) RingSpan() time.Duration {
	span := time.Duration(c.Capture.PreSeconds)*time.Second + time.Second
	if c.Video.Enabled {
		gop := time.Duration(c.Video.KeyframeInterval) * time.Second / time.Duration(c.Video.FPS)
		span += 2 * gop
	}
	return span
}

// bytesPerSecond is an upper estimate of the media rate: the video bitrate
// with 50% headroom (encoders overshoot on busy scenes) and uncompressed audio
// (the worst FLAC can do).
func (c *Config) bytesPerSecond() int {
	rate := 0
	if c.Video.Enabled {
		rate += c.Video.BitrateKbps * 1000 / 8 * 3 / 2
	}
	if c.Audio.Enabled {
		rate += c.Audio.SampleRate * c.Audio.Channels * 2
	}
	return rate
}

func (c *Config) minRingMB() int {
	need := int64(c.bytesPerSecond()) * int64(c.RingSpan()) / int64(time.Second)
	return int((need + 1<<20 - 1) >> 20)
}

// RingBytes is the ring's size in bytes: ring_max_mb, or twice the estimated
// need when it is 0.
func (c *Config) RingBytes() int {
	if c.Capture.RingMaxMB > 0 {
		return c.Capture.RingMaxMB << 20
	}
	return max(2*c.minRingMB(), 4) << 20
}
