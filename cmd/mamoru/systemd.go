package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
)

// notifier speaks systemd's notify protocol ($NOTIFY_SOCKET): READY once
// the indicator and capture are up, WATCHDOG each second the recorder is
// healthy (systemd ignores it when the unit has no WatchdogSec). Outside
// systemd it does nothing.
type notifier struct {
	addr *net.UnixAddr
}

func newNotifier() *notifier {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return &notifier{}
	}
	if path[0] == '@' { // abstract socket
		path = "\x00" + path[1:]
	}
	return &notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}
}

func (n *notifier) send(state string) {
	if n.addr == nil {
		return
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return
	}
	defer c.Close()
	c.Write([]byte(state))
}

// journalHandler logs as slog's text handler does, each line prefixed with
// its syslog priority ("<3>" for an error), which journald reads from a
// service's stderr: 'journalctl -u mamoru -p warning' then shows the
// warnings and errors alone.
type journalHandler struct {
	slog.Handler // a TextHandler writing to out
	out          *priorityWriter
}

// priorityWriter puts the priority of the record being handled before the
// line the text handler writes.
type priorityWriter struct {
	mu       sync.Mutex // held from Handle through the line's Write
	w        io.Writer
	priority int
	line     []byte
}

func (p *priorityWriter) Write(b []byte) (int, error) {
	p.line = append(fmt.Appendf(p.line[:0], "<%d>", p.priority), b...)
	if _, err := p.w.Write(p.line); err != nil {
		return 0, err
	}
	return len(b), nil
}

// newJournalHandler returns a handler writing to w at level and above.
func newJournalHandler(w io.Writer, level slog.Leveler) journalHandler {
	out := &priorityWriter{w: w}
	return journalHandler{slog.NewTextHandler(out, &slog.HandlerOptions{Level: level}), out}
}

func (h journalHandler) Handle(ctx context.Context, r slog.Record) error {
	h.out.mu.Lock()
	defer h.out.mu.Unlock()
	switch {
	case r.Level >= slog.LevelError:
		h.out.priority = 3
	case r.Level >= slog.LevelWarn:
		h.out.priority = 4
	case r.Level >= slog.LevelInfo:
		h.out.priority = 6
	default:
		h.out.priority = 7
	}
	return h.Handler.Handle(ctx, r)
}

func (h journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return journalHandler{h.Handler.WithAttrs(as), h.out}
}

func (h journalHandler) WithGroup(name string) slog.Handler {
	return journalHandler{h.Handler.WithGroup(name), h.out}
}
