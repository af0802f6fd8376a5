package clock

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Synced answers from the kernel when adjtimex may be called, and from
// timesyncd's mark when it is refused, as ProtectClock=yes refuses it.
func TestSynced(t *testing.T) {
	present := filepath.Join(t.TempDir(), "synchronized")
	if err := os.WriteFile(present, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	absent := filepath.Join(t.TempDir(), "synchronized")
	kernel := func(state int, status int32) func(*syscall.Timex) (int, error) {
		return func(tx *syscall.Timex) (int, error) { tx.Status = status; return state, nil }
	}
	refused := func(*syscall.Timex) (int, error) { return 0, syscall.EPERM }
	const ok, timeError, staUnsync = 0, 5, 0x0040
	for _, tc := range []struct {
		name     string
		adjtimex func(*syscall.Timex) (int, error)
		mark     string
		want     bool
	}{
		{"kernel synced", kernel(ok, 0), absent, true},
		{"kernel unsynced", kernel(ok, staUnsync), present, false},
		{"kernel time error", kernel(timeError, 0), present, false},
		{"refused, timesyncd synced", refused, present, true},
		{"refused, no mark", refused, absent, false},
	} {
		if got := synced(tc.adjtimex, tc.mark); got != tc.want {
			t.Errorf("%s: synced = %v, want %v", tc.name, got, tc.want)
		}
	}
}
