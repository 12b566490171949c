//go:build unix

package doctor

import "golang.org/x/sys/unix"

// DiskFree is the space available to unprivileged users under path.
func DiskFree(path string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}
