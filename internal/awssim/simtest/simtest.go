// Package simtest is test support over awssim: the SDK configuration that
// reaches a simulator as one of its users, for the packages whose tests run
// the real AWS clients against it (registry, verify, promote), and an
// environment's foundation stack rendered by infra and applied through the
// simulator's CloudFormation — the only way infrastructure reaches a
// simulator, which starts empty like a new account. The demo stack deployed
// on a simulator lives one level up, in verify/verifytest.
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

	"github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/awssim"
	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/infra"
	"github.com/vmctl/vmctl/internal/release"
	"github.com/vmctl/vmctl/internal/stack"
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

// Foundation renders env's foundation stack (infra.Render over the plan of no release, as
// vmctl infra apply renders it) and applies it to the simulator through CloudFormation with
// the product's own change-set and watch code, signed by key; it returns the stack's
// outputs. The simulator starts empty: this is how a test's account gets its cluster, load
// balancer, target groups and GPU hosts.
func Foundation(t testing.TB, sim *awssim.Sim, key string, st *stack.Stack, env *environment.Environment) map[string]string {
	t.Helper()
	return Apply(t, sim, key, env.Name, Template(t, st, env))
}

// Template is env's rendered foundation template, JSON.
func Template(t testing.TB, st *stack.Stack, env *environment.Environment) []byte {
	t.Helper()
	plan, err := ecs.Render(st, infra.Offline(env), release.Release{})
	require.NoError(t, err)
	tmpl, err := infra.Render(env, plan)
	require.NoError(t, err)
	body, err := infra.TemplateJSON(tmpl)
	require.NoError(t, err)
	return body
}

// Apply creates or updates env's stack to the template (a test may edit a rendered one to
// stand for a rendering bug) and returns its outputs.
func Apply(t testing.TB, sim *awssim.Sim, key, env string, body []byte) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := aws.NewClients(Config(t, sim, key)).CFN
	cs, err := infra.CreateChangeSet(ctx, c, env, infra.ChangeSetOptions{Template: body, MinDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond})
	require.NoError(t, err)
	if cs.Empty() && !cs.Create {
		out, err := infra.ReadOutputs(ctx, c, env)
		require.NoError(t, err)
		return out
	}
	res, err := infra.Execute(ctx, c, cs, infra.WatchOptions{Poll: 20 * time.Millisecond})
	require.NoError(t, err)
	return res.Outputs
}
