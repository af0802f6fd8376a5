package alert

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mamoru/alert/mqtttest"
	"mamoru/alert/smtptest"
)

// A probe of a webhook or ntfy target dials and shakes hands and sends no
// request: a receiver that is down, or whose certificate the target does
// not trust, shows; one that is up and trusted takes no alert.
func TestProbeHTTP(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { requests.Add(1) }))
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	down := smtptest.FreeAddr(t) // nothing listens there
	tests := []struct {
		name      string
		target    Prober
		ok        bool
		permanent bool
		wantIn    string
	}{
		{"webhook trusted", must(NewWebhook(WebhookOptions{Label: "hook", Format: FormatSlack, URL: srv.URL + "/s3cr3t-path", Client: ClientFor(roots)})), true, false, ""},
		{"ntfy trusted", must(NewNtfy(NtfyOptions{Label: "phone", URL: srv.URL + "/s3cr3t-topic", Client: ClientFor(roots)})), true, false, ""},
		{"webhook untrusted", must(NewWebhook(WebhookOptions{Label: "hook", Format: FormatSlack, URL: srv.URL + "/s3cr3t-path"})), false, true, "ca_file"},
		{"webhook down", must(NewWebhook(WebhookOptions{Label: "hook", Format: FormatSlack, URL: "http://" + down + "/s3cr3t-path"})), false, false, "connection refused"},
		{"ntfy down", must(NewNtfy(NtfyOptions{Label: "phone", URL: "https://" + down + "/s3cr3t-topic"})), false, false, "connection refused"},
	}
	for _, tt := range tests {
		err := tt.target.Probe(context.Background())
		var p *Permanent
		switch {
		case tt.ok && err != nil:
			t.Errorf("%s: Probe = %v, want nil", tt.name, err)
		case !tt.ok && err == nil:
			t.Errorf("%s: Probe = nil, want an error", tt.name)
		case !tt.ok && errors.As(err, &p) != tt.permanent:
			t.Errorf("%s: Probe = %v, *Permanent %v, want %v", tt.name, err, !tt.permanent, tt.permanent)
		case !tt.ok && !strings.Contains(err.Error(), tt.wantIn):
			t.Errorf("%s: Probe = %q, want it to say %q", tt.name, err.Error(), tt.wantIn)
		case err != nil && strings.Contains(err.Error(), "s3cr3t"):
			t.Errorf("%s: Probe's error shows the URL's secret: %v", tt.name, err)
		}
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("the probes sent %d requests; want none, which a receiver would take for alerts", n)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// A probe of an MQTT target logs in under a client id of its own and
// publishes nothing: the recorder's own connection stays up, and a wrong
// password is a *Permanent naming password_file.
func TestProbeMQTT(t *testing.T) {
	b := mqtttest.Start(t, map[string]string{"mamoru": "right"})
	running := newMQTT(t, MQTTOptions{URL: "mqtt://" + b.Addr, Username: "mamoru", Password: "right"})
	sendNow(t, running, origin.Event(DeviceRecovered, time.Now()))
	events := b.Subscribe("mamoru/shop-1/counter-1/#")

	probe := newMQTT(t, MQTTOptions{URL: "mqtt://" + b.Addr, Username: "mamoru", Password: "right"})
	if err := probe.Probe(context.Background()); err != nil {
		t.Fatalf("Probe: %v", err)
	}
	// Were the probe to take the running target's client id, the broker
	// would have dropped that connection.
	sendNow(t, running, origin.Event(DeviceFault, time.Now()))
	for msg := range events {
		if msg.Topic == "mamoru/shop-1/counter-1/events" {
			break // the running target's event, after whatever the probe published
		}
		if msg.Topic == "mamoru/shop-1/counter-1/availability" && msg.Payload != "online" {
			t.Errorf("after the probe, availability %q; a probe must not say offline", msg.Payload)
		}
	}

	wrong := newMQTT(t, MQTTOptions{Label: "wrong", URL: "mqtt://" + b.Addr, Username: "mamoru", Password: "wrong"})
	var p *Permanent
	if err := wrong.Probe(context.Background()); !errors.As(err, &p) || !strings.Contains(p.Fix, "password_file") {
		t.Errorf("Probe with a wrong password = %v, want a *Permanent naming password_file", err)
	}
}

// A probe of an e-mail target logs in and quits: a good login sends no
// mail; a wrong one is a *Permanent.
func TestProbeEmail(t *testing.T) {
	ca := smtptest.NewCA(t)
	server := smtptest.Start(t, smtptest.Options{CA: ca, Implicit: true, Users: map[string]string{mailUser: mailPassword}})
	if err := emailTo(t, "smtps", server.SMTP, ca, mailPassword).Probe(context.Background()); err != nil {
		t.Fatalf("Probe: %v", err)
	}
	var p *Permanent
	if err := emailTo(t, "smtps", server.SMTP, ca, "wrong").Probe(context.Background()); !errors.As(err, &p) {
		t.Errorf("Probe with a wrong password = %v, want a *Permanent", err)
	}
	if err := emailTo(t, "smtps", server.SMTP, nil, mailPassword).Probe(context.Background()); !errors.As(err, &p) || !strings.Contains(p.Fix, "ca_file") {
		t.Errorf("Probe of an untrusted server = %v, want a *Permanent naming ca_file", err)
	}
	if n := len(server.Messages()); n != 0 {
		t.Errorf("the probes sent %d mails, want none", n)
	}
}
