package status_test

import (
	"context"
	"strings"
	"testing"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/status"
)

// oneLineLogs answers every FilterLogEvents with the same single event.
type oneLineLogs struct {
	aws.Logs
	message string
}

func (l oneLineLogs) FilterLogEvents(context.Context, *cloudwatchlogs.FilterLogEventsInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.FilterLogEventsOutput, error) {
	return &cloudwatchlogs.FilterLogEventsOutput{Events: []cwtypes.FilteredLogEvent{{
		EventId: sdkaws.String("1"), Timestamp: sdkaws.Int64(1), Message: sdkaws.String(l.message),
		LogStreamName: sdkaws.String("backend/backend/0123456789abcdef"),
	}}}, nil
}

// A task's line cannot redraw the reader's terminal; piped, it stays as logged.
func TestFollowLogsStripsControlSequencesOnATerminal(t *testing.T) {
	plan := &ecs.Plan{Environment: "staging", LogGroup: ecs.LogGroup{Name: "/vmctl/staging/app"},
		Services: []ecs.Service{{Name: "backend", Containers: []string{"backend"}}}}
	const logged = "\x1b]0;pwned\x07\x1b[2J\x1b[31mstarted\x1b[0m\r\n"
	tests := []struct {
		name     string
		terminal bool
		want     string
	}{
		{"terminal", true, "backend/01234567 | started\n"},
		{"pipe", false, "backend/01234567 | \x1b]0;pwned\x07\x1b[2J\x1b[31mstarted\x1b[0m\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			c := aws.Clients{Logs: oneLineLogs{message: logged}}
			require.NoError(t, status.FollowLogs(context.Background(), c, plan, "backend", &out, status.LogsOptions{Terminal: tt.terminal}))
			assert.Equal(t, tt.want, out.String())
		})
	}
}
