package config

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"net/url"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/pelletier/go-toml/v2"
)

// Alerts is who is told when something happens at the counter: the
// [alerts] table and its [[alerts.target]] tables, which are set in the
// file only, never by the environment.
type Alerts struct {
	// ConsoleURL is the managers' console, "https://console.example.com";
	// an alert links to IncidentLink. "" sends no link.
	ConsoleURL string   `toml:"console_url"`
	Targets    []Target `toml:"target"`
}

// The kinds of alert target.
const (
	// KindWebhook POSTs JSON signed per Standard Webhooks (Format
	// "standard"), or Slack-style text (Format "slack").
	KindWebhook = "webhook"
	// KindNtfy publishes to a topic on an ntfy server.
	KindNtfy = "ntfy"
	// KindMQTT publishes to a broker, with Home Assistant discovery.
	KindMQTT = "mqtt"
	// KindEmail sends mail through an SMTP server.
	KindEmail = "email"
	// KindLine pushes a message through LINE's Messaging API.
	KindLine = "line"
)

// The values of a webhook's format.
const (
	FormatStandard = "standard"
	FormatSlack    = "slack"
)

// EventNames are the names of every event an alert may be about, in the
// order the operating rules list them. A target's events are patterns on
// these names.
var EventNames = []string{
	"incident.started", "incident.extended", "incident.saved", "incident.uploaded",
	"press.refused", "device.fault", "device.recovered", "spool.full",
	"upload.stuck", "clock.unsynced", "sound.raised", "device.offline", "device.online",
	"alert.test",
}

// DefaultEvents are a target's events when its table leaves them out: a
// press, a press that could not be recorded, the device's health, and a
// raised voice (sent only when [listen] is enabled).
var DefaultEvents = []string{"incident.started", "press.refused", "device.*", "sound.raised"}

// Default servers of the kinds that have one.
const (
	DefaultNtfyURL = "https://ntfy.sh"
	DefaultLineURL = "https://api.line.me"
	// DefaultTopicPrefix starts an MQTT target's topics:
	// "mamoru/<store>/<device>/state".
	DefaultTopicPrefix = "mamoru"
	// DefaultDiscoveryPrefix is Home Assistant's own MQTT discovery
	// prefix.
	DefaultDiscoveryPrefix = "homeassistant"
)

// Target is one [[alerts.target]]: where alerts go and which ones. Each
// kind takes only its own keys (targetKeys); Load and Parse fill in the
// defaults of those the file leaves out.
//
// URL and Topic may carry a token (a Slack webhook's path, an ntfy topic
// anyone who knows it may read), so they are Secrets, and a Target prints
// as its label and kind only (String, LogValue).
type Target struct {
	Kind string `toml:"kind"`
	// Label is who this is, as the operating rules name them ("店長のスマホ");
	// unique among the targets.
	Label string `toml:"label"`
	// Events are path.Match patterns on EventNames ("device.*"); Wants
	// applies them.
	Events []string `toml:"events"`
	// Language of the text people read: "ja" or "en".
	Language string `toml:"language"`

	// URL is the webhook's address; the ntfy, MQTT ("mqtt://" or
	// "mqtts://"), SMTP ("smtp://" with STARTTLS, "smtps://" with TLS from
	// the start) or LINE API server.
	URL Secret `toml:"url"`
	// AllowPlainHTTP accepts a webhook or ntfy URL in plain http, or an
	// mqtt:// broker, on a machine other than this one.
	AllowPlainHTTP bool `toml:"allow_plain_http"`
	// CAFile is a PEM file of certificate authorities to trust besides
	// the system's, for a server with a private CA's certificate (a
	// broker or a mail server on the shop's NAS); read into RootCAs.
	CAFile string `toml:"ca_file"`

	// Format of a webhook: FormatStandard or FormatSlack.
	Format string `toml:"format"`
	// SecretFile holds a standard webhook's signing secret,
	// "whsec_<base64>" (Standard Webhooks); read into Secret.
	SecretFile string `toml:"secret_file"`

	// Topic is an ntfy topic: whoever knows it may read the alerts.
	Topic Secret `toml:"topic"`
	// TokenFile holds an ntfy access token, or LINE's channel access
	// token; read into Token.
	TokenFile string `toml:"token_file"`

	// Username and PasswordFile log in to an MQTT broker or an SMTP
	// server; the password is read into Password.
	Username     string `toml:"username"`
	PasswordFile string `toml:"password_file"`
	// TopicPrefix starts an MQTT target's topics.
	TopicPrefix string `toml:"topic_prefix"`
	// HADiscovery publishes Home Assistant MQTT discovery, under
	// DiscoveryPrefix (Home Assistant's own default, "homeassistant",
	// unless its MQTT integration was set to another).
	HADiscovery     bool   `toml:"ha_discovery"`
	DiscoveryPrefix string `toml:"discovery_prefix"`

	// From is an e-mail's sender.
	From string `toml:"from"`
	// To are an e-mail's recipients, or the LINE user, group or room ids
	// to push to.
	To []string `toml:"to"`

	// Secret, Password and Token are read from SecretFile, PasswordFile
	// and TokenFile by LoadSecrets.
	Secret   Secret `toml:"-"`
	Password Secret `toml:"-"`
	Token    Secret `toml:"-"`
	// RootCAs are the system's authorities and CAFile's, read by
	// LoadSecrets; nil without CAFile: the system's.
	RootCAs *x509.CertPool `toml:"-"`

	// set holds the keys the file's table sets; nil for a Target built
	// by hand, whose set keys are those not zero.
	set map[string]bool
}

// commonKeys are the keys every kind takes.
var commonKeys = []string{"kind", "label", "events", "language"}

// targetKeys are the keys each kind takes besides commonKeys.
var targetKeys = map[string][]string{
	KindWebhook: {"url", "allow_plain_http", "ca_file", "format", "secret_file"},
	KindNtfy:    {"url", "allow_plain_http", "ca_file", "topic", "token_file"},
	KindMQTT:    {"url", "allow_plain_http", "ca_file", "username", "password_file", "topic_prefix", "ha_discovery", "discovery_prefix"},
	KindEmail:   {"url", "ca_file", "username", "password_file", "from", "to"},
	KindLine:    {"url", "token_file", "to"},
}

// defaultURL is the server of the kinds that have a default one.
var defaultURL = map[string]string{KindNtfy: DefaultNtfyURL, KindLine: DefaultLineURL}

// Kinds are the kinds of alert target, in the order errors list them.
var Kinds = []string{KindWebhook, KindNtfy, KindMQTT, KindEmail, KindLine}

// String describes t for people, with no secret: "店長のスマホ (ntfy)".
func (t Target) String() string { return fmt.Sprintf("%s (%s)", t.Label, t.Kind) }

// LogValue logs t as its kind and label, with no secret.
func (t Target) LogValue() slog.Value {
	return slog.GroupValue(slog.String("kind", t.Kind), slog.String("label", t.Label))
}

// Wants reports whether t is to be told of the event named name.
func (t Target) Wants(name string) bool {
	for _, p := range t.Events {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// IncidentLink is the console's page of an incident,
// "<console_url>/incidents/<store>/<device>/<id>", or "" when
// console_url is not set.
func (a Alerts) IncidentLink(store, device, id string) string {
	if a.ConsoleURL == "" {
		return ""
	}
	link, err := url.JoinPath(a.ConsoleURL, "incidents", store, device, id)
	if err != nil {
		return ""
	}
	return link
}

// has reports whether t sets key: in the file, for a Target from Load or
// Parse; else to a value other than the zero one.
func (t *Target) has(key string) bool {
	if t.set != nil {
		return t.set[key]
	}
	v := reflect.ValueOf(t).Elem()
	for i := range v.NumField() {
		if v.Type().Field(i).Tag.Get("toml") == key {
			return !v.Field(i).IsZero()
		}
	}
	return false
}

// markSet records which keys each of src's [[alerts.target]] tables
// sets, so that a key the file sets to its zero value is still judged,
// and a default fills only a key left out.
func (a *Alerts) markSet(src []byte) {
	var f struct {
		Alerts struct {
			Target []map[string]any `toml:"target"`
		} `toml:"alerts"`
	}
	if err := toml.NewDecoder(bytes.NewReader(src)).Decode(&f); err != nil || len(f.Alerts.Target) != len(a.Targets) {
		return
	}
	for i, keys := range f.Alerts.Target {
		a.Targets[i].set = map[string]bool{}
		for k := range keys {
			a.Targets[i].set[k] = true
		}
	}
}

// fillDefaults gives each target's keys its table leaves out their
// defaults, for the keys its kind takes.
func (a *Alerts) fillDefaults() {
	for i := range a.Targets {
		t := &a.Targets[i]
		takes := func(key string) bool { return slices.Contains(targetKeys[t.Kind], key) && !t.has(key) }
		if !t.has("events") {
			t.Events = slices.Clone(DefaultEvents)
		}
		if !t.has("language") {
			t.Language = "ja"
		}
		if takes("format") {
			t.Format = FormatStandard
		}
		if u, ok := defaultURL[t.Kind]; ok && takes("url") {
			t.URL = Secret(u)
		}
		if takes("topic_prefix") {
			t.TopicPrefix = DefaultTopicPrefix
		}
		if takes("ha_discovery") {
			t.HADiscovery = true
		}
		if takes("discovery_prefix") {
			t.DiscoveryPrefix = DefaultDiscoveryPrefix
		}
	}
}

// targetKey is the dotted key of a target's key: "alerts.target[2].url",
// counting the targets from 1 as a person reading the file does.
func targetKey(i int, key string) string { return fmt.Sprintf("alerts.target[%d].%s", i+1, key) }

var (
	ntfyTopic  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	lineID     = regexp.MustCompile(`^[UCR][0-9a-f]{32}$`)
	mqttPrefix = regexp.MustCompile(`^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$`)
)

// minOpenTopic is the shortest ntfy topic taken without an access token:
// whoever guesses a topic reads its alerts.
const minOpenTopic = 16

func (a *Alerts) validate(bad func(key, format string, args ...any)) {
	if a.ConsoleURL != "" {
		u, err := url.Parse(a.ConsoleURL)
		switch {
		case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Opaque != "":
			bad("alerts.console_url", "must be the console's absolute http(s) URL, like \"https://console.example.com\" (got %q)", a.ConsoleURL)
		case u.User != nil:
			bad("alerts.console_url", "must not hold a user name or password: every alert would carry it")
		case u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(a.ConsoleURL, "?#"):
			bad("alerts.console_url", "must not have a query or fragment: alerts link to <console_url>/incidents/<store>/<device>/<id> (got %q)", a.ConsoleURL)
		}
	}
	labels := map[string]int{} // folded label → its target's index
	for i := range a.Targets {
		t := &a.Targets[i]
		key := func(k string) string { return targetKey(i, k) }
		takes, known := targetKeys[t.Kind]
		switch {
		case t.Kind == "":
			bad(key("kind"), "is required: one of %q", Kinds)
		case !known:
			bad(key("kind"), "must be one of %q (got %q)", Kinds, t.Kind)
		default:
			for _, k := range keysOfAnyKind() {
				if !slices.Contains(takes, k) && !slices.Contains(commonKeys, k) && t.has(k) {
					bad(key(k), "is not a key of a %q target, which takes %s", t.Kind, strings.Join(slices.Concat(commonKeys, takes), ", "))
				}
			}
		}
		switch msg := checkLabel(t.Label); {
		case t.Label == "":
			bad(key("label"), "is required: who this is, as the operating rules will name them (e.g. \"店長のスマホ\")")
		case msg != "":
			bad(key("label"), "%s", msg)
		default:
			folded := strings.ToLower(t.Label)
			if j, dup := labels[folded]; dup {
				bad(key("label"), "%q is already the label of alerts.target[%d]: each target needs its own, for the rules to say who is alerted", t.Label, j+1)
			} else {
				labels[folded] = i
			}
		}
		if len(t.Events) == 0 {
			bad(key("events"), "lists no event: leave the key out for the default %q, or name events among %q", DefaultEvents, EventNames)
		}
		for _, p := range t.Events {
			if _, err := path.Match(p, ""); err != nil {
				bad(key("events"), "has a malformed pattern %q: %v", p, err)
			} else if !slices.ContainsFunc(EventNames, func(n string) bool { ok, _ := path.Match(p, n); return ok }) {
				bad(key("events"), "pattern %q matches no event; the events are %q", p, EventNames)
			}
		}
		if t.Language != "ja" && t.Language != "en" {
			bad(key("language"), "must be \"ja\" or \"en\" (got %q)", t.Language)
		}
		if !known {
			continue
		}
		t.validateKind(key, bad)
		if u, err := url.Parse(t.URL.Reveal()); t.CAFile != "" && err == nil && (u.Scheme == "http" || u.Scheme == "mqtt") {
			bad(key("ca_file"), "is set but 'url' is plain %s://, which uses no certificate: use %s://, or remove 'ca_file'", u.Scheme, u.Scheme+"s")
		}
	}
}

// keysOfAnyKind are the keys of every kind, in Target's order.
func keysOfAnyKind() []string {
	var keys []string
	tt := reflect.TypeFor[Target]()
	for i := range tt.NumField() {
		if k := tt.Field(i).Tag.Get("toml"); k != "" && k != "-" {
			keys = append(keys, k)
		}
	}
	return keys
}

// validateKind judges the keys t's kind takes.
func (t *Target) validateKind(key func(string) string, bad func(key, format string, args ...any)) {
	switch t.Kind {
	case KindWebhook:
		t.checkURL(key("url"), bad, "https", "http")
		switch t.Format {
		case FormatStandard:
			if t.SecretFile == "" {
				bad(key("secret_file"), "is required for a webhook of format \"standard\": the file (mode 0600 or 0400) holding the signing secret, \"whsec_\" and base64 of 24 to 64 random bytes, which the receiver checks each alert by")
			}
		case FormatSlack:
			if t.has("secret_file") {
				bad(key("secret_file"), "is for format \"standard\": a \"slack\" webhook is not signed, its URL is its secret")
			}
		default:
			bad(key("format"), "must be \"standard\" (JSON signed per Standard Webhooks) or \"slack\" (Slack-style text) (got %q)", t.Format)
		}
	case KindNtfy:
		if u := t.checkURL(key("url"), bad, "https", "http"); u != nil && (strings.Trim(u.Path, "/") != "" || u.RawQuery != "") {
			bad(key("url"), "must be the ntfy server only, like \"https://ntfy.sh\", with the topic in 'topic'")
		}
		topic := t.Topic.Reveal()
		switch {
		case topic == "":
			bad(key("topic"), "is required: the ntfy topic the managers' phones subscribe to")
		case !ntfyTopic.MatchString(topic):
			bad(key("topic"), "must be 1 to 64 letters, digits, '_' or '-' (the topic is a secret: it is not repeated here)")
		case t.TokenFile == "" && len(topic) < minOpenTopic:
			bad(key("topic"), "is %d characters long, with no 'token_file': anyone who guesses a topic reads its alerts, so make it at least %d random characters, or protect it with an access token", len(topic), minOpenTopic)
		}
	case KindMQTT:
		t.checkHostPort(key("url"), bad, "mqtt", "mqtts")
		if t.PasswordFile != "" && t.Username == "" {
			bad(key("password_file"), "needs 'username' beside it")
		}
		if !mqttPrefix.MatchString(t.TopicPrefix) || len(t.TopicPrefix) > 128 {
			bad(key("topic_prefix"), "must be MQTT topic levels of letters, digits, '_' or '-', joined by '/', like \"mamoru\" or \"shop/alerts\" (no wildcard, no leading '$') (got %q)", t.TopicPrefix)
		}
		switch {
		case !t.HADiscovery && t.has("discovery_prefix"):
			bad(key("discovery_prefix"), "is set but 'ha_discovery' = false, so nothing is published under it: remove it, or set 'ha_discovery' = true")
		case !mqttPrefix.MatchString(t.DiscoveryPrefix) || len(t.DiscoveryPrefix) > 128:
			bad(key("discovery_prefix"), "must be the discovery prefix Home Assistant's MQTT integration uses, %q unless it was changed: topic levels of letters, digits, '_' or '-' (got %q)", DefaultDiscoveryPrefix, t.DiscoveryPrefix)
		}
	case KindEmail:
		t.checkHostPort(key("url"), bad, "smtp", "smtps")
		if (t.Username == "") != (t.PasswordFile == "") {
			bad(key("username"), "and 'password_file' go together: the SMTP server's login, or neither for a server that takes mail without one")
		}
		if t.From == "" {
			bad(key("from"), "is required: the sender's address, like \"mamoru@shop.example.jp\"")
		} else if msg := checkAddress(t.From); msg != "" {
			bad(key("from"), "%s", msg)
		}
		if len(t.To) == 0 {
			bad(key("to"), "is required: the list of addresses to send to")
		}
		for n, to := range t.To {
			if msg := checkAddress(to); msg != "" {
				bad(key("to"), "entry %d: %s", n+1, msg)
			}
		}
	case KindLine:
		if u := t.checkURL(key("url"), bad, "https", "http"); u != nil && (strings.Trim(u.Path, "/") != "" || u.RawQuery != "") {
			bad(key("url"), "must be the API server only, like %q", DefaultLineURL)
		}
		if t.TokenFile == "" {
			bad(key("token_file"), "is required: the file (mode 0600 or 0400) holding the channel access token of the LINE Official Account")
		}
		if len(t.To) == 0 {
			bad(key("to"), "is required: the user, group or room ids to push to, like [\"U0123456789abcdef0123456789abcdef\"]")
		}
		for n, to := range t.To {
			if !lineID.MatchString(to) {
				bad(key("to"), "entry %d: must be a LINE user, group or room id, 'U', 'C' or 'R' and 32 hex digits (got %q)", n+1, to)
			}
		}
	}
}

// checkURL judges t.URL, an http(s) address when schemes are those, and
// returns it parsed, or nil. It never repeats the URL, which may hold a
// token. Plain http is for this machine only, unless allow_plain_http.
func (t *Target) checkURL(key string, bad func(key, format string, args ...any), schemes ...string) *url.URL {
	if t.URL == "" {
		bad(key, "is required: the address alerts are sent to, like \"https://hooks.example.com/mamoru\"")
		return nil
	}
	u, err := url.Parse(t.URL.Reveal())
	switch {
	case err != nil || u.Host == "" || u.Opaque != "":
		bad(key, "must be an absolute URL such as \"https://host/path\" (the URL may hold a token: it is not repeated here)")
		return nil
	case !slices.Contains(schemes, u.Scheme):
		bad(key, "must start with %s (got %q)", schemeList(schemes), u.Scheme+"://")
		return nil
	case u.User != nil:
		bad(key, "must not hold a user name or password: a key file holds secrets")
		return nil
	case strings.Contains(t.URL.Reveal(), "#"):
		bad(key, "must not have a fragment ('#…')")
		return nil
	}
	t.checkPlain(key, bad, u, "http")
	return u
}

// checkHostPort judges t.URL, a scheme://host:port address with nothing
// after it.
func (t *Target) checkHostPort(key string, bad func(key, format string, args ...any), schemes ...string) {
	if t.URL == "" {
		bad(key, "is required: the server, like %q", schemes[1]+"://host:"+map[string]string{KindMQTT: "8883", KindEmail: "465"}[t.Kind])
		return
	}
	u, err := url.Parse(t.URL.Reveal())
	switch {
	case err != nil || u.Host == "" || u.Opaque != "":
		bad(key, "must be %s followed by host:port (the URL may hold a token: it is not repeated here)", schemeList(schemes))
		return
	case !slices.Contains(schemes, u.Scheme):
		bad(key, "must start with %s (got %q)", schemeList(schemes), u.Scheme+"://")
		return
	case u.User != nil:
		bad(key, "must not hold a user name or password: use 'username' and 'password_file'")
		return
	case strings.Trim(u.Path, "/") != "" || strings.ContainsAny(t.URL.Reveal(), "?#"):
		bad(key, "must be %s and host:port, with nothing after", schemeList(schemes))
		return
	}
	if p, err := strconv.Atoi(u.Port()); err != nil || p < 1 || p > 65535 {
		bad(key, "must name the port, host:port (got port %q)", u.Port())
		return
	}
	if t.Kind == KindMQTT {
		t.checkPlain(key, bad, u, "mqtt")
	}
}

// checkPlain refuses the plain scheme to another machine without
// allow_plain_http: every alert, and any password, would cross the
// network readable.
func (t *Target) checkPlain(key string, bad func(key, format string, args ...any), u *url.URL, plain string) {
	if u.Scheme != plain || Loopback(u.Host) {
		return
	}
	if t.Kind == KindLine || !t.AllowPlainHTTP {
		secure := map[string]string{"http": "https://", "mqtt": "mqtts://"}[plain]
		if t.Kind == KindLine {
			bad(key, "must be https, or plain http to this machine only (for a test server)")
			return
		}
		bad(key, "is plain %s:// to %q, which is not this machine: every alert would cross the network readable; use %s, or set 'allow_plain_http' = true on this target for a network you trust", plain, u.Host, secure)
	}
}

func schemeList(schemes []string) string {
	q := make([]string, len(schemes))
	for i, s := range schemes {
		q[i] = fmt.Sprintf("%q", s+"://")
	}
	return strings.Join(q, " or ")
}

// checkAddress says what is wrong with an e-mail address, or "". Only a
// bare address or a name and address are taken, and nothing that could
// start another mail header.
func checkAddress(s string) string {
	if strings.ContainsAny(s, "\r\n") || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Sprintf("must be one e-mail address on one line (got %q)", s)
	}
	if _, err := mail.ParseAddress(s); err != nil {
		return fmt.Sprintf("must be an e-mail address like \"manager@shop.example.jp\" or \"店長 <manager@shop.example.jp>\" (got %q: %v)", s, err)
	}
	return ""
}

// loadSecrets reads each target's secret, password, token and CA files,
// found where o says.
func (a *Alerts) loadSecrets(o LoadOptions) Errors {
	var errs Errors
	for i := range a.Targets {
		t := &a.Targets[i]
		read := func(key, path string) Secret {
			if path == "" {
				return ""
			}
			v, err := readSecret(targetKey(i, key), path, o)
			if err != nil {
				errs = append(errs, err)
			}
			return v
		}
		t.Secret = read("secret_file", t.SecretFile)
		t.Password = read("password_file", t.PasswordFile)
		t.Token = read("token_file", t.TokenFile)
		t.RootCAs = nil
		if t.CAFile != "" {
			if err := readCA(targetKey(i, "ca_file"), t.CAFile, o, &t.RootCAs); err != nil {
				errs = append(errs, err)
			}
		}
		if t.Secret != "" {
			if _, err := webhookKey(t.Secret); err != nil {
				errs = append(errs, &Error{Key: targetKey(i, "secret_file"), Msg: fmt.Sprintf("%s %v", o.keyPath(t.SecretFile), err)})
			}
		}
		if strings.ContainsFunc(t.Token.Reveal(), unicode.IsSpace) {
			errs = append(errs, &Error{Key: targetKey(i, "token_file"), Msg: fmt.Sprintf("%s must hold the token alone, on one line", o.keyPath(t.TokenFile))})
		}
	}
	return errs
}

// WebhookKey is the key a standard webhook's alerts are signed with
// (HMAC-SHA256): Secret without its "whsec_" prefix, base64-decoded. It
// is valid after LoadSecrets.
func (t Target) WebhookKey() []byte {
	k, _ := webhookKey(t.Secret)
	return k
}

// webhookKey decodes a Standard Webhooks secret, "whsec_" and base64 of
// 24 to 64 bytes, saying what is wrong without repeating it.
func webhookKey(s Secret) ([]byte, error) {
	b64, ok := strings.CutPrefix(s.Reveal(), "whsec_")
	if !ok {
		return nil, errors.New(`must hold a Standard Webhooks secret, "whsec_" and base64 of 24 to 64 random bytes; make one with: printf 'whsec_%s\n' "$(head -c 32 /dev/urandom | base64)"`)
	}
	k, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(k) < 24 || len(k) > 64 {
		return nil, errors.New(`must hold "whsec_" and base64 of 24 to 64 random bytes, which it does not; make one with: printf 'whsec_%s\n' "$(head -c 32 /dev/urandom | base64)"`)
	}
	return k, nil
}

// LoadAlerts reads only the [alerts] table of the file at path (then
// MAMORU_ALERTS_CONSOLE_URL from environ) and its targets' secret files,
// for a command that alerts from a manager's machine rather than a
// device, as `fleet watch` does: a manager's file has no [device] table
// for Load to judge. Other tables are not its business, but an unknown
// key inside [alerts] is an error, as in a device's file. Its errors are
// Errors, each naming the file, line and key.
func LoadAlerts(path string, environ []string) (Alerts, error) {
	src, err := readConfig(path)
	if err != nil {
		return Alerts{}, err
	}
	var f struct {
		Alerts Alerts `toml:"alerts"`
	}
	dec := toml.NewDecoder(bytes.NewReader(src))
	dec.DisallowUnknownFields()
	var errs Errors
	if err := dec.Decode(&f); err != nil {
		var strict *toml.StrictMissingError
		if !errors.As(err, &strict) {
			return Alerts{}, indexTargets(src, decodeErrors(path, err))
		}
		for _, e := range indexTargets(src, decodeErrors(path, err)) {
			if e.Key == "alerts" || strings.HasPrefix(e.Key, "alerts.") {
				errs = append(errs, e)
			}
		}
	}
	f.Alerts.markSet(src)
	fromEnv, envErrs := applyEnvTo(&f, environ)
	errs = append(errs, envErrs...)
	f.Alerts.fillDefaults()
	f.Alerts.validate(func(key, format string, args ...any) {
		errs = append(errs, &Error{Key: key, Msg: fmt.Sprintf(format, args...)})
	})
	errs = append(errs, f.Alerts.loadSecrets(LoadOptions{})...)
	if len(errs) > 0 {
		(&origin{name: path, src: src, fromEnv: fromEnv}).place(errs)
		return Alerts{}, errs
	}
	return f.Alerts, nil
}
