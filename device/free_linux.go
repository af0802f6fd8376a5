package device

import "syscall"

// cardFree returns the bytes free for the recorder on the filesystem
// holding dir.
func cardFree(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
