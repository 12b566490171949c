package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/dockertest"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/infra"
	"github.com/vmctl/vmctl/internal/mototest"
)

// The ids an environment leaves out come from its stack's outputs, as CloudFormation (moto
// here) reports them; no stack, or one missing an output, says what to run.
func TestFoundationOutputsOnMoto(t *testing.T) {
	env, err := environment.LoadNamed(filepath.Join(dockertest.RepoRoot(), "environments"), "staging")
	require.NoError(t, err)
	m := mototest.Start(t, env.AWS.AccountID)
	cfg := m.Config(t)
	ctx := context.Background()

	_, err = withFoundation(ctx, cfg, env)
	require.EqualError(t, err, "environment staging has no foundation: stack vmctl-staging does not exist: run vmctl infra apply --env staging")
	_, err = foundationState(ctx, cfg, env)
	require.Error(t, err)

	outputs := map[string]string{
		infra.OutVPC:                           "vpc-0aaaaaaaaaaaaaaaa",
		infra.OutPublicSubnets:                 "subnet-0a000000000000001,subnet-0a000000000000002",
		infra.OutPrivateSubnets:                "subnet-0a000000000000011,subnet-0a000000000000012",
		infra.OutDatabaseSubnets:               "subnet-0a000000000000021,subnet-0a000000000000022",
		infra.OutPostgres:                      "db.example:5432",
		infra.OutRedis:                         "cache.example:6379",
		infra.OutFileSystem:                    "fs-0aaaaaaaaaaaaaaaa",
		infra.OutAccessPoint("voice_profiles"): "fsap-0a000000000000001",
		infra.OutAccessPoint("model_cache"):    "fsap-0a000000000000002",
	}
	for _, role := range []string{"alb", "frontend", "backend", "voicevox"} { // openvoice's is missing
		outputs[infra.OutSecurityGroup(role)] = "sg-0" + role
	}
	tmpl := map[string]any{
		"Resources": map[string]any{"Topic": map[string]any{"Type": "AWS::SNS::Topic"}},
		"Outputs":   map[string]any{},
	}
	for k, v := range outputs {
		tmpl["Outputs"].(map[string]any)[k] = map[string]any{"Value": v}
	}
	body, err := json.Marshal(tmpl)
	require.NoError(t, err)
	cf := cloudformation.NewFromConfig(cfg)
	_, err = cf.CreateStack(ctx, &cloudformation.CreateStackInput{StackName: sdkaws.String(infra.StackName("staging")), TemplateBody: sdkaws.String(string(body))})
	require.NoError(t, err)

	_, err = withFoundation(ctx, cfg, env)
	require.EqualError(t, err, "aws.network.security_groups.openvoice is not set and stack vmctl-staging has no output SecurityGroupOpenvoice: run vmctl infra apply --env staging, or name it in the environment file")

	env.AWS.Network.SecurityGroups = map[string]string{"openvoice": "sg-0bbbbbbbbbbbbbbbb"} // the file names it: no output needed
	got, err := withFoundation(ctx, cfg, env)
	require.NoError(t, err)
	assert.Equal(t, "subnet-0a000000000000012", got.AWS.Network.Subnets.Private[1].ID)
	assert.Equal(t, "sg-0bbbbbbbbbbbbbbbb", got.AWS.Network.SecurityGroups["openvoice"])
	assert.Equal(t, "sg-0backend", got.AWS.Network.SecurityGroups["backend"])
	state, err := foundationState(ctx, cfg, env)
	require.NoError(t, err)
	assert.Contains(t, state, "stack vmctl-staging CREATE_COMPLETE")
}

// --debug reaches every AWS client a command builds: doctor's STS and CloudFormation calls
// are logged, one line each, on stderr.
func TestDebugLogsEveryAWSCall(t *testing.T) {
	m := mototest.Start(t, "222222222222")
	var out, errOut bytes.Buffer
	f := testFactory(nil, &out, &errOut)
	f.AWSConfig = func(context.Context, *environment.Environment) (sdkaws.Config, error) { return m.Config(t), nil }
	envDir := filepath.Join(dockertest.RepoRoot(), "environments")
	Run(context.Background(), f, []string{"--env-dir", envDir, "doctor", "--env", "staging", "--debug"})
	assert.Regexp(t, `(?m)^aws: STS\.GetCallerIdentity POST 127\.0\.0\.1:\d+ → 200 request-id=\S+ attempt=1 `, errOut.String())
	assert.Regexp(t, `(?m)^aws: CloudFormation\.DescribeStacks POST 127\.0\.0\.1:\d+ → 400 request-id=\S+ attempt=1 .* error=ValidationError$`, errOut.String())
	assert.Contains(t, out.String(), "stack vmctl-staging does not exist")

	errOut.Reset()
	Run(context.Background(), f, []string{"--env-dir", envDir, "doctor", "--env", "staging"})
	assert.NotContains(t, errOut.String(), "aws: ")
}
