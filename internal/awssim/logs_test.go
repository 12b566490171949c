package awssim_test

import (
	"context"
	"testing"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwltypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/awssim"
	"github.com/vmctl/vmctl/internal/awssim/simtest"
	"github.com/vmctl/vmctl/internal/dockertest"
)

func eventMessages[T any](events []T, msg func(T) string) []string {
	out := []string{}
	for _, e := range events {
		out = append(out, msg(e))
	}
	return out
}

func TestLogsGetLogEvents(t *testing.T) {
	sim := userSim(t)
	ctx := context.Background()
	sim.PutLogEvents("/ecs/vmctl-staging", "backend/backend/task1", "one", "two", "three", "four", "five")
	c := cloudwatchlogs.NewFromConfig(simtest.Config(t, sim, simKey))
	msg := func(e cwltypes.OutputLogEvent) string { return sdkaws.ToString(e.Message) }

	head, err := c.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{
		LogGroupName: sdkaws.String("/ecs/vmctl-staging"), LogStreamName: sdkaws.String("backend/backend/task1"),
		StartFromHead: sdkaws.Bool(true), Limit: sdkaws.Int32(2),
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"one", "two"}, eventMessages(head.Events, msg))
	assert.Positive(t, sdkaws.ToInt64(head.Events[0].Timestamp))

	next, err := c.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{
		LogGroupName: sdkaws.String("/ecs/vmctl-staging"), LogStreamName: sdkaws.String("backend/backend/task1"),
		NextToken: head.NextForwardToken, Limit: sdkaws.Int32(10),
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"three", "four", "five"}, eventMessages(next.Events, msg))
	end, err := c.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{
		LogGroupName: sdkaws.String("/ecs/vmctl-staging"), LogStreamName: sdkaws.String("backend/backend/task1"), NextToken: next.NextForwardToken,
	})
	require.NoError(t, err)
	assert.Empty(t, end.Events)
	assert.Equal(t, sdkaws.ToString(next.NextForwardToken), sdkaws.ToString(end.NextForwardToken), "the same token at the end, as AWS says it")

	tail, err := c.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{
		LogGroupName: sdkaws.String("/ecs/vmctl-staging"), LogStreamName: sdkaws.String("backend/backend/task1"), Limit: sdkaws.Int32(2),
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"four", "five"}, eventMessages(tail.Events, msg), "the newest, without startFromHead")
	back, err := c.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{
		LogGroupName: sdkaws.String("/ecs/vmctl-staging"), LogStreamName: sdkaws.String("backend/backend/task1"), Limit: sdkaws.Int32(2), NextToken: tail.NextBackwardToken,
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"two", "three"}, eventMessages(back.Events, msg))

	_, err = c.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: sdkaws.String("/ecs/nope"), LogStreamName: sdkaws.String("x")})
	assert.Equal(t, "ResourceNotFoundException", awsErrorCode(err))
	_, err = c.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: sdkaws.String("/ecs/vmctl-staging"), LogStreamName: sdkaws.String("nope")})
	assert.Equal(t, "ResourceNotFoundException", awsErrorCode(err))
	_, err = c.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: sdkaws.String("/ecs/vmctl-staging"), LogStreamName: sdkaws.String("backend/backend/task1"), NextToken: sdkaws.String("garbage")})
	assert.Equal(t, "InvalidParameterException", awsErrorCode(err))
}

func TestLogsFilterLogEvents(t *testing.T) {
	sim := userSim(t)
	ctx := context.Background()
	group := sdkaws.String("/ecs/vmctl-staging")
	sim.PutLogEvents("/ecs/vmctl-staging", "backend/backend/a", "GET /health 200", "GET /api 500 error")
	sim.PutLogEvents("/ecs/vmctl-staging", "openvoice/openvoice/b", "model loaded", "CUDA error: out of memory")
	time.Sleep(5 * time.Millisecond) // a later millisecond for startTime
	since := time.Now().UnixMilli()
	sim.PutLogEvents("/ecs/vmctl-staging", "backend/backend/a", "GET /health 200 again")
	c := cloudwatchlogs.NewFromConfig(simtest.Config(t, sim, simKey))
	msg := func(e cwltypes.FilteredLogEvent) string { return sdkaws.ToString(e.Message) }

	all, err := c.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: group})
	require.NoError(t, err)
	assert.Len(t, all.Events, 5)
	assert.Len(t, all.SearchedLogStreams, 2)
	assert.Nil(t, all.NextToken)

	errs, err := c.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: group, FilterPattern: sdkaws.String("error")})
	require.NoError(t, err)
	assert.Equal(t, []string{"GET /api 500 error", "CUDA error: out of memory"}, eventMessages(errs.Events, msg))
	assert.Equal(t, "backend/backend/a", sdkaws.ToString(errs.Events[0].LogStreamName))
	assert.NotEmpty(t, sdkaws.ToString(errs.Events[0].EventId))

	terms, err := c.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: group, FilterPattern: sdkaws.String(`GET -"500" ?health ?again`)})
	require.NoError(t, err)
	assert.Equal(t, []string{"GET /health 200", "GET /health 200 again"}, eventMessages(terms.Events, msg))

	byPrefix, err := c.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: group, LogStreamNamePrefix: sdkaws.String("openvoice/")})
	require.NoError(t, err)
	assert.Equal(t, []string{"model loaded", "CUDA error: out of memory"}, eventMessages(byPrefix.Events, msg))
	byName, err := c.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: group, LogStreamNames: []string{"backend/backend/a"}, StartTime: sdkaws.Int64(since)})
	require.NoError(t, err)
	assert.Equal(t, []string{"GET /health 200 again"}, eventMessages(byName.Events, msg))

	var paged []string
	p := cloudwatchlogs.NewFilterLogEventsPaginator(c, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: group, Limit: sdkaws.Int32(2)})
	pages := 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		require.NoError(t, err)
		paged = append(paged, eventMessages(page.Events, msg)...)
		pages++
	}
	assert.Equal(t, eventMessages(all.Events, msg), paged)
	assert.Equal(t, 3, pages)

	_, err = c.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: sdkaws.String("/ecs/nope")})
	assert.Equal(t, "ResourceNotFoundException", awsErrorCode(err))
	_, err = c.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: group, LogStreamNames: []string{"a"}, LogStreamNamePrefix: sdkaws.String("b")})
	assert.Equal(t, "InvalidParameterException", awsErrorCode(err))
	_, err = cloudwatchlogs.NewFromConfig(simtest.Config(t, sim, "AKIASTRANGER")).FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: group})
	assert.Equal(t, "UnrecognizedClientException", awsErrorCode(err))
}

// A container's output is a log stream; the simulator removes the
// container when it closes, and what was read stays readable until then.
func TestLogsFromContainers(t *testing.T) {
	api := dockertest.Client(t)
	img := dockertest.FixtureImageBuilt(t, api)
	sim := userSim(t)
	sim.UseDocker(api)
	ctx := context.Background()

	created, err := api.ContainerCreate(ctx, &container.Config{
		Image: img,
		Cmd:   []string{"cuda-check"},
		Env:   []string{`DEMO_CUDA_CHECK={"ok":true,"device":"Tesla T4"}`},
		Labels: map[string]string{
			awssim.LabelSim:       sim.ID,
			awssim.LabelLogGroup:  "/ecs/vmctl-staging",
			awssim.LabelLogStream: "probe/openvoice/task1",
		},
	}, nil, nil, nil, "")
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = api.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true})
	})
	require.NoError(t, api.ContainerStart(ctx, created.ID, container.StartOptions{}))
	waitCh, errCh := api.ContainerWait(ctx, created.ID, container.WaitConditionNotRunning)
	select {
	case <-waitCh:
	case err := <-errCh:
		require.NoError(t, err)
	}

	c := cloudwatchlogs.NewFromConfig(simtest.Config(t, sim, simKey))
	out, err := c.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: sdkaws.String("/ecs/vmctl-staging"), FilterPattern: sdkaws.String(`"ok"`)})
	require.NoError(t, err)
	require.Len(t, out.Events, 1)
	assert.Equal(t, `{"ok":true,"device":"Tesla T4"}`, sdkaws.ToString(out.Events[0].Message))
	assert.Equal(t, "probe/openvoice/task1", sdkaws.ToString(out.Events[0].LogStreamName))
	assert.WithinDuration(t, time.Now(), time.UnixMilli(sdkaws.ToInt64(out.Events[0].Timestamp)), time.Minute, "the engine's own timestamp")

	got, err := c.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: sdkaws.String("/ecs/vmctl-staging"), LogStreamName: sdkaws.String("probe/openvoice/task1"), StartFromHead: sdkaws.Bool(true)})
	require.NoError(t, err)
	require.Len(t, got.Events, 1)

	// Gone from the engine, still in the logs.
	require.NoError(t, api.ContainerRemove(ctx, created.ID, container.RemoveOptions{Force: true}))
	got, err = c.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: sdkaws.String("/ecs/vmctl-staging"), LogStreamName: sdkaws.String("probe/openvoice/task1")})
	require.NoError(t, err)
	assert.Len(t, got.Events, 1)
}

// Close removes every container that carries the simulator's label.
func TestCloseRemovesContainers(t *testing.T) {
	api := dockertest.Client(t)
	img := dockertest.FixtureImageBuilt(t, api)
	sim := awssim.New()
	t.Cleanup(sim.Close)
	sim.UseDocker(api)
	ctx := context.Background()
	created, err := api.ContainerCreate(ctx, &container.Config{Image: img, Labels: map[string]string{awssim.LabelSim: sim.ID}}, nil, nil, nil, "")
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = api.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true})
	})
	require.NoError(t, api.ContainerStart(ctx, created.ID, container.StartOptions{}))

	sim.Close()
	left, err := api.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", awssim.LabelSim+"="+sim.ID))})
	require.NoError(t, err)
	assert.Empty(t, left)
}
