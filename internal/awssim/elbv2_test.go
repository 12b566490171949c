package awssim_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/awssim"
	"github.com/vmctl/vmctl/internal/awssim/simtest"
)

func newELB(t *testing.T, sim *awssim.Sim) *elbv2.Client {
	return elbv2.NewFromConfig(simtest.Config(t, sim, computeKey))
}

func TestELBv2Describe(t *testing.T) {
	sim := computeSim(t)
	lb := sim.CreateLoadBalancer("vmctl-dev")
	web := sim.CreateTargetGroup("vmctl-dev-frontend", "/", 55434)
	api := sim.CreateTargetGroup("vmctl-dev-backend", "/health", 55433)
	lone := sim.CreateTargetGroup("lone", "/", 80)
	require.NoError(t, sim.AttachTargetGroup(lb.ARN, api.ARN, "/api/*"))
	require.NoError(t, sim.AttachTargetGroup(lb.ARN, web.ARN))
	c := newELB(t, sim)
	ctx := context.Background()

	out, err := c.DescribeLoadBalancers(ctx, &elbv2.DescribeLoadBalancersInput{})
	require.NoError(t, err)
	require.Len(t, out.LoadBalancers, 1)
	got := out.LoadBalancers[0]
	assert.Equal(t, lb.ARN, sdkaws.ToString(got.LoadBalancerArn))
	assert.True(t, strings.HasPrefix(lb.ARN, "arn:aws:elasticloadbalancing:ap-northeast-1:"+computeAccount+":loadbalancer/app/vmctl-dev/"), lb.ARN)
	assert.Equal(t, lb.DNSName, sdkaws.ToString(got.DNSName))
	assert.Equal(t, elbtypes.LoadBalancerStateEnumActive, got.State.Code)
	assert.Equal(t, elbtypes.LoadBalancerTypeEnumApplication, got.Type)
	assert.WithinDuration(t, time.Now(), sdkaws.ToTime(got.CreatedTime), time.Minute)
	assert.Len(t, got.AvailabilityZones, 2)

	byName, err := c.DescribeLoadBalancers(ctx, &elbv2.DescribeLoadBalancersInput{Names: []string{"vmctl-dev"}})
	require.NoError(t, err)
	assert.Len(t, byName.LoadBalancers, 1)
	_, err = c.DescribeLoadBalancers(ctx, &elbv2.DescribeLoadBalancersInput{Names: []string{"nope"}})
	assert.Equal(t, "LoadBalancerNotFound", computeErrCode(err))
	_, err = c.DescribeLoadBalancers(ctx, &elbv2.DescribeLoadBalancersInput{LoadBalancerArns: []string{lb.ARN + "0"}})
	assert.Equal(t, "LoadBalancerNotFound", computeErrCode(err))

	tgs, err := c.DescribeTargetGroups(ctx, &elbv2.DescribeTargetGroupsInput{LoadBalancerArn: sdkaws.String(lb.ARN)})
	require.NoError(t, err)
	require.Len(t, tgs.TargetGroups, 2, "the lone group is not behind the load balancer")
	tgs, err = c.DescribeTargetGroups(ctx, &elbv2.DescribeTargetGroupsInput{Names: []string{"vmctl-dev-backend"}})
	require.NoError(t, err)
	require.Len(t, tgs.TargetGroups, 1)
	tg := tgs.TargetGroups[0]
	assert.Equal(t, api.ARN, sdkaws.ToString(tg.TargetGroupArn))
	assert.Equal(t, "/health", sdkaws.ToString(tg.HealthCheckPath))
	assert.Equal(t, int32(55433), sdkaws.ToInt32(tg.Port))
	assert.Equal(t, elbtypes.TargetTypeEnumIp, tg.TargetType)
	assert.Equal(t, "200", sdkaws.ToString(tg.Matcher.HttpCode))
	assert.Equal(t, []string{lb.ARN}, tg.LoadBalancerArns)
	assert.Equal(t, int32(2), sdkaws.ToInt32(tg.HealthyThresholdCount))
	assert.Equal(t, "traffic-port", sdkaws.ToString(tg.HealthCheckPort))
	tgs, err = c.DescribeTargetGroups(ctx, &elbv2.DescribeTargetGroupsInput{TargetGroupArns: []string{lone.ARN}})
	require.NoError(t, err)
	assert.Empty(t, tgs.TargetGroups[0].LoadBalancerArns)
	all, err := c.DescribeTargetGroups(ctx, &elbv2.DescribeTargetGroupsInput{})
	require.NoError(t, err)
	assert.Len(t, all.TargetGroups, 3)

	_, err = c.DescribeTargetGroups(ctx, &elbv2.DescribeTargetGroupsInput{Names: []string{"nope"}})
	assert.Equal(t, "TargetGroupNotFound", computeErrCode(err))
	_, err = c.DescribeTargetGroups(ctx, &elbv2.DescribeTargetGroupsInput{TargetGroupArns: []string{web.ARN[:len(web.ARN)-1] + "x"}})
	assert.Equal(t, "TargetGroupNotFound", computeErrCode(err))
	_, err = c.DescribeTargetGroups(ctx, &elbv2.DescribeTargetGroupsInput{LoadBalancerArn: sdkaws.String(lb.ARN + "0")})
	assert.Equal(t, "LoadBalancerNotFound", computeErrCode(err))
	_, err = c.DescribeTargetHealth(ctx, &elbv2.DescribeTargetHealthInput{TargetGroupArn: sdkaws.String("arn:aws:elasticloadbalancing:ap-northeast-1:1:targetgroup/nope/0123456789abcdef")})
	assert.Equal(t, "TargetGroupNotFound", computeErrCode(err))

	th, err := c.DescribeTargetHealth(ctx, &elbv2.DescribeTargetHealthInput{TargetGroupArn: sdkaws.String(web.ARN)})
	require.NoError(t, err)
	assert.Empty(t, th.TargetHealthDescriptions)
	th, err = c.DescribeTargetHealth(ctx, &elbv2.DescribeTargetHealthInput{TargetGroupArn: sdkaws.String(web.ARN), Targets: []elbtypes.TargetDescription{{Id: sdkaws.String("10.0.0.1"), Port: sdkaws.Int32(80)}}})
	require.NoError(t, err)
	require.Len(t, th.TargetHealthDescriptions, 1)
	assert.Equal(t, elbtypes.TargetHealthStateEnumUnused, th.TargetHealthDescriptions[0].TargetHealth.State)
	assert.Equal(t, elbtypes.TargetHealthReasonEnumNotRegistered, th.TargetHealthDescriptions[0].TargetHealth.Reason)

	_, err = c.DescribeAccountLimits(ctx, &elbv2.DescribeAccountLimitsInput{})
	assert.Equal(t, "InvalidAction", computeErrCode(err), "what the simulator lacks is refused loudly")
	_, err = elbv2.NewFromConfig(simtest.Config(t, sim, "AKIASTRANGER")).DescribeLoadBalancers(ctx, &elbv2.DescribeLoadBalancersInput{})
	assert.Equal(t, "InvalidClientTokenId", computeErrCode(err))
}

// fakeTarget is an HTTP server whose health answer a test can change.
type fakeTarget struct {
	*httptest.Server
	name   string
	status atomic.Int32
	hits   atomic.Int32
}

func newFakeTarget(t *testing.T, name string) *fakeTarget {
	b := &fakeTarget{name: name}
	b.status.Store(http.StatusOK)
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			w.WriteHeader(int(b.status.Load()))
			return
		}
		b.hits.Add(1)
		fmt.Fprintf(w, "%s %s", b.name, r.URL.Path)
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *fakeTarget) port() int { return b.Listener.Addr().(*net.TCPAddr).Port }

func targetHealthOf(t *testing.T, c *elbv2.Client, tg string) map[int]elbtypes.TargetHealth {
	t.Helper()
	out, err := c.DescribeTargetHealth(context.Background(), &elbv2.DescribeTargetHealthInput{TargetGroupArn: sdkaws.String(tg)})
	require.NoError(t, err)
	got := map[int]elbtypes.TargetHealth{}
	for _, d := range out.TargetHealthDescriptions {
		got[int(sdkaws.ToInt32(d.Target.Port))] = *d.TargetHealth
	}
	return got
}

func fetchURL(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestELBv2ProbesAndRoutes(t *testing.T) {
	sim := computeSim(t)
	lb := sim.CreateLoadBalancer("alb")
	web := sim.CreateTargetGroupWith(awssim.TargetGroupSpec{Name: "web", Port: 80, HealthPath: "/health", Interval: 50 * time.Millisecond, Timeout: 300 * time.Millisecond})
	api := sim.CreateTargetGroup("api", "/health", 80)
	require.NoError(t, sim.AttachTargetGroup(lb.ARN, web.ARN))
	require.NoError(t, sim.AttachTargetGroup(lb.ARN, api.ARN, "/api/*"))
	c := newELB(t, sim)
	base := "http://" + lb.DNSName

	code, _ := fetchURL(t, base+"/")
	assert.Equal(t, http.StatusServiceUnavailable, code, "no targets: the ALB answers 503 itself")

	a, b := newFakeTarget(t, "a"), newFakeTarget(t, "b")
	require.NoError(t, sim.RegisterTarget(web.ARN, a.port()))
	require.NoError(t, sim.RegisterTarget(web.ARN, b.port()))
	assert.Equal(t, elbtypes.TargetHealthStateEnumInitial, targetHealthOf(t, c, web.ARN)[a.port()].State)
	computeEventually(t, 10*time.Second, func() (bool, string) {
		h := targetHealthOf(t, c, web.ARN)
		return h[a.port()].State == elbtypes.TargetHealthStateEnumHealthy && h[b.port()].State == elbtypes.TargetHealthStateEnumHealthy, fmt.Sprint(h)
	})
	seen := map[string]bool{}
	for range 4 {
		code, body := fetchURL(t, base+"/page")
		require.Equal(t, http.StatusOK, code)
		seen[body] = true
	}
	assert.Equal(t, map[string]bool{"a /page": true, "b /page": true}, seen, "round robin over the healthy targets")

	// b fails its checks: it turns unhealthy with ELB's reason, and takes no traffic.
	b.status.Store(http.StatusServiceUnavailable)
	computeEventually(t, 10*time.Second, func() (bool, string) {
		h := targetHealthOf(t, c, web.ARN)[b.port()]
		return h.State == elbtypes.TargetHealthStateEnumUnhealthy, fmt.Sprint(h.State)
	})
	h := targetHealthOf(t, c, web.ARN)[b.port()]
	assert.Equal(t, elbtypes.TargetHealthReasonEnumResponseCodeMismatch, h.Reason)
	assert.Equal(t, "Health checks failed with these codes: [503]", sdkaws.ToString(h.Description))
	b.hits.Store(0)
	for range 4 {
		_, body := fetchURL(t, base+"/")
		assert.Equal(t, "a /", body)
	}
	assert.Zero(t, b.hits.Load())

	// a goes away: a refused connection fails the check; with no healthy
	// target left the ALB fails open, and the dead one answers 502.
	a.Close()
	computeEventually(t, 10*time.Second, func() (bool, string) {
		h := targetHealthOf(t, c, web.ARN)[a.port()]
		return h.State == elbtypes.TargetHealthStateEnumUnhealthy, fmt.Sprint(h.State)
	})
	assert.Equal(t, elbtypes.TargetHealthReasonEnumFailedHealthChecks, targetHealthOf(t, c, web.ARN)[a.port()].Reason)
	codes := map[int]bool{}
	for range 4 {
		code, _ := fetchURL(t, base+"/")
		codes[code] = true
	}
	assert.Equal(t, map[int]bool{http.StatusOK: true, http.StatusBadGateway: true}, codes)

	// Path patterns route /api/* to the api group.
	apiSrv := newFakeTarget(t, "api")
	require.NoError(t, sim.RegisterTarget(api.ARN, apiSrv.port()))
	computeEventually(t, 10*time.Second, func() (bool, string) {
		h := targetHealthOf(t, c, api.ARN)[apiSrv.port()]
		return h.State == elbtypes.TargetHealthStateEnumHealthy, fmt.Sprint(h.State)
	})
	code, body := fetchURL(t, base+"/api/voices")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "api /api/voices", body)

	// Deregistered, a target drains, then is gone.
	require.NoError(t, sim.DeregisterTarget(api.ARN, apiSrv.port()))
	assert.Equal(t, elbtypes.TargetHealthStateEnumDraining, targetHealthOf(t, c, api.ARN)[apiSrv.port()].State)
	computeEventually(t, 10*time.Second, func() (bool, string) {
		h := targetHealthOf(t, c, api.ARN)
		return len(h) == 0, strconv.Itoa(len(h))
	})
}

// The proxy evaluates a listener's rules as an ALB does, and as
// DescribeRules reports them: the lowest priority number first whatever the
// order they were made in, path patterns with * (any run, empty too) and ?
// (exactly one character), case-sensitive, on the path alone; then the
// default action.
func TestELBv2RulesByPriority(t *testing.T) {
	sim := computeSim(t)
	lb := sim.CreateLoadBalancer("alb")
	fast := 50 * time.Millisecond
	spec := func(name string) awssim.TargetGroupSpec {
		return awssim.TargetGroupSpec{Name: name, Port: 80, HealthPath: "/health", Interval: fast}
	}
	web, api, v := sim.CreateTargetGroupWith(spec("web")), sim.CreateTargetGroupWith(spec("api")), sim.CreateTargetGroupWith(spec("versioned"))
	require.NoError(t, sim.AttachTargetGroup(lb.ARN, web.ARN))
	require.NoError(t, sim.AttachTargetGroupAt(lb.ARN, api.ARN, 20, "/api/*", "/health"))
	require.NoError(t, sim.AttachTargetGroupAt(lb.ARN, v.ARN, 10, "/api/v?/*"))
	require.Error(t, sim.AttachTargetGroupAt(lb.ARN, web.ARN, 10, "/x"), "a priority is unique on a listener")
	c := newELB(t, sim)
	for arn, name := range map[string]string{web.ARN: "web", api.ARN: "api", v.ARN: "versioned"} {
		srv := newFakeTarget(t, name)
		require.NoError(t, sim.RegisterTarget(arn, srv.port()))
		computeEventually(t, 10*time.Second, func() (bool, string) {
			h := targetHealthOf(t, c, arn)[srv.port()]
			return h.State == elbtypes.TargetHealthStateEnumHealthy, fmt.Sprint(h.State)
		})
	}

	ctx := context.Background()
	ls, err := c.DescribeListeners(ctx, &elbv2.DescribeListenersInput{LoadBalancerArn: sdkaws.String(lb.ARN)})
	require.NoError(t, err)
	rules, err := c.DescribeRules(ctx, &elbv2.DescribeRulesInput{ListenerArn: ls.Listeners[0].ListenerArn})
	require.NoError(t, err)
	var described []string
	for _, r := range rules.Rules {
		var pats []string
		for _, cond := range r.Conditions {
			pats = append(pats, cond.PathPatternConfig.Values...)
		}
		described = append(described, sdkaws.ToString(r.Priority)+" "+strings.Join(pats, ",")+" → "+sdkaws.ToString(r.Actions[0].TargetGroupArn))
	}
	assert.Equal(t, []string{"10 /api/v?/* → " + v.ARN, "20 /api/*,/health → " + api.ARN, "default  → " + web.ARN}, described)

	base := "http://" + lb.DNSName
	for path, want := range map[string]string{
		"/api/v1/voices":  "versioned", // both rules match: 10 outranks 20, made later or not
		"/api/v10/voices": "api",       // ? is exactly one character
		"/api/":           "api",       // * matches nothing too
		"/api":            "web",       // no rule matches: the default action
		"/api/v?/x":       "api",       // the path is /api/v: the query is not matched
		"/API/voices":     "web",       // patterns are case-sensitive
		"/":               "web",
	} {
		code, body := fetchURL(t, base+path)
		assert.Equal(t, http.StatusOK, code, path)
		assert.True(t, strings.HasPrefix(body, want+" "), "%s reached %q, want %s", path, body, want)
	}
}
