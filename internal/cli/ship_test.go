package cli

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/dockertest"
)

func TestShipTargetsTheAutoEnvironments(t *testing.T) {
	shipped := filepath.Join(dockertest.RepoRoot(), "environments")
	auto, err := autoEnvironments(shipped)
	require.NoError(t, err)
	assert.Equal(t, []string{"dev"}, auto, "dev deploys on its own; staging and prod are promoted to")

	// Without an auto environment, ship refuses before it builds anything.
	dir := t.TempDir()
	for _, name := range []string{"local.yaml", "staging.yaml", "prod.yaml"} {
		data, err := os.ReadFile(filepath.Join(shipped, name))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), data, 0o644))
	}
	code, _, errOut := run(t, nil, "--env-dir", dir, "ship")
	assert.Equal(t, ExitError, code)
	assert.Contains(t, errOut, "ship: no environment in "+dir+" says deployment.auto: true (prod, staging wait for approval): set it on dev")
}
