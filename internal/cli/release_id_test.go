package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A --release that is a path is refused before anything is read or AWS is asked.
func TestReleaseFlagsRefusePaths(t *testing.T) {
	dir := t.TempDir()
	releases := filepath.Join(dir, "a", "b")
	require.NoError(t, os.MkdirAll(releases, 0o755))
	// What ../../x would reach from the release directory.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "x.json"), []byte(`{"id":"x","images":{}}`), 0o644))

	for _, args := range [][]string{
		{"push", "--env", "dev", "--release", "../../x"},
		{"deploy", "--env", "dev", "--release", "../../x", "--yes"},
		{"rollback", "--env", "dev", "--to", "../../x", "--yes"},
		{"verify", "--env", "dev", "--release", "../../x"},
	} {
		t.Run(args[0], func(t *testing.T) {
			code, _, errOut := run(t, nil, append(args, "--release-dir", releases, "--env-dir", filepath.Join(dir, "none"))...)
			assert.Equal(t, ExitError, code)
			assert.Contains(t, errOut, `release "../../x": not a release id: `)
			assert.Equal(t, 1, strings.Count(strings.TrimSpace(errOut), "\n")+1, "one line: %s", errOut)
		})
	}
}

// A dev file pointing at prod's account is refused before any credentials are read.
func TestUnprotectedFileInAProtectedAccountIsRefused(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join("..", "..", "environments")
	entries, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		require.NoError(t, err)
		if e.Name() == "dev.yaml" {
			b = []byte(strings.ReplaceAll(string(b), "111111111111", "333333333333"))
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644))
	}
	code, _, errOut := run(t, nil, "--env-dir", dir, "rollback", "--env", "dev")
	assert.Equal(t, ExitError, code)
	assert.Contains(t, errOut, "333333333333 is also the account of prod")
	assert.Equal(t, 1, strings.Count(strings.TrimSpace(errOut), "\n")+1, "one line")
}
