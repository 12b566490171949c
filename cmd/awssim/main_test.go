package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/awssim"
)

// Each environment file gets a profile whose key belongs to its account, so a person
// rehearsing reaches staging and prod as vmctl's account checks want.
func TestWriteProfiles(t *testing.T) {
	sim := awssim.New()
	t.Cleanup(sim.Close)
	dir := t.TempDir()
	exports, err := writeProfiles(sim, filepath.Join("..", "..", "environments"), dir)
	require.NoError(t, err)
	assert.Contains(t, exports, "export AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "credentials")+"\n")
	for profile, account := range map[string]string{"awssim-staging": "222222222222", "awssim-prod": "333333333333"} {
		cfg, err := config.LoadDefaultConfig(context.Background(),
			config.WithSharedConfigProfile(profile),
			config.WithSharedCredentialsFiles([]string{filepath.Join(dir, "credentials")}),
			config.WithSharedConfigFiles([]string{filepath.Join(dir, "config")}))
		require.NoError(t, err)
		assert.Equal(t, "ap-northeast-1", cfg.Region)
		out, err := sts.NewFromConfig(cfg).GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
		require.NoError(t, err, profile)
		assert.Equal(t, account, sdkaws.ToString(out.Account), profile)
		assert.True(t, strings.HasSuffix(sdkaws.ToString(out.Arn), ":user/"+profile), sdkaws.ToString(out.Arn))
	}
}
