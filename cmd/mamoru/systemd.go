package main

import (
	"net"
	"os"
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
