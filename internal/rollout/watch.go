package rollout

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/vmctl/vmctl/internal/progress"
)

// Watching a rollout: poll DescribeServices (one call for up to ten services), print the
// service events not seen yet, oldest first, and follow the deployment this deploy started
// until ECS marks it COMPLETED or FAILED; after a failure, follow the circuit breaker's
// rollback to its end. No fixed waiter: completion is noticed on the first poll after it.
// A blue/green rollout is the same deployment seen through its service deployment's
// lifecycle stages as well (bluegreen.go); its rollback is followed the same way.

type phase int

const (
	phaseRolling phase = iota
	phaseRollingBack
	phaseDone
)

// rollbackPolls is how many polls a FAILED deployment may wait for ECS to start the
// circuit breaker's rollback before vmctl reports the failure without one.
const rollbackPolls = 5

// rollout is one service's deployment that a deploy follows.
type rollout struct {
	res        *ServiceResult
	deployment string // the ECS deployment ID followed; empty when there is none
	taskDef    string
	seen       map[string]bool // service event IDs printed, or older than the deploy
	phase      phase

	rollback        string // the deployment ECS started to roll back
	rollbackRelease string
	rollbackDone    bool
	waited          int    // polls waited for the rollback to start
	last            string // the last progress line, so only changes are reported

	// blue/green: the service deployment followed for its lifecycle stage (bluegreen.go)
	blueGreen         bool
	serviceDeployment string
	shifted           bool      // production traffic was seen on the new set
	bakeSeen          time.Time // when the bake was first seen
}

func (r *rollout) failure(env string) error {
	return &RolloutError{Environment: env, Service: r.res.Service, Reason: r.res.Reason, RolledBackTo: r.res.RolledBackTo, Release: r.rollbackRelease, RollbackDone: r.rollbackDone, BlueGreen: r.blueGreen, Shifted: r.shifted}
}

type serviceEvent struct {
	at      time.Time
	service string
	msg     string
}

// watch follows the rollouts until each is done, or returns the context's error.
func (d *deployer) watch(ctx context.Context, rs []*rollout) error {
	byName := map[string]*rollout{}
	for _, r := range rs {
		if r.phase != phaseDone {
			byName[r.res.Service] = r
		}
	}
	tick := time.NewTicker(d.poll)
	defer tick.Stop()
	failures := 0
	for {
		var names []string
		for n, r := range byName {
			if r.phase != phaseDone {
				names = append(names, n)
			}
		}
		if len(names) == 0 {
			return nil
		}
		sort.Strings(names)
		svcs, err := DescribeServices(ctx, d.c.ECS, d.plan.Cluster, names)
		switch {
		case ctx.Err() != nil:
			return context.Cause(ctx)
		case err != nil:
			// The SDK has retried already; a few more polls ride out a longer outage.
			if failures++; failures >= 3 {
				return fmt.Errorf("watch the rollout: %w", err)
			}
		default:
			failures = 0
			var evs []serviceEvent
			for _, n := range names {
				if svc, ok := svcs[n]; ok {
					evs = append(evs, byName[n].newEvents(&svc)...)
				}
			}
			d.printEvents(evs)
			done := true
			for _, n := range names {
				r := byName[n]
				if svc, ok := svcs[n]; ok {
					d.observe(ctx, r, &svc)
				} else {
					r.res.Rollout, r.res.Reason, r.phase = RolloutFailed, "the service was deleted during the deploy", phaseDone
				}
				done = done && r.phase == phaseDone
			}
			if done {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-tick.C:
		}
	}
}

// newEvents are the service's events not seen before, oldest first (ECS lists newest first).
func (r *rollout) newEvents(svc *ecstypes.Service) []serviceEvent {
	var out []serviceEvent
	for _, e := range slices.Backward(svc.Events) {
		id := sdkaws.ToString(e.Id)
		if r.seen[id] {
			continue
		}
		r.seen[id] = true
		out = append(out, serviceEvent{at: sdkaws.ToTime(e.CreatedAt), service: r.res.Service, msg: sdkaws.ToString(e.Message)})
	}
	return out
}

func (d *deployer) printEvents(evs []serviceEvent) {
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].at.Before(evs[j].at) })
	for _, e := range evs {
		if d.events != nil {
			fmt.Fprintf(d.events, "%s %s\n", e.at.Local().Format("15:04:05"), e.msg)
		} else {
			d.pw.Event(progress.Event{Time: e.at, Resource: e.service, Status: progress.Working, Text: "Event", Detail: e.msg})
		}
	}
}

func (d *deployer) report(r *rollout, status progress.Status, text, detail string) {
	line := string(status) + text + detail
	if line == r.last {
		return
	}
	r.last = line
	d.pw.Event(progress.Event{Resource: r.res.Service, Status: status, Text: text, Detail: detail})
}

func findDeployment(svc *ecstypes.Service, id string) *ecstypes.Deployment {
	for i := range svc.Deployments {
		if sdkaws.ToString(svc.Deployments[i].Id) == id {
			return &svc.Deployments[i]
		}
	}
	return nil
}

// observe moves one rollout along from what ECS says of its service.
func (d *deployer) observe(ctx context.Context, r *rollout, svc *ecstypes.Service) {
	p := PrimaryDeployment(svc)
	switch r.phase {
	case phaseRolling:
		dep := findDeployment(svc, r.deployment)
		if dep == nil {
			// ECS dropped the deployment: something replaced it.
			switch {
			case p == nil:
				r.res.Rollout, r.res.Reason, r.phase = RolloutFailed, "ECS lists no deployment for the service", phaseDone
			case sdkaws.ToString(p.TaskDefinition) != r.taskDef:
				r.res.Rollout, r.res.Reason = RolloutFailed, cmpOr(r.res.Reason, "ECS replaced the deployment with one of "+familyRevision(sdkaws.ToString(p.TaskDefinition)))
				d.rollingBack(ctx, r, p)
			default:
				r.deployment = sdkaws.ToString(p.Id) // a newer deployment of the same revision
			}
			return
		}
		switch dep.RolloutState {
		case ecstypes.DeploymentRolloutStateCompleted:
			r.res.Rollout, r.res.CompletedAt, r.phase = RolloutCompleted, sdkaws.ToTime(dep.UpdatedAt), phaseDone
			d.report(r, progress.Done, "Completed", fmt.Sprintf("%s, %d/%d running", familyRevision(r.taskDef), dep.RunningCount, dep.DesiredCount))
		case ecstypes.DeploymentRolloutStateFailed:
			r.res.Rollout, r.res.Reason = RolloutFailed, sdkaws.ToString(dep.RolloutStateReason)
			r.blueGreen = r.blueGreen || isBlueGreen(svc)
			d.report(r, progress.Error, "Failed", r.res.Reason)
			cb := svc.DeploymentConfiguration
			switch {
			case p != nil && sdkaws.ToString(p.Id) != r.deployment:
				d.rollingBack(ctx, r, p)
			case cb == nil || cb.DeploymentCircuitBreaker == nil || !cb.DeploymentCircuitBreaker.Rollback || r.waited >= rollbackPolls:
				r.phase = phaseDone
			default:
				r.waited++
			}
		default:
			if isBlueGreen(svc) && d.blueGreenProgress(ctx, r, svc, dep) {
				return
			}
			detail := fmt.Sprintf("%s, %d/%d running", familyRevision(r.taskDef), dep.RunningCount, dep.DesiredCount)
			if dep.PendingCount > 0 {
				detail += fmt.Sprintf(", %d pending", dep.PendingCount)
			}
			if dep.FailedTasks > 0 {
				detail += fmt.Sprintf(", %d failed", dep.FailedTasks)
			}
			d.report(r, progress.Working, "Rolling out", detail)
		}
	case phaseRollingBack:
		dep := findDeployment(svc, r.rollback)
		switch {
		case dep == nil:
			r.phase = phaseDone
		case dep.RolloutState == ecstypes.DeploymentRolloutStateCompleted:
			r.rollbackDone, r.phase = true, phaseDone
			d.report(r, progress.Error, "Rolled back", "to "+familyRevision(r.res.RolledBackTo)+releaseNote(r.rollbackRelease)+": "+r.res.Reason+prodNote(r))
		case dep.RolloutState == ecstypes.DeploymentRolloutStateFailed:
			r.phase = phaseDone
			d.report(r, progress.Error, "Rollback failed", sdkaws.ToString(dep.RolloutStateReason))
		default:
			d.report(r, progress.Error, "Rolling back", fmt.Sprintf("to %s%s, %d/%d running", familyRevision(r.res.RolledBackTo), releaseNote(r.rollbackRelease), dep.RunningCount, dep.DesiredCount))
		}
	}
}

// rollingBack follows the deployment ECS started to undo the failed one.
func (d *deployer) rollingBack(ctx context.Context, r *rollout, p *ecstypes.Deployment) {
	r.rollback = sdkaws.ToString(p.Id)
	r.res.RolledBackTo = sdkaws.ToString(p.TaskDefinition)
	if _, tags, err := DescribeTaskDef(ctx, d.c.ECS, r.res.RolledBackTo); err == nil {
		r.rollbackRelease = ShownRelease(tags)
	}
	r.phase = phaseRollingBack
	d.report(r, progress.Error, "Rolling back", "to "+familyRevision(r.res.RolledBackTo)+releaseNote(r.rollbackRelease))
}

func releaseNote(id string) string {
	if id == "" {
		return ""
	}
	return " (release " + id + ")"
}
