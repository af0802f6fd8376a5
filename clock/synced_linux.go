package clock

import "syscall"

// Synced asks the kernel whether NTP has synchronised the clock: the
// STA_UNSYNC flag, which the kernel clears while an NTP daemon (timesyncd,
// chrony) keeps the clock disciplined.
func Synced() bool {
	var tx syscall.Timex
	state, err := syscall.Adjtimex(&tx)
	const timeError, staUnsync = 5, 0x0040
	return err == nil && state != timeError && tx.Status&staUnsync == 0
}
