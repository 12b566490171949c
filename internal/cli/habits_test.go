package cli

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A .env beside the compose file is read wherever vmctl runs from, as
// docker compose reads it (issue #12).
func TestDotEnvBesideTheComposeFile(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(`services:
  web:
    image: scratch
    volumes:
      - ${DATA_DIR:?variable is not set}:/data
`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".env"), []byte("DATA_DIR=./data\n"), 0o644))

	code, out, errOut := run(t, nil, "-f", filepath.Join(dir, "compose.yaml"), "config")
	require.Equal(t, ExitOK, code, errOut)
	assert.Contains(t, out, filepath.Join(dir, "data"))

	// The shell's value wins over .env's, as in compose.
	code, out, errOut = run(t, map[string]string{"DATA_DIR": "/srv/x"}, "-f", filepath.Join(dir, "compose.yaml"), "config")
	require.Equal(t, ExitOK, code, errOut)
	assert.Contains(t, out, "/srv/x")
}

// compose-go's warnings come out in vmctl's voice, not as logrus lines.
func TestLoaderWarningsInVmctlsVoice(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "compose.yaml")
	require.NoError(t, os.WriteFile(file, []byte("version: \"3\"\nservices:\n  web:\n    image: scratch\n    environment:\n      X: ${UNSET_FOR_TEST}\n"), 0o644))
	code, _, errOut := run(t, nil, "-f", file, "config")
	require.Equal(t, ExitOK, code, errOut)
	assert.Contains(t, errOut, "vmctl: warning: "+file+": the attribute `version` is obsolete")
	assert.Contains(t, errOut, `vmctl: warning: The "UNSET_FOR_TEST" variable is not set`)
	assert.NotContains(t, errOut, "level=")
	assert.NotContains(t, errOut, "time=")
}
