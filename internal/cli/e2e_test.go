package cli

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/awssim"
	"github.com/vmctl/vmctl/internal/dockertest"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/release"
)

// The whole promotion on the bundled demo stack, from an empty simulated
// account to prod, through the commands only: infra apply (staging, prod:
// the cluster, load balancer, target groups and GPU capacity from
// CloudFormation) → build a release → push (digests proven) → deploy
// staging (Fargate services and OpenVoice on simulated g4dn hosts) → verify
// staging → promote to prod (0 layer bytes within one registry) → status
// --all shows one set of digests.
func TestEndToEndPromotion(t *testing.T) {
	api := dockertest.Client(t)
	dockertest.DemoBinary(t)
	sim := awssim.New()
	t.Cleanup(sim.Close)
	sim.UseDocker(api)
	sim.SetCircuitBreakerThreshold(2)
	root := dockertest.RepoRoot()
	g := &globalOptions{
		files: []string{filepath.Join(root, "compose", "demo.yaml")}, projectName: "vmctle2e",
		envDir: filepath.Join(root, "environments"), releaseDir: t.TempDir(), progress: "quiet",
	}
	keys := map[string]string{"staging": "AKIASTAGING", "prod": "AKIAPROD", "dev": "AKIADEV"}
	ctx := context.Background()
	// The account starts empty: only its users exist. Everything else comes from commands.
	for name, key := range keys {
		env, err := environment.LoadNamed(g.envDir, name)
		require.NoError(t, err)
		sim.AddUser(key, awssim.Principal{Account: env.AWS.AccountID, ARN: "arn:aws:iam::" + env.AWS.AccountID + ":role/ci"})
	}
	factory := func() (*Factory, *lockedBuffer, *lockedBuffer) {
		out, errOut := &lockedBuffer{}, &lockedBuffer{}
		f := NewFactory(&IOStreams{In: strings.NewReader(""), Out: out, ErrOut: errOut})
		f.AWSConfig = simAWSByEnv(sim, keys)
		return f, out, errOut
	}
	run := func(args ...string) string {
		t.Helper()
		f, out, errOut := factory()
		base := []string{"-f", g.files[0], "-p", g.projectName, "--env-dir", g.envDir, "--release-dir", g.releaseDir, "--progress", "quiet"}
		code := Run(ctx, f, append(base, args...))
		require.Equal(t, ExitOK, code, "%v: %s", args, errOut.String())
		return out.String()
	}

	// The foundations (dev is left without one: status --all shows it as such).
	for _, env := range []string{"staging", "prod"} {
		var applied struct{ Status string }
		require.NoError(t, json.Unmarshal([]byte(run("infra", "apply", "--env", env, "--yes", "--approve-prod", "-o", "json")), &applied), env)
		assert.Equal(t, "CREATE_COMPLETE", applied.Status, env)
	}
	t.Setenv("VMCTL_REVISION", "e2e0123456789")

	var built buildResult
	require.NoError(t, json.Unmarshal([]byte(run("build", "-o", "json")), &built))
	rel := built.Release
	require.NotNil(t, rel)

	run("push", "--env", "staging", "--yes", "--approve-prod")
	pushed, err := release.Store{Dir: g.releaseDir}.Get(rel.ID)
	require.NoError(t, err)
	for _, svc := range []string{"frontend", "backend", "voicevox", "openvoice"} {
		require.NotEmpty(t, pushed.Images[svc].Digest, svc)
	}

	run("deploy", "--env", "staging", "--yes", "--approve-prod")

	f, out, errOut := factory()
	require.NoError(t, runVerify(ctx, f, g, &verifyOptions{env: "staging", output: "table", tune: quickVerify(), approval: approvalFlags{yes: true, approveProd: true}}), out.String()+errOut.String())

	f, out, errOut = factory()
	po := &promoteOptions{output: "table", approval: approvalFlags{yes: true, approveProd: true}, verifyFrom: quickVerify(), verifyTo: quickVerify(), poll: 100 * time.Millisecond}
	require.NoError(t, runPromote(ctx, f, g, po, "staging", "prod"), out.String()+errOut.String())
	assert.Contains(t, out.String()+errOut.String(), "no layer moves")

	var view struct {
		Environments []struct {
			Name     string
			Reason   string
			Release  string
			Services map[string]struct{ Release, Digest string }
		}
	}
	require.NoError(t, json.Unmarshal([]byte(run("status", "--all", "-o", "json")), &view))
	seen := map[string]bool{}
	for _, e := range view.Environments {
		if e.Name != "staging" && e.Name != "prod" {
			continue
		}
		seen[e.Name] = true
		assert.Empty(t, e.Reason, e.Name)
		for _, svc := range []string{"frontend", "backend", "voicevox", "openvoice"} {
			assert.Equal(t, pushed.Images[svc].Digest, e.Services[svc].Digest, "%s %s runs the digest built here", e.Name, svc)
			assert.Equal(t, rel.ID, e.Services[svc].Release, "%s %s", e.Name, svc)
		}
	}
	assert.True(t, seen["staging"] && seen["prod"], "both environments in the parity view")
}
