package rollout_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
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
	"github.com/vmctl/vmctl/internal/status"
)

// rolloutHarness is one simulated account holding an environment of the demo stack: its
// cluster, load balancer, target groups and GPU host provisioned, and releases of the demo
// image pushed to its ECR by the real engine. Push every release before the first deploy:
// awssim runs tasks on this same engine, and push's cleanup untags the by-digest reference
// awssim pulled and remembers (awssim does not pull it again).
type rolloutHarness struct {
	t       testing.TB
	sim     *awssim.Sim
	api     *client.Client
	c       vmaws.Clients
	st      *stack.Stack
	env     *environment.Environment
	lb      awssim.LoadBalancer
	fixture string // the demo image's ID
}

func newRolloutHarness(t testing.TB, envName string) *rolloutHarness {
	t.Helper()
	api := dockertest.Client(t)
	dockertest.FixtureImageBuilt(t, api)
	root := dockertest.RepoRoot()
	env, err := environment.LoadNamed(filepath.Join(root, "environments"), envName)
	require.NoError(t, err)
	st, err := stack.Load(context.Background(), stack.LoadOptions{Files: []string{filepath.Join(root, "compose", "demo.yaml")}})
	require.NoError(t, err)

	sim := awssim.New()
	t.Cleanup(func() {
		// Close removes the simulator's containers, but one the engine was still creating
		// as Close began can outlive it (awssim's race, not deploy's): remove it here.
		left, err := api.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", awssim.LabelSim+"="+sim.ID))})
		require.NoError(t, err)
		for _, c := range left {
			t.Logf("awssim left container %s (%s) behind", c.Names[0], c.State)
			_ = api.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
		}
	})
	t.Cleanup(sim.Close)
	sim.UseDocker(api)
	key := "AKIA" + strings.ToUpper(envName)
	sim.AddUser(key, awssim.Principal{Account: env.AWS.AccountID, ARN: "arn:aws:iam::" + env.AWS.AccountID + ":role/ci"})
	sim.SetCircuitBreakerThreshold(2)
	// vmctl's retryer, its backoff capped so that throttled tests take seconds, not minutes.
	retryer := func() sdkaws.Retryer { return retry.AddWithMaxBackoffDelay(vmaws.Retryer(), 200*time.Millisecond) }
	cfg, err := vmaws.LoadConfig(context.Background(), env.AWS.Region, config.WithBaseEndpoint(sim.URL()),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(key, "x", "")), config.WithRetryer(retryer))
	require.NoError(t, err)
	img, err := api.ImageInspect(context.Background(), dockertest.FixtureImage)
	require.NoError(t, err)
	// The account starts empty: the environment's foundation comes from its stack (the GPU
	// capacity provider's managed scaling adds the spare host a rolling deploy of openvoice,
	// one task per instance, needs).
	outputs := simtest.Foundation(t, sim, key, st, env)
	env, err = infra.Resolve(env, outputs)
	require.NoError(t, err)
	h := &rolloutHarness{t: t, sim: sim, api: api, c: vmaws.NewClients(cfg), st: st, env: env, fixture: img.ID}
	h.lb = awssim.LoadBalancer{ARN: outputs[infra.OutLoadBalancer], DNSName: outputs[infra.OutLoadBalancerDNS]}
	return h
}

// release pushes a release of the demo image (other image IDs for the services named in
// images) and renders the environment's plan for it.
func (h *rolloutHarness) release(id string, images map[string]string) (*release.Release, *ecs.Plan) {
	h.t.Helper()
	rel := &release.Release{ID: id, Revision: "0123456789abcdef", Images: map[string]release.Image{}}
	for _, name := range []string{"frontend", "backend", "voicevox", "openvoice"} {
		rel.Images[name] = release.Image{ImageID: h.fixture}
		if img, ok := images[name]; ok {
			rel.Images[name] = release.Image{ImageID: img}
		}
	}
	unpinned, err := ecs.Render(h.st, h.env, *rel)
	require.NoError(h.t, err)
	pushed, err := registry.Push(context.Background(), h.c.ECR, h.api, unpinned, rel, progress.Discard{})
	require.NoError(h.t, err)
	for svc, d := range registry.Digests(pushed) {
		img := rel.Images[svc]
		img.Digest = d
		rel.Images[svc] = img
	}
	plan, err := ecs.Render(h.st, h.env, *rel)
	require.NoError(h.t, err)
	require.False(h.t, plan.Unpinned)
	return rel, plan
}

// brokenImage is the demo image whose program exits at once (DEMO_FAIL=exit), built FROM
// the local fixture, so nothing is pulled.
func brokenImage(t testing.TB, api *client.Client) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	df := []byte("FROM " + dockertest.FixtureImage + "\nENV DEMO_FAIL=exit\n")
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(df))}))
	_, err := tw.Write(df)
	require.NoError(t, err)
	require.NoError(t, tw.Close())
	tag := "vmctl-fixture-broken:test"
	resp, err := api.ImageBuild(context.Background(), &buf, build.ImageBuildOptions{Tags: []string{tag}, Remove: true, Version: build.BuilderV1})
	require.NoError(t, err)
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NotContains(t, string(out), `"errorDetail"`)
	img, err := api.ImageInspect(context.Background(), tag)
	require.NoError(t, err)
	return img.ID
}

// only narrows a plan to some services, in its order, to keep a test short.
func only(p *ecs.Plan, names ...string) *ecs.Plan {
	q := *p
	q.Services, q.Order = nil, nil
	for _, s := range p.Services {
		if slices.Contains(names, s.Name) {
			q.Services = append(q.Services, s)
		}
	}
	for _, level := range p.Order {
		var l []string
		for _, n := range level {
			if slices.Contains(names, n) {
				l = append(l, n)
			}
		}
		if len(l) > 0 {
			q.Order = append(q.Order, l)
		}
	}
	return &q
}

// syncBuffer is an io.Writer the test reads while a deploy writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (h *rolloutHarness) deploy(ctx context.Context, plan *ecs.Plan, rel *release.Release, events io.Writer) (*rollout.Result, error) {
	if events == nil {
		events = io.Discard
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	return rollout.Deploy(ctx, h.c, rollout.Options{Plan: plan, Release: rel, Events: events, Poll: 100 * time.Millisecond})
}

// revisions is how many revisions a family has.
func (h *rolloutHarness) revisions(family string) int32 {
	out, err := h.c.ECS.DescribeTaskDefinition(context.Background(), &awsecs.DescribeTaskDefinitionInput{TaskDefinition: sdkaws.String(family)})
	require.NoError(h.t, err)
	return out.TaskDefinition.Revision
}

func (h *rolloutHarness) get(path string) (int, string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + h.lb.DNSName + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// writes are the calls that change an account.
var writes = []string{"ECS.RegisterTaskDefinition", "ECS.CreateService", "ECS.UpdateService",
	"ApplicationAutoScaling.RegisterScalableTarget", "ApplicationAutoScaling.PutScalingPolicy", "ApplicationAutoScaling.PutScheduledAction"}

func (h *rolloutHarness) writeCalls() map[string]int {
	out := map[string]int{}
	for _, op := range writes {
		out[op] = h.sim.Calls(op)
	}
	return out
}

// The whole demo stack to staging: services created level by level (the GPU service on a
// simulated g4dn instance), every rollout completed, the events printed as they came; the
// load balancer answers. Deploying the same release again writes nothing at all.
func TestDeployCreatesServicesThenRedeployChangesNothing(t *testing.T) {
	t.Parallel()
	h := newRolloutHarness(t, "staging")
	rel, plan := h.release("r1", nil)

	var events syncBuffer
	res, err := h.deploy(context.Background(), plan, rel, &events)
	require.NoError(t, err, events.String())
	require.Len(t, res.Services, 4)
	assert.False(t, res.Unchanged)
	var order []string
	for _, s := range res.Services {
		order = append(order, s.Service)
		assert.Equal(t, rollout.RolloutCompleted, s.Rollout, s.Service)
		assert.True(t, s.Registered, s.Service)
		assert.True(t, s.Created, s.Service)
		assert.False(t, s.CompletedAt.IsZero())
	}
	assert.Equal(t, []string{"openvoice", "voicevox", "backend", "frontend"}, order, "the plan's levels, in order")
	log := events.String()
	assert.Contains(t, log, "(service frontend) has reached a steady state.")
	assert.Contains(t, log, "(service openvoice) has started 1 tasks")
	assert.Less(t, strings.Index(log, "(service voicevox) has reached a steady state."), strings.Index(log, "(service backend) has started"), "backend starts after the level before it is done")
	assert.Equal(t, 1, strings.Count(log, "(service backend) has reached a steady state."), "each event once")

	code, body, err := h.get("/")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, `"service":"frontend"`)
	code, body, err = h.get("/api/voices")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "backend (vmctl demo)")

	id, digests, err := rollout.CurrentRelease(context.Background(), h.c, plan)
	require.NoError(t, err)
	assert.Equal(t, "r1", id)
	for svc, img := range rel.Images {
		assert.Equal(t, img.Digest, digests[svc], svc)
	}

	changes, err := rollout.Changes(context.Background(), h.c, plan)
	require.NoError(t, err)
	for _, ch := range changes {
		assert.Equal(t, "unchanged", ch.Action, "%+v", ch)
	}

	before := h.writeCalls()
	events = syncBuffer{}
	res, err = h.deploy(context.Background(), plan, rel, &events)
	require.NoError(t, err)
	assert.True(t, res.Unchanged)
	for _, s := range res.Services {
		assert.Equal(t, rollout.RolloutUnchanged, s.Rollout, s.Service)
		assert.False(t, s.Registered)
	}
	assert.Equal(t, before, h.writeCalls(), "deploying what runs writes nothing")
	assert.Equal(t, int32(1), h.revisions("vmctl-staging-backend"))
	assert.Empty(t, events.String(), "no rollout, no events")

	rep, err := status.Status(context.Background(), h.c, plan)
	require.NoError(t, err)
	assert.Equal(t, "r1", rep.Release)
	for _, s := range rep.Services {
		assert.Equal(t, "ACTIVE", s.State)
		assert.Equal(t, string(ecstypes.DeploymentRolloutStateCompleted), s.Rollout)
		assert.Equal(t, rel.Images[s.Service].Digest, s.Digest)
		assert.Equal(t, s.Desired, s.Running, s.Service)
		assert.Equal(t, int(s.Running), s.Tasks.Healthy, s.Service)
		if s.Service == "frontend" || s.Service == "backend" {
			require.NotNil(t, s.Targets, s.Service)
			assert.Equal(t, int(s.Running), s.Targets.Healthy)
		}
		assert.Equal(t, "healthy", s.Health, "%s: %+v", s.Service, s)
	}
	assert.Equal(t, int32(2), rep.Services[2].Desired, "backend runs 2 tasks in staging")

	// CloudWatch Logs: the service's own lines, labelled by container and task.
	var out bytes.Buffer
	require.NoError(t, status.FollowLogs(context.Background(), h.c, plan, "backend", &out, status.LogsOptions{}))
	assert.Regexp(t, `(?m)^backend/[0-9a-f]{8} \| .* backend: listening on :55433`, out.String())
	assert.NotContains(t, out.String(), "frontend:")
	err = status.FollowLogs(context.Background(), h.c, plan, "nope", &out, status.LogsOptions{})
	assert.ErrorContains(t, err, `no service "nope" runs in staging`)

	// Following prints what arrives after it started, once, until the context ends.
	var followed syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- status.FollowLogs(ctx, h.c, plan, "backend", &followed, status.LogsOptions{Follow: true})
	}()
	require.Eventually(t, func() bool { return strings.Contains(followed.String(), "listening on :55433") }, 10*time.Second, 50*time.Millisecond)
	h.sim.PutLogEvents("/vmctl/staging/app", "backend/backend/0123456789abcdef", "a line that came later")
	require.Eventually(t, func() bool { return strings.Contains(followed.String(), "a line that came later") }, 10*time.Second, 50*time.Millisecond)
	time.Sleep(1500 * time.Millisecond) // another poll or two: nothing twice
	cancel()
	require.NoError(t, <-done, "Ctrl-C ends a follow; not an error")
	assert.Equal(t, 1, strings.Count(followed.String(), "backend/01234567 | a line that came later"), followed.String())
	assert.Equal(t, strings.Count(out.String(), "listening on :55433"), strings.Count(followed.String(), "listening on :55433"))
}

// A release whose frontend exits at once: its rollout fails, the circuit breaker rolls it
// back, and the load balancer answers from the previous release the whole time. The
// deploy says which service, why, and to what it went back; exit non-zero follows.
func TestBrokenReleaseIsRolledBackAndTheOldOneKeepsAnswering(t *testing.T) {
	t.Parallel()
	h := newRolloutHarness(t, "staging")
	broken := brokenImage(t, h.api)
	rel1, plan1 := h.release("r1", nil)
	rel2, plan2 := h.release("r2", map[string]string{"frontend": broken})
	plan1, plan2 = only(plan1, "backend", "frontend"), only(plan2, "backend", "frontend")
	_, err := h.deploy(context.Background(), plan1, rel1, nil)
	require.NoError(t, err)
	td1 := "vmctl-staging-frontend:1"

	var bad atomic.Int32
	var asked atomic.Int32
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(30 * time.Millisecond):
			}
			code, body, err := h.get("/")
			asked.Add(1)
			if err != nil || code != http.StatusOK || !strings.Contains(body, `"service":"frontend"`) {
				bad.Add(1)
			}
		}
	})
	var events syncBuffer
	res, err := h.deploy(context.Background(), plan2, rel2, &events)
	close(stop)
	wg.Wait()

	require.Error(t, err)
	var re *rollout.RolloutError
	require.ErrorAs(t, err, &re, "%v\n%s", err, events.String())
	assert.Equal(t, "frontend", re.Service)
	assert.Equal(t, "ECS deployment circuit breaker: tasks failed to start.", re.Reason)
	assert.True(t, strings.HasSuffix(re.RolledBackTo, ":task-definition/"+td1), re.RolledBackTo)
	assert.Equal(t, "r1", re.Release)
	assert.True(t, re.RollbackDone)
	assert.Contains(t, err.Error(), "deploy r2 to staging: service frontend: the rollout failed: ECS deployment circuit breaker: tasks failed to start; the circuit breaker rolled it back to "+td1+" (release r1): see why with vmctl logs --env staging frontend")

	require.Len(t, res.Services, 2)
	assert.Equal(t, rollout.RolloutCompleted, res.Services[0].Rollout, "backend is fine in r2")
	assert.Equal(t, rollout.RolloutFailed, res.Services[1].Rollout)
	assert.Equal(t, re.RolledBackTo, res.Services[1].RolledBackTo)
	assert.Contains(t, events.String(), "deployment failed: tasks failed to start.")
	assert.Contains(t, events.String(), "rolling back to deployment")

	assert.Positive(t, asked.Load())
	assert.Zero(t, bad.Load(), "the load balancer answered from the previous frontend all along (%d requests)", asked.Load())

	// The environment now runs two releases; CurrentRelease says so.
	_, _, err = rollout.CurrentRelease(context.Background(), h.c, plan2)
	assert.ErrorContains(t, err, "run different releases: r1 (frontend), r2 (backend)")

	// Rolling back without a release name cannot tell where to go; with one it can, and the
	// revisions of r1 are reused: nothing is registered.
	_, err = rollout.Rollback(context.Background(), h.c, rollout.RollbackOptions{Plan: plan2})
	assert.ErrorContains(t, err, "name the release with vmctl rollback --env staging --to R")
	registered := h.sim.Calls("ECS.RegisterTaskDefinition")
	res, err = rollout.Rollback(context.Background(), h.c, rollout.RollbackOptions{Plan: plan1, To: "r1", Events: io.Discard, Poll: 100 * time.Millisecond})
	require.NoError(t, err)
	assert.Equal(t, registered, h.sim.Calls("ECS.RegisterTaskDefinition"))
	assert.Equal(t, rollout.RolloutCompleted, res.Services[0].Rollout)
	assert.Equal(t, rollout.RolloutUnchanged, res.Services[1].Rollout, "frontend runs r1 already")
	assert.True(t, strings.HasSuffix(res.Services[0].TaskDefinition, "vmctl-staging-backend:1"))
	id, _, err := rollout.CurrentRelease(context.Background(), h.c, plan1)
	require.NoError(t, err)
	assert.Equal(t, "r1", id)
}

// Rollback without a release goes to the release before the running one, as ECS recorded
// it, with the revisions that ran it.
func TestRollbackToThePreviousRelease(t *testing.T) {
	t.Parallel()
	h := newRolloutHarness(t, "staging")
	rel1, plan1 := h.release("r1", nil)
	rel2, plan2 := h.release("r2", nil)
	plan1, plan2 = only(plan1, "voicevox", "backend"), only(plan2, "voicevox", "backend")
	_, err := h.deploy(context.Background(), plan1, rel1, nil)
	require.NoError(t, err)
	_, err = h.deploy(context.Background(), plan2, rel2, nil)
	require.NoError(t, err)

	target, err := rollout.PreviousRelease(context.Background(), h.c, plan2)
	require.NoError(t, err)
	assert.Equal(t, "r2", target.From)
	assert.Equal(t, "r1", target.Release)
	assert.True(t, strings.HasSuffix(target.TaskDefinitions["backend"], "vmctl-staging-backend:1"))

	registered := h.sim.Calls("ECS.RegisterTaskDefinition")
	var events syncBuffer
	res, err := rollout.Rollback(context.Background(), h.c, rollout.RollbackOptions{Plan: plan2, Events: &events, Poll: 100 * time.Millisecond})
	require.NoError(t, err)
	assert.Equal(t, "r1", res.Release)
	for _, s := range res.Services {
		assert.Equal(t, rollout.RolloutCompleted, s.Rollout, s.Service)
		assert.False(t, s.Registered)
	}
	assert.Equal(t, registered, h.sim.Calls("ECS.RegisterTaskDefinition"))
	assert.Contains(t, events.String(), "(service backend) has reached a steady state.")
	id, _, err := rollout.CurrentRelease(context.Background(), h.c, plan2)
	require.NoError(t, err)
	assert.Equal(t, "r1", id)

	// Now r1 is the oldest there is: nothing before it.
	_, err = rollout.PreviousRelease(context.Background(), h.c, plan2)
	assert.ErrorContains(t, err, "has no revision of a release before r1")
}

// With 30 % of the AWS calls deploy makes throttled, deploy still succeeds, and every
// family gets exactly one revision per release: no retried call registers twice.
func TestDeployUnderThrottling(t *testing.T) {
	t.Parallel()
	h := newRolloutHarness(t, "staging")
	rel1, plan1 := h.release("r1", nil)
	rel2, plan2 := h.release("r2", nil)
	for _, op := range []string{
		"ECS.RegisterTaskDefinition", "ECS.DescribeTaskDefinition", "ECS.CreateService", "ECS.UpdateService", "ECS.DescribeServices",
		"ELBv2.DescribeTargetGroups", "ApplicationAutoScaling.RegisterScalableTarget", "ApplicationAutoScaling.PutScalingPolicy",
		"ApplicationAutoScaling.DescribeScalableTargets", "ApplicationAutoScaling.DescribeScalingPolicies",
	} {
		h.sim.InjectFault(op, awssim.Fault{Throttle: true, Rate: 0.3})
	}
	families := []string{"openvoice", "voicevox", "backend", "frontend"}
	for _, step := range []struct {
		rel  *release.Release
		plan *ecs.Plan
		rev  int32
	}{{rel1, plan1, 1}, {rel2, plan2, 2}, {rel2, plan2, 2}} {
		res, err := h.deploy(context.Background(), step.plan, step.rel, nil)
		require.NoError(t, err)
		for _, s := range res.Services {
			assert.NotEqual(t, rollout.RolloutFailed, s.Rollout, s.Service)
		}
		for _, svc := range families {
			assert.Equal(t, step.rev, h.revisions("vmctl-staging-"+svc), "%s after deploying %s", svc, step.rel.ID)
		}
	}
	// The simulator's throttling is the same on every run: the 8th registration is refused.
	calls := h.sim.Calls("ECS.RegisterTaskDefinition")
	assert.Equal(t, 9, calls, "8 revisions, one call throttled and retried")
	t.Logf("RegisterTaskDefinition: %d calls for 8 revisions; DescribeServices: %d; DescribeTaskDefinition: %d",
		calls, h.sim.Calls("ECS.DescribeServices"), h.sim.Calls("ECS.DescribeTaskDefinition"))
}

// Ctrl-C while a rollout is watched stops the watching, not the deployment: the error says
// what still rolls out, what was not started, and how to follow it; ECS finishes anyway.
func TestCancelStopsWatchingNotTheDeployment(t *testing.T) {
	t.Parallel()
	h := newRolloutHarness(t, "staging")
	rel, plan := h.release("r1", nil)
	plan = only(plan, "voicevox", "backend")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pw := progressFunc(func(e progress.Event) {
		if e.Resource == "voicevox" && e.Text == "Rolling out" {
			cancel()
		}
	})
	_, err := rollout.Deploy(ctx, h.c, rollout.Options{Plan: plan, Release: rel, Progress: pw, Events: io.Discard, Poll: 100 * time.Millisecond})
	require.Error(t, err)
	var sr *rollout.StillRolling
	require.ErrorAs(t, err, &sr)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, []string{"voicevox"}, sr.Rolling)
	assert.Equal(t, []string{"backend"}, sr.NotStarted)
	assert.Equal(t, "stopped watching; the deployment goes on in ECS: still rolling out: voicevox; not started: backend (deploy again to finish them): follow it with vmctl status --env staging", err.Error())

	// ECS goes on without anyone watching.
	require.Eventually(t, func() bool {
		rep, err := status.Status(context.Background(), h.c, plan)
		return err == nil && rep.Services[0].Rollout == "COMPLETED"
	}, time.Minute, 100*time.Millisecond)

	// Deploying again finishes the job: voicevox is done, backend is created.
	res, err := h.deploy(context.Background(), plan, rel, nil)
	require.NoError(t, err)
	assert.Equal(t, rollout.RolloutUnchanged, res.Services[0].Rollout)
	assert.Equal(t, rollout.RolloutCompleted, res.Services[1].Rollout)
	assert.True(t, res.Services[1].Created)
}

// Prod is blue/green: the services carry the alternate target group and the production
// listener rule, resolved by name, and the rollout completes as ECS reports it.
func TestBlueGreenResolvesTheAlternateGroupAndListenerRule(t *testing.T) {
	t.Parallel()
	h := newRolloutHarness(t, "prod")
	rel, plan := h.release("r1", nil)
	plan = only(plan, "frontend")
	res, err := h.deploy(context.Background(), plan, rel, nil)
	require.NoError(t, err)
	assert.Equal(t, rollout.RolloutCompleted, res.Services[0].Rollout)

	out, err := h.c.ECS.DescribeServices(context.Background(), &awsecs.DescribeServicesInput{Cluster: sdkaws.String("vmctl-prod"), Services: []string{"frontend"}})
	require.NoError(t, err)
	svc := out.Services[0]
	assert.Equal(t, ecstypes.DeploymentStrategyBlueGreen, svc.DeploymentConfiguration.Strategy)
	require.Len(t, svc.LoadBalancers, 1)
	lb := svc.LoadBalancers[0]
	assert.Contains(t, sdkaws.ToString(lb.TargetGroupArn), ":targetgroup/vmctl-prod-frontend/")
	require.NotNil(t, lb.AdvancedConfiguration)
	assert.Contains(t, sdkaws.ToString(lb.AdvancedConfiguration.AlternateTargetGroupArn), ":targetgroup/vmctl-prod-frontend-alt/")
	_, lbPath, _ := strings.Cut(h.lb.ARN, ":loadbalancer/") // app/NAME/ID, from the stack's output
	assert.Contains(t, sdkaws.ToString(lb.AdvancedConfiguration.ProductionListenerRule), ":listener-rule/"+lbPath+"/", "a rule of the stack's load balancer")
	assert.Equal(t, "arn:aws:iam::333333333333:role/vmctl-prod-ecs-infrastructure", sdkaws.ToString(lb.AdvancedConfiguration.RoleArn))

	before := h.writeCalls()
	res, err = h.deploy(context.Background(), plan, rel, nil)
	require.NoError(t, err)
	assert.True(t, res.Unchanged)
	assert.Equal(t, before, h.writeCalls(), "the resolved rule compares equal: no update")
}

// A plan whose release was never pushed is refused before anything is written.
func TestDeployRefusesAnUnpinnedPlan(t *testing.T) {
	root := dockertest.RepoRoot()
	env, err := environment.LoadNamed(filepath.Join(root, "environments"), "dev")
	require.NoError(t, err)
	st, err := stack.Load(context.Background(), stack.LoadOptions{Files: []string{filepath.Join(root, "compose", "demo.yaml")}})
	require.NoError(t, err)
	plan, err := ecs.Render(st, infra.Offline(env), release.Release{ID: "r9"})
	require.NoError(t, err)
	_, err = rollout.Deploy(context.Background(), vmaws.Clients{}, rollout.Options{Plan: plan})
	assert.EqualError(t, err, "deploy r9 to dev: some images have no digest in release r9, and vmctl deploys by digest only: push it first (vmctl push --env dev --release r9)")
}

type progressFunc func(progress.Event)

func (f progressFunc) Event(e progress.Event) { f(e) }
func (f progressFunc) Close()                 {}

// BenchmarkRolloutNotice measures how long after the simulator marks a rollout COMPLETED
// Deploy returns: the poll interval bounds it, not a fixed waiter. Each iteration deploys
// voicevox between two releases (the revisions are reused after the first two).
func BenchmarkRolloutNotice(b *testing.B) {
	for _, poll := range []time.Duration{time.Second, 100 * time.Millisecond} {
		b.Run(fmt.Sprintf("poll=%s", poll), func(b *testing.B) {
			h := newRolloutHarness(b, "staging")
			relA, planA := h.release("ra", nil)
			relB, planB := h.release("rb", nil)
			planA, planB = only(planA, "voicevox"), only(planB, "voicevox")
			var total, worst time.Duration
			b.ResetTimer()
			for i := range b.N {
				rel, plan := relA, planA
				if i%2 == 1 {
					rel, plan = relB, planB
				}
				res, err := rollout.Deploy(context.Background(), h.c, rollout.Options{Plan: plan, Release: rel, Events: io.Discard, Poll: poll})
				returned := time.Now()
				if err != nil {
					b.Fatal(err)
				}
				s := res.Services[0]
				if s.Rollout != rollout.RolloutCompleted {
					b.Fatalf("rollout %s", s.Rollout)
				}
				lag := returned.Sub(s.CompletedAt)
				total += lag
				worst = max(worst, lag)
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-to-notice/op")
			b.ReportMetric(float64(worst.Milliseconds()), "ms-worst")
		})
	}
}

// The spec hash covers everything a registration says, the release too, but not the tag
// that carries it.
func TestSpecHash(t *testing.T) {
	root := dockertest.RepoRoot()
	env, err := environment.LoadNamed(filepath.Join(root, "environments"), "staging")
	require.NoError(t, err)
	st, err := stack.Load(context.Background(), stack.LoadOptions{Files: []string{filepath.Join(root, "compose", "demo.yaml")}})
	require.NoError(t, err)
	digest := "sha256:" + strings.Repeat("ab", 32)
	render := func(id string) awsecs.RegisterTaskDefinitionInput {
		rel := release.Release{ID: id, Images: map[string]release.Image{}}
		for _, s := range []string{"frontend", "backend", "voicevox", "openvoice"} {
			rel.Images[s] = release.Image{Digest: digest}
		}
		plan, err := ecs.Render(st, infra.Offline(env), rel)
		require.NoError(t, err)
		return plan.Services[0].TaskDefinition
	}
	a, again, b := render("r1"), render("r1"), render("r2")
	assert.Equal(t, rollout.SpecHash(a), rollout.SpecHash(again), "stable across renders")
	assert.NotEqual(t, rollout.SpecHash(a), rollout.SpecHash(b), "another release is another revision, even with the same digests")
	tagged := a
	tagged.Tags = append(slices.Clone(a.Tags), ecstypes.Tag{Key: sdkaws.String(rollout.SpecTag), Value: sdkaws.String(rollout.SpecHash(a))})
	assert.Equal(t, rollout.SpecHash(a), rollout.SpecHash(tagged))
	mem := a
	mem.Memory = sdkaws.String("8192")
	assert.NotEqual(t, rollout.SpecHash(a), rollout.SpecHash(mem))
}

// An approval covers the preview it was given: when another deploy lands between the
// preview and the write, the approved deploy writes nothing and says what it would do now.
func TestDeployStopsWhenThePreviewNoLongerHolds(t *testing.T) {
	t.Parallel()
	h := newRolloutHarness(t, "staging")
	ctx := context.Background()
	rel, plan := h.release("r1", nil)
	preview, err := rollout.Changes(ctx, h.c, plan)
	require.NoError(t, err)
	for _, ch := range preview {
		require.Equal(t, "create", ch.Action)
	}
	// Someone else deploys r1 while the person reads the preview.
	_, err = h.deploy(ctx, plan, rel, nil)
	require.NoError(t, err)

	before := h.writeCalls()
	_, err = rollout.Deploy(ctx, h.c, rollout.Options{Plan: plan, Release: rel, Poll: 100 * time.Millisecond, Approved: preview})
	var pc *rollout.PreviewChanged
	require.ErrorAs(t, err, &pc)
	assert.Equal(t, "staging changed between the preview and the approval: nothing was written; run the command again to approve the new preview", err.Error())
	for _, ch := range pc.Now {
		assert.Equal(t, "unchanged", ch.Action, "what the deploy would do now")
	}
	assert.Equal(t, before, h.writeCalls())
}
