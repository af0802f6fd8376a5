package config

import (
	"strings"
	"testing"
	"time"
)

func TestSchedule(t *testing.T) {
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	s, err := ParseSchedule([]string{"mon-fri 09:00-21:00", "sat,sun 10:00-20:00", "fri 22:00-02:00"}, []string{"2026-12-31"}, tokyo)
	if err != nil {
		t.Fatal(err)
	}
	at := func(v string) time.Time {
		tt, err := time.ParseInLocation("2006-01-02 15:04:05", v, tokyo)
		if err != nil {
			t.Fatal(err)
		}
		return tt
	}
	// 2026-11-23 is a Monday; 2026-11-27 a Friday; 2026-12-31 a Thursday.
	for _, tc := range []struct {
		when string
		open bool
		next string
	}{
		{"2026-11-23 08:59:59", false, "2026-11-23 09:00:00"},
		{"2026-11-23 09:00:00", true, "2026-11-23 21:00:00"},
		{"2026-11-23 20:59:59", true, "2026-11-23 21:00:00"},
		{"2026-11-23 21:00:00", false, "2026-11-24 09:00:00"},
		{"2026-11-27 21:30:00", false, "2026-11-27 22:00:00"},
		{"2026-11-27 23:00:00", true, "2026-11-28 02:00:00"}, // Friday night into Saturday
		{"2026-11-28 01:59:59", true, "2026-11-28 02:00:00"},
		{"2026-11-28 02:00:00", false, "2026-11-28 10:00:00"},
		{"2026-11-29 19:00:00", true, "2026-11-29 20:00:00"},  // Sunday
		{"2026-12-31 12:00:00", false, "2027-01-01 09:00:00"}, // closed date
		{"2026-12-30 20:59:00", true, "2026-12-30 21:00:00"},
	} {
		if got := s.Open(at(tc.when)); got != tc.open {
			t.Errorf("Open(%s) = %v, want %v", tc.when, got, tc.open)
		}
		if got := s.Next(at(tc.when)); !got.Equal(at(tc.next)) {
			t.Errorf("Next(%s) = %s, want %s", tc.when, got.In(tokyo).Format(time.DateTime), tc.next)
		}
	}
	if d := s.Describe(at("2026-11-23 10:00:00")); d != "open until 21:00" {
		t.Errorf("Describe = %q", d)
	}
	// No hours: always open, whatever the clock says.
	always, _ := ParseSchedule(nil, nil, tokyo)
	if !always.Always() || !always.Open(time.Unix(0, 0)) || !always.Next(time.Now()).IsZero() {
		t.Error("an empty schedule is not always open")
	}
}

func TestScheduleErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{`recording_hours = ["weekdays 09:00-21:00"]`, `m.toml:7: 'policy.recording_hours' entry 1 "weekdays 09:00-21:00": unknown day "weekdays"`},
		{`recording_hours = ["mon 9-21"]`, `m.toml:7: 'policy.recording_hours' entry 1 "mon 9-21": "9" is not a time of day HH:MM`},
		{`recording_hours = ["mon 25:00-26:00"]`, `'policy.recording_hours' entry 1 "mon 25:00-26:00": "25:00" is not a time of day`},
		{`recording_hours = ["mon 09:00-09:00"]`, `the range is empty`},
		{`closed_dates = ["12/31"]`, `m.toml:7: 'policy.closed_dates' closed date 1 "12/31": want YYYY-MM-DD`},
		{`notice_languages = ["fr"]`, `m.toml:7: 'policy.notice_languages' must list "ja" and/or "en" (got "fr")`},
		{"[policy.basic_policy]\nja = \"基本方針\"", `m.toml:7: 'policy.basic_policy' has no "en" text, but the notice is also in "en" (policy.notice_languages)`},
		{"[policy.basic_policy]\nja = \"基本方針\"\nen = \"Our policy\"\nfr = \"Notre politique\"", `m.toml:10: 'policy.basic_policy.fr' is not a notice language`},
		{"[policy.basic_policy]\nja = \"  \"\nen = \"Our policy\"", `m.toml:8: 'policy.basic_policy.ja' is empty`},
		{"basic_policy.ja = \"基本方針\"\nbasic_policy.en = \"" + strings.Repeat("x", MaxBasicPolicy+1) + "\"", `m.toml:8: 'policy.basic_policy.en' must be at most 300 characters`},
		{"[policy.basic_policy]\nja = \"基本方針\\u001b[2J\"\nen = \"Our policy\"", `m.toml:8: 'policy.basic_policy.ja' holds a control character`},
	} {
		_, err := Parse("m.toml", []byte(minimal+"[policy]\n"+tc.src+"\n"), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.src, err, tc.want)
		}
	}
	c, err := Parse("m.toml", []byte(minimal), []string{"MAMORU_POLICY_RECORDING_HOURS=mon-fri 09:00-21:00;sat,sun 10:00-18:00"})
	if err != nil || len(c.Policy.RecordingHours) != 2 || c.Policy.RecordingHours[1] != "sat,sun 10:00-18:00" {
		t.Errorf("recording hours from the environment: %v %q", err, c.Policy.RecordingHours)
	}
}
