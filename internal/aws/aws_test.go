package aws_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	vmaws "github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/awssim"
)

func stsClient(t *testing.T, sim *awssim.Sim, key string) *sts.Client {
	cfg, err := vmaws.LoadConfig(context.Background(), "ap-northeast-1",
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(key, "secret", "")),
		config.WithBaseEndpoint(sim.URL()))
	require.NoError(t, err)
	return sts.NewFromConfig(cfg)
}

func TestCheckAccountOverTheRealSTSProtocol(t *testing.T) {
	sim := awssim.New()
	defer sim.Close()
	sim.AddUser("AKIADEV", awssim.Principal{Account: "111111111111", ARN: "arn:aws:iam::111111111111:user/dev"})

	id, err := vmaws.CheckAccount(context.Background(), stsClient(t, sim, "AKIADEV"), "dev", "111111111111")
	require.NoError(t, err)
	assert.Equal(t, vmaws.Identity{Account: "111111111111", ARN: "arn:aws:iam::111111111111:user/dev", UserID: "AKIADEV"}, id)

	_, err = vmaws.CheckAccount(context.Background(), stsClient(t, sim, "AKIADEV"), "prod", "333333333333")
	require.ErrorContains(t, err, "credentials are for account 111111111111 (arn:aws:iam::111111111111:user/dev), but environment prod is account 333333333333")

	_, err = vmaws.CallerIdentity(context.Background(), stsClient(t, sim, "AKIAUNKNOWN"))
	require.ErrorContains(t, err, "AWS credentials were refused: InvalidClientTokenId")
}
