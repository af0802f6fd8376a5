package device

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

// FuzzReadRequest feeds the control socket's reader any bytes: it never
// panics, never holds more than a bounded line, and what it accepts is a
// known request with a source.
func FuzzReadRequest(f *testing.F) {
	for _, seed := range []string{
		`{"op":"trigger","source":"cli"}` + "\n",
		`{"op":"status"}` + "\n",
		`{"op":"trigger"}`,
		`{"op":"trigger","source":"button"}` + "\n",
		`{"op":"trigger","source":"pos"}` + "\n",
		`{"op":"trigger","source":"\u001b[2Jcli"}` + "\n",
		`{"op":"reboot"}` + "\n",
		`{"op":"trigger","source":"` + strings.Repeat("x", 5000) + `"}` + "\n",
		"\x00\xff{",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		wr, err := readRequest(bytes.NewReader(b), []string{"cli", "pos"})
		if err != nil {
			return
		}
		if wr.Op != opTrigger && wr.Op != opStatus {
			t.Errorf("accepted op %q", wr.Op)
		}
		if wr.Op == opTrigger && wr.Source != "cli" && wr.Source != "pos" {
			t.Errorf("accepted source %q", wr.Source)
		}
		if wr.Source == "" {
			t.Error("accepted a request with no source")
		}
		if i := bytes.IndexByte(b, '\n'); i < 0 || i >= maxRequest {
			t.Errorf("accepted %d bytes with no newline within %d", len(b), maxRequest)
		}
	})
}

// A refusal goes on the wire as a code and comes back wrapping the same
// sentinel, with its message whole. (The machine tests send refusals through
// the socket itself.)
func TestRefusalCodes(t *testing.T) {
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

// The control socket takes a press's source only from its allow-list:
// "cli" and device.trigger_sources. The counter's own sources, and text that
// would carry terminal escapes into a manifest and the audit log, are
// refused.
func TestRequestSources(t *testing.T) {
	for _, tc := range []struct {
		line string
		want string // the source taken, or "" for refused
	}{
		{`{"op":"trigger"}`, "cli"},
		{`{"op":"trigger","source":"cli"}`, "cli"},
		{`{"op":"trigger","source":"pos"}`, "pos"},
		{`{"op":"trigger","source":"button"}`, ""},
		{`{"op":"trigger","source":"sim"}`, ""},
		{`{"op":"trigger","source":"sound"}`, ""},
		{`{"op":"trigger","source":"\u001b]0;owned\u0007"}`, ""},
		{`{"op":"status","source":"anything"}`, "anything"}, // a status press nothing
	} {
		wr, err := readRequest(strings.NewReader(tc.line+"\n"), []string{"cli", "pos"})
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("%s: taken as source %q, want refused", tc.line, wr.Source)
		case tc.want != "" && (err != nil || wr.Source != tc.want):
			t.Errorf("%s: source %q, err %v; want %q", tc.line, wr.Source, err, tc.want)
		}
	}
}

// A client that opens connections and sends nothing cannot make the
// recorder serve more than maxConnections at once: the next is told busy.
func TestControlConnectionsBounded(t *testing.T) {
	dir := t.TempDir()
	reqs := make(chan request)
	ctl, err := listenControl(filepath.Join(dir, socketFile), reqs, clockwork.NewFakeClock(), nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); ctl.serve(t.Context()) }()
	defer func() { ctl.close(); <-done }()
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range maxConnections {
		c, err := net.Dial("unix", filepath.Join(dir, socketFile))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	// The held connections take their tokens as they are accepted, in
	// order; the next is refused once all are taken.
	for len(ctl.busy) < maxConnections {
		time.Sleep(time.Millisecond)
	}
	c, err := net.Dial("unix", filepath.Join(dir, socketFile))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var resp response
	if err := json.NewDecoder(c).Decode(&resp); err != nil || !strings.HasPrefix(resp.Error, "busy") {
		t.Errorf("connection %d: %+v, %v; want busy", maxConnections+1, resp, err)
	}
}
