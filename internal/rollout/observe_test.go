package rollout

import (
	"context"
	"testing"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/stretchr/testify/assert"

	"github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/ecs"
)

// taskDefTags answers DescribeTaskDefinition with a release tag, the one call observe
// makes (to name the release a rollback returns to); the rest of ECS is not needed.
type taskDefTags struct {
	aws.ECS
	release string
}

func (f taskDefTags) DescribeTaskDefinition(_ context.Context, in *awsecs.DescribeTaskDefinitionInput, _ ...func(*awsecs.Options)) (*awsecs.DescribeTaskDefinitionOutput, error) {
	return &awsecs.DescribeTaskDefinitionOutput{
		TaskDefinition: &ecstypes.TaskDefinition{TaskDefinitionArn: in.TaskDefinition},
		Tags:           []ecstypes.Tag{{Key: sdkaws.String(ReleaseTag), Value: sdkaws.String(f.release)}},
	}, nil
}

const (
	newTD = "arn:aws:ecs:ap-northeast-1:1:task-definition/web:2"
	oldTD = "arn:aws:ecs:ap-northeast-1:1:task-definition/web:1"
)

func dep(id, status, td string, state ecstypes.DeploymentRolloutState) ecstypes.Deployment {
	return ecstypes.Deployment{Id: sdkaws.String(id), Status: sdkaws.String(status), TaskDefinition: sdkaws.String(td), RolloutState: state,
		RolloutStateReason: sdkaws.String(string(state) + " because"), RunningCount: 1, DesiredCount: 2}
}

func withBreaker(svc *ecstypes.Service) *ecstypes.Service {
	svc.DeploymentConfiguration = &ecstypes.DeploymentConfiguration{DeploymentCircuitBreaker: &ecstypes.DeploymentCircuitBreaker{Enable: true, Rollback: true}}
	return svc
}

// observe is the state machine of a watched rollout: from what DescribeServices says, it
// moves one service's rollout along; no Docker Engine or AWS is needed to check it.
func TestObserve(t *testing.T) {
	tests := []struct {
		name      string
		phase     phase
		waited    int
		svc       *ecstypes.Service
		wantPhase phase
		rollout   string // res.Rollout after
		following string // the deployment followed after (rolling)
		rolledTo  string
		rbRelease string
		rbDone    bool
		waitedNow int
	}{
		{name: "in progress stays rolling", svc: &ecstypes.Service{Deployments: []ecstypes.Deployment{dep("d2", "PRIMARY", newTD, ecstypes.DeploymentRolloutStateInProgress)}},
			wantPhase: phaseRolling, following: "d2"},
		{name: "completed is done", svc: &ecstypes.Service{Deployments: []ecstypes.Deployment{dep("d2", "PRIMARY", newTD, ecstypes.DeploymentRolloutStateCompleted)}},
			wantPhase: phaseDone, rollout: RolloutCompleted, following: "d2"},
		{name: "failed, the breaker's rollback already primary", svc: withBreaker(&ecstypes.Service{Deployments: []ecstypes.Deployment{
			dep("d3", "PRIMARY", oldTD, ecstypes.DeploymentRolloutStateInProgress), dep("d2", "ACTIVE", newTD, ecstypes.DeploymentRolloutStateFailed)}}),
			wantPhase: phaseRollingBack, rollout: RolloutFailed, following: "d2", rolledTo: oldTD, rbRelease: "r1"},
		{name: "failed without a breaker rollback is done", svc: &ecstypes.Service{Deployments: []ecstypes.Deployment{dep("d2", "PRIMARY", newTD, ecstypes.DeploymentRolloutStateFailed)}},
			wantPhase: phaseDone, rollout: RolloutFailed, following: "d2"},
		{name: "failed, waiting for the breaker to start its rollback", svc: withBreaker(&ecstypes.Service{Deployments: []ecstypes.Deployment{dep("d2", "PRIMARY", newTD, ecstypes.DeploymentRolloutStateFailed)}}),
			wantPhase: phaseRolling, rollout: RolloutFailed, following: "d2", waitedNow: 1},
		{name: "failed, waited long enough for a rollback", waited: rollbackPolls, svc: withBreaker(&ecstypes.Service{Deployments: []ecstypes.Deployment{dep("d2", "PRIMARY", newTD, ecstypes.DeploymentRolloutStateFailed)}}),
			wantPhase: phaseDone, rollout: RolloutFailed, following: "d2", waitedNow: rollbackPolls},
		{name: "deployment gone, none left", svc: &ecstypes.Service{},
			wantPhase: phaseDone, rollout: RolloutFailed, following: "d2"},
		{name: "deployment gone, replaced by another revision", svc: &ecstypes.Service{Deployments: []ecstypes.Deployment{dep("d3", "PRIMARY", oldTD, ecstypes.DeploymentRolloutStateInProgress)}},
			wantPhase: phaseRollingBack, rollout: RolloutFailed, following: "d2", rolledTo: oldTD, rbRelease: "r1"},
		{name: "deployment gone, a newer one of the same revision is followed", svc: &ecstypes.Service{Deployments: []ecstypes.Deployment{dep("d4", "PRIMARY", newTD, ecstypes.DeploymentRolloutStateInProgress)}},
			wantPhase: phaseRolling, following: "d4"},
		{name: "rollback completed", phase: phaseRollingBack, svc: &ecstypes.Service{Deployments: []ecstypes.Deployment{dep("d3", "PRIMARY", oldTD, ecstypes.DeploymentRolloutStateCompleted)}},
			wantPhase: phaseDone, following: "d2", rbDone: true},
		{name: "rollback failed", phase: phaseRollingBack, svc: &ecstypes.Service{Deployments: []ecstypes.Deployment{dep("d3", "PRIMARY", oldTD, ecstypes.DeploymentRolloutStateFailed)}},
			wantPhase: phaseDone, following: "d2"},
		{name: "rollback gone", phase: phaseRollingBack, svc: &ecstypes.Service{},
			wantPhase: phaseDone, following: "d2"},
		{name: "rollback in progress", phase: phaseRollingBack, svc: &ecstypes.Service{Deployments: []ecstypes.Deployment{dep("d3", "PRIMARY", oldTD, ecstypes.DeploymentRolloutStateInProgress)}},
			wantPhase: phaseRollingBack, following: "d2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDeployer(aws.Clients{ECS: taskDefTags{release: "r1"}}, &ecs.Plan{Environment: "staging"}, nil, nil, 0)
			r := &rollout{res: &ServiceResult{Service: "web"}, deployment: "d2", taskDef: newTD, phase: tt.phase, waited: tt.waited}
			if tt.phase == phaseRollingBack {
				r.rollback = "d3"
			}
			d.observe(context.Background(), r, tt.svc)
			assert.Equal(t, tt.wantPhase, r.phase, "phase")
			assert.Equal(t, tt.rollout, r.res.Rollout, "rollout")
			assert.Equal(t, tt.following, r.deployment, "deployment followed")
			assert.Equal(t, tt.rolledTo, r.res.RolledBackTo, "rolled back to")
			assert.Equal(t, tt.rbRelease, r.rollbackRelease, "release rolled back to")
			assert.Equal(t, tt.rbDone, r.rollbackDone, "rollback done")
			assert.Equal(t, tt.waitedNow, r.waited, "polls waited")
		})
	}
}

// serviceDiffers names the settings in which a running service differs from the
// rendered one, ignoring what ECS fills in or orders differently.
func TestServiceDiffers(t *testing.T) {
	want := awsecs.CreateServiceInput{
		CapacityProviderStrategy: []ecstypes.CapacityProviderStrategyItem{{CapacityProvider: sdkaws.String("FARGATE"), Weight: 1}, {CapacityProvider: sdkaws.String("FARGATE_SPOT"), Weight: 3}},
		NetworkConfiguration: &ecstypes.NetworkConfiguration{AwsvpcConfiguration: &ecstypes.AwsVpcConfiguration{
			Subnets: []string{"subnet-a", "subnet-b"}, SecurityGroups: []string{"sg-1"}}},
		DeploymentConfiguration: &ecstypes.DeploymentConfiguration{MinimumHealthyPercent: sdkaws.Int32(100), MaximumPercent: sdkaws.Int32(200),
			DeploymentCircuitBreaker: &ecstypes.DeploymentCircuitBreaker{Enable: true, Rollback: true}},
		HealthCheckGracePeriodSeconds: sdkaws.Int32(60),
	}
	lbs := []ecstypes.LoadBalancer{{TargetGroupArn: sdkaws.String("tg"), ContainerName: sdkaws.String("web"), ContainerPort: sdkaws.Int32(80)}}
	same := func() *ecstypes.Service {
		return &ecstypes.Service{
			// ECS's order, not vmctl's; its defaults written out.
			CapacityProviderStrategy: []ecstypes.CapacityProviderStrategyItem{{CapacityProvider: sdkaws.String("FARGATE_SPOT"), Weight: 3}, {CapacityProvider: sdkaws.String("FARGATE"), Weight: 1}},
			NetworkConfiguration: &ecstypes.NetworkConfiguration{AwsvpcConfiguration: &ecstypes.AwsVpcConfiguration{
				Subnets: []string{"subnet-b", "subnet-a"}, SecurityGroups: []string{"sg-1"}, AssignPublicIp: ecstypes.AssignPublicIpDisabled}},
			DeploymentConfiguration: &ecstypes.DeploymentConfiguration{MinimumHealthyPercent: sdkaws.Int32(100), MaximumPercent: sdkaws.Int32(200), Strategy: ecstypes.DeploymentStrategyRolling,
				DeploymentCircuitBreaker: &ecstypes.DeploymentCircuitBreaker{Enable: true, Rollback: true}},
			HealthCheckGracePeriodSeconds: sdkaws.Int32(60),
			LoadBalancers:                 lbs,
			PropagateTags:                 ecstypes.PropagateTagsNone,
		}
	}
	tests := []struct {
		name   string
		change func(*ecstypes.Service)
		want   []string
	}{
		{name: "the same, in ECS's order and defaults", change: func(*ecstypes.Service) {}},
		{name: "capacity weight", change: func(s *ecstypes.Service) { s.CapacityProviderStrategy[0].Weight = 1 }, want: []string{"capacity"}},
		{name: "a subnet", change: func(s *ecstypes.Service) { s.NetworkConfiguration.AwsvpcConfiguration.Subnets = []string{"subnet-a"} }, want: []string{"network"}},
		{name: "a public IP", change: func(s *ecstypes.Service) {
			s.NetworkConfiguration.AwsvpcConfiguration.AssignPublicIp = ecstypes.AssignPublicIpEnabled
		}, want: []string{"network"}},
		{name: "no load balancer", change: func(s *ecstypes.Service) { s.LoadBalancers = nil }, want: []string{"load balancers"}},
		{name: "breaker off", change: func(s *ecstypes.Service) { s.DeploymentConfiguration.DeploymentCircuitBreaker.Rollback = false }, want: []string{"deployment"}},
		{name: "grace period", change: func(s *ecstypes.Service) { s.HealthCheckGracePeriodSeconds = sdkaws.Int32(0) }, want: []string{"health check grace period"}},
		{name: "tags propagated", change: func(s *ecstypes.Service) { s.PropagateTags = ecstypes.PropagateTagsService }, want: []string{"tag propagation"}},
		{name: "two at once", change: func(s *ecstypes.Service) {
			s.LoadBalancers = nil
			s.HealthCheckGracePeriodSeconds = nil
		}, want: []string{"load balancers", "health check grace period"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur := same()
			tt.change(cur)
			assert.Equal(t, tt.want, serviceDiffers(cur, want, lbs))
		})
	}
}
