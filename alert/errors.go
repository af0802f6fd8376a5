package alert

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Permanent is a failure that retrying will not fix: the target's
// configuration or the receiver's setup is wrong (a bad token, a URL with
// no receiver behind it, a receiver that refuses the event). Fix says what
// to do. The queue keeps the event and stops retrying until it is told of
// another event or restarted.
type Permanent struct {
	Status int // the receiver's HTTP status, or 0
	Fix    string
	Err    error
}

func (p *Permanent) Error() string { return fmt.Sprintf("%v (%s)", p.Err, p.Fix) }
func (p *Permanent) Unwrap() error { return p.Err }

// RetryLater is a receiver's request to wait (HTTP 429 or 503 with
// Retry-After): the queue waits at least After before the next attempt.
// Every error that is not a *Permanent is worth retrying; this one also
// says when.
type RetryLater struct {
	After time.Duration
	Err   error
}

func (r *RetryLater) Error() string { return fmt.Sprintf("%v (retry after %v)", r.Err, r.After) }
func (r *RetryLater) Unwrap() error { return r.Err }

// maxRetryAfter bounds a receiver's Retry-After: a wrong or hostile one
// must not silence a target for days.
const maxRetryAfter = 15 * time.Minute

// fixes says, per HTTP status no retry cures, what to do. kinds refine it
// per target kind.
var fixes = map[int]string{
	http.StatusBadRequest:            "the receiver refuses the event as malformed: check that the url is the receiver's and its format matches",
	http.StatusUnauthorized:          "the receiver refuses the credentials: check the target's secret or token",
	http.StatusForbidden:             "the receiver refuses the credentials: check the target's secret or token, and that it may post here",
	http.StatusNotFound:              "there is no receiver at the url: check the url (or topic)",
	http.StatusMethodNotAllowed:      "the url does not take a POST: check the url",
	http.StatusGone:                  "the receiver has been removed: make a new one and set its url",
	http.StatusRequestEntityTooLarge: "the receiver refuses an event this large",
	http.StatusUnprocessableEntity:   "the receiver refuses the event's contents: check that its format matches",
}

// checkResponse turns a receiver's answer into nil (2xx), a *Permanent, a
// *RetryLater or another error worth retrying. kind names the target in
// the error ("webhook 店長のスマホ"); kindFixes overrides fixes. now reads
// a Retry-After given as a date.
func checkResponse(resp *http.Response, kind string, kindFixes map[int]string, now time.Time) error {
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return nil
	}
	err := fmt.Errorf("alert: %s: HTTP %d %s", kind, code, http.StatusText(code))
	if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
		if d, ok := retryAfter(resp.Header.Get("Retry-After"), now); ok {
			return &RetryLater{After: d, Err: err}
		}
		return err
	}
	if code >= 300 && code < 400 {
		return &Permanent{Status: code, Fix: "the url redirects: set it to where it leads (https:// rather than http://?)", Err: err}
	}
	if fix, ok := kindFixes[code]; ok {
		return &Permanent{Status: code, Fix: fix, Err: err}
	}
	if fix, ok := fixes[code]; ok {
		return &Permanent{Status: code, Fix: fix, Err: err}
	}
	if code >= 400 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusTooEarly {
		return &Permanent{Status: code, Fix: "the receiver refuses the request: check the target's url and credentials", Err: err}
	}
	return err // 5xx, 408, 425: try again
}

// retryAfter reads a Retry-After header: seconds, or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if s, err := strconv.ParseUint(v, 10, 32); err == nil {
		d = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	} else {
		return 0, false
	}
	return min(max(d, 0), maxRetryAfter), true
}

// checkTransport turns an error from http.Client.Do into one that says
// which target failed and never shows its URL: a webhook's URL or an ntfy
// topic is a secret, and *url.Error prints it whole. A certificate no
// retry will make valid is a *Permanent; one that is not valid yet may be
// the Pi's clock before NTP, and is retried.
func checkTransport(err error, kind string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	err = fmt.Errorf("alert: %s: %w", kind, err)
	if fix := certificateFix(err, "the receiver"); fix != "" {
		return &Permanent{Fix: fix, Err: err}
	}
	return err
}

// certificateFix says what to do about a certificate of server's that no
// retry will make valid, or "" when err is not about one. A certificate
// not valid yet may be the Pi's clock before NTP: that is retried.
func certificateFix(err error, server string) string {
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	switch {
	case errors.As(err, &unknownCA):
		return server + "'s certificate is signed by an unknown authority: check the url's host, or give the target the authority's certificate in 'ca_file' (a PEM file)"
	case errors.As(err, &hostname):
		return server + "'s certificate is not for the url's host: check the url"
	}
	return ""
}
