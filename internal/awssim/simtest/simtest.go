// Package simtest is test support over awssim: the SDK configuration that
// reaches a simulator as one of its users, for the packages whose tests run
// the real AWS clients against it (registry, verify, promote). The demo
// stack deployed on a simulator lives one level up, in verify/verifytest.
package simtest

import (
	"context"
	"testing"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/awssim"
)

// Config is an SDK configuration signed by key that reaches sim, retrying
// with a 10 ms backoff cap so that throttled tests stay quick.
func Config(t testing.TB, sim *awssim.Sim, key string) sdkaws.Config {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithRegion("ap-northeast-1"),
		config.WithBaseEndpoint(sim.URL()),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(key, "secret", "")),
		config.WithRetryer(func() sdkaws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) { o.MaxBackoff = 10 * time.Millisecond })
		}))
	require.NoError(t, err)
	return cfg
}
