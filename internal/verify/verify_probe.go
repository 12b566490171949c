package verify

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	logstypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/gpu"
	"github.com/vmctl/vmctl/internal/registry"
)

// probeStartedBy marks verify's one-off check tasks, so they can be told
// from the service's own.
const probeStartedBy = "vmctl-verify"

// probeError is a probe that ended without output to judge; verdict says
// whether that is a failure or not knowing.
type probeError struct {
	verdict Verdict
	msg     string
	fix     string
}

func (e *probeError) Error() string { return e.msg }

// runProbe runs OpenVoice's CUDA check as a one-off task of the GPU
// service's current task definition, on the GPU capacity provider, reads
// what it printed from CloudWatch Logs and judges it with the same rules as
// `vmctl gpu --probe`.
func runProbe(ctx context.Context, c aws.Clients, plan *ecs.Plan, s ecs.Service, opts Options) (string, *ProbeCheck, error) {
	cluster := sdkaws.String(plan.Cluster)
	svcs, err := c.ECS.DescribeServices(ctx, &awsecs.DescribeServicesInput{Cluster: cluster, Services: []string{s.Name}})
	if err != nil {
		return "", nil, fmt.Errorf("describe service %s: %w", s.Name, err)
	}
	if len(svcs.Services) == 0 || sdkaws.ToString(svcs.Services[0].Status) != "ACTIVE" {
		return "", nil, &probeError{verdict: Fail, msg: fmt.Sprintf("service %s does not exist in cluster %s", s.Name, plan.Cluster), fix: "deploy it: vmctl deploy --env " + plan.Environment}
	}
	tdARN := sdkaws.ToString(svcs.Services[0].TaskDefinition)
	td, err := c.ECS.DescribeTaskDefinition(ctx, &awsecs.DescribeTaskDefinitionInput{TaskDefinition: sdkaws.String(tdARN)})
	if err != nil {
		return "", nil, fmt.Errorf("describe task definition %s: %w", tdARN, err)
	}
	defs := td.TaskDefinition.ContainerDefinitions
	if len(defs) == 0 {
		return "", nil, fmt.Errorf("task definition %s has no container", tdARN)
	}
	main := defs[0]
	if i := slices.IndexFunc(defs, func(d ecstypes.ContainerDefinition) bool { return sdkaws.ToString(d.Name) == s.Name }); i >= 0 {
		main = defs[i]
	}
	name := sdkaws.ToString(main.Name)
	lc := main.LogConfiguration
	if lc == nil || lc.LogDriver != ecstypes.LogDriverAwslogs || lc.Options["awslogs-group"] == "" {
		return "", nil, &probeError{verdict: Unknown, msg: fmt.Sprintf("container %s of %s does not log to CloudWatch Logs (awslogs), so the check's output cannot be read", name, tdARN)}
	}

	var env []ecstypes.KeyValuePair
	for _, k := range slices.Sorted(maps.Keys(opts.ProbeEnv)) {
		env = append(env, ecstypes.KeyValuePair{Name: sdkaws.String(k), Value: sdkaws.String(opts.ProbeEnv[k])})
	}
	run, err := c.ECS.RunTask(ctx, &awsecs.RunTaskInput{
		Cluster:                  cluster,
		TaskDefinition:           sdkaws.String(tdARN),
		Count:                    sdkaws.Int32(1),
		CapacityProviderStrategy: s.Service.CapacityProviderStrategy,
		NetworkConfiguration:     s.Service.NetworkConfiguration,
		StartedBy:                sdkaws.String(probeStartedBy),
		Overrides: &ecstypes.TaskOverride{ContainerOverrides: []ecstypes.ContainerOverride{{
			Name: sdkaws.String(name), Command: opts.ProbeCommand, Environment: env,
		}}},
	})
	if err != nil {
		return "", nil, fmt.Errorf("run the CUDA check task: %w", err)
	}
	if len(run.Tasks) == 0 {
		var why []string
		for _, f := range run.Failures {
			why = append(why, strings.TrimSpace(sdkaws.ToString(f.Reason)+" "+sdkaws.ToString(f.Detail)))
		}
		group := ""
		if s.Hosts != nil {
			group = " " + s.Hosts.AutoScalingGroup
		}
		return "", nil, &probeError{
			verdict: Unknown,
			msg:     "no GPU host could take the CUDA check task: " + strings.Join(why, "; "),
			fix:     fmt.Sprintf("the service's tasks hold the hosts' GPUs: add an instance to the Auto Scaling group%s, then run vmctl verify --env %s again", group, plan.Environment),
		}
	}
	taskARN := sdkaws.ToString(run.Tasks[0].TaskArn)
	task, err := waitStopped(ctx, c.ECS, plan.Cluster, taskARN, opts)
	if err != nil {
		return taskARN, nil, err
	}
	ci := slices.IndexFunc(task.Containers, func(ct ecstypes.Container) bool { return sdkaws.ToString(ct.Name) == name })
	if ci < 0 || task.Containers[ci].ExitCode == nil {
		return taskARN, nil, &probeError{verdict: Unknown, msg: fmt.Sprintf("the CUDA check task %s stopped before its check ran: %s", shortARN(taskARN), sdkaws.ToString(task.StoppedReason))}
	}
	ct := task.Containers[ci]

	stream := taskID(taskARN)
	if p := lc.Options["awslogs-stream-prefix"]; p != "" {
		// awslogs names a stream prefix/container/task-id.
		stream = p + "/" + name + "/" + stream
	}
	line, err := readProbeLine(ctx, c.Logs, lc.Options["awslogs-group"], stream, opts)
	if err != nil {
		return taskARN, nil, err
	}
	code := int(sdkaws.ToInt32(ct.ExitCode))
	if line == "" {
		return taskARN, nil, &probeError{verdict: Unknown, msg: fmt.Sprintf("the CUDA check printed no JSON to %s %s (exit code %d): does the image carry %s?", lc.Options["awslogs-group"], stream, code, strings.Join(opts.ProbeCommand, " "))}
	}
	var res gpu.ProbeResult
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		return taskARN, nil, &probeError{verdict: Unknown, msg: "the CUDA check's output is not its JSON: " + err.Error()}
	}
	res.ExitCode, res.Image = code, sdkaws.ToString(ct.Image)
	return taskARN, &ProbeCheck{Task: taskARN, TaskDefinition: tdARN, Result: res, Verdict: gpu.JudgeProbe(res)}, nil
}

func taskID(arn string) string { return arn[strings.LastIndexByte(arn, '/')+1:] }

// waitStopped polls the task until it stops; past ProbeTimeout it stops it,
// so a check stuck in PENDING does not hold a GPU host.
func waitStopped(ctx context.Context, api aws.ECS, cluster, arn string, opts Options) (ecstypes.Task, error) {
	deadline := time.Now().Add(opts.ProbeTimeout)
	last := ""
	for {
		out, err := api.DescribeTasks(ctx, &awsecs.DescribeTasksInput{Cluster: sdkaws.String(cluster), Tasks: []string{arn}})
		if err != nil {
			return ecstypes.Task{}, fmt.Errorf("describe the CUDA check task: %w", err)
		}
		if len(out.Tasks) > 0 {
			t := out.Tasks[0]
			if last = sdkaws.ToString(t.LastStatus); last == "STOPPED" {
				return t, nil
			}
		}
		if time.Now().After(deadline) || !registry.SleepCtx(ctx, opts.Poll) {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			_, _ = api.StopTask(stopCtx, &awsecs.StopTaskInput{Cluster: sdkaws.String(cluster), Task: sdkaws.String(arn), Reason: sdkaws.String("vmctl verify: the CUDA check ran out of time")})
			if ctx.Err() != nil {
				return ecstypes.Task{}, ctx.Err()
			}
			return ecstypes.Task{}, &probeError{verdict: Unknown, msg: fmt.Sprintf("the CUDA check task %s did not finish within %s (last status %s); vmctl stopped it", shortARN(arn), opts.ProbeTimeout, last)}
		}
	}
}

// readProbeLine reads the task's log stream until a JSON line shows, for up
// to LogsTimeout: CloudWatch Logs may show events a little after the task stops.
func readProbeLine(ctx context.Context, api aws.Logs, group, stream string, opts Options) (string, error) {
	deadline := time.Now().Add(opts.LogsTimeout)
	for {
		msgs, err := logLines(ctx, api, group, stream)
		var nf *logstypes.ResourceNotFoundException
		if err != nil && !errors.As(err, &nf) {
			return "", fmt.Errorf("read the CUDA check's output from %s %s: %w", group, stream, err)
		}
		if line := lastJSON(msgs); line != "" {
			return line, nil
		}
		if time.Now().After(deadline) || !registry.SleepCtx(ctx, opts.Poll) {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			return "", nil
		}
	}
}

func logLines(ctx context.Context, api aws.Logs, group, stream string) ([]string, error) {
	in := &cloudwatchlogs.GetLogEventsInput{LogGroupName: sdkaws.String(group), LogStreamName: sdkaws.String(stream), StartFromHead: sdkaws.Bool(true)}
	var out []string
	for range 100 { // a check prints a few lines; the bound only guards against a token loop
		page, err := api.GetLogEvents(ctx, in)
		if err != nil {
			return out, err
		}
		for _, e := range page.Events {
			out = append(out, sdkaws.ToString(e.Message))
		}
		// The forward token repeats at the end of the stream.
		if page.NextForwardToken == nil || sdkaws.ToString(page.NextForwardToken) == sdkaws.ToString(in.NextToken) || len(page.Events) == 0 {
			break
		}
		in.NextToken = page.NextForwardToken
	}
	return out, nil
}

// lastJSON is the last line that is a JSON object: the check prints one,
// and whatever torch logs on the way is not JSON.
func lastJSON(lines []string) string {
	var last string
	for _, msg := range lines {
		sc := bufio.NewScanner(strings.NewReader(msg))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, "{") && json.Valid([]byte(l)) {
				last = l
			}
		}
	}
	return last
}
