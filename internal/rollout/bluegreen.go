package rollout

import (
	"context"
	"fmt"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/vmctl/vmctl/internal/progress"
)

// Blue/green progress: ECS reports a blue/green deployment's lifecycle stage on its service
// deployment (ListServiceDeployments, DescribeServiceDeployments), not on the service. The
// watcher reads it for a blue/green service on each poll and tells the stages a person
// cares about: the new set starting without production traffic, the new set healthy,
// production traffic shifted, the bake with its time left, the old set cleaned up.

func isBlueGreen(svc *ecstypes.Service) bool {
	return svc.DeploymentConfiguration != nil && svc.DeploymentConfiguration.Strategy == ecstypes.DeploymentStrategyBlueGreen
}

// blueGreenProgress reports the lifecycle stage of the deployment followed; false when ECS
// says none (an API without service deployments), so the caller reports it as rolling.
func (d *deployer) blueGreenProgress(ctx context.Context, r *rollout, svc *ecstypes.Service, dep *ecstypes.Deployment) bool {
	r.blueGreen = true
	sd, err := d.serviceDeployment(ctx, r, svc, dep)
	if err != nil || sd == nil {
		return false
	}
	rev := familyRevision(r.taskDef)
	counts := fmt.Sprintf("%d/%d running", dep.RunningCount, dep.DesiredCount)
	if len(sd.SourceServiceRevisions) == 0 {
		return false // the service's first deployment replaces nothing: a plain rollout
	}
	switch sd.LifecycleStage {
	case ecstypes.ServiceDeploymentLifecycleStageReconcileService, ecstypes.ServiceDeploymentLifecycleStagePreScaleUp, ecstypes.ServiceDeploymentLifecycleStageScaleUp:
		d.report(r, progress.Working, "Starting new set", rev+", "+counts+" behind the alternate target group; production stays on the previous release")
	case ecstypes.ServiceDeploymentLifecycleStagePostScaleUp, ecstypes.ServiceDeploymentLifecycleStageTestTrafficShift,
		ecstypes.ServiceDeploymentLifecycleStagePostTestTrafficShift:
		d.report(r, progress.Working, "New set healthy", rev+", "+counts+"; production stays on the previous release")
	case ecstypes.ServiceDeploymentLifecycleStageProductionTrafficShift, ecstypes.ServiceDeploymentLifecycleStagePostProductionTrafficShift:
		r.shifted = true
		d.report(r, progress.Working, "Traffic shifted", "production traffic to "+rev)
	case ecstypes.ServiceDeploymentLifecycleStageBakeTime:
		r.shifted = true
		if r.bakeSeen.IsZero() {
			r.bakeSeen = time.Now()
		}
		bake := time.Duration(sdkaws.ToInt32(svc.DeploymentConfiguration.BakeTimeInMinutes)) * time.Minute
		// ECS tells the stage, not when it began: the time left counts from when vmctl saw it.
		left := (bake - time.Since(r.bakeSeen) + time.Minute - 1).Truncate(time.Minute)
		d.report(r, progress.Working, "Baking", fmt.Sprintf("%s serves production; %s left of the %s bake, the previous release kept running to take traffic back", rev, shortMinutes(max(left, 0)), shortMinutes(bake)))
	case ecstypes.ServiceDeploymentLifecycleStageCleanUp:
		r.shifted = true
		d.report(r, progress.Working, "Cleaning up", rev+" serves production; stopping the previous release's tasks")
	default:
		return false
	}
	return true
}

// serviceDeployment is the service deployment of the deployment followed: the newest ECS
// lists that started no earlier than it.
func (d *deployer) serviceDeployment(ctx context.Context, r *rollout, svc *ecstypes.Service, dep *ecstypes.Deployment) (*ecstypes.ServiceDeployment, error) {
	if r.serviceDeployment == "" {
		out, err := d.c.ECS.ListServiceDeployments(ctx, &awsecs.ListServiceDeploymentsInput{Cluster: sdkaws.String(d.plan.Cluster), Service: svc.ServiceName})
		if err != nil {
			return nil, err
		}
		created := sdkaws.ToTime(dep.CreatedAt).Add(-time.Second)
		for _, b := range out.ServiceDeployments {
			if !sdkaws.ToTime(b.CreatedAt).Before(created) {
				r.serviceDeployment = sdkaws.ToString(b.ServiceDeploymentArn)
				break
			}
		}
		if r.serviceDeployment == "" {
			return nil, nil
		}
	}
	out, err := d.c.ECS.DescribeServiceDeployments(ctx, &awsecs.DescribeServiceDeploymentsInput{ServiceDeploymentArns: []string{r.serviceDeployment}})
	if err != nil || len(out.ServiceDeployments) == 0 {
		return nil, err
	}
	return &out.ServiceDeployments[0], nil
}

func shortMinutes(d time.Duration) string {
	return fmt.Sprintf("%dm", int(d/time.Minute))
}

// prodNote says, after a blue/green rollback, what production served meanwhile.
func prodNote(r *rollout) string {
	switch {
	case !r.blueGreen:
		return ""
	case r.shifted:
		return "; production traffic shifted back to it, which kept running throughout"
	}
	return "; production never left it"
}
