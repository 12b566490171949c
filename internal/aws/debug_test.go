package aws_test

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	vmaws "github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/mototest"
)

// --debug logs one line per HTTP attempt with what helps in a real account, and never a
// body: a secret sent or received stays out of the log.
func TestDebugLogOneLinePerAttemptNoBodies(t *testing.T) {
	m := mototest.Start(t, "111111111111")
	cfg := m.Config(t)
	var log bytes.Buffer
	vmaws.DebugLog(&cfg, &log)
	ctx := context.Background()

	_, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	require.NoError(t, err)
	sm := secretsmanager.NewFromConfig(cfg)
	_, err = sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: sdkaws.String("db"), SecretString: sdkaws.String("hunter2-secret")})
	require.NoError(t, err)
	_, err = sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: sdkaws.String("db")})
	require.NoError(t, err)
	_, err = sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: sdkaws.String("missing")})
	require.Error(t, err)

	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	require.Len(t, lines, 4, log.String())
	line := regexp.MustCompile(`^aws: (\S+)\.(\S+) POST 127\.0\.0\.1:\d+ → (\d{3}) request-id=\S+ attempt=1 \d+(\.\d+)?[mµn]?s( error=\S+)?$`)
	for _, l := range lines {
		assert.Regexp(t, line, l)
	}
	assert.Contains(t, lines[0], "aws: STS.GetCallerIdentity POST")
	assert.Contains(t, lines[0], "→ 200")
	assert.Contains(t, lines[3], "SecretsManager.GetSecretValue")
	assert.Contains(t, lines[3], "→ 4", "a client error")
	assert.Contains(t, lines[3], "error=ResourceNotFoundException")
	assert.NotContains(t, log.String(), "hunter2")
	creds, err := cfg.Credentials.Retrieve(ctx)
	require.NoError(t, err)
	assert.NotContains(t, log.String(), creds.SecretAccessKey)
}
