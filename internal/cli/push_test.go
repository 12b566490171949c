package cli

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	vmaws "github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/awssim"
	"github.com/vmctl/vmctl/internal/dockertest"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/gpu"
	"github.com/vmctl/vmctl/internal/registry"
	"github.com/vmctl/vmctl/internal/release"
)

func simAWS(sim *awssim.Sim, key string) func(ctx context.Context, env *environment.Environment) (sdkaws.Config, error) {
	return func(ctx context.Context, env *environment.Environment) (sdkaws.Config, error) {
		return simConfigFor(ctx, sim, key)
	}
}

// simAWSByEnv gives each environment its own account's credentials, as
// profiles named in the environment files would.
func simAWSByEnv(sim *awssim.Sim, keys map[string]string) func(ctx context.Context, env *environment.Environment) (sdkaws.Config, error) {
	return func(ctx context.Context, env *environment.Environment) (sdkaws.Config, error) {
		return simConfigFor(ctx, sim, keys[env.Name])
	}
}

func simConfigFor(ctx context.Context, sim *awssim.Sim, key string) (sdkaws.Config, error) {
	return vmaws.LoadConfig(ctx, "ap-northeast-1", config.WithBaseEndpoint(sim.URL()),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(key, "x", "")))
}

// build → push to the simulator's ECR: repositories with the rendered
// settings, the images pushed by the engine, digests recorded and proven.
func TestBuildThenPush(t *testing.T) {
	api := dockertest.Client(t)
	sim := awssim.New()
	t.Cleanup(sim.Close)
	sim.UseDocker(api)
	sim.AddUser("AKIADEV", awssim.Principal{Account: "111111111111", ARN: "arn:aws:iam::111111111111:role/ci"})
	sim.AddUser("AKIAPROD", awssim.Principal{Account: "333333333333", ARN: "arn:aws:iam::333333333333:role/ci"})

	root := dockertest.RepoRoot()
	dockertest.DemoBinary(t)
	env := fixtureEnv(t)
	for k, v := range env {
		t.Setenv(k, v)
	}
	t.Setenv("VMCTL_REVISION", "0123456789abcdef")
	relDir := t.TempDir()
	base := []string{"-f", filepath.Join(root, "compose", "demo.yaml"), "-p", "vmctlpush", "--env-dir", filepath.Join(root, "environments"), "--release-dir", relDir, "--progress", "quiet"}
	noGPU := gpu.Inventory{NoDriver: true}

	code, out, errOut := runWith(t, noGPU, nil, append(base, "build", "-o", "json")...)
	require.Equal(t, ExitOK, code, errOut)
	var built buildResult
	require.NoError(t, json.Unmarshal([]byte(out), &built))
	require.NotNil(t, built.Release)
	assert.Equal(t, "0123456789abcdef", built.Release.Revision)
	assert.Len(t, built.Release.Images, 6)

	// Credentials of another account: refused before any write.
	code, _, errOut = runWith(t, noGPU, simAWS(sim, "AKIAPROD"), append(base, "push", "--env", "dev")...)
	assert.Equal(t, ExitError, code)
	assert.Contains(t, errOut, "credentials are for account 333333333333")
	assert.Zero(t, sim.Calls("ECR.CreateRepository"))
	assert.Zero(t, sim.Calls("ECR.GetAuthorizationToken"))

	code, out, errOut = runWith(t, noGPU, simAWS(sim, "AKIADEV"), append(base, "push", "--env", "dev", "-o", "json")...)
	require.Equal(t, ExitOK, code, errOut)
	var pushed []registry.Pushed
	require.NoError(t, json.Unmarshal([]byte(out), &pushed))
	require.Len(t, pushed, 4, "frontend, backend, voicevox, openvoice; postgres and redis are managed by AWS")

	rel, err := release.Store{Dir: relDir}.Get(built.Release.ID)
	require.NoError(t, err)
	cfg, err := simConfigFor(context.Background(), sim, "AKIADEV")
	require.NoError(t, err)
	client := ecr.NewFromConfig(cfg)
	for _, p := range pushed {
		assert.Equal(t, rel.Images[p.Service].Digest, p.Digest, "recorded in the release")
		imgs, err := client.DescribeImages(context.Background(), &ecr.DescribeImagesInput{RepositoryName: sdkaws.String(p.Repository)})
		require.NoError(t, err)
		require.Len(t, imgs.ImageDetails, 1)
		assert.Equal(t, p.Digest, sdkaws.ToString(imgs.ImageDetails[0].ImageDigest))
		assert.Contains(t, imgs.ImageDetails[0].ImageTags, built.Release.ID)
		repos, err := client.DescribeRepositories(context.Background(), &ecr.DescribeRepositoriesInput{RepositoryNames: []string{p.Repository}})
		require.NoError(t, err)
		assert.Equal(t, "IMMUTABLE", string(repos.Repositories[0].ImageTagMutability))
		assert.True(t, repos.Repositories[0].ImageScanningConfiguration.ScanOnPush)
	}

	// Pushing the same release again changes nothing and still proves parity.
	code, _, errOut = runWith(t, noGPU, simAWS(sim, "AKIADEV"), append(base, "push", "--env", "dev")...)
	require.Equal(t, ExitOK, code, errOut)
	assert.Equal(t, 4, sim.Calls("ECR.CreateRepository"), "the repositories exist now")

	// prod is protected: a push there asks first; --yes alone writes nothing.
	created, tokens := sim.Calls("ECR.CreateRepository"), sim.Calls("ECR.GetAuthorizationToken")
	code, _, errOut = runWith(t, noGPU, simAWS(sim, "AKIAPROD"), append(base, "push", "--env", "prod", "--yes")...)
	assert.Equal(t, ExitError, code)
	assert.Contains(t, errOut, "push release "+built.Release.ID+" to prod's registry 333333333333.dkr.ecr.ap-northeast-1.amazonaws.com: not approved: prod is protected: --yes needs --approve-prod as well")
	assert.Equal(t, created, sim.Calls("ECR.CreateRepository"))
	assert.Equal(t, tokens, sim.Calls("ECR.GetAuthorizationToken"))
}
