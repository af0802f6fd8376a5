package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"mamoru/config"
	"mamoru/device"
	"mamoru/listen"
	"mamoru/outbox"
)

// The counter's lines, one per event that has one.
func TestCounterLines(t *testing.T) {
	var out strings.Builder
	c := &counter{ctx: t.Context(), out: &out, bucket: "clips", uploads: true}
	m := &outbox.Manifest{Store: "s", Device: "d", Incident: "20261123-230000-000001", State: outbox.StateComplete, DurationSeconds: 3.5, Clip: outbox.ClipDigest{Size: 1234}}
	spool := errors.Join(device.ErrSpoolFull, errors.New("SPOOL FULL: 16 MB of clips wait for upload"))
	for _, e := range []device.Event{
		{Kind: device.EventPress, Result: device.PressRefused, Err: spool},
		{Kind: device.EventPress, Result: device.PressRefused, Err: device.ErrOutsideHours}, // shown on the indicator only
		{Kind: device.EventIncident, Incident: "20261123-230000-000002", State: device.IncidentFailed, Err: errors.New("no space left on device")},
		{Kind: device.EventIncident, Incident: m.Incident, State: m.State, Clip: "/var/lib/mamoru/incidents/x/clip.mp4", Manifest: m},
		{Kind: device.EventUploaded, Incident: m.Incident, Object: "s/d/2026/11/23/" + m.Incident, Manifest: m},
		{Kind: device.EventIndicator, On: true},
		{Kind: device.EventSound, Sound: &listen.Detection{AboveDB: 18.26, Duration: 1100 * time.Millisecond}, Action: config.ListenIncident},
		{Kind: device.EventSound, Sound: &listen.Detection{AboveDB: 19, Duration: 5 * time.Second, Ended: true}, Action: config.ListenIncident},
	} {
		c.show(e)
	}
	want := []string{
		"spool full\nSPOOL FULL: 16 MB of clips wait for upload",
		"incident 20261123-230000-000002: clip FAILED: no space left on device",
		"incident 20261123-230000-000001 saved (complete): /var/lib/mamoru/incidents/x/clip.mp4 (3.5 s, 1234 bytes)",
		"incident 20261123-230000-000001 uploaded to s3://clips/s/d/2026/11/23/20261123-230000-000001/",
		"share with a manager's keys: mamoru clips share s/d/20261123-230000-000001",
		"raised voice heard: +18.3 dB over the usual level for 1.1 s; alerted, and an incident raised",
	}
	if got := strings.TrimSpace(out.String()); got != strings.Join(want, "\n") {
		t.Errorf("the counter showed:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}
