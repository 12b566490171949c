package cli

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// What `vmctl config` prints loads back to the same project: printing it
// again gives the same bytes, and a literal dollar stays a dollar.
func TestConfigOutputReloadsToTheSameProject(t *testing.T) {
	env := map[string]string{
		"VMCTL_APP_SOURCE": t.TempDir(), "FIXTURE_IMAGE": "vmctl-fixture:test", "FIXTURE_CONTEXT": t.TempDir(),
		"API_PORT": "18080", "WEB_PORT": "18081",
	}
	for _, file := range []string{
		"../../compose/compose.yaml", "../../compose/demo.yaml",
		"../engine/testdata/fixture.yaml", "../engine/testdata/bench.yaml", "../engine/testdata/extctx.yaml",
		"testdata/dollars.yaml",
	} {
		for _, format := range []string{"yaml", "json"} {
			t.Run(filepath.Base(file)+"/"+format, func(t *testing.T) {
				code, first, errOut := run(t, env, "-f", file, "config", "--format", format)
				require.Equal(t, ExitOK, code, errOut)
				again := filepath.Join(t.TempDir(), "compose."+format)
				require.NoError(t, os.WriteFile(again, []byte(first), 0o644))
				code, second, errOut := run(t, env, "-f", again, "config", "--format", format)
				require.Equal(t, ExitOK, code, errOut)
				assert.Equal(t, first, second)
			})
		}
	}
	code, out, _ := run(t, nil, "-f", "testdata/dollars.yaml", "config")
	require.Equal(t, ExitOK, code)
	assert.Contains(t, out, `--password="$$(cat /run/secrets/db-password)"`)
	assert.Contains(t, out, `PRICE: $$5`)
	assert.Contains(t, out, `GREETING: hello`)
}
