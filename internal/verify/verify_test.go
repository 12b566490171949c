package verify_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/awssim"
	"github.com/vmctl/vmctl/internal/awssim/simtest"
	"github.com/vmctl/vmctl/internal/dockertest"
	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/infra"
	"github.com/vmctl/vmctl/internal/registry"
	"github.com/vmctl/vmctl/internal/release"
	"github.com/vmctl/vmctl/internal/rollout"
	"github.com/vmctl/vmctl/internal/verify"
	"github.com/vmctl/vmctl/internal/verify/verifytest"
)

func checksOf(rep *verify.Report, kind string) []verify.Check {
	var out []verify.Check
	for _, c := range rep.Checks {
		if c.Check == kind {
			out = append(out, c)
		}
	}
	return out
}

func endpointsBySubject(rep *verify.Report) map[string]verify.Check {
	out := map[string]verify.Check{}
	for _, c := range checksOf(rep, verify.CheckEndpoint) {
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

// Verify on a healthy staging deployment, then with one thing wrong at a
// time: each failure names its reason.
func TestVerifyOnTheSimulator(t *testing.T) {
	w := verifytest.New(t)
	plan := w.Deploy(t, "staging")
	env := w.Envs["staging"]
	c := w.Clients["staging"]
	ctx := context.Background()

	t.Run("a healthy deployment passes", func(t *testing.T) {
		rep, err := verify.Verify(ctx, c, plan, w.Rel, verifytest.FastVerify(env, verifytest.OKProbe))
		require.NoError(t, err)
		require.True(t, rep.Passed(), verifytest.Describe(rep))
		assert.Equal(t, verify.Warn, rep.Verdict, "no domain: the health paths were checked over plain HTTP")
		assert.Len(t, checksOf(rep, verify.CheckParity), 4, "frontend, backend, voicevox, openvoice")
		for _, ch := range checksOf(rep, verify.CheckParity) {
			if ch.Subject == "backend" {
				assert.Equal(t, "2 running tasks run the release's backend "+registry.ShortDigest(w.Rel.Images["backend"].Digest), ch.Detail)
			}
		}
		assert.Len(t, checksOf(rep, verify.CheckTargets), 2, "the public services: frontend and backend")
		endpoints := endpointsBySubject(rep)
		require.Len(t, endpoints, 2)
		front := endpoints["frontend"]
		assert.Equal(t, verify.Pass, front.Verdict)
		assert.Regexp(t, `^GET http://127\.0\.0\.1:\d+/ answered 2xx through rule \d+ \(/\*\) of listener HTTP:80; P95 \S+ over 20 requests \(target 200ms\)$`, front.Detail)
		require.NotNil(t, front.Latency)
		assert.Equal(t, 20, front.Latency.Requests)
		assert.Equal(t, 200.0, front.Latency.TargetMS)
		// The foundation's backend rule carries its health path beside /api/*, so verify
		// reaches the backend's /health through the load balancer.
		back := endpoints["backend"]
		assert.Equal(t, verify.Pass, back.Verdict, back.Detail)
		assert.Regexp(t, `^GET http://127\.0\.0\.1:\d+/health answered 2xx through rule \d+ \(/api/\*, /health\) of listener HTTP:80; `, back.Detail)
		assert.NotNil(t, back.Latency)
		https := checksOf(rep, verify.CheckHTTPS)
		require.Len(t, https, 1)
		assert.Equal(t, verify.Warn, https[0].Verdict, "plain HTTP to the load balancer is never a silent pass")
		assert.Contains(t, https[0].Detail, "the environment names no domain (aws.domain)")
		for _, ch := range rep.Checks {
			if ch.Check != verify.CheckHTTPS {
				assert.Equal(t, verify.Pass, ch.Verdict, "%s %s: %s", ch.Check, ch.Subject, ch.Detail)
			}
		}
		assert.Contains(t, rep.Summary(), "https load balancer warning: the environment names no domain")
		// The service's host; the check task's comes after, by the capacity provider's managed scaling.
		assert.NotEmpty(t, checksOf(rep, verify.CheckGPUHost))
		assert.Contains(t, checksOf(rep, verify.CheckGPUHost)[0].Detail, "driver 535.104.05, Tesla T4 15360 MiB cc 7.5: ready")
		require.NotNil(t, rep.Probe)
		assert.Contains(t, checksOf(rep, verify.CheckCUDAProbe)[0].Detail, "torch 2.0.1+cu118, CUDA 11.8, cuDNN 8700, Tesla T4 (7.5)")
		assert.Equal(t, w.Rel.Images["openvoice"].Digest, rep.Probe.Result.Image[strings.LastIndexByte(rep.Probe.Result.Image, '@')+1:], "the check ran the release's image")
	})

	t.Run("the public endpoint over HTTPS, its certificate and the redirect", func(t *testing.T) {
		lbs, err := c.ELB.DescribeLoadBalancers(ctx, &elbv2.DescribeLoadBalancersInput{})
		require.NoError(t, err)
		require.Len(t, lbs.LoadBalancers, 1, "staging's account has its own")
		lbURL, err := url.Parse("http://" + sdkaws.ToString(lbs.LoadBalancers[0].DNSName))
		require.NoError(t, err)
		// The TLS front stands where the ALB's 443 listener (or CloudFront) is; the plain
		// server where port 80 is.
		front := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(lbURL))
		front.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes below are expected
		front.StartTLS()
		defer front.Close()
		redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, front.URL+r.URL.Path, http.StatusMovedPermanently)
		}))
		defer redirect.Close()
		answers := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "hello over plain HTTP") }))
		defer answers.Close()
		trusted := &tls.Config{RootCAs: x509.NewCertPool()}
		trusted.RootCAs.AddCert(front.Certificate())

		opts := verifytest.FastVerify(env, verifytest.OKProbe)
		opts.NoProbe, opts.Burst = true, 3
		opts.Endpoint, opts.PlainEndpoint, opts.TLS = front.URL, redirect.URL, trusted
		rep, err := verify.Verify(ctx, c, plan, w.Rel, opts)
		require.NoError(t, err)
		https := checksOf(rep, verify.CheckHTTPS)
		require.Len(t, https, 1)
		assert.Equal(t, verify.Pass, https[0].Verdict, https[0].Detail)
		assert.Regexp(t, `^GET http://127\.0\.0\.1:\d+/ redirects \(301\) to https://127\.0\.0\.1:\d+/$`, https[0].Detail)
		assert.Equal(t, verify.Pass, endpointsBySubject(rep)["frontend"].Verdict, endpointsBySubject(rep)["frontend"].Detail)
		assert.Contains(t, endpointsBySubject(rep)["frontend"].Detail, "GET "+front.URL+"/ answered 2xx")

		// A certificate nobody vouches for fails the health paths: nothing skips verification.
		opts.TLS, opts.Settle = nil, time.Second
		rep, err = verify.Verify(ctx, c, plan, w.Rel, opts)
		require.NoError(t, err)
		assert.Equal(t, verify.Fail, rep.Verdict)
		assert.Equal(t, verify.Fail, endpointsBySubject(rep)["frontend"].Verdict)
		assert.Contains(t, endpointsBySubject(rep)["frontend"].Detail, "certificate")

		// Port 80 serving the app instead of redirecting fails the https row.
		opts.TLS, opts.PlainEndpoint = trusted, answers.URL
		rep, err = verify.Verify(ctx, c, plan, w.Rel, opts)
		require.NoError(t, err)
		https = checksOf(rep, verify.CheckHTTPS)
		require.Len(t, https, 1)
		assert.Equal(t, verify.Fail, https[0].Verdict)
		assert.Contains(t, https[0].Detail, "answered 200 OK over plain HTTP instead of redirecting to HTTPS")
		assert.Contains(t, https[0].Fix, "redirect to HTTPS")
	})

	t.Run("the probe task's JSON is judged", func(t *testing.T) {
		// The demo check's default: torch sees no GPU.
		rep, err := verify.Verify(ctx, c, plan, w.Rel, verifytest.FastVerify(env, ""))
		require.NoError(t, err)
		assert.Equal(t, verify.Fail, rep.Verdict)
		probe := checksOf(rep, verify.CheckCUDAProbe)[0]
		assert.Equal(t, verify.Fail, probe.Verdict)
		assert.Contains(t, probe.Detail, "torch sees no CUDA device")
		assert.Equal(t, 1, rep.Probe.Result.ExitCode)

		cu117 := strings.ReplaceAll(verifytest.OKProbe, "11.8", "11.7")
		rep, err = verify.Verify(ctx, c, plan, w.Rel, verifytest.FastVerify(env, strings.Replace(cu117, "+cu118", "+cu117", 1)))
		require.NoError(t, err)
		assert.Contains(t, checksOf(rep, verify.CheckCUDAProbe)[0].Detail, `torch 2.0.1+cu117 is built for CUDA "11.7", not 11.8`)
		for _, ch := range rep.Checks {
			if ch.Check != verify.CheckCUDAProbe && ch.Check != verify.CheckHTTPS && !(ch.Check == verify.CheckEndpoint && ch.Subject == "backend") {
				assert.Equal(t, verify.Pass, ch.Verdict, "only the probe fails: %s %s", ch.Check, ch.Detail)
			}
		}
	})

	t.Run("an instance with a too-old driver fails with the reason", func(t *testing.T) {
		var hosts []awssim.Instance
		for _, s := range plan.Services {
			if s.Hosts != nil {
				hosts = w.Sim.GroupInstances(s.Hosts.AutoScalingGroup)
			}
		}
		require.Len(t, hosts, 2)
		old := &awssim.GPUFacts{Model: "Tesla T4", DriverVersion: "418.87.01", CUDAVersion: "10.1", MemoryMiB: 15360, ComputeCapability: "7.5"}
		require.True(t, w.Sim.SetInstanceGPU(hosts[1].ID, old))
		t.Cleanup(func() { w.Sim.SetInstanceGPU(hosts[1].ID, awssim.T4()) })

		rep, err := verify.Verify(ctx, c, plan, w.Rel, verifytest.FastVerify(env, verifytest.OKProbe))
		require.NoError(t, err)
		assert.Equal(t, verify.Fail, rep.Verdict)
		var bad []verify.Check
		for _, ch := range checksOf(rep, verify.CheckGPUHost) {
			if ch.Verdict != verify.Pass {
				bad = append(bad, ch)
			}
		}
		require.Len(t, bad, 1, verifytest.Describe(rep))
		assert.Equal(t, hosts[1].ID, bad[0].Subject)
		assert.Contains(t, bad[0].Detail, "driver 418.87.01 is older than 450.80.02, the oldest that can run CUDA 11.8")
		assert.Contains(t, bad[0].Fix, "install NVIDIA driver 520.61.05 or newer")
	})

	t.Run("a digest other than the release's fails parity", func(t *testing.T) {
		other := *w.Rel
		other.Images = map[string]release.Image{}
		for k, v := range w.Rel.Images {
			other.Images[k] = v
		}
		img := other.Images["backend"]
		img.Digest = "sha256:" + strings.Repeat("0", 64)
		other.Images["backend"] = img
		rep, err := verify.Verify(ctx, c, plan, &other, verifytest.FastVerify(env, verifytest.OKProbe))
		require.NoError(t, err)
		assert.Equal(t, verify.Fail, rep.Verdict)
		var failed []string
		for _, ch := range checksOf(rep, verify.CheckParity) {
			if ch.Verdict == verify.Fail {
				failed = append(failed, ch.Subject)
				assert.Contains(t, ch.Detail, "container backend runs "+registry.ShortDigest(w.Rel.Images["backend"].Digest)+", release r1 has sha256:000000000000")
			}
		}
		assert.Equal(t, []string{"backend"}, failed)
	})

	t.Run("an environment where nothing is deployed fails every service check", func(t *testing.T) {
		prod := w.Plan(t, "prod", w.Rel)
		opts := verifytest.FastVerify(w.Envs["prod"], verifytest.OKProbe)
		opts.Settle = time.Second
		rep, err := verify.Verify(ctx, w.Clients["prod"], prod, w.Rel, opts)
		require.NoError(t, err)
		assert.Equal(t, verify.Fail, rep.Verdict)
		for _, ch := range rep.Checks {
			switch ch.Check {
			case verify.CheckGPUHost:
				assert.Equal(t, verify.Pass, ch.Verdict, "the host is there and ready")
			case verify.CheckParity, verify.CheckCUDAProbe:
				assert.Equal(t, verify.Fail, ch.Verdict)
				assert.Contains(t, ch.Detail, "does not exist in cluster vmctl-prod")
			case verify.CheckHTTPS:
				assert.Equal(t, verify.Warn, ch.Verdict, "no domain named: said, not failed")
			default:
				assert.Equal(t, verify.Fail, ch.Verdict, "%s %s: %s", ch.Check, ch.Subject, ch.Detail)
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
		// One host left, which the service's task holds, and no room to scale out.
		w.Sim.AddAutoScalingGroup(group, 1, 1, 1)
		require.Eventually(t, func() bool {
			tasks, err := verify.RunningTasks(ctx, c.ECS, plan.Cluster, "openvoice")
			return err == nil && len(tasks) == 1 && *tasks[0].LastStatus == "RUNNING"
		}, time.Minute, 200*time.Millisecond, "openvoice runs on the remaining host")

		rep, err := verify.Verify(ctx, c, plan, w.Rel, verifytest.FastVerify(env, verifytest.OKProbe))
		require.NoError(t, err)
		assert.Equal(t, verify.Unknown, rep.Verdict, verifytest.Describe(rep))
		probe := checksOf(rep, verify.CheckCUDAProbe)[0]
		assert.Equal(t, verify.Unknown, probe.Verdict)
		assert.Contains(t, probe.Detail, "no GPU host could take the CUDA check task")
		assert.Contains(t, probe.Fix, "add an instance to the Auto Scaling group "+group)
	})

	t.Run("a backend unhealthy and unreachable by route fails with ELB's reason", func(t *testing.T) {
		// A rendering bug: the backend's rule loses the health path, which then falls to
		// the frontend's catch-all.
		var tmpl map[string]any
		require.NoError(t, json.Unmarshal(simtest.Template(t, w.Stack, w.Envs["staging"]), &tmpl))
		rule := tmpl["Resources"].(map[string]any)[infra.LogicalRule("backend")].(map[string]any)["Properties"].(map[string]any)
		rule["Conditions"] = []any{map[string]any{"Field": "path-pattern", "PathPatternConfig": map[string]any{"Values": []any{"/api/*"}}}}
		body, err := json.Marshal(tmpl)
		require.NoError(t, err)
		simtest.Apply(t, w.Sim, verifytest.Keys["staging"], "staging", body)

		// A target beside the tasks that refuses ELB's health checks.
		groups, err := verify.TargetGroups(ctx, c.ELB, []string{tgOf(plan, "backend")})
		require.NoError(t, err)
		tg := sdkaws.ToString(groups[tgOf(plan, "backend")].TargetGroupArn)
		dead, err := strconv.Atoi(dockertest.FreePort(t))
		require.NoError(t, err)
		require.NoError(t, w.Sim.RegisterTarget(tg, dead))
		t.Cleanup(func() { _ = w.Sim.DeregisterTarget(tg, dead) })
		require.Eventually(t, func() bool {
			out, err := c.ELB.DescribeTargetHealth(ctx, &elbv2.DescribeTargetHealthInput{TargetGroupArn: &tg})
			return err == nil && slices.ContainsFunc(out.TargetHealthDescriptions, func(d elbtypes.TargetHealthDescription) bool {
				return sdkaws.ToInt32(d.Target.Port) == int32(dead) && d.TargetHealth.State == elbtypes.TargetHealthStateEnumUnhealthy
			})
		}, 30*time.Second, 100*time.Millisecond)

		rep, err := verify.Verify(ctx, c, plan, w.Rel, verifytest.FastVerify(env, verifytest.OKProbe))
		require.NoError(t, err)
		assert.Equal(t, verify.Fail, rep.Verdict)
		back := endpointsBySubject(rep)["backend"]
		assert.Equal(t, verify.Fail, back.Verdict, back.Detail)
		assert.Contains(t, back.Detail, "no listener rule routes /health to backend")
		assert.Contains(t, back.Detail, fmt.Sprintf("target group health from ELB: 2/3 healthy: 127.0.0.1:%d in %s is unhealthy: Target.FailedHealthChecks Health checks failed", dead, tgOf(plan, "backend")))
		assert.Equal(t, verify.Pass, endpointsBySubject(rep)["frontend"].Verdict, "the frontend still answers /health for everyone")
	})
}

// A backend whose route covers its health path is checked through the load
// balancer, and a slow one is a warning that names its P95 and the target.
func TestVerifyBurstWarnsOfASlowBackend(t *testing.T) {
	api := dockertest.Client(t)
	w := verifytest.NewOf(t, api, verifytest.OwnFixtureImage(t, api)) // with DEMO_RESPONSE_DELAY
	plan := w.Plan(t, "staging", w.Rel)
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
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, err := rollout.Deploy(ctx, w.Clients["staging"], rollout.Options{Plan: plan, Release: w.Rel, Poll: 100 * time.Millisecond})
	require.NoError(t, err)

	opts := verifytest.FastVerify(w.Envs["staging"], verifytest.OKProbe)
	opts.Burst = 5
	rep, err := verify.Verify(ctx, w.Clients["staging"], plan, w.Rel, opts)
	require.NoError(t, err)
	assert.Equal(t, verify.Warn, rep.Verdict, verifytest.Describe(rep))
	assert.True(t, rep.Passed(), "a warning does not fail verify")
	back := endpointsBySubject(rep)["backend"]
	assert.Equal(t, verify.Warn, back.Verdict)
	assert.Regexp(t, `^GET http://127\.0\.0\.1:\d+/health answered 2xx through rule \d+ \(/api/\*, /health\) of listener HTTP:80; P95 3\d\d(\.\d+)?ms over 5 requests is above the 200ms API target$`, back.Detail)
	require.NotNil(t, back.Latency)
	assert.Equal(t, 5, back.Latency.Requests)
	assert.GreaterOrEqual(t, back.Latency.P95MS, 300.0)
	assert.Equal(t, 200.0, back.Latency.TargetMS)
	js, err := json.Marshal(back)
	require.NoError(t, err)
	assert.Contains(t, string(js), `"latency":{"requests":5,"p95_ms":3`)
	front := endpointsBySubject(rep)["frontend"]
	assert.Equal(t, verify.Pass, front.Verdict, front.Detail)
	assert.Contains(t, front.Detail, "over 5 requests (target 200ms)")
}
