// Package verify proves that an environment runs a release and runs it well: the
// running tasks' digests are the release's (parity), every load balancer target is
// healthy, health paths answer through the load balancer within a latency target,
// each GPU host passes the CUDA 11.8 rules (read over SSM), and OpenVoice's own CUDA
// check passes in a task on a GPU host. Verify returns a Report of Checks, each with
// a Verdict.
package verify

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/gpu"
	"github.com/vmctl/vmctl/internal/progress"
	"github.com/vmctl/vmctl/internal/registry"
	"github.com/vmctl/vmctl/internal/release"
)

// Verdict is one check's outcome.
type Verdict string

// The verdicts; a report is as bad as its worst check (fail, then unknown,
// then warning).
const (
	Pass    Verdict = "pass"
	Fail    Verdict = "fail"
	Unknown Verdict = "unknown" // the check could not tell
	// Warn is a check that found nothing broken but something short of a
	// pass: a slow health path, or one verify could not reach through the
	// load balancer and judged from ELB's target health instead. It does not
	// fail verify, and it is never shown as a pass.
	Warn Verdict = "warning"
	// Skipped: the operator chose not to run the check (verify --no-probe); the
	// table says so, and the verdict does not count it as passed or failed.
	Skipped Verdict = "skipped"
)

// The checks verify makes.
const (
	CheckParity    = "parity"     // running digests are the release's
	CheckTargets   = "targets"    // every load balancer target is healthy
	CheckEndpoint  = "endpoint"   // health paths answer through the load balancer
	CheckGPUHost   = "gpu-host"   // each GPU instance passes the CUDA 11.8 rules
	CheckCUDAProbe = "cuda-probe" // OpenVoice's own CUDA check on a GPU host
	CheckHTTPS     = "https"      // the public endpoint is HTTPS, and plain HTTP only redirects
)

// Check is one row of the verdict table.
type Check struct {
	Check   string  `json:"check"`
	Subject string  `json:"subject"` // a service, a target group, an instance, a URL
	Verdict Verdict `json:"verdict"`
	Detail  string  `json:"detail"`
	Fix     string  `json:"fix,omitempty"`
	// Latency is the burst behind an endpoint check that reached its
	// service through the load balancer.
	Latency *Latency `json:"latency,omitempty"`
}

// Report is the verdict table of one environment running one release.
type Report struct {
	Environment string      `json:"environment"`
	Cluster     string      `json:"cluster"`
	Release     string      `json:"release"`
	Verdict     Verdict     `json:"verdict"`
	Checks      []Check     `json:"checks"`
	GPUHosts    []HostCheck `json:"gpu_hosts,omitempty"`
	Probe       *ProbeCheck `json:"cuda_probe,omitempty"`
}

// HostCheck is what one GPU instance reported and how the rules judged it.
type HostCheck struct {
	InstanceID string         `json:"instance_id"`
	Group      string         `json:"auto_scaling_group"`
	Report     gpu.HostReport `json:"report"`
}

// ProbeCheck is the one-off CUDA check task and what it printed.
type ProbeCheck struct {
	Task           string          `json:"task"`
	TaskDefinition string          `json:"task_definition"`
	Result         gpu.ProbeResult `json:"result"`
	Verdict        gpu.Verdict     `json:"verdict"`
}

// Passed says whether no check failed or was left unknown: warnings do not
// stop a promotion, though Summary names them.
func (r *Report) Passed() bool { return r.worst() == Pass || r.worst() == Warn }

// Failed lists the checks that did not pass, warnings included.
func (r *Report) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if c.Verdict != Pass && c.Verdict != Skipped {
			out = append(out, c)
		}
	}
	return out
}

func (r *Report) worst() Verdict {
	v := Pass
	for _, c := range r.Checks {
		switch {
		case c.Verdict == Fail:
			return Fail
		case c.Verdict == Warn || c.Verdict == Skipped:
			if v == Pass {
				v = Warn
			}
		case c.Verdict != Pass:
			v = Unknown
		}
	}
	return v
}

// Summary names the checks that did not pass, one clause each.
func (r *Report) Summary() string {
	var parts []string
	for _, c := range r.Failed() {
		parts = append(parts, fmt.Sprintf("%s %s %s: %s", c.Check, c.Subject, c.Verdict, c.Detail))
	}
	if len(parts) == 0 {
		return fmt.Sprintf("all %d checks passed", len(r.Checks))
	}
	return strings.Join(parts, "; ")
}

// Options tunes verify; the zero value suits real AWS.
type Options struct {
	// GPU is what OpenVoice needs of each GPU host (the environment's gpu block).
	GPU gpu.Requirements
	// ProbeCommand overrides the GPU service's command in the one-off check
	// task; gpu.DefaultProbeCommand when empty. The image's entrypoint runs it.
	ProbeCommand []string
	// ProbeEnv is added to the check task's environment.
	ProbeEnv map[string]string
	// NoProbe skips the one-off CUDA check task, the one check that writes to the
	// environment (it starts a task); the report says it was skipped.
	NoProbe bool
	// Endpoint replaces the base of the health URLs (verify --endpoint).
	Endpoint string
	// Domain is the environment's public name (aws.domain): without Endpoint the health
	// URLs are https://<Domain>/…, and http://<Domain>/ must redirect to HTTPS. Without
	// either, verify reaches the load balancer by its DNS name over plain HTTP, and says so.
	Domain string
	// PlainEndpoint is the plain-HTTP URL that must redirect to HTTPS: http://<Domain> by
	// default (tests point it at a loopback port).
	PlainEndpoint string
	// TLS verifies the public endpoint's certificate: nil uses the system's roots; tests
	// give their own CA. Nothing turns verification off.
	TLS *tls.Config

	Poll         time.Duration // between polls of target health, SSM, the task, logs; 2 s
	Settle       time.Duration // how long targets and health paths may take to turn healthy; 2 min
	SSMTimeout   time.Duration // for nvidia-smi on the hosts; 2 min
	ProbeTimeout time.Duration // for the check task to place, pull, run and stop; 15 min
	LogsTimeout  time.Duration // for its output to reach CloudWatch Logs; 1 min
	HTTPTimeout  time.Duration // of one health request; 5 s

	// Burst is how many requests, one after another, measure the latency of
	// each health path reached through the load balancer; 20 by default,
	// below 0 none.
	Burst int
	// LatencyTarget is the P95 above which the burst is a warning: the
	// seed's 200 ms target for the API.
	LatencyTarget time.Duration

	Progress progress.Writer
}

// DefaultLatencyTarget is the seed's target for the API's P95 latency.
const DefaultLatencyTarget = 200 * time.Millisecond

func (o Options) withDefaults() Options {
	o.Poll = cmp.Or(o.Poll, 2*time.Second)
	o.Settle = cmp.Or(o.Settle, 2*time.Minute)
	o.SSMTimeout = cmp.Or(o.SSMTimeout, 2*time.Minute)
	o.ProbeTimeout = cmp.Or(o.ProbeTimeout, 15*time.Minute)
	o.LogsTimeout = cmp.Or(o.LogsTimeout, time.Minute)
	o.HTTPTimeout = cmp.Or(o.HTTPTimeout, 5*time.Second)
	o.Burst = max(cmp.Or(o.Burst, 20), 0)
	o.LatencyTarget = cmp.Or(o.LatencyTarget, DefaultLatencyTarget)
	if len(o.ProbeCommand) == 0 {
		o.ProbeCommand = gpu.DefaultProbeCommand
	}
	if o.Progress == nil {
		o.Progress = progress.Discard{}
	}
	return o
}

// Verify checks that an environment runs a release and runs it well:
// parity of digests, healthy targets, health paths through the load
// balancer, the CUDA 11.8 rules on every GPU host, and OpenVoice's own CUDA
// check in a one-off task. A check that cannot reach AWS says unknown; the
// error is only for a cancelled context or unusable input.
func Verify(ctx context.Context, c aws.Clients, plan *ecs.Plan, rel *release.Release, opts Options) (*Report, error) {
	if plan == nil || rel == nil {
		return nil, errors.New("verify: a plan and a release are required")
	}
	v := &verifier{c: c, plan: plan, rel: rel, opts: opts.withDefaults()}
	v.report = &Report{Environment: plan.Environment, Cluster: plan.Cluster, Release: rel.ID}
	// The checks are independent; the probe task is slow, so all run at once
	// and the table keeps a fixed order.
	steps := []func(context.Context) []Check{v.parity, v.targets, v.endpoints, v.https, v.gpuHosts, v.cudaProbe}
	results := make([][]Check, len(steps))
	var wg sync.WaitGroup
	for i, step := range steps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = step(ctx)
		}()
	}
	wg.Wait()
	for _, r := range results {
		v.report.Checks = append(v.report.Checks, r...)
	}
	v.report.Verdict = v.report.worst()
	if err := ctx.Err(); err != nil {
		return v.report, err
	}
	return v.report, nil
}

type verifier struct {
	c      aws.Clients
	plan   *ecs.Plan
	rel    *release.Release
	opts   Options
	mu     sync.Mutex
	report *Report
}

// event reports a finished check to the progress view.
func (v *verifier) event(c Check) {
	status := map[Verdict]progress.Status{Pass: progress.Done, Fail: progress.Error, Unknown: progress.Warning, Warn: progress.Warning, Skipped: progress.Warning}[c.Verdict]
	v.opts.Progress.Event(progress.Event{Resource: "verify " + c.Check + " " + c.Subject, Status: status, Text: string(c.Verdict), Detail: c.Detail})
}

func (v *verifier) done(checks ...Check) []Check {
	for _, c := range checks {
		v.event(c)
	}
	return checks
}

// sleep waits one poll interval; false when ctx ended first.
func (v *verifier) sleep(ctx context.Context) bool {
	t := time.NewTimer(v.opts.Poll)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func shortARN(arn string) string {
	if i := strings.LastIndexByte(arn, '/'); i >= 0 {
		id := arn[i+1:]
		return id[:min(len(id), 12)]
	}
	return arn
}

// ---- parity

func (v *verifier) parity(ctx context.Context) []Check {
	var out []Check
	for _, s := range v.plan.Services {
		out = append(out, v.done(v.serviceParity(ctx, s))...)
	}
	return out
}

// runningTasks describes a service's tasks that ECS wants running.
func runningTasks(ctx context.Context, api aws.ECS, cluster, service string) ([]ecstypes.Task, error) {
	var arns []string
	in := &awsecs.ListTasksInput{Cluster: sdkaws.String(cluster), ServiceName: sdkaws.String(service), DesiredStatus: ecstypes.DesiredStatusRunning}
	for {
		page, err := api.ListTasks(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list the tasks of %s: %w", service, err)
		}
		arns = append(arns, page.TaskArns...)
		if page.NextToken == nil {
			break
		}
		in.NextToken = page.NextToken
	}
	var tasks []ecstypes.Task
	for chunk := range slices.Chunk(arns, 100) {
		out, err := api.DescribeTasks(ctx, &awsecs.DescribeTasksInput{Cluster: sdkaws.String(cluster), Tasks: chunk})
		if err != nil {
			return nil, fmt.Errorf("describe the tasks of %s: %w", service, err)
		}
		tasks = append(tasks, out.Tasks...)
	}
	return tasks, nil
}

func (v *verifier) serviceParity(ctx context.Context, s ecs.Service) Check {
	c := Check{Check: CheckParity, Subject: s.Name}
	tasks, err := runningTasks(ctx, v.c.ECS, v.plan.Cluster, s.Name)
	var nf *ecstypes.ServiceNotFoundException
	switch {
	case errors.As(err, &nf):
		c.Verdict, c.Detail = Fail, fmt.Sprintf("service %s does not exist in cluster %s", s.Name, v.plan.Cluster)
		c.Fix = fmt.Sprintf("deploy it: vmctl deploy --env %s --release %s", v.plan.Environment, v.rel.ID)
		return c
	case err != nil:
		c.Verdict, c.Detail = Unknown, err.Error()
		return c
	}
	var running int
	var wrong, unknown []string
	seen := map[string]string{} // container → digest
	for _, t := range tasks {
		if sdkaws.ToString(t.LastStatus) != "RUNNING" {
			continue
		}
		running++
		for _, ct := range t.Containers {
			name := sdkaws.ToString(ct.Name)
			want := v.rel.Images[name].Digest
			got := sdkaws.ToString(ct.ImageDigest)
			switch {
			case want == "":
				unknown = append(unknown, fmt.Sprintf("release %s has no digest for %s", v.rel.ID, name))
			case got == "":
				unknown = append(unknown, fmt.Sprintf("ECS reports no image digest for container %s of task %s", name, shortARN(sdkaws.ToString(t.TaskArn))))
			case got != want:
				wrong = append(wrong, fmt.Sprintf("task %s container %s runs %s, release %s has %s", shortARN(sdkaws.ToString(t.TaskArn)), name, registry.ShortDigest(got), v.rel.ID, registry.ShortDigest(want)))
			default:
				seen[name] = got
			}
		}
	}
	switch {
	case len(wrong) > 0:
		c.Verdict, c.Detail = Fail, strings.Join(registry.FirstN(wrong, 3), "; ")
		c.Fix = fmt.Sprintf("deploy the release (vmctl deploy --env %s --release %s), or follow a rollout in progress with vmctl status --env %s", v.plan.Environment, v.rel.ID, v.plan.Environment)
	case running == 0:
		c.Verdict = Fail
		c.Detail = fmt.Sprintf("no task of %s is RUNNING (%d wanted running)", s.Name, len(tasks))
		c.Fix = fmt.Sprintf("see why with vmctl status --env %s", v.plan.Environment)
	case len(unknown) > 0:
		c.Verdict, c.Detail = Unknown, strings.Join(registry.FirstN(registry.Dedupe(unknown), 3), "; ")
	default:
		var parts []string
		for _, name := range slices.Sorted(maps.Keys(seen)) {
			parts = append(parts, name+" "+registry.ShortDigest(seen[name]))
		}
		c.Verdict = Pass
		c.Detail = fmt.Sprintf("%d running %s the release's %s", running, plural(running, "task runs", "tasks run"), strings.Join(parts, ", "))
	}
	return c
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// ---- target health

// targetGroups resolves target group names to their descriptions.
func targetGroups(ctx context.Context, api aws.ELB, names []string) (map[string]elbtypes.TargetGroup, error) {
	out, err := api.DescribeTargetGroups(ctx, &elbv2.DescribeTargetGroupsInput{Names: names})
	if err != nil {
		return nil, fmt.Errorf("describe target groups %s: %w", strings.Join(names, ", "), err)
	}
	byName := map[string]elbtypes.TargetGroup{}
	for _, tg := range out.TargetGroups {
		byName[sdkaws.ToString(tg.TargetGroupName)] = tg
	}
	return byName, nil
}

func (v *verifier) targets(ctx context.Context) []Check {
	var out []Check
	for _, s := range v.plan.Services {
		if s.LoadBalancer == nil {
			continue
		}
		out = append(out, v.done(v.serviceTargets(ctx, s))...)
	}
	return out
}

// targetTally sorts a service's targets by what they mean for verify.
type targetTally struct {
	healthy, pending, ignored int
	bad                       []string
}

func (v *verifier) serviceTargets(ctx context.Context, s ecs.Service) Check {
	lb := s.LoadBalancer
	c := Check{Check: CheckTargets, Subject: lb.TargetGroup}
	names := []string{lb.TargetGroup}
	if lb.AlternateTargetGroup != "" {
		names = append(names, lb.AlternateTargetGroup)
	}
	groups, err := targetGroups(ctx, v.c.ELB, names)
	var nf *elbtypes.TargetGroupNotFoundException
	switch {
	case errors.As(err, &nf):
		c.Verdict, c.Detail = Fail, "a target group does not exist: "+strings.Join(names, ", ")
		c.Fix = "create the target groups vmctl plan names, or fix the environment's load balancer settings"
		return c
	case err != nil:
		c.Verdict, c.Detail = Unknown, err.Error()
		return c
	}
	if _, ok := groups[lb.TargetGroup]; !ok {
		c.Verdict, c.Detail = Fail, fmt.Sprintf("target group %s does not exist", lb.TargetGroup)
		return c
	}
	tally, err := v.settle(ctx, groups, names)
	switch {
	case err != nil:
		c.Verdict, c.Detail = Unknown, err.Error()
	case tally.pending == 0 && len(tally.bad) == 0 && tally.healthy > 0:
		c.Verdict = Pass
		c.Detail = fmt.Sprintf("%d %s healthy", tally.healthy, plural(tally.healthy, "target", "targets"))
		if tally.ignored > 0 {
			c.Detail += fmt.Sprintf(" (%d draining or unused)", tally.ignored)
		}
	default:
		c.Verdict, c.Detail = Fail, v.unhealthy(tally)
		c.Fix = fmt.Sprintf("see the service's events and stopped tasks with vmctl status --env %s", v.plan.Environment)
	}
	return c
}

// settle tallies the targets until none is registering and at least one
// has an answer, or Settle runs out: targets still registering may yet turn
// healthy, while an unhealthy one beside none registering is the answer.
func (v *verifier) settle(ctx context.Context, groups map[string]elbtypes.TargetGroup, names []string) (targetTally, error) {
	deadline := time.Now().Add(v.opts.Settle)
	for {
		tally, err := v.tallyTargets(ctx, groups, names)
		if err != nil || tally.pending == 0 && (tally.healthy > 0 || len(tally.bad) > 0) || time.Now().After(deadline) || !v.sleep(ctx) {
			return tally, err
		}
	}
}

// unhealthy says why a settled tally is not all healthy.
func (v *verifier) unhealthy(t targetTally) string {
	switch {
	case len(t.bad) > 0:
		return strings.Join(registry.FirstN(t.bad, 3), "; ")
	case t.pending > 0:
		return fmt.Sprintf("%d %s still registering after %s", t.pending, plural(t.pending, "target", "targets"), v.opts.Settle)
	}
	return "no target is registered"
}

func (v *verifier) tallyTargets(ctx context.Context, groups map[string]elbtypes.TargetGroup, names []string) (targetTally, error) {
	var t targetTally
	for _, name := range names {
		tg, ok := groups[name]
		if !ok {
			continue
		}
		out, err := v.c.ELB.DescribeTargetHealth(ctx, &elbv2.DescribeTargetHealthInput{TargetGroupArn: tg.TargetGroupArn})
		if err != nil {
			return t, fmt.Errorf("describe the health of %s: %w", name, err)
		}
		for _, d := range out.TargetHealthDescriptions {
			if d.TargetHealth == nil {
				t.pending++
				continue
			}
			switch d.TargetHealth.State {
			case elbtypes.TargetHealthStateEnumHealthy:
				t.healthy++
			case elbtypes.TargetHealthStateEnumInitial:
				t.pending++
			case elbtypes.TargetHealthStateEnumDraining, elbtypes.TargetHealthStateEnumUnused:
				// Leaving, or parked in blue/green's other group: not serving.
				t.ignored++
			default:
				where := ""
				if d.Target != nil {
					where = fmt.Sprintf("%s:%d", sdkaws.ToString(d.Target.Id), sdkaws.ToInt32(d.Target.Port))
				}
				t.bad = append(t.bad, fmt.Sprintf("%s in %s is %s: %s %s", where, name, d.TargetHealth.State, d.TargetHealth.Reason, sdkaws.ToString(d.TargetHealth.Description)))
			}
		}
	}
	return t, nil
}

// ---- health through the public endpoint

// lbRoute is how one load balancer's listener routes the requests verify
// sends it.
type lbRoute struct {
	listener string
	rules    []listenerRule
	err      error
}

func (v *verifier) endpoints(ctx context.Context) []Check {
	var public []ecs.Service
	var names []string
	for _, s := range v.plan.Services {
		if s.LoadBalancer != nil {
			public = append(public, s)
			names = append(names, s.LoadBalancer.TargetGroup)
			if a := s.LoadBalancer.AlternateTargetGroup; a != "" {
				names = append(names, a)
			}
		}
	}
	if len(public) == 0 {
		return nil
	}
	fail := func(verdict Verdict, detail string) []Check {
		var out []Check
		for _, s := range public {
			out = append(out, Check{Check: CheckEndpoint, Subject: s.Name, Verdict: verdict, Detail: detail})
		}
		return v.done(out...)
	}
	groups, err := targetGroups(ctx, v.c.ELB, names)
	var nf *elbtypes.TargetGroupNotFoundException
	switch {
	case errors.As(err, &nf):
		return fail(Fail, "a target group does not exist: "+strings.Join(names, ", "))
	case err != nil:
		return fail(Unknown, err.Error())
	}
	// A service is reached through the load balancer its target group (or,
	// in blue/green, its alternate) is attached to.
	lbOf := map[string]string{} // service → load balancer ARN
	var lbARNs []string
	for _, s := range public {
		for _, n := range []string{s.LoadBalancer.TargetGroup, s.LoadBalancer.AlternateTargetGroup} {
			if arns := groups[n].LoadBalancerArns; len(arns) > 0 && lbOf[s.Name] == "" {
				lbOf[s.Name] = arns[0]
			}
		}
		if a := lbOf[s.Name]; a != "" && !slices.Contains(lbARNs, a) {
			lbARNs = append(lbARNs, a)
		}
	}
	dns := map[string]string{}
	if v.opts.Endpoint == "" && v.opts.Domain == "" && len(lbARNs) > 0 {
		out, err := v.c.ELB.DescribeLoadBalancers(ctx, &elbv2.DescribeLoadBalancersInput{LoadBalancerArns: lbARNs})
		if err != nil {
			return fail(Unknown, "describe the load balancers: "+err.Error())
		}
		for _, lb := range out.LoadBalancers {
			dns[sdkaws.ToString(lb.LoadBalancerArn)] = sdkaws.ToString(lb.DNSName)
		}
	}
	bases := map[string]string{}   // service → base URL
	routes := map[string]lbRoute{} // load balancer ARN → its listener's rules
	for _, s := range public {
		a := lbOf[s.Name]
		switch {
		case a == "":
			continue
		case v.opts.Endpoint != "":
			bases[s.Name] = strings.TrimSuffix(v.opts.Endpoint, "/")
		case v.opts.Domain != "":
			bases[s.Name] = "https://" + v.opts.Domain
		case dns[a] != "":
			bases[s.Name] = "http://" + dns[a]
		default:
			continue
		}
		if _, ok := routes[a]; !ok {
			var r lbRoute
			r.listener, r.rules, r.err = v.listenerRules(ctx, a, bases[s.Name])
			routes[a] = r
		}
	}
	out := make([]Check, len(public))
	var wg sync.WaitGroup
	for i, s := range public {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = v.endpoint(ctx, s, bases[s.Name], routes[lbOf[s.Name]], groups)
		}()
	}
	wg.Wait()
	return v.done(out...)
}

// endpoint checks a service's health path through the load balancer, but
// only where the listener's rules route that path to the service's own
// target group: any other answer would be another service's.
func (v *verifier) endpoint(ctx context.Context, s ecs.Service, base string, rt lbRoute, groups map[string]elbtypes.TargetGroup) Check {
	lb := s.LoadBalancer
	c := Check{Check: CheckEndpoint, Subject: s.Name}
	if base == "" {
		c.Verdict = Fail
		c.Detail = fmt.Sprintf("target group %s is attached to no load balancer", lb.TargetGroup)
		c.Fix = "attach it with a listener rule for " + strings.Join(lb.PathPatterns, ", ")
		return c
	}
	if rt.err != nil {
		c.Verdict = Unknown
		c.Detail = fmt.Sprintf("which listener rule routes %s is unknown: %s", lb.HealthPath, oneLineErr(rt.err))
		return c
	}
	own := []string{sdkaws.ToString(groups[lb.TargetGroup].TargetGroupArn)}
	if lb.AlternateTargetGroup != "" {
		own = append(own, sdkaws.ToString(groups[lb.AlternateTargetGroup].TargetGroupArn))
	}
	rule, ok := routeOf(rt.rules, lb.HealthPath)
	if !ok || !rule.forwardsTo(own...) {
		return v.unrouted(ctx, s, rt.listener, rule, ok, groups)
	}
	url := base + lb.HealthPath
	via := fmt.Sprintf("%s of %s", rule, rt.listener)
	wait, cancel := context.WithTimeout(ctx, v.opts.Settle)
	defer cancel()
	if err := v.prober(false).Until(wait, url, v.opts.Poll); err != nil {
		c.Verdict, c.Detail = Fail, fmt.Sprintf("GET %s through %s: %s", url, via, oneLineErr(err))
		c.Fix = fmt.Sprintf("check the service's logs (vmctl logs --env %s %s) and its target group %s", v.plan.Environment, s.Name, lb.TargetGroup)
		return c
	}
	c.Verdict, c.Detail = Pass, fmt.Sprintf("GET %s answered 2xx through %s", url, via)
	if v.opts.Burst == 0 {
		return c
	}
	lat, lastErr := v.burst(ctx, url)
	c.Latency = lat
	target := v.opts.LatencyTarget
	took := time.Duration(lat.P95MS * float64(time.Millisecond))
	var warns []string
	if lat.Failed > 0 {
		warns = append(warns, fmt.Sprintf("%d of %d burst requests failed (last: %s)", lat.Failed, lat.Requests, lastErr))
	}
	switch {
	case lat.Failed == lat.Requests:
	case took > target:
		warns = append(warns, fmt.Sprintf("P95 %s over %d requests is above the %s API target", took, lat.Requests, target))
	default:
		c.Detail += fmt.Sprintf("; P95 %s over %d requests (target %s)", took, lat.Requests, target)
	}
	if len(warns) > 0 {
		c.Verdict = Warn
		c.Detail += "; " + strings.Join(warns, "; ")
		c.Fix = fmt.Sprintf("see what slows %s: vmctl logs --env %s %s, and its CPU and memory in vmctl status --env %s", s.Name, v.plan.Environment, s.Name, v.plan.Environment)
	}
	return c
}

// burst times Burst requests to a health path, one after another on one
// kept-alive connection, so the figure is the service's and the load
// balancer's, not connection setup's.
func (v *verifier) burst(ctx context.Context, url string) (*Latency, string) {
	p := v.prober(true)
	defer p.Client.CloseIdleConnections()
	lat := &Latency{TargetMS: millis(v.opts.LatencyTarget)}
	var took []time.Duration
	var last string
	for range v.opts.Burst {
		if ctx.Err() != nil {
			break
		}
		start := time.Now()
		err := p.Probe(ctx, url)
		lat.Requests++
		if err != nil {
			lat.Failed++
			last = oneLineErr(err)
			continue
		}
		took = append(took, time.Since(start))
	}
	lat.P95MS = millis(p95(took))
	return lat, last
}

// unrouted judges a service whose health path no listener rule sends to
// it: from ELB's own health checks of its target group, said as such, since
// verify saw nothing of it through the load balancer.
func (v *verifier) unrouted(ctx context.Context, s ecs.Service, listener string, rule listenerRule, matched bool, groups map[string]elbtypes.TargetGroup) Check {
	lb := s.LoadBalancer
	c := Check{Check: CheckEndpoint, Subject: s.Name}
	where := fmt.Sprintf("%s has no rule for it", listener)
	if matched {
		where = fmt.Sprintf("%s sends it to %s by %s", listener, rule.destination(), rule)
	}
	head := fmt.Sprintf("no listener rule routes %s to %s (%s)", lb.HealthPath, s.Name, where)
	c.Fix = fmt.Sprintf("route %s to target group %s: add it to %s's load_balancer.path_patterns (%s) and to the listener, or serve health under those patterns", lb.HealthPath, lb.TargetGroup, s.Name, strings.Join(lb.PathPatterns, ", "))
	names := []string{lb.TargetGroup}
	if lb.AlternateTargetGroup != "" {
		names = append(names, lb.AlternateTargetGroup)
	}
	tally, err := v.settle(ctx, groups, names)
	if err != nil {
		c.Verdict, c.Detail = Unknown, head+"; target group health from ELB unknown: "+oneLineErr(err)
		return c
	}
	total := tally.healthy + tally.pending + len(tally.bad)
	c.Detail = fmt.Sprintf("%s; target group health from ELB: %d/%d healthy", head, tally.healthy, total)
	if tally.pending == 0 && len(tally.bad) == 0 && tally.healthy > 0 {
		c.Verdict = Warn
		return c
	}
	c.Verdict = Fail
	c.Detail += ": " + v.unhealthy(tally)
	return c
}

// destination names where a rule sends requests.
func (r listenerRule) destination() string {
	if len(r.TargetGroups) > 0 {
		var names []string
		for _, a := range r.TargetGroups {
			names = append(names, "target group "+tgName(a))
		}
		return strings.Join(names, " and ")
	}
	if r.Action != "" {
		return "a " + r.Action + " action"
	}
	return "no target"
}

func oneLineErr(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

// pathMatches applies ALB path patterns (* and ?) to a path.
func pathMatches(patterns []string, path string) bool {
	for _, p := range patterns {
		if globMatch(p, path) {
			return true
		}
	}
	return false
}

func globMatch(p, s string) bool {
	for len(p) > 0 {
		switch p[0] {
		case '*':
			for i := len(s); i >= 0; i-- {
				if globMatch(p[1:], s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if s == "" {
				return false
			}
		default:
			if s == "" || s[0] != p[0] {
				return false
			}
		}
		p, s = p[1:], s[1:]
	}
	return s == ""
}

// ---- GPU hosts through SSM

func (v *verifier) gpuHosts(ctx context.Context) []Check {
	var out []Check
	for _, s := range v.plan.Services {
		if s.Hosts == nil {
			continue
		}
		out = append(out, v.done(v.groupHosts(ctx, s.Hosts.AutoScalingGroup)...)...)
	}
	return out
}

func (v *verifier) groupHosts(ctx context.Context, group string) []Check {
	out, err := v.c.AutoScaling.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{group}})
	if err != nil {
		return []Check{{Check: CheckGPUHost, Subject: group, Verdict: Unknown, Detail: "describe the Auto Scaling group: " + err.Error()}}
	}
	if len(out.AutoScalingGroups) == 0 {
		return []Check{{Check: CheckGPUHost, Subject: group, Verdict: Fail, Detail: "no such Auto Scaling group", Fix: "create the GPU Auto Scaling group and its capacity provider " + group}}
	}
	var ids []string
	for _, in := range out.AutoScalingGroups[0].Instances {
		if in.LifecycleState == astypes.LifecycleStateInService {
			ids = append(ids, sdkaws.ToString(in.InstanceId))
		}
	}
	if len(ids) == 0 {
		return []Check{{Check: CheckGPUHost, Subject: group, Verdict: Fail, Detail: "no instance is InService", Fix: "raise the group's desired capacity, or see its scaling activities"}}
	}
	hosts, errs := readGPUs(ctx, v.c.SSM, ids, v.opts)
	var checks []Check
	for _, id := range ids {
		c := Check{Check: CheckGPUHost, Subject: id}
		if err := errs[id]; err != nil {
			c.Verdict, c.Detail = Unknown, err.Error()
			c.Fix = "check that the instance runs the SSM agent with an instance profile that allows it (AmazonSSMManagedInstanceCore)"
			checks = append(checks, c)
			continue
		}
		h := hosts[id]
		rep := gpu.Evaluate(h.inv, v.opts.GPU)
		v.mu.Lock()
		v.report.GPUHosts = append(v.report.GPUHosts, HostCheck{InstanceID: id, Group: group, Report: rep})
		v.mu.Unlock()
		c.Verdict = verdictOf(rep.Host.Level)
		c.Detail = describeHost(h.inv, rep.Host)
		c.Fix = strings.Join(rep.Host.Fixes, "; ")
		if h.noCC && c.Verdict == Fail && rep.Driver.Level.OK() && !anyGPUNotReady(rep) {
			// Only the compute capability is missing, which this nvidia-smi cannot
			// report: that is not knowing, not a failure; the probe task sees the device.
			c.Verdict = Unknown
			c.Detail = "nvidia-smi on this host predates compute_cap (R510); " + c.Detail
		}
		checks = append(checks, c)
	}
	return checks
}

func anyGPUNotReady(r gpu.HostReport) bool {
	return slices.ContainsFunc(r.GPUs, func(g gpu.GPUVerdict) bool { return g.Verdict.Level == gpu.NotReady })
}

func verdictOf(l gpu.Level) Verdict {
	switch {
	case l.OK():
		return Pass
	case l == gpu.Unknown:
		return Unknown
	}
	return Fail
}

func describeHost(inv gpu.Inventory, v gpu.Verdict) string {
	if !inv.Available {
		return v.Summary()
	}
	var names []string
	for _, d := range inv.GPUs {
		names = append(names, fmt.Sprintf("%s %d MiB cc %s", d.Name, d.MemoryTotalMiB, d.ComputeCapability()))
	}
	return fmt.Sprintf("driver %s, %s: %s", inv.DriverVersion, strings.Join(names, ", "), v.Summary())
}

// ---- the CUDA check as a one-off task

func (v *verifier) cudaProbe(ctx context.Context) []Check {
	for _, s := range v.plan.Services {
		if s.Hosts != nil && v.opts.NoProbe {
			return v.done(Check{Check: CheckCUDAProbe, Subject: s.Name, Verdict: Skipped,
				Detail: "not run (--no-probe): OpenVoice's own CUDA 11.8 check in its image was not made; the gpu-host rows cover the driver and GPU only"})
		}
		if s.Hosts != nil {
			// One GPU service is all the stack has; its image is the one to probe.
			return v.done(v.probe(ctx, s))
		}
	}
	return nil
}

func (v *verifier) probe(ctx context.Context, s ecs.Service) Check {
	c := Check{Check: CheckCUDAProbe, Subject: s.Name}
	res, check, err := runProbe(ctx, v.c, v.plan, s, v.opts)
	if check != nil {
		v.mu.Lock()
		v.report.Probe = check
		v.mu.Unlock()
	}
	var pe *probeError
	switch {
	case errors.As(err, &pe):
		c.Verdict, c.Detail, c.Fix = pe.verdict, pe.Error(), pe.fix
	case err != nil:
		c.Verdict, c.Detail = Unknown, err.Error()
	default:
		c.Verdict = verdictOf(check.Verdict.Level)
		c.Detail = check.Verdict.Summary() + " (task " + shortARN(res) + ")"
		c.Fix = strings.Join(check.Verdict.Fixes, "; ")
	}
	return c
}
