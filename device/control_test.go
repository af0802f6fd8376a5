package device

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzReadRequest feeds the control socket's reader any bytes: it never
// panics, never holds more than a bounded line, and what it accepts is a
// known request with a source.
func FuzzReadRequest(f *testing.F) {
	for _, seed := range []string{
		`{"op":"trigger","source":"cli"}` + "\n",
		`{"op":"status"}` + "\n",
		`{"op":"trigger"}`,
		`{"op":"reboot"}` + "\n",
		`{"op":"trigger","source":"` + strings.Repeat("x", 5000) + `"}` + "\n",
		"\x00\xff{",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		wr, err := readRequest(bytes.NewReader(b))
		if err != nil {
			return
		}
		if wr.Op != opTrigger && wr.Op != opStatus {
			t.Errorf("accepted op %q", wr.Op)
		}
		if wr.Source == "" {
			t.Error("accepted a request with no source")
		}
		if i := bytes.IndexByte(b, '\n'); i < 0 || i >= maxRequest {
			t.Errorf("accepted %d bytes with no newline within %d", len(b), maxRequest)
		}
	})
}

// A refusal crosses the control socket as a code and comes back wrapping
// the same sentinel, with its message whole.
func TestRefusalsCrossTheSocket(t *testing.T) {
	for _, sentinel := range []error{ErrOutsideHours, ErrNotRecording, ErrFault, ErrSpoolFull} {
		sent := &refusal{reason: sentinel, msg: "not recording: " + sentinel.Error()}
		got := errorResponse(sent).err()
		if !errors.Is(got, sentinel) || got.Error() != sent.Error() {
			t.Errorf("%v came back as %v", sentinel, got)
		}
	}
	if got := errorResponse(errors.New("disk on fire")).err(); got == nil || got.Error() != "disk on fire" || errors.Is(got, ErrFault) {
		t.Errorf("a plain error came back as %v", got)
	}
}
