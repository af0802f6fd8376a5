package audit

import (
	"errors"
	"testing"
)

func TestCheckInterlock(t *testing.T) {
	ind := func(on string) Entry { return Entry{Event: "indicator", Fields: map[string]string{"on": on}} }
	capture := func(state string) Entry { return Entry{Event: "capture", Fields: map[string]string{"state": state}} }
	for _, tc := range []struct {
		name    string
		entries []Entry
		broken  bool
	}{
		{"on, capture, stop, off", []Entry{ind("true"), capture("started"), capture("stopped"), ind("false")}, false},
		{"capture stuck, the indicator left on", []Entry{ind("true"), capture("started"), capture("stuck")}, false},
		{"capture with the indicator off", []Entry{capture("started"), capture("stopped")}, true},
		{"off while capturing", []Entry{ind("true"), capture("started"), ind("false"), capture("stopped")}, true},
		{"an unknown indicator state is not lit", []Entry{ind("unknown"), capture("started")}, true},
		{"a run killed while capturing, the next one starting dark", []Entry{{Event: "start"}, ind("true"), capture("started"), {Event: "start"}, ind("false")}, false},
	} {
		err := CheckInterlock(tc.entries)
		if got := errors.Is(err, ErrInterlock); got != tc.broken {
			t.Errorf("%s: CheckInterlock = %v, want broken %v", tc.name, err, tc.broken)
		}
	}
}
