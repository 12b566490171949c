package awssim_test

import (
	"context"
	"testing"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/awssim"
	"github.com/vmctl/vmctl/internal/awssim/simtest"
)

func gpuGroup(t *testing.T, sim *awssim.Sim, name string, desired int) []awssim.Instance {
	t.Helper()
	return sim.AddAutoScalingGroup(name, 1, 5, desired, awssim.Instance{GPU: awssim.T4()})
}

func TestAutoScalingDescribeGroups(t *testing.T) {
	sim := userSim(t)
	ctx := context.Background()
	old := awssim.T4()
	old.DriverVersion = "470.57.02"
	insts := sim.AddAutoScalingGroup("openvoice-gpu", 1, 5, 2,
		awssim.Instance{ID: "i-0123456789abcdef0", GPU: awssim.T4()},
		awssim.Instance{InstanceType: "g4dn.2xlarge", AZ: "ap-northeast-1c", GPU: old})
	sim.AddAutoScalingGroup("cpu", 0, 2, 0)
	require.Len(t, insts, 2)
	assert.Equal(t, "i-0123456789abcdef0", insts[0].ID)
	assert.Regexp(t, `^i-[0-9a-f]{17}$`, insts[1].ID)

	got, ok := sim.Instance(insts[1].ID)
	require.True(t, ok)
	assert.Equal(t, "openvoice-gpu", got.Group)
	assert.Equal(t, "470.57.02", got.GPU.DriverVersion)
	assert.Equal(t, 1, got.GPU.Count)
	got.GPU.DriverVersion = "changed"
	again, _ := sim.Instance(insts[1].ID)
	assert.Equal(t, "470.57.02", again.GPU.DriverVersion, "callers get copies")

	c := autoscaling.NewFromConfig(simtest.Config(t, sim, simKey))
	out, err := c.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{})
	require.NoError(t, err)
	require.Len(t, out.AutoScalingGroups, 2)
	assert.Equal(t, "cpu", sdkaws.ToString(out.AutoScalingGroups[0].AutoScalingGroupName))

	out, err = c.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"openvoice-gpu", "nope"}})
	require.NoError(t, err)
	require.Len(t, out.AutoScalingGroups, 1, "unknown names are left out")
	g := out.AutoScalingGroups[0]
	assert.Regexp(t, `^arn:aws:autoscaling:ap-northeast-1:111111111111:autoScalingGroup:[0-9a-f-]{36}:autoScalingGroupName/openvoice-gpu$`, sdkaws.ToString(g.AutoScalingGroupARN))
	assert.Equal(t, int32(1), sdkaws.ToInt32(g.MinSize))
	assert.Equal(t, int32(5), sdkaws.ToInt32(g.MaxSize))
	assert.Equal(t, int32(2), sdkaws.ToInt32(g.DesiredCapacity))
	assert.Equal(t, []string{"ap-northeast-1a", "ap-northeast-1c"}, g.AvailabilityZones)
	assert.False(t, sdkaws.ToTime(g.CreatedTime).IsZero())
	require.Len(t, g.Instances, 2)
	assert.Equal(t, "i-0123456789abcdef0", sdkaws.ToString(g.Instances[0].InstanceId))
	assert.Equal(t, "g4dn.xlarge", sdkaws.ToString(g.Instances[0].InstanceType))
	assert.Equal(t, astypes.LifecycleStateInService, g.Instances[0].LifecycleState)
	assert.Equal(t, "Healthy", sdkaws.ToString(g.Instances[0].HealthStatus))
	assert.Equal(t, "g4dn.2xlarge", sdkaws.ToString(g.Instances[1].InstanceType))

	_, err = autoscaling.NewFromConfig(simtest.Config(t, sim, "AKIASTRANGER")).DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{})
	assert.Equal(t, "InvalidClientTokenId", awsErrorCode(err))
	_, err = c.DescribeLaunchConfigurations(ctx, &autoscaling.DescribeLaunchConfigurationsInput{})
	assert.Equal(t, "InvalidAction", awsErrorCode(err), "what awssim lacks fails loudly")
}

func TestAutoScalingUpdateGroup(t *testing.T) {
	sim := userSim(t)
	ctx := context.Background()
	first := gpuGroup(t, sim, "openvoice-gpu", 1)
	c := autoscaling.NewFromConfig(simtest.Config(t, sim, simKey))

	_, err := c.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{AutoScalingGroupName: sdkaws.String("openvoice-gpu"), DesiredCapacity: sdkaws.Int32(3)})
	require.NoError(t, err)
	insts := sim.GroupInstances("openvoice-gpu")
	require.Len(t, insts, 3, "scaling out launches instances like the first")
	assert.Equal(t, first[0].ID, insts[0].ID)
	for _, in := range insts {
		require.NotNil(t, in.GPU)
		assert.Equal(t, "Tesla T4", in.GPU.Model)
		assert.Equal(t, "g4dn.xlarge", in.InstanceType)
	}

	_, err = c.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{AutoScalingGroupName: sdkaws.String("openvoice-gpu"), MinSize: sdkaws.Int32(2), MaxSize: sdkaws.Int32(2)})
	require.NoError(t, err)
	insts = sim.GroupInstances("openvoice-gpu")
	require.Len(t, insts, 2, "a lower max brings desired down")
	assert.Equal(t, first[0].ID, insts[0].ID, "the newest go first")
	out, err := c.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"openvoice-gpu"}})
	require.NoError(t, err)
	g := out.AutoScalingGroups[0]
	assert.Equal(t, []int32{2, 2, 2}, []int32{sdkaws.ToInt32(g.MinSize), sdkaws.ToInt32(g.MaxSize), sdkaws.ToInt32(g.DesiredCapacity)})

	_, err = c.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{AutoScalingGroupName: sdkaws.String("openvoice-gpu"), DesiredCapacity: sdkaws.Int32(9)})
	assert.Equal(t, "ValidationError", awsErrorCode(err))
	_, err = c.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{AutoScalingGroupName: sdkaws.String("openvoice-gpu"), MinSize: sdkaws.Int32(4), MaxSize: sdkaws.Int32(3)})
	assert.Equal(t, "ValidationError", awsErrorCode(err))
	_, err = c.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{AutoScalingGroupName: sdkaws.String("nope"), DesiredCapacity: sdkaws.Int32(1)})
	assert.Equal(t, "ValidationError", awsErrorCode(err))

	_, err = c.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{AutoScalingGroupName: sdkaws.String("openvoice-gpu"), MinSize: sdkaws.Int32(0), DesiredCapacity: sdkaws.Int32(0)})
	require.NoError(t, err)
	assert.Empty(t, sim.GroupInstances("openvoice-gpu"))
	_, ok := sim.Instance(first[0].ID)
	assert.False(t, ok, "terminated instances are gone")
}

func TestAutoScalingInstanceRefresh(t *testing.T) {
	sim := userSim(t)
	ctx := context.Background()
	before := gpuGroup(t, sim, "openvoice-gpu", 2)
	c := autoscaling.NewFromConfig(simtest.Config(t, sim, simKey))

	started, err := c.StartInstanceRefresh(ctx, &autoscaling.StartInstanceRefreshInput{
		AutoScalingGroupName: sdkaws.String("openvoice-gpu"),
		Preferences:          &astypes.RefreshPreferences{MinHealthyPercentage: sdkaws.Int32(50), InstanceWarmup: sdkaws.Int32(60)},
	})
	require.NoError(t, err)
	id := sdkaws.ToString(started.InstanceRefreshId)
	assert.Len(t, id, 36)
	_, err = c.StartInstanceRefresh(ctx, &autoscaling.StartInstanceRefreshInput{AutoScalingGroupName: sdkaws.String("openvoice-gpu")})
	assert.Equal(t, "InstanceRefreshInProgress", awsErrorCode(err))
	_, err = c.StartInstanceRefresh(ctx, &autoscaling.StartInstanceRefreshInput{AutoScalingGroupName: sdkaws.String("nope")})
	assert.Equal(t, "ValidationError", awsErrorCode(err))

	describe := func() astypes.InstanceRefresh {
		out, err := c.DescribeInstanceRefreshes(ctx, &autoscaling.DescribeInstanceRefreshesInput{AutoScalingGroupName: sdkaws.String("openvoice-gpu"), InstanceRefreshIds: []string{id}})
		require.NoError(t, err)
		require.Len(t, out.InstanceRefreshes, 1)
		return out.InstanceRefreshes[0]
	}
	ir := describe()
	assert.Equal(t, astypes.InstanceRefreshStatusInProgress, ir.Status)
	assert.Equal(t, int32(50), sdkaws.ToInt32(ir.PercentageComplete))
	assert.Equal(t, int32(2), sdkaws.ToInt32(ir.InstancesToUpdate))
	assert.Equal(t, int32(50), sdkaws.ToInt32(ir.Preferences.MinHealthyPercentage))
	assert.Equal(t, int32(60), sdkaws.ToInt32(ir.Preferences.InstanceWarmup))
	assert.Nil(t, ir.EndTime)

	ir = describe()
	assert.Equal(t, astypes.InstanceRefreshStatusSuccessful, ir.Status)
	assert.Equal(t, int32(100), sdkaws.ToInt32(ir.PercentageComplete))
	assert.NotNil(t, ir.EndTime)
	after := sim.GroupInstances("openvoice-gpu")
	require.Len(t, after, 2)
	for i := range after {
		assert.NotEqual(t, before[i].ID, after[i].ID, "every instance was replaced")
		assert.Equal(t, before[i].GPU, after[i].GPU)
		assert.Equal(t, before[i].AZ, after[i].AZ)
	}

	again, err := c.StartInstanceRefresh(ctx, &autoscaling.StartInstanceRefreshInput{AutoScalingGroupName: sdkaws.String("openvoice-gpu")})
	require.NoError(t, err, "a finished refresh blocks nothing")
	all, err := c.DescribeInstanceRefreshes(ctx, &autoscaling.DescribeInstanceRefreshesInput{AutoScalingGroupName: sdkaws.String("openvoice-gpu")})
	require.NoError(t, err)
	require.Len(t, all.InstanceRefreshes, 2)
	assert.Equal(t, sdkaws.ToString(again.InstanceRefreshId), sdkaws.ToString(all.InstanceRefreshes[0].InstanceRefreshId), "newest first")
}

func TestAutoScalingThrottlingIsRetried(t *testing.T) {
	sim := userSim(t)
	sim.InjectFault("AutoScaling.DescribeAutoScalingGroups", awssim.Fault{Throttle: true, Times: 2})
	_, err := autoscaling.NewFromConfig(simtest.Config(t, sim, simKey)).DescribeAutoScalingGroups(context.Background(), &autoscaling.DescribeAutoScalingGroupsInput{})
	require.NoError(t, err)
	assert.Equal(t, 3, sim.Calls("AutoScaling.DescribeAutoScalingGroups"))
}
