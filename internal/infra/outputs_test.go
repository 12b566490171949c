package infra_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/infra"
)

func shipped(t *testing.T, name string) *environment.Environment {
	t.Helper()
	env, err := environment.LoadNamed("../../environments", name)
	require.NoError(t, err)
	return env
}

// stackOutputs is what a complete foundation stack for staging reports.
func stackOutputs() map[string]string {
	out := map[string]string{
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
	for _, role := range []string{"alb", "frontend", "backend", "voicevox", "openvoice"} {
		out[infra.OutSecurityGroup(role)] = "sg-" + role
	}
	return out
}

func TestResolveFillsWhatTheFileLeavesOut(t *testing.T) {
	env := shipped(t, "staging")
	require.True(t, infra.Needs(env))
	got, err := infra.Resolve(env, stackOutputs())
	require.NoError(t, err)
	assert.False(t, infra.Needs(got))
	n := got.AWS.Network
	assert.Equal(t, "vpc-0aaaaaaaaaaaaaaaa", n.VPCID)
	assert.Equal(t, "subnet-0a000000000000012", n.Subnets.Private[1].ID)
	assert.Equal(t, "10.0.12.0/24", n.Subnets.Private[1].CIDR, "the file's own fields stay")
	assert.Equal(t, "sg-openvoice", n.SecurityGroups["openvoice"])
	assert.Equal(t, "fsap-0a000000000000002", got.AWS.Stores.EFS.Volumes["model_cache"].AccessPointID)
	assert.Equal(t, "db.example:5432", got.AWS.Stores.Postgres.Endpoint)
	assert.Empty(t, env.AWS.Network.VPCID, "the loaded environment is not changed")
	assert.Empty(t, env.AWS.Network.Subnets.Private[0].ID)
}

func TestResolveKeepsWhatTheFileNames(t *testing.T) {
	env := shipped(t, "staging")
	env.AWS.Network.SecurityGroups = map[string]string{"backend": "sg-0bbbbbbbbbbbbbbbb"}
	env.AWS.Stores.Postgres.Endpoint = "mine.example:5432"
	got, err := infra.Resolve(env, stackOutputs())
	require.NoError(t, err)
	assert.Equal(t, "sg-0bbbbbbbbbbbbbbbb", got.AWS.Network.SecurityGroups["backend"])
	assert.Equal(t, "sg-frontend", got.AWS.Network.SecurityGroups["frontend"])
	assert.Equal(t, "mine.example:5432", got.AWS.Stores.Postgres.Endpoint)
}

func TestResolveNamesTheMissingOutput(t *testing.T) {
	out := stackOutputs()
	delete(out, infra.OutSecurityGroup("voicevox"))
	_, err := infra.Resolve(shipped(t, "prod"), out)
	var missing *infra.MissingOutputError
	require.ErrorAs(t, err, &missing)
	assert.Equal(t, "SecurityGroupVoicevox", missing.Output)
	assert.EqualError(t, err, "aws.network.security_groups.voicevox is not set and stack vmctl-prod has no output SecurityGroupVoicevox: run vmctl infra apply --env prod, or name it in the environment file")

	out = stackOutputs()
	out[infra.OutPrivateSubnets] = "subnet-0a000000000000011"
	_, err = infra.Resolve(shipped(t, "prod"), out)
	require.ErrorAs(t, err, &missing)
	assert.Equal(t, "aws.network.subnets.private[1].id", missing.Field)
}

func TestOfflineShowsWhereEachIDComesFrom(t *testing.T) {
	got := infra.Offline(shipped(t, "dev"))
	assert.Equal(t, "{vmctl-dev:VpcId}", got.AWS.Network.VPCID)
	assert.Equal(t, "{vmctl-dev:PrivateSubnetIds}", got.AWS.Network.Subnets.Private[0].ID)
	assert.Equal(t, "{vmctl-dev:SecurityGroupAlb}", got.AWS.Network.SecurityGroups["alb"])
	assert.Equal(t, "{vmctl-dev:AccessPointVoiceProfiles}", got.AWS.Stores.EFS.Volumes["voice_profiles"].AccessPointID)
}
