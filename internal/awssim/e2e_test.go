package awssim_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/awssim"
	"github.com/vmctl/vmctl/internal/awssim/simtest"
	"github.com/vmctl/vmctl/internal/dockertest"
)

// pushToECR pushes a local image to a repository of the simulator's ECR
// the way `aws ecr get-login-password | docker login` and `docker push`
// do, and returns the digest the registry gave it.
func pushToECR(t *testing.T, sim *awssim.Sim, api *client.Client, c *ecr.Client, local, repo, tag string) string {
	t.Helper()
	ctx := context.Background()
	_, err := c.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: sdkaws.String(repo)})
	require.NoError(t, err)
	tok, err := c.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	require.NoError(t, err)
	raw, err := base64.StdEncoding.DecodeString(sdkaws.ToString(tok.AuthorizationData[0].AuthorizationToken))
	require.NoError(t, err)
	user, password, _ := strings.Cut(string(raw), ":")
	auth, err := registry.EncodeAuthConfig(registry.AuthConfig{Username: user, Password: password, ServerAddress: sim.RegistryHost()})
	require.NoError(t, err)

	ref := sim.RegistryHost() + "/" + repo + ":" + tag
	require.NoError(t, api.ImageTag(ctx, local, ref))
	t.Cleanup(func() { _, _ = api.ImageRemove(context.Background(), ref, image.RemoveOptions{}) })
	rc, err := api.ImagePush(ctx, ref, image.PushOptions{RegistryAuth: auth})
	require.NoError(t, err)
	defer rc.Close()
	digest := ""
	dec := json.NewDecoder(rc)
	for {
		var m jsonmessage.JSONMessage
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else {
			require.NoError(t, err)
		}
		require.Nil(t, m.Error, "push %s", ref)
		if m.Aux != nil {
			var aux struct{ Digest string }
			if json.Unmarshal(*m.Aux, &aux) == nil && aux.Digest != "" {
				digest = aux.Digest
			}
		}
	}
	require.True(t, strings.HasPrefix(digest, "sha256:"), "push reported no digest")
	return digest
}

// The end-to-end test: an image pushed with the Docker Engine to
// the simulator's ECR is deployed by digest to an ECS service behind a
// load balancer; the deployment completes, the target is healthy and the
// load balancer answers. Then a deployment of a task that crashes fails,
// the circuit breaker rolls it back, and the previous one serves again.
func TestEndToEndDeployAndRollback(t *testing.T) {
	sim, api := computeDockerSim(t)
	sim.SetCircuitBreakerThreshold(2)
	sim.CreateCluster("vmctl-e2e")
	ctx := context.Background()
	cfg := simtest.Config(t, sim, computeKey)
	ecsc, elb := ecs.NewFromConfig(cfg), elbv2.NewFromConfig(cfg)
	cluster := sdkaws.String("vmctl-e2e")

	digest := pushToECR(t, sim, api, ecr.NewFromConfig(cfg), dockertest.FixtureImage, "vmapp/web", "r1")

	// The task definition names the image as vmctl renders it: ECR's host,
	// the repository and the digest, never a tag.
	image := computeAccount + ".dkr.ecr.ap-northeast-1.amazonaws.com/vmapp/web@" + digest
	good, err := ecsc.RegisterTaskDefinition(ctx, demoTaskDef("vmctl-e2e-web", image))
	require.NoError(t, err)
	crashing, err := ecsc.RegisterTaskDefinition(ctx, demoTaskDef("vmctl-e2e-web", image, "DEMO_FAIL=exit"))
	require.NoError(t, err)

	lb := sim.CreateLoadBalancer("vmctl-e2e")
	sim.CreateTargetGroupWith(awssim.TargetGroupSpec{Name: "vmctl-e2e-web", Port: 8080, HealthPath: "/health"})
	// vmctl resolves its target groups by name.
	tgs, err := elb.DescribeTargetGroups(ctx, &elbv2.DescribeTargetGroupsInput{Names: []string{"vmctl-e2e-web"}})
	require.NoError(t, err)
	tgARN := sdkaws.ToString(tgs.TargetGroups[0].TargetGroupArn)
	require.NoError(t, sim.AttachTargetGroup(lb.ARN, tgARN))

	_, err = ecsc.CreateService(ctx, &ecs.CreateServiceInput{
		Cluster: cluster, ServiceName: sdkaws.String("web"), TaskDefinition: good.TaskDefinition.TaskDefinitionArn,
		DesiredCount: sdkaws.Int32(1), NetworkConfiguration: awsvpcNetwork,
		CapacityProviderStrategy: []ecstypes.CapacityProviderStrategyItem{{CapacityProvider: sdkaws.String("FARGATE"), Weight: 1}},
		LoadBalancers:            []ecstypes.LoadBalancer{{TargetGroupArn: sdkaws.String(tgARN), ContainerName: sdkaws.String("web"), ContainerPort: sdkaws.Int32(8080)}},
		DeploymentConfiguration: &ecstypes.DeploymentConfiguration{
			DeploymentCircuitBreaker: &ecstypes.DeploymentCircuitBreaker{Enable: true, Rollback: true},
			MinimumHealthyPercent:    sdkaws.Int32(100), MaximumPercent: sdkaws.Int32(200),
		},
	})
	require.NoError(t, err)

	describe := func() ecstypes.Service {
		out, err := ecsc.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: cluster, Services: []string{"web"}})
		require.NoError(t, err)
		require.Len(t, out.Services, 1)
		return out.Services[0]
	}
	// stable waits for one COMPLETED deployment of a task definition, its
	// task healthy in the target group, and answers through the load balancer.
	stable := func(td string) ecstypes.Service {
		t.Helper()
		var svc ecstypes.Service
		computeEventually(t, 90*time.Second, func() (bool, string) {
			svc = describe()
			d := svc.Deployments[0]
			return len(svc.Deployments) == 1 && d.RolloutState == ecstypes.DeploymentRolloutStateCompleted && sdkaws.ToString(d.TaskDefinition) == td && svc.RunningCount == 1,
				fmt.Sprintf("%d deployments, primary %s %s %s\n%s", len(svc.Deployments), sdkaws.ToString(d.TaskDefinition), d.RolloutState, sdkaws.ToString(d.RolloutStateReason), serviceEventLog(svc.Events))
		})
		tasks, err := ecsc.ListTasks(ctx, &ecs.ListTasksInput{Cluster: cluster, ServiceName: sdkaws.String("web")})
		require.NoError(t, err)
		require.Len(t, tasks.TaskArns, 1)
		task := describeTask(t, ecsc, "vmctl-e2e", tasks.TaskArns[0])
		assert.Equal(t, td, sdkaws.ToString(task.TaskDefinitionArn))
		assert.Equal(t, "RUNNING", sdkaws.ToString(task.LastStatus))
		assert.Equal(t, ecstypes.HealthStatusHealthy, task.HealthStatus)
		c := task.Containers[0]
		assert.Equal(t, digest, sdkaws.ToString(c.ImageDigest), "the digest running is the digest pushed")
		assert.Equal(t, image, sdkaws.ToString(c.Image))

		th, err := elb.DescribeTargetHealth(ctx, &elbv2.DescribeTargetHealthInput{TargetGroupArn: sdkaws.String(tgARN)})
		require.NoError(t, err)
		var healthy []int32
		for _, d := range th.TargetHealthDescriptions {
			if d.TargetHealth.State == elbtypes.TargetHealthStateEnumHealthy {
				healthy = append(healthy, sdkaws.ToInt32(d.Target.Port))
			}
		}
		assert.Equal(t, []int32{sdkaws.ToInt32(c.NetworkBindings[0].HostPort)}, healthy, "the task's port is the one healthy target")

		lbs, err := elb.DescribeLoadBalancers(ctx, &elbv2.DescribeLoadBalancersInput{Names: []string{"vmctl-e2e"}})
		require.NoError(t, err)
		resp, err := http.Get("http://" + sdkaws.ToString(lbs.LoadBalancers[0].DNSName) + "/health")
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Contains(t, string(body), `"service":"vmctl-e2e-web"`, "answered through the load balancer")
		return svc
	}

	first := stable(sdkaws.ToString(good.TaskDefinition.TaskDefinitionArn))
	firstID := sdkaws.ToString(first.Deployments[0].Id)
	events := serviceEventLog(first.Events)
	assert.Contains(t, events, "(service web) registered 1 targets in (target-group "+tgARN+")")
	assert.Contains(t, events, "(service web) (deployment "+firstID+") deployment completed.")
	assert.Equal(t, "(service web) has reached a steady state.", sdkaws.ToString(first.Events[0].Message))

	// The crashing release: the circuit breaker fails it and rolls back.
	_, err = ecsc.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: cluster, Service: sdkaws.String("web"), TaskDefinition: crashing.TaskDefinition.TaskDefinitionArn})
	require.NoError(t, err)
	var failed ecstypes.Deployment
	computeEventually(t, 60*time.Second, func() (bool, string) {
		svc := describe()
		for _, d := range svc.Deployments {
			if sdkaws.ToString(d.TaskDefinition) == sdkaws.ToString(crashing.TaskDefinition.TaskDefinitionArn) && d.RolloutState == ecstypes.DeploymentRolloutStateFailed {
				failed = d
				return true, ""
			}
		}
		return false, serviceEventLog(svc.Events)
	})
	assert.Equal(t, "ECS deployment circuit breaker: tasks failed to start.", sdkaws.ToString(failed.RolloutStateReason))
	assert.GreaterOrEqual(t, failed.FailedTasks, int32(2))

	back := stable(sdkaws.ToString(good.TaskDefinition.TaskDefinitionArn))
	assert.NotEqual(t, firstID, sdkaws.ToString(back.Deployments[0].Id), "the rollback is a new deployment")
	assert.Equal(t, good.TaskDefinition.TaskDefinitionArn, back.TaskDefinition)
	events = serviceEventLog(back.Events)
	assert.Contains(t, events, "(service web) (deployment "+sdkaws.ToString(failed.Id)+") deployment failed: tasks failed to start.")
	assert.Contains(t, events, "(service web) rolling back to deployment "+firstID+".")

	// The crashed tasks say why they stopped.
	stopped, err := ecsc.ListTasks(ctx, &ecs.ListTasksInput{Cluster: cluster, StartedBy: failed.Id, DesiredStatus: ecstypes.DesiredStatusStopped})
	require.NoError(t, err)
	require.NotEmpty(t, stopped.TaskArns)
	crashed := describeTask(t, ecsc, "vmctl-e2e", stopped.TaskArns[0])
	assert.Equal(t, ecstypes.TaskStopCodeEssentialContainerExited, crashed.StopCode)
	assert.Equal(t, int32(3), sdkaws.ToInt32(crashed.Containers[0].ExitCode), "DEMO_FAIL=exit exits 3")
}
