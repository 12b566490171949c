package cli

import (
	"context"
	"fmt"
	"strings"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"

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
	outputs, err := infra.ReadOutputs(ctx, cloudformation.NewFromConfig(cfg), env.Name)
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
	c := cloudformation.NewFromConfig(cfg)
	outputs, err := infra.ReadOutputs(ctx, c, env.Name)
	if err != nil {
		return "", err
	}
	if _, err := infra.Resolve(env, outputs); err != nil {
		return "", err
	}
	out, err := c.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: sdkaws.String(infra.StackName(env.Name))})
	if err != nil || len(out.Stacks) == 0 {
		return "", fmt.Errorf("read stack %s: %w", infra.StackName(env.Name), err)
	}
	st := out.Stacks[0]
	if strings.HasSuffix(string(st.StackStatus), "_IN_PROGRESS") {
		return "", fmt.Errorf("stack %s is %s: wait for it with vmctl infra status --env %s", infra.StackName(env.Name), st.StackStatus, env.Name)
	}
	return fmt.Sprintf("stack %s %s, %d outputs", infra.StackName(env.Name), st.StackStatus, len(outputs)), nil
}
