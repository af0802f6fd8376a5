package alert

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Prober is a target that can show it would be reached without sending
// anything a person reads: `mamoru check` probes every target that is
// one. Probe's error is classified as Send's is (a *Permanent says what
// to fix) and never shows a secret.
type Prober interface {
	Probe(ctx context.Context) error
}

// TestSender is a target whose test alert goes another way than Send: an
// MQTT target's must not move the device's state (MQTT.SendTest). Other
// targets' test alerts go by Send.
type TestSender interface {
	SendTest(ctx context.Context, e Event) error
}

// probeTimeout bounds a probe of an HTTP target.
const probeTimeout = 10 * time.Second

// probeHTTP dials raw's host (or the proxy the environment names for it)
// and, for https, makes the TLS handshake with client's authorities. It
// sends no request: a webhook or an ntfy topic takes any request for an
// alert. It shows a receiver that cannot be reached or whose certificate
// is not trusted; a receiver that would refuse the alert itself (a wrong
// token, a path it does not serve) shows only when an alert goes.
func probeHTTP(ctx context.Context, client *http.Client, raw, kind string) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("alert: " + kind + ": the url cannot be parsed")
	}
	req := &http.Request{URL: u, Header: http.Header{}}
	if proxy, err := http.ProxyFromEnvironment(req); err == nil && proxy != nil {
		// The requests go through the proxy: reaching it is what can be
		// shown without one.
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", hostPort(proxy))
		if err != nil {
			return checkTransport(err, kind+" (through the proxy the environment names)")
		}
		return conn.Close()
	}
	d := &net.Dialer{}
	if u.Scheme != "https" {
		conn, err := d.DialContext(ctx, "tcp", hostPort(u))
		if err != nil {
			return checkTransport(err, kind)
		}
		return conn.Close()
	}
	td := &tls.Dialer{NetDialer: d, Config: &tls.Config{ServerName: u.Hostname(), RootCAs: rootsOf(client), MinVersion: tls.VersionTLS12}}
	conn, err := td.DialContext(ctx, "tcp", hostPort(u))
	if err != nil {
		return checkTransport(err, kind)
	}
	return conn.Close()
}

// hostPort is u's host and port, the scheme's port when it names none.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	port := "80"
	if u.Scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// rootsOf is the authorities client trusts: its transport's, or nil for
// the system's.
func rootsOf(client *http.Client) *x509.CertPool {
	if client == nil {
		return nil
	}
	if tr, ok := client.Transport.(*http.Transport); ok && tr.TLSClientConfig != nil {
		return tr.TLSClientConfig.RootCAs
	}
	return nil
}

// Probe shows the receiver can be reached (probeHTTP).
func (w *Webhook) Probe(ctx context.Context) error {
	return probeHTTP(ctx, w.opts.Client, w.opts.URL, w.kind)
}

// Probe shows the ntfy server can be reached (probeHTTP).
func (n *Ntfy) Probe(ctx context.Context) error {
	return probeHTTP(ctx, n.opts.Client, n.opts.URL, n.kind)
}
