package clock

import (
	"os"
	"syscall"
)

// timesyncMark is the file systemd-timesyncd creates once it has
// synchronised the clock, and keeps until the next boot.
const timesyncMark = "/run/systemd/timesync/synchronized"

// Synced reports whether NTP has synchronised the clock. It asks the
// kernel first: the STA_UNSYNC flag, which the kernel clears while an NTP
// daemon (timesyncd, chrony) keeps the clock disciplined. The packaged
// unit's ProtectClock=yes refuses adjtimex altogether (EPERM), even only
// to read that flag; then timesyncd's mark answers instead. Without the
// mark (chrony, or no NTP daemon at all) the answer is false: the clock
// is not known to be right.
func Synced() bool { return synced(syscall.Adjtimex, timesyncMark) }

// synced is Synced with the kernel call and the mark's path handed in.
func synced(adjtimex func(*syscall.Timex) (int, error), mark string) bool {
	var tx syscall.Timex
	state, err := adjtimex(&tx)
	if err != nil {
		_, err := os.Stat(mark)
		return err == nil
	}
	const timeError, staUnsync = 5, 0x0040
	return state != timeError && tx.Status&staUnsync == 0
}
