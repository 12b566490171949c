package awssim_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/awssim"
	"github.com/vmctl/vmctl/internal/awssim/simtest"
	vmecs "github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/release"
	"github.com/vmctl/vmctl/internal/stack"
)

func provisionPlan(t *testing.T, env string) *vmecs.Plan {
	t.Helper()
	root := filepath.Join("..", "..")
	e, err := environment.LoadNamed(filepath.Join(root, "environments"), env)
	require.NoError(t, err)
	st, err := stack.Load(context.Background(), stack.LoadOptions{Files: []string{filepath.Join(root, "compose", "demo.yaml")}})
	require.NoError(t, err)
	plan, err := vmecs.Render(st, e, release.Release{})
	require.NoError(t, err)
	return plan
}

// Provision makes what the account holds around a plan: the cluster with the GPU group's
// instances in it, the load balancer, the target groups (blue/green alternates too) routed
// by the plan's paths, and the listener rules blue/green names.
func TestProvisionAPlan(t *testing.T) {
	sim := awssim.New()
	t.Cleanup(sim.Close)
	sim.AddUser(computeKey, awssim.Principal{Account: "333333333333", ARN: "arn:aws:iam::333333333333:user/ci"})
	cfg := simtest.Config(t, sim, computeKey)
	ctx := context.Background()
	plan := provisionPlan(t, "prod")

	p := sim.Provision(plan)
	again := sim.Provision(plan)
	assert.Equal(t, p.LoadBalancer, again.LoadBalancer, "provisioning twice makes nothing new")
	assert.Equal(t, "vmctl-prod", p.LoadBalancer.Name)
	require.Len(t, p.Instances, 1, "one T4 host by default")
	assert.Equal(t, "g4dn.xlarge", p.Instances[0].InstanceType)
	assert.Equal(t, "Tesla T4", p.Instances[0].GPU.Model)

	elb := elbv2.NewFromConfig(cfg)
	tgs, err := elb.DescribeTargetGroups(ctx, &elbv2.DescribeTargetGroupsInput{LoadBalancerArn: sdkaws.String(p.LoadBalancer.ARN)})
	require.NoError(t, err)
	var names []string
	for _, tg := range tgs.TargetGroups {
		names = append(names, sdkaws.ToString(tg.TargetGroupName))
		switch sdkaws.ToString(tg.TargetGroupName) {
		case "vmctl-prod-backend":
			assert.Equal(t, "/health", sdkaws.ToString(tg.HealthCheckPath))
			assert.Equal(t, int32(55433), sdkaws.ToInt32(tg.Port))
		case "vmctl-prod-frontend":
			assert.Equal(t, "/", sdkaws.ToString(tg.HealthCheckPath))
		}
	}
	assert.ElementsMatch(t, []string{"vmctl-prod-backend", "vmctl-prod-backend-alt", "vmctl-prod-frontend", "vmctl-prod-frontend-alt"}, names)

	ls, err := elb.DescribeListeners(ctx, &elbv2.DescribeListenersInput{LoadBalancerArn: sdkaws.String(p.LoadBalancer.ARN)})
	require.NoError(t, err)
	require.Len(t, ls.Listeners, 1)
	assert.Equal(t, int32(80), sdkaws.ToInt32(ls.Listeners[0].Port))
	rules, err := elb.DescribeRules(ctx, &elbv2.DescribeRulesInput{ListenerArn: ls.Listeners[0].ListenerArn})
	require.NoError(t, err)
	require.NotEmpty(t, rules.Rules)
	first := rules.Rules[0]
	assert.Equal(t, "1", sdkaws.ToString(first.Priority))
	assert.Equal(t, []string{"/api/*"}, first.Conditions[0].Values, "the backend's path comes first")
	assert.Equal(t, p.TargetGroups["vmctl-prod-backend"].ARN, sdkaws.ToString(first.Actions[0].TargetGroupArn))
	last := rules.Rules[len(rules.Rules)-1]
	assert.True(t, sdkaws.ToBool(last.IsDefault))
	assert.Equal(t, p.TargetGroups["vmctl-prod-frontend"].ARN, sdkaws.ToString(last.Actions[0].TargetGroupArn), "/* is the default action")
	byARN, err := elb.DescribeRules(ctx, &elbv2.DescribeRulesInput{RuleArns: []string{sdkaws.ToString(first.RuleArn)}})
	require.NoError(t, err)
	assert.Equal(t, first.RuleArn, byARN.Rules[0].RuleArn)
	_, err = elb.DescribeRules(ctx, &elbv2.DescribeRulesInput{RuleArns: []string{sdkaws.ToString(first.RuleArn) + "0"}})
	var ae smithy.APIError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "RuleNotFound", ae.ErrorCode())

	ecsc := ecs.NewFromConfig(cfg)
	cl, err := ecsc.DescribeClusters(ctx, &ecs.DescribeClustersInput{Clusters: []string{"vmctl-prod"}})
	require.NoError(t, err)
	require.Len(t, cl.Clusters, 1)
	assert.Contains(t, cl.Clusters[0].CapacityProviders, "vmctl-prod-gpu")
	assert.Equal(t, int32(1), cl.Clusters[0].RegisteredContainerInstancesCount)
	groups, err := autoscaling.NewFromConfig(cfg).DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"vmctl-prod-gpu"}})
	require.NoError(t, err)
	require.Len(t, groups.AutoScalingGroups, 1)
	assert.Len(t, groups.AutoScalingGroups[0].Instances, 1)

	// Instances given replace the default host.
	sim2 := awssim.New()
	t.Cleanup(sim2.Close)
	two := sim2.Provision(provisionPlan(t, "staging"), awssim.Instance{GPU: awssim.T4()}, awssim.Instance{GPU: awssim.T4()})
	assert.Len(t, two.Instances, 2)
	assert.NotContains(t, two.TargetGroups, "vmctl-staging-frontend-alt", "rolling: no alternates")
}

// A rate fault fails that share of the calls, the same ones on every run.
func TestRateFaultIsDeterministic(t *testing.T) {
	ctx := context.Background()
	var runs [][]int
	for range 2 {
		sim := awssim.New()
		t.Cleanup(sim.Close)
		sim.AddUser(computeKey, awssim.Principal{Account: computeAccount, ARN: "arn:aws:iam::" + computeAccount + ":user/ci"})
		sim.CreateCluster("c")
		sim.InjectFault("ECS.DescribeClusters", awssim.Fault{Throttle: true, Rate: 0.3})
		c := ecs.NewFromConfig(simtest.Config(t, sim, computeKey))
		var failed []int
		for i := range 200 {
			_, err := c.DescribeClusters(ctx, &ecs.DescribeClustersInput{Clusters: []string{"c"}}, func(o *ecs.Options) { o.RetryMaxAttempts = 1 })
			if err != nil {
				var ae smithy.APIError
				require.ErrorAs(t, err, &ae)
				require.Equal(t, "ThrottlingException", ae.ErrorCode())
				failed = append(failed, i)
			}
		}
		assert.Equal(t, 200, sim.Calls("ECS.DescribeClusters"))
		runs = append(runs, failed)
	}
	assert.Equal(t, runs[0], runs[1])
	assert.InDelta(t, 60, len(runs[0]), 15, "about 30 %% of 200")
	assert.False(t, slices.Equal(runs[0][:5], []int{0, 1, 2, 3, 4}), "spread out, not the first ones")
}
