package cli

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/vmctl/vmctl/internal/environment"
)

// localAppSource reads the app's source directory from the local
// environment file, when there is one; VMCTL_APP_SOURCE wins over it.
func localAppSource(dir string, lookup func(string) (string, bool)) (string, error) {
	path := filepath.Join(dir, "local.yaml")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	env, err := environment.Load(path)
	if err != nil {
		return "", err
	}
	return env.AppSource(lookup)
}
