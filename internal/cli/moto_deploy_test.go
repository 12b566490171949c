package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	aas "github.com/aws/aws-sdk-go-v2/service/applicationautoscaling"
	aastypes "github.com/aws/aws-sdk-go-v2/service/applicationautoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/smithy-go/middleware"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/dockertest"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/infra"
	"github.com/vmctl/vmctl/internal/mototest"
	"github.com/vmctl/vmctl/internal/release"
	"github.com/vmctl/vmctl/internal/rollout"
	"github.com/vmctl/vmctl/internal/status"
)

// motoWorld is one AWS environment's account on moto_server, its foundation applied by
// vmctl infra apply (the real rendered template, cut to what moto creates), and releases
// saved in a release directory of the test's own.
type motoWorld struct {
	srv        *mototest.Server
	envDir     string
	releaseDir string
	adapter    *motoAdapter
	calls      *callLog
	outputs    map[string]string
}

// callLog records every AWS operation vmctl calls, with its input, so a test can check
// what was sent where moto keeps less than AWS does.
type callLog struct {
	mu     sync.Mutex
	ops    []string // "ECS.CreateService"
	inputs map[string][]any
}

func (l *callLog) middleware(st *middleware.Stack) error {
	return st.Initialize.Add(middleware.InitializeMiddlewareFunc("motoCalls", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		op := awsmiddleware.GetServiceID(ctx) + "." + awsmiddleware.GetOperationName(ctx)
		l.mu.Lock()
		l.ops = append(l.ops, op)
		l.inputs[op] = append(l.inputs[op], in.Parameters)
		l.mu.Unlock()
		return next.HandleInitialize(ctx, in)
	}), middleware.Before)
}

// created is the last CreateService input for service.
func (l *callLog) created(service string) *awsecs.CreateServiceInput {
	l.mu.Lock()
	defer l.mu.Unlock()
	var last *awsecs.CreateServiceInput
	for _, p := range l.inputs["ECS.CreateService"] {
		if in := p.(*awsecs.CreateServiceInput); sdkaws.ToString(in.ServiceName) == service {
			last = in
		}
	}
	return last
}

// count is how often each of ops was called since the log was made.
func (l *callLog) count(ops ...string) map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for _, op := range ops {
		out[op] = 0
	}
	for _, op := range l.ops {
		if _, ok := out[op]; ok {
			out[op]++
		}
	}
	return out
}

// motoWrites are the calls by which a deploy changes an environment.
var motoWrites = []string{"ECS.RegisterTaskDefinition", "ECS.CreateService", "ECS.UpdateService",
	"Application Auto Scaling.RegisterScalableTarget", "Application Auto Scaling.PutScalingPolicy", "Application Auto Scaling.PutScheduledAction"}

// ownCache names the environment's Redis endpoint in its file (bring your own): moto's
// CloudFormation creates no ElastiCache replication group, so the stack could not supply it.
func ownCache(file string) string {
	const at = "    redis: # ElastiCache Redis, encrypted at rest and in transit\n"
	if !strings.Contains(file, at) {
		panic("the environment file has no redis store to edit")
	}
	return strings.Replace(file, at, at+"      endpoint: redis.internal.example:6379\n", 1)
}

// newMotoWorld is dev's account with its foundation.
func newMotoWorld(t *testing.T) *motoWorld {
	t.Helper()
	return newMotoWorldFor(t, "dev", "111111111111")
}

// newMotoWorldFor is the account of env, one of the shipped AWS environments, with its
// foundation applied (approved, for a protected one). Every file names its own Redis.
func newMotoWorldFor(t *testing.T, env, account string) *motoWorld {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"dev", "staging", "prod"} {
		b, err := os.ReadFile(filepath.Join(dockertest.RepoRoot(), "environments", name+".yaml"))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(ownCache(string(b))), 0o644))
	}
	w := &motoWorld{
		srv: mototest.Start(t, account), envDir: dir, releaseDir: t.TempDir(),
		adapter: &motoAdapter{}, calls: &callLog{inputs: map[string][]any{}},
	}
	code, out, errOut := w.vmctl(t, "infra", "apply", "--env", env, "--yes", "--approve-prod", "-o", "json")
	require.Equal(t, ExitOK, code, errOut)
	var res applyResult
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	w.outputs = res.Outputs
	return w
}

// factory reaches moto through the adapter, recording the calls.
func (w *motoWorld) factory(t *testing.T, out, errOut *bytes.Buffer) *Factory {
	f := testFactory(nil, out, errOut)
	cfgFor := w.adapter.config(w.srv, t)
	f.AWSConfig = func(ctx context.Context, env *environment.Environment) (sdkaws.Config, error) {
		cfg, err := cfgFor(ctx, env)
		cfg.APIOptions = append(cfg.APIOptions, w.calls.middleware)
		return cfg, err
	}
	return f
}

// vmctl runs one command on the real stack against moto.
func (w *motoWorld) vmctl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return w.vmctlCtx(context.Background(), t, args...)
}

func (w *motoWorld) vmctlCtx(ctx context.Context, t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	args = append([]string{"-f", "../../compose/compose.yaml", "--env-dir", w.envDir, "--release-dir", w.releaseDir, "--progress", "plain"}, args...)
	code := Run(ctx, w.factory(t, &out, &errOut), args)
	return code, out.String(), errOut.String()
}

// foundationNames reads dev's foundation template (vmctl infra template) for the name of
// the GPU capacity provider attached to the cluster and of the Cloud Map namespace.
func (w *motoWorld) foundationNames(t *testing.T) (gpuProvider, namespace string) {
	t.Helper()
	code, out, errOut := w.vmctl(t, "infra", "template", "--env", "dev")
	require.Equal(t, ExitOK, code, errOut)
	var tpl struct {
		Resources map[string]struct {
			Type       string
			Properties map[string]any
		}
	}
	require.NoError(t, json.Unmarshal([]byte(out), &tpl))
	attached := map[string]bool{}
	providers := map[string]string{} // logical id → name
	for id, r := range tpl.Resources {
		switch r.Type {
		case "AWS::ECS::CapacityProvider":
			providers[id], _ = r.Properties["Name"].(string)
		case "AWS::ServiceDiscovery::HttpNamespace":
			namespace, _ = r.Properties["Name"].(string)
		case "AWS::ECS::ClusterCapacityProviderAssociations":
			for _, p := range r.Properties["CapacityProviders"].([]any) {
				if ref, ok := p.(map[string]any); ok {
					attached[ref["Ref"].(string)] = true
				}
			}
		}
	}
	require.Len(t, providers, 1, "one GPU capacity provider")
	for id, name := range providers {
		require.True(t, attached[id], "capacity provider %s is attached to the cluster", id)
		gpuProvider = name
	}
	require.NotEmpty(t, namespace)
	return gpuProvider, namespace
}

// saveRelease writes release id of the stack's four images, each with a well-formed
// digest of its own (moto pulls nothing, so no image stands behind them).
func (w *motoWorld) saveRelease(t *testing.T, id string, created time.Time) *release.Release {
	t.Helper()
	rel := release.Release{ID: id, Revision: "0123456789abcdef0123456789abcdef01234567", Created: created, Images: map[string]release.Image{}}
	for _, svc := range []string{"frontend", "backend", "voicevox", "openvoice"} {
		rel.Images[svc] = release.Image{Digest: fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(id+"/"+svc)))}
	}
	require.NoError(t, release.Store{Dir: w.releaseDir}.Save(rel))
	return &rel
}

// seedSize is each service's task size: seed §1.1 in CPU units and MiB (0.5 vCPU/1 GB,
// 2 vCPU/4 GB, 2 vCPU/4 GB; OpenVoice 4 vCPU with one T4), and the dev file's min–max.
// OpenVoice's memory is dev.yaml's 15360: ECS registers less of a g4dn.xlarge's 16 GiB
// than the instance has, so 16384 would never place.
var seedSize = map[string]struct {
	cpu, memory string
	gpu         string
	min, max    int32
	port        int32
}{
	"frontend":  {"512", "1024", "", 1, 2, 55434},
	"backend":   {"2048", "4096", "", 1, 4, 55433},
	"voicevox":  {"2048", "4096", "", 1, 2, 50021},
	"openvoice": {"4096", "15360", "1", 1, 2, 8001},
}

// vmctl deploy --detach of the real dev stack to moto, after vmctl infra apply made its
// foundation there; then what moto recorded, read back through the SDK, against dev.yaml
// and the seed. Then the same release again, a second release, status, and rollback.
func TestDeployToMoto(t *testing.T) {
	w := newMotoWorld(t)
	ctx := context.Background()
	cfg := w.srv.Config(t)
	ecsc := awsecs.NewFromConfig(cfg)
	r1 := w.saveRelease(t, "r1", time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	r2 := w.saveRelease(t, "r2", time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))

	code, out, errOut := w.vmctl(t, "deploy", "--env", "dev", "--detach", "--release", "r1", "-o", "json")
	require.Equal(t, ExitOK, code, errOut)
	assert.Contains(t, errOut, "ECS accepted the deployment of r1 to dev; follow it with: vmctl status --env dev --wait\n")
	var res rollout.Result
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.True(t, res.Detached)
	require.Len(t, res.Services, 4)
	for _, s := range res.Services {
		assert.True(t, s.Created && s.Registered, s.Service)
		assert.Equal(t, rollout.RolloutStarted, s.Rollout, s.Service)
	}
	assert.Equal(t, map[string]int{"ECS.RegisterTaskDefinition": 4, "ECS.CreateService": 4, "ECS.UpdateService": 0,
		"Application Auto Scaling.RegisterScalableTarget": 4, "Application Auto Scaling.PutScalingPolicy": 4,
		"Application Auto Scaling.PutScheduledAction": 8}, w.calls.count(motoWrites...), "four services, each with dev's start and stop")

	// moto's CloudFormation creates neither the GPU capacity provider (with its cluster
	// association) nor the Cloud Map namespace; what services name must be what the
	// foundation's template declares.
	gpuProvider, namespace := w.foundationNames(t)
	aasc := aas.NewFromConfig(cfg)
	private := strings.Split(w.outputs[infra.OutPrivateSubnets], ",")
	require.Len(t, private, 2, "dev.yaml's two private subnets")
	elb := elbv2.NewFromConfig(cfg)
	roles := stackResources(t, cfg, "vmctl-dev", "AWS::IAM::Role")
	for svc, want := range seedSize {
		// The task definition: pinned by the release's digest, the seed's size, the roles
		// the foundation made.
		td, err := ecsc.DescribeTaskDefinition(ctx, &awsecs.DescribeTaskDefinitionInput{TaskDefinition: sdkaws.String("vmctl-dev-" + svc), Include: []ecstypes.TaskDefinitionField{ecstypes.TaskDefinitionFieldTags}})
		require.NoError(t, err, svc)
		def := td.TaskDefinition
		assert.Equal(t, int32(1), def.Revision, svc)
		assert.Equal(t, want.cpu, sdkaws.ToString(def.Cpu), svc)
		assert.Equal(t, want.memory, sdkaws.ToString(def.Memory), svc)
		assert.Equal(t, ecstypes.NetworkModeAwsvpc, def.NetworkMode, svc)
		main := def.ContainerDefinitions[0]
		assert.Equal(t, svc, sdkaws.ToString(main.Name))
		assert.Equal(t, "111111111111.dkr.ecr.ap-northeast-1.amazonaws.com/vmapp/"+svc+"@"+r1.Images[svc].Digest, sdkaws.ToString(main.Image))
		assert.Contains(t, tagMap(td.Tags), "vmctl:release", svc)
		assert.Equal(t, "r1", tagMap(td.Tags)["vmctl:release"], svc)
		for _, role := range []string{sdkaws.ToString(def.ExecutionRoleArn), sdkaws.ToString(def.TaskRoleArn)} {
			name, ok := strings.CutPrefix(role, "arn:aws:iam::111111111111:role/")
			require.True(t, ok, "%s: %s is a role of dev's account", svc, role)
			assert.Contains(t, roles, name, "%s: the foundation made role %s", svc, name)
		}
		assert.Equal(t, "arn:aws:iam::111111111111:role/vmctl-dev-task-"+svc, sdkaws.ToString(def.TaskRoleArn), "each service its own task role")
		if want.gpu != "" {
			assert.Equal(t, []ecstypes.Compatibility{ecstypes.CompatibilityEc2}, def.RequiresCompatibilities, svc)
			require.Len(t, main.ResourceRequirements, 1, svc)
			assert.Equal(t, ecstypes.ResourceTypeGpu, main.ResourceRequirements[0].Type)
			assert.Equal(t, want.gpu, sdkaws.ToString(main.ResourceRequirements[0].Value))
			require.Len(t, def.PlacementConstraints, 1)
			assert.Equal(t, "attribute:ecs.instance-type == g4dn.xlarge", sdkaws.ToString(def.PlacementConstraints[0].Expression))
		} else {
			assert.Equal(t, []ecstypes.Compatibility{ecstypes.CompatibilityFargate}, def.RequiresCompatibilities, svc)
			assert.Empty(t, main.ResourceRequirements, svc)
		}

		// The service: in the stack's private subnets, behind its own security group.
		svcs, err := ecsc.DescribeServices(ctx, &awsecs.DescribeServicesInput{Cluster: sdkaws.String(w.outputs[infra.OutCluster]), Services: []string{svc}})
		require.NoError(t, err)
		require.Len(t, svcs.Services, 1, svc)
		s := svcs.Services[0]
		assert.Equal(t, sdkaws.ToString(def.TaskDefinitionArn), sdkaws.ToString(s.TaskDefinition), svc)
		assert.Equal(t, want.min, s.DesiredCount, svc)
		require.NotNil(t, s.NetworkConfiguration, svc)
		vpc := s.NetworkConfiguration.AwsvpcConfiguration
		assert.ElementsMatch(t, private, vpc.Subnets, svc)
		assert.Equal(t, []string{w.outputs[infra.OutSecurityGroup(svc)]}, vpc.SecurityGroups, svc)
		assert.Equal(t, ecstypes.AssignPublicIpDisabled, vpc.AssignPublicIp, svc)

		// Behind the load balancer: the stack's target group, at the service's port.
		if svc == "frontend" || svc == "backend" {
			require.Len(t, s.LoadBalancers, 1, svc)
			lb := s.LoadBalancers[0]
			tgs, err := elb.DescribeTargetGroups(ctx, &elbv2.DescribeTargetGroupsInput{TargetGroupArns: []string{sdkaws.ToString(lb.TargetGroupArn)}})
			require.NoError(t, err, svc)
			assert.Equal(t, "vmctl-dev-"+svc, sdkaws.ToString(tgs.TargetGroups[0].TargetGroupName))
			assert.Equal(t, []string{w.outputs[infra.OutLoadBalancer]}, tgs.TargetGroups[0].LoadBalancerArns, svc)
			assert.Equal(t, want.port, sdkaws.ToInt32(lb.ContainerPort), svc)
			assert.Equal(t, want.port, sdkaws.ToInt32(tgs.TargetGroups[0].Port), svc)
			assert.Equal(t, svc, sdkaws.ToString(lb.ContainerName))
		} else {
			assert.Empty(t, s.LoadBalancers, svc)
		}

		// moto 5.2's CreateService keeps none of capacityProviderStrategy,
		// deploymentConfiguration, serviceConnectConfiguration, placementConstraints and
		// healthCheckGracePeriodSeconds (moto/ecs/responses.py create_service passes them
		// on to nothing), so what vmctl sent, and moto accepted, is checked instead.
		assert.Empty(t, s.CapacityProviderStrategy, "moto started keeping the capacity strategy: read it back instead")
		in := w.calls.created(svc)
		require.NotNil(t, in, svc)
		if want.gpu != "" {
			assert.Equal(t, []string{gpuProvider + "/1/0"}, strategy(in.CapacityProviderStrategy), "openvoice runs on the GPU hosts' capacity provider")
			assert.Equal(t, []ecstypes.PlacementConstraint{{Type: ecstypes.PlacementConstraintTypeDistinctInstance}}, in.PlacementConstraints, "one GPU task per host")
			assert.Equal(t, int32(300), sdkaws.ToInt32(in.HealthCheckGracePeriodSeconds), "dev.yaml: grace_period 5m")
		} else {
			assert.Equal(t, []string{"FARGATE_SPOT/1/0"}, strategy(in.CapacityProviderStrategy), "dev.yaml: spot: true")
			assert.Empty(t, in.PlacementConstraints, svc)
		}
		dc := in.DeploymentConfiguration
		assert.Equal(t, ecstypes.DeploymentStrategyRolling, dc.Strategy, "dev.yaml: strategy rolling")
		assert.True(t, dc.DeploymentCircuitBreaker.Enable && dc.DeploymentCircuitBreaker.Rollback, svc)
		sc := in.ServiceConnectConfiguration
		require.NotNil(t, sc, svc)
		assert.True(t, sc.Enabled)
		assert.Equal(t, namespace, sdkaws.ToString(sc.Namespace), "the foundation's Cloud Map namespace")
		require.Len(t, sc.Services, 1, svc)
		alias := sc.Services[0].ClientAliases
		require.Len(t, alias, 1, svc)
		assert.Equal(t, svc, sdkaws.ToString(alias[0].DnsName), "the compose name, as the other services call it")
		assert.Equal(t, want.port, sdkaws.ToInt32(alias[0].Port), svc)

		// Scaling: the file's min–max, CPU target tracking, and dev's working hours.
		id := "service/vmctl-dev/" + svc
		targets, err := aasc.DescribeScalableTargets(ctx, &aas.DescribeScalableTargetsInput{ServiceNamespace: aastypes.ServiceNamespaceEcs, ResourceIds: []string{id}})
		require.NoError(t, err)
		require.Len(t, targets.ScalableTargets, 1, svc)
		tg := targets.ScalableTargets[0]
		assert.Equal(t, aastypes.ScalableDimensionECSServiceDesiredCount, tg.ScalableDimension)
		assert.Equal(t, [2]int32{want.min, want.max}, [2]int32{sdkaws.ToInt32(tg.MinCapacity), sdkaws.ToInt32(tg.MaxCapacity)}, svc)
		policies, err := aasc.DescribeScalingPolicies(ctx, &aas.DescribeScalingPoliciesInput{ServiceNamespace: aastypes.ServiceNamespaceEcs, ResourceId: sdkaws.String(id)})
		require.NoError(t, err)
		require.Len(t, policies.ScalingPolicies, 1, svc)
		pol := policies.ScalingPolicies[0]
		assert.Equal(t, aastypes.PolicyTypeTargetTrackingScaling, pol.PolicyType)
		tt := pol.TargetTrackingScalingPolicyConfiguration
		require.NotNil(t, tt, svc)
		assert.Equal(t, aastypes.MetricTypeECSServiceAverageCPUUtilization, tt.PredefinedMetricSpecification.PredefinedMetricType)
		assert.Less(t, sdkaws.ToFloat64(tt.TargetValue), 80.0, "scales out before seed §7.3's 80 %% CPU alarm")
		actions, err := aasc.DescribeScheduledActions(ctx, &aas.DescribeScheduledActionsInput{ServiceNamespace: aastypes.ServiceNamespaceEcs, ResourceId: sdkaws.String(id)})
		require.NoError(t, err)
		got := map[string]string{}
		for _, a := range actions.ScheduledActions {
			got[sdkaws.ToString(a.ScheduledActionName)] = fmt.Sprintf("%s %s %d-%d", sdkaws.ToString(a.Schedule), sdkaws.ToString(a.Timezone),
				sdkaws.ToInt32(a.ScalableTargetAction.MinCapacity), sdkaws.ToInt32(a.ScalableTargetAction.MaxCapacity))
		}
		assert.Equal(t, map[string]string{
			svc + "-start": fmt.Sprintf("cron(0 8 ? * MON,TUE,WED,THU,FRI *) Asia/Tokyo %d-%d", want.min, want.max),
			svc + "-stop":  "cron(0 20 ? * MON,TUE,WED,THU,FRI *) Asia/Tokyo 0-0",
		}, got, "dev.yaml: up mon–fri 08:00–20:00 Asia/Tokyo")
	}

	// The same release again. moto dropped the settings above from CreateService, so the
	// next deploy sees them differ and sends them once more; AWS returns them with the
	// service (capacityProviderStrategy, deploymentConfiguration: the Service data type,
	// https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_Service.html), so
	// there this deploy would write nothing. moto keeps what UpdateService sets.
	code, _, errOut = w.vmctl(t, "deploy", "--env", "dev", "--detach", "--release", "r1")
	require.Equal(t, ExitOK, code, errOut)
	assert.Contains(t, errOut, "  backend    update  settings: capacity, deployment  (runs vmctl-dev-backend:1, registered before)\n", "moto kept no capacity strategy nor deployment configuration")
	// Then: nothing to register, create or update; the rollout ECS still runs is left to it.
	before := w.calls.count(motoWrites...)
	code, out, errOut = w.vmctl(t, "deploy", "--env", "dev", "--detach", "--release", "r1", "-o", "json")
	require.Equal(t, ExitOK, code, errOut)
	assert.Equal(t, before, w.calls.count(motoWrites...), "nothing written")
	assert.Contains(t, errOut, "  openvoice  unchanged\n  voicevox   unchanged\n  backend    unchanged\n  frontend   unchanged\ndev runs release r1 already: nothing to change\n")
	assert.Contains(t, errOut, "backend Rolling out: started before; follow it with vmctl status --env dev --wait\n")
	assert.NotContains(t, errOut, "ECS accepted", "no deployment was started")
	res = rollout.Result{}
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	assert.True(t, res.Unchanged)

	// A second release: a new revision of every family, pinned by r2's digests.
	code, out, errOut = w.vmctl(t, "deploy", "--env", "dev", "--detach", "--release", "r2", "-o", "json")
	require.Equal(t, ExitOK, code, errOut)
	assert.Contains(t, errOut, "  backend    update  r1 → r2  "+shortDigest(r1.Images["backend"].Digest)+" → "+shortDigest(r2.Images["backend"].Digest)+"  (registers a new task definition revision)\n")
	res = rollout.Result{}
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	assert.False(t, res.Unchanged)
	for _, s := range res.Services {
		assert.True(t, s.Registered && s.Updated, s.Service)
		assert.Equal(t, "arn:aws:ecs:ap-northeast-1:111111111111:task-definition/vmctl-dev-"+s.Service+":2", s.TaskDefinition)
	}

	// status reads what runs: r2 everywhere, by r2's digests.
	code, out, errOut = w.vmctl(t, "status", "--env", "dev", "-o", "json")
	require.Equal(t, ExitOK, code, errOut)
	var rep status.StatusReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	assert.Equal(t, "r2", rep.Release)
	require.Len(t, rep.Services, 4)
	for _, s := range rep.Services {
		assert.Equal(t, "ACTIVE", s.State, s.Service)
		assert.Equal(t, r2.Images[s.Service].Digest, s.Digest, s.Service)
		assert.Equal(t, "r2", s.Release, s.Service)
		assert.Equal(t, seedSize[s.Service].min, s.Desired, s.Service)
	}

	// rollback goes only to a release that ran here.
	w.saveRelease(t, "r9", time.Date(2026, 12, 1, 11, 0, 0, 0, time.UTC))
	before = w.calls.count(motoWrites...)
	code, _, errOut = w.vmctl(t, "rollback", "--env", "dev", "--to", "r9")
	assert.Equal(t, ExitError, code)
	assert.Contains(t, errOut, "never ran release r9 in dev (its last releases: r2, r1)")
	assert.Equal(t, before, w.calls.count(motoWrites...), "nothing written")

	// r1 ran: the rollback is accepted and reuses r1's revisions. It watches each level's
	// rollout before the next, and moto never completes one (it runs no tasks), so only
	// the first level goes back before the test stops watching; TestRollbackOnMoto lets
	// moto report the tasks running.
	ctx3, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	code, _, errOut = w.vmctlCtx(ctx3, t, "rollback", "--env", "dev", "--to", "r1")
	assert.Equal(t, ExitCancelled, code, errOut)
	assert.Contains(t, errOut, "  backend    update  r2 → r1  "+shortDigest(r2.Images["backend"].Digest)+" → "+shortDigest(r1.Images["backend"].Digest)+"  (runs vmctl-dev-backend:1, registered before)\n")
	assert.Contains(t, errOut, "stopped watching; the deployment goes on in ECS: still rolling out: openvoice, voicevox; not started: backend, frontend (deploy again to finish them)")
	assert.Equal(t, map[string]int{"ECS.UpdateService": 2}, diffCounts(before, w.calls.count(motoWrites...)), "r1's revisions reused; the first level updated")
	running := map[string]string{}
	svcs, err := ecsc.DescribeServices(ctx, &awsecs.DescribeServicesInput{Cluster: sdkaws.String("vmctl-dev"), Services: []string{"openvoice", "voicevox", "backend", "frontend"}})
	require.NoError(t, err)
	for _, s := range svcs.Services {
		running[sdkaws.ToString(s.ServiceName)] = taskDefName(sdkaws.ToString(s.TaskDefinition))
	}
	assert.Equal(t, map[string]string{"openvoice": "vmctl-dev-openvoice:1", "voicevox": "vmctl-dev-voicevox:1", "backend": "vmctl-dev-backend:2", "frontend": "vmctl-dev-frontend:2"}, running)
}

// diffCounts is after minus before, per operation, leaving out the zeros.
func diffCounts(before, after map[string]int) map[string]int {
	out := map[string]int{}
	for op, n := range after {
		if d := n - before[op]; d != 0 {
			out[op] = d
		}
	}
	return out
}

// strategy is a capacity provider strategy as provider/weight/base.
func strategy(items []ecstypes.CapacityProviderStrategyItem) []string {
	var out []string
	for _, i := range items {
		out = append(out, fmt.Sprintf("%s/%d/%d", sdkaws.ToString(i.CapacityProvider), i.Weight, i.Base))
	}
	return out
}

// stackResources are the physical ids of the stack's resources of type typ, as moto's
// CloudFormation recorded them.
func stackResources(t *testing.T, cfg sdkaws.Config, stack, typ string) []string {
	t.Helper()
	var ids []string
	p := cloudformation.NewListStackResourcesPaginator(cloudformation.NewFromConfig(cfg), &cloudformation.ListStackResourcesInput{StackName: sdkaws.String(stack)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		require.NoError(t, err)
		for _, r := range page.StackResourceSummaries {
			if sdkaws.ToString(r.ResourceType) == typ {
				ids = append(ids, sdkaws.ToString(r.PhysicalResourceId))
			}
		}
	}
	return ids
}

func tagMap(tags []ecstypes.Tag) map[string]string {
	out := map[string]string{}
	for _, t := range tags {
		out[sdkaws.ToString(t.Key)] = sdkaws.ToString(t.Value)
	}
	return out
}

// rollback, with and without --to, through every level. moto runs no tasks; here it is
// told (MOTO_ECS_SERVICE_RUNNING, its own switch) to report one running per service, so
// a new service's deployment is COMPLETED at once. moto starts no new deployment on
// UpdateService either (the service's one deployment keeps its id), so the watcher sees
// that deployment COMPLETED at its first look: this checks where rollback puts each
// service, not how a real rollout is followed (the awssim tests do that).
func TestRollbackOnMoto(t *testing.T) {
	t.Setenv("MOTO_ECS_SERVICE_RUNNING", "1") // dev's min is 1 for every service
	w := newMotoWorld(t)
	ctx := context.Background()
	ecsc := awsecs.NewFromConfig(w.srv.Config(t))
	w.saveRelease(t, "r1", time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	w.saveRelease(t, "r2", time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	running := func() map[string]string {
		t.Helper()
		out := map[string]string{}
		svcs, err := ecsc.DescribeServices(ctx, &awsecs.DescribeServicesInput{Cluster: sdkaws.String("vmctl-dev"), Services: []string{"openvoice", "voicevox", "backend", "frontend"}})
		require.NoError(t, err)
		for _, s := range svcs.Services {
			out[sdkaws.ToString(s.ServiceName)] = taskDefName(sdkaws.ToString(s.TaskDefinition))
		}
		return out
	}
	revisions := func(n int) map[string]string {
		out := map[string]string{}
		for svc := range seedSize {
			out[svc] = fmt.Sprintf("vmctl-dev-%s:%d", svc, n)
		}
		return out
	}

	// No release has run yet: nothing to go back to.
	code, _, errOut := w.vmctl(t, "rollback", "--env", "dev")
	assert.Equal(t, ExitError, code)
	assert.Contains(t, errOut, "service openvoice is not deployed: name the release with vmctl rollback --env dev --to R")

	for _, id := range []string{"r1", "r2"} {
		code, _, errOut := w.vmctl(t, "deploy", "--env", "dev", "--release", id)
		require.Equal(t, ExitOK, code, errOut)
		assert.Contains(t, errOut, "frontend Completed: vmctl-dev-frontend:", "watched to the end")
	}
	require.Equal(t, revisions(2), running())

	// Without --to: the release before the running one, as ECS recorded it.
	before := w.calls.count(motoWrites...)
	code, out, errOut := w.vmctl(t, "rollback", "--env", "dev", "-o", "json")
	require.Equal(t, ExitOK, code, errOut)
	assert.Contains(t, errOut, "roll dev back from release r2 to r1 (account 111111111111 as ")
	assert.Contains(t, errOut, "  backend → vmctl-dev-backend:1\n")
	var res rollout.Result
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	assert.Equal(t, "r1", res.Release)
	assert.Equal(t, revisions(1), running())
	assert.Equal(t, map[string]int{"ECS.UpdateService": 4}, diffCounts(before, w.calls.count(motoWrites...)), "only the task definitions change")

	// --to the release that ran last: r2's revisions again, none registered.
	code, _, errOut = w.vmctl(t, "rollback", "--env", "dev", "--to", "r2")
	require.Equal(t, ExitOK, code, errOut)
	assert.Equal(t, revisions(2), running())
	// status --wait follows what runs with the deploy's watcher; here moto has it done.
	code, out, errOut = w.vmctl(t, "status", "--env", "dev", "--wait")
	require.Equal(t, ExitOK, code, errOut)
	// Its "Settled" lines name moto's deployment's revision, :1: moto's UpdateService
	// starts no deployment, so the one from CreateService stays, with its task definition.
	assert.Contains(t, errOut, "dev: cluster vmctl-dev, release r2\n")
	assert.Regexp(t, `(?m)^backend\tACTIVE\t1\t1\t0\tCOMPLETED\tr2\tsha256:[0-9a-f]{12}\t`, out)
	assert.Equal(t, 0, diffCounts(before, w.calls.count(motoWrites...))["ECS.RegisterTaskDefinition"], "every revision was registered by the deploys")
}

// pushRelease puts release id's four images into moto's ECR the way a push leaves them
// (a repository per image, scanned) and saves the release with the digests ECR gave them.
// moto's scan finds one HIGH finding, nothing CRITICAL, so the scan gate of a protected
// environment lets them through.
func (w *motoWorld) pushRelease(t *testing.T, id string, created time.Time) *release.Release {
	t.Helper()
	ctx := context.Background()
	api := ecr.NewFromConfig(w.srv.Config(t))
	rel := release.Release{ID: id, Revision: "0123456789abcdef0123456789abcdef01234567", Created: created, Images: map[string]release.Image{}}
	for _, svc := range []string{"frontend", "backend", "voicevox", "openvoice"} {
		repo := "vmapp/" + svc
		_, err := api.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: sdkaws.String(repo), ImageScanningConfiguration: &ecrtypes.ImageScanningConfiguration{ScanOnPush: true}})
		var exists *ecrtypes.RepositoryAlreadyExistsException
		if !errors.As(err, &exists) {
			require.NoError(t, err)
		}
		manifest, err := json.Marshal(map[string]any{
			"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
			"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2, "digest": fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(id+"/"+svc)))},
			"layers": []any{},
		})
		require.NoError(t, err)
		put, err := api.PutImage(ctx, &ecr.PutImageInput{RepositoryName: sdkaws.String(repo), ImageManifest: sdkaws.String(string(manifest)), ImageTag: sdkaws.String(id)})
		require.NoError(t, err)
		_, err = api.StartImageScan(ctx, &ecr.StartImageScanInput{RepositoryName: sdkaws.String(repo), ImageId: put.Image.ImageId})
		require.NoError(t, err)
		rel.Images[svc] = release.Image{Digest: sdkaws.ToString(put.Image.ImageId.ImageDigest)}
	}
	require.NoError(t, release.Store{Dir: w.releaseDir}.Save(rel))
	return &rel
}

// prod deploys blue/green: deploy --detach into prod on moto resolves, from what the
// foundation created, the alternate target group and the production listener rule that
// ECS moves between them.
func TestBlueGreenDeployToMoto(t *testing.T) {
	w := newMotoWorldFor(t, "prod", "333333333333")
	w.pushRelease(t, "r1", time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	code, out, errOut := w.vmctl(t, "deploy", "--env", "prod", "--detach", "--release", "r1", "--yes", "--approve-prod", "-o", "json")
	require.Equal(t, ExitOK, code, errOut)
	assert.Contains(t, errOut, "deploy release r1 to prod (account 333333333333 as arn:aws:sts::333333333333:user/moto, blue-green):\n")
	var res rollout.Result
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Len(t, res.Services, 4)

	ctx := context.Background()
	cfg := w.srv.Config(t)
	ecsc, elb := awsecs.NewFromConfig(cfg), elbv2.NewFromConfig(cfg)
	roles := stackResources(t, cfg, "vmctl-prod", "AWS::IAM::Role")
	tgName := func(arn string) string {
		t.Helper()
		out, err := elb.DescribeTargetGroups(ctx, &elbv2.DescribeTargetGroupsInput{TargetGroupArns: []string{arn}})
		require.NoError(t, err)
		require.Equal(t, []string{w.outputs[infra.OutLoadBalancer]}, out.TargetGroups[0].LoadBalancerArns, "on the stack's load balancer")
		return sdkaws.ToString(out.TargetGroups[0].TargetGroupName)
	}
	for _, svc := range []string{"frontend", "backend"} {
		svcs, err := ecsc.DescribeServices(ctx, &awsecs.DescribeServicesInput{Cluster: sdkaws.String("vmctl-prod"), Services: []string{svc}})
		require.NoError(t, err)
		require.Len(t, svcs.Services[0].LoadBalancers, 1, svc)
		lb := svcs.Services[0].LoadBalancers[0]
		assert.Equal(t, "vmctl-prod-"+svc, tgName(sdkaws.ToString(lb.TargetGroupArn)))
		ac := lb.AdvancedConfiguration
		require.NotNil(t, ac, "%s: blue/green names the alternate group and the production rule", svc)
		assert.Equal(t, "vmctl-prod-"+svc+"-alt", tgName(sdkaws.ToString(ac.AlternateTargetGroupArn)))
		name, ok := strings.CutPrefix(sdkaws.ToString(ac.RoleArn), "arn:aws:iam::333333333333:role/")
		require.True(t, ok, sdkaws.ToString(ac.RoleArn))
		assert.Contains(t, roles, name, "the foundation made the role that lets ECS shift the listener")

		// The production rule is the one on the stack's listener that sends this
		// service's traffic to its group (weight 100) and none to the alternate (0).
		rules, err := elb.DescribeRules(ctx, &elbv2.DescribeRulesInput{RuleArns: []string{sdkaws.ToString(ac.ProductionListenerRule)}})
		require.NoError(t, err)
		require.Len(t, rules.Rules, 1)
		rule := rules.Rules[0]
		assert.False(t, sdkaws.ToBool(rule.IsDefault), svc)
		assert.True(t, strings.HasPrefix(sdkaws.ToString(rule.RuleArn), strings.Replace(w.outputs[infra.OutListener], ":listener/", ":listener-rule/", 1)+"/"), "%s: a rule of the stack's listener", svc)
		require.Len(t, rule.Actions, 1, svc)
		weights := map[string]int32{}
		for _, tg := range rule.Actions[0].ForwardConfig.TargetGroups {
			weights[tgName(sdkaws.ToString(tg.TargetGroupArn))] = sdkaws.ToInt32(tg.Weight)
		}
		assert.Equal(t, map[string]int32{"vmctl-prod-" + svc: 100, "vmctl-prod-" + svc + "-alt": 0}, weights)

		// moto keeps no deployment configuration (see TestDeployToMoto): what was sent.
		dc := w.calls.created(svc).DeploymentConfiguration
		assert.Equal(t, ecstypes.DeploymentStrategyBlueGreen, dc.Strategy, "prod.yaml: strategy blue-green")
		assert.Equal(t, int32(10), sdkaws.ToInt32(dc.BakeTimeInMinutes), "issue 11: a 10-minute bake")
	}
}
