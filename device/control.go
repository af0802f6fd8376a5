package device

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"
)

// The control socket lets `mamoru trigger` and `mamoru status` talk to the
// running recorder: one JSON request line, one JSON response line.
type control struct {
	ln   net.Listener
	reqs chan<- request
	log  *slog.Logger
}

type wireRequest struct {
	Op     string `json:"op"`
	Source string `json:"source,omitempty"`
}

func listenControl(path string, reqs chan<- request, log *slog.Logger) (*control, error) {
	// The state directory is locked, so a socket already there was left by
	// a recorder that died.
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("device: control socket: %w", err)
	}
	os.Chmod(path, 0o660)
	return &control{ln: ln, reqs: reqs, log: log}, nil
}

func (c *control) close() { c.ln.Close() }

func (c *control) serve(ctx context.Context) {
	for {
		conn, err := c.ln.Accept()
		if err != nil {
			return
		}
		go c.handle(ctx, conn)
	}
}

func (c *control) handle(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	at := time.Now()
	var wr wireRequest
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &wr)
	}
	var resp response
	if err != nil {
		resp.Error = "bad request: " + err.Error()
	} else {
		src := wr.Source
		if src == "" {
			src = "cli"
		}
		q := request{op: wr.Op, source: src, at: at, reply: make(chan response, 1)}
		select {
		case c.reqs <- q:
			resp = <-q.reply
		case <-ctx.Done():
			resp.Error = "recorder is shutting down"
		}
	}
	json.NewEncoder(conn).Encode(resp)
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
	if resp.Error != "" {
		return resp, errors.New(resp.Error)
	}
	return resp, nil
}

// Trigger raises an incident on the recorder running on stateDir, as the
// button does, recorded with the given source.
func Trigger(ctx context.Context, stateDir, source string) (TriggerResult, error) {
	resp, err := call(ctx, stateDir, wireRequest{Op: "trigger", Source: source})
	if err != nil {
		return TriggerResult{}, err
	}
	return *resp.Trigger, nil
}

// GetStatus asks the recorder running on stateDir for its status.
func GetStatus(ctx context.Context, stateDir string) (Status, error) {
	resp, err := call(ctx, stateDir, wireRequest{Op: "status"})
	if err != nil {
		return Status{}, err
	}
	return *resp.Status, nil
}
