package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/release"
)

// runSub runs one subcommand built by newCmd against the real stack and environments, with
// env as the process environment, and returns its exit code and streams.
func runSub(t *testing.T, newCmd func(*Factory, *globalOptions) *cobra.Command, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	return runSubIn(t, "../../environments", newCmd, env, args...)
}

// runSubIn is runSub with the environment files in envDir.
func runSubIn(t *testing.T, envDir string, newCmd func(*Factory, *globalOptions) *cobra.Command, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	f := testFactory(env, &out, &errOut)
	f.DockerClient = nil // plan and diff must never reach for the engine
	g := &globalOptions{files: []string{"../../compose/compose.yaml"}, envDir: envDir}
	cmd := newCmd(f, g)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	ctx := context.Background()
	c, err := cmd.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK, out.String(), errOut.String()
	}
	return reportError(&errOut, c, err, ctx), out.String(), errOut.String()
}

// writeRelease writes a release that pins every deployed service, digests derived from seed.
func writeRelease(t *testing.T, id, seed string) string {
	t.Helper()
	rel := release.Release{ID: id, Revision: "feedc0de", Images: map[string]release.Image{}}
	for _, s := range []string{"frontend", "backend", "voicevox", "openvoice"} {
		sum := sha256.Sum256([]byte(seed + s))
		rel.Images[s] = release.Image{Digest: "sha256:" + hex.EncodeToString(sum[:])}
	}
	b, err := json.Marshal(rel)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), id+".json")
	require.NoError(t, os.WriteFile(path, b, 0o644))
	return path
}

// goldenRelease is the release internal/ecs renders its golden files with.
func goldenRelease(t *testing.T) string {
	t.Helper()
	rel := release.Release{ID: "r20260101-1", Revision: "0123456789abcdef0123456789abcdef01234567", Images: map[string]release.Image{}}
	for _, s := range []string{"frontend", "backend", "voicevox", "openvoice"} {
		sum := sha256.Sum256([]byte(s))
		rel.Images[s] = release.Image{Digest: "sha256:" + hex.EncodeToString(sum[:])}
	}
	b, err := json.Marshal(rel)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "golden.json")
	require.NoError(t, os.WriteFile(path, b, 0o644))
	return path
}

func TestPlanSummary(t *testing.T) {
	code, out, errOut := runSub(t, newPlanCmd, nil, "--env", "prod", "--release", writeRelease(t, "r7", "x"))
	require.Equal(t, ExitOK, code, errOut)
	assert.Empty(t, errOut)
	for _, want := range []string{
		"Plan for prod: account 333333333333, ap-northeast-1, cluster vmctl-prod",
		"release r7 (revision feedc0de); blue-green deploys, each deploy needs approval",
		"Logs: /vmctl/prod/app, kept 30 days",
		"Ids the file leaves out come from stack vmctl-prod's outputs, shown as {vmctl-prod:Output}; deploy reads them (vmctl infra apply --env prod creates the stack)",
		"vmapp/backend\tbackend\ton push\tIMMUTABLE\tKMS\treleases; untagged 14d",
		"vmctl-prod-openvoice\tvmapp/openvoice@sha256:",
		"\tEC2\t4096\t15360\t8001/tcp\t/health, CMD every 15s\t1 GPU",
		"vmctl-prod-frontend\tvmapp/frontend@sha256:",
		"\tFARGATE\t512\t1024\t55434/tcp\t/, CMD every 10s\t-",
		"backend\topenvoice,voicevox\t2\t2\t20\tFARGATE\tblue-green, rollback, bake 10m\t{vmctl-prod:SecurityGroupBackend}\t/api/* → vmctl-prod-backend",
		"voicevox\t-\t1\t1\t3\tFARGATE\t",
		"openvoice\tvmctl-prod-gpu\tg4dn.xlarge\t1 × NVIDIA T4\t1\t5\tyes, 1 on demand",
		"postgres\tRDS PostgreSQL\t{vmctl-prod:PostgresEndpoint}\tMulti-AZ",
		"service backend: environment.REDIS_URL: points at redis",
	} {
		assert.Contains(t, out, want)
	}
	assert.NotContains(t, out, "Not pinned")
}

// --output json is the full render, byte for byte what internal/ecs's golden file holds.
func TestPlanJSONIsTheGoldenRender(t *testing.T) {
	code, out, errOut := runSub(t, newPlanCmd, nil, "--env", "prod", "--release", goldenRelease(t), "--output", "json")
	require.Equal(t, ExitOK, code, errOut)
	golden, err := os.ReadFile("../ecs/testdata/prod.golden.json")
	require.NoError(t, err)
	assert.Equal(t, string(golden), out)
}

func TestPlanWithoutAReleaseIsNotPinned(t *testing.T) {
	code, out, errOut := runSub(t, newPlanCmd, nil, "--env", "dev")
	require.Equal(t, ExitOK, code, errOut)
	assert.Contains(t, out, "no release: images are tags, not digests (pass --release)")
	assert.Contains(t, out, "Not pinned: some images are tags")
	assert.Contains(t, out, "Schedule: up mon,tue,wed,thu,fri 08:00–20:00 Asia/Tokyo")
	assert.Contains(t, out, "vmctl-dev-backend\tvmapp/backend:local\t")

	code, out, _ = runSub(t, newPlanCmd, nil, "--env", "dev", "-o", "json")
	require.Equal(t, ExitOK, code)
	var plan struct {
		Unpinned bool `json:"unpinned"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &plan))
	assert.True(t, plan.Unpinned)
}

func TestPlanErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"id":"r1","images":{"backend":{"digest":"latest"}}}`), 0o644))
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no --env", nil, ExitUsage, `required flag(s) "env" not set`},
		{"bad --output", []string{"--env", "prod", "-o", "xml"}, ExitUsage, `invalid --output "xml"`},
		{"unknown environment", []string{"--env", "qa"}, ExitError, `unknown environment "qa": ../../environments has dev, local, prod, staging`},
		{"local environment", []string{"--env", "local"}, ExitError, "plan local: it is kind local: plan renders AWS environments"},
		{"bad release", []string{"--env", "prod", "--release", bad}, ExitError, `images.backend.digest "latest" is not sha256:`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runSub(t, newPlanCmd, nil, tt.args...)
			assert.Equal(t, tt.code, code)
			assert.Empty(t, out)
			assert.Contains(t, errOut, tt.want)
		})
	}
}

// A secret in the developer's shell reaches the stack through interpolation; neither plan
// nor diff may ever print it, nor the local-only database password.
func TestNoSecretValueInPlanOrDiff(t *testing.T) {
	const planted = "sk-live-PLANTED-4f9c2e7a"
	env := map[string]string{"D_ID_API_KEY": planted}

	// The planted value does reach the stack, so the test below can fail.
	var out bytes.Buffer
	f := NewFactory(&IOStreams{Out: &out, ErrOut: &out})
	f.Environ = func() []string { return []string{"D_ID_API_KEY=" + planted} }
	st, err := loadRenderStack(context.Background(), f, &globalOptions{files: []string{"../../compose/compose.yaml"}, envDir: "../../environments"})
	require.NoError(t, err)
	require.Equal(t, planted, *st.Project.Services["backend"].Environment["D_ID_API_KEY"])

	rel := writeRelease(t, "r1", "s")
	var runs [][]string
	for _, e := range []string{"dev", "staging", "prod"} {
		runs = append(runs,
			[]string{"plan", "--env", e}, []string{"plan", "--env", e, "-o", "json", "--release", rel},
			[]string{"diff", "local", e}, []string{"diff", e, "local", "-o", "json"})
	}
	for _, args := range runs {
		newCmd := newPlanCmd
		if args[0] == "diff" {
			newCmd = newDiffCmd
		}
		code, out, errOut := runSub(t, newCmd, env, args[1:]...)
		require.Equal(t, ExitOK, code, "%v: %s", args, errOut)
		for _, secret := range []string{planted, "vmapp-local-only"} {
			assert.NotContains(t, out+errOut, secret, args)
		}
	}
}
