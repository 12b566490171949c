package infra

import (
	"context"
	"errors"
	"fmt"
	"strings"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/smithy-go"
)

// StackDescriber is the one call that reads a stack: its status and outputs.
type StackDescriber interface {
	DescribeStacks(ctx context.Context, in *cloudformation.DescribeStacksInput, opts ...func(*cloudformation.Options)) (*cloudformation.DescribeStacksOutput, error)
}

// DescribeStack returns the environment's foundation stack, or nil when there is none.
// A stack that only holds a change set never executed (REVIEW_IN_PROGRESS) is returned: the
// callers tell it apart.
func DescribeStack(ctx context.Context, c StackDescriber, env string) (*types.Stack, error) {
	name := StackName(env)
	out, err := c.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: &name})
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, &readError{msg: fmt.Sprintf("read stack %s: %s: check the credentials may use CloudFormation (cloudformation:DescribeStacks) in this account and region", name, apiMessage(err)), err: err}
	}
	for i := range out.Stacks {
		if out.Stacks[i].StackStatus != types.StackStatusDeleteComplete {
			return &out.Stacks[i], nil
		}
	}
	return nil, nil
}

// readError says what could not be read in one line (the SDK's own text carries request
// ids and status codes) and keeps the cause for errors.Is (a cancelled context).
type readError struct {
	msg string
	err error
}

func (e *readError) Error() string { return e.msg }
func (e *readError) Unwrap() error { return e.err }

// isNotFound tells CloudFormation's "Stack with id X does not exist" (a ValidationError,
// the code it also uses for bad input) from other failures.
func isNotFound(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "ValidationError" && strings.Contains(ae.ErrorMessage(), "does not exist")
}

// StackError says why an environment's foundation stack cannot be used, and what recovers it.
type StackError struct {
	Env    string
	Status types.StackStatus // empty: there is no stack
	Reason string            // CloudFormation's status reason, when it gave one
}

func (e *StackError) Error() string {
	name := StackName(e.Env)
	if e.Status == "" {
		return fmt.Sprintf("environment %s has no foundation: stack %s does not exist: run vmctl infra apply --env %s", e.Env, name, e.Env)
	}
	what, next := Condition(e.Env, e.Status)
	msg := fmt.Sprintf("environment %s's foundation is not usable: stack %s is %s (%s)", e.Env, name, e.Status, what)
	if e.Reason != "" {
		msg += ": " + oneLine(e.Reason)
	}
	return msg + ": " + next
}

// Condition says in words what a stack status means and what to run next; next is empty
// when the stack is usable as it is.
func Condition(env string, s types.StackStatus) (what, next string) {
	follow := "follow it with vmctl infra status --env " + env
	switch s {
	case types.StackStatusCreateComplete, types.StackStatusUpdateComplete, types.StackStatusImportComplete:
		return "healthy", ""
	case types.StackStatusUpdateRollbackComplete, types.StackStatusImportRollbackComplete:
		return "healthy; its last update failed and was rolled back", ""
	case types.StackStatusReviewInProgress:
		return "never applied: it holds only a change set", "run vmctl infra apply --env " + env
	case types.StackStatusRollbackComplete:
		return "its creation failed and was rolled back", fmt.Sprintf("read why with vmctl infra status --env %s, fix the cause, then run vmctl infra apply --env %s: it deletes the failed stack and creates it again", env, env)
	case types.StackStatusRollbackFailed, types.StackStatusCreateFailed:
		return "its creation failed and so did the cleanup", fmt.Sprintf("read why with vmctl infra status --env %s, delete what blocked it, then run aws cloudformation delete-stack --stack-name %s and vmctl infra apply --env %s", env, StackName(env), env)
	case types.StackStatusUpdateRollbackFailed:
		return "an update failed and so did its rollback", fmt.Sprintf("fix what blocked the rollback, then run aws cloudformation continue-update-rollback --stack-name %s and wait for UPDATE_ROLLBACK_COMPLETE", StackName(env))
	case types.StackStatusDeleteFailed:
		return "its deletion failed", fmt.Sprintf("fix what blocked it (read vmctl infra status --env %s), then run vmctl infra destroy --env %s again", env, env)
	case types.StackStatusDeleteInProgress, types.StackStatusDeleteComplete:
		return "being deleted", follow
	}
	if strings.HasSuffix(string(s), "_IN_PROGRESS") {
		return "an operation is under way", follow
	}
	return "in a state vmctl does not know", follow
}

// usable says whether a stack's resources and outputs can be relied on: it was created
// and is not being or was not deleted. An update in flight still has the outputs of
// the last good state.
func usable(s types.StackStatus) bool {
	switch s {
	case types.StackStatusCreateComplete, types.StackStatusUpdateComplete, types.StackStatusUpdateRollbackComplete,
		types.StackStatusImportComplete, types.StackStatusImportRollbackComplete,
		types.StackStatusUpdateInProgress, types.StackStatusUpdateCompleteCleanupInProgress,
		types.StackStatusUpdateRollbackInProgress, types.StackStatusUpdateRollbackCompleteCleanupInProgress,
		types.StackStatusImportInProgress, types.StackStatusImportRollbackInProgress:
		return true
	}
	return false
}

// ReadOutputs reads the outputs of env's foundation stack, for Resolve. It fails with a
// *StackError naming the recovery when the stack does not exist or is not usable
// (a failed creation, a rollback that failed, a deletion).
func ReadOutputs(ctx context.Context, c StackDescriber, env string) (map[string]string, error) {
	_, out, err := ReadStack(ctx, c, env)
	return out, err
}

// ReadStack is ReadOutputs with the stack they were read from, for a caller that also
// reports its status: one read for both.
func ReadStack(ctx context.Context, c StackDescriber, env string) (*types.Stack, map[string]string, error) {
	st, err := DescribeStack(ctx, c, env)
	if err != nil {
		return nil, nil, err
	}
	if st == nil {
		return nil, nil, &StackError{Env: env}
	}
	if !usable(st.StackStatus) {
		return nil, nil, &StackError{Env: env, Status: st.StackStatus, Reason: sdkaws.ToString(st.StackStatusReason)}
	}
	return st, outputs(st), nil
}

func outputs(st *types.Stack) map[string]string {
	out := make(map[string]string, len(st.Outputs))
	for _, o := range st.Outputs {
		out[sdkaws.ToString(o.OutputKey)] = sdkaws.ToString(o.OutputValue)
	}
	return out
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
