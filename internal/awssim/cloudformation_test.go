package awssim_test

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	vmaws "github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/awssim"
	"github.com/vmctl/vmctl/internal/awssim/simtest"
	"github.com/vmctl/vmctl/internal/dockertest"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/infra"
	"github.com/vmctl/vmctl/internal/stack"
)

func newCFN(t *testing.T, sim *awssim.Sim) *cloudformation.Client {
	return cloudformation.NewFromConfig(simtest.Config(t, sim, computeKey))
}

// The staging foundation, rendered by infra and applied through the product's change-set
// code, makes what the services run on: the listener, rules and target groups as the
// template says them, the cluster with its GPU capacity provider and a g4dn host with a T4
// registered in it, and the log groups.
func TestCloudFormationFoundation(t *testing.T) {
	sim := computeSim(t)
	root := dockertest.RepoRoot()
	st, err := stack.Load(context.Background(), stack.LoadOptions{Files: []string{filepath.Join(root, "compose", "demo.yaml")}})
	require.NoError(t, err)
	env, err := environment.LoadNamed(filepath.Join(root, "environments"), "staging")
	require.NoError(t, err)
	out := simtest.Foundation(t, sim, computeKey, st, env)
	ctx := context.Background()

	require.NotEmpty(t, out[infra.OutLoadBalancer])
	assert.Equal(t, "vmctl-staging", out[infra.OutCluster])
	assert.True(t, strings.HasPrefix(out[infra.OutVPC], "vpc-"), out[infra.OutVPC])

	elb := newELB(t, sim)
	ls, err := elb.DescribeListeners(ctx, &elbv2.DescribeListenersInput{LoadBalancerArn: sdkaws.String(out[infra.OutLoadBalancer])})
	require.NoError(t, err)
	require.Len(t, ls.Listeners, 1, "no domain: plain HTTP on port 80 only")
	assert.Equal(t, int32(80), sdkaws.ToInt32(ls.Listeners[0].Port))
	assert.Equal(t, "fixed-response", string(ls.Listeners[0].DefaultActions[0].Type))
	rules, err := elb.DescribeRules(ctx, &elbv2.DescribeRulesInput{ListenerArn: ls.Listeners[0].ListenerArn})
	require.NoError(t, err)
	assert.GreaterOrEqual(t, len(rules.Rules), 3, "a rule per routed service and the default")

	tgs, err := elb.DescribeTargetGroups(ctx, &elbv2.DescribeTargetGroupsInput{Names: []string{"vmctl-staging-backend"}})
	require.NoError(t, err)
	assert.Equal(t, "/health", sdkaws.ToString(tgs.TargetGroups[0].HealthCheckPath))
	assert.Equal(t, int32(55433), sdkaws.ToInt32(tgs.TargetGroups[0].Port))
	assert.Equal(t, []string{out[infra.OutLoadBalancer]}, tgs.TargetGroups[0].LoadBalancerArns)

	// The load balancer's proxy answers as the template's listener: 404 for what no rule routes
	// is not reachable with /* routed, so check a routed path without targets: 503.
	resp, err := http.Get("http://" + out[infra.OutLoadBalancerDNS] + "/api/nothing")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "routed, but no targets yet")

	ecsc := newECS(t, sim)
	cl, err := ecsc.DescribeClusters(ctx, &awsecs.DescribeClustersInput{Clusters: []string{"vmctl-staging"}})
	require.NoError(t, err)
	require.Len(t, cl.Clusters, 1)
	assert.Contains(t, cl.Clusters[0].CapacityProviders, "vmctl-staging-gpu")
	cis, err := ecsc.ListContainerInstances(ctx, &awsecs.ListContainerInstancesInput{Cluster: sdkaws.String("vmctl-staging")})
	require.NoError(t, err)
	require.NotEmpty(t, cis.ContainerInstanceArns, "the GPU group's instances joined the cluster")
	desc, err := ecsc.DescribeContainerInstances(ctx, &awsecs.DescribeContainerInstancesInput{Cluster: sdkaws.String("vmctl-staging"), ContainerInstances: cis.ContainerInstanceArns})
	require.NoError(t, err)
	assert.Equal(t, "vmctl-staging-gpu", sdkaws.ToString(desc.ContainerInstances[0].CapacityProviderName))
	for _, a := range desc.ContainerInstances[0].Attributes {
		if sdkaws.ToString(a.Name) == "ecs.ami-id" {
			assert.Equal(t, awssim.ECSGPUAMI, sdkaws.ToString(a.Value), "the AMI the SSM parameter names")
		}
	}
	asg := autoscaling.NewFromConfig(simtest.Config(t, sim, computeKey))
	groups, err := asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{out[infra.OutGPUGroup]}})
	require.NoError(t, err)
	require.Len(t, groups.AutoScalingGroups, 1)
	assert.Equal(t, "g4dn.xlarge", sdkaws.ToString(groups.AutoScalingGroups[0].Instances[0].InstanceType))
	for _, in := range sim.GroupInstances(out[infra.OutGPUGroup]) {
		require.NotNil(t, in.GPU)
		assert.Equal(t, "Tesla T4", in.GPU.Model)
	}

	// Applying it again changes nothing.
	again := simtest.Foundation(t, sim, computeKey, st, env)
	assert.Equal(t, out, again)

	cfn := newCFN(t, sim)
	stacks, err := cfn.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: sdkaws.String("vmctl-staging")})
	require.NoError(t, err)
	assert.Equal(t, cfntypes.StackStatusCreateComplete, stacks.Stacks[0].StackStatus)
}

// A target group's health check is the template's: the same targets turn unhealthy when a
// rendering bug gives the group a matcher its service does not answer.
func TestCloudFormationTargetGroupFromTemplate(t *testing.T) {
	sim := computeSim(t)
	root := dockertest.RepoRoot()
	st, err := stack.Load(context.Background(), stack.LoadOptions{Files: []string{filepath.Join(root, "compose", "demo.yaml")}})
	require.NoError(t, err)
	env, err := environment.LoadNamed(filepath.Join(root, "environments"), "staging")
	require.NoError(t, err)
	simtest.Foundation(t, sim, computeKey, st, env)
	elb := newELB(t, sim)
	tgs, err := elb.DescribeTargetGroups(context.Background(), &elbv2.DescribeTargetGroupsInput{Names: []string{"vmctl-staging-backend"}})
	require.NoError(t, err)
	arn := sdkaws.ToString(tgs.TargetGroups[0].TargetGroupArn)
	backend := newFakeTarget(t, "backend") // answers 200 on /health
	require.NoError(t, sim.RegisterTarget(arn, backend.port()))
	require.Eventually(t, func() bool {
		return targetHealthOf(t, elb, arn)[backend.port()].State == elbtypes.TargetHealthStateEnumHealthy
	},
		10*time.Second, 50*time.Millisecond)

	var tmpl map[string]any
	require.NoError(t, json.Unmarshal(simtest.Template(t, st, env), &tmpl))
	props := tmpl["Resources"].(map[string]any)[infra.LogicalTargetGroup("backend", false)].(map[string]any)["Properties"].(map[string]any)
	props["Matcher"] = map[string]any{"HttpCode": "204"}
	body, err := json.Marshal(tmpl)
	require.NoError(t, err)
	simtest.Apply(t, sim, computeKey, "staging", body)
	require.Eventually(t, func() bool {
		h := targetHealthOf(t, elb, arn)[backend.port()]
		return h.State == elbtypes.TargetHealthStateEnumUnhealthy && h.Reason == elbtypes.TargetHealthReasonEnumResponseCodeMismatch
	}, 10*time.Second, 50*time.Millisecond, "the group checks what the template says")
}

// With a domain the foundation serves HTTPS on 443 (plain HTTP stands in for TLS on the
// loopback proxy) and port 80 only redirects: DescribeListeners says both as they are, and
// the proxy answers by the HTTPS listener's rules.
func TestCloudFormationHTTPSListeners(t *testing.T) {
	sim := awssim.New()
	t.Cleanup(sim.Close)
	sim.AddUser("AKIAPROD", awssim.Principal{Account: "333333333333", ARN: "arn:aws:iam::333333333333:role/ci"})
	root := dockertest.RepoRoot()
	st, err := stack.Load(context.Background(), stack.LoadOptions{Files: []string{filepath.Join(root, "compose", "demo.yaml")}})
	require.NoError(t, err)
	env, err := environment.LoadNamed(filepath.Join(root, "environments"), "prod")
	require.NoError(t, err)
	env.AWS.Domain = "vmapp.example.com" // never dialled: the test talks to the proxy's loopback address
	env.AWS.CertificateARN = "arn:aws:acm:ap-northeast-1:333333333333:certificate/0f8e2a4c-1b3d-4e5f-8a9b-0c1d2e3f4a5b"
	out := simtest.Foundation(t, sim, "AKIAPROD", st, env)

	elb := elbv2.NewFromConfig(simtest.Config(t, sim, "AKIAPROD"))
	ls, err := elb.DescribeListeners(context.Background(), &elbv2.DescribeListenersInput{LoadBalancerArn: sdkaws.String(out[infra.OutLoadBalancer])})
	require.NoError(t, err)
	byPort := map[int32]elbtypes.Listener{}
	for _, l := range ls.Listeners {
		byPort[sdkaws.ToInt32(l.Port)] = l
	}
	require.Len(t, byPort, 2)
	https := byPort[443]
	assert.Equal(t, elbtypes.ProtocolEnumHttps, https.Protocol)
	assert.Equal(t, env.AWS.CertificateARN, sdkaws.ToString(https.Certificates[0].CertificateArn))
	assert.NotEmpty(t, sdkaws.ToString(https.SslPolicy))
	assert.Equal(t, out[infra.OutHTTPSListener], sdkaws.ToString(https.ListenerArn))
	redirect := byPort[80].DefaultActions[0]
	require.Equal(t, elbtypes.ActionTypeEnumRedirect, redirect.Type)
	assert.Equal(t, "HTTPS", sdkaws.ToString(redirect.RedirectConfig.Protocol))
	assert.Equal(t, "443", sdkaws.ToString(redirect.RedirectConfig.Port))
	assert.Equal(t, elbtypes.RedirectActionStatusCodeEnumHttp301, redirect.RedirectConfig.StatusCode)

	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get("http://" + out[infra.OutLoadBalancerDNS] + "/api/voices")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "routed by the HTTPS listener's rule to a group with no targets yet, not redirected")
}

// vmctl infra destroy on dev: the stack goes, what its template keeps (the key, the file
// system, the bucket) is skipped and named, and the load balancer and GPU hosts are gone.
func TestCloudFormationDestroyKeepsTheData(t *testing.T) {
	sim := awssim.New()
	t.Cleanup(sim.Close)
	sim.AddUser("AKIADEV", awssim.Principal{Account: "111111111111", ARN: "arn:aws:iam::111111111111:role/dev"})
	root := dockertest.RepoRoot()
	st, err := stack.Load(context.Background(), stack.LoadOptions{Files: []string{filepath.Join(root, "compose", "demo.yaml")}})
	require.NoError(t, err)
	env, err := environment.LoadNamed(filepath.Join(root, "environments"), "dev")
	require.NoError(t, err)
	out := simtest.Foundation(t, sim, "AKIADEV", st, env)
	require.NotEmpty(t, sim.GroupInstances(out[infra.OutGPUGroup]), "dev's GPU group runs its minimum")

	cfg := simtest.Config(t, sim, "AKIADEV")
	res, err := infra.Destroy(context.Background(), vmaws.NewClients(cfg).CFN, "dev", infra.WatchOptions{Poll: 10 * time.Millisecond})
	require.NoError(t, err)
	assert.Equal(t, "DELETE_COMPLETE", res.Status)
	var kept []string
	for _, r := range res.Retained {
		kept = append(kept, r.LogicalID)
	}
	assert.Subset(t, kept, []string{infra.LogicalDataKey, infra.LogicalFileSystem, infra.LogicalVideoBucket})
	_, err = elbv2.NewFromConfig(cfg).DescribeLoadBalancers(context.Background(), &elbv2.DescribeLoadBalancersInput{LoadBalancerArns: []string{out[infra.OutLoadBalancer]}})
	assert.Equal(t, "LoadBalancerNotFound", computeErrCode(err))
	assert.Empty(t, sim.GroupInstances(out[infra.OutGPUGroup]))
	_, ok := sim.StackOutputs("111111111111", "vmctl-dev")
	assert.False(t, ok)
}

// A template over CloudFormation's inline limit is staged in the account's template bucket
// and read back through TemplateURL: the same stack results, and another account cannot
// read the object.
func TestCloudFormationTemplateURL(t *testing.T) {
	sim := computeSim(t)
	root := dockertest.RepoRoot()
	st, err := stack.Load(context.Background(), stack.LoadOptions{Files: []string{filepath.Join(root, "compose", "demo.yaml")}})
	require.NoError(t, err)
	env, err := environment.LoadNamed(filepath.Join(root, "environments"), "staging")
	require.NoError(t, err)
	cfg := simtest.Config(t, sim, computeKey)
	bucket := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	ctx := context.Background()
	c := vmaws.NewClients(cfg).CFN
	opts := infra.ChangeSetOptions{Template: simtest.Template(t, st, env), InlineLimit: 1024,
		Stage: infra.S3Stager(bucket, computeAccount, "ap-northeast-1"), MinDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond}
	cs, err := infra.CreateChangeSet(ctx, c, "staging", opts)
	require.NoError(t, err)
	res, err := infra.Execute(ctx, c, cs, infra.WatchOptions{Poll: 10 * time.Millisecond})
	require.NoError(t, err)
	assert.Equal(t, "CREATE_COMPLETE", res.Status)
	assert.Equal(t, "vmctl-staging", res.Outputs[infra.OutCluster])

	// Staged again for an update with nothing new: no changes.
	again, err := infra.CreateChangeSet(ctx, c, "staging", opts)
	require.NoError(t, err)
	assert.True(t, again.Empty())

	// The object is the account's own.
	sim.AddUser("AKIAOTHER", awssim.Principal{Account: "999999999999", ARN: "arn:aws:iam::999999999999:user/other"})
	other := newCFNAs(t, sim, "AKIAOTHER")
	url := "https://" + infra.TemplateBucket(computeAccount, "ap-northeast-1") + ".s3.ap-northeast-1.amazonaws.com/vmctl-staging/nope.json"
	_, err = other.ValidateTemplate(ctx, &cloudformation.ValidateTemplateInput{TemplateURL: sdkaws.String(url)})
	assert.Contains(t, err.Error(), "TemplateURL must reference a valid S3 object to which you have access.")
}

func newCFNAs(t *testing.T, sim *awssim.Sim, key string) *cloudformation.Client {
	return cloudformation.NewFromConfig(simtest.Config(t, sim, key))
}
