package rollout_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/dockertest"
	"github.com/vmctl/vmctl/internal/progress"
	"github.com/vmctl/vmctl/internal/rollout"
	"github.com/vmctl/vmctl/internal/status"
)

// derivedImage is the demo image with one more ENV line, built FROM the local fixture, so
// nothing is pulled.
func derivedImage(t testing.TB, api *client.Client, tag, env string) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	df := []byte("FROM " + dockertest.FixtureImage + "\nENV " + env + "\n")
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(df))}))
	_, err := tw.Write(df)
	require.NoError(t, err)
	require.NoError(t, tw.Close())
	resp, err := api.ImageBuild(context.Background(), &buf, build.ImageBuildOptions{Tags: []string{tag}, Remove: true, Version: build.BuilderV1})
	require.NoError(t, err)
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NotContains(t, string(out), `"errorDetail"`)
	img, err := api.ImageInspect(context.Background(), tag)
	require.NoError(t, err)
	return img.ID
}

// prodClient sends GET / to the load balancer's proxy one request after another until
// stopped, and records who answered: the frontend's health answer names its "device",
// which each test release sets differently (OPENVOICE_DEVICE, unused by the frontend).
type prodClient struct {
	mu       sync.Mutex
	answers  []string    // the device of each answer, in order
	at       []time.Time // when each answer came
	failures []string    // what went wrong, per failed request
	stop     chan struct{}
	done     chan struct{}
}

func startProdClient(t *testing.T, addr string) *prodClient {
	c := &prodClient{stop: make(chan struct{}), done: make(chan struct{})}
	hc := http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	go func() {
		defer close(c.done)
		for {
			select {
			case <-c.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			resp, err := hc.Get("http://" + addr + "/")
			if err != nil {
				c.record("", err.Error())
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var body struct{ Device string }
			if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &body) != nil {
				c.record("", resp.Status+": "+strings.TrimSpace(string(b)))
				continue
			}
			c.record(body.Device, "")
		}
	}()
	t.Cleanup(c.halt)
	return c
}

func (c *prodClient) record(device, failure string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if failure != "" {
		c.failures = append(c.failures, failure)
		return
	}
	c.answers = append(c.answers, device)
	c.at = append(c.at, time.Now())
}

// firstAfter is when the first answer from device came after t; zero for none.
func (c *prodClient) firstAfter(device string, t time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, a := range c.answers {
		if a == device && c.at[i].After(t) {
			return c.at[i]
		}
	}
	return time.Time{}
}

func (c *prodClient) halt() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.done
}

// results stops the client and returns its answers and failures.
func (c *prodClient) results() ([]string, []string) {
	c.halt()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.answers, c.failures
}

// runs collapses answers into the sequence of devices that answered, in order.
func runs(answers []string) []string {
	var out []string
	for _, a := range answers {
		if len(out) == 0 || out[len(out)-1] != a {
			out = append(out, a)
		}
	}
	return out
}

// Prod deploys blue/green, proven with a client sending requests throughout: a good release
// takes production traffic only once its tasks are healthy, in one clean shift, with no
// request failing; a release whose health path fails never gets production traffic and is
// rolled back; a release whose deployment alarm fires during the bake has its traffic
// shifted back and the deploy fails naming the alarm; the next good release goes to the
// other group, production with it.
func TestBlueGreenProdDeploys(t *testing.T) {
	t.Parallel()
	h := newRolloutHarness(t, "prod")
	green := derivedImage(t, h.api, "vmctl-fixture-green:test", "OPENVOICE_DEVICE=green")
	bad := derivedImage(t, h.api, "vmctl-fixture-unhealthy:test", "DEMO_FAIL=unhealthy")
	alarmed := derivedImage(t, h.api, "vmctl-fixture-alarmed:test", "OPENVOICE_DEVICE=alarmed")
	// Every release is pushed before the first deploy (see rolloutHarness).
	rel1, plan1 := h.release("r1", nil)
	rel2, plan2 := h.release("r2", map[string]string{"frontend": green})
	rel3, plan3 := h.release("r3", map[string]string{"frontend": bad})
	rel4, plan4 := h.release("r4", map[string]string{"frontend": alarmed})
	plan1, plan2, plan3, plan4 = only(plan1, "frontend"), only(plan2, "frontend"), only(plan3, "frontend"), only(plan4, "frontend")
	ctx := context.Background()

	deploy := func(plan *rollout.Options, during func(progress.Event)) ([]progress.Event, *rollout.Result, error) {
		var mu sync.Mutex
		var evs []progress.Event
		plan.Progress = progressFunc(func(e progress.Event) {
			mu.Lock()
			evs = append(evs, e)
			mu.Unlock()
			if during != nil {
				during(e)
			}
		})
		plan.Events, plan.Poll = io.Discard, 100*time.Millisecond
		ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		res, err := rollout.Deploy(ctx, h.c, *plan)
		mu.Lock()
		defer mu.Unlock()
		return evs, res, err
	}
	texts := func(evs []progress.Event) []string {
		var out []string
		for _, e := range evs {
			if len(out) == 0 || out[len(out)-1] != e.Text {
				out = append(out, e.Text)
			}
		}
		return out
	}
	digest := func() (string, string) {
		rep, err := status.Status(ctx, h.c, plan1)
		require.NoError(t, err)
		require.Len(t, rep.Services, 1)
		return rep.Release, rep.Services[0].Digest
	}

	// The first deployment replaces nothing: the service is created behind the production group.
	_, res, err := deploy(&rollout.Options{Plan: plan1, Release: rel1}, nil)
	require.NoError(t, err)
	require.Equal(t, rollout.RolloutCompleted, res.Services[0].Rollout)

	// (a) A good release.
	c := startProdClient(t, h.lb.DNSName)
	evs, res, err := deploy(&rollout.Options{Plan: plan2, Release: rel2}, nil)
	require.NoError(t, err)
	assert.Equal(t, rollout.RolloutCompleted, res.Services[0].Rollout)
	answers, failures := c.results()
	t.Logf("good release: %d answers, stages %v", len(answers), texts(evs))
	assert.Empty(t, failures, "every request answered")
	assert.Equal(t, []string{"", "green"}, runs(answers), "r1 until the shift, then r2 only: one clean shift")
	shown := texts(evs)
	for _, stage := range []string{"Starting new set", "New set healthy", "Baking", "Completed"} {
		assert.Contains(t, shown, stage)
	}
	assert.Less(t, indexOf(shown, "New set healthy"), indexOf(shown, "Baking"), "%v", shown)
	for _, e := range evs {
		if e.Text == "Baking" {
			assert.Contains(t, e.Detail, "left of the 10m bake")
		}
	}
	rel, d := digest()
	assert.Equal(t, "r2", rel)
	assert.Equal(t, rel2.Images["frontend"].Digest, d)

	// The stages as ECS reports them, on the service deployment.
	sds, err := h.c.ECS.ListServiceDeployments(ctx, &awsecs.ListServiceDeploymentsInput{Cluster: sdkaws.String("vmctl-prod"), Service: sdkaws.String("frontend")})
	require.NoError(t, err)
	require.Len(t, sds.ServiceDeployments, 2)
	assert.Equal(t, ecstypes.ServiceDeploymentStatusSuccessful, sds.ServiceDeployments[0].Status)
	desc, err := h.c.ECS.DescribeServiceDeployments(ctx, &awsecs.DescribeServiceDeploymentsInput{ServiceDeploymentArns: []string{sdkaws.ToString(sds.ServiceDeployments[0].ServiceDeploymentArn)}})
	require.NoError(t, err)
	require.Len(t, desc.ServiceDeployments, 1)
	assert.Equal(t, ecstypes.ServiceDeploymentLifecycleStageCleanUp, desc.ServiceDeployments[0].LifecycleStage)

	// (b) A release whose health path fails: it never takes production traffic.
	c = startProdClient(t, h.lb.DNSName)
	evs, res, err = deploy(&rollout.Options{Plan: plan3, Release: rel3}, nil)
	require.Error(t, err)
	assert.Equal(t, rollout.RolloutFailed, res.Services[0].Rollout)
	assert.Contains(t, err.Error(), "circuit breaker")
	assert.Contains(t, err.Error(), "prod kept serving vmctl-prod-frontend:2 (release r2)")
	answers, failures = c.results()
	t.Logf("bad release: %d answers, stages %v, %v", len(answers), texts(evs), err)
	assert.Empty(t, failures, "0 failed requests")
	assert.Equal(t, []string{"green"}, runs(answers), "r2 served throughout")
	assert.NotContains(t, texts(evs), "Baking")
	rel, d = digest()
	assert.Equal(t, "r2", rel, "vmctl status shows prod on the previous release")
	assert.Equal(t, rel2.Images["frontend"].Digest, d)

	// (c) A release that turns bad during the bake: its deployment alarm fires.
	_, err = h.c.ECS.UpdateService(ctx, &awsecs.UpdateServiceInput{Cluster: sdkaws.String("vmctl-prod"), Service: sdkaws.String("frontend"),
		DeploymentConfiguration: &ecstypes.DeploymentConfiguration{Alarms: &ecstypes.DeploymentAlarms{AlarmNames: []string{"vmctl-prod-frontend-5xx"}, Enable: true, Rollback: true}}})
	require.NoError(t, err)
	c = startProdClient(t, h.lb.DNSName)
	var fired time.Time
	var once sync.Once
	evs, _, err = deploy(&rollout.Options{Plan: plan4, Release: rel4}, func(e progress.Event) {
		if e.Text == "Baking" {
			once.Do(func() { fired = time.Now(); h.sim.SetAlarmState("vmctl-prod-frontend-5xx", "ALARM") })
		}
	})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "vmctl-prod-frontend-5xx in ALARM state")
	assert.Contains(t, err.Error(), "ECS shifted production traffic back to vmctl-prod-frontend:2 (release r2)")
	answers, failures = c.results()
	t.Logf("alarmed release: %d answers, stages %v, %v", len(answers), texts(evs), err)
	assert.Empty(t, failures, "every request answered")
	assert.Equal(t, []string{"green", "alarmed", "green"}, runs(answers), "r4 during the bake, then r2 again")
	require.False(t, fired.IsZero())
	back := c.firstAfter("green", fired)
	require.False(t, back.IsZero())
	// ECS acts on an alarm at its next evaluation, a matter of seconds; so must the simulator.
	assert.Less(t, back.Sub(fired), 2*time.Second, "traffic back on r2 soon after the alarm fired")
	assert.Contains(t, texts(evs), "Rolled back")
	rel, _ = digest()
	assert.Equal(t, "r2", rel)

	// The groups swap roles on every deploy: r2 serves from the alternate group, so the next
	// release starts behind the first one and production moves back to it.
	h.sim.SetAlarmState("vmctl-prod-frontend-5xx", "OK")
	c = startProdClient(t, h.lb.DNSName)
	_, res, err = deploy(&rollout.Options{Plan: plan1, Release: rel1}, nil)
	require.NoError(t, err)
	assert.Equal(t, rollout.RolloutCompleted, res.Services[0].Rollout)
	answers, failures = c.results()
	assert.Empty(t, failures)
	assert.Equal(t, []string{"green", ""}, runs(answers))
	rel, d = digest()
	assert.Equal(t, "r1", rel)
	assert.Equal(t, rel1.Images["frontend"].Digest, d)
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}
