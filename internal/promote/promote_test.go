package promote

import (
	"context"
	"testing"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	vmaws "github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/awssim"
	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/registry"
	"github.com/vmctl/vmctl/internal/release"
	"github.com/vmctl/vmctl/internal/rollout"
	"github.com/vmctl/vmctl/internal/verify/verifytest"
)

// promoteOptions promotes w's staging to prod, recording each approval asked.
func promoteOptions(w *verifytest.World, approvals *[]Plan) Options {
	return Options{
		From: "staging", To: "prod",
		Render: func(env string, rel release.Release) (*ecs.Plan, error) { return ecs.Render(w.Stack, w.Envs[env], rel) },
		Resolve: func(id string, digests map[string]string) (*release.Release, error) {
			return w.Rel, nil // the local release store's manifest
		},
		Approve: func(_ context.Context, p Plan) error {
			*approvals = append(*approvals, p)
			return nil
		},
		VerifyFrom: verifytest.FastVerify(w.Envs["staging"], verifytest.OKProbe),
		VerifyTo:   verifytest.FastVerify(w.Envs["prod"], verifytest.OKProbe),
		Poll:       100 * time.Millisecond,
	}
}

// writes counts the calls that would change B.
func writes(sim *awssim.Sim) int {
	n := 0
	for _, op := range []string{"ECR.CreateRepository", "ECR.PutImage", "ECS.RegisterTaskDefinition", "ECS.CreateService", "ECS.UpdateService"} {
		n += sim.Calls(op)
	}
	return n
}

// staging → prod on one simulator, where every account's ECR is one
// registry: refused while staging fails verify or has a CRITICAL finding;
// with a recorded reason it goes through, moving no layer byte, and prod
// then runs staging's digests.
func TestPromoteOnTheSimulator(t *testing.T) {
	w := verifytest.New(t)
	staging := w.Deploy(t, "staging")
	prodPlan := w.Plan(t, "prod", w.Rel)
	ctx := context.Background()
	var approvals []Plan

	t.Run("refused while staging fails verify", func(t *testing.T) {
		var group string
		for _, s := range staging.Services {
			if s.Hosts != nil {
				group = s.Hosts.AutoScalingGroup
			}
		}
		host := w.Sim.GroupInstances(group)[0]
		require.True(t, w.Sim.SetInstanceGPU(host.ID, &awssim.GPUFacts{Model: "Tesla T4", DriverVersion: "418.87.01", MemoryMiB: 15360, ComputeCapability: "7.5"}))
		defer w.Sim.SetInstanceGPU(host.ID, awssim.T4())
		before := writes(w.Sim)
		res, err := Promote(ctx, w.Clients["staging"], w.Clients["prod"], promoteOptions(w, &approvals))
		require.ErrorIs(t, err, ErrVerifyFailed)
		assert.Contains(t, err.Error(), "driver 418.87.01 is older than 450.80.02")
		assert.False(t, res.FromVerify.Passed())
		assert.Equal(t, before, writes(w.Sim), "nothing written")
		assert.Empty(t, approvals, "not even asked")
	})

	t.Run("a missing or failed scan blocks promote", func(t *testing.T) {
		frontend := w.Rel.Images["frontend"].Digest
		for status, says := range map[string]string{"": "scan NOT_SCANNED", "FAILED": "scan FAILED", "UNSUPPORTED_IMAGE": "scan UNSUPPORTED_IMAGE"} {
			w.Sim.PlantScanStatus("vmapp-demo/frontend", frontend, status, "")
			before := writes(w.Sim)
			res, err := Promote(ctx, w.Clients["staging"], w.Clients["prod"], promoteOptions(w, &approvals))
			require.ErrorIs(t, err, registry.ErrVulnerable, status)
			assert.Contains(t, err.Error(), "frontend "+registry.ShortDigest(frontend)+": "+says)
			require.Len(t, res.Plan.Vulnerable, 1)
			assert.Equal(t, before, writes(w.Sim), "nothing written to prod")
			assert.Empty(t, approvals)
		}
		w.Sim.ClearScanStatus("vmapp-demo/frontend", frontend)
	})

	backend := w.Rel.Images["backend"].Digest
	w.Sim.PlantScanFindings("vmapp-demo/backend", backend, []awssim.ScanFinding{
		{Name: "CVE-2024-0001", Severity: "CRITICAL", Description: "a test finding"},
		{Name: "CVE-2024-0002", Severity: "HIGH"},
	})

	t.Run("a CRITICAL finding blocks promote", func(t *testing.T) {
		before := writes(w.Sim)
		res, err := Promote(ctx, w.Clients["staging"], w.Clients["prod"], promoteOptions(w, &approvals))
		require.ErrorIs(t, err, registry.ErrVulnerable)
		assert.Contains(t, err.Error(), "backend "+registry.ShortDigest(backend)+": 1 CRITICAL (CVE-2024-0001)")
		assert.Contains(t, err.Error(), `--allow-vulnerable "why"`)
		require.Len(t, res.Plan.Vulnerable, 1)
		assert.Equal(t, before, writes(w.Sim), "nothing written to prod")
		assert.Empty(t, approvals)
	})

	t.Run("allowed with a reason, it moves no layer byte and prod runs the same digests", func(t *testing.T) {
		opts := promoteOptions(w, &approvals)
		opts.AllowVulnerable = "CVE-2024-0001: no fix upstream yet; tracked in APP-42"
		res, err := Promote(ctx, w.Clients["staging"], w.Clients["prod"], opts)
		require.NoError(t, err)
		require.Len(t, approvals, 1, "asked once, before writing")
		assert.True(t, approvals[0].SameRegistry)
		assert.Len(t, approvals[0].Vulnerable, 1)
		assert.Equal(t, "r1", res.Plan.Release)
		assert.Len(t, res.Copies, 4)
		assert.Zero(t, res.BytesMoved, "one registry: manifests only")
		for _, c := range res.Copies {
			assert.Contains(t, []string{"present", "retag"}, c.Method)
		}
		require.NotNil(t, res.ToVerify)
		assert.True(t, res.ToVerify.Passed(), verifytest.Describe(res.ToVerify))

		id, digests, err := rollout.CurrentRelease(ctx, w.Clients["prod"], prodPlan)
		require.NoError(t, err)
		assert.Equal(t, "r1", id)
		for svc, d := range digests {
			assert.Equal(t, w.Rel.Images[svc].Digest, d, "%s runs staging's digest", svc)
		}

		// The reason is on prod's deployment.
		svcs, err := w.Clients["prod"].ECS.DescribeServices(ctx, &awsecs.DescribeServicesInput{Cluster: sdkaws.String(prodPlan.Cluster), Services: []string{"backend"}})
		require.NoError(t, err)
		td, err := w.Clients["prod"].ECS.DescribeTaskDefinition(ctx, &awsecs.DescribeTaskDefinitionInput{TaskDefinition: svcs.Services[0].TaskDefinition, Include: []ecstypes.TaskDefinitionField{ecstypes.TaskDefinitionFieldTags}})
		require.NoError(t, err)
		tags := map[string]string{}
		for _, tg := range td.Tags {
			tags[sdkaws.ToString(tg.Key)] = sdkaws.ToString(tg.Value)
		}
		assert.Equal(t, "CVE-2024-0001: no fix upstream yet tracked in APP-42", tags[rollout.TagAllowVulnerable])
		assert.Equal(t, "staging", tags[TagPromotedFrom])
	})

	t.Run("refused when staging moves on while the approval is asked", func(t *testing.T) {
		r2 := *w.Rel
		r2.ID = "r2"
		opts := promoteOptions(w, &approvals)
		opts.AllowVulnerable = "CVE-2024-0001: no fix upstream yet"
		var before int
		opts.Approve = func(ctx context.Context, p Plan) error {
			// Someone deploys r2 to staging while the person reads the preview of r1.
			plan, err := ecs.Render(w.Stack, w.Envs["staging"], r2)
			require.NoError(t, err)
			_, err = rollout.Deploy(ctx, w.Clients["staging"], rollout.Options{Plan: plan, Release: &r2, Poll: 100 * time.Millisecond})
			require.NoError(t, err)
			before = writes(w.Sim)
			return nil
		}
		_, err := Promote(ctx, w.Clients["staging"], w.Clients["prod"], opts)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "promote r1 to prod: staging changed between the preview and the approval (it now runs r2): nothing was written to prod")
		assert.Equal(t, before, writes(w.Sim), "nothing written after the approval")
	})
}

// With 30 % of the calls promote makes throttled, it still goes through,
// and prod gets exactly one task-definition revision per service.
func TestPromoteUnderThrottling(t *testing.T) {
	w := verifytest.New(t)
	w.Deploy(t, "staging")
	prodPlan := w.Plan(t, "prod", w.Rel)
	for _, op := range []string{
		"ECR.BatchGetImage", "ECR.PutImage", "ECR.DescribeImages", "ECR.DescribeImageScanFindings", "ECR.DescribeRepositories", "ECR.CreateRepository",
		"ECS.RegisterTaskDefinition", "ECS.DescribeTaskDefinition", "ECS.CreateService", "ECS.UpdateService", "ECS.DescribeServices", "ECS.ListTasks", "ECS.DescribeTasks",
		"ELBv2.DescribeTargetGroups", "ELBv2.DescribeTargetHealth", "ApplicationAutoScaling.RegisterScalableTarget", "ApplicationAutoScaling.PutScalingPolicy",
	} {
		w.Sim.InjectFault(op, awssim.Fault{Throttle: true, Rate: 0.3})
	}
	// vmctl's own retryer, as the commands use it (the harness's gives up after 3).
	for name, key := range verifytest.Keys {
		cfg, err := vmaws.LoadConfig(context.Background(), "ap-northeast-1", config.WithBaseEndpoint(w.Sim.URL()),
			config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(key, "secret", "")))
		require.NoError(t, err)
		w.Clients[name] = vmaws.NewClients(cfg)
	}
	var approvals []Plan
	res, err := Promote(context.Background(), w.Clients["staging"], w.Clients["prod"], promoteOptions(w, &approvals))
	require.NoError(t, err)
	assert.Zero(t, res.BytesMoved)
	for _, s := range prodPlan.Services {
		family := sdkaws.ToString(s.TaskDefinition.Family)
		td, err := w.Clients["prod"].ECS.DescribeTaskDefinition(context.Background(), &awsecs.DescribeTaskDefinitionInput{TaskDefinition: sdkaws.String(family)})
		require.NoError(t, err)
		assert.EqualValues(t, 1, td.TaskDefinition.Revision, "%s: no duplicate revision", family)
	}
	assert.Positive(t, w.Sim.Calls("ECR.PutImage"))
}
