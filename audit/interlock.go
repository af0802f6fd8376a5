package audit

import (
	"errors"
	"fmt"
)

// ErrInterlock means the log records capture running while the indicator
// was off: the operating rules' promise was broken.
var ErrInterlock = errors.New("audit: capture ran with the indicator off")

// CheckInterlock reads the log's indicator and capture entries in order and
// returns an error wrapping ErrInterlock for each place where capture
// started with the indicator off, or the indicator went off while capture
// ran. A "start" entry begins a new run: the last one's process is gone,
// and its camera and microphone with it.
func CheckInterlock(entries []Entry) error {
	var errs []error
	lit, capturing := false, false
	for _, e := range entries {
		switch {
		case e.Event == "start":
			lit, capturing = false, false
		case e.Event == "indicator":
			lit = e.Fields["on"] == "true"
			if !lit && capturing {
				errs = append(errs, fmt.Errorf("%w: entry %d: the indicator went off while capturing", ErrInterlock, e.Seq))
			}
		case e.Event == "capture" && e.Fields["state"] == "started":
			if !lit {
				errs = append(errs, fmt.Errorf("%w: entry %d: capture started with the indicator off", ErrInterlock, e.Seq))
			}
			capturing = true
		case e.Event == "capture" && e.Fields["state"] == "stopped":
			capturing = false
		}
	}
	return errors.Join(errs...)
}
