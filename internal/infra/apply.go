package infra

import (
	"context"
	"fmt"
	"slices"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation/types"

	vmaws "github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/progress"
)

// IsStateful says whether the logical id is a resource that holds data (the database,
// the file system, the video bucket, the key that encrypts them).
func IsStateful(logicalID string) bool { return slices.Contains(Stateful, logicalID) }

// WatchOptions say where stack events go and how often they are read.
type WatchOptions struct {
	Progress progress.Writer // nil: discarded
	Poll     time.Duration   // default 3 s
}

func (o WatchOptions) poll() time.Duration {
	if o.Poll <= 0 {
		return 3 * time.Second
	}
	return o.Poll
}

func (o WatchOptions) writer() progress.Writer {
	if o.Progress == nil {
		return progress.Discard{}
	}
	return o.Progress
}

// Result is how an apply or a destroy ended.
type Result struct {
	Env     string            `json:"environment"`
	Stack   string            `json:"stack"`
	Status  string            `json:"status"`
	Outputs map[string]string `json:"outputs,omitempty"`
	// Retained are the resources CloudFormation kept when the stack was deleted
	// (DeletionPolicy Retain or Snapshot).
	Retained []Retained `json:"retained,omitempty"`
}

// Failure is the first resource CloudFormation failed on, with its reason.
type Failure struct {
	LogicalID string `json:"logical_id"`
	Type      string `json:"type"`
	Status    string `json:"status"`
	Reason    string `json:"reason"`
}

// OperationError is an apply or destroy that CloudFormation did not complete: the first
// resource that failed, the status the stack was left in and what to run next.
type OperationError struct {
	Op      string // "apply", "destroy"
	Env     string
	Status  types.StackStatus
	Failure *Failure
}

func (e *OperationError) Error() string {
	cause := "CloudFormation named no failing resource: read the events in the CloudFormation console"
	if f := e.Failure; f != nil {
		cause = fmt.Sprintf("%s (%s) %s: %s", f.LogicalID, f.Type, f.Status, f.Reason)
	}
	var next string
	switch e.Status {
	case types.StackStatusUpdateRollbackComplete:
		next = "the stack rolled back to its previous state: fix the cause and run vmctl infra apply --env " + e.Env + " again"
	case types.StackStatusRollbackComplete:
		next = "the stack rolled back and holds nothing: fix the cause and run vmctl infra apply --env " + e.Env + " again (it deletes the failed stack first)"
	default:
		what, n := Condition(e.Env, e.Status)
		next = fmt.Sprintf("the stack is %s (%s)", e.Status, what)
		if n != "" {
			next += ": " + n
		}
	}
	return fmt.Sprintf("%s of stack %s failed: %s; %s", e.Op, StackName(e.Env), cause, next)
}

// Execute executes a described change set and streams the stack's events until
// CloudFormation is done. Cancelling ctx stops the watching, not the update: the error
// then wraps ctx's.
func Execute(ctx context.Context, c vmaws.CloudFormation, cs *ChangeSet, opts WatchOptions) (*Result, error) {
	var w *watcher
	if cs.Create {
		// Staged first: nothing is deleted for a template that cannot be sent.
		inline, staged, err := cs.source(ctx, cs.limit)
		if err != nil {
			return nil, err
		}
		if cs.ReplacesFailed != "" {
			if err := deleteFailed(ctx, c, cs, opts); err != nil {
				return nil, err
			}
		}
		out, err := c.CreateStack(ctx, &cloudformation.CreateStackInput{
			StackName:    sdkaws.String(cs.Stack),
			TemplateBody: inline,
			TemplateURL:  staged,
			Capabilities: capabilities,
			Tags:         cfnTags(cs.tags),
			OnFailure:    types.OnFailureRollback,
		})
		if err != nil {
			return nil, fmt.Errorf("create stack %s: %s: fix the environment file or the template and run again", cs.Stack, apiMessage(err))
		}
		cs.StackID = sdkaws.ToString(out.StackId)
		// A new stack has no history: every event is this creation's.
		w = &watcher{c: c, stack: cs.StackID, name: cs.Stack, out: opts.writer(), poll: opts.poll(), seen: map[string]bool{}}
	} else {
		var err error
		if w, err = newWatcher(ctx, c, cs.StackID, cs.Stack, opts.writer(), opts.Poll); err != nil {
			return nil, err
		}
		if _, err := c.ExecuteChangeSet(ctx, &cloudformation.ExecuteChangeSetInput{ChangeSetName: sdkaws.String(cs.ID), StackName: sdkaws.String(cs.StackID)}); err != nil {
			return nil, cs.Abandon(ctx, c, fmt.Errorf("execute change set %s of stack %s: %s", cs.Name, cs.Stack, apiMessage(err)))
		}
		cs.Deleted = true // CloudFormation consumes an executed change set
	}
	st, err := w.until(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("stopped watching stack %s; CloudFormation carries on: follow it with vmctl infra status --env %s: %w", cs.Stack, cs.Env, ctx.Err())
		}
		return nil, err
	}
	res := &Result{Env: cs.Env, Stack: cs.Stack, Status: string(st.StackStatus), Outputs: outputs(st)}
	if st.StackStatus != types.StackStatusCreateComplete && st.StackStatus != types.StackStatusUpdateComplete {
		return res, &OperationError{Op: "apply", Env: cs.Env, Status: st.StackStatus, Failure: w.failed()}
	}
	return res, nil
}

// deleteFailed deletes the rolled-back stack a new creation replaces, and waits until it
// is gone.
func deleteFailed(ctx context.Context, c vmaws.CloudFormation, cs *ChangeSet, opts WatchOptions) error {
	w, err := newWatcher(ctx, c, cs.ReplacesFailed, cs.Stack, opts.writer(), opts.Poll)
	if err != nil {
		return err
	}
	if _, err := c.DeleteStack(ctx, &cloudformation.DeleteStackInput{StackName: sdkaws.String(cs.ReplacesFailed)}); err != nil {
		return fmt.Errorf("delete the failed stack %s before creating it again: %s", cs.Stack, apiMessage(err))
	}
	st, err := w.until(ctx)
	switch {
	case err != nil && isNotFound(err):
		return nil
	case err != nil:
		return err
	case st.StackStatus != types.StackStatusDeleteComplete:
		return &OperationError{Op: "deletion of the failed stack", Env: cs.Env, Status: st.StackStatus, Failure: w.failed()}
	}
	return nil
}

func (w *watcher) failed() *Failure {
	if w.failure == nil {
		return nil
	}
	e := w.failure
	return &Failure{LogicalID: sdkaws.ToString(e.LogicalResourceId), Type: sdkaws.ToString(e.ResourceType), Status: string(e.ResourceStatus), Reason: oneLine(sdkaws.ToString(e.ResourceStatusReason))}
}
