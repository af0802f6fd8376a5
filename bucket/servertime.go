package bucket

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"mamoru/config"
)

// ServerTime is the time by the bucket's server: the Date header of its
// answer to an anonymous HEAD of the bucket, which an S3 server sends
// whether it refuses the request or not. Object lock holds a retain-until
// date against this clock, so a device whose own clock NTP has not set
// (a Pi has no battery clock) dates its locks by it.
//
// Over https it is no way out of a clock that is far wrong: the
// certificate check needs a roughly right clock, and to a Pi whose clock
// reads 1970 every certificate is not yet valid. Such a Pi cannot use
// ServerTime until fake-hwclock (the time saved at the last shutdown) or
// NTP has set its clock near the truth; until then this fails, and uploads
// wait. Over plain http (storage.secure = false) nothing checks the clock.
func ServerTime(ctx context.Context, s config.Storage) (time.Time, error) {
	rt, err := transport(s)
	if err != nil {
		return time.Time{}, err
	}
	if tr, ok := rt.(*http.Transport); ok {
		tr.DisableKeepAlives = true // one request; nothing left open
	}
	scheme := "https"
	if !s.Secure {
		scheme = "http"
	}
	u := url.URL{Scheme: scheme, Host: s.Endpoint, Path: "/" + s.Bucket}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, u.String(), nil)
	if err != nil {
		return time.Time{}, fmt.Errorf("bucket: storage.endpoint %q: %w", s.Endpoint, err)
	}
	resp, err := (&http.Client{Transport: rt, Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return time.Time{}, fmt.Errorf("bucket: ask %s the time: %w", s.Endpoint, Classify(err))
	}
	resp.Body.Close()
	t, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return time.Time{}, fmt.Errorf("bucket: %s answered with no Date header to take the time from (%q)", s.Endpoint, resp.Header.Get("Date"))
	}
	return t, nil
}
