package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/acm"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/efs"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/dockertest"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/infra"
	"github.com/vmctl/vmctl/internal/mototest"
)

// infraEnvDir is a copy of the shipped dev and staging files, dev's edited by edit (the
// certificate, a size), in a directory of its own.
func infraEnvDir(t testing.TB, dir string, edit func(dev string) string) string {
	t.Helper()
	for _, name := range []string{"dev", "staging"} {
		b, err := os.ReadFile(filepath.Join(dockertest.RepoRoot(), "environments", name+".yaml"))
		require.NoError(t, err)
		s := string(b)
		if name == "dev" && edit != nil {
			s = edit(s)
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(s), 0o644))
	}
	return dir
}

// withCertificate gives dev a domain and the ACM certificate of it, so the ALB serves HTTPS.
func withCertificate(arn string) func(string) string {
	return func(s string) string {
		return strings.Replace(s, "  network:", "  domain: dev.vmapp.example.com\n  certificate_arn: "+arn+"\n  network:", 1)
	}
}

// motoAdapter cuts every template vmctl sends to CloudFormation down to what moto 5.2 creates
// (mototest.CloudFormationSubset), inside the SDK, so the command under test renders and
// sends the real template; it records what was left out.
type motoAdapter struct {
	mu   sync.Mutex
	left []string
}

func (a *motoAdapter) config(srv *mototest.Server, t testing.TB) func(context.Context, *environment.Environment) (sdkaws.Config, error) {
	return func(context.Context, *environment.Environment) (sdkaws.Config, error) {
		cfg := srv.Config(t)
		cfg.APIOptions = append(cfg.APIOptions, func(st *middleware.Stack) error {
			return st.Initialize.Add(middleware.InitializeMiddlewareFunc("motoSubset", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				var body **string
				switch p := in.Parameters.(type) {
				case *cloudformation.CreateStackInput:
					body = &p.TemplateBody
				case *cloudformation.CreateChangeSetInput:
					body = &p.TemplateBody
				}
				if body != nil && *body != nil {
					// moto models no RDS-managed secret.
					sub, left, err := mototest.CloudFormationSubset([]byte(**body), "Database.MasterUserSecret.SecretArn")
					if err != nil {
						return middleware.InitializeOutput{}, middleware.Metadata{}, err
					}
					*body = sdkaws.String(string(sub))
					a.mu.Lock()
					a.left = left
					a.mu.Unlock()
				}
				return next.HandleInitialize(ctx, in)
			}), middleware.After)
		})
		return cfg, nil
	}
}

func runInfra(t *testing.T, f func(out, errOut *bytes.Buffer) *Factory, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Run(context.Background(), f(&out, &errOut), append([]string{"-f", "../../compose/compose.yaml"}, args...))
	return code, out.String(), errOut.String()
}

// vmctl infra apply of the real rendered dev template against moto, read back through the
// SDK; then an unchanged apply, one size changed, and a change that would remove a stateful
// resource.
func TestInfraApplyAgainstMoto(t *testing.T) {
	srv := mototest.Start(t, "111111111111")
	cfg := srv.Config(t)
	ctx := context.Background()
	cert, err := acm.NewFromConfig(cfg).RequestCertificate(ctx, &acm.RequestCertificateInput{DomainName: sdkaws.String("dev.vmapp.example.com")})
	require.NoError(t, err)
	certARN := sdkaws.ToString(cert.CertificateArn)
	dir := infraEnvDir(t, t.TempDir(), withCertificate(certARN))
	adapter := &motoAdapter{}
	factory := func(out, errOut *bytes.Buffer) *Factory {
		f := testFactory(nil, out, errOut)
		f.AWSConfig = adapter.config(srv, t)
		return f
	}

	code, out, errOut := runInfra(t, factory, "--env-dir", dir, "--progress", "plain", "infra", "apply", "--env", "dev", "-o", "json")
	require.Equal(t, ExitOK, code, errOut)
	assert.Contains(t, errOut, "applying stack vmctl-dev to dev (account 111111111111 as ")
	assert.Contains(t, errOut, "Stack vmctl-dev does not exist yet: applying creates 109 resources\n")
	assert.Contains(t, errOut, "vmctl-dev CREATE_COMPLETE\n", "plain progress lines")
	var res applyResult
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	assert.Equal(t, "CREATE_COMPLETE", res.Status)
	t.Logf("moto's CloudFormation does not model: %v", adapter.left)

	// What moto cannot create is what its CloudFormation does not model, and nothing else.
	for _, id := range adapter.left {
		assert.Regexp(t, `^(Alarm|Budget|Cache|Cdn|ClusterCapacityProviders|CostAnomaly|DatabaseSchedule|GpuCapacityProvider|Namespace|VideoBucketPolicy|WebAcl|Outputs\.(CdnDomainName|PostgresSecretArn|RedisEndpoint)$)`, id)
	}

	o := res.Outputs
	e2 := ec2.NewFromConfig(cfg)
	vpcs, err := e2.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{VpcIds: []string{o[infra.OutVPC]}})
	require.NoError(t, err)
	assert.Equal(t, "10.0.0.0/16", sdkaws.ToString(vpcs.Vpcs[0].CidrBlock))
	subnets, err := e2.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: []ec2types.Filter{{Name: sdkaws.String("vpc-id"), Values: []string{o[infra.OutVPC]}}}})
	require.NoError(t, err)
	got := map[string]string{}
	for _, s := range subnets.Subnets {
		got[sdkaws.ToString(s.SubnetId)] = sdkaws.ToString(s.CidrBlock) + " " + sdkaws.ToString(s.AvailabilityZone)
	}
	want := map[string]string{}
	for key, cidrs := range map[string][]string{
		infra.OutPublicSubnets:   {"10.0.1.0/24", "10.0.2.0/24"},
		infra.OutPrivateSubnets:  {"10.0.11.0/24", "10.0.12.0/24"},
		infra.OutDatabaseSubnets: {"10.0.21.0/24", "10.0.22.0/24"},
	} {
		ids := strings.Split(o[key], ",")
		require.Len(t, ids, 2, key)
		want[ids[0]] = cidrs[0] + " ap-northeast-1a"
		want[ids[1]] = cidrs[1] + " ap-northeast-1c"
	}
	assert.Equal(t, want, got, "six subnets, two AZs, in the stack's VPC, as its outputs say")

	// Every security group rule, by group: exactly seed §2.2's, nothing wider.
	sg := func(role string) string { return o[infra.OutSecurityGroup(role)] }
	groups, err := e2.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: []ec2types.Filter{{Name: sdkaws.String("vpc-id"), Values: []string{o[infra.OutVPC]}}}})
	require.NoError(t, err)
	name := map[string]string{}
	for _, role := range []string{"alb", "frontend", "backend", "voicevox", "openvoice", "rds", "redis", "efs"} {
		name[sg(role)] = role
	}
	rules := map[string][]string{}
	for _, g := range groups.SecurityGroups {
		role, ok := name[sdkaws.ToString(g.GroupId)]
		if !ok {
			role = sdkaws.ToString(g.GroupName) // the VPC's default group, the endpoints' group
		}
		for _, p := range g.IpPermissions {
			for _, r := range p.IpRanges {
				rules[role] = append(rules[role], ruleText(p, sdkaws.ToString(r.CidrIp)))
			}
			for _, pair := range p.UserIdGroupPairs {
				from := name[sdkaws.ToString(pair.GroupId)]
				if from == "" {
					from = sdkaws.ToString(pair.GroupId)
				}
				rules[role] = append(rules[role], ruleText(p, from))
			}
		}
		slices.Sort(rules[role])
	}
	for role, want := range map[string][]string{
		"alb":       {"tcp 443 from 0.0.0.0/0", "tcp 80 from 0.0.0.0/0"},
		"frontend":  {"tcp 55434 from alb"},
		"backend":   {"tcp 55433 from alb"},
		"voicevox":  {"tcp 50021 from backend"},
		"openvoice": {"tcp 8001 from backend"}, // no bastion declared: no 22
		"rds":       {"tcp 5432 from backend"},
		"redis":     {"tcp 6379 from backend"},
		"efs":       {"tcp 2049 from backend", "tcp 2049 from openvoice"},
	} {
		assert.Equal(t, want, rules[role], role)
	}

	lb := elbv2.NewFromConfig(cfg)
	listeners, err := lb.DescribeListeners(ctx, &elbv2.DescribeListenersInput{LoadBalancerArn: sdkaws.String(o[infra.OutLoadBalancer])})
	require.NoError(t, err)
	require.Len(t, listeners.Listeners, 2)
	for _, l := range listeners.Listeners {
		switch sdkaws.ToInt32(l.Port) {
		case 443:
			assert.Equal(t, "HTTPS", string(l.Protocol))
			require.Len(t, l.Certificates, 1)
			assert.Equal(t, certARN, sdkaws.ToString(l.Certificates[0].CertificateArn))
			assert.Contains(t, sdkaws.ToString(l.SslPolicy), "TLS13")
			assert.Equal(t, o[infra.OutHTTPSListener], sdkaws.ToString(l.ListenerArn))
		case 80:
			require.Len(t, l.DefaultActions, 1)
			rc := l.DefaultActions[0].RedirectConfig
			require.NotNil(t, rc, "port 80 only redirects")
			assert.Equal(t, "HTTPS", sdkaws.ToString(rc.Protocol))
			assert.Equal(t, "443", sdkaws.ToString(rc.Port))
		default:
			t.Errorf("unexpected listener on port %d", sdkaws.ToInt32(l.Port))
		}
	}
	tgs, err := lb.DescribeTargetGroups(ctx, &elbv2.DescribeTargetGroupsInput{LoadBalancerArn: sdkaws.String(o[infra.OutLoadBalancer])})
	require.NoError(t, err)
	health := map[string]string{}
	for _, tg := range tgs.TargetGroups {
		health[sdkaws.ToString(tg.TargetGroupName)] = sdkaws.ToString(tg.HealthCheckPath) + " " + string(tg.Protocol) + " " + itoa(sdkaws.ToInt32(tg.Port))
	}
	assert.Equal(t, map[string]string{"vmctl-dev-frontend": "/ HTTP 55434", "vmctl-dev-backend": "/health HTTP 55433"}, health)

	asg, err := autoscaling.NewFromConfig(cfg).DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{o[infra.OutGPUGroup]}})
	require.NoError(t, err)
	require.Len(t, asg.AutoScalingGroups, 1)
	group := asg.AutoScalingGroups[0]
	assert.Equal(t, int32(1), sdkaws.ToInt32(group.MinSize))
	assert.Equal(t, int32(2), sdkaws.ToInt32(group.MaxSize))
	gpuType := ""
	if mip := group.MixedInstancesPolicy; mip != nil && mip.LaunchTemplate != nil && len(mip.LaunchTemplate.Overrides) > 0 {
		gpuType = sdkaws.ToString(mip.LaunchTemplate.Overrides[0].InstanceType)
	}
	for _, i := range group.Instances {
		gpuType = sdkaws.ToString(i.InstanceType)
	}
	assert.Equal(t, "g4dn.xlarge", gpuType)

	dbs, err := rds.NewFromConfig(cfg).DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{})
	require.NoError(t, err)
	require.Len(t, dbs.DBInstances, 1)
	db := dbs.DBInstances[0]
	assert.Equal(t, "postgres", sdkaws.ToString(db.Engine))
	assert.True(t, sdkaws.ToBool(db.MultiAZ))
	assert.Equal(t, int32(7), sdkaws.ToInt32(db.BackupRetentionPeriod))
	assert.True(t, sdkaws.ToBool(db.StorageEncrypted))
	t.Log("not checked here: moto 5.2's CloudFormation drops an RDS instance's DeletionProtection")

	fsys, err := efs.NewFromConfig(cfg).DescribeFileSystems(ctx, &efs.DescribeFileSystemsInput{FileSystemId: sdkaws.String(o[infra.OutFileSystem])})
	require.NoError(t, err)
	require.Len(t, fsys.FileSystems, 1)
	assert.True(t, sdkaws.ToBool(fsys.FileSystems[0].Encrypted))
	mts, err := efs.NewFromConfig(cfg).DescribeMountTargets(ctx, &efs.DescribeMountTargetsInput{FileSystemId: sdkaws.String(o[infra.OutFileSystem])})
	require.NoError(t, err)
	assert.Len(t, mts.MountTargets, 2, "one per private subnet")

	bucket := o[infra.OutVideoBucket]
	s3c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	enc, err := s3c.GetBucketEncryption(ctx, &s3.GetBucketEncryptionInput{Bucket: sdkaws.String(bucket)})
	require.NoError(t, err)
	require.Len(t, enc.ServerSideEncryptionConfiguration.Rules, 1)
	assert.Equal(t, "aws:kms", string(enc.ServerSideEncryptionConfiguration.Rules[0].ApplyServerSideEncryptionByDefault.SSEAlgorithm))
	t.Log("not checked here: moto 5.2's CloudFormation keeps only a bucket's encryption and tags, not its lifecycle, versioning or public access block")

	// Unchanged: nothing to do, and it says so.
	code, out, errOut = runInfra(t, factory, "--env-dir", dir, "infra", "apply", "--env", "dev")
	require.Equal(t, ExitOK, code, errOut)
	assert.Contains(t, errOut, "environment dev is unchanged: stack vmctl-dev already matches its file\n")
	assert.Empty(t, out)

	// One size changed: the live plan shows exactly that modification, and apply makes it.
	grow := func(s string) string {
		return strings.Replace(withCertificate(certARN)(s), "      storage_gib: 50", "      storage_gib: 60", 1)
	}
	infraEnvDir(t, dir, grow)
	code, out, errOut = runInfra(t, factory, "--env-dir", dir, "infra", "plan", "--env", "dev", "--live", "-o", "json")
	require.Equal(t, ExitOK, code, errOut)
	var cs infra.ChangeSet
	require.NoError(t, json.Unmarshal([]byte(out), &cs))
	// moto names no physical id nor properties; CloudFormation would add both.
	assert.Equal(t, []infra.Change{{Action: infra.ActionModify, LogicalID: "Database", Type: "AWS::RDS::DBInstance", Stateful: true}}, cs.Changes)
	assert.Empty(t, listChangeSets(t, cfg), "the preview's change set is deleted")
	code, _, errOut = runInfra(t, factory, "--env-dir", dir, "infra", "apply", "--env", "dev")
	require.Equal(t, ExitOK, code, errOut)
	assert.Contains(t, errOut, "modify\tDatabase\tAWS::RDS::DBInstance\t-\n", "a stateful resource modified in place is no replacement")
	assert.Contains(t, errOut, "stack vmctl-dev is UPDATE_COMPLETE: 1 changes applied to dev")
	t.Log("not checked here: moto 5.2's CloudFormation updates no RDS instance in place (its storage stays 50)")

	// The GPU group's max: the group and the scheduled start that restores it change; moto
	// applies that update.
	gpuMax := func(s string) string {
		s = grow(s)
		i := strings.Index(s, "  openvoice:")
		return s[:i] + strings.Replace(s[i:], "    max: 2", "    max: 3", 1)
	}
	infraEnvDir(t, dir, gpuMax)
	code, out, errOut = runInfra(t, factory, "--env-dir", dir, "infra", "plan", "--env", "dev", "--live")
	require.Equal(t, ExitOK, code, errOut)
	assert.Equal(t, "Stack vmctl-dev would change: 0 to add, 2 to modify, 0 to replace, 0 to remove\nACTION\tRESOURCE\tTYPE\tDETAIL\nmodify\tGpuAutoScalingGroup\tAWS::AutoScaling::AutoScalingGroup\t-\nmodify\tGpuScheduleStart\tAWS::AutoScaling::ScheduledAction\t-\n", out)
	code, _, errOut = runInfra(t, factory, "--env-dir", dir, "infra", "apply", "--env", "dev")
	require.Equal(t, ExitOK, code, errOut)
	asg, err = autoscaling.NewFromConfig(cfg).DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{o[infra.OutGPUGroup]}})
	require.NoError(t, err)
	assert.Equal(t, int32(3), sdkaws.ToInt32(asg.AutoScalingGroups[0].MaxSize))

	// Bringing its own database would remove the foundation's: refused, nothing changed.
	infraEnvDir(t, dir, func(s string) string {
		return strings.Replace(gpuMax(s), "    postgres:", "    postgres:\n      endpoint: db.example.internal:5432", 1)
	})
	code, _, errOut = runInfra(t, factory, "--env-dir", dir, "infra", "apply", "--env", "dev", "--yes")
	assert.Equal(t, ExitError, code, errOut)
	assert.Contains(t, errOut, "vmctl: refused to change stack vmctl-dev: the change set would remove Database (AWS::RDS::DBInstance)")
	assert.Contains(t, errOut, "--allow-replace Database\n")
	assert.Empty(t, listChangeSets(t, cfg), "the refused change set is deleted")
	dbs, err = rds.NewFromConfig(cfg).DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{})
	require.NoError(t, err)
	assert.Len(t, dbs.DBInstances, 1)

	code, out, errOut = runInfra(t, factory, "--env-dir", dir, "infra", "status", "--env", "dev", "--drift-timeout", "2s")
	require.Equal(t, ExitOK, code, errOut)
	assert.Contains(t, out, "Stack vmctl-dev: UPDATE_COMPLETE (healthy)\n")
	assert.Contains(t, out, "Drift: UNKNOWN: CloudFormation could not detect drift: ")
	assert.Contains(t, out, infra.OutVPC+"\t"+o[infra.OutVPC]+"\n")

	// destroy asks for the environment's name on a terminal; a wrong one changes nothing.
	typed := func(answer string) func(out, errOut *bytes.Buffer) *Factory {
		return func(out, errOut *bytes.Buffer) *Factory {
			f := factory(out, errOut)
			f.IO.In, f.IO.ErrIsTerminal = strings.NewReader(answer), true
			return f
		}
	}
	code, _, errOut = runInfra(t, typed("prod\n"), "--env-dir", dir, "--progress", "plain", "infra", "destroy", "--env", "dev")
	assert.Equal(t, ExitError, code)
	assert.Contains(t, errOut, `Type "dev" to confirm: vmctl: destroy vmctl-dev: not confirmed: the answer was not "dev"; nothing was changed`)
	// moto 5.2 deletes a stack's resources in no dependency order (its VPC first, refused):
	// TestInfraDestroyKeepsTheData destroys a smaller stack.
}

// destroy of an unprotected environment deletes the stack, says what its policies keep,
// and leaves no foundation behind.
func TestInfraDestroyKeepsTheData(t *testing.T) {
	srv := mototest.Start(t, "111111111111")
	cfg := srv.Config(t)
	ctx := context.Background()
	tpl := `{"Resources":{
		"VideoBucket":{"Type":"AWS::S3::Bucket","DeletionPolicy":"Retain","Properties":{"BucketName":"vmctl-dev-videos"}},
		"AlarmTopic":{"Type":"AWS::SNS::Topic","Properties":{"TopicName":"vmctl-dev-alarms"}}},
		"Outputs":{"VideoBucketName":{"Value":{"Ref":"VideoBucket"}}}}`
	_, err := cloudformation.NewFromConfig(cfg).CreateStack(ctx, &cloudformation.CreateStackInput{StackName: sdkaws.String("vmctl-dev"), TemplateBody: sdkaws.String(tpl)})
	require.NoError(t, err)
	factory := func(out, errOut *bytes.Buffer) *Factory {
		f := testFactory(nil, out, errOut)
		f.AWSConfig = func(context.Context, *environment.Environment) (sdkaws.Config, error) { return cfg, nil }
		return f
	}
	envDir := filepath.Join(dockertest.RepoRoot(), "environments")

	code, _, errOut := runInfra(t, factory, "--env-dir", envDir, "infra", "destroy", "--env", "dev")
	assert.Equal(t, ExitError, code)
	assert.Equal(t, "vmctl: destroy vmctl-dev: not confirmed: pass --yes, or run it on a terminal and type \"dev\"; nothing was changed\n", errOut)

	// --all reads every AWS environment with its own credentials: moto is dev's account only.
	code, out, errOut := runInfra(t, factory, "--env-dir", envDir, "infra", "status", "--all")
	assert.Equal(t, ExitError, code)
	assert.Contains(t, out, "ENVIRONMENT\tSTACK\tSTATUS\tUPDATED\tDRIFT\tNEXT\ndev\tvmctl-dev\tCREATE_COMPLETE\t")
	assert.Contains(t, out, "\nprod\tvmctl-prod\t-\t-\t-\tcredentials are for account 111111111111")
	assert.Equal(t, 1, strings.Count(errOut, "\n"), errOut)
	assert.Contains(t, errOut, "vmctl: 2 of 3 environments could not be read: ")

	code, out, errOut = runInfra(t, factory, "--env-dir", envDir, "--progress", "plain", "infra", "destroy", "--env", "dev", "--yes")
	require.Equal(t, ExitOK, code, errOut)
	assert.Contains(t, errOut, "vmctl-dev DELETE_COMPLETE\nstack vmctl-dev is deleted\nkept, as their DeletionPolicy says")
	assert.Equal(t, "RESOURCE\tTYPE\tID\tPOLICY\nVideoBucket\tAWS::S3::Bucket\tvmctl-dev-videos\tRetain\n", out)
	_, err = s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }).HeadBucket(ctx, &s3.HeadBucketInput{Bucket: sdkaws.String("vmctl-dev-videos")})
	require.NoError(t, err, "the bucket is kept")
	_, err = infra.ReadOutputs(ctx, cloudformation.NewFromConfig(cfg), "dev")
	require.EqualError(t, err, "environment dev has no foundation: stack vmctl-dev does not exist: run vmctl infra apply --env dev")

	code, _, errOut = runInfra(t, factory, "--env-dir", envDir, "infra", "destroy", "--env", "dev", "--yes")
	require.Equal(t, ExitOK, code, errOut)
	assert.Equal(t, "stack vmctl-dev does not exist: nothing to destroy in dev\n", errOut)
}

func ruleText(p ec2types.IpPermission, from string) string {
	ports := itoa(sdkaws.ToInt32(p.FromPort))
	if to := itoa(sdkaws.ToInt32(p.ToPort)); to != ports {
		ports += "-" + to
	}
	return sdkaws.ToString(p.IpProtocol) + " " + ports + " from " + from
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

func listChangeSets(t *testing.T, cfg sdkaws.Config) []string {
	t.Helper()
	out, err := cloudformation.NewFromConfig(cfg).ListChangeSets(context.Background(), &cloudformation.ListChangeSetsInput{StackName: sdkaws.String("vmctl-dev")})
	require.NoError(t, err)
	var names []string
	for _, s := range out.Summaries {
		// moto keeps executed change sets; CloudFormation removes them.
		if s.ExecutionStatus != "EXECUTE_COMPLETE" {
			names = append(names, sdkaws.ToString(s.ChangeSetName))
		}
	}
	return names
}

// template and plan read only the files: no AWS configuration is touched.
func TestInfraTemplateAndPlanOffline(t *testing.T) {
	factory := func(out, errOut *bytes.Buffer) *Factory {
		f := testFactory(nil, out, errOut)
		f.AWSConfig = func(context.Context, *environment.Environment) (sdkaws.Config, error) {
			t.Error("an offline command asked for AWS credentials")
			return sdkaws.Config{}, nil
		}
		return f
	}
	envDir := filepath.Join(dockertest.RepoRoot(), "environments")
	code, out, errOut := runInfra(t, factory, "--env-dir", envDir, "infra", "template", "--env", "prod")
	require.Equal(t, ExitOK, code, errOut)
	var tpl struct {
		Description string
		Resources   map[string]struct{ Type string }
		Outputs     map[string]any
	}
	require.NoError(t, json.Unmarshal([]byte(out), &tpl))
	assert.Contains(t, tpl.Description, "vmctl-prod")
	assert.Equal(t, "AWS::RDS::DBInstance", tpl.Resources["Database"].Type)
	assert.Contains(t, tpl.Outputs, infra.OutVPC)

	code, out, errOut = runInfra(t, factory, "--env-dir", envDir, "infra", "plan", "--env", "prod")
	require.Equal(t, ExitOK, code, errOut)
	assert.Regexp(t, `^Foundation of prod: stack vmctl-prod in account 333333333333, ap-northeast-1: \d+ resources\n`, out)
	assert.Contains(t, out, "AWS::EC2::NatGateway\t2\n", "prod: one NAT gateway per zone")
	assert.Contains(t, out, "Database\tAWS::RDS::DBInstance\tpostgres 16, db.t4g.medium, 50 GiB, Multi-AZ true, backups 7 days, encrypted true, deletion protection true\tSnapshot (stateful)\n")
	assert.Contains(t, out, "SecurityGroupRdsIngressBackend\tAWS::EC2::SecurityGroupIngress\tSecurityGroupRds: 5432/tcp from SecurityGroupBackend\t-\n")
	assert.Contains(t, out, "VideoBucket\tAWS::S3::Bucket\tversioning Enabled, STANDARD_IA at 30 d, GLACIER at 90 d\tRetain (stateful)\n")

	code, out, errOut = runInfra(t, factory, "--env-dir", envDir, "infra", "plan", "--env", "dev", "-o", "json")
	require.Equal(t, ExitOK, code, errOut)
	var sum struct {
		Env     string         `json:"environment"`
		Stack   string         `json:"stack"`
		ByType  map[string]int `json:"by_type"`
		Results int            `json:"resources"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &sum))
	assert.Equal(t, "vmctl-dev", sum.Stack)
	assert.Equal(t, 1, sum.ByType["AWS::EC2::NatGateway"], "dev shares one NAT gateway")
	assert.Equal(t, 6, sum.ByType["AWS::EC2::Subnet"])
}

// Bad input is one line, exits non-zero, and changes nothing: not even a credential is
// asked for where the files alone say no.
func TestInfraBadInput(t *testing.T) {
	envDir := filepath.Join(dockertest.RepoRoot(), "environments")
	noAWS := func(out, errOut *bytes.Buffer) *Factory {
		f := testFactory(nil, out, errOut)
		f.AWSConfig = func(context.Context, *environment.Environment) (sdkaws.Config, error) {
			t.Error("asked for AWS credentials")
			return sdkaws.Config{}, nil
		}
		return f
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown environment", []string{"infra", "template", "--env", "nope"}, ExitError, `vmctl: unknown environment "nope": ` + envDir + " has dev, local, prod, staging"},
		{"local environment", []string{"infra", "plan", "--env", "local"}, ExitUsage, "vmctl: environment local is local, not an AWS environment: it has no foundation stack"},
		{"protected destroy", []string{"infra", "destroy", "--env", "prod", "--yes"}, ExitError, "vmctl: destroy vmctl-prod: refused: prod is protected, and vmctl never destroys a protected environment's foundation; nothing was changed"},
		{"protected staging destroy", []string{"infra", "destroy", "--env", "staging", "--yes"}, ExitError, "vmctl: destroy vmctl-staging: refused: staging is protected"},
		{"not stateful", []string{"infra", "apply", "--env", "dev", "--allow-replace", "Vpc"}, ExitUsage, "vmctl: --allow-replace Vpc: not a stateful resource or a blue/green production rule: name one of Database, FileSystem, VideoBucket, DataKey"},
		{"status of nothing", []string{"infra", "status"}, ExitUsage, "vmctl: name one environment with --env, or all with --all"},
		{"status of both", []string{"infra", "status", "--env", "dev", "--all"}, ExitUsage, "vmctl: name one environment with --env, or all with --all"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runInfra(t, noAWS, append([]string{"--env-dir", envDir}, tt.args...)...)
			assert.Equal(t, tt.code, code)
			assert.Empty(t, out)
			assert.Contains(t, errOut, tt.want)
			if tt.code == ExitError {
				assert.Equal(t, 1, strings.Count(errOut, "\n"), "one line: %q", errOut)
			}
		})
	}
}

// Without approval nothing is created: a protected environment in CI without --approve-prod,
// and a destroy nobody confirmed.
func TestInfraWithoutApprovalCreatesNothing(t *testing.T) {
	srv := mototest.Start(t, "222222222222")
	adapter := &motoAdapter{}
	factory := func(out, errOut *bytes.Buffer) *Factory {
		f := testFactory(nil, out, errOut)
		f.AWSConfig = adapter.config(srv, t)
		return f
	}
	envDir := filepath.Join(dockertest.RepoRoot(), "environments")
	for _, args := range [][]string{
		{"infra", "apply", "--env", "staging"},
		{"infra", "apply", "--env", "staging", "--yes"},
	} {
		code, out, errOut := runInfra(t, factory, append([]string{"--env-dir", envDir}, args...)...)
		assert.Equal(t, ExitError, code, errOut)
		assert.Empty(t, out)
		assert.Contains(t, errOut, "vmctl: apply the foundation stack vmctl-staging to staging: not approved: staging is protected: ")
		assert.Equal(t, 1, strings.Count(errOut, "\n"), "one line: %q", errOut)
	}
	// On a terminal the preview comes first, then the question; a wrong answer creates nothing.
	typed := func(out, errOut *bytes.Buffer) *Factory {
		f := factory(out, errOut)
		f.IO.In, f.IO.ErrIsTerminal = strings.NewReader("yes\n"), true
		return f
	}
	code, _, errOut := runInfra(t, typed, "--env-dir", envDir, "infra", "apply", "--env", "staging")
	assert.Equal(t, ExitError, code)
	assert.Contains(t, errOut, "Stack vmctl-staging does not exist yet: applying creates ")
	assert.Contains(t, errOut, `Apply the foundation stack vmctl-staging to staging? staging is protected: type "staging" to confirm: vmctl: apply the foundation stack vmctl-staging to staging: not approved: the answer was not "staging"; nothing was changed in staging`)
	st, err := infra.DescribeStack(context.Background(), cloudformation.NewFromConfig(srv.Config(t)), "staging")
	require.NoError(t, err)
	assert.Nil(t, st, "nothing was created")
	assert.Nil(t, adapter.left, "no template was sent")
}
