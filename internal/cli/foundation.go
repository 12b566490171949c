package cli

import (
	"context"
	"fmt"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"

	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/infra"
)

// withFoundation returns env with every id its file leaves out taken from the outputs of
// its foundation stack, vmctl-<env>. A file that names all of them (its own network and
// stores) needs no stack, and is returned as is.
func withFoundation(ctx context.Context, cfg sdkaws.Config, env *environment.Environment) (*environment.Environment, error) {
	if !infra.Needs(env) {
		return env, nil
	}
	outputs, err := infra.ReadOutputs(ctx, cfnClient(cfg), env.Name)
	if err != nil {
		return nil, err
	}
	return infra.Resolve(env, outputs)
}

// foundationState describes the foundation stack for doctor: its status and whether it
// supplies every id the file leaves out.
func foundationState(ctx context.Context, cfg sdkaws.Config, env *environment.Environment) (string, error) {
	if !infra.Needs(env) {
		return "the file names every id itself (its own network and stores)", nil
	}
	st, outputs, err := infra.ReadStack(ctx, cfnClient(cfg), env.Name)
	if err != nil {
		return "", err
	}
	if _, err := infra.Resolve(env, outputs); err != nil {
		return "", err
	}
	name := infra.StackName(env.Name)
	// Usable (ReadStack) yet not settled, e.g. an update in flight: say so, and how to follow.
	if what, next := infra.Condition(env.Name, st.StackStatus); next != "" {
		return "", fmt.Errorf("stack %s is %s (%s): %s", name, st.StackStatus, what, next)
	}
	return fmt.Sprintf("stack %s %s, %d outputs", name, st.StackStatus, len(outputs)), nil
}
