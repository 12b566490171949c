package deploy

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/awssim"
	"github.com/vmctl/vmctl/internal/dockertest"
	"github.com/vmctl/vmctl/internal/doctor"
	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/progress"
	"github.com/vmctl/vmctl/internal/release"
	"github.com/vmctl/vmctl/internal/stack"
)

// The accounts of the environment files, and the simulator's keys for them.
var vpKeys = map[string]string{"staging": "AKIASTAGING", "prod": "AKIAPROD"}

// vpWorld is the bundled demo stack on one simulator with the real Docker
// Engine: the staging and prod environments, their clients, and a release
// of the demo image pushed to staging.
type vpWorld struct {
	sim     *awssim.Sim
	api     *client.Client
	st      *stack.Stack
	envs    map[string]*environment.Environment
	clients map[string]Clients
	rel     *release.Release
}

// okProbe is what OpenVoice's check prints on a ready g4dn host.
const okProbe = `{"torch_version":"2.0.1+cu118","torch_cuda_version":"11.8","cudnn_version":8700,"cudnn_major":8,"cuda_available":true,"device_count":1,"devices":[{"index":0,"name":"Tesla T4","capability":"7.5","total_memory_mib":15102}],"expected":{"cuda":"11.8","cudnn_major":8},"ok":true,"error":null}`

// fastVerify runs the demo image's stand-in for cuda_check.py and polls at
// the simulator's pace.
func fastVerify(env *environment.Environment, probe string) VerifyOptions {
	o := VerifyOptions{
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

func newVPWorld(t *testing.T) *vpWorld {
	t.Helper()
	api := dockertest.Client(t)
	return newVPWorldOf(t, api, dockertest.FixtureImageBuilt(t, api))
}

// ownFixtureImage builds this checkout's demo program under a tag of the
// test's own, for a test that needs what the shared fixture tag may lack
// while another checkout rebuilds it on the same engine.
func ownFixtureImage(t *testing.T, api *client.Client) string {
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

func newVPWorldOf(t *testing.T, api *client.Client, image string) *vpWorld {
	t.Helper()
	ctx := context.Background()
	inspect, err := api.ImageInspect(ctx, image)
	require.NoError(t, err)

	sim := awssim.New()
	t.Cleanup(sim.Close)
	sim.UseDocker(api)
	w := &vpWorld{sim: sim, api: api, envs: map[string]*environment.Environment{}, clients: map[string]Clients{}}
	root := dockertest.RepoRoot()
	w.st, err = stack.Load(ctx, stack.LoadOptions{Files: []string{filepath.Join(root, "compose", "demo.yaml")}})
	require.NoError(t, err)
	for name, key := range vpKeys {
		env, err := environment.LoadNamed(filepath.Join(root, "environments"), name)
		require.NoError(t, err)
		w.envs[name] = env
		sim.AddUser(key, awssim.Principal{Account: env.AWS.AccountID, ARN: "arn:aws:iam::" + env.AWS.AccountID + ":role/ci"})
		w.clients[name] = NewClients(copySimConfig(t, sim, key))
	}

	// One release of the demo image for every ECS service, pushed to staging as vmctl push does.
	w.rel = &release.Release{ID: "r1", Revision: "0123456789abcdef", Images: map[string]release.Image{}}
	for _, svc := range []string{"frontend", "backend", "voicevox", "openvoice"} {
		w.rel.Images[svc] = release.Image{ImageID: inspect.ID, LocalRef: image}
	}
	pushed, err := Push(ctx, w.clients["staging"].ECR, api, w.plan(t, "staging", w.rel), w.rel, progress.Discard{})
	require.NoError(t, err)
	for svc, d := range Digests(pushed) {
		img := w.rel.Images[svc]
		img.Digest = d
		w.rel.Images[svc] = img
	}
	return w
}

func (w *vpWorld) plan(t *testing.T, env string, rel *release.Release) *ecs.Plan {
	t.Helper()
	p, err := ecs.Render(w.st, w.envs[env], *rel)
	require.NoError(t, err)
	return p
}

// deploy provisions what the account holds around the plan (two g4dn
// hosts: the service holds one GPU, the check task takes the other) and
// deploys the release.
func (w *vpWorld) deploy(t *testing.T, env string) *ecs.Plan {
	t.Helper()
	p := w.plan(t, env, w.rel)
	w.sim.Provision(p, awssim.Instance{GPU: awssim.T4()}, awssim.Instance{GPU: awssim.T4()})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, err := Deploy(ctx, w.clients[env], Options{Plan: p, Release: w.rel, Poll: 100 * time.Millisecond})
	require.NoError(t, err)
	return p
}

func checksOf(rep *VerifyReport, kind string) []Check {
	var out []Check
	for _, c := range rep.Checks {
		if c.Check == kind {
			out = append(out, c)
		}
	}
	return out
}

func endpointsBySubject(rep *VerifyReport) map[string]Check {
	out := map[string]Check{}
	for _, c := range checksOf(rep, CheckEndpoint) {
		out[c.Subject] = c
	}
	return out
}

func tgOf(plan *ecs.Plan, service string) string {
	for _, s := range plan.Services {
		if s.Name == service && s.LoadBalancer != nil {
			return s.LoadBalancer.TargetGroup
		}
	}
	return ""
}

func describeChecks(rep *VerifyReport) string {
	var b strings.Builder
	for _, c := range rep.Checks {
		fmt.Fprintf(&b, "%s %s %s: %s\n", c.Check, c.Subject, c.Verdict, c.Detail)
	}
	return b.String()
}

// Verify on a healthy staging deployment, then with one thing wrong at a
// time: each failure names its reason.
func TestVerifyOnTheSimulator(t *testing.T) {
	w := newVPWorld(t)
	plan := w.deploy(t, "staging")
	env := w.envs["staging"]
	c := w.clients["staging"]
	ctx := context.Background()

	t.Run("a healthy deployment passes", func(t *testing.T) {
		rep, err := Verify(ctx, c, plan, w.rel, fastVerify(env, okProbe))
		require.NoError(t, err)
		require.True(t, rep.Passed(), describeChecks(rep))
		assert.Equal(t, Warn, rep.Verdict, "the backend's health path is not reached through the load balancer")
		assert.Len(t, checksOf(rep, CheckParity), 4, "frontend, backend, voicevox, openvoice")
		for _, ch := range checksOf(rep, CheckParity) {
			if ch.Subject == "backend" {
				assert.Equal(t, "2 running tasks run the release's backend "+shortDigest(w.rel.Images["backend"].Digest), ch.Detail)
			}
		}
		assert.Len(t, checksOf(rep, CheckTargets), 2, "the public services: frontend and backend")
		endpoints := endpointsBySubject(rep)
		require.Len(t, endpoints, 2)
		front := endpoints["frontend"]
		assert.Equal(t, Pass, front.Verdict)
		assert.Regexp(t, `^GET http://127\.0\.0\.1:\d+/ answered 2xx through the default action of listener HTTP:80; P95 \S+ over 20 requests \(target 200ms\)$`, front.Detail)
		require.NotNil(t, front.Latency)
		assert.Equal(t, 20, front.Latency.Requests)
		assert.Equal(t, 200.0, front.Latency.TargetMS)
		// staging routes /api/* to the backend, so its /health is the
		// frontend's: verify says it did not reach the backend, and what ELB says.
		back := endpoints["backend"]
		assert.Equal(t, Warn, back.Verdict, "never a pass it did not see through the load balancer")
		assert.Equal(t, "no listener rule routes /health to backend (listener HTTP:80 sends it to target group "+tgOf(plan, "frontend")+" by the default action); target group health from ELB: 2/2 healthy", back.Detail)
		assert.Nil(t, back.Latency, "no burst where the route does not reach the service")
		assert.Contains(t, back.Fix, "route /health to target group "+tgOf(plan, "backend"))
		for _, ch := range rep.Checks {
			if ch != back {
				assert.Equal(t, Pass, ch.Verdict, "%s %s: %s", ch.Check, ch.Subject, ch.Detail)
			}
		}
		assert.Contains(t, rep.Summary(), "endpoint backend warning: no listener rule routes /health to backend")
		assert.Len(t, checksOf(rep, CheckGPUHost), 2, "both g4dn hosts")
		assert.Contains(t, checksOf(rep, CheckGPUHost)[0].Detail, "driver 535.104.05, Tesla T4 15360 MiB cc 7.5: ready")
		require.NotNil(t, rep.Probe)
		assert.Contains(t, checksOf(rep, CheckCUDAProbe)[0].Detail, "torch 2.0.1+cu118, CUDA 11.8, cuDNN 8700, Tesla T4 (7.5)")
		assert.Equal(t, w.rel.Images["openvoice"].Digest, rep.Probe.Result.Image[strings.LastIndexByte(rep.Probe.Result.Image, '@')+1:], "the check ran the release's image")
	})

	t.Run("the probe task's JSON is judged", func(t *testing.T) {
		// The demo check's default: torch sees no GPU.
		rep, err := Verify(ctx, c, plan, w.rel, fastVerify(env, ""))
		require.NoError(t, err)
		assert.Equal(t, Fail, rep.Verdict)
		probe := checksOf(rep, CheckCUDAProbe)[0]
		assert.Equal(t, Fail, probe.Verdict)
		assert.Contains(t, probe.Detail, "torch sees no CUDA device")
		assert.Equal(t, 1, rep.Probe.Result.ExitCode)

		cu117 := strings.ReplaceAll(okProbe, "11.8", "11.7")
		rep, err = Verify(ctx, c, plan, w.rel, fastVerify(env, strings.Replace(cu117, "+cu118", "+cu117", 1)))
		require.NoError(t, err)
		assert.Contains(t, checksOf(rep, CheckCUDAProbe)[0].Detail, `torch 2.0.1+cu117 is built for CUDA "11.7", not 11.8`)
		for _, ch := range rep.Checks {
			if ch.Check != CheckCUDAProbe && !(ch.Check == CheckEndpoint && ch.Subject == "backend") {
				assert.Equal(t, Pass, ch.Verdict, "only the probe fails: %s %s", ch.Check, ch.Detail)
			}
		}
	})

	t.Run("an instance with a too-old driver fails with the reason", func(t *testing.T) {
		var hosts []awssim.Instance
		for _, s := range plan.Services {
			if s.Hosts != nil {
				hosts = w.sim.GroupInstances(s.Hosts.AutoScalingGroup)
			}
		}
		require.Len(t, hosts, 2)
		old := &awssim.GPUFacts{Model: "Tesla T4", DriverVersion: "418.87.01", CUDAVersion: "10.1", MemoryMiB: 15360, ComputeCapability: "7.5"}
		require.True(t, w.sim.SetInstanceGPU(hosts[1].ID, old))
		t.Cleanup(func() { w.sim.SetInstanceGPU(hosts[1].ID, awssim.T4()) })

		rep, err := Verify(ctx, c, plan, w.rel, fastVerify(env, okProbe))
		require.NoError(t, err)
		assert.Equal(t, Fail, rep.Verdict)
		var bad []Check
		for _, ch := range checksOf(rep, CheckGPUHost) {
			if ch.Verdict != Pass {
				bad = append(bad, ch)
			}
		}
		require.Len(t, bad, 1, describeChecks(rep))
		assert.Equal(t, hosts[1].ID, bad[0].Subject)
		assert.Contains(t, bad[0].Detail, "driver 418.87.01 is older than 450.80.02, the oldest that can run CUDA 11.8")
		assert.Contains(t, bad[0].Fix, "install NVIDIA driver 520.61.05 or newer")
	})

	t.Run("a digest other than the release's fails parity", func(t *testing.T) {
		other := *w.rel
		other.Images = map[string]release.Image{}
		for k, v := range w.rel.Images {
			other.Images[k] = v
		}
		img := other.Images["backend"]
		img.Digest = "sha256:" + strings.Repeat("0", 64)
		other.Images["backend"] = img
		rep, err := Verify(ctx, c, plan, &other, fastVerify(env, okProbe))
		require.NoError(t, err)
		assert.Equal(t, Fail, rep.Verdict)
		var failed []string
		for _, ch := range checksOf(rep, CheckParity) {
			if ch.Verdict == Fail {
				failed = append(failed, ch.Subject)
				assert.Contains(t, ch.Detail, "container backend runs "+shortDigest(w.rel.Images["backend"].Digest)+", release r1 has sha256:000000000000")
			}
		}
		assert.Equal(t, []string{"backend"}, failed)
	})

	t.Run("an environment where nothing is deployed fails every service check", func(t *testing.T) {
		prod := w.plan(t, "prod", w.rel)
		w.sim.Provision(prod)
		opts := fastVerify(w.envs["prod"], okProbe)
		opts.Settle = time.Second
		rep, err := Verify(ctx, w.clients["prod"], prod, w.rel, opts)
		require.NoError(t, err)
		assert.Equal(t, Fail, rep.Verdict)
		for _, ch := range rep.Checks {
			switch ch.Check {
			case CheckGPUHost:
				assert.Equal(t, Pass, ch.Verdict, "the host is there and ready")
			case CheckParity, CheckCUDAProbe:
				assert.Equal(t, Fail, ch.Verdict)
				assert.Contains(t, ch.Detail, "does not exist in cluster vmctl-prod")
			default:
				assert.Equal(t, Fail, ch.Verdict, "%s %s: %s", ch.Check, ch.Subject, ch.Detail)
			}
		}
	})

	t.Run("with no GPU free for the check task, verify cannot tell", func(t *testing.T) {
		var group string
		for _, s := range plan.Services {
			if s.Hosts != nil {
				group = s.Hosts.AutoScalingGroup
			}
		}
		// One host left, which the service's task holds.
		w.sim.AddAutoScalingGroup(group, 1, 5, 1)
		w.sim.RegisterContainerInstances(plan.Cluster, group)
		require.Eventually(t, func() bool {
			tasks, err := runningTasks(ctx, c.ECS, plan.Cluster, "openvoice")
			return err == nil && len(tasks) == 1 && *tasks[0].LastStatus == "RUNNING"
		}, time.Minute, 200*time.Millisecond, "openvoice runs on the remaining host")

		rep, err := Verify(ctx, c, plan, w.rel, fastVerify(env, okProbe))
		require.NoError(t, err)
		assert.Equal(t, Unknown, rep.Verdict, describeChecks(rep))
		probe := checksOf(rep, CheckCUDAProbe)[0]
		assert.Equal(t, Unknown, probe.Verdict)
		assert.Contains(t, probe.Detail, "no GPU host could take the CUDA check task")
		assert.Contains(t, probe.Fix, "add an instance to the Auto Scaling group "+group)
	})

	t.Run("a backend unhealthy and unreachable by route fails with ELB's reason", func(t *testing.T) {
		// A target beside the tasks that refuses ELB's health checks.
		groups, err := targetGroups(ctx, c.ELB, []string{tgOf(plan, "backend")})
		require.NoError(t, err)
		tg := sdkaws.ToString(groups[tgOf(plan, "backend")].TargetGroupArn)
		dead, err := strconv.Atoi(dockertest.FreePort(t))
		require.NoError(t, err)
		require.NoError(t, w.sim.RegisterTarget(tg, dead))
		t.Cleanup(func() { _ = w.sim.DeregisterTarget(tg, dead) })
		require.Eventually(t, func() bool {
			out, err := c.ELB.DescribeTargetHealth(ctx, &elbv2.DescribeTargetHealthInput{TargetGroupArn: &tg})
			return err == nil && slices.ContainsFunc(out.TargetHealthDescriptions, func(d elbtypes.TargetHealthDescription) bool {
				return sdkaws.ToInt32(d.Target.Port) == int32(dead) && d.TargetHealth.State == elbtypes.TargetHealthStateEnumUnhealthy
			})
		}, 30*time.Second, 100*time.Millisecond)

		rep, err := Verify(ctx, c, plan, w.rel, fastVerify(env, okProbe))
		require.NoError(t, err)
		assert.Equal(t, Fail, rep.Verdict)
		back := endpointsBySubject(rep)["backend"]
		assert.Equal(t, Fail, back.Verdict, back.Detail)
		assert.Contains(t, back.Detail, "no listener rule routes /health to backend")
		assert.Contains(t, back.Detail, fmt.Sprintf("target group health from ELB: 2/3 healthy: 127.0.0.1:%d in %s is unhealthy: Target.FailedHealthChecks Health checks failed", dead, tgOf(plan, "backend")))
		assert.Equal(t, Pass, endpointsBySubject(rep)["frontend"].Verdict, "the frontend still answers /health for everyone")
	})
}

// A backend whose route covers its health path is checked through the load
// balancer, and a slow one is a warning that names its P95 and the target.
func TestVerifyBurstWarnsOfASlowBackend(t *testing.T) {
	api := dockertest.Client(t)
	w := newVPWorldOf(t, api, ownFixtureImage(t, api)) // with DEMO_RESPONSE_DELAY
	plan := w.plan(t, "staging", w.rel)
	for i, s := range plan.Services {
		if s.Name != "backend" {
			continue
		}
		lb := *s.LoadBalancer
		lb.PathPatterns = append(slices.Clone(lb.PathPatterns), "/health")
		plan.Services[i].LoadBalancer = &lb
		cd := &plan.Services[i].TaskDefinition.ContainerDefinitions[0]
		cd.Environment = append(cd.Environment, ecstypes.KeyValuePair{Name: sdkaws.String("DEMO_RESPONSE_DELAY"), Value: sdkaws.String("300ms")})
	}
	w.sim.Provision(plan, awssim.Instance{GPU: awssim.T4()}, awssim.Instance{GPU: awssim.T4()})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, err := Deploy(ctx, w.clients["staging"], Options{Plan: plan, Release: w.rel, Poll: 100 * time.Millisecond})
	require.NoError(t, err)

	opts := fastVerify(w.envs["staging"], okProbe)
	opts.Burst = 5
	rep, err := Verify(ctx, w.clients["staging"], plan, w.rel, opts)
	require.NoError(t, err)
	assert.Equal(t, Warn, rep.Verdict, describeChecks(rep))
	assert.True(t, rep.Passed(), "a warning does not fail verify")
	back := endpointsBySubject(rep)["backend"]
	assert.Equal(t, Warn, back.Verdict)
	assert.Regexp(t, `^GET http://127\.0\.0\.1:\d+/health answered 2xx through rule 1 \(/api/\*, /health\) of listener HTTP:80; P95 3\d\d(\.\d+)?ms over 5 requests is above the 200ms API target$`, back.Detail)
	require.NotNil(t, back.Latency)
	assert.Equal(t, 5, back.Latency.Requests)
	assert.GreaterOrEqual(t, back.Latency.P95MS, 300.0)
	assert.Equal(t, 200.0, back.Latency.TargetMS)
	js, err := json.Marshal(back)
	require.NoError(t, err)
	assert.Contains(t, string(js), `"latency":{"requests":5,"p95_ms":3`)
	front := endpointsBySubject(rep)["frontend"]
	assert.Equal(t, Pass, front.Verdict, front.Detail)
	assert.Contains(t, front.Detail, "over 5 requests (target 200ms)")
}
