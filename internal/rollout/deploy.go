// Package rollout changes and reads what runs in an environment: Deploy applies a
// rendered plan (register task definitions pinned by digest, create or update
// services and their scaling) and watches each rollout; Rollback goes back to an
// earlier release; CurrentRelease, Changes and the Describe* readers say what runs,
// for every package that needs to know; RecordOverride and WriteAudit keep the
// record of a scan gate override (tags on the services, the audit log).
package rollout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	aas "github.com/aws/aws-sdk-go-v2/service/applicationautoscaling"
	aastypes "github.com/aws/aws-sdk-go-v2/service/applicationautoscaling/types"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/progress"
	"github.com/vmctl/vmctl/internal/release"
)

// Tags vmctl reads back from task definitions.
const (
	// SpecTag holds a hash of everything the registration says; a service whose task
	// definition carries the rendered hash already runs the plan, so nothing is registered.
	SpecTag = "vmctl:spec"
	// ReleaseTag names the release (rendered by internal/ecs).
	ReleaseTag = "vmctl:release"
)

// Rollout outcomes of one service.
const (
	RolloutCompleted = "COMPLETED"
	RolloutFailed    = "FAILED"
	RolloutUnchanged = "UNCHANGED"
	// RolloutStarted: a detached deploy returned once ECS accepted the deployment.
	RolloutStarted = "IN_PROGRESS"
)

// registerAttempts bounds RegisterTaskDefinition the way the SDK's retryer bounds other
// calls (internal/aws.Retryer); deploy retries it itself to look for a lost success first.
const registerAttempts = 8

// Options says what Deploy applies and where it reports.
type Options struct {
	Plan *ecs.Plan
	// Release is the plan's release; when set it must be the one the plan was rendered for.
	Release  *release.Release
	Progress progress.Writer // one line per service step; nil for none
	// Events receives the services' ECS events, one line each, as they arrive; nil sends
	// them to Progress instead (for JSON progress, where stray lines would not parse).
	Events io.Writer
	Poll   time.Duration // between looks at the services; 1 s when zero
	// Approved is the preview a person approved (Changes, before asking). When set,
	// Deploy reads what runs once more before its first write and stops, writing
	// nothing, if the changes would be any others: an approval covers what it showed.
	Approved []Change
	// Detach returns once ECS has accepted every service's deployment, without watching
	// them (for a CI job that follows with vmctl status --wait). Every level starts at
	// once: the plan's order is then ECS's to keep, by each service's health checks.
	Detach bool
}

// PreviewChanged stops a deploy whose environment changed after its preview was
// approved; Now is what the deploy would change instead.
type PreviewChanged struct {
	Environment string
	Now         []Change
}

func (e *PreviewChanged) Error() string {
	return fmt.Sprintf("%s changed between the preview and the approval: nothing was written; run the command again to approve the new preview", e.Environment)
}

// checkApproved stops a write whose approved preview no longer holds.
func checkApproved(ctx context.Context, c aws.Clients, p *ecs.Plan, approved []Change) error {
	if approved == nil {
		return nil
	}
	now, err := Changes(ctx, c, p)
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(now, approved) {
		return &PreviewChanged{Environment: p.Environment, Now: now}
	}
	return nil
}

// Result is what a deploy did.
type Result struct {
	Environment string          `json:"environment"`
	Release     string          `json:"release,omitempty"`
	Services    []ServiceResult `json:"services"`
	// Unchanged: the environment already ran the plan; nothing was written. Detached, a
	// rollout of the plan an earlier deploy started may still be in progress.
	Unchanged bool `json:"unchanged"`
	// Detached: the rollouts were started and not watched; RolloutStarted marks them.
	Detached bool `json:"detached,omitempty"`
}

// ServiceResult is what happened to one service.
type ServiceResult struct {
	Service        string `json:"service"`
	TaskDefinition string `json:"taskDefinition"` // the revision deployed (ARN)
	Registered     bool   `json:"registered"`     // a new revision was registered for it
	Created        bool   `json:"created,omitempty"`
	Updated        bool   `json:"updated,omitempty"`        // its service was updated (task definition or settings)
	ScalingUpdated bool   `json:"scalingUpdated,omitempty"` // its scalable target, policy or schedule was written
	Rollout        string `json:"rollout"`                  // COMPLETED, FAILED or UNCHANGED; empty if watching stopped first
	Reason         string `json:"reason,omitempty"`
	// RolledBackTo is the task definition the circuit breaker went back to after a failure.
	RolledBackTo string `json:"rolledBackTo,omitempty"`
	// CompletedAt is when ECS marked the rollout completed (its deployment's updatedAt).
	CompletedAt time.Time `json:"completedAt,omitzero"`
}

// Deploy applies a plan, level by level in the plan's order (the services of one level at
// once): it registers each task definition pinned by digest unless the service already runs
// an identical one, creates or updates the service and its scaling, and watches the rollout
// until ECS reports it completed or failed, printing the service events as they arrive. A
// failed rollout returns a *RolloutError after the circuit breaker's rollback has run; a
// context that ends while ECS still rolls out returns a *StillRolling.
func Deploy(ctx context.Context, c aws.Clients, opts Options) (*Result, error) {
	p := opts.Plan
	if p == nil {
		return nil, errors.New("deploy: no plan")
	}
	if opts.Release != nil && opts.Release.ID != p.Release.ID {
		return nil, fmt.Errorf("deploy: the plan is for release %q, not %q", p.Release.ID, opts.Release.ID)
	}
	if p.Unpinned {
		return nil, fmt.Errorf("deploy %s to %s: some images have no digest in release %s, and vmctl deploys by digest only: push it first (vmctl push --env %s --release %s)",
			p.Release.ID, p.Environment, p.Release.ID, p.Environment, p.Release.ID)
	}
	if err := checkApproved(ctx, c, p, opts.Approved); err != nil {
		return nil, err
	}
	d := newDeployer(c, p, opts.Progress, opts.Events, opts.Poll)
	d.detach = opts.Detach
	return d.run(ctx, nil)
}

// deployer is one deploy of one plan.
type deployer struct {
	c       aws.Clients
	plan    *ecs.Plan
	release string // what the services end up running
	what    string // "deploy r2 to staging", for errors
	pw      progress.Writer
	events  io.Writer
	poll    time.Duration
	detach  bool // start the rollouts, do not watch them

	mu    sync.Mutex
	tgs   map[string]targetGroupRef // by name
	rules map[string]string         // production listener rule by target group ARN
}

type targetGroupRef struct {
	arn string
	lbs []string
}

func newDeployer(c aws.Clients, p *ecs.Plan, pw progress.Writer, events io.Writer, poll time.Duration) *deployer {
	if pw == nil {
		pw = progress.Discard{}
	}
	if poll <= 0 {
		poll = time.Second
	}
	return &deployer{
		c: c, plan: p, release: p.Release.ID, what: fmt.Sprintf("deploy %s to %s", p.Release.ID, p.Environment),
		pw: pw, events: events, poll: poll, tgs: map[string]targetGroupRef{}, rules: map[string]string{},
	}
}

// run deploys the plan's levels in order. pinned, when set, names the task definition
// revision each service goes to as it is (rollback) instead of registering the plan's.
func (d *deployer) run(ctx context.Context, pinned map[string]string) (*Result, error) {
	p := d.plan
	res := &Result{Environment: p.Environment, Release: d.release, Detached: d.detach}
	var all []*ServiceResult
	defer func() {
		// Rollouts fill their results in while they are watched, so copy them out last.
		for _, r := range all {
			res.Services = append(res.Services, *r)
		}
	}()
	byName := map[string]ecs.Service{}
	for _, s := range p.Services {
		byName[s.Name] = s
	}
	var levels [][]ecs.Service
	for _, names := range p.Order {
		var level []ecs.Service
		for _, n := range names {
			if s, ok := byName[n]; ok && (pinned == nil || pinned[n] != "") {
				level = append(level, s)
			}
		}
		if len(level) > 0 {
			levels = append(levels, level)
		}
	}
	for i, level := range levels {
		rollouts := make([]*rollout, len(level))
		errs := make([]error, len(level))
		var wg sync.WaitGroup
		for j, s := range level {
			wg.Go(func() {
				rollouts[j], errs[j] = d.start(ctx, s, pinned[s.Name])
			})
		}
		wg.Wait()
		for _, r := range rollouts {
			if r != nil {
				all = append(all, r.res)
			}
		}
		if err := errors.Join(errs...); err != nil {
			var rolling, notStarted []string
			for j, r := range rollouts {
				if r != nil && r.deployment != "" {
					rolling = append(rolling, r.res.Service)
				} else {
					notStarted = append(notStarted, level[j].Name)
				}
			}
			if ctx.Err() != nil {
				return res, d.stillRolling(ctx, rolling, append(notStarted, later(levels[i+1:])...))
			}
			if len(rolling) > 0 {
				err = fmt.Errorf("%w (ECS goes on rolling out %s: follow it with vmctl status --env %s)", err, strings.Join(rolling, ", "), p.Environment)
			}
			return res, fmt.Errorf("%s: %w", d.what, err)
		}
		if d.detach {
			follow := "follow it with vmctl status --env " + p.Environment + " --wait"
			for _, r := range rollouts {
				switch {
				case r.phase == phaseDone:
				case r.res.Created || r.res.Updated:
					r.res.Rollout = RolloutStarted
					d.report(r, progress.Done, "Started", "ECS accepted the deployment; "+follow)
				default:
					// Nothing written: the rollout is one an earlier deploy started.
					r.res.Rollout = RolloutStarted
					d.report(r, progress.Done, "Rolling out", "started before; "+follow)
				}
			}
			continue
		}
		if err := d.watch(ctx, rollouts); err != nil {
			if ctx.Err() == nil {
				return res, fmt.Errorf("%s: %w", d.what, err)
			}
			var rolling []string
			var errs []error
			for _, r := range rollouts {
				if r.phase != phaseDone {
					rolling = append(rolling, r.res.Service)
				}
				if r.res.Rollout == RolloutFailed {
					errs = append(errs, r.failure(p.Environment))
				}
			}
			return res, errors.Join(append(errs, d.stillRolling(ctx, rolling, later(levels[i+1:])))...)
		}
		var failed []error
		for _, r := range rollouts {
			if r.res.Rollout == RolloutFailed {
				failed = append(failed, r.failure(p.Environment))
			}
		}
		if len(failed) > 0 {
			err := errors.Join(failed...)
			if rest := later(levels[i+1:]); len(rest) > 0 {
				err = fmt.Errorf("%w (not deployed: %s, which start after it)", err, strings.Join(rest, ", "))
			}
			return res, fmt.Errorf("%s: %w", d.what, err)
		}
	}
	res.Unchanged = true
	for _, s := range all {
		// Detached, a rollout an earlier deploy started is not waited for, so a deploy
		// that wrote nothing changed nothing.
		settled := s.Rollout == RolloutUnchanged || d.detach
		res.Unchanged = res.Unchanged && settled && !s.Registered && !s.Created && !s.Updated && !s.ScalingUpdated
	}
	return res, nil
}

func (d *deployer) stillRolling(ctx context.Context, rolling, notStarted []string) error {
	return &StillRolling{Environment: d.plan.Environment, Rolling: rolling, NotStarted: notStarted, Err: context.Cause(ctx)}
}

// later names the services of the levels a deploy did not reach.
func later(levels [][]ecs.Service) []string {
	var out []string
	for _, l := range levels {
		for _, s := range l {
			out = append(out, s.Name)
		}
	}
	return out
}

// StillRolling is Deploy's answer when its context ends (Ctrl-C) before ECS finished: the
// deployment goes on without vmctl watching it.
type StillRolling struct {
	Environment string
	Rolling     []string // services ECS is rolling out
	NotStarted  []string // services of later levels this deploy did not reach
	Err         error
}

func (e *StillRolling) Error() string {
	var b strings.Builder
	b.WriteString("stopped watching; the deployment goes on in ECS")
	if len(e.Rolling) > 0 {
		fmt.Fprintf(&b, ": still rolling out: %s", strings.Join(e.Rolling, ", "))
	}
	if len(e.NotStarted) > 0 {
		fmt.Fprintf(&b, "; not started: %s (deploy again to finish them)", strings.Join(e.NotStarted, ", "))
	}
	fmt.Fprintf(&b, ": follow it with vmctl status --env %s", e.Environment)
	return b.String()
}

func (e *StillRolling) Unwrap() error { return e.Err }

// RolloutError is a service whose rollout ECS failed.
type RolloutError struct {
	Environment  string
	Service      string
	Reason       string
	RolledBackTo string // task definition ARN, when the circuit breaker rolled back
	Release      string // the release RolledBackTo carries, when known
	RollbackDone bool   // the rollback completed
	BlueGreen    bool   // a blue/green deployment: the previous release kept running
	Shifted      bool   // blue/green: production traffic had moved to the failed release
}

func (e *RolloutError) Error() string {
	s := fmt.Sprintf("service %s: the rollout failed: %s", e.Service, strings.TrimSuffix(e.Reason, "."))
	if e.RolledBackTo != "" {
		to := familyRevision(e.RolledBackTo)
		if e.Release != "" {
			to += " (release " + e.Release + ")"
		}
		switch {
		case e.BlueGreen && e.RollbackDone && e.Shifted:
			s += "; ECS shifted production traffic back to " + to + ", which kept running throughout"
		case e.BlueGreen && e.RollbackDone:
			s += "; ECS rolled it back before any production traffic reached it: prod kept serving " + to
		case e.RollbackDone:
			s += "; the circuit breaker rolled it back to " + to
		default:
			s += "; the circuit breaker is rolling it back to " + to
		}
	}
	if e.Environment != "" {
		s += fmt.Sprintf(": see why with vmctl logs --env %s %s", e.Environment, e.Service)
	}
	return s
}

// serviceState is what one service is now and what the plan makes of it.
type serviceState struct {
	svc     ecs.Service
	current *ecstypes.Service // nil: no such service yet
	tags    map[string]string // of the current task definition
	image   string            // the current task definition's main image
	hash    string
	taskDef string // the revision to run; empty: register one
	pinned  bool
	lbs     []ecstypes.LoadBalancer
	differs []string // service settings that differ from the plan
	scaling scalingWrites
}

func (st *serviceState) action() string {
	switch {
	case st.current == nil:
		return "create"
	case st.taskDef == "" || st.taskDef != sdkaws.ToString(st.current.TaskDefinition) || len(st.differs) > 0:
		return "update"
	}
	return "unchanged"
}

// inspect reads what the service runs and decides what the plan changes; it writes nothing.
func (d *deployer) inspect(ctx context.Context, s ecs.Service, pinned string) (*serviceState, error) {
	st := &serviceState{svc: s, taskDef: pinned, pinned: pinned != ""}
	cur, err := DescribeServices(ctx, d.c.ECS, d.plan.Cluster, []string{s.Name})
	if err != nil {
		return nil, err
	}
	if c, ok := cur[s.Name]; ok {
		if sdkaws.ToString(c.Status) == "DRAINING" {
			return nil, fmt.Errorf("service %s is being deleted (DRAINING): wait until it is gone, then deploy again", s.Name)
		}
		st.current = &c
		td, tags, err := DescribeTaskDef(ctx, d.c.ECS, sdkaws.ToString(c.TaskDefinition))
		if err != nil {
			return nil, fmt.Errorf("service %s: %w", s.Name, err)
		}
		st.tags = tags
		if td != nil {
			st.image = MainImage(td, s.Name)
		}
	}
	if st.pinned {
		if st.current == nil {
			return nil, fmt.Errorf("service %s does not exist in cluster %s", s.Name, d.plan.Cluster)
		}
		return st, nil
	}
	st.hash = SpecHash(s.TaskDefinition)
	switch {
	case st.current != nil && st.tags[SpecTag] == st.hash:
		st.taskDef = sdkaws.ToString(st.current.TaskDefinition)
	default:
		// An identical revision may exist already: a release deployed before (a rollback
		// --to it), or one a retried call registered.
		if st.taskDef, err = d.findRevision(ctx, sdkaws.ToString(s.TaskDefinition.Family), st.hash, ecs.KeepReleases); err != nil {
			return nil, fmt.Errorf("service %s: %w", s.Name, err)
		}
	}
	if st.lbs, err = d.loadBalancers(ctx, s); err != nil {
		return nil, fmt.Errorf("service %s: %w", s.Name, err)
	}
	if st.current != nil {
		st.differs = serviceDiffers(st.current, s.Service, st.lbs)
	}
	if st.scaling, err = d.scalingChanges(ctx, s, st.current == nil); err != nil {
		return nil, fmt.Errorf("service %s: %w", s.Name, err)
	}
	return st, nil
}

// start makes one service run the plan and returns the rollout to watch.
func (d *deployer) start(ctx context.Context, s ecs.Service, pinned string) (*rollout, error) {
	name := s.Name
	st, err := d.inspect(ctx, s, pinned)
	if err != nil {
		d.pw.Event(progress.Event{Resource: name, Status: progress.Error, Text: "Failed", Detail: err.Error()})
		return nil, err
	}
	r := &rollout{res: &ServiceResult{Service: name}, seen: map[string]bool{}}
	if st.current != nil {
		for _, e := range st.current.Events {
			r.seen[sdkaws.ToString(e.Id)] = true
		}
	}
	r, err = d.apply(ctx, st, r)
	if err != nil {
		d.pw.Event(progress.Event{Resource: name, Status: progress.Error, Text: "Failed", Detail: err.Error()})
		return r, err
	}
	return r, nil
}

// apply writes what inspect found different.
func (d *deployer) apply(ctx context.Context, st *serviceState, r *rollout) (*rollout, error) {
	s, name := st.svc, st.svc.Name
	if st.taskDef == "" {
		in := s.TaskDefinition
		in.Tags = append(slices.Clone(in.Tags), ecstypes.Tag{Key: sdkaws.String(SpecTag), Value: sdkaws.String(st.hash)})
		d.pw.Event(progress.Event{Resource: name, Status: progress.Working, Text: "Registering", Detail: sdkaws.ToString(in.Family)})
		arn, err := d.register(ctx, &in, st.hash)
		if err != nil {
			return nil, fmt.Errorf("service %s: register task definition %s: %w", name, sdkaws.ToString(in.Family), err)
		}
		st.taskDef = arn
		r.res.Registered = true
	}
	r.res.TaskDefinition = st.taskDef
	r.taskDef = st.taskDef

	var svc *ecstypes.Service
	switch st.action() {
	case "create":
		in := s.Service
		in.TaskDefinition = sdkaws.String(st.taskDef)
		in.LoadBalancers = st.lbs
		in.ClientToken = sdkaws.String(clientToken(d.plan.Cluster, name, st.taskDef))
		d.pw.Event(progress.Event{Resource: name, Status: progress.Working, Text: "Creating", Detail: familyRevision(st.taskDef)})
		out, err := d.c.ECS.CreateService(ctx, &in)
		if err != nil {
			return nil, fmt.Errorf("create service %s: %w", name, err)
		}
		svc = out.Service
		r.res.Created = true
	case "update":
		in := &awsecs.UpdateServiceInput{Cluster: sdkaws.String(d.plan.Cluster), Service: sdkaws.String(name), TaskDefinition: sdkaws.String(st.taskDef)}
		if !st.pinned {
			want := s.Service
			in.CapacityProviderStrategy = want.CapacityProviderStrategy
			in.NetworkConfiguration = want.NetworkConfiguration
			in.LoadBalancers = st.lbs
			in.DeploymentConfiguration = want.DeploymentConfiguration
			in.HealthCheckGracePeriodSeconds = want.HealthCheckGracePeriodSeconds
			in.PlacementConstraints = want.PlacementConstraints
			in.ServiceConnectConfiguration = want.ServiceConnectConfiguration
			in.PropagateTags = want.PropagateTags
			in.EnableECSManagedTags = sdkaws.Bool(want.EnableECSManagedTags)
		}
		detail := familyRevision(st.taskDef)
		if len(st.differs) > 0 {
			detail += "; " + strings.Join(st.differs, ", ")
		}
		d.pw.Event(progress.Event{Resource: name, Status: progress.Working, Text: "Updating", Detail: detail})
		out, err := d.c.ECS.UpdateService(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("update service %s: %w", name, err)
		}
		svc = out.Service
		r.res.Updated = true
	default:
		// Nothing to write; a rollout still in progress (a deploy stopped with Ctrl-C) is
		// followed to its end.
		if p := PrimaryDeployment(st.current); p != nil && p.RolloutState == ecstypes.DeploymentRolloutStateInProgress {
			r.deployment = sdkaws.ToString(p.Id)
			d.pw.Event(progress.Event{Resource: name, Status: progress.Working, Text: "Rolling out", Detail: "already in progress"})
		} else {
			r.res.Rollout = RolloutUnchanged
			r.phase = phaseDone
			d.pw.Event(progress.Event{Resource: name, Status: progress.Done, Text: "Unchanged", Detail: familyRevision(st.taskDef)})
		}
	}
	if svc != nil {
		if p := PrimaryDeployment(svc); p != nil {
			r.deployment = sdkaws.ToString(p.Id)
		}
	}
	if !st.pinned {
		if err := d.applyScaling(ctx, st.svc, st.scaling); err != nil {
			return r, fmt.Errorf("service %s: %w", name, err)
		}
		r.res.ScalingUpdated = st.scaling.any()
	}
	return r, nil
}

// SpecHash is the content hash of a rendered task definition registration, without the
// tag that carries it. It hashes the canonical JSON without unset fields: with
// json.Marshal, every field a new SDK version adds (as null) would change every hash and
// make the next deploy register every task definition again.
func SpecHash(in awsecs.RegisterTaskDefinitionInput) string {
	in.Tags = slices.DeleteFunc(slices.Clone(in.Tags), func(t ecstypes.Tag) bool { return sdkaws.ToString(t.Key) == SpecTag })
	if len(in.Tags) == 0 {
		in.Tags = nil // unset, like the rest
	}
	b, err := ecs.CanonicalJSON(in)
	if err != nil {
		panic(fmt.Sprintf("deploy: a task definition that does not marshal: %v", err)) // plain data; cannot happen
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// clientToken makes CreateService idempotent across retries of one deploy.
func clientToken(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:16])
}

// findRevision looks through the family's newest revisions (at most window, the ones
// whose images ECR still keeps) for an active one carrying hash.
func (d *deployer) findRevision(ctx context.Context, family, hash string, window int) (string, error) {
	td, tags, err := DescribeTaskDef(ctx, d.c.ECS, family)
	if err != nil || td == nil {
		return "", err
	}
	if tags[SpecTag] == hash {
		return sdkaws.ToString(td.TaskDefinitionArn), nil
	}
	for rev := td.Revision - 1; rev >= 1 && rev > td.Revision-int32(window); rev-- {
		old, tags, err := DescribeTaskDef(ctx, d.c.ECS, fmt.Sprintf("%s:%d", family, rev))
		if err != nil {
			return "", err
		}
		if old != nil && old.Status == ecstypes.TaskDefinitionStatusActive && tags[SpecTag] == hash {
			return sdkaws.ToString(old.TaskDefinitionArn), nil
		}
	}
	return "", nil
}

// register registers a revision once. The SDK would retry a failed call blindly, and a call
// whose answer was lost may have registered a revision already; so each retry first looks
// for the family's newest revision carrying the hash.
func (d *deployer) register(ctx context.Context, in *awsecs.RegisterTaskDefinitionInput, hash string) (string, error) {
	family := sdkaws.ToString(in.Family)
	retryable := retry.IsErrorRetryables(retry.DefaultRetryables)
	for attempt := 1; ; attempt++ {
		out, err := d.c.ECS.RegisterTaskDefinition(ctx, in, func(o *awsecs.Options) { o.RetryMaxAttempts = 1 })
		if err == nil {
			return sdkaws.ToString(out.TaskDefinition.TaskDefinitionArn), nil
		}
		if retryable.IsErrorRetryable(err) != sdkaws.TrueTernary || attempt >= registerAttempts {
			return "", err
		}
		if err := sleep(ctx, backoff(attempt)); err != nil {
			return "", err
		}
		if arn, err := d.findRevision(ctx, family, hash, 1); err != nil || arn != "" {
			return arn, err
		}
	}
}

// backoff is the SDK's: exponential with full jitter, at most 20 s.
func backoff(attempt int) time.Duration {
	ceil := min(100*time.Millisecond<<min(attempt-1, 10), 20*time.Second)
	return time.Duration(rand.Int64N(int64(ceil))) + time.Millisecond
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// ErrNoCluster is in the error of every read of a cluster that does not exist.
var ErrNoCluster = errors.New("no such cluster")

// DescribeServices describes services by name, ten at a time; services that are missing
// or INACTIVE are left out.
func DescribeServices(ctx context.Context, api aws.ECS, cluster string, names []string) (map[string]ecstypes.Service, error) {
	out := map[string]ecstypes.Service{}
	for batch := range slices.Chunk(names, 10) {
		res, err := api.DescribeServices(ctx, &awsecs.DescribeServicesInput{Cluster: sdkaws.String(cluster), Services: batch})
		if err != nil {
			var nf *ecstypes.ClusterNotFoundException
			if errors.As(err, &nf) {
				return nil, fmt.Errorf("cluster %s does not exist (%w): vmctl creates no clusters; create it (the account holds it), or check aws.cluster in the environment file", cluster, ErrNoCluster)
			}
			return nil, fmt.Errorf("describe services %s: %w", strings.Join(batch, ", "), err)
		}
		for _, s := range res.Services {
			if sdkaws.ToString(s.Status) != "INACTIVE" {
				out[sdkaws.ToString(s.ServiceName)] = s
			}
		}
	}
	return out, nil
}

// releaseTag is the release a task definition's tags name; "" for none. The id goes on to
// name a manifest file (verify, promote, rollback), and anyone who may tag a task
// definition can write the tag, so one that is no release id is refused, never used.
func releaseTag(tags map[string]string) (string, error) {
	id := tags[ReleaseTag]
	if id == "" {
		return "", nil
	}
	if err := release.ValidateID(id); err != nil {
		return "", fmt.Errorf("its %s tag is %w", ReleaseTag, err)
	}
	return id, nil
}

// ShownRelease is releaseTag for reports, which show a tag that is no release id as none.
func ShownRelease(tags map[string]string) string {
	id, err := releaseTag(tags)
	if err != nil {
		return ""
	}
	return id
}

// DescribeTaskDef reads a task definition (family, family:revision or ARN) with its tags;
// nil when ECS has none by that name.
func DescribeTaskDef(ctx context.Context, api aws.ECS, ref string) (*ecstypes.TaskDefinition, map[string]string, error) {
	out, err := api.DescribeTaskDefinition(ctx, &awsecs.DescribeTaskDefinitionInput{
		TaskDefinition: sdkaws.String(ref), Include: []ecstypes.TaskDefinitionField{ecstypes.TaskDefinitionFieldTags},
	})
	var ce *ecstypes.ClientException
	switch {
	case errors.As(err, &ce):
		return nil, nil, nil // ECS's answer for a family or revision it does not have
	case err != nil:
		return nil, nil, fmt.Errorf("describe task definition %s: %w", ref, err)
	}
	tags := map[string]string{}
	for _, t := range out.Tags {
		tags[sdkaws.ToString(t.Key)] = sdkaws.ToString(t.Value)
	}
	return out.TaskDefinition, tags, nil
}

// MainImage is the image of the container named after the service (else the first).
func MainImage(td *ecstypes.TaskDefinition, service string) string {
	for _, c := range td.ContainerDefinitions {
		if sdkaws.ToString(c.Name) == service {
			return sdkaws.ToString(c.Image)
		}
	}
	if len(td.ContainerDefinitions) > 0 {
		return sdkaws.ToString(td.ContainerDefinitions[0].Image)
	}
	return ""
}

// ImageDigest is the sha256:… of an image reference pinned by digest, else "".
func ImageDigest(ref string) string {
	if _, d, ok := strings.Cut(ref, "@"); ok {
		return d
	}
	return ""
}

// familyRevision is family:revision from a task definition ARN.
func familyRevision(arn string) string {
	if _, after, ok := strings.Cut(arn, ":task-definition/"); ok {
		return after
	}
	return arn
}

// PrimaryDeployment is the service's PRIMARY deployment (else its first); nil for none.
func PrimaryDeployment(s *ecstypes.Service) *ecstypes.Deployment {
	if s == nil {
		return nil
	}
	for i := range s.Deployments {
		if sdkaws.ToString(s.Deployments[i].Status) == "PRIMARY" {
			return &s.Deployments[i]
		}
	}
	if len(s.Deployments) > 0 {
		return &s.Deployments[0]
	}
	return nil
}

// ---- load balancers

// loadBalancers resolves the plan's target group names to the ARNs ECS needs and, for
// blue/green, the alternate group and the listener rule that carries production traffic.
func (d *deployer) loadBalancers(ctx context.Context, s ecs.Service) ([]ecstypes.LoadBalancer, error) {
	if s.LoadBalancer == nil || len(s.Service.LoadBalancers) == 0 {
		return s.Service.LoadBalancers, nil
	}
	var out []ecstypes.LoadBalancer
	for _, lb := range s.Service.LoadBalancers {
		tg, err := d.targetGroup(ctx, s.LoadBalancer.TargetGroup)
		if err != nil {
			return nil, err
		}
		lb.TargetGroupArn = sdkaws.String(tg.arn)
		if lb.AdvancedConfiguration != nil {
			ac := *lb.AdvancedConfiguration
			alt, err := d.targetGroup(ctx, s.LoadBalancer.AlternateTargetGroup)
			if err != nil {
				return nil, err
			}
			ac.AlternateTargetGroupArn = sdkaws.String(alt.arn)
			rule, err := d.productionRule(ctx, tg)
			if err != nil {
				return nil, err
			}
			ac.ProductionListenerRule = sdkaws.String(rule)
			lb.AdvancedConfiguration = &ac
		}
		out = append(out, lb)
	}
	return out, nil
}

func (d *deployer) targetGroup(ctx context.Context, name string) (targetGroupRef, error) {
	d.mu.Lock()
	ref, ok := d.tgs[name]
	d.mu.Unlock()
	if ok {
		return ref, nil
	}
	if name == "" {
		return ref, errors.New("the plan names no target group for blue/green")
	}
	out, err := d.c.ELB.DescribeTargetGroups(ctx, &elbv2.DescribeTargetGroupsInput{Names: []string{name}})
	var nf *elbtypes.TargetGroupNotFoundException
	switch {
	case errors.As(err, &nf) || err == nil && len(out.TargetGroups) == 0:
		return ref, fmt.Errorf("target group %s does not exist in account %s: vmctl creates no load balancers; create it with the settings vmctl plan --env %s --output json shows", name, d.plan.Account, d.plan.Environment)
	case err != nil:
		return ref, fmt.Errorf("describe target group %s: %w", name, err)
	}
	tg := out.TargetGroups[0]
	ref = targetGroupRef{arn: sdkaws.ToString(tg.TargetGroupArn), lbs: tg.LoadBalancerArns}
	d.mu.Lock()
	d.tgs[name] = ref
	d.mu.Unlock()
	return ref, nil
}

// productionRule finds the listener rule that forwards to the target group: the rule ECS
// blue/green moves between the group and its alternate.
func (d *deployer) productionRule(ctx context.Context, tg targetGroupRef) (string, error) {
	d.mu.Lock()
	rule, ok := d.rules[tg.arn]
	d.mu.Unlock()
	if ok {
		return rule, nil
	}
	forwards := func(a elbtypes.Action) bool {
		if sdkaws.ToString(a.TargetGroupArn) == tg.arn {
			return true
		}
		if a.ForwardConfig != nil {
			for _, t := range a.ForwardConfig.TargetGroups {
				if sdkaws.ToString(t.TargetGroupArn) == tg.arn {
					return true
				}
			}
		}
		return false
	}
	var fallback string
	for _, lb := range tg.lbs {
		ls, err := d.c.ELB.DescribeListeners(ctx, &elbv2.DescribeListenersInput{LoadBalancerArn: sdkaws.String(lb)})
		if err != nil {
			return "", fmt.Errorf("describe the listeners of %s: %w", lb, err)
		}
		for _, l := range ls.Listeners {
			var marker *string
			for {
				rs, err := d.c.ELB.DescribeRules(ctx, &elbv2.DescribeRulesInput{ListenerArn: l.ListenerArn, Marker: marker})
				if err != nil {
					return "", fmt.Errorf("describe the rules of %s: %w", sdkaws.ToString(l.ListenerArn), err)
				}
				for _, r := range rs.Rules {
					if !slices.ContainsFunc(r.Actions, forwards) {
						continue
					}
					if sdkaws.ToBool(r.IsDefault) {
						fallback = cmpOr(fallback, sdkaws.ToString(r.RuleArn))
						continue
					}
					rule = sdkaws.ToString(r.RuleArn)
					break
				}
				if rule != "" || rs.NextMarker == nil {
					break
				}
				marker = rs.NextMarker
			}
			if rule != "" {
				break
			}
		}
		if rule != "" {
			break
		}
	}
	rule = cmpOr(rule, fallback)
	if rule == "" {
		return "", fmt.Errorf("no listener rule forwards to target group %s: blue/green moves production traffic by that rule; add one to the load balancer's listener", tg.arn)
	}
	d.mu.Lock()
	d.rules[tg.arn] = rule
	d.mu.Unlock()
	return rule, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// ---- service settings

// serviceDiffers names the settings of a running service that differ from the plan's. Service
// Connect is left out: it is rendered from the task definition's ports, whose change is a
// new revision anyway.
func serviceDiffers(cur *ecstypes.Service, want awsecs.CreateServiceInput, lbs []ecstypes.LoadBalancer) []string {
	var out []string
	check := func(name string, a, b any) {
		if !jsonEqual(a, b) {
			out = append(out, name)
		}
	}
	check("capacity", capacityKey(cur.CapacityProviderStrategy), capacityKey(want.CapacityProviderStrategy))
	check("network", networkKey(cur.NetworkConfiguration), networkKey(want.NetworkConfiguration))
	check("load balancers", lbKey(cur.LoadBalancers), lbKey(lbs))
	check("deployment", deploymentKey(cur.DeploymentConfiguration), deploymentKey(want.DeploymentConfiguration))
	check("health check grace period", sdkaws.ToInt32(cur.HealthCheckGracePeriodSeconds), sdkaws.ToInt32(want.HealthCheckGracePeriodSeconds))
	check("placement", constraintKey(cur.PlacementConstraints), constraintKey(want.PlacementConstraints))
	check("tag propagation", cmpOr(string(cur.PropagateTags), "NONE"), cmpOr(string(want.PropagateTags), "NONE"))
	return out
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func capacityKey(items []ecstypes.CapacityProviderStrategyItem) []string {
	var out []string
	for _, i := range items {
		out = append(out, fmt.Sprintf("%s/%d/%d", sdkaws.ToString(i.CapacityProvider), i.Weight, i.Base))
	}
	slices.Sort(out)
	return out
}

func networkKey(n *ecstypes.NetworkConfiguration) []string {
	if n == nil || n.AwsvpcConfiguration == nil {
		return nil
	}
	a := n.AwsvpcConfiguration
	subnets, groups := slices.Sorted(slices.Values(a.Subnets)), slices.Sorted(slices.Values(a.SecurityGroups))
	return []string{strings.Join(subnets, ","), strings.Join(groups, ","), cmpOr(string(a.AssignPublicIp), "DISABLED")}
}

func lbKey(lbs []ecstypes.LoadBalancer) []string {
	var out []string
	for _, lb := range lbs {
		k := fmt.Sprintf("%s|%s|%d", sdkaws.ToString(lb.TargetGroupArn), sdkaws.ToString(lb.ContainerName), sdkaws.ToInt32(lb.ContainerPort))
		if ac := lb.AdvancedConfiguration; ac != nil {
			k += fmt.Sprintf("|%s|%s|%s", sdkaws.ToString(ac.AlternateTargetGroupArn), sdkaws.ToString(ac.ProductionListenerRule), sdkaws.ToString(ac.RoleArn))
		}
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func deploymentKey(c *ecstypes.DeploymentConfiguration) string {
	if c == nil {
		return ""
	}
	k := fmt.Sprintf("%s|%d|%d|%d", cmpOr(string(c.Strategy), "ROLLING"), sdkaws.ToInt32(c.MinimumHealthyPercent), sdkaws.ToInt32(c.MaximumPercent), sdkaws.ToInt32(c.BakeTimeInMinutes))
	if cb := c.DeploymentCircuitBreaker; cb != nil {
		k += fmt.Sprintf("|%t|%t", cb.Enable, cb.Rollback)
	}
	return k
}

func constraintKey(cs []ecstypes.PlacementConstraint) []string {
	var out []string
	for _, c := range cs {
		out = append(out, string(c.Type)+"|"+sdkaws.ToString(c.Expression))
	}
	slices.Sort(out)
	return out
}

// ---- scaling

// scalingWrites are the scaling calls a service needs.
type scalingWrites struct {
	target, policy bool
	schedules      []int // indexes into the plan's schedule
}

func (w scalingWrites) any() bool { return w.target || w.policy || len(w.schedules) > 0 }

// scalingChanges compares the service's scaling with the plan's; a new service needs all of it.
func (d *deployer) scalingChanges(ctx context.Context, s ecs.Service, isNew bool) (scalingWrites, error) {
	sc := s.Scaling
	var w scalingWrites
	if sc.Target.ResourceId == nil {
		return w, nil
	}
	if isNew {
		w.target, w.policy = true, sc.Policy.PolicyName != nil
		for i := range sc.Schedule {
			w.schedules = append(w.schedules, i)
		}
		return w, nil
	}
	ts, err := d.c.Scaling.DescribeScalableTargets(ctx, &aas.DescribeScalableTargetsInput{
		ServiceNamespace: sc.Target.ServiceNamespace, ResourceIds: []string{*sc.Target.ResourceId}, ScalableDimension: sc.Target.ScalableDimension,
	})
	if err != nil {
		return w, fmt.Errorf("describe its scalable target: %w", err)
	}
	// A target at the range a scheduled action set (0–0 out of hours) is as planned:
	// registering the plan's range would start a stopped environment until its next stop.
	w.target = len(ts.ScalableTargets) == 0 || !scheduledRange(ts.ScalableTargets[0], sc)
	if sc.Policy.PolicyName != nil {
		ps, err := d.c.Scaling.DescribeScalingPolicies(ctx, &aas.DescribeScalingPoliciesInput{
			ServiceNamespace: sc.Policy.ServiceNamespace, ResourceId: sc.Policy.ResourceId, ScalableDimension: sc.Policy.ScalableDimension,
			PolicyNames: []string{*sc.Policy.PolicyName},
		})
		if err != nil {
			return w, fmt.Errorf("describe its scaling policy: %w", err)
		}
		w.policy = len(ps.ScalingPolicies) == 0 || ps.ScalingPolicies[0].PolicyType != sc.Policy.PolicyType ||
			!jsonEqual(trackingKey(ps.ScalingPolicies[0].TargetTrackingScalingPolicyConfiguration), trackingKey(sc.Policy.TargetTrackingScalingPolicyConfiguration))
	}
	if len(sc.Schedule) > 0 {
		var names []string
		for _, a := range sc.Schedule {
			names = append(names, sdkaws.ToString(a.ScheduledActionName))
		}
		as, err := d.c.Scaling.DescribeScheduledActions(ctx, &aas.DescribeScheduledActionsInput{
			ServiceNamespace: sc.Target.ServiceNamespace, ResourceId: sc.Target.ResourceId, ScalableDimension: sc.Target.ScalableDimension,
			ScheduledActionNames: names,
		})
		if err != nil {
			return w, fmt.Errorf("describe its scheduled actions: %w", err)
		}
		for i, want := range sc.Schedule {
			have := slices.IndexFunc(as.ScheduledActions, func(a aastypes.ScheduledAction) bool {
				return sdkaws.ToString(a.ScheduledActionName) == sdkaws.ToString(want.ScheduledActionName)
			})
			if have < 0 || !scheduleSame(as.ScheduledActions[have], want) {
				w.schedules = append(w.schedules, i)
			}
		}
	}
	return w, nil
}

func (d *deployer) applyScaling(ctx context.Context, s ecs.Service, w scalingWrites) error {
	sc := s.Scaling
	if w.target {
		in := sc.Target
		if _, err := d.c.Scaling.RegisterScalableTarget(ctx, &in); err != nil {
			return fmt.Errorf("register its scalable target: %w", err)
		}
	}
	if w.policy {
		in := sc.Policy
		if _, err := d.c.Scaling.PutScalingPolicy(ctx, &in); err != nil {
			return fmt.Errorf("put its scaling policy: %w", err)
		}
	}
	for _, i := range w.schedules {
		in := sc.Schedule[i]
		if _, err := d.c.Scaling.PutScheduledAction(ctx, &in); err != nil {
			return fmt.Errorf("put scheduled action %s: %w", sdkaws.ToString(in.ScheduledActionName), err)
		}
	}
	if w.any() {
		d.pw.Event(progress.Event{Resource: s.Name, Status: progress.Working, Text: "Scaling", Detail: fmt.Sprintf("%d–%d tasks", sdkaws.ToInt32(sc.Target.MinCapacity), sdkaws.ToInt32(sc.Target.MaxCapacity))})
	}
	return nil
}

func trackingKey(c *aastypes.TargetTrackingScalingPolicyConfiguration) string {
	if c == nil {
		return ""
	}
	metric := ""
	if m := c.PredefinedMetricSpecification; m != nil {
		metric = string(m.PredefinedMetricType) + "/" + sdkaws.ToString(m.ResourceLabel)
	}
	return fmt.Sprintf("%g|%s|%d|%d|%t", sdkaws.ToFloat64(c.TargetValue), metric, sdkaws.ToInt32(c.ScaleInCooldown), sdkaws.ToInt32(c.ScaleOutCooldown), sdkaws.ToBool(c.DisableScaleIn))
}

// scheduledRange says whether the target's range is the plan's, or one of its scheduled
// actions'.
func scheduledRange(have aastypes.ScalableTarget, sc ecs.Scaling) bool {
	lo, hi := sdkaws.ToInt32(have.MinCapacity), sdkaws.ToInt32(have.MaxCapacity)
	if lo == sdkaws.ToInt32(sc.Target.MinCapacity) && hi == sdkaws.ToInt32(sc.Target.MaxCapacity) {
		return true
	}
	return slices.ContainsFunc(sc.Schedule, func(a aas.PutScheduledActionInput) bool {
		t := a.ScalableTargetAction
		return t != nil && lo == sdkaws.ToInt32(t.MinCapacity) && hi == sdkaws.ToInt32(t.MaxCapacity)
	})
}

func scheduleSame(have aastypes.ScheduledAction, want aas.PutScheduledActionInput) bool {
	var hl, hh, wl, wh int32 = -1, -1, -1, -1
	if a := have.ScalableTargetAction; a != nil {
		hl, hh = sdkaws.ToInt32(a.MinCapacity), sdkaws.ToInt32(a.MaxCapacity)
	}
	if a := want.ScalableTargetAction; a != nil {
		wl, wh = sdkaws.ToInt32(a.MinCapacity), sdkaws.ToInt32(a.MaxCapacity)
	}
	return sdkaws.ToString(have.Schedule) == sdkaws.ToString(want.Schedule) &&
		cmpOr(sdkaws.ToString(have.Timezone), "UTC") == cmpOr(sdkaws.ToString(want.Timezone), "UTC") && hl == wl && hh == wh
}

// ---- what runs, and what a deploy would change

// CurrentRelease says what the plan's services run now: the release their task definitions
// carry (the vmctl:release tag) and each container's image digest, keyed by compose service.
// It fails when no service is deployed, when some are not, and when they run different
// releases.
func CurrentRelease(ctx context.Context, c aws.Clients, plan *ecs.Plan) (string, map[string]string, error) {
	var names []string
	for _, s := range plan.Services {
		names = append(names, s.Name)
	}
	svcs, err := DescribeServices(ctx, c.ECS, plan.Cluster, names)
	if err != nil {
		return "", nil, err
	}
	if len(svcs) == 0 {
		return "", nil, fmt.Errorf("nothing is deployed in %s (cluster %s): deploy a release first (vmctl deploy --env %s)", plan.Environment, plan.Cluster, plan.Environment)
	}
	var missing []string
	byRelease := map[string][]string{}
	digests := map[string]string{}
	for _, n := range names {
		svc, ok := svcs[n]
		if !ok {
			missing = append(missing, n)
			continue
		}
		td, tags, err := DescribeTaskDef(ctx, c.ECS, sdkaws.ToString(svc.TaskDefinition))
		if err != nil {
			return "", nil, err
		}
		if td == nil {
			return "", nil, fmt.Errorf("service %s runs %s, which ECS does not describe", n, sdkaws.ToString(svc.TaskDefinition))
		}
		rel, err := releaseTag(tags)
		if err != nil {
			return "", nil, fmt.Errorf("service %s runs %s, an unknown release: %w: deploy a release with vmctl deploy --env %s", n, familyRevision(sdkaws.ToString(td.TaskDefinitionArn)), err, plan.Environment)
		}
		if rel == "" {
			return "", nil, fmt.Errorf("service %s runs %s, which names no release (no %s tag): it was not deployed by vmctl; deploy a release with vmctl deploy --env %s", n, familyRevision(sdkaws.ToString(td.TaskDefinitionArn)), ReleaseTag, plan.Environment)
		}
		byRelease[rel] = append(byRelease[rel], n)
		for _, cd := range td.ContainerDefinitions {
			d := ImageDigest(sdkaws.ToString(cd.Image))
			if d == "" {
				return "", nil, fmt.Errorf("service %s runs %s by tag, not by digest: deploy a release with vmctl deploy --env %s", n, sdkaws.ToString(cd.Image), plan.Environment)
			}
			digests[sdkaws.ToString(cd.Name)] = d
		}
	}
	if len(missing) > 0 {
		return "", nil, fmt.Errorf("%s not deployed in %s: finish the deploy (vmctl deploy --env %s)", strings.Join(missing, ", "), plan.Environment, plan.Environment)
	}
	if len(byRelease) > 1 {
		var parts []string
		for _, r := range slices.Sorted(maps.Keys(byRelease)) {
			parts = append(parts, fmt.Sprintf("%s (%s)", r, strings.Join(byRelease[r], ", ")))
		}
		return "", nil, fmt.Errorf("the services of %s run different releases: %s: finish the deploy, or roll back (vmctl rollback --env %s --to R)", plan.Environment, strings.Join(parts, ", "), plan.Environment)
	}
	for r := range byRelease {
		return r, digests, nil
	}
	return "", nil, nil // unreachable: svcs is not empty
}

// Change is what a deploy of the plan would do to one service.
type Change struct {
	Service string `json:"service"`
	Action  string `json:"action"` // create, update or unchanged
	// Register: a new task definition revision; else TaskDefinition is the one it runs.
	Register       bool     `json:"register,omitempty"`
	TaskDefinition string   `json:"taskDefinition,omitempty"`
	FromRelease    string   `json:"fromRelease,omitempty"`
	ToRelease      string   `json:"toRelease,omitempty"`
	FromDigest     string   `json:"fromDigest,omitempty"`
	ToDigest       string   `json:"toDigest,omitempty"`
	Settings       []string `json:"settings,omitempty"` // service or scaling settings that change
}

// Changes compares the plan with what runs, service by service, writing nothing.
func Changes(ctx context.Context, c aws.Clients, plan *ecs.Plan) ([]Change, error) {
	d := newDeployer(c, plan, nil, nil, 0)
	var out []Change
	for _, s := range plan.Services {
		st, err := d.inspect(ctx, s, "")
		if err != nil {
			return nil, err
		}
		ch := Change{Service: s.Name, Action: st.action(), Register: st.taskDef == "", TaskDefinition: st.taskDef,
			FromRelease: st.tags[ReleaseTag], ToRelease: plan.Release.ID, FromDigest: ImageDigest(st.image), ToDigest: ImageDigest(s.Image), Settings: st.differs}
		if st.current != nil && st.scaling.any() {
			ch.Settings = append(ch.Settings, "scaling")
		}
		if ch.Action == "unchanged" && st.scaling.any() {
			ch.Action = "update"
		}
		out = append(out, ch)
	}
	return out, nil
}
