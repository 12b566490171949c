package infra

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/smithy-go"
)

// StackDescriber reads a stack; the cloudformation client is one.
type StackDescriber interface {
	DescribeStacks(ctx context.Context, in *cloudformation.DescribeStacksInput, opts ...func(*cloudformation.Options)) (*cloudformation.DescribeStacksOutput, error)
}

// ReadOutputs reads the outputs of env's foundation stack. A stack that does not exist, or
// whose last create failed, is an error that says what to run.
func ReadOutputs(ctx context.Context, c StackDescriber, env string) (map[string]string, error) {
	name := StackName(env)
	out, err := c.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(name)})
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "ValidationError" && strings.Contains(ae.ErrorMessage(), "does not exist") || err == nil && len(out.Stacks) == 0 {
		return nil, fmt.Errorf("environment %s has no foundation: stack %s does not exist: run vmctl infra apply --env %s", env, name, env)
	}
	if err != nil {
		return nil, fmt.Errorf("read stack %s: %w", name, err)
	}
	st := out.Stacks[0]
	switch status := string(st.StackStatus); status {
	case "CREATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "ROLLBACK_IN_PROGRESS", "DELETE_COMPLETE", "DELETE_IN_PROGRESS", "DELETE_FAILED":
		return nil, fmt.Errorf("environment %s has no usable foundation: stack %s is %s: see vmctl infra status --env %s", env, name, status, env)
	}
	outputs := make(map[string]string, len(st.Outputs))
	for _, o := range st.Outputs {
		outputs[aws.ToString(o.OutputKey)] = aws.ToString(o.OutputValue)
	}
	return outputs, nil
}
