package infra

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation/types"

	vmaws "github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/progress"
)

// watcher streams a stack's events as progress until the stack reaches a status that is
// not in progress. It reads DescribeStackEvents itself, rather than through the SDK's
// stack waiters, because the waiters only say "done" or "failed" and the user is to see
// each resource as CloudFormation works on it.
type watcher struct {
	c     vmaws.CloudFormation
	stack string // the stack's ARN (or name)
	name  string
	out   progress.Writer
	poll  time.Duration
	// mark is the newest event before the operation began: events from there back are old.
	mark string
	seen map[string]bool
	// failure is the first resource that failed, with CloudFormation's reason.
	failure *types.StackEvent
}

// newWatcher marks where the stack's history ends now, so only what follows is shown.
func newWatcher(ctx context.Context, c vmaws.CloudFormation, stackID, name string, out progress.Writer, poll time.Duration) (*watcher, error) {
	w := &watcher{c: c, stack: stackID, name: name, out: out, poll: WatchOptions{Poll: poll}.poll(), seen: map[string]bool{}}
	page, err := c.DescribeStackEvents(ctx, &cloudformation.DescribeStackEventsInput{StackName: sdkaws.String(stackID)})
	if err != nil {
		if isNotFound(err) {
			return w, nil // a new stack has no history
		}
		return nil, fmt.Errorf("read the events of stack %s: %w", name, err)
	}
	if len(page.StackEvents) > 0 {
		w.mark = sdkaws.ToString(page.StackEvents[0].EventId)
	}
	return w, nil
}

// until polls until the stack is no longer in progress and returns it as it ended. A
// cancelled ctx stops the watching only; CloudFormation carries on.
func (w *watcher) until(ctx context.Context) (*types.Stack, error) {
	for {
		if err := w.events(ctx); err != nil {
			return nil, err
		}
		out, err := w.c.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: sdkaws.String(w.stack)})
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("read stack %s: %w", w.name, err)
		}
		if len(out.Stacks) == 0 {
			return nil, fmt.Errorf("stack %s disappeared while vmctl watched it: read its events in the CloudFormation console", w.name)
		}
		st := out.Stacks[0]
		if !strings.HasSuffix(string(st.StackStatus), "_IN_PROGRESS") {
			// Events written between the last read and the final status.
			if err := w.events(ctx); err != nil {
				return nil, err
			}
			return &st, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(w.poll):
		}
	}
}

// events shows the events written since the last call, oldest first. The SDK's
// paginator reads newest first; reading stops at the first event already shown.
func (w *watcher) events(ctx context.Context) error {
	var fresh []types.StackEvent
	p := cloudformation.NewDescribeStackEventsPaginator(w.c, &cloudformation.DescribeStackEventsInput{StackName: sdkaws.String(w.stack)})
pages:
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("read the events of stack %s: %w", w.name, err)
		}
		for _, e := range page.StackEvents {
			id := sdkaws.ToString(e.EventId)
			if id == w.mark || w.seen[id] {
				break pages
			}
			fresh = append(fresh, e)
		}
	}
	slices.Reverse(fresh)
	for _, e := range fresh {
		w.seen[sdkaws.ToString(e.EventId)] = true
		w.show(e)
	}
	return nil
}

// cancelled ends CloudFormation's reason on resources it stopped because another failed
// ("Resource creation cancelled", "Resource update cancelled"): never the cause.
const cancelled = " cancelled"

func (w *watcher) show(e types.StackEvent) {
	status := string(e.ResourceStatus)
	reason := oneLine(sdkaws.ToString(e.ResourceStatusReason))
	resource := sdkaws.ToString(e.LogicalResourceId)
	ev := progress.Event{Time: sdkaws.ToTime(e.Timestamp), Resource: resource, Text: status, Detail: reason}
	switch {
	case strings.HasSuffix(status, "_FAILED"):
		ev.Status = progress.Error
		if w.failure == nil && resource != w.name && !strings.HasSuffix(reason, cancelled) {
			f := e
			w.failure = &f
		}
	case strings.HasSuffix(status, "_IN_PROGRESS"):
		ev.Status = progress.Working
		if strings.Contains(status, "ROLLBACK") {
			ev.Status = progress.Warning
		}
	case strings.Contains(status, "ROLLBACK"):
		ev.Status = progress.Warning
	default:
		ev.Status = progress.Done
	}
	if typ := sdkaws.ToString(e.ResourceType); resource != w.name && typ != "" {
		ev.Detail = typ
		if reason != "" {
			ev.Detail += ": " + reason
		}
	}
	w.out.Event(ev)
}
