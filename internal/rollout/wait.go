package rollout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/progress"
)

// WaitOptions says where Wait reports.
type WaitOptions struct {
	Progress progress.Writer
	Events   io.Writer
	Poll     time.Duration
}

// Wait follows every rollout in progress in the plan's services to its end with deploy's
// own watcher (events, the circuit breaker's rollback): what `status --wait` runs after a
// detached deploy. A service with nothing rolling out is reported settled. A failed
// rollout is a *RolloutError; a context that ends first, a *StillRolling.
func Wait(ctx context.Context, c aws.Clients, plan *ecs.Plan, opts WaitOptions) (*Result, error) {
	d := newDeployer(c, plan, opts.Progress, opts.Events, opts.Poll)
	var names []string
	for _, s := range plan.Services {
		names = append(names, s.Name)
	}
	svcs, err := DescribeServices(ctx, c.ECS, plan.Cluster, names)
	if err != nil {
		return nil, fmt.Errorf("wait for %s: %w", plan.Environment, err)
	}
	// Unchanged: nothing was rolling out when Wait looked.
	res := &Result{Environment: plan.Environment, Unchanged: true}
	var rs []*rollout
	for _, name := range names {
		svc, ok := svcs[name]
		if !ok {
			continue // not deployed: nothing to wait for
		}
		r := &rollout{res: &ServiceResult{Service: name}, seen: map[string]bool{}}
		for _, e := range svc.Events {
			r.seen[sdkaws.ToString(e.Id)] = true
		}
		p := PrimaryDeployment(&svc)
		switch {
		case p == nil:
			r.res.Rollout, r.phase = RolloutUnchanged, phaseDone
		case p.RolloutState == ecstypes.DeploymentRolloutStateInProgress:
			res.Unchanged = false
			r.deployment, r.taskDef = sdkaws.ToString(p.Id), sdkaws.ToString(p.TaskDefinition)
			r.res.TaskDefinition = r.taskDef
			d.report(r, progress.Working, "Rolling out", familyRevision(r.taskDef))
		default:
			r.res.Rollout, r.res.TaskDefinition, r.phase = RolloutUnchanged, sdkaws.ToString(p.TaskDefinition), phaseDone
			d.report(r, progress.Done, "Settled", familyRevision(r.res.TaskDefinition))
		}
		rs = append(rs, r)
	}
	defer func() {
		for _, r := range rs {
			res.Services = append(res.Services, *r.res)
		}
	}()
	if err := d.watch(ctx, rs); err != nil {
		if ctx.Err() == nil {
			return res, fmt.Errorf("wait for %s: %w", plan.Environment, err)
		}
		var rolling []string
		for _, r := range rs {
			if r.phase != phaseDone {
				rolling = append(rolling, r.res.Service)
			}
		}
		return res, d.stillRolling(ctx, rolling, nil)
	}
	var failed []error
	for _, r := range rs {
		if r.res.Rollout == RolloutFailed {
			failed = append(failed, r.failure(plan.Environment))
		}
	}
	if len(failed) > 0 {
		return res, fmt.Errorf("wait for %s: %w", plan.Environment, errors.Join(failed...))
	}
	return res, nil
}
