package engine

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/vmctl/vmctl/internal/gpu"
	"github.com/vmctl/vmctl/internal/stack"
)

// GPUVerdict says whether GPU services can get their GPU, and why not. The
// CLI fills it from NVML and the CUDA 11.8 rules (internal/gpu); without it
// the engine asks Docker alone.
type GPUVerdict struct {
	Ready  bool
	Reason string
}

// decideGPU resolves --gpu for every selected service that reserves a GPU:
// on fails before anything starts when the host cannot; auto falls back to
// CPU mode with one line saying why.
func (e *Engine) decideGPU(ctx context.Context, st *stack.Stack, names []string, opts UpOptions, notices io.Writer) (map[string]bool, error) {
	var gpuServices []string
	for _, n := range names {
		if len(stack.GPURequests(st.Project.Services[n])) > 0 {
			gpuServices = append(gpuServices, n)
		}
	}
	out := map[string]bool{}
	if len(gpuServices) == 0 || opts.GPU == GPUOff {
		if len(gpuServices) > 0 {
			fmt.Fprintf(notices, "gpu: off: %s run in CPU mode\n", strings.Join(gpuServices, ", "))
		}
		return out, nil
	}
	verdict := opts.GPUReady
	if verdict == nil {
		info, err := e.api.Info(ctx)
		if err != nil {
			return nil, fmt.Errorf("read docker info: %w", err)
		}
		d := gpu.Docker(info)
		verdict = &GPUVerdict{Ready: d.Level.OK(), Reason: strings.Join(append(d.Reasons, d.Fixes...), "; ")}
	}
	if !verdict.Ready {
		if opts.GPU == GPUOn {
			return nil, fmt.Errorf("--gpu on: %s reserve a GPU but this host cannot provide one: %s; or run with --gpu off", strings.Join(gpuServices, ", "), verdict.Reason)
		}
		fmt.Fprintf(notices, "gpu: auto: %s run in CPU mode: %s\n", strings.Join(gpuServices, ", "), verdict.Reason)
		return out, nil
	}
	for _, n := range gpuServices {
		out[n] = true
	}
	return out, nil
}
