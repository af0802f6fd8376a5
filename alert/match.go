package alert

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// DefaultEvents is what a target receives when its configuration names no
// events: every press, answered or refused, and every change of the
// device's health.
var DefaultEvents = []string{string(IncidentStarted), string(PressRefused), "device.*"}

// ErrNoSuchEvent means a pattern matches none of Names: a typo that would
// silently send a target nothing.
var ErrNoSuchEvent = errors.New("matches no event")

// Filter is a target's events: glob patterns on event names, as path.Match
// reads them ("incident.*", "device.*", "*", or an exact name).
type Filter struct {
	patterns []string
}

// NewFilter returns the filter of patterns, or of DefaultEvents when
// patterns is empty. Every pattern must be well formed and match at least
// one of Names; the error names each one that does not (config prefixes
// the key).
func NewFilter(patterns []string) (Filter, error) {
	if len(patterns) == 0 {
		patterns = DefaultEvents
	}
	var errs []error
	for _, p := range patterns {
		if err := CheckPattern(p); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return Filter{}, errors.Join(errs...)
	}
	return Filter{patterns: append([]string(nil), patterns...)}, nil
}

// CheckPattern reports whether p is a well-formed pattern that matches at
// least one known event; the error wraps ErrNoSuchEvent or
// path.ErrBadPattern.
func CheckPattern(p string) error {
	matched := false
	for _, n := range Names {
		ok, err := path.Match(p, string(n))
		if err != nil {
			return fmt.Errorf("%q: %w", p, err)
		}
		matched = matched || ok
	}
	if !matched {
		known := make([]string, len(Names))
		for i, n := range Names {
			known[i] = string(n)
		}
		return fmt.Errorf("%q %w: the events are %s", p, ErrNoSuchEvent, strings.Join(known, ", "))
	}
	return nil
}

// Match reports whether an event named n goes to the filter's target. The
// zero Filter matches nothing.
func (f Filter) Match(n Name) bool {
	for _, p := range f.patterns {
		if ok, _ := path.Match(p, string(n)); ok {
			return true
		}
	}
	return false
}
