package device

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"mamoru/clock"
)

// The control socket lets `mamoru trigger` and `mamoru status` talk to the
// running recorder: one JSON request line, one JSON response line.
type control struct {
	ln      net.Listener
	reqs    chan<- request
	clock   clock.Clock // stamps presses, as the button does
	sources []string    // the sources a request may give, "cli" first
	log     *slog.Logger
	// busy holds a token per connection being served: at most
	// maxConnections at once, so clients cannot pile up goroutines.
	busy chan struct{}
}

// maxConnections bounds the connections served at once.
const maxConnections = 8

// The requests the control socket takes.
const (
	opTrigger = "trigger"
	opStatus  = "status"
	opListen  = "listen"
)

type wireRequest struct {
	Op     string `json:"op"`
	Source string `json:"source,omitempty"`
	// WatchMS keeps the levels measured that long (opListen).
	WatchMS int64 `json:"watch_ms,omitempty"`
}

// request is a command from the control socket, answered on reply.
type request struct {
	op     string
	source string
	watch  time.Duration
	at     time.Time // the recorder's Clock when the request arrived
	reply  chan response
}

type response struct {
	Status  *Status        `json:"status,omitempty"`
	Trigger *TriggerResult `json:"trigger,omitempty"`
	Listen  *ListenStatus  `json:"listen,omitempty"`
	Error   string         `json:"error,omitempty"`
	// Code names the refusal Error is, so that the caller's error wraps
	// the same sentinel (refusalCodes).
	Code string `json:"code,omitempty"`
}

// refusalCodes name each refusal on the wire.
var refusalCodes = map[string]error{
	"outside_hours": ErrOutsideHours,
	"not_recording": ErrNotRecording,
	"fault":         ErrFault,
	"spool_full":    ErrSpoolFull,
}

// errorResponse carries err, and its refusal's code if it is one.
func errorResponse(err error) response {
	resp := response{Error: err.Error()}
	for code, sentinel := range refusalCodes {
		if errors.Is(err, sentinel) {
			resp.Code = code
		}
	}
	return resp
}

// err returns the response's error, wrapping the refusal its code names.
func (r response) err() error {
	if r.Error == "" {
		return nil
	}
	if sentinel, ok := refusalCodes[r.Code]; ok {
		return &refusal{reason: sentinel, msg: r.Error}
	}
	return errors.New(r.Error)
}

// listenControl listens on path. A request's source must be "cli" or one of
// sources.
func listenControl(path string, reqs chan<- request, c clock.Clock, sources []string, log *slog.Logger) (*control, error) {
	// The state directory is locked, so a socket already there was left by
	// a recorder that died.
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("device: control socket: %w", err)
	}
	os.Chmod(path, 0o660)
	return &control{ln: ln, reqs: reqs, clock: c, sources: append([]string{"cli"}, sources...), log: log, busy: make(chan struct{}, maxConnections)}, nil
}

func (c *control) close() { c.ln.Close() }

func (c *control) serve(ctx context.Context) {
	for {
		conn, err := c.ln.Accept()
		if err != nil {
			return
		}
		select {
		case c.busy <- struct{}{}:
			go func() {
				defer func() { <-c.busy }()
				c.handle(ctx, conn)
			}()
		default:
			json.NewEncoder(conn).Encode(response{Error: fmt.Sprintf("busy: %d requests are being served; try again", maxConnections)})
			conn.Close()
		}
	}
}

func (c *control) handle(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	// The deadline is the kernel's, on real time.
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	at := c.clock.Now()
	wr, err := readRequest(conn, c.sources)
	var resp response
	if err != nil {
		resp.Error = "bad request: " + err.Error()
	} else {
		q := request{op: wr.Op, source: wr.Source, watch: time.Duration(wr.WatchMS) * time.Millisecond, at: at, reply: make(chan response, 1)}
		select {
		case c.reqs <- q:
			resp = <-q.reply
		case <-ctx.Done():
			resp.Error = "recorder is shutting down"
		}
	}
	json.NewEncoder(conn).Encode(resp)
}

// maxRequest bounds a request line: a client cannot make the recorder
// hold more than this in memory.
const maxRequest = 4096

// readRequest reads one request line. A request with no source is the
// command line's ("cli"); any other must be one of sources.
func readRequest(r io.Reader, sources []string) (wireRequest, error) {
	var wr wireRequest
	line, err := bufio.NewReader(io.LimitReader(r, maxRequest+1)).ReadBytes('\n')
	if len(line) > maxRequest {
		return wr, fmt.Errorf("request longer than %d bytes", maxRequest)
	}
	if err != nil {
		return wr, err
	}
	if err := json.Unmarshal(line, &wr); err != nil {
		return wr, err
	}
	if wr.Op != opTrigger && wr.Op != opStatus && wr.Op != opListen {
		return wr, fmt.Errorf("unknown request %q", wr.Op)
	}
	if wr.Source == "" {
		wr.Source = "cli"
	}
	if wr.Op == opTrigger && !slices.Contains(sources, wr.Source) {
		return wr, fmt.Errorf("source %q is not one this recorder takes (cli, or device.trigger_sources)", wr.Source)
	}
	return wr, nil
}

// ErrNotRunning means no recorder answers on the state directory's socket.
var ErrNotRunning = errors.New("no recorder is running")

func call(ctx context.Context, stateDir string, wr wireRequest) (response, error) {
	var d net.Dialer
	path := filepath.Join(stateDir, socketFile)
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return response{}, fmt.Errorf("%w (control socket %s: %v)", ErrNotRunning, path, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if err := json.NewEncoder(conn).Encode(wr); err != nil {
		return response{}, err
	}
	var resp response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		return response{}, fmt.Errorf("read reply from %s: %w", path, err)
	}
	return resp, resp.err()
}

// Trigger raises an incident on the recorder running on stateDir, as the
// button does, recorded with the given source.
func Trigger(ctx context.Context, stateDir, source string) (TriggerResult, error) {
	resp, err := call(ctx, stateDir, wireRequest{Op: opTrigger, Source: source})
	if err != nil {
		return TriggerResult{}, err
	}
	return *resp.Trigger, nil
}

// GetStatus asks the recorder running on stateDir for its status.
func GetStatus(ctx context.Context, stateDir string) (Status, error) {
	resp, err := call(ctx, stateDir, wireRequest{Op: opStatus})
	if err != nil {
		return Status{}, err
	}
	return *resp.Status, nil
}

// Listen asks the recorder running on stateDir for the levels it hears,
// and has it go on measuring for watch (at most 30 s) even when listening
// is off, for `mamoru listen`.
func Listen(ctx context.Context, stateDir string, watch time.Duration) (ListenStatus, error) {
	resp, err := call(ctx, stateDir, wireRequest{Op: opListen, WatchMS: watch.Milliseconds()})
	if err != nil {
		return ListenStatus{}, err
	}
	return *resp.Listen, nil
}
