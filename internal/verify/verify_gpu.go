package verify

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/gpu"
	"github.com/vmctl/vmctl/internal/registry"
)

// The query the design names for reading GPU hosts over SSM, and the same
// without compute_cap for nvidia-smi builds that predate that field (R510).
const (
	nvidiaQuery     = "nvidia-smi --query-gpu=driver_version,name,memory.total,compute_cap --format=csv,noheader"
	nvidiaQueryNoCC = "nvidia-smi --query-gpu=driver_version,name,memory.total --format=csv,noheader"
)

// hostGPU is one instance's inventory as nvidia-smi reported it.
type hostGPU struct {
	inv  gpu.Inventory
	noCC bool // this nvidia-smi cannot report compute capability
}

// ssmResult is one instance's finished invocation.
type ssmResult struct {
	status ssmtypes.CommandInvocationStatus
	code   int32
	stdout string
	stderr string
}

// readGPUs runs the nvidia-smi query on every instance with SSM Run Command
// and turns each answer into an inventory for the CUDA 11.8 rules.
func readGPUs(ctx context.Context, api aws.SSM, ids []string, opts Options) (map[string]hostGPU, map[string]error) {
	invs, errs := map[string]hostGPU{}, map[string]error{}
	results := runShell(ctx, api, ids, nvidiaQuery, opts)
	var retry []string
	for _, id := range ids {
		r := results[id]
		if r.err != nil {
			errs[id] = r.err
			continue
		}
		inv, err := parseNvidiaSMI(r.ssmResult, 4)
		switch {
		case errors.Is(err, errNoComputeCap):
			retry = append(retry, id)
		case err != nil:
			errs[id] = err
		default:
			invs[id] = hostGPU{inv: inv}
		}
	}
	if len(retry) > 0 {
		again := runShell(ctx, api, retry, nvidiaQueryNoCC, opts)
		for _, id := range retry {
			r := again[id]
			if r.err != nil {
				errs[id] = r.err
				continue
			}
			inv, err := parseNvidiaSMI(r.ssmResult, 3)
			if err != nil {
				errs[id] = err
				continue
			}
			invs[id] = hostGPU{inv: inv, noCC: true}
		}
	}
	return invs, errs
}

type shellOutcome struct {
	ssmResult
	err error
}

// runShell sends one AWS-RunShellScript command to the instances and polls
// each invocation until it finishes or SSMTimeout passes.
func runShell(ctx context.Context, api aws.SSM, ids []string, command string, opts Options) map[string]shellOutcome {
	out := map[string]shellOutcome{}
	sent, err := api.SendCommand(ctx, &ssm.SendCommandInput{
		DocumentName:   sdkaws.String("AWS-RunShellScript"),
		InstanceIds:    ids,
		Parameters:     map[string][]string{"commands": {command}},
		Comment:        sdkaws.String("vmctl verify: CUDA 11.8 readiness"),
		TimeoutSeconds: sdkaws.Int32(int32(max(30, opts.SSMTimeout/time.Second))),
	})
	if err != nil {
		for _, id := range ids {
			out[id] = shellOutcome{err: fmt.Errorf("run nvidia-smi over SSM: %w", err)}
		}
		return out
	}
	cmdID := sent.Command.CommandId
	deadline := time.Now().Add(opts.SSMTimeout)
	pending := append([]string(nil), ids...)
	last := map[string]string{}
	for len(pending) > 0 {
		var still []string
		for _, id := range pending {
			inv, err := api.GetCommandInvocation(ctx, &ssm.GetCommandInvocationInput{CommandId: cmdID, InstanceId: sdkaws.String(id)})
			var missing *ssmtypes.InvocationDoesNotExist
			switch {
			case errors.As(err, &missing):
				// Run Command takes a moment to record an invocation after SendCommand.
				still, last[id] = append(still, id), "not yet recorded"
				continue
			case err != nil:
				out[id] = shellOutcome{err: fmt.Errorf("read the SSM command's result: %w", err)}
				continue
			}
			switch inv.Status {
			case ssmtypes.CommandInvocationStatusSuccess, ssmtypes.CommandInvocationStatusFailed:
				out[id] = shellOutcome{ssmResult: ssmResult{
					status: inv.Status, code: inv.ResponseCode,
					stdout: sdkaws.ToString(inv.StandardOutputContent), stderr: sdkaws.ToString(inv.StandardErrorContent),
				}}
			case ssmtypes.CommandInvocationStatusCancelled, ssmtypes.CommandInvocationStatusTimedOut:
				out[id] = shellOutcome{err: fmt.Errorf("the SSM command %s on %s: %s", sdkaws.ToString(cmdID), id, inv.Status)}
			default:
				still, last[id] = append(still, id), string(inv.Status)
			}
		}
		pending = still
		if len(pending) == 0 {
			break
		}
		if time.Now().After(deadline) || !registry.SleepCtx(ctx, opts.Poll) {
			for _, id := range pending {
				out[id] = shellOutcome{err: fmt.Errorf("nvidia-smi over SSM did not finish within %s (command %s is %s)", opts.SSMTimeout, sdkaws.ToString(cmdID), last[id])}
			}
			break
		}
	}
	return out
}

var errNoComputeCap = errors.New("nvidia-smi does not know compute_cap")

// parseNvidiaSMI reads `nvidia-smi --query-gpu=… --format=csv,noheader`:
// one line per GPU, fields driver_version, name, memory.total and (with 4
// fields) compute_cap. The query has no CUDA driver version (nvidia-smi
// prints it only in its table header), so CUDADriverVersion stays 0 and
// gpu.Evaluate judges the driver by its branch alone, as the rules define;
// NVML's cross-check is for hosts read locally.
func parseNvidiaSMI(r ssmResult, fields int) (gpu.Inventory, error) {
	text := strings.TrimSpace(r.stdout + "\n" + r.stderr)
	if r.status != ssmtypes.CommandInvocationStatusSuccess || r.code != 0 {
		switch {
		case strings.Contains(text, "is not a valid field to query") && fields == 4:
			return gpu.Inventory{}, errNoComputeCap
		case strings.Contains(text, "NVIDIA-SMI has failed"), strings.Contains(text, "nvidia-smi: command not found"),
			strings.Contains(text, "nvidia-smi: not found"):
			return gpu.Inventory{NoDriver: true, GPUs: []gpu.Device{}, Problem: firstLineOf(text)}, nil
		}
		return gpu.Inventory{}, fmt.Errorf("nvidia-smi exited %d: %s", r.code, firstLineOf(text))
	}
	inv := gpu.Inventory{Available: true, GPUs: []gpu.Device{}}
	for _, line := range strings.Split(r.stdout, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) != fields {
			return gpu.Inventory{}, fmt.Errorf("nvidia-smi printed %q, not %d comma-separated fields", line, fields)
		}
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		if inv.DriverVersion == "" {
			inv.DriverVersion = f[0]
		}
		d := gpu.Device{Index: len(inv.GPUs), Name: f[1]}
		if mib, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(f[2], "MiB")), 10, 64); err == nil {
			d.MemoryTotalMiB = mib
		} else {
			d.Problems = append(d.Problems, fmt.Sprintf("memory.total %q is not a number of MiB", f[2]))
		}
		if fields == 4 {
			major, minor, ok := strings.Cut(f[3], ".")
			ma, err1 := strconv.Atoi(major)
			mi, err2 := strconv.Atoi(minor)
			if ok && err1 == nil && err2 == nil {
				d.CCMajor, d.CCMinor = ma, mi
			} else {
				d.Problems = append(d.Problems, fmt.Sprintf("compute_cap %q is not major.minor", f[3]))
			}
		}
		inv.GPUs = append(inv.GPUs, d)
	}
	if len(inv.GPUs) == 0 {
		return gpu.Inventory{}, errors.New("nvidia-smi printed no GPU")
	}
	return inv, nil
}

func firstLineOf(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
