package config

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// webhook is one good [[alerts.target]], lines 6 to 10 after minimal.
const webhook = `[[alerts.target]]
kind = "webhook"
label = "店長のスマホ"
url = "https://hooks.example.com/T0/B0/tok3n"
secret_file = "/etc/mamoru/webhook.secret"
`

// Each error names the file, the line and the target, counted from 1.
func TestAlertErrors(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string // each error line, in order
	}{
		{"unknown kind", strings.Replace(webhook, `"webhook"`, `"sms"`, 1),
			[]string{`m.toml:7: 'alerts.target[1].kind' must be one of ["webhook" "ntfy" "mqtt" "email" "line"] (got "sms")`}},
		{"no kind", "[[alerts.target]]\nlabel = \"x\"\n",
			[]string{`m.toml:6: 'alerts.target[1].kind' is required: one of ["webhook" "ntfy" "mqtt" "email" "line"]`}},
		{"key of another kind", webhook + "topic = \"abc\"\nto = [\"a@example.com\"]\n",
			[]string{
				`m.toml:11: 'alerts.target[1].topic' is not a key of a "webhook" target, which takes kind, label, events, language, url, allow_plain_http, ca_file, format, secret_file`,
				`m.toml:12: 'alerts.target[1].to' is not a key of a "webhook" target, which takes kind, label, events, language, url, allow_plain_http, ca_file, format, secret_file`,
			}},
		// A key of another kind set to its zero value is still refused.
		{"zero key of another kind", webhook + "ha_discovery = false\n",
			[]string{`m.toml:11: 'alerts.target[1].ha_discovery' is not a key of a "webhook" target`}},
		{"unknown key", webhook + "colour = \"red\"\n",
			[]string{`m.toml:11: 'alerts.target[1].colour' is not a known key: an [[alerts.target]] takes kind, label, events, language, url, allow_plain_http, ca_file, format, secret_file, topic, token_file, username, password_file, topic_prefix, ha_discovery, discovery_prefix, from, to, each kind some of them`}},
		{"unknown key in the second", webhook + "[[alerts.target]]\nkind = \"ntfy\"\nlabel = \"b\"\ntopik = \"x\"\n",
			[]string{
				`m.toml:11: 'alerts.target[2].topic' is required`,
				`m.toml:14: 'alerts.target[2].topik' is not a known key`,
			}},
		{"wrong type", webhook + "[[alerts.target]]\nkind = \"email\"\nto = \"a@example.com\"\n",
			[]string{`m.toml:13: 'alerts.target[2].to' must be of type array of strings, not string`}},
		{"url of the wrong type", strings.Replace(webhook, `"https://hooks.example.com/T0/B0/tok3n"`, "443", 1),
			[]string{`m.toml:9: 'alerts.target[1].url' must be of type string, not integer`}},
		{"target not a table", "[alerts]\ntarget = 3\n",
			[]string{`m.toml:7: 'alerts.target' must be of type array of tables ([[alerts.target]]), not integer`}},
		{"no label", strings.Replace(webhook, "label = \"店長のスマホ\"\n", "", 1),
			[]string{`m.toml:6: 'alerts.target[1].label' is required: who this is, as the operating rules will name them (e.g. "店長のスマホ")`}},
		{"bad label", strings.Replace(webhook, "店長のスマホ", `店長\u0007`, 1),
			[]string{`m.toml:8: 'alerts.target[1].label' may hold only visible characters and spaces: U+0007 is not one (got "店長\a")`}},
		{"duplicate label", webhook + strings.Replace(webhook, "店長のスマホ", "店長のスマホ", 1),
			[]string{`m.toml:13: 'alerts.target[2].label' "店長のスマホ" is already the label of alerts.target[1]: each target needs its own, for the rules to say who is alerted`}},
		{"duplicate label, other case", strings.Replace(webhook, "店長のスマホ", "Manager", 1) + strings.Replace(webhook, "店長のスマホ", "manager", 1),
			[]string{`m.toml:13: 'alerts.target[2].label' "manager" is already the label of alerts.target[1]`}},
		{"event matching none", webhook + "events = [\"incident.*\", \"incident.start\"]\n",
			[]string{`m.toml:11: 'alerts.target[1].events' pattern "incident.start" matches no event; the events are ["incident.started" "incident.extended"`}},
		{"malformed pattern", webhook + "events = [\"incident.[\"]\n",
			[]string{`m.toml:11: 'alerts.target[1].events' has a malformed pattern "incident.[": syntax error in pattern`}},
		{"no events", webhook + "events = []\n",
			[]string{`m.toml:11: 'alerts.target[1].events' lists no event: leave the key out for the default ["incident.started" "press.refused" "device.*" "sound.raised"]`}},
		{"language", webhook + "language = \"fr\"\n",
			[]string{`m.toml:11: 'alerts.target[1].language' must be "ja" or "en" (got "fr")`}},

		{"webhook plain http", strings.Replace(webhook, "https://hooks", "http://hooks", 1),
			[]string{`m.toml:9: 'alerts.target[1].url' is plain http:// to "hooks.example.com", which is not this machine: every alert would cross the network readable; use https://, or set 'allow_plain_http' = true on this target for a network you trust`}},
		{"webhook without scheme", strings.Replace(webhook, "https://", "", 1),
			[]string{`m.toml:9: 'alerts.target[1].url' must be an absolute URL such as "https://host/path" (the URL may hold a token: it is not repeated here)`}},
		{"webhook other scheme", strings.Replace(webhook, "https://", "ftp://", 1),
			[]string{`m.toml:9: 'alerts.target[1].url' must start with "https://" or "http://" (got "ftp://")`}},
		{"webhook with a password", strings.Replace(webhook, "https://", "https://u:tok3n@", 1),
			[]string{`m.toml:9: 'alerts.target[1].url' must not hold a user name or password: a key file holds secrets`}},
		{"webhook with a fragment", strings.Replace(webhook, "tok3n", "tok3n#x", 1),
			[]string{`m.toml:9: 'alerts.target[1].url' must not have a fragment ('#…')`}},
		{"webhook without url", strings.Replace(webhook, "url = \"https://hooks.example.com/T0/B0/tok3n\"\n", "", 1),
			[]string{`m.toml:6: 'alerts.target[1].url' is required: the address alerts are sent to`}},
		{"standard webhook without secret", strings.Replace(webhook, "secret_file = \"/etc/mamoru/webhook.secret\"\n", "", 1),
			[]string{`m.toml:6: 'alerts.target[1].secret_file' is required for a webhook of format "standard"`}},
		{"slack webhook with secret", webhook + "format = \"slack\"\n",
			[]string{`m.toml:10: 'alerts.target[1].secret_file' is for format "standard": a "slack" webhook is not signed, its URL is its secret`}},
		{"webhook format", webhook + "format = \"teams\"\n",
			[]string{`m.toml:11: 'alerts.target[1].format' must be "standard" (JSON signed per Standard Webhooks) or "slack" (Slack-style text) (got "teams")`}},

		{"ntfy without topic", "[[alerts.target]]\nkind = \"ntfy\"\nlabel = \"n\"\n",
			[]string{`m.toml:6: 'alerts.target[1].topic' is required: the ntfy topic the managers' phones subscribe to`}},
		{"ntfy short open topic", "[[alerts.target]]\nkind = \"ntfy\"\nlabel = \"n\"\ntopic = \"shop1\"\n",
			[]string{`m.toml:9: 'alerts.target[1].topic' is 5 characters long, with no 'token_file': anyone who guesses a topic reads its alerts`}},
		{"ntfy bad topic", "[[alerts.target]]\nkind = \"ntfy\"\nlabel = \"n\"\ntopic = \"shop/1\"\n",
			[]string{`m.toml:9: 'alerts.target[1].topic' must be 1 to 64 letters, digits, '_' or '-' (the topic is a secret: it is not repeated here)`}},
		{"ntfy topic in the url", "[[alerts.target]]\nkind = \"ntfy\"\nlabel = \"n\"\nurl = \"https://ntfy.sh/shop1-Zq8rT2kd7VwX\"\ntopic = \"shop1-Zq8rT2kd7VwX\"\n",
			[]string{`m.toml:9: 'alerts.target[1].url' must be the ntfy server only, like "https://ntfy.sh", with the topic in 'topic'`}},
		{"ntfy with a query", "[[alerts.target]]\nkind = \"ntfy\"\nlabel = \"n\"\nurl = \"https://ntfy.sh/?auth=Zq8rT2kd7VwX\"\ntopic = \"shop1-Zq8rT2kd7VwX\"\n",
			[]string{`m.toml:9: 'alerts.target[1].url' must be the ntfy server only`}},
		{"line url with a path", "[[alerts.target]]\nkind = \"line\"\nlabel = \"グループ\"\nurl = \"https://api.line.me/v2/bot/message/push\"\ntoken_file = \"/t\"\nto = [\"C0123456789abcdef0123456789abcdef\"]\n",
			[]string{`m.toml:9: 'alerts.target[1].url' must be the API server only, like "https://api.line.me"`}},
		{"line to this machine", "[[alerts.target]]\nkind = \"line\"\nlabel = \"グループ\"\nurl = \"http://127.0.0.1:8443\"\ntoken_file = \"/t\"\nto = [\"C0123456789abcdef0123456789abcdef\"]\nevents = [\"sound.raised\"]\n[[alerts.target]]\n",
			[]string{`m.toml:13: 'alerts.target[2].kind' is required`, `m.toml:13: 'alerts.target[2].label' is required`}},
		{"ntfy plain http", "[[alerts.target]]\nkind = \"ntfy\"\nlabel = \"n\"\nurl = \"http://192.168.1.5\"\ntopic = \"shop1-Zq8rT2kd7VwX\"\n",
			[]string{`m.toml:9: 'alerts.target[1].url' is plain http:// to "192.168.1.5", which is not this machine`}},

		{"mqtt other scheme", "[[alerts.target]]\nkind = \"mqtt\"\nlabel = \"ha\"\nurl = \"tcp://ha.local:1883\"\n",
			[]string{`m.toml:9: 'alerts.target[1].url' must start with "mqtt://" or "mqtts://" (got "tcp://")`}},
		{"mqtt without port", "[[alerts.target]]\nkind = \"mqtt\"\nlabel = \"ha\"\nurl = \"mqtts://ha.local\"\n",
			[]string{`m.toml:9: 'alerts.target[1].url' must name the port, host:port (got port "")`}},
		{"mqtt with a path", "[[alerts.target]]\nkind = \"mqtt\"\nlabel = \"ha\"\nurl = \"mqtts://ha.local:8883/x\"\n",
			[]string{`m.toml:9: 'alerts.target[1].url' must be "mqtt://" or "mqtts://" and host:port, with nothing after`}},
		{"mqtt plain to another machine", "[[alerts.target]]\nkind = \"mqtt\"\nlabel = \"ha\"\nurl = \"mqtt://ha.local:1883\"\n",
			[]string{`m.toml:9: 'alerts.target[1].url' is plain mqtt:// to "ha.local:1883", which is not this machine: every alert would cross the network readable; use mqtts://, or set 'allow_plain_http' = true`}},
		{"discovery prefix without discovery", "[[alerts.target]]\nkind = \"mqtt\"\nlabel = \"ha\"\nurl = \"mqtts://ha.local:8883\"\nha_discovery = false\ndiscovery_prefix = \"ha\"\n",
			[]string{`m.toml:11: 'alerts.target[1].discovery_prefix' is set but 'ha_discovery' = false, so nothing is published under it`}},
		{"bad discovery prefix", "[[alerts.target]]\nkind = \"mqtt\"\nlabel = \"ha\"\nurl = \"mqtts://ha.local:8883\"\ndiscovery_prefix = \"home/#\"\n",
			[]string{`m.toml:10: 'alerts.target[1].discovery_prefix' must be the discovery prefix Home Assistant's MQTT integration uses, "homeassistant" unless it was changed: topic levels of letters, digits, '_' or '-' (got "home/#")`}},
		{"ca file over plain mqtt", "[[alerts.target]]\nkind = \"mqtt\"\nlabel = \"ha\"\nurl = \"mqtt://127.0.0.1:1883\"\nca_file = \"/etc/mamoru/ca.pem\"\n",
			[]string{`m.toml:10: 'alerts.target[1].ca_file' is set but 'url' is plain mqtt://, which uses no certificate: use mqtts://, or remove 'ca_file'`}},
		{"ca file over plain http", strings.Replace(webhook, "https://hooks.example.com", "http://localhost:8080", 1) + "ca_file = \"/etc/mamoru/ca.pem\"\n",
			[]string{`m.toml:11: 'alerts.target[1].ca_file' is set but 'url' is plain http://, which uses no certificate: use https://, or remove 'ca_file'`}},
		{"ca file of LINE", "[[alerts.target]]\nkind = \"line\"\nlabel = \"l\"\ntoken_file = \"/t\"\nto = [\"U0123456789abcdef0123456789abcdef\"]\nca_file = \"/etc/mamoru/ca.pem\"\n",
			[]string{`m.toml:11: 'alerts.target[1].ca_file' is not a key of a "line" target`}},
		{"mqtt without url", "[[alerts.target]]\nkind = \"mqtt\"\nlabel = \"ha\"\n",
			[]string{`m.toml:6: 'alerts.target[1].url' is required: the server, like "mqtts://host:8883"`}},
		{"mqtt password without user", "[[alerts.target]]\nkind = \"mqtt\"\nlabel = \"ha\"\nurl = \"mqtts://ha.local:8883\"\npassword_file = \"/etc/mamoru/mqtt.pass\"\n",
			[]string{`m.toml:10: 'alerts.target[1].password_file' needs 'username' beside it`}},
		{"mqtt wildcard prefix", "[[alerts.target]]\nkind = \"mqtt\"\nlabel = \"ha\"\nurl = \"mqtts://ha.local:8883\"\ntopic_prefix = \"shop/#\"\n",
			[]string{`m.toml:10: 'alerts.target[1].topic_prefix' must be MQTT topic levels of letters, digits, '_' or '-', joined by '/'`}},

		{"email", "[[alerts.target]]\nkind = \"email\"\nlabel = \"本部\"\nurl = \"smtp://mail.example.jp\"\nusername = \"u\"\nfrom = \"mamoru\"\nto = [\"a@example.jp\", \"b@\"]\n",
			[]string{
				`m.toml:9: 'alerts.target[1].url' must name the port, host:port (got port "")`,
				`m.toml:10: 'alerts.target[1].username' and 'password_file' go together: the SMTP server's login, or neither for a server that takes mail without one`,
				`m.toml:11: 'alerts.target[1].from' must be an e-mail address like "manager@shop.example.jp" or "店長 <manager@shop.example.jp>" (got "mamoru": mail: missing '@' or angle-addr)`,
				`m.toml:12: 'alerts.target[1].to' entry 2: must be an e-mail address`,
			}},
		{"email header injection", "[[alerts.target]]\nkind = \"email\"\nlabel = \"本部\"\nurl = \"smtps://mail.example.jp:465\"\nfrom = \"m@example.jp\"\nto = [\"a@example.jp\\r\\nBcc: x@evil.example\"]\n",
			[]string{`m.toml:11: 'alerts.target[1].to' entry 1: must be one e-mail address on one line (got "a@example.jp\r\nBcc: x@evil.example")`}},
		{"email without to", "[[alerts.target]]\nkind = \"email\"\nlabel = \"本部\"\nurl = \"smtps://mail.example.jp:465\"\nfrom = \"m@example.jp\"\n",
			[]string{`m.toml:6: 'alerts.target[1].to' is required: the list of addresses to send to`}},
		{"email plain scheme", "[[alerts.target]]\nkind = \"email\"\nlabel = \"本部\"\nurl = \"http://mail.example.jp:25\"\nfrom = \"m@example.jp\"\nto = [\"a@example.jp\"]\n",
			[]string{`m.toml:9: 'alerts.target[1].url' must start with "smtp://" or "smtps://" (got "http://")`}},

		{"line", "[[alerts.target]]\nkind = \"line\"\nlabel = \"グループ\"\nto = [\"U123\"]\n",
			[]string{
				`m.toml:6: 'alerts.target[1].token_file' is required: the file (mode 0600 or 0400) holding the channel access token of the LINE Official Account`,
				`m.toml:9: 'alerts.target[1].to' entry 1: must be a LINE user, group or room id, 'U', 'C' or 'R' and 32 hex digits (got "U123")`,
			}},
		{"line plain http", "[[alerts.target]]\nkind = \"line\"\nlabel = \"グループ\"\nurl = \"http://api.line.me\"\ntoken_file = \"/t\"\nto = [\"C0123456789abcdef0123456789abcdef\"]\n",
			[]string{`m.toml:9: 'alerts.target[1].url' must be https, or plain http to this machine only (for a test server)`}},

		{"console relative", "[alerts]\nconsole_url = \"console.example.com\"\n",
			[]string{`m.toml:7: 'alerts.console_url' must be the console's absolute http(s) URL, like "https://console.example.com" (got "console.example.com")`}},
		{"console query", "[alerts]\nconsole_url = \"https://console.example.com/?shop=1\"\n",
			[]string{`m.toml:7: 'alerts.console_url' must not have a query or fragment: alerts link to <console_url>/incidents/<store>/<device>/<id> (got "https://console.example.com/?shop=1")`}},
		{"console fragment", "[alerts]\nconsole_url = \"https://console.example.com/#\"\n",
			[]string{`m.toml:7: 'alerts.console_url' must not have a query or fragment`}},
		{"console scheme", "[alerts]\nconsole_url = \"ftp://console.example.com\"\n",
			[]string{`m.toml:7: 'alerts.console_url' must be the console's absolute http(s) URL`}},

		// Everything at once, in file order, each target named.
		{"everything", "[alerts]\nconsole_url = \"x\"\n" + webhook + "language = \"de\"\n" +
			"[[alerts.target]]\nkind = \"ntfy\"\nlabel = \"店長のスマホ\"\nevents = [\"door.*\"]\nformat = \"slack\"\n",
			[]string{
				`m.toml:7: 'alerts.console_url' must be the console's absolute http(s) URL`,
				`m.toml:13: 'alerts.target[1].language' must be "ja" or "en" (got "de")`,
				`m.toml:14: 'alerts.target[2].topic' is required`,
				`m.toml:16: 'alerts.target[2].label' "店長のスマホ" is already the label of alerts.target[1]`,
				`m.toml:17: 'alerts.target[2].events' pattern "door.*" matches no event`,
				`m.toml:18: 'alerts.target[2].format' is not a key of a "ntfy" target`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("m.toml", []byte(minimal+tt.src), nil)
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			got := strings.Split(err.Error(), "\n")
			if len(got) != len(tt.want) {
				t.Fatalf("got\n%v\nwant\n%s", err, strings.Join(tt.want, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("error %d: got\n%s\nwant it to start\n%s", i+1, got[i], tt.want[i])
				}
			}
			for _, secret := range []string{"tok3n", "Zq8rT2kd7VwX", "shop1\"", "shop/1"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error shows a secret %q: %v", secret, err)
				}
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("errors.As(*Error) failed for %T", err)
			}
		})
	}
}

// The kinds' defaults fill what a table leaves out, and only that.
func TestAlertDefaults(t *testing.T) {
	src := minimal + `[alerts]
console_url = "https://console.example.com/"
[[alerts.target]]
kind = "ntfy"
label = "店長のスマホ"
topic = "shop1-Zq8rT2kd7VwX"
[[alerts.target]]
kind = "mqtt"
label = "Home Assistant"
url = "mqtt://127.0.0.1:1883"
events = ["*"]
language = "en"
[[alerts.target]]
kind = "mqtt"
label = "NAS"
url = "mqtts://nas.shop.lan:8883"
topic_prefix = "shop1/alerts"
ha_discovery = false
[[alerts.target]]
kind = "webhook"
label = "Slack #counter"
url = "https://hooks.slack.com/services/T0/B0/tok3n"
format = "slack"
[[alerts.target]]
kind = "line"
label = "店舗グループ"
token_file = "/etc/mamoru/line.token"
to = ["C0123456789abcdef0123456789abcdef"]
[[alerts.target]]
kind = "email"
label = "本部"
url = "smtps://smtp.example.jp:465"
username = "mamoru"
password_file = "/etc/mamoru/smtp.pass"
from = "まもる <mamoru@shop.example.jp>"
to = ["manager@shop.example.jp", "hq@example.jp"]
`
	c, err := Parse("m.toml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := c.Alerts.Targets
	if len(ts) != 6 {
		t.Fatalf("%d targets, want 6", len(ts))
	}
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"ntfy url", ts[0].URL.Reveal(), DefaultNtfyURL},
		{"ntfy events", ts[0].Events, DefaultEvents},
		{"ntfy language", ts[0].Language, "ja"},
		{"ntfy topic prefix", ts[0].TopicPrefix, ""},
		{"mqtt events", ts[1].Events, []string{"*"}},
		{"mqtt language", ts[1].Language, "en"},
		{"mqtt topic prefix", ts[1].TopicPrefix, DefaultTopicPrefix},
		{"mqtt discovery", ts[1].HADiscovery, true},
		{"mqtt set prefix", ts[2].TopicPrefix, "shop1/alerts"},
		{"mqtt discovery off", ts[2].HADiscovery, false},
		{"webhook format", ts[3].Format, FormatSlack},
		{"line url", ts[4].URL.Reveal(), DefaultLineURL},
		{"line format", ts[4].Format, ""},
		{"email to", ts[5].To, []string{"manager@shop.example.jp", "hq@example.jp"}},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate of a parsed configuration: %v", err)
	}
	// The default is a copy: one target's events are not another's.
	ts[0].Events[0] = "changed"
	if DefaultEvents[0] != "incident.started" {
		t.Errorf("changing a target's events changed DefaultEvents: %q", DefaultEvents)
	}
	if got, want := c.Alerts.IncidentLink("shop-1", "counter-1", "20261123-154502-000042"), "https://console.example.com/incidents/shop-1/counter-1/20261123-154502-000042"; got != want {
		t.Errorf("IncidentLink = %q, want %q", got, want)
	}
	if got := (Alerts{}).IncidentLink("s", "d", "i"); got != "" {
		t.Errorf("IncidentLink with no console = %q, want \"\"", got)
	}
}

func TestTargetWants(t *testing.T) {
	tg := Target{Events: DefaultEvents}
	for name, want := range map[string]bool{
		"incident.started": true, "press.refused": true, "device.fault": true, "device.offline": true,
		"incident.saved": false, "spool.full": false, "devicefault": false,
	} {
		if got := tg.Wants(name); got != want {
			t.Errorf("default events: Wants(%q) = %v, want %v", name, got, want)
		}
	}
	if (Target{}).Wants("incident.started") {
		t.Error("a target with no events wants incident.started")
	}
}

// Arrays of tables are set in the file only: any variable that tries
// is refused, naming itself, never half-applied.
func TestAlertTargetsNotFromEnvironment(t *testing.T) {
	for _, v := range []string{"MAMORU_ALERTS_TARGET", "MAMORU_ALERTS_TARGET_1_URL", "MAMORU_ALERTS_TARGET_URL"} {
		env := []string{v + "=https://hooks.example.com/x"}
		c, err := Parse("m.toml", []byte(minimal+webhook), env)
		want := v + ": 'alerts.target' cannot be set by the environment: the [[alerts.target]] tables are set in the configuration file only; unset " + v
		if err == nil || err.Error() != want {
			t.Errorf("%s: got %v (targets %v), want\n%s", v, err, c.Alerts.Targets, want)
		}
	}
	// The table's plain keys are set as any other.
	c, err := Parse("m.toml", []byte(minimal+webhook), []string{"MAMORU_ALERTS_CONSOLE_URL=https://console.example.com"})
	if err != nil || c.Alerts.ConsoleURL != "https://console.example.com" || len(c.Alerts.Targets) != 1 {
		t.Errorf("MAMORU_ALERTS_CONSOLE_URL: %v, %+v", err, c.Alerts)
	}
	_, err = Parse("m.toml", []byte(minimal), []string{"MAMORU_ALERTS_CONSOLE_URL=console"})
	if err == nil || !strings.HasPrefix(err.Error(), "MAMORU_ALERTS_CONSOLE_URL: 'alerts.console_url' must be") {
		t.Errorf("a bad MAMORU_ALERTS_CONSOLE_URL: %v", err)
	}
}

// Every key of Target is taken by some kind, and every key a kind
// takes is one of Target's: the table of keys cannot drift from the type.
func TestTargetKeysMatchTheType(t *testing.T) {
	fields := keysOfAnyKind()
	var taken []string
	for _, kind := range Kinds {
		taken = append(taken, targetKeys[kind]...)
	}
	taken = append(taken, commonKeys...)
	for _, f := range fields {
		if !slices.Contains(taken, f) {
			t.Errorf("Target's key %q is taken by no kind", f)
		}
	}
	for _, k := range taken {
		if !slices.Contains(fields, k) {
			t.Errorf("key %q is taken by a kind but is not a field of Target", k)
		}
	}
	if len(targetKeys) != len(Kinds) {
		t.Errorf("targetKeys has %d kinds, Kinds %d", len(targetKeys), len(Kinds))
	}
}

// A Target built by hand is judged by the keys it sets to a value.
func TestTargetByHand(t *testing.T) {
	c := Default()
	c.Device.ID, c.Device.Store = "counter-1", "shibuya"
	c.Alerts.Targets = []Target{{Kind: KindWebhook, Label: "hook", Events: []string{"*"}, Language: "en",
		URL: "http://127.0.0.1:8080/hook", Format: FormatStandard, SecretFile: "/s", Topic: "x"}}
	err := c.Validate()
	if want := "'alerts.target[1].topic' is not a key of a \"webhook\" target"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got %v, want %s", err, want)
	}
	c.Alerts.Targets[0].Topic = ""
	if err := c.Validate(); err != nil {
		t.Errorf("a webhook to this machine built by hand: %v", err)
	}
}

// The secrets of the targets' files are read by LoadSecrets alone, from
// files their owner alone may read, and never show.
func TestAlertSecrets(t *testing.T) {
	whsec := keyFile(t, 0o600, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n")
	password := keyFile(t, 0o400, "pa55word\n")
	token := keyFile(t, 0o600, "tk_ntfyt0ken\n")
	src := func(secret, pass, tok string) string {
		return minimal + fmt.Sprintf(`[[alerts.target]]
kind = "webhook"
label = "hook"
url = "https://hooks.example.com/T0/B0/tok3n"
secret_file = %q
[[alerts.target]]
kind = "email"
label = "本部"
url = "smtps://smtp.example.jp:465"
username = "mamoru"
password_file = %q
from = "mamoru@shop.example.jp"
to = ["manager@shop.example.jp"]
[[alerts.target]]
kind = "ntfy"
label = "店長のスマホ"
topic = "shop1-Zq8rT2kd7VwX"
token_file = %q
`, secret, pass, tok)
	}
	c, err := Parse("m.toml", []byte(src(whsec, password, token)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if ts := c.Alerts.Targets; ts[0].Secret != "" || ts[1].Password != "" || ts[2].Token != "" {
		t.Error("Parse read a target's secret file; only LoadSecrets may")
	}
	if err := c.LoadSecrets(nil); err != nil {
		t.Fatalf("LoadSecrets: %v", err)
	}
	ts := c.Alerts.Targets
	if ts[0].Secret.Reveal() != "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" || len(ts[0].WebhookKey()) != 24 ||
		ts[1].Password.Reveal() != "pa55word" || ts[2].Token.Reveal() != "tk_ntfyt0ken" {
		t.Errorf("read secret %q (key of %d bytes), password %q, token %q", ts[0].Secret.Reveal(), len(ts[0].WebhookKey()), ts[1].Password.Reveal(), ts[2].Token.Reveal())
	}

	// None of them, nor the URL's token nor the topic, shows however c
	// or a target is printed or logged.
	var logs bytes.Buffer
	text := slog.New(slog.NewTextHandler(&logs, nil))
	jsonLog := slog.New(slog.NewJSONHandler(&logs, nil))
	for _, tg := range ts {
		text.Info("alert", "target", tg, "url", tg.URL, "topic", tg.Topic, "secret", tg.Secret)
		jsonLog.Info("alert", "target", tg, "url", tg.URL, "topic", tg.Topic, "token", tg.Token)
	}
	shown := fmt.Sprintf("%v %+v %#v %s %v %+v %#v", c, c, c, ts[2], ts[2], ts[1], ts[0]) + logs.String()
	for _, secret := range []string{"MfKQ9r8G", "pa55word", "ntfyt0ken", "tok3n", "Zq8rT2kd7VwX"} {
		if strings.Contains(shown, secret) {
			t.Errorf("printing or logging the configuration shows %q:\n%s", secret, shown)
		}
	}
	if got, want := ts[2].String(), "店長のスマホ (ntfy)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if !strings.Contains(logs.String(), `target.kind=ntfy target.label=店長のスマホ`) || !strings.Contains(logs.String(), `"target":{"kind":"ntfy","label":"店長のスマホ"}`) {
		t.Errorf("the logs do not name the target by kind and label:\n%s", logs.String())
	}

	loose := keyFile(t, 0o644, "pa55word\n")
	notWhsec := keyFile(t, 0o600, "hunter2\n")
	shortWhsec := keyFile(t, 0o600, "whsec_c2hvcnQ=\n")
	spaced := keyFile(t, 0o600, "tk_a tk_b\n")
	empty := keyFile(t, 0o600, "\n")
	for _, tc := range []struct {
		name              string
		secret, pass, tok string
		want              []string
	}{
		{"loose password", whsec, loose, token,
			[]string{fmt.Sprintf("m.toml:16: 'alerts.target[2].password_file' %s must have mode 0600 or 0400 so only its owner can read it (it has 0644); run: chmod 600 %s", loose, loose)}},
		{"missing token", whsec, password, "/nonexistent/token",
			[]string{"m.toml:23: 'alerts.target[3].token_file' cannot be read: no such file or directory"}},
		{"not a Standard Webhooks secret", notWhsec, password, token,
			[]string{fmt.Sprintf(`m.toml:10: 'alerts.target[1].secret_file' %s must hold a Standard Webhooks secret, "whsec_" and base64 of 24 to 64 random bytes`, notWhsec)}},
		{"short secret", shortWhsec, password, token,
			[]string{fmt.Sprintf(`m.toml:10: 'alerts.target[1].secret_file' %s must hold "whsec_" and base64 of 24 to 64 random bytes, which it does not`, shortWhsec)}},
		{"two tokens", whsec, password, spaced,
			[]string{fmt.Sprintf("m.toml:23: 'alerts.target[3].token_file' %s must hold the token alone, on one line", spaced)}},
		{"everything", empty, loose, "/nonexistent/token",
			[]string{
				fmt.Sprintf("m.toml:10: 'alerts.target[1].secret_file' %s is empty", empty),
				"m.toml:16: 'alerts.target[2].password_file'",
				"m.toml:23: 'alerts.target[3].token_file' cannot be read",
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("m.toml", []byte(src(tc.secret, tc.pass, tc.tok)), nil)
			if err != nil {
				t.Fatalf("Parse: %v; want no error until LoadSecrets", err)
			}
			err = c.LoadSecrets(nil)
			if err == nil {
				t.Fatal("LoadSecrets succeeded")
			}
			got := strings.Split(err.Error(), "\n")
			if len(got) != len(tc.want) {
				t.Fatalf("got\n%v\nwant\n%s", err, strings.Join(tc.want, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tc.want[i]) {
					t.Errorf("error %d: got\n%s\nwant it to start\n%s", i+1, got[i], tc.want[i])
				}
			}
			for _, secret := range []string{"hunter2", "c2hvcnQ", "tk_a", "pa55word"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error shows the secret %q: %v", secret, err)
				}
			}
		})
	}
}

// FuzzAlerts parses any [[alerts.target]] tables: an error is always a
// *Error, a configuration it accepts Validate accepts too, and no target
// prints its URL or topic.
func FuzzAlerts(f *testing.F) {
	f.Add(webhook)
	f.Add("[alerts]\nconsole_url = \"https://c.example.com\"\n[[alerts.target]]\nkind = \"ntfy\"\nlabel = \"n\"\ntopic = \"shop1-Zq8rT2kd7VwX\"\nevents = [\"*\"]\n")
	f.Add("[[alerts.target]]\nkind = \"mqtt\"\nlabel = \"ha\"\nurl = \"mqtt://[::1]:1883\"\nha_discovery = false\n")
	f.Add("[[alerts.target]]\nkind = \"email\"\nlabel = \"m\"\nurl = \"smtp://h:587\"\nfrom = \"a@b.c\"\nto = [\"d@e.f\"]\n[[alerts.target]]\n")
	f.Add("[[alerts.target]]\nkind = \"line\"\nlabel = \"l\"\ntoken_file = \"/t\"\nto = [\"U0123456789abcdef0123456789abcdef\"]\n")
	f.Add("alerts.target = [{kind = \"webhook\"}]\n")
	f.Fuzz(func(t *testing.T, alerts string) {
		c, err := Parse("f.toml", []byte(minimal+alerts), nil)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not a *config.Error", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a configuration that Validate rejects: %v", err)
		}
		for _, tg := range c.Alerts.Targets {
			for _, secret := range []string{tg.URL.Reveal(), tg.Topic.Reveal()} {
				if len(secret) > 8 && strings.Contains(fmt.Sprintf("%v %+v", tg, c), secret) && !strings.Contains(tg.Label, secret) {
					t.Fatalf("printing target %v shows its URL or topic", tg)
				}
			}
		}
	})
}

// A manager's machine reads the [alerts] table of its own file, with the
// device's rules and its own secrets, and no other table.
func TestLoadAlerts(t *testing.T) {
	token := keyFile(t, 0o600, "tk_ntfyt0ken\n")
	manager := fmt.Sprintf(`[storage]
endpoint = "s3.example.com"
bucket = "clips"
[[keyring]]
store = "shop-1"
device = "counter-1"
public_key = "mamoru-ed25519:…"
[alerts]
console_url = "https://console.example.com"
[[alerts.target]]
kind = "ntfy"
label = "店長のスマホ"
topic = "shop1-Zq8rT2kd7VwX"
token_file = %q
events = ["device.offline", "device.online"]
`, token)
	a, err := LoadAlerts(writeFile(t, manager), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Targets) != 1 || a.Targets[0].Token.Reveal() != "tk_ntfyt0ken" || a.Targets[0].URL.Reveal() != DefaultNtfyURL ||
		!a.Targets[0].Wants("device.offline") || a.ConsoleURL != "https://console.example.com" {
		t.Errorf("LoadAlerts = %+v", a)
	}
	if a, err := LoadAlerts(writeFile(t, "[storage]\nbucket = \"clips\"\n"), nil); err != nil || len(a.Targets) != 0 {
		t.Errorf("LoadAlerts of a file without [alerts] = %+v, %v; want no target", a, err)
	}

	loose := keyFile(t, 0o644, "tk\n")
	path := writeFile(t, strings.Replace(manager, token, loose, 1)+"[[alerts.target]]\nkind = \"pager\"\nlabel = \"店長のスマホ\"\nbeep = true\n")
	_, err = LoadAlerts(path, []string{"MAMORU_ALERTS_TARGET_2_KIND=webhook"})
	want := []string{
		path + ":14: 'alerts.target[1].token_file' " + loose + " must have mode 0600 or 0400",
		path + ":17: 'alerts.target[2].kind' must be one of",
		path + ":18: 'alerts.target[2].label' \"店長のスマホ\" is already the label of alerts.target[1]",
		path + ":19: 'alerts.target[2].beep' is not a known key",
		"MAMORU_ALERTS_TARGET_2_KIND: 'alerts.target' cannot be set by the environment",
	}
	got := []string{}
	if err != nil {
		got = strings.Split(err.Error(), "\n")
	}
	if len(got) != len(want) {
		t.Fatalf("got\n%v\nwant\n%s", err, strings.Join(want, "\n"))
	}
	for i := range got {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("error %d: got\n%s\nwant it to start\n%s", i+1, got[i], want[i])
		}
	}
}

// A target's ca_file is read by LoadSecrets into its RootCAs; a file that
// is missing or holds no certificate is an error naming the key.
func TestTargetCAFile(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	ca := keyFile(t, 0o644, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))
	notPEM := keyFile(t, 0o644, "not a certificate\n")
	src := func(caFile string) string {
		return minimal + fmt.Sprintf("[[alerts.target]]\nkind = \"mqtt\"\nlabel = \"ha\"\nurl = \"mqtts://nas.local:8883\"\nca_file = %q\n", caFile)
	}
	c, err := Parse("m.toml", []byte(src(ca)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.LoadSecrets(nil); err != nil {
		t.Fatalf("LoadSecrets: %v", err)
	}
	roots := c.Alerts.Targets[0].RootCAs
	if roots == nil {
		t.Fatal("LoadSecrets left RootCAs nil")
	}
	if _, err := srv.Certificate().Verify(x509.VerifyOptions{Roots: roots, DNSName: "example.com"}); err != nil {
		t.Errorf("the CA in ca_file does not verify its own server's certificate: %v", err)
	}
	for _, tc := range []struct{ file, want string }{
		{"/nonexistent/ca.pem", "m.toml:10: 'alerts.target[1].ca_file' cannot be used: open /nonexistent/ca.pem: no such file or directory"},
		{notPEM, fmt.Sprintf("m.toml:10: 'alerts.target[1].ca_file' cannot be used: %s holds no PEM certificate", notPEM)},
	} {
		c, err := Parse("m.toml", []byte(src(tc.file)), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.LoadSecrets(nil); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("LoadSecrets with ca_file %s = %v, want %s", tc.file, err, tc.want)
		}
	}
}
