//go:build !unix

package doctor

import "errors"

// DiskFree is not implemented off Unix; the check is skipped.
func DiskFree(string) (uint64, error) { return 0, errors.New("not supported on this OS") }
