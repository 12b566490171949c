package pipeline_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/pipeline"
)

func shippedEnvironments(t *testing.T) []*environment.Environment {
	t.Helper()
	dir := filepath.Join("..", "..", "environments")
	names, err := environment.Names(dir)
	require.NoError(t, err)
	var envs []*environment.Environment
	for _, n := range names {
		e, err := environment.LoadNamed(dir, n)
		require.NoError(t, err)
		envs = append(envs, e)
	}
	return envs
}

func order(p *pipeline.Pipeline) []string {
	var names []string
	for _, e := range p.Environments() {
		names = append(names, e.Name)
	}
	return names
}

func TestTheShippedFilesGiveDevStagingProd(t *testing.T) {
	p, err := pipeline.New(shippedEnvironments(t))
	require.NoError(t, err)
	assert.Equal(t, []string{"dev", "staging", "prod"}, order(p))
	require.Len(t, p.Promotions, 2)
	assert.Equal(t, "dev", p.Promotions[0].From.Name)
	assert.Equal(t, "staging", p.Promotions[1].From.Name)
	assert.Nil(t, p.Environment("local"), "the local environment is no stage")
}

func awsEnv(name string, auto, protected bool, strategy environment.Strategy) *environment.Environment {
	return &environment.Environment{Name: name, File: name + ".yaml", Kind: environment.KindAWS, Protected: protected,
		AWS: &environment.AWS{AccountID: "123456789012", Region: "eu-west-1",
			Deployment: environment.Deployment{Auto: auto, Strategy: strategy}}}
}

func TestTheOrderComesFromTheFilesNotTheNames(t *testing.T) {
	rolling, bg := environment.StrategyRolling, environment.StrategyBlueGreen
	p, err := pipeline.New([]*environment.Environment{
		awsEnv("alpha", false, true, bg),       // protected, blue/green: last
		awsEnv("beta", false, true, rolling),   // protected, rolling
		awsEnv("omega", false, false, rolling), // unprotected: right after the auto one
		awsEnv("zulu", true, false, rolling),   // auto: first
		{Name: "local", Kind: environment.KindLocal},
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"zulu", "omega", "beta", "alpha"}, order(p))
}

func TestPipelinesThatCannotBe(t *testing.T) {
	rolling := environment.StrategyRolling
	for name, envs := range map[string][]*environment.Environment{
		"no auto environment":    {awsEnv("dev", false, false, rolling), awsEnv("prod", false, true, rolling)},
		"two auto environments":  {awsEnv("dev", true, false, rolling), awsEnv("qa", true, false, rolling)},
		"a name no job can have": {awsEnv("dev env", true, false, rolling)},
		"the ship job's name":    {awsEnv("ship", true, false, rolling)},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := pipeline.New(envs)
			require.Error(t, err)
			assert.NotContains(t, err.Error(), "\n")
		})
	}
	_, err := pipeline.New([]*environment.Environment{awsEnv("prod", false, true, rolling)})
	assert.ErrorIs(t, err, pipeline.ErrNoAuto)
}

func TestRoleARNsAreCheckedAgainstTheAccount(t *testing.T) {
	e := awsEnv("staging", false, true, environment.StrategyRolling)
	assert.NoError(t, pipeline.CheckRoleARN(e, "arn:aws:iam::123456789012:role/ci/vmctl-release"))
	assert.ErrorContains(t, pipeline.CheckRoleARN(e, "arn:aws:iam::999999999999:role/vmctl-release"), "account 999999999999")
	assert.ErrorContains(t, pipeline.CheckRoleARN(e, "arn:aws:iam::123456789012:user/someone"), "not an IAM role ARN")
	assert.ErrorContains(t, pipeline.CheckRoleARN(e, "AKIAIOSFODNN7EXAMPLE"), "not an IAM role ARN")
}

func TestNamesForTheCI(t *testing.T) {
	assert.Equal(t, "VMCTL_DEV_ROLE_ARN", pipeline.RoleVariable("dev"))
	assert.Equal(t, "VMCTL_EU_PROD_ROLE_ARN", pipeline.RoleVariable("eu-prod"))
	e := awsEnv("dev", true, false, environment.StrategyRolling)
	assert.Equal(t, "vmctl-dev", pipeline.Profile(e))
	e.AWS.Profile = "vmapp-dev-sso"
	assert.Equal(t, "vmapp-dev-sso", pipeline.Profile(e), "the file's own profile, so vmctl needs no flag")
}
