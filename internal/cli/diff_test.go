package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/ecs"
)

func TestDiffLocalProdIsDeclaredOnly(t *testing.T) {
	code, out, errOut := runSub(t, newDiffCmd, nil, "local", "prod")
	require.Equal(t, ExitOK, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	assert.Equal(t, "SERVICE\tFIELD\tLOCAL\tPROD\tCLASS", lines[0])
	for _, want := range []string{
		"backend\tcpu\thost's\t2 vCPU\tdeclared",
		"backend\tmemory\thost's\t4096 MiB\tdeclared",
		"backend\tenv DATABASE_URL\tset\tsecret\tdeclared",
		"backend\tscaling\t-\t2–20 tasks\tdeclared",
		"openvoice\tgpu model\t-\tNVIDIA T4 on g4dn.xlarge\tdeclared",
		"openvoice\tvolume /models\tvolume model_cache\tefs {vmctl-prod:FileSystemId} {vmctl-prod:AccessPointModelCache}\tdeclared",
		"postgres\truns\tdocker container\tRDS PostgreSQL (Multi-AZ) at {vmctl-prod:PostgresEndpoint}\tdeclared",
	} {
		assert.Contains(t, lines, want)
	}
	assert.NotContains(t, out, "\tdrift")
	assert.Regexp(t, `no drift; \d+ declared difference\(s\)$`, lines[len(lines)-1])
}

func TestDiffJSON(t *testing.T) {
	code, out, errOut := runSub(t, newDiffCmd, nil, "staging", "prod", "--output", "json")
	require.Equal(t, ExitOK, code, errOut)
	var rep ecs.Report
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	assert.Equal(t, "staging", rep.A)
	assert.Equal(t, "prod", rep.B)
	assert.Zero(t, rep.Drift)
	assert.Contains(t, rep.Differences, ecs.Difference{Service: ecs.EnvironmentFacts, Field: "strategy", A: "rolling", B: "blue-green", Class: ecs.Declared})
	assert.Contains(t, rep.Differences, ecs.Difference{Service: "openvoice", Field: "capacity", A: "vmctl-staging-gpu", B: "vmctl-prod-gpu (Spot instances above 1 on demand)", Class: ecs.Declared})

	code, out, _ = runSub(t, newDiffCmd, nil, "prod", "prod")
	require.Equal(t, ExitOK, code)
	assert.Equal(t, "prod and prod run the same stack the same way\n", out)
}

// Different digests are drift: nothing in an environment file asks for another image.
func TestDiffDriftExitsNotReady(t *testing.T) {
	staging, prod := writeRelease(t, "r41", "old"), writeRelease(t, "r42", "new")
	code, out, errOut := runSub(t, newDiffCmd, nil, "staging", "prod", "--release", staging, "--release", prod)
	assert.Equal(t, ExitNotReady, code)
	assert.Equal(t, "vmctl: drift between staging and prod: 4 difference(s) that no environment file declares\n", errOut)
	assert.Regexp(t, `(?m)^backend\tdigest\tsha256:[0-9a-f]{64}\tsha256:[0-9a-f]{64}\tdrift$`, out)
	assert.Contains(t, out, "4 drift; ")

	code, out, _ = runSub(t, newDiffCmd, nil, "staging", "prod", "--release", staging, "--release", prod, "-o", "json")
	assert.Equal(t, ExitNotReady, code)
	var rep ecs.Report
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	assert.Equal(t, 4, rep.Drift)

	// The same release on both sides is parity again.
	code, _, _ = runSub(t, newDiffCmd, nil, "staging", "prod", "--release", prod)
	assert.Equal(t, ExitOK, code)
}

func TestDiffUsage(t *testing.T) {
	rel := writeRelease(t, "r1", "x")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"one environment", []string{"prod"}, "accepts 2 arg(s), received 1"},
		{"three releases", []string{"dev", "prod", "--release", rel, "--release", rel, "--release", rel}, "--release given 3 times"},
		{"a release for the local side", []string{"local", "prod", "--release", rel, "--release", rel}, "--release for local: a local environment runs the images it built"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runSub(t, newDiffCmd, nil, tt.args...)
			assert.Equal(t, ExitUsage, code)
			assert.Empty(t, out)
			assert.Contains(t, errOut, tt.want)
		})
	}
}

// Without a local.yaml, local is the stack alone.
func TestDiffLocalWithoutALocalFile(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile("../../environments/prod.yaml")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "prod.yaml"), b, 0o644))
	code, out, errOut := runSubIn(t, dir, newDiffCmd, nil, "local", "prod")
	require.Equal(t, ExitOK, code, errOut)
	assert.Contains(t, out, "backend\tcpu\thost's\t2 vCPU\tdeclared")
}
