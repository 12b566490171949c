package awssim_test

import (
	"context"
	"strings"
	"testing"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	aas "github.com/aws/aws-sdk-go-v2/service/applicationautoscaling"
	aastypes "github.com/aws/aws-sdk-go-v2/service/applicationautoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/awssim/simtest"
)

func TestApplicationAutoScaling(t *testing.T) {
	sim := computeSim(t)
	sim.CreateCluster("vmctl-dev")
	ctx := context.Background()
	e := newECS(t, sim)
	_, err := e.RegisterTaskDefinition(ctx, demoTaskDef("backend", "vmctl-fixture:test"))
	require.NoError(t, err)
	_, err = e.CreateService(ctx, &ecs.CreateServiceInput{
		Cluster: sdkaws.String("vmctl-dev"), ServiceName: sdkaws.String("backend"), TaskDefinition: sdkaws.String("backend"),
		DesiredCount: sdkaws.Int32(0), LaunchType: ecstypes.LaunchTypeFargate, NetworkConfiguration: awsvpcNetwork,
	})
	require.NoError(t, err)
	c := aas.NewFromConfig(simtest.Config(t, sim, computeKey))
	id := sdkaws.String("service/vmctl-dev/backend")
	dim := aastypes.ScalableDimensionECSServiceDesiredCount

	reg, err := c.RegisterScalableTarget(ctx, &aas.RegisterScalableTargetInput{
		ServiceNamespace: aastypes.ServiceNamespaceEcs, ResourceId: id, ScalableDimension: dim,
		MinCapacity: sdkaws.Int32(2), MaxCapacity: sdkaws.Int32(20), Tags: map[string]string{"vmctl:service": "backend"},
	})
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(sdkaws.ToString(reg.ScalableTargetARN), "arn:aws:application-autoscaling:ap-northeast-1:"+computeAccount+":scalable-target/"))

	svc, err := e.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: sdkaws.String("vmctl-dev"), Services: []string{"backend"}})
	require.NoError(t, err)
	assert.Equal(t, int32(2), svc.Services[0].DesiredCount, "registering moves the desired count into [min, max]")

	// Updating needs no min or max; the rest stays.
	_, err = c.RegisterScalableTarget(ctx, &aas.RegisterScalableTargetInput{ServiceNamespace: aastypes.ServiceNamespaceEcs, ResourceId: id, ScalableDimension: dim, MaxCapacity: sdkaws.Int32(10)})
	require.NoError(t, err)
	targets, err := c.DescribeScalableTargets(ctx, &aas.DescribeScalableTargetsInput{ServiceNamespace: aastypes.ServiceNamespaceEcs, ResourceIds: []string{*id}})
	require.NoError(t, err)
	require.Len(t, targets.ScalableTargets, 1)
	st := targets.ScalableTargets[0]
	assert.Equal(t, int32(2), sdkaws.ToInt32(st.MinCapacity))
	assert.Equal(t, int32(10), sdkaws.ToInt32(st.MaxCapacity))
	assert.Equal(t, dim, st.ScalableDimension)
	assert.Equal(t, reg.ScalableTargetARN, st.ScalableTargetARN)
	assert.NotNil(t, st.CreationTime)
	assert.Contains(t, sdkaws.ToString(st.RoleARN), "AWSServiceRoleForApplicationAutoScaling_ECSService")
	other, err := c.DescribeScalableTargets(ctx, &aas.DescribeScalableTargetsInput{ServiceNamespace: aastypes.ServiceNamespaceEcs, ResourceIds: []string{"service/vmctl-dev/other"}})
	require.NoError(t, err)
	assert.Empty(t, other.ScalableTargets)

	pol, err := c.PutScalingPolicy(ctx, &aas.PutScalingPolicyInput{
		PolicyName: sdkaws.String("backend-cpu"), ServiceNamespace: aastypes.ServiceNamespaceEcs, ResourceId: id, ScalableDimension: dim,
		PolicyType: aastypes.PolicyTypeTargetTrackingScaling,
		TargetTrackingScalingPolicyConfiguration: &aastypes.TargetTrackingScalingPolicyConfiguration{
			TargetValue:                   sdkaws.Float64(70),
			PredefinedMetricSpecification: &aastypes.PredefinedMetricSpecification{PredefinedMetricType: aastypes.MetricTypeECSServiceAverageCPUUtilization},
			ScaleOutCooldown:              sdkaws.Int32(60), ScaleInCooldown: sdkaws.Int32(300),
		},
	})
	require.NoError(t, err)
	assert.Contains(t, sdkaws.ToString(pol.PolicyARN), ":resource/ecs/service/vmctl-dev/backend:policyName/backend-cpu")
	assert.Len(t, pol.Alarms, 2, "target tracking makes its high and low alarms")
	pols, err := c.DescribeScalingPolicies(ctx, &aas.DescribeScalingPoliciesInput{ServiceNamespace: aastypes.ServiceNamespaceEcs, ResourceId: id})
	require.NoError(t, err)
	require.Len(t, pols.ScalingPolicies, 1)
	assert.Equal(t, 70.0, sdkaws.ToFloat64(pols.ScalingPolicies[0].TargetTrackingScalingPolicyConfiguration.TargetValue))
	assert.Equal(t, aastypes.MetricTypeECSServiceAverageCPUUtilization, pols.ScalingPolicies[0].TargetTrackingScalingPolicyConfiguration.PredefinedMetricSpecification.PredefinedMetricType)

	_, err = c.PutScheduledAction(ctx, &aas.PutScheduledActionInput{
		ScheduledActionName: sdkaws.String("backend-stop"), ServiceNamespace: aastypes.ServiceNamespaceEcs, ResourceId: id, ScalableDimension: dim,
		Schedule: sdkaws.String("cron(0 20 ? * MON-FRI *)"), Timezone: sdkaws.String("Asia/Tokyo"),
		ScalableTargetAction: &aastypes.ScalableTargetAction{MinCapacity: sdkaws.Int32(0), MaxCapacity: sdkaws.Int32(0)},
	})
	require.NoError(t, err)
	sched, err := c.DescribeScheduledActions(ctx, &aas.DescribeScheduledActionsInput{ServiceNamespace: aastypes.ServiceNamespaceEcs})
	require.NoError(t, err)
	require.Len(t, sched.ScheduledActions, 1)
	assert.Equal(t, "Asia/Tokyo", sdkaws.ToString(sched.ScheduledActions[0].Timezone))
	assert.Equal(t, int32(0), sdkaws.ToInt32(sched.ScheduledActions[0].ScalableTargetAction.MaxCapacity))

	// The errors AWS answers.
	_, err = c.RegisterScalableTarget(ctx, &aas.RegisterScalableTargetInput{ServiceNamespace: aastypes.ServiceNamespaceEcs, ResourceId: sdkaws.String("service/vmctl-dev/nope"), ScalableDimension: dim, MinCapacity: sdkaws.Int32(1), MaxCapacity: sdkaws.Int32(2)})
	assert.Equal(t, "ValidationException", computeErrCode(err), "no such service")
	_, err = c.RegisterScalableTarget(ctx, &aas.RegisterScalableTargetInput{ServiceNamespace: aastypes.ServiceNamespaceEcs, ResourceId: id, ScalableDimension: dim, MinCapacity: sdkaws.Int32(5), MaxCapacity: sdkaws.Int32(1)})
	assert.Equal(t, "ValidationException", computeErrCode(err), "min above max")
	_, err = c.PutScalingPolicy(ctx, &aas.PutScalingPolicyInput{
		PolicyName: sdkaws.String("x"), ServiceNamespace: aastypes.ServiceNamespaceEcs, ResourceId: sdkaws.String("service/vmctl-dev/other"), ScalableDimension: dim,
		PolicyType: aastypes.PolicyTypeTargetTrackingScaling,
		TargetTrackingScalingPolicyConfiguration: &aastypes.TargetTrackingScalingPolicyConfiguration{
			TargetValue: sdkaws.Float64(70), PredefinedMetricSpecification: &aastypes.PredefinedMetricSpecification{PredefinedMetricType: aastypes.MetricTypeECSServiceAverageCPUUtilization},
		},
	})
	assert.Equal(t, "ObjectNotFoundException", computeErrCode(err))
	_, err = c.PutScalingPolicy(ctx, &aas.PutScalingPolicyInput{PolicyName: sdkaws.String("x"), ServiceNamespace: aastypes.ServiceNamespaceEcs, ResourceId: id, ScalableDimension: dim, PolicyType: aastypes.PolicyTypeTargetTrackingScaling})
	assert.Equal(t, "ValidationException", computeErrCode(err), "target tracking without its configuration")
	_, err = c.DescribeScalingActivities(ctx, &aas.DescribeScalingActivitiesInput{ServiceNamespace: aastypes.ServiceNamespaceEcs})
	assert.Equal(t, "UnknownOperationException", computeErrCode(err))
	_, err = aas.NewFromConfig(simtest.Config(t, sim, "AKIASTRANGER")).DescribeScalableTargets(ctx, &aas.DescribeScalableTargetsInput{ServiceNamespace: aastypes.ServiceNamespaceEcs})
	assert.Equal(t, "UnrecognizedClientException", computeErrCode(err))
}
