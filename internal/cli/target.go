package cli

import (
	"context"
	"fmt"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	vmaws "github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/release"
	"github.com/vmctl/vmctl/internal/stack"
)

// target is one AWS environment as a cloud command reaches it: the environment, whose
// credentials those are (checked against its account), their configuration and clients,
// the stack loaded for rendering, and the plan rendered for one release.
type target struct {
	env     *environment.Environment
	id      vmaws.Identity
	cfg     sdkaws.Config
	clients vmaws.Clients
	stack   *stack.Stack
	plan    *ecs.Plan
}

// cloudTarget is the start every cloud command that reads or writes one environment shares:
// awsTarget (the environment, its credentials checked), the ids its foundation stack
// supplies, loadRenderStack, and the plan of
// rel (the empty release for a command that only reads what runs). Errors are theirs,
// unwrapped.
func cloudTarget(ctx context.Context, f *Factory, g *globalOptions, envName string, rel release.Release) (*target, error) {
	env, id, cfg, err := awsTarget(ctx, f, g, envName)
	if err != nil {
		return nil, err
	}
	if env, err = withFoundation(ctx, cfg, env); err != nil {
		return nil, err
	}
	st, err := loadRenderStack(ctx, f, g)
	if err != nil {
		return nil, err
	}
	t := &target{env: env, id: id, cfg: cfg, clients: vmaws.NewClients(cfg), stack: st}
	if err := t.render(rel); err != nil {
		return nil, err
	}
	return t, nil
}

// render renders the target's plan for another release.
func (t *target) render(rel release.Release) error {
	plan, err := ecs.Render(t.stack, t.env, rel)
	if err != nil {
		return err
	}
	t.plan = plan
	return nil
}

// awsTarget loads an AWS environment, resolves its credentials once and
// checks they belong to its account, before anything is written. Callers
// build their clients from the returned configuration.
func awsTarget(ctx context.Context, f *Factory, g *globalOptions, name string) (*environment.Environment, vmaws.Identity, sdkaws.Config, error) {
	env, err := environment.LoadNamed(g.envDir, name)
	if err != nil {
		return nil, vmaws.Identity{}, sdkaws.Config{}, err
	}
	if env.Kind != environment.KindAWS {
		return nil, vmaws.Identity{}, sdkaws.Config{}, usageError{fmt.Errorf("environment %s is %s, not an AWS environment: use vmctl up for local", name, env.Kind)}
	}
	// An unprotected file pointing at a protected environment's account would reach it
	// without its guards.
	if err := environment.CheckAccountIsolation(env, g.envDir); err != nil {
		return nil, vmaws.Identity{}, sdkaws.Config{}, err
	}
	cfg, err := f.AWSConfig(ctx, env)
	if err != nil {
		return nil, vmaws.Identity{}, sdkaws.Config{}, err
	}
	id, err := vmaws.CheckAccount(ctx, sts.NewFromConfig(cfg), name, env.AWS.AccountID)
	return env, id, cfg, err
}

// pickRelease is the stored release of that id, or the newest when id is empty.
func pickRelease(g *globalOptions, id string) (*release.Release, error) {
	store := releaseStore(g)
	if id == "" {
		return store.Latest()
	}
	return store.Get(id)
}
