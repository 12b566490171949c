package awssim_test

import (
	"context"
	"errors"
	"testing"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/dockertest"
)

// Blue/green needs what ECS checks: an alternate target group and a production listener rule
// that exist. (The lifecycle itself is proven through the load balancer in
// internal/rollout's TestBlueGreenProdDeploys.)
func TestECSBlueGreenChecksItsLoadBalancer(t *testing.T) {
	sim, _ := computeDockerSim(t)
	sim.CreateCluster("default")
	lb := sim.CreateLoadBalancer("alb")
	tg := sim.CreateTargetGroup("web", "/health", 8080)
	alt := sim.CreateTargetGroup("web-alt", "/health", 8080)
	require.NoError(t, sim.AttachTargetGroup(lb.ARN, tg.ARN))
	c := newECS(t, sim)
	ctx := context.Background()
	_, err := c.RegisterTaskDefinition(ctx, demoTaskDef("web", dockertest.FixtureImage))
	require.NoError(t, err)
	create := func(ac *ecstypes.AdvancedConfiguration) error {
		_, err := c.CreateService(ctx, &ecs.CreateServiceInput{
			ServiceName: sdkaws.String("web"), TaskDefinition: sdkaws.String("web"), DesiredCount: sdkaws.Int32(0),
			LaunchType: ecstypes.LaunchTypeFargate, NetworkConfiguration: awsvpcNetwork,
			LoadBalancers:           []ecstypes.LoadBalancer{{TargetGroupArn: sdkaws.String(tg.ARN), ContainerName: sdkaws.String("web"), ContainerPort: sdkaws.Int32(8080), AdvancedConfiguration: ac}},
			DeploymentConfiguration: &ecstypes.DeploymentConfiguration{Strategy: ecstypes.DeploymentStrategyBlueGreen, BakeTimeInMinutes: sdkaws.Int32(10)},
		})
		return err
	}
	role := sdkaws.String("arn:aws:iam::000000000000:role/ecs-infrastructure")
	missingRule := "arn:aws:elasticloadbalancing:ap-northeast-1:000000000000:listener-rule/app/alb/0123/4567/89ab"
	for _, tc := range []struct {
		name string
		ac   *ecstypes.AdvancedConfiguration
		msg  string
	}{
		{"no alternate group", &ecstypes.AdvancedConfiguration{ProductionListenerRule: sdkaws.String(missingRule), RoleArn: role},
			"advancedConfiguration requires alternateTargetGroupArn, productionListenerRule and roleArn."},
		{"missing alternate group", &ecstypes.AdvancedConfiguration{AlternateTargetGroupArn: sdkaws.String(tg.ARN + "x"), ProductionListenerRule: sdkaws.String(missingRule), RoleArn: role},
			"The alternate target group " + tg.ARN + "x does not exist."},
		{"missing rule", &ecstypes.AdvancedConfiguration{AlternateTargetGroupArn: sdkaws.String(alt.ARN), ProductionListenerRule: sdkaws.String(missingRule), RoleArn: role},
			"The production listener rule " + missingRule + " does not exist."},
	} {
		err := create(tc.ac)
		var ae smithy.APIError
		require.True(t, errors.As(err, &ae), "%s: %v", tc.name, err)
		assert.Equal(t, "InvalidParameterException", ae.ErrorCode(), tc.name)
		assert.Equal(t, tc.msg, ae.ErrorMessage(), tc.name)
	}

	_, err = c.ListServiceDeployments(ctx, &ecs.ListServiceDeploymentsInput{Service: sdkaws.String("web")})
	var nf *ecstypes.ServiceNotFoundException
	assert.ErrorAs(t, err, &nf)
}
