package alert

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"mamoru/clock"
)

// Target is where events go. Send delivers one event, or says why not: a
// *Permanent when retrying will not help, a *RetryLater when the receiver
// asked to wait, any other error when a retry may. A queue calls Send one
// event at a time. Errors never contain the target's URL, topic or token:
// they are secrets, and errors end up in logs and status.
type Target interface {
	Send(ctx context.Context, e Event) error
}

// Webhook formats.
const (
	FormatStandard = "standard" // the Event as JSON, signed per Standard Webhooks
	FormatSlack    = "slack"    // {"text": ...}, unsigned: Slack, Mattermost, Google Chat, Rocket.Chat
)

// WebhookOptions configure a Webhook.
type WebhookOptions struct {
	Label string // who this is, for errors ("店長のスマホ"); never the URL
	URL   string // http or https
	// Secret signs standard webhooks. In the spec's form, "whsec_" and
	// then base64, the key is the decoded bytes: what the Standard Webhooks
	// libraries take. Any other secret is a key as it is, its bytes (a
	// receiver's code must then use the same bytes). Surrounding white
	// space is dropped, so a secret file may end in a newline. The key
	// must be at least 16 bytes. The slack format is unsigned and takes no
	// secret.
	Secret   string
	Format   string // FormatStandard (the default) or FormatSlack
	Language string // the slack format's text: Japanese ("", "ja") or English ("en")
	// Client sends the requests; nil is a client with a 10 s timeout that
	// follows no redirect. Another should have a timeout too: a receiver
	// that never answers would hold up the queue.
	Client *http.Client
	// Wall reads the time for webhook-timestamp; nil is the system clock.
	Wall clock.Clock
}

// Webhook posts events to a URL: in the standard format, the Event's JSON
// with the Standard Webhooks headers
//
//	webhook-id: <the event's id, the same on every retry>
//	webhook-timestamp: <unix seconds when sent>
//	webhook-signature: v1,<base64 of HMAC-SHA256(key, id + "." + timestamp + "." + body)>
//
// so that a receiver rejects forgeries, and replays by the timestamp, and
// drops retries it already has by the id. In the slack format, the text a
// person reads, as {"text": "..."}.
type Webhook struct {
	opts WebhookOptions
	key  []byte
	kind string
}

// minKeyBytes is the shortest signing key taken: HMAC with a guessable key
// proves nothing.
const minKeyBytes = 16

// NewWebhook checks o and returns its webhook. Errors never repeat the
// URL or the secret.
func NewWebhook(o WebhookOptions) (*Webhook, error) {
	if o.Format == "" {
		o.Format = FormatStandard
	}
	if err := checkURL(o.URL); err != nil {
		return nil, err
	}
	if err := CheckLanguage(o.Language); err != nil {
		return nil, err
	}
	w := &Webhook{opts: o, kind: "webhook " + o.Label}
	switch o.Format {
	case FormatStandard:
		key, err := ParseSecret(o.Secret)
		if err != nil {
			return nil, err
		}
		w.key = key
	case FormatSlack:
		if o.Secret != "" {
			return nil, errors.New("alert: the slack format is not signed: a secret would protect nothing, leave it out")
		}
	default:
		return nil, fmt.Errorf("alert: webhook format %q: want %q or %q", o.Format, FormatStandard, FormatSlack)
	}
	return w, nil
}

// ParseSecret returns the signing key in a webhook secret (see
// WebhookOptions.Secret).
func ParseSecret(secret string) ([]byte, error) {
	secret = strings.TrimSpace(secret)
	if secret == "" {
		return nil, errors.New("alert: a standard webhook needs a secret to sign with")
	}
	key := []byte(secret)
	if rest, ok := strings.CutPrefix(secret, "whsec_"); ok {
		var err error
		if key, err = base64.StdEncoding.DecodeString(rest); err != nil {
			return nil, errors.New("alert: the secret begins with whsec_ but the rest is not base64")
		}
	}
	if len(key) < minKeyBytes {
		return nil, fmt.Errorf("alert: the secret's key is %d bytes, want at least %d ('whsec_' and 'openssl rand -base64 32' make a good one)", len(key), minKeyBytes)
	}
	return key, nil
}

// Send posts e.
func (w *Webhook) Send(ctx context.Context, e Event) error {
	now := clock.Or(w.opts.Wall).Now()
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	var body []byte
	var err error
	if w.opts.Format == FormatSlack {
		m := Render(e, w.opts.Language)
		body, err = json.Marshal(struct {
			Text string `json:"text"`
		}{m.Title + "\n" + m.Body})
	} else {
		body, err = json.Marshal(e)
		ts := strconv.FormatInt(now.Unix(), 10)
		h.Set("webhook-id", e.ID)
		h.Set("webhook-timestamp", ts)
		h.Set("webhook-signature", "v1,"+sign(w.key, e.ID, ts, body))
	}
	if err != nil {
		return &Permanent{Fix: "the event cannot be encoded", Err: fmt.Errorf("alert: %s: %w", w.kind, err)}
	}
	return post(ctx, w.opts.Client, w.opts.URL, h, body, w.kind, nil, now)
}

// sign is the Standard Webhooks signature of a message, without "v1,".
func sign(key []byte, id, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + timestamp + "."))
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// checkURL reports whether raw is an absolute http or https URL, without
// repeating it: it may hold a token.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("alert: the url is not an http:// or https:// URL with a host")
	}
	return nil
}

// defaultClient is what targets without a Client use. Its timeout is the
// network's, real time: the receiver is real. It follows no redirect: on
// a 301, 302 or 303 a client posts nothing and asks with GET instead, and
// a receiver that answers that with 200 would pass for one that took the
// event.
var defaultClient = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// ClientFor is the client of a target whose server's certificate must
// chain to roots (the system's and a private CA's, config.CertPool):
// defaultClient's timeout and redirect rule, and those authorities. nil
// roots is defaultClient.
func ClientFor(roots *x509.CertPool) *http.Client {
	if roots == nil {
		return defaultClient
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	c := *defaultClient
	c.Transport = tr
	return &c
}

// post sends body to u with header h and classifies the result (see
// checkResponse, checkTransport).
func post(ctx context.Context, client *http.Client, u string, h http.Header, body []byte, kind string, kindFixes map[int]string, now time.Time) error {
	resp, _, err := request(ctx, client, u, h, body, kind)
	if err != nil {
		return err
	}
	return checkResponse(resp, kind, kindFixes, now)
}

// maxAnswer bounds what is read of a receiver's answer.
const maxAnswer = 4096

// request POSTs body to u with header h and returns the answer with its
// body closed, and the first maxAnswer bytes of it. Its error is already
// classified (see checkTransport) and never shows u.
func request(ctx context.Context, client *http.Client, u string, h http.Header, body []byte, kind string) (*http.Response, []byte, error) {
	if client == nil {
		client = defaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, nil, &Permanent{Fix: "check the url", Err: fmt.Errorf("alert: %s: the url is not one a request can go to", kind)}
	}
	req.Header = h
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, checkTransport(err, kind)
	}
	defer resp.Body.Close()
	// Read a little of the answer, which lets the connection be reused;
	// a receiver's own words are for the caller to judge.
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	return resp, answer, nil
}
