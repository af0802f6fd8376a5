package config

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pelletier/go-toml/v2"

	"mamoru/signing"
)

// Storage is the S3-compatible bucket incidents are shipped to. An empty
// Endpoint means no storage: clips stay in the state directory.
type Storage struct {
	// Endpoint is host[:port], without a scheme; Secure chooses https.
	Endpoint string `toml:"endpoint"`
	Bucket   string `toml:"bucket"`
	Region   string `toml:"region"`
	Secure   bool   `toml:"secure"`
	// AllowPlainHTTP accepts Secure = false for an endpoint other than this
	// machine: without it, such a configuration is refused, for plain HTTP
	// shows every clip to anyone on the path.
	AllowPlainHTTP bool `toml:"allow_plain_http"`
	// CAFile is a PEM file of extra certificate authorities to trust, for
	// a server with a private CA.
	CAFile string `toml:"ca_file"`
	// Prefix starts every object name; "" puts the store at the top.
	Prefix        string `toml:"prefix"`
	AccessKeyFile string `toml:"access_key_file"`
	SecretKeyFile string `toml:"secret_key_file"`
	PartSizeMB    int    `toml:"part_size_mb"`
	// MaxBandwidthKbps caps the upload rate; 0 is no cap.
	MaxBandwidthKbps int `toml:"max_bandwidth_kbps"`
	// SpoolMaxMB bounds the clips waiting on disk. When they fill it, new
	// incidents are refused (the ring keeps rolling) rather than any clip
	// not yet uploaded being deleted.
	SpoolMaxMB int `toml:"spool_max_mb"`

	// AccessKey and SecretKey are read from the key files or from
	// MAMORU_S3_ACCESS_KEY and MAMORU_S3_SECRET_KEY, never from the TOML.
	AccessKey Secret `toml:"-"`
	SecretKey Secret `toml:"-"`
}

// Enabled reports whether incidents are shipped anywhere.
func (s Storage) Enabled() bool { return s.Endpoint != "" }

// Policy are the operating rules (運用ルール) the device enforces and
// `mamoru policy render` writes down: when it records, who runs it, how long
// clips are kept.
type Policy struct {
	// RecordingHours are when the device records, e.g. "mon-fri 09:00-21:00";
	// none means always.
	RecordingHours []string `toml:"recording_hours"`
	// ClosedDates are whole days without recording, "2026-12-31".
	ClosedDates []string `toml:"closed_dates"`
	// Purpose, OperatorName and Contact are written into the rules and the
	// store notice.
	Purpose         string   `toml:"purpose"`
	OperatorName    string   `toml:"operator_name"`
	Contact         string   `toml:"contact"`
	NoticeLanguages []string `toml:"notice_languages"`
	// BasicPolicy is the company's basic policy against customer
	// harassment (カスタマーハラスメントに対する基本方針), in its own words,
	// one text per notice language ("ja", "en"): the store notice prints it
	// below the recording notice, so that one A4 sheet makes both known as
	// the Tokyo incentive asks. None leaves the notice as it was.
	BasicPolicy map[string]string `toml:"basic_policy"`
	// RetentionDays expires clips this many days after upload; 0 keeps them.
	RetentionDays int `toml:"retention_days"`
	// ObjectLock is the S3 Object Lock mode each clip, manifest and
	// signature is written with, retained for RetentionDays: LockGovernance
	// (the default), LockCompliance or LockNone.
	ObjectLock string `toml:"object_lock"`
}

// The values of policy.object_lock.
const (
	// LockGovernance: no one can overwrite or delete a locked object
	// version before its date, except a user granted
	// s3:BypassGovernanceRetention who asks to.
	LockGovernance = "governance"
	// LockCompliance: no one at all, the root user included, until its date.
	LockCompliance = "compliance"
	// LockNone: objects are not locked.
	LockNone = "none"
)

// MaxBasicPolicy is how many characters policy.basic_policy may hold in a
// language: what fits the A4 notice beside the recording notice in both
// languages.
const MaxBasicPolicy = 300

func (r *Policy) validateBasicPolicy(bad func(key, format string, args ...any)) {
	if len(r.BasicPolicy) == 0 {
		return
	}
	for _, l := range slices.Sorted(maps.Keys(r.BasicPolicy)) {
		text := r.BasicPolicy[l]
		key := "policy.basic_policy." + l
		switch {
		case l != "ja" && l != "en":
			bad(key, "is not a notice language: the basic policy is written per language, as ja and en")
		case strings.TrimSpace(text) == "":
			bad(key, "is empty: write the company's basic policy, or leave the language out of [policy.basic_policy] altogether")
		case utf8.RuneCountInString(text) > MaxBasicPolicy:
			bad(key, "must be at most %d characters, to fit the A4 notice with the recording notice (got %d)", MaxBasicPolicy, utf8.RuneCountInString(text))
		case strings.ContainsFunc(text, func(c rune) bool { return unicode.IsControl(c) && c != '\n' }):
			bad(key, "holds a control character: only text and line breaks are printed")
		}
	}
	for _, l := range r.NoticeLanguages {
		if _, ok := r.BasicPolicy[l]; !ok && (l == "ja" || l == "en") {
			bad("policy.basic_policy", "has no %q text, but the notice is also in %q (policy.notice_languages): write the basic policy in every language the notice speaks", l, l)
		}
	}
}

// Secret is a credential, or an address that holds one. It prints as
// "[redacted]" wherever it ends up: logs (slog too), status, errors, %v of
// a Config.
type Secret string

func (Secret) String() string               { return "[redacted]" }
func (Secret) GoString() string             { return `"[redacted]"` }
func (Secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }
func (Secret) LogValue() slog.Value         { return slog.StringValue("[redacted]") }

// Reveal returns the credential itself, for the one place that needs it.
func (s Secret) Reveal() string { return string(s) }

// Environment variables holding the storage credentials.
const (
	EnvAccessKey = "MAMORU_S3_ACCESS_KEY"
	EnvSecretKey = "MAMORU_S3_SECRET_KEY"
)

func defaultStorage() Storage {
	return Storage{Secure: true, PartSizeMB: 8, SpoolMaxMB: 2048}
}

func defaultPolicy() Policy {
	return Policy{RetentionDays: 90, ObjectLock: LockGovernance, NoticeLanguages: []string{"ja", "en"}}
}

// bucketName is S3's rule for bucket names (simplified: no dotted IPs).
var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

var prefixChars = regexp.MustCompile(`^[A-Za-z0-9._/-]*$`)

// Loopback reports whether endpoint (host or host:port) is this machine.
func Loopback(endpoint string) bool {
	host := endpoint
	if h, _, err := net.SplitHostPort(endpoint); err == nil {
		host = h
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

func (s *Storage) validate(bad func(key, format string, args ...any)) {
	if !s.Enabled() {
		return
	}
	if strings.Contains(s.Endpoint, "://") || strings.Contains(s.Endpoint, "/") {
		bad("storage.endpoint", "must be host or host:port without a scheme or path; use 'storage.secure' for https (got %q)", s.Endpoint)
	}
	if !bucketName.MatchString(s.Bucket) {
		bad("storage.bucket", "must be an S3 bucket name: 3 to 63 lowercase letters, digits, '.' or '-' (got %q)", s.Bucket)
	}
	if strings.HasPrefix(s.Prefix, "/") || strings.HasSuffix(s.Prefix, "/") || strings.Contains(s.Prefix, "//") {
		bad("storage.prefix", "must not start or end with '/' (got %q)", s.Prefix)
	}
	// The prefix goes into the device policy's resources, where '*', '?'
	// and '${…}' are wildcards and variables that would widen what the
	// device's keys may write.
	if !prefixChars.MatchString(s.Prefix) {
		bad("storage.prefix", "may hold only letters, digits, '-', '_', '.' and '/' (no IAM wildcard such as '*', '?' or '${'): it names the device policy's resources (got %q)", s.Prefix)
	}
	if !s.Secure {
		if s.CAFile != "" {
			bad("storage.ca_file", "is set but 'storage.secure' = false, so it would be ignored: set 'storage.secure' = true to use the CA, or remove 'storage.ca_file'")
		}
		if !s.AllowPlainHTTP && !Loopback(s.Endpoint) {
			bad("storage.secure", "= false sends every clip and the bucket's replies in plain HTTP to %q, which is not this machine: use https ('storage.secure' = true, with 'storage.ca_file' for a private CA), or set 'storage.allow_plain_http' = true for a network you trust", s.Endpoint)
		}
	}
	between := func(key string, v, lo, hi int) {
		if v < lo || v > hi {
			bad(key, "must be between %d and %d (got %d)", lo, hi, v)
		}
	}
	between("storage.part_size_mb", s.PartSizeMB, 5, 5120) // S3's smallest part is 5 MiB
	between("storage.max_bandwidth_kbps", s.MaxBandwidthKbps, 0, 10_000_000)
	between("storage.spool_max_mb", s.SpoolMaxMB, 16, 1<<20)
}

func (r *Policy) validate(bad func(key, format string, args ...any)) {
	if _, err := ParseSchedule(r.RecordingHours, nil, time.UTC); err != nil {
		bad("policy.recording_hours", "%v", err)
	}
	if _, err := ParseSchedule(nil, r.ClosedDates, time.UTC); err != nil {
		bad("policy.closed_dates", "%v", err)
	}
	for _, l := range r.NoticeLanguages {
		if l != "ja" && l != "en" {
			bad("policy.notice_languages", "must list \"ja\" and/or \"en\" (got %q)", l)
		}
	}
	r.validateBasicPolicy(bad)
	if r.RetentionDays < 0 || r.RetentionDays > 36500 {
		bad("policy.retention_days", "must be between 0 (keep) and 36500 (got %d)", r.RetentionDays)
	}
	switch r.ObjectLock {
	case LockGovernance, LockCompliance:
		// A lock needs an end date, and "kept forever" has none. A lock
		// far in the future instead would, in compliance mode, keep
		// recordings of people beyond what the rules can promise, with no
		// way back: refuse, and say which of the two to change.
		if r.RetentionDays == 0 {
			bad("policy.retention_days", "= 0 (keep) cannot go with 'policy.object_lock' = %q: a clip is locked until its retention ends, and 0 has no end; set retention_days to the days to keep clips, or policy.object_lock = \"none\" to keep them unlocked", r.ObjectLock)
		}
	case LockNone:
	default:
		bad("policy.object_lock", "must be \"governance\", \"compliance\" or \"none\" (got %q)", r.ObjectLock)
	}
}

// Locked reports whether clips are written with an object lock.
func (r Policy) Locked() bool {
	return r.ObjectLock == LockGovernance || r.ObjectLock == LockCompliance
}

// loadCredentials fills AccessKey and SecretKey: from the key files, which
// must be readable by their owner only, or from the environment; and
// checks that CAFile holds a certificate. o says where the files are.
func (s *Storage) loadCredentials(environ []string, o LoadOptions) Errors {
	var errs Errors
	read := func(key, path, env string) Secret {
		if path == "" {
			v, _ := lookup(environ, env)
			return Secret(v)
		}
		v, err := readSecret(key, path, o)
		if err != nil {
			errs = append(errs, err)
		}
		return v
	}
	s.AccessKey = read("storage.access_key_file", s.AccessKeyFile, EnvAccessKey)
	s.SecretKey = read("storage.secret_key_file", s.SecretKeyFile, EnvSecretKey)
	if len(errs) == 0 && s.Enabled() && (s.AccessKey == "" || s.SecretKey == "") {
		errs = append(errs, &Error{Key: "storage.access_key_file", Msg: fmt.Sprintf("and 'storage.secret_key_file' (or %s and %s) are required when 'storage.endpoint' is set", EnvAccessKey, EnvSecretKey)})
	}
	if s.CAFile != "" {
		if err := readCA("storage.ca_file", s.CAFile, o, nil); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// readSecret reads the secret in the key file configured at path (found
// where o says), named by key in errors: a file that its owner alone may
// read, holding one line.
func readSecret(key, path string, o LoadOptions) (Secret, *Error) {
	at := o.keyPath(path)
	unreadable := func(err error) *Error {
		if at != path {
			return &Error{Key: key, Msg: fmt.Sprintf("cannot be read from %s (the file for %s on the device): %v", at, path, errors.Unwrap(err)), Err: err}
		}
		return &Error{Key: key, Msg: fmt.Sprintf("cannot be read: %v", errors.Unwrap(err)), Err: err}
	}
	fi, err := os.Stat(at)
	if err != nil {
		return "", unreadable(err)
	}
	if err := signing.OwnerOnly(at, fi); err != nil {
		return "", &Error{Key: key, Msg: err.Error()}
	}
	b, err := os.ReadFile(at)
	if err != nil {
		return "", unreadable(err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", &Error{Key: key, Msg: fmt.Sprintf("%s is empty", at)}
	}
	return Secret(v), nil
}

// readCA reads the certificate authorities in the file configured at path
// (found where o says) into *pool, if pool is not nil, named by key in
// errors.
func readCA(key, path string, o LoadOptions, pool **x509.CertPool) *Error {
	p, err := CertPool(o.keyPath(path))
	if err != nil {
		return &Error{Key: key, Msg: fmt.Sprintf("cannot be used: %v", err), Err: err}
	}
	if pool != nil {
		*pool = p
	}
	return nil
}

// CertPool returns the system's certificate authorities with those in
// the PEM file at path added, for a server whose certificate a private CA
// signed (storage.ca_file, a target's ca_file).
func CertPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")", path)
	}
	return pool, nil
}

// ManagerConfig is what a manager's commands need: the bucket, the
// credentials and the time zone to show times in. A device's whole
// configuration serves as well, but a manager's file may hold just these.
type ManagerConfig struct {
	Storage  Storage
	Location string
	// Keyring is the devices' public keys, from the file's [[keyring]]
	// tables: clips get and verify check each manifest's signature by it.
	Keyring signing.Keyring
	// Console is the [console] table: where `mamoru console` listens and
	// who may log in.
	Console Console
}

// managerFile is the part of a configuration a manager's commands read;
// every other table is accepted and ignored.
type managerFile struct {
	Device struct {
		Timezone string `toml:"timezone"`
	} `toml:"device"`
	Storage Storage `toml:"storage"`
}

// LoadManager reads a manager's configuration: the [storage], [[keyring]]
// and [console] tables of the file at path (if path is not ""), then
// MAMORU_STORAGE_* and the credential variables from environ.
func LoadManager(path string, environ []string) (ManagerConfig, error) {
	var f managerFile
	f.Storage = defaultStorage()
	f.Device.Timezone = "Asia/Tokyo"
	o := &origin{name: "environment"}
	if path != "" {
		src, err := readConfig(path)
		if err != nil {
			return ManagerConfig{}, err
		}
		if err := toml.NewDecoder(bytes.NewReader(src)).Decode(&f); err != nil {
			return ManagerConfig{}, decodeErrors(path, err)
		}
		o.name, o.src = path, src
	}
	keyring, keyErrs := parseKeyring(o.name, o.src)
	console, consoleErrs := parseConsole(o.name, o.src)
	fromEnv, errs := applyEnvTo(&f, environ)
	o.fromEnv = fromEnv
	bad := func(key, format string, args ...any) {
		errs = append(errs, &Error{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if !f.Storage.Enabled() {
		bad("storage.endpoint", "is required (or set MAMORU_STORAGE_ENDPOINT)")
	}
	f.Storage.validate(bad)
	errs = append(errs, f.Storage.loadCredentials(environ, LoadOptions{})...)
	errs = append(errs, keyErrs...)
	errs = append(errs, consoleErrs...)
	if len(errs) > 0 {
		o.place(errs)
		return ManagerConfig{}, errs
	}
	return ManagerConfig{Storage: f.Storage, Location: f.Device.Timezone, Keyring: keyring, Console: console}, nil
}
