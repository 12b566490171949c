package engine

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func tarNames(t *testing.T, r io.Reader) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		names = append(names, h.Name)
	}
	sort.Strings(names)
	return names
}

func write(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
}

func TestBuildContextIgnoreFiles(t *testing.T) {
	app := t.TempDir()
	write(t, filepath.Join(app, "main.py"), "print()")
	write(t, filepath.Join(app, ".env"), "SECRET=1")
	write(t, filepath.Join(app, "node_modules", "x", "index.js"), "")
	write(t, filepath.Join(app, ".dockerignore"), "node_modules\n")
	images := t.TempDir()
	write(t, filepath.Join(images, "Dockerfile"), "FROM scratch\n")

	// The context's own .dockerignore applies to its own Dockerfile.
	r, df, err := buildContext(&types.BuildConfig{Context: app, Dockerfile: filepath.Join(images, "Dockerfile")})
	require.NoError(t, err)
	assert.Equal(t, ".vmctl.Dockerfile", df)
	assert.Equal(t, []string{".dockerignore", ".env", ".vmctl.Dockerfile", "main.py"}, tarNames(t, r))

	// A Dockerfile.dockerignore beside an external Dockerfile wins.
	write(t, filepath.Join(images, "Dockerfile.dockerignore"), ".env\n.dockerignore\n")
	r, _, err = buildContext(&types.BuildConfig{Context: app, Dockerfile: filepath.Join(images, "Dockerfile")})
	require.NoError(t, err)
	assert.Equal(t, []string{".vmctl.Dockerfile", "main.py", "node_modules", "node_modules/x", "node_modules/x/index.js"}, tarNames(t, r))
}

func TestBuildContextErrors(t *testing.T) {
	_, _, err := buildContext(&types.BuildConfig{Context: "/nonexistent/app/backend"})
	require.ErrorContains(t, err, "build context /nonexistent/app/backend is not a directory: set the app source")
	_, _, err = buildContext(&types.BuildConfig{Context: "https://github.com/x/y.git"})
	require.ErrorContains(t, err, "remote build context")
}
