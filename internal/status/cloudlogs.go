package status

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"

	"github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/registry"
	"github.com/vmctl/vmctl/internal/termtext"
)

const (
	// logPoll is how often a follow asks for new lines.
	logPoll = time.Second
	// logLookback rereads this much before the newest line seen, for lines that reach
	// CloudWatch late; event IDs keep them from printing twice.
	logLookback = 10 * time.Second
)

// LogsOptions configures FollowLogs.
type LogsOptions struct {
	Follow bool // keep printing new lines until the context ends
	// Terminal says w is a terminal: the lines lose their control sequences,
	// so what a task logged cannot redraw the reader's screen.
	Terminal bool
}

// FollowLogs prints a service's lines from the environment's CloudWatch Logs group, oldest
// first, as "container/task | line"; a follow ends with the context, which is not an error.
func FollowLogs(ctx context.Context, c aws.Clients, plan *ecs.Plan, service string, w io.Writer, opts LogsOptions) error {
	follow := opts.Follow
	prefix, err := streamPrefix(plan, service)
	if err != nil {
		return err
	}
	group := plan.LogGroup.Name
	seen := map[string]int64{} // event ID → timestamp, within the lookback
	var newest int64
	var start *int64
	for {
		var token *string
		for {
			out, err := c.Logs.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{
				LogGroupName: sdkaws.String(group), LogStreamNamePrefix: sdkaws.String(prefix), StartTime: start, NextToken: token,
			})
			var nf *cwtypes.ResourceNotFoundException
			switch {
			case follow && ctx.Err() != nil:
				return nil
			case errors.As(err, &nf) && follow:
				out = &cloudwatchlogs.FilterLogEventsOutput{} // no lines yet; keep asking
			case errors.As(err, &nf):
				return fmt.Errorf("logs of %s: log group %s does not exist yet in %s: has the service run? (vmctl status --env %s)", service, group, plan.Environment, plan.Environment)
			case err != nil:
				return fmt.Errorf("logs of %s from %s: %w", service, group, err)
			}
			for _, e := range out.Events {
				id, ts := sdkaws.ToString(e.EventId), sdkaws.ToInt64(e.Timestamp)
				if _, dup := seen[id]; dup {
					continue
				}
				seen[id] = ts
				newest = max(newest, ts)
				msg := strings.TrimRight(sdkaws.ToString(e.Message), "\n")
				if opts.Terminal {
					msg = termtext.Strip(msg)
				}
				if _, err := fmt.Fprintf(w, "%s | %s\n", streamLabel(sdkaws.ToString(e.LogStreamName), prefix), msg); err != nil {
					return err
				}
			}
			if token = out.NextToken; token == nil {
				break
			}
		}
		if !follow {
			return nil
		}
		from := max(newest-logLookback.Milliseconds(), 0)
		start = &from
		for id, ts := range seen {
			if ts < from {
				delete(seen, id)
			}
		}
		if !registry.SleepCtx(ctx, logPoll) {
			return nil
		}
	}
}

// streamPrefix is where awslogs writes a compose service's lines: the task's stream prefix
// (the ECS service), then the container's name.
func streamPrefix(plan *ecs.Plan, service string) (string, error) {
	var names []string
	for _, s := range plan.Services {
		for _, c := range s.Containers {
			if c == service {
				return s.Name + "/" + c + "/", nil
			}
			names = append(names, c)
		}
	}
	return "", fmt.Errorf("no service %q runs in %s (services: %s)", service, plan.Environment, strings.Join(names, ", "))
}

// streamLabel shortens prefix/container/task-id to container/task (8 characters of it).
func streamLabel(stream, prefix string) string {
	_, container, _ := strings.Cut(strings.TrimSuffix(prefix, "/"), "/")
	task := strings.TrimPrefix(stream, prefix)
	return container + "/" + task[:min(len(task), 8)]
}
