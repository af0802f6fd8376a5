package health

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func sample() Report {
	tokyo := time.FixedZone("JST", 9*3600)
	return Report{
		Store: "shop-1", Device: "counter-1", Label: "カウンター1", State: "buffering", Indicator: true,
		RecordingExpected: true, Hours: Hours{Recording: []string{"mon-fri 09:00-21:00"}, Zone: "Asia/Tokyo"},
		BufferedSeconds: 30, PendingUploads: 1, PendingBytes: 9 << 20, DiskFree: 1 << 30, ClockSynced: true,
		UptimeSeconds: 3600, Software: "1.0.0", LastIncident: "shop-1/counter-1/20261130-140200-000001",
		LastIncidentAt: time.Date(2026, 11, 30, 14, 2, 0, 0, tokyo), Sent: time.Date(2026, 11, 30, 14, 3, 0, 0, tokyo),
	}
}

func TestRoundTrip(t *testing.T) {
	want := sample()
	b, err := want.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse(Marshal()) = %v", err)
	}
	want.Version = Version
	if !got.Sent.Equal(want.Sent) || got.Label != want.Label || got.PendingBytes != want.PendingBytes || got.Hours.Recording[0] != want.Hours.Recording[0] {
		t.Errorf("Parse(Marshal(r)) = %+v, want %+v", got, want)
	}
}

func TestParseRejects(t *testing.T) {
	good, _ := sample().Marshal()
	tests := []struct {
		name string
		b    string
		want error
	}{
		{"empty", "", ErrInvalid},
		{"not json", "<html>", ErrInvalid},
		{"no store", strings.Replace(string(good), `"store": "shop-1"`, `"store": ""`, 1), ErrInvalid},
		{"no sent", strings.Replace(string(good), `"sent"`, `"sent_"`, 1), ErrInvalid},
		{"newer", strings.Replace(string(good), `"version": 1`, `"version": 2, "extra": 1`, 1), ErrVersion},
		{"older", strings.Replace(string(good), `"version": 1`, `"version": 0`, 1), ErrVersion},
		{"negative", strings.Replace(string(good), `"pending_uploads": 1`, `"pending_uploads": -1`, 1), ErrInvalid},
		{"two", string(good) + string(good), ErrInvalid},
		{"huge", `{"label":"` + strings.Repeat("x", MaxSize) + `"}`, ErrTooLarge},
	}
	for _, tt := range tests {
		if _, err := Parse([]byte(tt.b)); !errors.Is(err, tt.want) {
			t.Errorf("%s: Parse = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestKey(t *testing.T) {
	if got, want := Key("clips", "shop-1", "counter-1"), "clips/shop-1/counter-1/health.json"; got != want {
		t.Errorf("Key = %q, want %q", got, want)
	}
	if got, want := Key("", "shop-1", "counter-1"), "shop-1/counter-1/health.json"; got != want {
		t.Errorf("Key without prefix = %q, want %q", got, want)
	}
}

func FuzzParse(f *testing.F) {
	good, _ := sample().Marshal()
	f.Add(good)
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":1,"store":"s","device":"d","state":"idle","sent":"2026-01-01T00:00:00Z","sources_down":{"video":"x"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Parse(b)
		if err != nil {
			return
		}
		again, err := r.Marshal()
		if err != nil {
			t.Fatalf("a parsed report does not marshal: %v", err)
		}
		// Indenting may take a report near MaxSize over it.
		if _, err := Parse(again); err != nil && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("a parsed report, marshalled, does not parse: %v", err)
		}
	})
}
