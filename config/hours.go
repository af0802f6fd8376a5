package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Schedule is when the device may record: the recording hours, less the
// closed dates, in the device's time zone. A zero Schedule (no hours) is
// always open.
type Schedule struct {
	loc    *time.Location
	spans  []span          // each a weekday's range of minutes; end may pass midnight
	closed map[string]bool // "2006-01-02"
}

// span is one weekday's recording window, in minutes from midnight.
type span struct {
	day        time.Weekday
	start, end int // end > start; end > 1440 runs into the next day
}

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// ParseSchedule parses recording hours such as "mon-fri 09:00-21:00",
// "sat,sun 10:00-20:00", "daily 00:00-24:00" or "fri 22:00-02:00" (past
// midnight, into Saturday), and closed dates "2026-12-31".
func ParseSchedule(hours, closed []string, loc *time.Location) (*Schedule, error) {
	s := &Schedule{loc: loc, closed: map[string]bool{}}
	for i, h := range hours {
		spans, err := parseHours(h)
		if err != nil {
			return nil, fmt.Errorf("entry %d %q: %v", i+1, h, err)
		}
		s.spans = append(s.spans, spans...)
	}
	for i, d := range closed {
		t, err := time.Parse("2006-01-02", d)
		if err != nil {
			return nil, fmt.Errorf("closed date %d %q: want YYYY-MM-DD", i+1, d)
		}
		s.closed[t.Format("2006-01-02")] = true
	}
	return s, nil
}

func parseHours(h string) ([]span, error) {
	days, times, ok := strings.Cut(strings.TrimSpace(strings.ToLower(h)), " ")
	if !ok {
		return nil, fmt.Errorf(`want days and times, as "mon-fri 09:00-21:00"`)
	}
	var wds []time.Weekday
	if days == "daily" || days == "*" {
		wds = []time.Weekday{0, 1, 2, 3, 4, 5, 6}
	}
	for part := range strings.SplitSeq(days, ",") {
		if days == "daily" || days == "*" {
			break
		}
		from, to, isRange := strings.Cut(part, "-")
		a, ok1 := dayNames[from]
		b, ok2 := dayNames[to]
		if !ok1 || isRange && !ok2 {
			return nil, fmt.Errorf("unknown day %q: use mon, tue, wed, thu, fri, sat, sun, ranges (mon-fri) or daily", part)
		}
		if !isRange {
			b = a
		}
		for d := a; ; d = (d + 1) % 7 {
			wds = append(wds, d)
			if d == b {
				break
			}
		}
	}
	from, to, ok := strings.Cut(strings.TrimSpace(times), "-")
	if !ok {
		return nil, fmt.Errorf(`want a time range, as "09:00-21:00"`)
	}
	start, err := parseClock(from)
	if err != nil {
		return nil, err
	}
	end, err := parseClock(to)
	if err != nil {
		return nil, err
	}
	if end == start {
		return nil, fmt.Errorf("the range is empty")
	}
	if end < start {
		end += 24 * 60 // past midnight
	}
	var out []span
	for _, d := range wds {
		out = append(out, span{day: d, start: start, end: end})
	}
	return out, nil
}

func parseClock(s string) (int, error) {
	hh, mm, ok := strings.Cut(s, ":")
	h, err1 := strconv.Atoi(hh)
	m, err2 := strconv.Atoi(mm)
	if !ok || err1 != nil || err2 != nil || len(mm) != 2 || h < 0 || m < 0 || m > 59 || h > 24 || h == 24 && m != 0 {
		return 0, fmt.Errorf("%q is not a time of day HH:MM (00:00 to 24:00)", s)
	}
	return h*60 + m, nil
}

// Always reports whether the schedule has no hours: it is always open,
// whatever the clock says.
func (s *Schedule) Always() bool { return s == nil || len(s.spans) == 0 && len(s.closed) == 0 }

// Open reports whether t is within the recording hours.
func (s *Schedule) Open(t time.Time) bool {
	if s.Always() {
		return true
	}
	t = t.In(s.loc)
	if len(s.spans) == 0 { // only closed dates
		return !s.closed[t.Format("2006-01-02")]
	}
	// A span belongs to the day it starts on; it may run into the next.
	for back := range 2 {
		day := t.AddDate(0, 0, -back)
		if s.closed[day.Format("2006-01-02")] {
			continue
		}
		midnight := time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, s.loc)
		for _, sp := range s.spans {
			if sp.day != day.Weekday() {
				continue
			}
			from := midnight.Add(time.Duration(sp.start) * time.Minute)
			to := midnight.Add(time.Duration(sp.end) * time.Minute)
			if !t.Before(from) && t.Before(to) {
				return true
			}
		}
	}
	return false
}

// Next returns the first moment after t when Open changes, at most 8 days
// ahead, or the zero time if it never does.
func (s *Schedule) Next(t time.Time) time.Time {
	if s.Always() {
		return time.Time{}
	}
	t = t.In(s.loc)
	open := s.Open(t)
	var edges []time.Time
	for d := -1; d <= 8; d++ {
		day := t.AddDate(0, 0, d)
		midnight := time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, s.loc)
		edges = append(edges, midnight)
		for _, sp := range s.spans {
			if sp.day == day.Weekday() {
				edges = append(edges, midnight.Add(time.Duration(sp.start)*time.Minute), midnight.Add(time.Duration(sp.end)*time.Minute))
			}
		}
	}
	slices.SortFunc(edges, func(a, b time.Time) int { return a.Compare(b) })
	for _, e := range edges {
		if e.After(t) && s.Open(e) != open {
			return e
		}
	}
	return time.Time{}
}

// Describe says in a few words whether t is open and until when, for
// status: "open until 21:00", "closed until Mon 09:00".
func (s *Schedule) Describe(t time.Time) string {
	if s.Always() {
		return "always open (no recording_hours)"
	}
	state := "closed"
	if s.Open(t) {
		state = "open"
	}
	n := s.Next(t)
	if n.IsZero() {
		return state
	}
	n = n.In(s.loc)
	if n.YearDay() == t.In(s.loc).YearDay() {
		return fmt.Sprintf("%s until %s", state, n.Format("15:04"))
	}
	return fmt.Sprintf("%s until %s", state, n.Format("Mon 2006-01-02 15:04"))
}
