// Package verifytest is the world the tests of verify and promote share: the bundled
// demo stack on one awssim simulator with the real Docker Engine, its staging and prod
// environments and their clients, and a release of the demo image pushed to staging;
// plus verify options that poll at the simulator's pace.
package verifytest

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/awssim"
	"github.com/vmctl/vmctl/internal/awssim/simtest"
	"github.com/vmctl/vmctl/internal/dockertest"
	"github.com/vmctl/vmctl/internal/doctor"
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

// Keys are the accounts of the environment files, and the simulator's keys for them.
var Keys = map[string]string{"staging": "AKIASTAGING", "prod": "AKIAPROD"}

// World is the bundled demo stack on one simulator with the real Docker
// Engine: the staging and prod environments, their clients, and a release
// of the demo image pushed to staging.
type World struct {
	Sim     *awssim.Sim
	API     *client.Client
	Stack   *stack.Stack
	Envs    map[string]*environment.Environment
	Clients map[string]aws.Clients // by environment name
	Rel     *release.Release       // pushed to staging, pinned by digest
}

// OKProbe is what OpenVoice's check prints on a ready g4dn host.
const OKProbe = `{"torch_version":"2.0.1+cu118","torch_cuda_version":"11.8","cudnn_version":8700,"cudnn_major":8,"cuda_available":true,"device_count":1,"devices":[{"index":0,"name":"Tesla T4","capability":"7.5","total_memory_mib":15102}],"expected":{"cuda":"11.8","cudnn_major":8},"ok":true,"error":null}`

// FastVerify runs the demo image's stand-in for cuda_check.py and polls at
// the simulator's pace.
func FastVerify(env *environment.Environment, probe string) verify.Options {
	o := verify.Options{
		GPU:          doctor.Requirements(env),
		ProbeCommand: []string{"cuda-check"}, // the image's entrypoint is /vmctl-demo
		Poll:         100 * time.Millisecond,
		Settle:       30 * time.Second,
		SSMTimeout:   10 * time.Second,
		ProbeTimeout: time.Minute,
		LogsTimeout:  5 * time.Second,
		HTTPTimeout:  2 * time.Second,
	}
	if probe != "" {
		o.ProbeEnv = map[string]string{"DEMO_CUDA_CHECK": probe}
	}
	return o
}

// New is the world of the shared demo fixture image.
func New(t *testing.T) *World {
	t.Helper()
	api := dockertest.Client(t)
	return NewOf(t, api, dockertest.FixtureImageBuilt(t, api))
}

// OwnFixtureImage builds this checkout's demo program under a tag of the
// test's own, for a test that needs what the shared fixture tag may lack
// while another checkout rebuilds it on the same engine.
func OwnFixtureImage(t *testing.T, api *client.Client) string {
	t.Helper()
	dir := dockertest.FixtureContext(t)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range []string{"Dockerfile", "vmctl-demo"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err)
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(b))}))
		_, err = tw.Write(b)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	tag := fmt.Sprintf("vmctl-fixture:own-%d-%d", os.Getpid(), time.Now().UnixNano())
	resp, err := api.ImageBuild(context.Background(), &buf, build.ImageBuildOptions{Tags: []string{tag}, Remove: true, Version: build.BuilderV1})
	require.NoError(t, err)
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NotContains(t, string(out), `"errorDetail"`)
	t.Cleanup(func() { _, _ = api.ImageRemove(context.Background(), tag, image.RemoveOptions{}) })
	return tag
}

// NewOf is the world of one image of the demo program.
func NewOf(t *testing.T, api *client.Client, image string) *World {
	t.Helper()
	ctx := context.Background()
	inspect, err := api.ImageInspect(ctx, image)
	require.NoError(t, err)

	sim := awssim.New()
	t.Cleanup(sim.Close)
	sim.UseDocker(api)
	w := &World{Sim: sim, API: api, Envs: map[string]*environment.Environment{}, Clients: map[string]aws.Clients{}}
	root := dockertest.RepoRoot()
	w.Stack, err = stack.Load(ctx, stack.LoadOptions{Files: []string{filepath.Join(root, "compose", "demo.yaml")}})
	require.NoError(t, err)
	// The account starts empty: each environment's foundation comes from its stack, and the
	// environment takes its ids from the stack's outputs, as the commands do.
	for name, key := range Keys {
		env, err := environment.LoadNamed(filepath.Join(root, "environments"), name)
		require.NoError(t, err)
		sim.AddUser(key, awssim.Principal{Account: env.AWS.AccountID, ARN: "arn:aws:iam::" + env.AWS.AccountID + ":role/ci"})
		outputs := simtest.Foundation(t, sim, key, w.Stack, env)
		w.Envs[name], err = infra.Resolve(env, outputs)
		require.NoError(t, err)
		w.Clients[name] = aws.NewClients(simtest.Config(t, sim, key))
	}

	// One release of the demo image for every ECS service, pushed to staging as vmctl push does.
	w.Rel = &release.Release{ID: "r1", Revision: "0123456789abcdef", Images: map[string]release.Image{}}
	for _, svc := range []string{"frontend", "backend", "voicevox", "openvoice"} {
		w.Rel.Images[svc] = release.Image{ImageID: inspect.ID, LocalRef: image}
	}
	pushed, err := registry.Push(ctx, w.Clients["staging"].ECR, api, w.Plan(t, "staging", w.Rel), w.Rel, progress.Discard{})
	require.NoError(t, err)
	for svc, d := range registry.Digests(pushed) {
		img := w.Rel.Images[svc]
		img.Digest = d
		w.Rel.Images[svc] = img
	}
	return w
}

// Plan renders env's plan for rel.
func (w *World) Plan(t *testing.T, env string, rel *release.Release) *ecs.Plan {
	t.Helper()
	p, err := ecs.Render(w.Stack, w.Envs[env], *rel)
	require.NoError(t, err)
	return p
}

// Deploy deploys the release onto the environment's foundation (the GPU
// capacity provider's managed scaling adds the g4dn hosts the tasks need).
func (w *World) Deploy(t *testing.T, env string) *ecs.Plan {
	t.Helper()
	p := w.Plan(t, env, w.Rel)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, err := rollout.Deploy(ctx, w.Clients[env], rollout.Options{Plan: p, Release: w.Rel, Poll: 100 * time.Millisecond})
	require.NoError(t, err)
	return p
}

// Describe lists a report's checks, one line each, for a failed assertion.
func Describe(rep *verify.Report) string {
	var b strings.Builder
	for _, c := range rep.Checks {
		fmt.Fprintf(&b, "%s %s %s: %s\n", c.Check, c.Subject, c.Verdict, c.Detail)
	}
	return b.String()
}
