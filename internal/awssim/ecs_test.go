package awssim_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/smithy-go"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/awssim"
	"github.com/vmctl/vmctl/internal/awssim/simtest"
	"github.com/vmctl/vmctl/internal/dockertest"
)

const (
	computeKey     = "AKIACOMPUTE"
	computeAccount = "222222222222"
)

// computeSim is a simulator with one user, closed when the test ends.
func computeSim(t *testing.T) *awssim.Sim {
	t.Helper()
	sim := awssim.New()
	t.Cleanup(sim.Close)
	sim.AddUser(computeKey, awssim.Principal{Account: computeAccount, ARN: "arn:aws:iam::" + computeAccount + ":user/ci"})
	return sim
}

// computeDockerSim is a simulator whose tasks run on the local Docker Engine. When
// the test ends, after the simulator closes, no container it started may
// be left.
func computeDockerSim(t *testing.T) (*awssim.Sim, *client.Client) {
	t.Helper()
	api := dockertest.Client(t)
	dockertest.FixtureImageBuilt(t, api)
	sim := awssim.New()
	t.Cleanup(func() {
		left, err := api.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", awssim.LabelSim+"="+sim.ID))})
		require.NoError(t, err)
		assert.Empty(t, left, "containers of the simulator outlived it")
	})
	t.Cleanup(sim.Close)
	sim.AddUser(computeKey, awssim.Principal{Account: computeAccount, ARN: "arn:aws:iam::" + computeAccount + ":user/ci"})
	sim.UseDocker(api)
	return sim, api
}

func computeErrCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func newECS(t *testing.T, sim *awssim.Sim) *ecs.Client {
	return ecs.NewFromConfig(simtest.Config(t, sim, computeKey))
}

// computeEventually polls cond until it holds; on timeout the test fails with
// cond's last word on why not.
func computeEventually(t *testing.T, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	why := ""
	for {
		ok, w := cond()
		if ok {
			return
		}
		why = w
		if time.Now().After(deadline) {
			t.Fatalf("not after %s: %s", timeout, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var awsvpcNetwork = &ecstypes.NetworkConfiguration{AwsvpcConfiguration: &ecstypes.AwsVpcConfiguration{Subnets: []string{"subnet-1"}}}

// demoTaskDef is a Fargate task definition of the demo program listening on
// 8080, with its in-container health check, logging to awslogs.
func demoTaskDef(family, image string, env ...string) *ecs.RegisterTaskDefinitionInput {
	vars := []ecstypes.KeyValuePair{{Name: sdkaws.String("DEMO_PORT"), Value: sdkaws.String("8080")}, {Name: sdkaws.String("DEMO_NAME"), Value: sdkaws.String(family)}}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars = append(vars, ecstypes.KeyValuePair{Name: sdkaws.String(k), Value: sdkaws.String(v)})
	}
	return &ecs.RegisterTaskDefinitionInput{
		Family:                  sdkaws.String(family),
		NetworkMode:             ecstypes.NetworkModeAwsvpc,
		RequiresCompatibilities: []ecstypes.Compatibility{ecstypes.CompatibilityFargate},
		Cpu:                     sdkaws.String("256"),
		Memory:                  sdkaws.String("512"),
		ContainerDefinitions: []ecstypes.ContainerDefinition{{
			Name:         sdkaws.String("web"),
			Image:        sdkaws.String(image),
			Essential:    sdkaws.Bool(true),
			PortMappings: []ecstypes.PortMapping{{ContainerPort: sdkaws.Int32(8080)}},
			Environment:  vars,
			HealthCheck: &ecstypes.HealthCheck{
				Command:  []string{"CMD", "/vmctl-demo", "healthcheck", "http://127.0.0.1:8080/health"},
				Interval: sdkaws.Int32(5), Timeout: sdkaws.Int32(2), Retries: sdkaws.Int32(2),
			},
			LogConfiguration: &ecstypes.LogConfiguration{LogDriver: ecstypes.LogDriverAwslogs, Options: map[string]string{
				"awslogs-group": "/vmctl/test", "awslogs-region": "ap-northeast-1", "awslogs-stream-prefix": "web",
			}},
		}},
	}
}

func TestECSTaskDefinitions(t *testing.T) {
	sim := computeSim(t)
	c := newECS(t, sim)
	ctx := context.Background()

	in := demoTaskDef("web", "vmctl-fixture:test")
	in.Tags = []ecstypes.Tag{{Key: sdkaws.String("vmctl:service"), Value: sdkaws.String("web")}}
	one, err := c.RegisterTaskDefinition(ctx, in)
	require.NoError(t, err)
	td := one.TaskDefinition
	assert.Equal(t, "arn:aws:ecs:ap-northeast-1:"+computeAccount+":task-definition/web:1", sdkaws.ToString(td.TaskDefinitionArn))
	assert.Equal(t, int32(1), td.Revision)
	assert.Equal(t, ecstypes.TaskDefinitionStatusActive, td.Status)
	assert.Equal(t, []ecstypes.Compatibility{ecstypes.CompatibilityEc2, ecstypes.CompatibilityFargate}, td.Compatibilities)
	assert.WithinDuration(t, time.Now(), sdkaws.ToTime(td.RegisteredAt), time.Minute)
	require.Len(t, td.ContainerDefinitions, 1)
	cd := td.ContainerDefinitions[0]
	assert.Equal(t, int32(8080), sdkaws.ToInt32(cd.PortMappings[0].HostPort), "awsvpcNetwork: the host port is the container port")
	assert.Equal(t, ecstypes.TransportProtocolTcp, cd.PortMappings[0].Protocol)
	assert.Equal(t, int32(5), sdkaws.ToInt32(cd.HealthCheck.Interval))
	assert.Equal(t, "/vmctl/test", cd.LogConfiguration.Options["awslogs-group"])
	assert.Len(t, one.Tags, 1)

	in.ContainerDefinitions[0].Environment = append(in.ContainerDefinitions[0].Environment, ecstypes.KeyValuePair{Name: sdkaws.String("DEMO_FAIL"), Value: sdkaws.String("exit")})
	two, err := c.RegisterTaskDefinition(ctx, in)
	require.NoError(t, err)
	assert.Equal(t, int32(2), two.TaskDefinition.Revision)

	for ref, want := range map[string]int32{"web": 2, "web:1": 1, sdkaws.ToString(td.TaskDefinitionArn): 1} {
		out, err := c.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: sdkaws.String(ref), Include: []ecstypes.TaskDefinitionField{ecstypes.TaskDefinitionFieldTags}})
		require.NoError(t, err, ref)
		assert.Equal(t, want, out.TaskDefinition.Revision, ref)
		assert.Len(t, out.Tags, 1)
	}

	dereg, err := c.DeregisterTaskDefinition(ctx, &ecs.DeregisterTaskDefinitionInput{TaskDefinition: sdkaws.String("web:2")})
	require.NoError(t, err)
	assert.Equal(t, ecstypes.TaskDefinitionStatusInactive, dereg.TaskDefinition.Status)
	assert.NotNil(t, dereg.TaskDefinition.DeregisteredAt)
	out, err := c.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: sdkaws.String("web")})
	require.NoError(t, err)
	assert.Equal(t, int32(1), out.TaskDefinition.Revision, "a family names its latest ACTIVE revision")

	_, err = c.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: sdkaws.String("nope")})
	assert.Equal(t, "ClientException", computeErrCode(err))
	_, err = c.DeregisterTaskDefinition(ctx, &ecs.DeregisterTaskDefinitionInput{TaskDefinition: sdkaws.String("web")})
	assert.Equal(t, "ClientException", computeErrCode(err), "deregistering needs a revision")

	// What ECS refuses at registration.
	bad := map[string]func(*ecs.RegisterTaskDefinitionInput){
		"Fargate size": func(in *ecs.RegisterTaskDefinitionInput) {
			in.Cpu, in.Memory = sdkaws.String("2048"), sdkaws.String("1024")
		},
		"Fargate network": func(in *ecs.RegisterTaskDefinitionInput) { in.NetworkMode = ecstypes.NetworkModeBridge },
		"Fargate GPU": func(in *ecs.RegisterTaskDefinitionInput) {
			in.ContainerDefinitions[0].ResourceRequirements = []ecstypes.ResourceRequirement{{Type: ecstypes.ResourceTypeGpu, Value: sdkaws.String("1")}}
		},
		"awsvpcNetwork ports": func(in *ecs.RegisterTaskDefinitionInput) {
			in.ContainerDefinitions[0].PortMappings[0].HostPort = sdkaws.Int32(80)
		},
		"health interval": func(in *ecs.RegisterTaskDefinitionInput) {
			in.ContainerDefinitions[0].HealthCheck.Interval = sdkaws.Int32(1)
		},
		"placement expression": func(in *ecs.RegisterTaskDefinitionInput) {
			in.RequiresCompatibilities = []ecstypes.Compatibility{ecstypes.CompatibilityEc2}
			in.PlacementConstraints = []ecstypes.TaskDefinitionPlacementConstraint{{Type: ecstypes.TaskDefinitionPlacementConstraintTypeMemberOf, Expression: sdkaws.String("task:group == x")}}
		},
		"no essential container": func(in *ecs.RegisterTaskDefinitionInput) {
			in.ContainerDefinitions[0].Essential = sdkaws.Bool(false)
		},
	}
	for name, mutate := range bad {
		in := demoTaskDef("bad", "vmctl-fixture:test")
		mutate(in)
		_, err := c.RegisterTaskDefinition(ctx, in)
		assert.Equal(t, "ClientException", computeErrCode(err), name)
	}
}

func TestECSErrors(t *testing.T) {
	sim := computeSim(t)
	sim.CreateCluster("vmctl-dev")
	c := newECS(t, sim)
	ctx := context.Background()
	_, err := c.RegisterTaskDefinition(ctx, demoTaskDef("web", "vmctl-fixture:test"))
	require.NoError(t, err)
	create := func(cluster, name, td string) error {
		_, err := c.CreateService(ctx, &ecs.CreateServiceInput{
			Cluster: sdkaws.String(cluster), ServiceName: sdkaws.String(name), TaskDefinition: sdkaws.String(td),
			DesiredCount: sdkaws.Int32(0), LaunchType: ecstypes.LaunchTypeFargate, NetworkConfiguration: awsvpcNetwork,
		})
		return err
	}

	assert.Equal(t, "ClusterNotFoundException", computeErrCode(create("nope", "web", "web")))
	assert.Equal(t, "InvalidParameterException", computeErrCode(create("vmctl-dev", "web", "nope")), "unknown task definition")
	require.NoError(t, create("vmctl-dev", "web", "web"))
	assert.Equal(t, "InvalidParameterException", computeErrCode(create("vmctl-dev", "web", "web")), "not idempotent")
	_, err = c.CreateService(ctx, &ecs.CreateServiceInput{Cluster: sdkaws.String("vmctl-dev"), ServiceName: sdkaws.String("nonet"), TaskDefinition: sdkaws.String("web"), LaunchType: ecstypes.LaunchTypeFargate})
	assert.Equal(t, "InvalidParameterException", computeErrCode(err), "awsvpc wants a network configuration")
	_, err = c.CreateService(ctx, &ecs.CreateServiceInput{
		Cluster: sdkaws.String("vmctl-dev"), ServiceName: sdkaws.String("gpu"), TaskDefinition: sdkaws.String("web"), NetworkConfiguration: awsvpcNetwork,
		CapacityProviderStrategy: []ecstypes.CapacityProviderStrategyItem{{CapacityProvider: sdkaws.String("vmctl-dev-gpu"), Weight: 1}},
	})
	assert.Equal(t, "InvalidParameterException", computeErrCode(err), "a capacity provider the cluster does not have")
	_, err = c.CreateService(ctx, &ecs.CreateServiceInput{
		Cluster: sdkaws.String("vmctl-dev"), ServiceName: sdkaws.String("lb"), TaskDefinition: sdkaws.String("web"), NetworkConfiguration: awsvpcNetwork,
		LaunchType:    ecstypes.LaunchTypeFargate,
		LoadBalancers: []ecstypes.LoadBalancer{{TargetGroupArn: sdkaws.String("arn:aws:elasticloadbalancing:ap-northeast-1:1:targetgroup/x/0123456789abcdef"), ContainerName: sdkaws.String("web"), ContainerPort: sdkaws.Int32(8080)}},
	})
	assert.Equal(t, "InvalidParameterException", computeErrCode(err), "an unknown target group")

	_, err = c.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: sdkaws.String("vmctl-dev"), Service: sdkaws.String("nope"), DesiredCount: sdkaws.Int32(1)})
	assert.Equal(t, "ServiceNotFoundException", computeErrCode(err))
	_, err = c.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: sdkaws.String("nope"), Service: sdkaws.String("web")})
	assert.Equal(t, "ClusterNotFoundException", computeErrCode(err))
	_, err = c.ListTasks(ctx, &ecs.ListTasksInput{Cluster: sdkaws.String("vmctl-dev"), ServiceName: sdkaws.String("nope")})
	assert.Equal(t, "ServiceNotFoundException", computeErrCode(err))
	_, err = c.StopTask(ctx, &ecs.StopTaskInput{Cluster: sdkaws.String("vmctl-dev"), Task: sdkaws.String("0123")})
	assert.Equal(t, "InvalidParameterException", computeErrCode(err))

	ds, err := c.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: sdkaws.String("vmctl-dev"), Services: []string{"web", "nope"}})
	require.NoError(t, err)
	require.Len(t, ds.Services, 1)
	require.Len(t, ds.Failures, 1)
	assert.Equal(t, "MISSING", sdkaws.ToString(ds.Failures[0].Reason))
	assert.Equal(t, "arn:aws:ecs:ap-northeast-1:"+computeAccount+":service/vmctl-dev/nope", sdkaws.ToString(ds.Failures[0].Arn))
	svc := ds.Services[0]
	assert.Equal(t, "arn:aws:ecs:ap-northeast-1:"+computeAccount+":service/vmctl-dev/web", sdkaws.ToString(svc.ServiceArn))
	assert.Equal(t, "arn:aws:ecs:ap-northeast-1:"+computeAccount+":cluster/vmctl-dev", sdkaws.ToString(svc.ClusterArn))
	assert.Equal(t, "ACTIVE", sdkaws.ToString(svc.Status))
	require.Len(t, svc.Deployments, 1)
	assert.True(t, strings.HasPrefix(sdkaws.ToString(svc.Deployments[0].Id), "ecs-svc/"))

	// With nothing to run, the deployment completes at once.
	computeEventually(t, 5*time.Second, func() (bool, string) {
		ds, err := c.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: sdkaws.String("vmctl-dev"), Services: []string{"web"}})
		require.NoError(t, err)
		d := ds.Services[0].Deployments[0]
		return d.RolloutState == ecstypes.DeploymentRolloutStateCompleted, string(d.RolloutState)
	})

	dc, err := c.DescribeClusters(ctx, &ecs.DescribeClustersInput{Clusters: []string{"vmctl-dev", "nope"}})
	require.NoError(t, err)
	require.Len(t, dc.Clusters, 1)
	assert.Equal(t, int32(1), dc.Clusters[0].ActiveServicesCount)
	assert.Equal(t, "MISSING", sdkaws.ToString(dc.Failures[0].Reason))

	calls := sim.Calls("ECS.DescribeServices")

	// Deleted, a service is no longer active.
	_, err = c.DeleteService(ctx, &ecs.DeleteServiceInput{Cluster: sdkaws.String("vmctl-dev"), Service: sdkaws.String("web")})
	require.NoError(t, err)
	_, err = c.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: sdkaws.String("vmctl-dev"), Service: sdkaws.String("web"), DesiredCount: sdkaws.Int32(1)})
	assert.Equal(t, "ServiceNotActiveException", computeErrCode(err))

	// Throttling reaches the SDK as AWS sends it, and its retryer retries.
	sim.InjectFault("ECS.DescribeServices", awssim.Fault{Throttle: true, Times: 2})
	_, err = c.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: sdkaws.String("vmctl-dev"), Services: []string{"web"}})
	require.NoError(t, err)
	assert.Equal(t, 3, sim.Calls("ECS.DescribeServices")-calls)

	// Unknown keys and unknown operations are refused as AWS refuses them.
	_, err = ecs.NewFromConfig(simtest.Config(t, sim, "AKIASTRANGER")).ListServices(ctx, &ecs.ListServicesInput{})
	assert.Equal(t, "UnrecognizedClientException", computeErrCode(err))
	_, err = c.ListClusters(ctx, &ecs.ListClustersInput{})
	assert.Equal(t, "UnknownOperationException", computeErrCode(err))
}

func TestECSListServicesPages(t *testing.T) {
	sim := computeSim(t)
	sim.CreateCluster("default")
	c := newECS(t, sim)
	ctx := context.Background()
	_, err := c.RegisterTaskDefinition(ctx, demoTaskDef("web", "vmctl-fixture:test"))
	require.NoError(t, err)
	for i := range 12 {
		_, err := c.CreateService(ctx, &ecs.CreateServiceInput{ServiceName: sdkaws.String(fmt.Sprintf("svc-%02d", i)), TaskDefinition: sdkaws.String("web"), LaunchType: ecstypes.LaunchTypeFargate, NetworkConfiguration: awsvpcNetwork})
		require.NoError(t, err)
	}
	var all []string
	p := ecs.NewListServicesPaginator(c, &ecs.ListServicesInput{})
	pages := 0
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		require.NoError(t, err)
		all = append(all, out.ServiceArns...)
		pages++
	}
	assert.Len(t, all, 12)
	assert.Equal(t, 2, pages, "ten to a page, as ECS lists services")
}

// describeTask describes one task.
func describeTask(t *testing.T, c *ecs.Client, cluster, arn string) ecstypes.Task {
	t.Helper()
	out, err := c.DescribeTasks(context.Background(), &ecs.DescribeTasksInput{Cluster: sdkaws.String(cluster), Tasks: []string{arn}})
	require.NoError(t, err)
	require.Len(t, out.Tasks, 1)
	return out.Tasks[0]
}

func TestECSRunTaskRunsAContainer(t *testing.T) {
	sim, api := computeDockerSim(t)
	sim.CreateCluster("default")
	c := newECS(t, sim)
	ctx := context.Background()
	_, err := c.RegisterTaskDefinition(ctx, demoTaskDef("web", dockertest.FixtureImage))
	require.NoError(t, err)

	run, err := c.RunTask(ctx, &ecs.RunTaskInput{TaskDefinition: sdkaws.String("web"), LaunchType: ecstypes.LaunchTypeFargate, NetworkConfiguration: awsvpcNetwork, StartedBy: sdkaws.String("vmctl")})
	require.NoError(t, err)
	require.Len(t, run.Tasks, 1)
	arn := sdkaws.ToString(run.Tasks[0].TaskArn)
	assert.Equal(t, "PROVISIONING", sdkaws.ToString(run.Tasks[0].LastStatus))

	var task ecstypes.Task
	computeEventually(t, 30*time.Second, func() (bool, string) {
		task = describeTask(t, c, "default", arn)
		return sdkaws.ToString(task.LastStatus) == "RUNNING" && task.HealthStatus == ecstypes.HealthStatusHealthy,
			fmt.Sprintf("%s %s %s", sdkaws.ToString(task.LastStatus), task.HealthStatus, sdkaws.ToString(task.StoppedReason))
	})
	assert.Equal(t, "vmctl", sdkaws.ToString(task.StartedBy))
	assert.Equal(t, ecstypes.LaunchTypeFargate, task.LaunchType)
	assert.Equal(t, "arn:aws:ecs:ap-northeast-1:"+computeAccount+":task-definition/web:1", sdkaws.ToString(task.TaskDefinitionArn))
	require.Len(t, task.Containers, 1)
	ct := task.Containers[0]
	assert.Equal(t, ecstypes.HealthStatusHealthy, ct.HealthStatus)
	assert.Equal(t, "RUNNING", sdkaws.ToString(ct.LastStatus))
	assert.True(t, strings.HasPrefix(sdkaws.ToString(ct.ImageDigest), "sha256:"), sdkaws.ToString(ct.ImageDigest))
	require.Len(t, ct.NetworkBindings, 1)
	port := sdkaws.ToInt32(ct.NetworkBindings[0].HostPort)

	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Contains(t, string(body), "web (vmctl demo)", "the task's container port is published on 127.0.0.1")

	info, err := api.ContainerInspect(ctx, sdkaws.ToString(ct.RuntimeId))
	require.NoError(t, err)
	id := arn[strings.LastIndex(arn, "/")+1:]
	assert.Equal(t, map[string]string{
		awssim.LabelSim: sim.ID, "awssim.task-arn": arn, "awssim.cluster": "default", "awssim.container": "web",
		awssim.LabelLogGroup: "/vmctl/test", awssim.LabelLogStream: "web/web/" + id,
	}, info.Config.Labels)
	assert.Contains(t, info.Config.Env, "DEMO_PORT=8080")

	_, err = c.StopTask(ctx, &ecs.StopTaskInput{Task: sdkaws.String(arn), Reason: sdkaws.String("done")})
	require.NoError(t, err)
	computeEventually(t, 30*time.Second, func() (bool, string) {
		task = describeTask(t, c, "default", arn)
		return sdkaws.ToString(task.LastStatus) == "STOPPED", sdkaws.ToString(task.LastStatus)
	})
	assert.Equal(t, ecstypes.TaskStopCodeUserInitiated, task.StopCode)
	assert.Equal(t, "done", sdkaws.ToString(task.StoppedReason))
	assert.Equal(t, int32(0), sdkaws.ToInt32(task.Containers[0].ExitCode), "the demo stops cleanly on SIGTERM")
	stopped, err := c.ListTasks(ctx, &ecs.ListTasksInput{DesiredStatus: ecstypes.DesiredStatusStopped})
	require.NoError(t, err)
	assert.Equal(t, []string{arn}, stopped.TaskArns)

	// A one-off task with a command override runs to its exit code.
	run, err = c.RunTask(ctx, &ecs.RunTaskInput{
		TaskDefinition: sdkaws.String("web"), LaunchType: ecstypes.LaunchTypeFargate, NetworkConfiguration: awsvpcNetwork,
		Overrides: &ecstypes.TaskOverride{ContainerOverrides: []ecstypes.ContainerOverride{{Name: sdkaws.String("web"), Command: []string{"cuda-check"}}}},
	})
	require.NoError(t, err)
	arn = sdkaws.ToString(run.Tasks[0].TaskArn)
	computeEventually(t, 30*time.Second, func() (bool, string) {
		task = describeTask(t, c, "default", arn)
		return sdkaws.ToString(task.LastStatus) == "STOPPED", sdkaws.ToString(task.LastStatus)
	})
	assert.Equal(t, ecstypes.TaskStopCodeEssentialContainerExited, task.StopCode)
	assert.Equal(t, "Essential container in task exited", sdkaws.ToString(task.StoppedReason))
	assert.Equal(t, int32(1), sdkaws.ToInt32(task.Containers[0].ExitCode), "cuda-check finds no GPU")

	// An image nobody has cannot be pulled.
	_, err = c.RegisterTaskDefinition(ctx, demoTaskDef("ghost", "127.0.0.1:1/ghost@sha256:"+strings.Repeat("0", 64)))
	require.NoError(t, err)
	run, err = c.RunTask(ctx, &ecs.RunTaskInput{TaskDefinition: sdkaws.String("ghost"), LaunchType: ecstypes.LaunchTypeFargate, NetworkConfiguration: awsvpcNetwork})
	require.NoError(t, err)
	arn = sdkaws.ToString(run.Tasks[0].TaskArn)
	computeEventually(t, 30*time.Second, func() (bool, string) {
		task = describeTask(t, c, "default", arn)
		return sdkaws.ToString(task.LastStatus) == "STOPPED", sdkaws.ToString(task.LastStatus)
	})
	assert.Equal(t, ecstypes.TaskStopCodeTaskFailedToStart, task.StopCode)
	assert.Contains(t, sdkaws.ToString(task.StoppedReason), "CannotPullContainerError")
}

func TestECSContainerInstancesAndGPUPlacement(t *testing.T) {
	sim, _ := computeDockerSim(t)
	sim.AddAutoScalingGroup("vmctl-dev-gpu", 1, 2, 1, awssim.Instance{InstanceType: "g4dn.xlarge", GPU: awssim.T4()})
	sim.AddAutoScalingGroup("vmctl-dev-cpu", 1, 1, 1, awssim.Instance{InstanceType: "m5.large"})
	sim.RegisterContainerInstances("vmctl-dev", "vmctl-dev-gpu")
	sim.RegisterContainerInstances("vmctl-dev", "vmctl-dev-cpu")
	c := newECS(t, sim)
	ctx := context.Background()
	cluster := sdkaws.String("vmctl-dev")

	list, err := c.ListContainerInstances(ctx, &ecs.ListContainerInstancesInput{Cluster: cluster})
	require.NoError(t, err)
	require.Len(t, list.ContainerInstanceArns, 2)
	desc, err := c.DescribeContainerInstances(ctx, &ecs.DescribeContainerInstancesInput{Cluster: cluster, ContainerInstances: list.ContainerInstanceArns})
	require.NoError(t, err)
	byProvider := map[string]ecstypes.ContainerInstance{}
	for _, ci := range desc.ContainerInstances {
		byProvider[sdkaws.ToString(ci.CapacityProviderName)] = ci
	}
	gpuHost := byProvider["vmctl-dev-gpu"]
	resource := func(rs []ecstypes.Resource, name string) ecstypes.Resource {
		i := slices.IndexFunc(rs, func(r ecstypes.Resource) bool { return sdkaws.ToString(r.Name) == name })
		if i < 0 {
			return ecstypes.Resource{}
		}
		return rs[i]
	}
	assert.Equal(t, int32(4096), resource(gpuHost.RegisteredResources, "CPU").IntegerValue)
	assert.Equal(t, int32(15728), resource(gpuHost.RegisteredResources, "MEMORY").IntegerValue, "ECS registers a little less memory than the instance has")
	gpus := resource(gpuHost.RegisteredResources, "GPU")
	assert.Equal(t, "STRINGSET", sdkaws.ToString(gpus.Type))
	require.Len(t, gpus.StringSetValue, 1)
	assert.True(t, strings.HasPrefix(gpus.StringSetValue[0], "GPU-"))
	assert.Empty(t, resource(byProvider["vmctl-dev-cpu"].RegisteredResources, "GPU").Name, "no GPU, no GPU resource")
	assert.True(t, gpuHost.AgentConnected)
	assert.Contains(t, sdkaws.ToString(gpuHost.Ec2InstanceId), "i-")

	filtered, err := c.ListContainerInstances(ctx, &ecs.ListContainerInstancesInput{Cluster: cluster, Filter: sdkaws.String("attribute:ecs.instance-type == g4dn.xlarge")})
	require.NoError(t, err)
	assert.Equal(t, []string{sdkaws.ToString(gpuHost.ContainerInstanceArn)}, filtered.ContainerInstanceArns)

	gpuTask := func(family string, memory string) {
		in := demoTaskDef(family, dockertest.FixtureImage)
		in.RequiresCompatibilities = []ecstypes.Compatibility{ecstypes.CompatibilityEc2}
		in.Cpu, in.Memory = sdkaws.String("1024"), sdkaws.String(memory)
		in.ContainerDefinitions[0].ResourceRequirements = []ecstypes.ResourceRequirement{{Type: ecstypes.ResourceTypeGpu, Value: sdkaws.String("1")}}
		_, err := c.RegisterTaskDefinition(ctx, in)
		require.NoError(t, err)
	}
	gpuTask("openvoice", "4096")
	gpuTask("openvoice-16g", "16384")

	// The CPU hosts have no GPU to give.
	run, err := c.RunTask(ctx, &ecs.RunTaskInput{Cluster: cluster, TaskDefinition: sdkaws.String("openvoice"), NetworkConfiguration: awsvpcNetwork,
		CapacityProviderStrategy: []ecstypes.CapacityProviderStrategyItem{{CapacityProvider: sdkaws.String("vmctl-dev-cpu"), Weight: 1}}})
	require.NoError(t, err)
	assert.Empty(t, run.Tasks)
	require.Len(t, run.Failures, 1)
	assert.Equal(t, "RESOURCE:GPU", sdkaws.ToString(run.Failures[0].Reason))

	// 16 GiB does not fit a g4dn.xlarge, whose agent registers less.
	run, err = c.RunTask(ctx, &ecs.RunTaskInput{Cluster: cluster, TaskDefinition: sdkaws.String("openvoice-16g"), NetworkConfiguration: awsvpcNetwork,
		CapacityProviderStrategy: []ecstypes.CapacityProviderStrategyItem{{CapacityProvider: sdkaws.String("vmctl-dev-gpu"), Weight: 1}}})
	require.NoError(t, err)
	require.Len(t, run.Failures, 1)
	assert.Equal(t, "RESOURCE:MEMORY", sdkaws.ToString(run.Failures[0].Reason))

	// A service of the GPU task on the GPU hosts' capacity provider runs there.
	_, err = c.CreateService(ctx, &ecs.CreateServiceInput{
		Cluster: cluster, ServiceName: sdkaws.String("openvoice"), TaskDefinition: sdkaws.String("openvoice"), DesiredCount: sdkaws.Int32(1),
		NetworkConfiguration:     awsvpcNetwork,
		CapacityProviderStrategy: []ecstypes.CapacityProviderStrategyItem{{CapacityProvider: sdkaws.String("vmctl-dev-gpu"), Weight: 1}},
		PlacementConstraints:     []ecstypes.PlacementConstraint{{Type: ecstypes.PlacementConstraintTypeDistinctInstance}},
	})
	require.NoError(t, err)
	var svc ecstypes.Service
	computeEventually(t, 30*time.Second, func() (bool, string) {
		out, err := c.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: cluster, Services: []string{"openvoice"}})
		require.NoError(t, err)
		svc = out.Services[0]
		return svc.Deployments[0].RolloutState == ecstypes.DeploymentRolloutStateCompleted, fmt.Sprint(svc.Deployments[0].RolloutState, " ", serviceEventLog(svc.Events))
	})
	tasks, err := c.ListTasks(ctx, &ecs.ListTasksInput{Cluster: cluster, ServiceName: sdkaws.String("openvoice")})
	require.NoError(t, err)
	require.Len(t, tasks.TaskArns, 1)
	task := describeTask(t, c, "vmctl-dev", tasks.TaskArns[0])
	assert.Equal(t, sdkaws.ToString(gpuHost.ContainerInstanceArn), sdkaws.ToString(task.ContainerInstanceArn))
	assert.Equal(t, gpus.StringSetValue, task.Containers[0].GpuIds)
	assert.Equal(t, "vmctl-dev-gpu", sdkaws.ToString(task.CapacityProviderName))
	assert.Equal(t, "service:openvoice", sdkaws.ToString(task.Group))

	desc, err = c.DescribeContainerInstances(ctx, &ecs.DescribeContainerInstancesInput{Cluster: cluster, ContainerInstances: []string{sdkaws.ToString(gpuHost.ContainerInstanceArn)}})
	require.NoError(t, err)
	assert.Empty(t, resource(desc.ContainerInstances[0].RemainingResources, "GPU").StringSetValue, "its GPU is taken")
	assert.Equal(t, int32(1), desc.ContainerInstances[0].RunningTasksCount)

	// A second task finds no free GPU: the scheduler says so in the events.
	_, err = c.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: cluster, Service: sdkaws.String("openvoice"), DesiredCount: sdkaws.Int32(2)})
	require.NoError(t, err)
	computeEventually(t, 10*time.Second, func() (bool, string) {
		out, err := c.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: cluster, Services: []string{"openvoice"}})
		require.NoError(t, err)
		for _, e := range out.Services[0].Events {
			if strings.Contains(sdkaws.ToString(e.Message), "(service openvoice) was unable to place a task because no container instance met all of its requirements.") {
				return true, ""
			}
		}
		return false, serviceEventLog(out.Services[0].Events)
	})

	// The group scales out: the new instance joins the cluster and takes the task.
	sim.AddAutoScalingGroup("vmctl-dev-gpu", 1, 2, 2, awssim.Instance{InstanceType: "g4dn.xlarge", GPU: awssim.T4()})
	computeEventually(t, 30*time.Second, func() (bool, string) {
		out, err := c.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: cluster, Services: []string{"openvoice"}})
		require.NoError(t, err)
		return out.Services[0].RunningCount == 2, fmt.Sprint(out.Services[0].RunningCount, " running")
	})
}

// serviceEventLog lists service events, newest first, for failure messages.
func serviceEventLog(events []ecstypes.ServiceEvent) string {
	var out []string
	for _, e := range events {
		out = append(out, sdkaws.ToString(e.Message))
	}
	return strings.Join(out, "\n")
}

func TestECSServiceDeployments(t *testing.T) {
	sim, _ := computeDockerSim(t)
	sim.CreateCluster("vmctl-dev")
	sim.SetCircuitBreakerThreshold(2)
	c := newECS(t, sim)
	ctx := context.Background()
	cluster := sdkaws.String("vmctl-dev")
	good, err := c.RegisterTaskDefinition(ctx, demoTaskDef("web", dockertest.FixtureImage))
	require.NoError(t, err)
	bad, err := c.RegisterTaskDefinition(ctx, demoTaskDef("web", dockertest.FixtureImage, "DEMO_FAIL=unhealthy"))
	require.NoError(t, err)

	_, err = c.CreateService(ctx, &ecs.CreateServiceInput{
		Cluster: cluster, ServiceName: sdkaws.String("web"), TaskDefinition: good.TaskDefinition.TaskDefinitionArn,
		DesiredCount: sdkaws.Int32(2), LaunchType: ecstypes.LaunchTypeFargate, NetworkConfiguration: awsvpcNetwork,
		DeploymentConfiguration: &ecstypes.DeploymentConfiguration{DeploymentCircuitBreaker: &ecstypes.DeploymentCircuitBreaker{Enable: true}},
	})
	require.NoError(t, err)
	describe := func() ecstypes.Service {
		out, err := c.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: cluster, Services: []string{"web"}})
		require.NoError(t, err)
		return out.Services[0]
	}
	computeEventually(t, 60*time.Second, func() (bool, string) {
		svc := describe()
		d := svc.Deployments[0]
		return d.RolloutState == ecstypes.DeploymentRolloutStateCompleted, fmt.Sprint(d.RolloutState, " ", sdkaws.ToString(d.RolloutStateReason), "\n", serviceEventLog(svc.Events))
	})
	svc := describe()
	assert.Equal(t, int32(2), svc.RunningCount)
	assert.Equal(t, "ECS deployment "+sdkaws.ToString(svc.Deployments[0].Id)+" completed.", sdkaws.ToString(svc.Deployments[0].RolloutStateReason))
	assert.Equal(t, "(service web) has reached a steady state.", sdkaws.ToString(svc.Events[0].Message), "newest first")
	tasks, err := c.ListTasks(ctx, &ecs.ListTasksInput{Cluster: cluster, ServiceName: sdkaws.String("web")})
	require.NoError(t, err)
	require.Len(t, tasks.TaskArns, 2)
	first := tasks.TaskArns
	for _, arn := range first {
		task := describeTask(t, c, "vmctl-dev", arn)
		assert.Equal(t, ecstypes.HealthStatusHealthy, task.HealthStatus)
		assert.Equal(t, sdkaws.ToString(svc.Deployments[0].Id), sdkaws.ToString(task.StartedBy))
	}

	// A deployment whose tasks never turn healthy trips the circuit breaker;
	// without rollback it stays FAILED, launches nothing more, and the old
	// tasks keep serving.
	_, err = c.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: cluster, Service: sdkaws.String("web"), TaskDefinition: bad.TaskDefinition.TaskDefinitionArn})
	require.NoError(t, err)
	computeEventually(t, 60*time.Second, func() (bool, string) {
		svc = describe()
		d := svc.Deployments[0]
		return d.RolloutState == ecstypes.DeploymentRolloutStateFailed, fmt.Sprint(d.RolloutState, " ", d.FailedTasks, "\n", serviceEventLog(svc.Events))
	})
	assert.Equal(t, "ECS deployment circuit breaker: tasks failed to start.", sdkaws.ToString(svc.Deployments[0].RolloutStateReason))
	assert.GreaterOrEqual(t, svc.Deployments[0].FailedTasks, int32(2))
	require.Len(t, svc.Deployments, 2)
	assert.Equal(t, "ACTIVE", sdkaws.ToString(svc.Deployments[1].Status))
	assert.Equal(t, int32(2), svc.Deployments[1].RunningCount)
	assert.Contains(t, serviceEventLog(svc.Events), "failed container health checks")
	launched := func() int {
		n := 0
		for _, st := range []ecstypes.DesiredStatus{ecstypes.DesiredStatusRunning, ecstypes.DesiredStatusStopped} {
			out, err := c.ListTasks(ctx, &ecs.ListTasksInput{Cluster: cluster, StartedBy: svc.Deployments[0].Id, DesiredStatus: st})
			require.NoError(t, err)
			n += len(out.TaskArns)
		}
		return n
	}
	before := launched()
	time.Sleep(time.Second)
	assert.Equal(t, before, launched(), "a FAILED deployment launches no new tasks")
	running, err := c.ListTasks(ctx, &ecs.ListTasksInput{Cluster: cluster, ServiceName: sdkaws.String("web")})
	require.NoError(t, err)
	for _, arn := range first {
		assert.Contains(t, running.TaskArns, arn, "the first deployment's tasks still run")
	}

	// Fixed: a forced new deployment of the good definition completes and
	// the failed one's tasks go.
	_, err = c.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: cluster, Service: sdkaws.String("web"), TaskDefinition: good.TaskDefinition.TaskDefinitionArn, DesiredCount: sdkaws.Int32(1), ForceNewDeployment: true})
	require.NoError(t, err)
	computeEventually(t, 60*time.Second, func() (bool, string) {
		svc = describe()
		d := svc.Deployments[0]
		return d.RolloutState == ecstypes.DeploymentRolloutStateCompleted && len(svc.Deployments) == 1, fmt.Sprint(d.RolloutState, " ", len(svc.Deployments))
	})
	computeEventually(t, 30*time.Second, func() (bool, string) {
		running, err := c.ListTasks(ctx, &ecs.ListTasksInput{Cluster: cluster, ServiceName: sdkaws.String("web")})
		require.NoError(t, err)
		return len(running.TaskArns) == 1, strconv.Itoa(len(running.TaskArns))
	})

	// Deleting with force drains the service to INACTIVE.
	_, err = c.DeleteService(ctx, &ecs.DeleteServiceInput{Cluster: cluster, Service: sdkaws.String("web"), Force: sdkaws.Bool(true)})
	require.NoError(t, err)
	computeEventually(t, 30*time.Second, func() (bool, string) {
		svc = describe()
		return sdkaws.ToString(svc.Status) == "INACTIVE", sdkaws.ToString(svc.Status)
	})
	list, err := c.ListServices(ctx, &ecs.ListServicesInput{Cluster: cluster})
	require.NoError(t, err)
	assert.Empty(t, list.ServiceArns)
}

// A task whose container has no health check of its own but fails its
// target group's checks is replaced, and counts against its deployment.
func TestECSReplacesTasksFailingELBHealthChecks(t *testing.T) {
	sim, _ := computeDockerSim(t)
	sim.CreateCluster("default")
	sim.SetCircuitBreakerThreshold(2)
	lb := sim.CreateLoadBalancer("alb")
	tg := sim.CreateTargetGroup("web", "/health", 8080)
	require.NoError(t, sim.AttachTargetGroup(lb.ARN, tg.ARN))
	c := newECS(t, sim)
	ctx := context.Background()
	in := demoTaskDef("web", dockertest.FixtureImage, "DEMO_FAIL=unhealthy")
	in.ContainerDefinitions[0].HealthCheck = nil
	_, err := c.RegisterTaskDefinition(ctx, in)
	require.NoError(t, err)
	_, err = c.CreateService(ctx, &ecs.CreateServiceInput{
		ServiceName: sdkaws.String("web"), TaskDefinition: sdkaws.String("web"), DesiredCount: sdkaws.Int32(1),
		LaunchType: ecstypes.LaunchTypeFargate, NetworkConfiguration: awsvpcNetwork,
		LoadBalancers:           []ecstypes.LoadBalancer{{TargetGroupArn: sdkaws.String(tg.ARN), ContainerName: sdkaws.String("web"), ContainerPort: sdkaws.Int32(8080)}},
		DeploymentConfiguration: &ecstypes.DeploymentConfiguration{DeploymentCircuitBreaker: &ecstypes.DeploymentCircuitBreaker{Enable: true, Rollback: true}},
	})
	require.NoError(t, err)
	var svc ecstypes.Service
	computeEventually(t, 60*time.Second, func() (bool, string) {
		out, err := c.DescribeServices(ctx, &ecs.DescribeServicesInput{Services: []string{"web"}})
		require.NoError(t, err)
		svc = out.Services[0]
		return svc.Deployments[0].RolloutState == ecstypes.DeploymentRolloutStateFailed, serviceEventLog(svc.Events)
	})
	assert.Len(t, svc.Deployments, 1, "nothing completed before: nothing to roll back to")
	log := serviceEventLog(svc.Events)
	assert.Contains(t, log, "is unhealthy in (target-group "+tg.ARN+") due to (reason Health checks failed with these codes: [503]).")
	stopped, err := c.ListTasks(ctx, &ecs.ListTasksInput{DesiredStatus: ecstypes.DesiredStatusStopped})
	require.NoError(t, err)
	require.NotEmpty(t, stopped.TaskArns)
	task := describeTask(t, c, "default", stopped.TaskArns[0])
	assert.Equal(t, "Task failed ELB health checks in (target-group "+tg.ARN+")", sdkaws.ToString(task.StoppedReason))
	assert.Equal(t, ecstypes.HealthStatusUnknown, task.HealthStatus, "no container health check")
}
