// Package status reads an environment for the operator: what each service runs and
// how healthy it is (Status), and the services' CloudWatch logs (FollowLogs).
package status

import (
	"context"
	"fmt"
	"slices"
	"strings"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/rollout"
)

// StatusReport is what an environment runs, service by service.
type StatusReport struct {
	Environment string `json:"environment"`
	Cluster     string `json:"cluster"`
	// Release is the release every deployed service runs; empty when they differ.
	Release  string          `json:"release,omitempty"`
	Services []ServiceStatus `json:"services"`
}

// ServiceStatus is one ECS service now.
type ServiceStatus struct {
	Service        string `json:"service"`
	State          string `json:"state"` // ACTIVE, DRAINING, or MISSING (not deployed)
	Desired        int32  `json:"desired"`
	Running        int32  `json:"running"`
	Pending        int32  `json:"pending"`
	Rollout        string `json:"rollout,omitempty"` // the primary deployment's rolloutState
	RolloutReason  string `json:"rolloutReason,omitempty"`
	Deployments    int    `json:"deployments"`
	TaskDefinition string `json:"taskDefinition,omitempty"`
	Release        string `json:"release,omitempty"`
	Digest         string `json:"digest,omitempty"` // the main container's image digest
	// Health sums up the rest: healthy, unhealthy, deploying, starting, down, stopped
	// (scaled to zero) or missing.
	Health  string `json:"health"`
	Tasks   Tally  `json:"tasks"`             // the running tasks' container health
	Targets *Tally `json:"targets,omitempty"` // their targets' health, behind a load balancer
}

// Tally counts health states.
type Tally struct {
	Healthy   int `json:"healthy"`
	Unhealthy int `json:"unhealthy"`
	Other     int `json:"other"` // unknown, initial, unused
}

func (t Tally) String() string {
	n := t.Healthy + t.Unhealthy + t.Other
	s := fmt.Sprintf("%d/%d healthy", t.Healthy, n)
	if t.Unhealthy > 0 {
		s += fmt.Sprintf(", %d unhealthy", t.Unhealthy)
	}
	return s
}

// Status reads every service of the plan: counts, deployment, release and digest from its
// task definition, container health of its running tasks and target health behind the
// load balancer. A service that does not exist is reported MISSING, not as an error.
func Status(ctx context.Context, c aws.Clients, plan *ecs.Plan) (*StatusReport, error) {
	rep := &StatusReport{Environment: plan.Environment, Cluster: plan.Cluster}
	var names []string
	for _, s := range plan.Services {
		names = append(names, s.Name)
	}
	svcs, err := rollout.DescribeServices(ctx, c.ECS, plan.Cluster, names)
	if err != nil {
		return nil, err
	}
	releases := map[string]bool{}
	for _, n := range names {
		svc, ok := svcs[n]
		if !ok {
			rep.Services = append(rep.Services, ServiceStatus{Service: n, State: "MISSING", Health: "missing"})
			continue
		}
		ss, err := serviceStatus(ctx, c, plan.Cluster, &svc)
		if err != nil {
			return nil, fmt.Errorf("status of %s: %w", n, err)
		}
		releases[ss.Release] = true
		rep.Services = append(rep.Services, ss)
	}
	if len(releases) == 1 {
		for r := range releases {
			rep.Release = r
		}
	}
	return rep, nil
}

func serviceStatus(ctx context.Context, c aws.Clients, cluster string, svc *ecstypes.Service) (ServiceStatus, error) {
	name := sdkaws.ToString(svc.ServiceName)
	ss := ServiceStatus{
		Service: name, State: sdkaws.ToString(svc.Status),
		Desired: svc.DesiredCount, Running: svc.RunningCount, Pending: svc.PendingCount,
		Deployments: len(svc.Deployments), TaskDefinition: sdkaws.ToString(svc.TaskDefinition),
	}
	if p := rollout.PrimaryDeployment(svc); p != nil {
		ss.Rollout, ss.RolloutReason = string(p.RolloutState), sdkaws.ToString(p.RolloutStateReason)
	}
	td, tags, err := rollout.DescribeTaskDef(ctx, c.ECS, ss.TaskDefinition)
	if err != nil {
		return ss, err
	}
	checked := false // its containers have health checks, so tasks report health
	if td != nil {
		ss.Release, ss.Digest = rollout.ShownRelease(tags), rollout.ImageDigest(rollout.MainImage(td, name))
		checked = slices.ContainsFunc(td.ContainerDefinitions, func(c ecstypes.ContainerDefinition) bool { return c.HealthCheck != nil })
	}
	if ss.Tasks, err = taskHealth(ctx, c.ECS, cluster, name); err != nil {
		return ss, err
	}
	for _, lb := range svc.LoadBalancers {
		if lb.TargetGroupArn == nil {
			continue
		}
		t, err := targetHealth(ctx, c.ELB, *lb.TargetGroupArn)
		if err != nil {
			return ss, err
		}
		if ss.Targets == nil {
			ss.Targets = &Tally{}
		}
		ss.Targets.Healthy += t.Healthy
		ss.Targets.Unhealthy += t.Unhealthy
		ss.Targets.Other += t.Other
	}
	ss.Health = summarize(ss, checked)
	return ss, nil
}

func summarize(ss ServiceStatus, checked bool) string {
	switch {
	case ss.Tasks.Unhealthy > 0 || ss.Targets != nil && ss.Targets.Unhealthy > 0:
		return "unhealthy"
	case ss.Desired == 0:
		return "stopped"
	case ss.Rollout == string(ecstypes.DeploymentRolloutStateInProgress):
		return "deploying"
	case ss.Running == 0:
		return "down"
	case ss.Running < ss.Desired || ss.Targets != nil && ss.Targets.Healthy < int(ss.Running) || checked && ss.Tasks.Healthy < int(ss.Running):
		return "starting"
	}
	return "healthy"
}

// taskHealth tallies the container health of the service's running tasks.
func taskHealth(ctx context.Context, api aws.ECS, cluster, service string) (Tally, error) {
	var t Tally
	var arns []string
	var token *string
	for {
		out, err := api.ListTasks(ctx, &awsecs.ListTasksInput{Cluster: sdkaws.String(cluster), ServiceName: sdkaws.String(service), DesiredStatus: ecstypes.DesiredStatusRunning, NextToken: token})
		if err != nil {
			return t, fmt.Errorf("list tasks: %w", err)
		}
		arns = append(arns, out.TaskArns...)
		if token = out.NextToken; token == nil {
			break
		}
	}
	for batch := range slices.Chunk(arns, 100) {
		out, err := api.DescribeTasks(ctx, &awsecs.DescribeTasksInput{Cluster: sdkaws.String(cluster), Tasks: batch})
		if err != nil {
			return t, fmt.Errorf("describe tasks: %w", err)
		}
		for _, task := range out.Tasks {
			if sdkaws.ToString(task.LastStatus) != "RUNNING" {
				continue
			}
			switch task.HealthStatus {
			case ecstypes.HealthStatusHealthy:
				t.Healthy++
			case ecstypes.HealthStatusUnhealthy:
				t.Unhealthy++
			default:
				t.Other++
			}
		}
	}
	return t, nil
}

// targetHealth tallies a target group's targets; draining ones are on their way out and
// left out.
func targetHealth(ctx context.Context, api aws.ELB, tgARN string) (Tally, error) {
	var t Tally
	out, err := api.DescribeTargetHealth(ctx, &elbv2.DescribeTargetHealthInput{TargetGroupArn: sdkaws.String(tgARN)})
	if err != nil {
		return t, fmt.Errorf("describe target health of %s: %w", tgARN, err)
	}
	for _, d := range out.TargetHealthDescriptions {
		if d.TargetHealth == nil {
			t.Other++
			continue
		}
		switch d.TargetHealth.State {
		case elbtypes.TargetHealthStateEnumHealthy:
			t.Healthy++
		case elbtypes.TargetHealthStateEnumUnhealthy:
			t.Unhealthy++
		case elbtypes.TargetHealthStateEnumDraining:
		default:
			t.Other++
		}
	}
	return t, nil
}

// HealthLine is the tasks' and targets' health in a few words, for tables.
func (ss ServiceStatus) HealthLine() string {
	if ss.State == "MISSING" {
		return "-"
	}
	parts := []string{"tasks " + ss.Tasks.String()}
	if ss.Targets != nil {
		parts = append(parts, "targets "+ss.Targets.String())
	}
	return strings.Join(parts, "; ")
}
