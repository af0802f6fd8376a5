package alert

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

// testSecret is a secret in the Standard Webhooks form.
const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// verifyStandardWebhook checks a request as the Standard Webhooks spec
// tells a receiver to, written from the spec rather than from the sender:
// the three headers present, the timestamp within five minutes of now, and
// one of the space-separated signatures "v1,<base64>" equal, in constant
// time, to HMAC-SHA256 of "<id>.<timestamp>.<body>" keyed with the bytes
// of the secret after "whsec_", base64-decoded.
func verifyStandardWebhook(h http.Header, body []byte, secret string, now time.Time) error {
	id, ts, sigs := h.Get("Webhook-Id"), h.Get("Webhook-Timestamp"), h.Get("Webhook-Signature")
	if id == "" || ts == "" || sigs == "" {
		return errors.New("missing webhook-id, webhook-timestamp or webhook-signature")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook-timestamp %q: %v", ts, err)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("webhook-timestamp is %v from now", d)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.%s", id, ts, body)
	want := mac.Sum(nil)
	for _, s := range strings.Fields(sigs) {
		version, sig, _ := strings.Cut(s, ",")
		got, err := base64.StdEncoding.DecodeString(sig)
		if version == "v1" && err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return fmt.Errorf("no signature in %q matches", sigs)
}

// received is one request a receiver took.
type received struct {
	header http.Header
	body   []byte
}

// receiver is a local HTTP server that records what it takes. It answers
// with status (200 when 0), recording nothing else, or, while cut, drops
// the connection as a dead network would.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex // guards got, status, retry, cut
	got    []received
	status int
	retry  string
	cut    bool
}

func newReceiver(t testing.TB) *receiver {
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.cut {
			panic(http.ErrAbortHandler)
		}
		if r.retry != "" {
			w.Header().Set("Retry-After", r.retry)
		}
		if r.status != 0 {
			w.WriteHeader(r.status)
			return
		}
		r.got = append(r.got, received{req.Header.Clone(), body})
	}))
	t.Cleanup(r.Close)
	return r
}

// setCut cuts the network to the receiver, or restores it.
func (r *receiver) setCut(cut bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cut = cut
}

func (r *receiver) answer(status int, retryAfter string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status, r.retry = status, retryAfter
}

func (r *receiver) received() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func pressEvent() Event {
	press := time.Date(2026, 11, 30, 14, 2, 5, 0, tokyo)
	e := origin.IncidentEvent(IncidentStarted, press, "20261130-140205-000042", press)
	e.Urgent, e.Source = true, "button"
	return e
}

func TestWebhookStandard(t *testing.T) {
	wall := clockwork.NewFakeClockAt(time.Date(2026, 11, 30, 5, 2, 6, 0, time.UTC))
	for _, secret := range []string{testSecret, "  " + testSecret + "\n"} {
		r := newReceiver(t)
		w, err := NewWebhook(WebhookOptions{Label: "本部", URL: r.URL + "/hook", Secret: secret, Wall: wall})
		if err != nil {
			t.Fatal(err)
		}
		e := pressEvent()
		if err := w.Send(t.Context(), e); err != nil {
			t.Fatal(err)
		}
		got := r.received()
		if len(got) != 1 {
			t.Fatalf("received %d requests, want 1", len(got))
		}
		if err := verifyStandardWebhook(got[0].header, got[0].body, testSecret, wall.Now()); err != nil {
			t.Errorf("signature: %v", err)
		}
		if id := got[0].header.Get("Webhook-Id"); id != e.ID {
			t.Errorf("webhook-id = %q, want the event's id %q", id, e.ID)
		}
		if ts := got[0].header.Get("Webhook-Timestamp"); ts != strconv.FormatInt(wall.Now().Unix(), 10) {
			t.Errorf("webhook-timestamp = %q, want %d", ts, wall.Now().Unix())
		}
		if ct := got[0].header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
		var back Event
		if err := json.Unmarshal(got[0].body, &back); err != nil {
			t.Fatal(err)
		}
		if back.ID != e.ID || back.Name != IncidentStarted || !back.Urgent || back.Label != "カウンター1" || !back.PressTime.Equal(e.PressTime) {
			t.Errorf("received %+v, want %+v", back, e)
		}
		// A forgery: the same headers on another body.
		if err := verifyStandardWebhook(got[0].header, append(got[0].body, ' '), testSecret, wall.Now()); err == nil {
			t.Error("the test's verifier accepts a changed body: it cannot fail")
		}
	}
}

func TestWebhookRawSecret(t *testing.T) {
	const raw = "a raw secret, 32 bytes long....."
	r := newReceiver(t)
	w, err := NewWebhook(WebhookOptions{URL: r.URL, Secret: raw})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Send(t.Context(), pressEvent()); err != nil {
		t.Fatal(err)
	}
	got := r.received()[0]
	// A raw secret's bytes are the key: the spec's form of the same key
	// verifies.
	asSpec := "whsec_" + base64.StdEncoding.EncodeToString([]byte(raw))
	if err := verifyStandardWebhook(got.header, got.body, asSpec, time.Now()); err != nil {
		t.Error(err)
	}
}

func TestWebhookSlack(t *testing.T) {
	r := newReceiver(t)
	w, err := NewWebhook(WebhookOptions{URL: r.URL, Format: FormatSlack, Language: English})
	if err != nil {
		t.Fatal(err)
	}
	e := pressEvent()
	if err := w.Send(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	got := r.received()[0]
	var body map[string]string
	if err := json.Unmarshal(got.body, &body); err != nil {
		t.Fatalf("body %s: %v", got.body, err)
	}
	if len(body) != 1 || !strings.HasPrefix(body["text"], "URGENT: Panic button at カウンター1 14:02\n") || !strings.Contains(body["text"], e.Link) {
		t.Errorf("body = %q, want only text, with the title and the link", got.body)
	}
	if got.header.Get("Webhook-Signature") != "" {
		t.Error("a slack webhook is signed, want it plain")
	}
}

func TestNtfy(t *testing.T) {
	r := newReceiver(t)
	n, err := NewNtfy(NtfyOptions{Label: "店長のスマホ", URL: r.URL + "/mamoru-shop-1-x7q", Token: "tk_secret\n"})
	if err != nil {
		t.Fatal(err)
	}
	e := pressEvent()
	fault := origin.Event(DeviceRecovered, e.Time)
	for _, e := range []Event{e, fault} {
		if err := n.Send(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	got := r.received()
	if len(got) != 2 {
		t.Fatalf("received %d, want 2", len(got))
	}
	var dec mime.WordDecoder
	title, err := dec.DecodeHeader(got[0].header.Get("Title"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ got, want string }{
		{title, "【至急】カウンター1で通報ボタン 14:02"},
		{got[0].header.Get("Priority"), "5"},
		{got[0].header.Get("Tags"), "rotating_light"},
		{got[0].header.Get("Click"), e.Link},
		{got[0].header.Get("Authorization"), "Bearer tk_secret"},
		{got[1].header.Get("Priority"), "3"},
		{got[1].header.Get("Click"), ""},
	}
	for i, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%d: got %q, want %q", i, tt.got, tt.want)
		}
	}
	if body := string(got[0].body); !strings.Contains(body, "事案: shop-1/counter-1/20261130-140205-000042") {
		t.Errorf("body = %q, want the incident", body)
	}
}

func TestSendErrors(t *testing.T) {
	const secretPath = "/T0/B0/s3cr3t-path"
	r := newReceiver(t)
	wall := clockwork.NewFakeClockAt(time.Date(2026, 11, 30, 5, 0, 0, 0, time.UTC))
	w, err := NewWebhook(WebhookOptions{Label: "本部", URL: r.URL + secretPath, Format: FormatSlack, Wall: wall})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		status     int
		retryAfter string
		permanent  bool
		wantAfter  time.Duration // a *RetryLater's, or 0 for none
	}{
		{http.StatusUnauthorized, "", true, 0},
		{http.StatusForbidden, "", true, 0},
		{http.StatusNotFound, "", true, 0},
		{http.StatusGone, "", true, 0},
		{http.StatusTeapot, "", true, 0},
		{http.StatusTooManyRequests, "7", false, 7 * time.Second},
		{http.StatusTooManyRequests, wall.Now().Add(time.Minute).Format(http.TimeFormat), false, time.Minute},
		{http.StatusTooManyRequests, "99999", false, maxRetryAfter},
		{http.StatusTooManyRequests, "", false, 0},
		{http.StatusServiceUnavailable, "2", false, 2 * time.Second},
		{http.StatusInternalServerError, "", false, 0},
		{http.StatusBadGateway, "", false, 0},
		{http.StatusRequestTimeout, "", false, 0},
	}
	for _, tt := range tests {
		r.answer(tt.status, tt.retryAfter)
		err := w.Send(t.Context(), pressEvent())
		if err == nil {
			t.Errorf("%d: Send = nil, want an error", tt.status)
			continue
		}
		var p *Permanent
		if errors.As(err, &p) != tt.permanent {
			t.Errorf("%d: Send = %v, permanent %v, want %v", tt.status, err, !tt.permanent, tt.permanent)
		}
		if tt.permanent && (p.Fix == "" || p.Status != tt.status) {
			t.Errorf("%d: %+v, want the status and a fix", tt.status, p)
		}
		var rl *RetryLater
		if got := errors.As(err, &rl); got != (tt.wantAfter != 0) || got && rl.After != tt.wantAfter {
			t.Errorf("%d, Retry-After %q: Send = %v, want a RetryLater of %v", tt.status, tt.retryAfter, err, tt.wantAfter)
		}
		if strings.Contains(err.Error(), secretPath) || !strings.Contains(err.Error(), "本部") {
			t.Errorf("%d: error %q shows the URL or does not name the target", tt.status, err)
		}
	}

	// A receiver that is not there: worth retrying, and the error does not
	// show the URL either.
	r.Close()
	err = w.Send(t.Context(), pressEvent())
	var p *Permanent
	if err == nil || errors.As(err, &p) || strings.Contains(err.Error(), secretPath) {
		t.Errorf("Send to a closed receiver = %v, want a transient error without the URL", err)
	}
}

// TestWebhookFollowsNoRedirect: a client following a 302 would GET the new
// place, post nothing, and take its 200 for a delivery.
func TestWebhookFollowsNoRedirect(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/old" {
			http.Redirect(w, r, "/new", http.StatusFound)
		}
	}))
	defer srv.Close()
	w, err := NewWebhook(WebhookOptions{URL: srv.URL + "/old", Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	var p *Permanent
	if err := w.Send(t.Context(), pressEvent()); !errors.As(err, &p) || p.Status != http.StatusFound {
		t.Errorf("Send to a redirecting url = %v, want a *Permanent for its 302", err)
	}
}

func TestNewTargetRejects(t *testing.T) {
	const secretURL = "https://hooks.example/T0/s3cr3t"
	tests := []struct {
		name string
		o    WebhookOptions
	}{
		{"no url", WebhookOptions{Secret: testSecret}},
		{"not http", WebhookOptions{URL: "ftp://hooks.example/s3cr3t", Secret: testSecret}},
		{"no host", WebhookOptions{URL: "https:///s3cr3t", Secret: testSecret}},
		{"malformed", WebhookOptions{URL: "https://hooks.example/%zz/s3cr3t", Secret: testSecret}},
		{"no secret", WebhookOptions{URL: secretURL}},
		{"short secret", WebhookOptions{URL: secretURL, Secret: "s3cr3t"}},
		{"whsec_ not base64", WebhookOptions{URL: secretURL, Secret: "whsec_s3cr3t!!"}},
		{"slack with a secret", WebhookOptions{URL: secretURL, Format: FormatSlack, Secret: testSecret}},
		{"unknown format", WebhookOptions{URL: secretURL, Format: "teams", Secret: testSecret}},
		{"unknown language", WebhookOptions{URL: secretURL, Secret: testSecret, Language: "fr"}},
	}
	for _, tt := range tests {
		_, err := NewWebhook(tt.o)
		if err == nil {
			t.Errorf("%s: NewWebhook = nil error", tt.name)
			continue
		}
		if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "MfKQ9r8") {
			t.Errorf("%s: error %q shows a secret", tt.name, err)
		}
	}
	if _, err := NewNtfy(NtfyOptions{URL: "ntfy.sh/s3cr3t"}); err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("NewNtfy without a scheme = %v, want an error without the topic", err)
	}
}

func TestSendHonoursContext(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	n, err := NewNtfy(NtfyOptions{URL: srv.URL + "/t"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := n.Send(ctx, pressEvent()); !errors.Is(err, context.Canceled) {
		t.Errorf("Send with an ended context = %v, want context.Canceled", err)
	}
}
