package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	vmaws "github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/awssim"
	"github.com/vmctl/vmctl/internal/awssim/simtest"
	"github.com/vmctl/vmctl/internal/dockertest"
	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/infra"
	"github.com/vmctl/vmctl/internal/progress"
	"github.com/vmctl/vmctl/internal/registry"
	"github.com/vmctl/vmctl/internal/release"
	"github.com/vmctl/vmctl/internal/rollout"
	"github.com/vmctl/vmctl/internal/stack"
	"github.com/vmctl/vmctl/internal/verify"
)

// readyProbe is what OpenVoice's check prints on a ready g4dn host.
const readyProbe = `{"torch_version":"2.0.1+cu118","torch_cuda_version":"11.8","cudnn_version":8700,"cudnn_major":8,"cuda_available":true,"device_count":1,"devices":[{"index":0,"name":"Tesla T4","capability":"7.5","total_memory_mib":15102}],"ok":true,"error":null}`

// quickVerify runs the demo image's check and polls at the simulator's pace.
func quickVerify() verify.Options {
	return verify.Options{
		ProbeCommand: []string{"cuda-check"}, ProbeEnv: map[string]string{"DEMO_CUDA_CHECK": readyProbe},
		Poll: 100 * time.Millisecond, Settle: 30 * time.Second, SSMTimeout: 10 * time.Second,
		ProbeTimeout: time.Minute, LogsTimeout: 5 * time.Second, HTTPTimeout: 2 * time.Second,
	}
}

// cloudWorld is the demo stack's release r1 in the local release store,
// pushed to the simulator's ECR and deployed to staging.
type cloudWorld struct {
	sim  *awssim.Sim
	g    *globalOptions
	keys map[string]string // environment → access key
	rel  *release.Release
	st   *stack.Stack
	envs map[string]*environment.Environment
}

func newCloudWorld(t *testing.T) *cloudWorld {
	t.Helper()
	api := dockertest.Client(t)
	image := dockertest.FixtureImageBuilt(t, api)
	ctx := context.Background()
	inspect, err := api.ImageInspect(ctx, image)
	require.NoError(t, err)
	root := dockertest.RepoRoot()
	w := &cloudWorld{
		sim:  awssim.New(),
		keys: map[string]string{"staging": "AKIASTAGING", "prod": "AKIAPROD"},
		envs: map[string]*environment.Environment{},
		g: &globalOptions{
			files: []string{filepath.Join(root, "compose", "demo.yaml")}, envDir: filepath.Join(root, "environments"),
			releaseDir: t.TempDir(), progress: "quiet",
		},
	}
	t.Cleanup(w.sim.Close)
	w.sim.UseDocker(api)
	w.st, err = stack.Load(ctx, stack.LoadOptions{Files: w.g.files})
	require.NoError(t, err)
	// The account starts empty: each environment's foundation comes from its stack, and
	// envs hold the environments with the stack's ids, as the commands resolve them.
	for name, key := range w.keys {
		env, err := environment.LoadNamed(w.g.envDir, name)
		require.NoError(t, err)
		w.sim.AddUser(key, awssim.Principal{Account: env.AWS.AccountID, ARN: "arn:aws:iam::" + env.AWS.AccountID + ":role/ci"})
		w.envs[name], err = infra.Resolve(env, simtest.Foundation(t, w.sim, key, w.st, env))
		require.NoError(t, err)
	}

	w.rel = &release.Release{ID: "r1", Revision: "0123456789abcdef", Created: time.Now().UTC(), Images: map[string]release.Image{}}
	for _, svc := range []string{"frontend", "backend", "voicevox", "openvoice"} {
		w.rel.Images[svc] = release.Image{ImageID: inspect.ID, LocalRef: image}
	}
	c := w.clients(t, "staging")
	plan, err := ecs.Render(w.st, w.envs["staging"], *w.rel)
	require.NoError(t, err)
	pushed, err := registry.Push(ctx, c.ECR, api, plan, w.rel, progress.Discard{})
	require.NoError(t, err)
	for svc, d := range registry.Digests(pushed) {
		img := w.rel.Images[svc]
		img.Digest = d
		w.rel.Images[svc] = img
	}
	require.NoError(t, releaseStore(w.g).Save(*w.rel))
	w.provisionAndDeploy(t, "staging")
	return w
}

func (w *cloudWorld) awsConfig(env string) func(ctx context.Context, env *environment.Environment) (sdkaws.Config, error) {
	return simAWS(w.sim, w.keys[env])
}

func (w *cloudWorld) clients(t *testing.T, env string) vmaws.Clients {
	t.Helper()
	cfg, err := w.awsConfig(env)(context.Background(), w.envs[env])
	require.NoError(t, err)
	return vmaws.NewClients(cfg)
}

// provisionAndDeploy, for staging, deploys r1 onto the foundation (managed
// scaling adds the g4dn host verify's check task needs beside the service's).
func (w *cloudWorld) provisionAndDeploy(t *testing.T, env string) {
	t.Helper()
	plan, err := ecs.Render(w.st, w.envs[env], *w.rel)
	require.NoError(t, err)
	if env != "staging" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, err = rollout.Deploy(ctx, w.clients(t, env), rollout.Options{Plan: plan, Release: w.rel, Poll: 100 * time.Millisecond})
	require.NoError(t, err)
}

// factory is a Factory with captured streams whose AWS credentials are env's.
func (w *cloudWorld) factory(env string) (*Factory, *bytes.Buffer, *bytes.Buffer) {
	var out, errOut bytes.Buffer
	f := NewFactory(&IOStreams{Out: &out, ErrOut: &errOut})
	f.LookupEnv = func(string) (string, bool) { return "", false }
	f.Environ = func() []string { return nil }
	if env != "" {
		f.AWSConfig = w.awsConfig(env)
	}
	return f, &out, &errOut
}

func exitCode(err error) int {
	var xe *exitError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &xe):
		return xe.code
	}
	return ExitError
}

func TestVerifyCommand(t *testing.T) {
	w := newCloudWorld(t)
	ctx := context.Background()

	// Staging is protected, and the CUDA probe starts a task there: without approval
	// verify refuses before it starts anything; --no-probe verifies without it, saying so.
	f, out, errOut := w.factory("staging")
	err := runVerify(ctx, f, w.g, &verifyOptions{env: "staging", output: "table", tune: quickVerify()})
	require.ErrorIs(t, err, vmaws.ErrNotApproved)
	assert.Contains(t, err.Error(), "or pass --no-probe to verify without it")
	assert.Zero(t, w.sim.Calls("ECS.RunTask"))
	f, out, errOut = w.factory("staging")
	err = runVerify(ctx, f, w.g, &verifyOptions{env: "staging", output: "table", tune: quickVerify(), noProbe: true})
	require.NoError(t, err, errOut.String()+out.String())
	assert.Regexp(t, `(?m)^cuda-probe	openvoice	skipped	not run \(--no-probe\)`, out.String())
	assert.Zero(t, w.sim.Calls("ECS.RunTask"))

	// Approved, the release staging runs, from the local store: every check passes.
	f, out, errOut = w.factory("staging")
	err = runVerify(ctx, f, w.g, &verifyOptions{env: "staging", output: "table", tune: quickVerify(), approval: approvalFlags{yes: true, approveProd: true}})
	require.NoError(t, err, errOut.String()+out.String())
	assert.Contains(t, out.String(), "Verify staging (cluster vmctl-staging), release r1\n")
	assert.Regexp(t, `(?m)^parity\tbackend\tpass\t2 running tasks run the release's backend sha256:`, out.String())
	// The foundation routes each service by an explicit rule (the catch-all last) and adds
	// the backend's health path to its /api/* rule, so both answer through the ALB.
	assert.Regexp(t, `(?m)^endpoint\tfrontend\tpass\tGET http://127\.0\.0\.1:\d+/ answered 2xx through rule \d+ \(/\*\) of listener HTTP:80; P95 \S+ over 20 requests \(target 200ms\)$`, out.String())
	assert.Regexp(t, `(?m)^endpoint\tbackend\tpass\tGET http://127\.0\.0\.1:\d+/health answered 2xx through rule \d+ \(/api/\*, /health\) of listener HTTP:80; P95 \S+ over 20 requests \(target 200ms\)$`, out.String())
	assert.Regexp(t, `(?m)^gpu-host\ti-\w+\tpass\tdriver 535\.104\.05, Tesla T4`, out.String())
	assert.Regexp(t, `(?m)^cuda-probe\topenvoice\tpass\tready: torch 2\.0\.1\+cu118, CUDA 11\.8, cuDNN 8700, Tesla T4 \(7\.5\)`, out.String())
	assert.Contains(t, out.String(), "Verdict: warning\n")

	// A too-old driver on one GPU host: exit 3, with the reason and the fix.
	var group string
	for _, s := range mustPlan(t, w, "staging").Services {
		if s.Hosts != nil {
			group = s.Hosts.AutoScalingGroup
		}
	}
	host := w.sim.GroupInstances(group)[0]
	require.True(t, w.sim.SetInstanceGPU(host.ID, &awssim.GPUFacts{Model: "Tesla T4", DriverVersion: "418.87.01", MemoryMiB: 15360, ComputeCapability: "7.5"}))
	f, out, _ = w.factory("staging")
	err = runVerify(ctx, f, w.g, &verifyOptions{env: "staging", release: "r1", output: "json", tune: quickVerify(), approval: approvalFlags{yes: true, approveProd: true}})
	assert.Equal(t, ExitNotReady, exitCode(err))
	assert.Contains(t, err.Error(), "gpu-host "+host.ID+" fail: driver 418.87.01")
	var rep verify.Report
	require.NoError(t, json.Unmarshal(out.Bytes(), &rep))
	assert.Equal(t, verify.Fail, rep.Verdict)
	assert.Len(t, rep.GPUHosts, 2)
	w.sim.SetInstanceGPU(host.ID, awssim.T4())

	// A check task that cannot finish in time: could not tell, exit 4.
	tune := quickVerify()
	tune.ProbeTimeout = time.Millisecond
	f, out, _ = w.factory("staging")
	err = runVerify(ctx, f, w.g, &verifyOptions{env: "staging", output: "table", tune: tune, approval: approvalFlags{yes: true, approveProd: true}})
	assert.Equal(t, ExitUnknown, exitCode(err))
	assert.Regexp(t, `(?m)^cuda-probe\topenvoice\tunknown\tthe CUDA check task \w+ did not finish within 1ms`, out.String())

	// Credentials of another account are refused before anything is read or run.
	runs := w.sim.Calls("ECS.RunTask")
	f, _, _ = w.factory("prod")
	err = runVerify(ctx, f, w.g, &verifyOptions{env: "staging", output: "table", tune: quickVerify()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "credentials are for account 333333333333")
	assert.Equal(t, runs, w.sim.Calls("ECS.RunTask"))
}

func mustPlan(t *testing.T, w *cloudWorld, env string) *ecs.Plan {
	t.Helper()
	p, err := ecs.Render(w.st, w.envs[env], *w.rel)
	require.NoError(t, err)
	return p
}
