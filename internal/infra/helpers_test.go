package infra_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/infra"
	"github.com/vmctl/vmctl/internal/release"
	"github.com/vmctl/vmctl/internal/stack"
)

const (
	stackFile = "../../compose/compose.yaml"
	envDir    = "../../environments"
)

var envNames = []string{"dev", "staging", "prod"}

// loadStack loads the real stack; build contexts mean nothing to a render.
func loadStack(t testing.TB) *stack.Stack {
	t.Helper()
	st, err := stack.Load(context.Background(), stack.LoadOptions{
		Files: []string{stackFile},
		Env:   map[string]string{"VMCTL_APP_SOURCE": t.TempDir(), "VMCTL_IMAGES": "/images"},
	})
	require.NoError(t, err)
	return st
}

func loadEnv(t testing.TB, name string) *environment.Environment {
	t.Helper()
	env, err := environment.LoadNamed(envDir, name)
	require.NoError(t, err)
	return env
}

// planFor is what vmctl infra renders against: the deploy plan of no release, offline.
func planFor(t testing.TB, st *stack.Stack, env *environment.Environment) *ecs.Plan {
	t.Helper()
	plan, err := ecs.Render(st, infra.Offline(env), release.Release{})
	require.NoError(t, err)
	return plan
}

func render(t testing.TB, st *stack.Stack, env *environment.Environment) *cloudformation.Template {
	t.Helper()
	tmpl, err := infra.Render(env, planFor(t, st, env))
	require.NoError(t, err)
	return tmpl
}

// byoNetwork names an existing network, security groups and stores in env, as a team that
// brings its own would: the stack then creates none of them.
func byoNetwork(t testing.TB, env *environment.Environment) *environment.Environment {
	t.Helper()
	n := &env.AWS.Network
	n.VPCID = "vpc-0b0b0b0b0b0b0b0b0"
	for tier, subnets := range map[string][]environment.Subnet{"1": n.Subnets.Public, "2": n.Subnets.Private, "3": n.Subnets.Database} {
		for i := range subnets {
			subnets[i].ID = fmt.Sprintf("subnet-0b0b0b0b0b0b0%s%03d", tier, i)
		}
	}
	n.SecurityGroups = map[string]string{}
	for i, role := range []string{"alb", "frontend", "backend", "voicevox", "openvoice", "rds", "redis", "efs"} {
		n.SecurityGroups[role] = fmt.Sprintf("sg-0b0b0b0b0b0b0b%03d", i)
	}
	st := &env.AWS.Stores
	st.Postgres.Endpoint = "db.example.internal:5432"
	st.Redis.Endpoint = "cache.example.internal:6379"
	st.EFS.FileSystemID = "fs-0b0b0b0b0b0b0b0b0"
	for i, name := range slices.Sorted(maps.Keys(st.EFS.Volumes)) {
		st.EFS.Volumes[name] = environment.Volume{AccessPointID: fmt.Sprintf("fsap-0b0b0b0b0b0b0%04d", i)}
	}
	return env
}
