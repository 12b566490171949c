package rollout

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/dockertest"
	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/infra"
	"github.com/vmctl/vmctl/internal/mototest"
	"github.com/vmctl/vmctl/internal/registry"
	"github.com/vmctl/vmctl/internal/release"
	"github.com/vmctl/vmctl/internal/stack"
)

// Against moto, an AWS written by others: what rollback may return to is read from the
// task definition history ECS keeps, and an override lands as a service tag (in any
// language) and as an event in the audit log group with its retention.
func TestControlPlaneOnMoto(t *testing.T) {
	m := mototest.Start(t, "333333333333")
	c := aws.NewClients(m.Config(t))
	ctx := context.Background()
	_, err := c.ECS.(*awsecs.Client).CreateCluster(ctx, &awsecs.CreateClusterInput{ClusterName: sdkaws.String("vmctl-prod")})
	require.NoError(t, err)
	register := func(release string) string {
		out, err := c.ECS.RegisterTaskDefinition(ctx, &awsecs.RegisterTaskDefinitionInput{
			Family:               sdkaws.String("vmctl-prod-backend"),
			ContainerDefinitions: []ecstypes.ContainerDefinition{{Name: sdkaws.String("backend"), Memory: sdkaws.Int32(512), Image: sdkaws.String("333333333333.dkr.ecr.ap-northeast-1.amazonaws.com/vmapp/backend@sha256:" + release)}},
			Tags:                 []ecstypes.Tag{{Key: sdkaws.String(ReleaseTag), Value: sdkaws.String(release)}},
		})
		require.NoError(t, err)
		return sdkaws.ToString(out.TaskDefinition.TaskDefinitionArn)
	}
	register("r1")
	r2 := register("r2")
	_, err = c.ECS.CreateService(ctx, &awsecs.CreateServiceInput{Cluster: sdkaws.String("vmctl-prod"), ServiceName: sdkaws.String("backend"), TaskDefinition: sdkaws.String(r2), DesiredCount: sdkaws.Int32(1)})
	require.NoError(t, err)
	plan := &ecs.Plan{Environment: "prod", Cluster: "vmctl-prod", Services: []ecs.Service{{Name: "backend"}},
		AuditLogGroup: ecs.LogGroup{Name: "/vmctl/prod/audit", RetentionDays: 365}}

	require.NoError(t, CheckRanBefore(ctx, c, plan, "r1"), "r1 ran before r2")
	require.NoError(t, CheckRanBefore(ctx, c, plan, "r2"), "r2 runs")
	err = CheckRanBefore(ctx, c, plan, "r9")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "backend never ran release r9 in prod (its last releases: r2, r1)")

	reason := "ベースイメージの修正待ち"
	o := Override{Environment: "prod", Release: "r2", Action: "deploy release r2 to prod", Reason: reason, By: "arn:aws:iam::333333333333:role/ci",
		At: time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC), Images: []registry.ImageScan{{Service: "backend", Digest: "sha256:r2", Status: "FAILED"}}}
	require.NoError(t, RecordOverride(ctx, c, plan, o))
	// A second override appends to the same group.
	require.NoError(t, RecordOverride(ctx, c, plan, o))

	svcs, err := c.ECS.DescribeServices(ctx, &awsecs.DescribeServicesInput{Cluster: sdkaws.String("vmctl-prod"), Services: []string{"backend"}})
	require.NoError(t, err)
	tags, err := c.ECS.(*awsecs.Client).ListTagsForResource(ctx, &awsecs.ListTagsForResourceInput{ResourceArn: svcs.Services[0].ServiceArn})
	require.NoError(t, err)
	got := map[string]string{}
	for _, tg := range tags.Tags {
		got[sdkaws.ToString(tg.Key)] = sdkaws.ToString(tg.Value)
	}
	assert.Equal(t, "r2: "+reason, got[TagAllowVulnerable])

	logs := cloudwatchlogs.NewFromConfig(m.Config(t))
	groups, err := logs.DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{LogGroupNamePrefix: sdkaws.String("/vmctl/prod/audit")})
	require.NoError(t, err)
	require.Len(t, groups.LogGroups, 1)
	assert.Equal(t, int32(365), sdkaws.ToInt32(groups.LogGroups[0].RetentionInDays))
	events, err := logs.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: sdkaws.String("/vmctl/prod/audit")})
	require.NoError(t, err)
	require.Len(t, events.Events, 2)
	var audit Override
	require.NoError(t, json.Unmarshal([]byte(sdkaws.ToString(events.Events[0].Message)), &audit))
	assert.Equal(t, reason, audit.Reason)
	assert.Equal(t, "allow-vulnerable", audit.Event)
}

// A deploy to dev out of hours keeps it stopped: the scalable target at the stop action's
// 0–0 is as planned, and only a range nothing planned is registered again.
func TestDeployLeavesAScheduledStopAlone(t *testing.T) {
	m := mototest.Start(t, "111111111111")
	c := aws.NewClients(m.Config(t))
	ctx := context.Background()
	st, err := stack.Load(ctx, stack.LoadOptions{Files: []string{filepath.Join(dockertest.RepoRoot(), "compose", "demo.yaml")}})
	require.NoError(t, err)
	env, err := environment.LoadNamed(filepath.Join(dockertest.RepoRoot(), "environments"), "dev")
	require.NoError(t, err)
	plan, err := ecs.Render(st, infra.Offline(env), release.Release{})
	require.NoError(t, err)
	svc := plan.Services[0]
	require.Len(t, svc.Scaling.Schedule, 2, "dev is stopped out of hours")
	d := &deployer{c: c, plan: plan}
	// Application Auto Scaling checks the service exists.
	_, err = c.ECS.(*awsecs.Client).CreateCluster(ctx, &awsecs.CreateClusterInput{ClusterName: sdkaws.String(plan.Cluster)})
	require.NoError(t, err)
	td, err := c.ECS.RegisterTaskDefinition(ctx, &awsecs.RegisterTaskDefinitionInput{Family: sdkaws.String("f"),
		ContainerDefinitions: []ecstypes.ContainerDefinition{{Name: sdkaws.String("c"), Memory: sdkaws.Int32(512), Image: sdkaws.String("i")}}})
	require.NoError(t, err)
	_, err = c.ECS.CreateService(ctx, &awsecs.CreateServiceInput{Cluster: sdkaws.String(plan.Cluster), ServiceName: sdkaws.String(svc.Name), TaskDefinition: td.TaskDefinition.TaskDefinitionArn, DesiredCount: sdkaws.Int32(1)})
	require.NoError(t, err)

	register := func(lo, hi int32) {
		in := svc.Scaling.Target
		in.MinCapacity, in.MaxCapacity = sdkaws.Int32(lo), sdkaws.Int32(hi)
		_, err := c.Scaling.RegisterScalableTarget(ctx, &in)
		require.NoError(t, err)
	}
	for _, tc := range []struct {
		lo, hi int32
		write  bool
	}{
		{0, 0, false}, // stopped by the schedule
		{sdkaws.ToInt32(svc.Scaling.Target.MinCapacity), sdkaws.ToInt32(svc.Scaling.Target.MaxCapacity), false},
		{0, 7, true}, // changed by hand: the plan's range again
	} {
		register(tc.lo, tc.hi)
		w, err := d.scalingChanges(ctx, svc, false)
		require.NoError(t, err)
		assert.Equal(t, tc.write, w.target, "target at %d–%d", tc.lo, tc.hi)
	}
}
