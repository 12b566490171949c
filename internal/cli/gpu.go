package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vmctl/vmctl/internal/doctor"
	"github.com/vmctl/vmctl/internal/engine"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/gpu"
	"github.com/vmctl/vmctl/internal/stack"
)

type gpuOptions struct {
	env    string
	output string
	probe  bool
	image  string
}

func newGPUCmd(f *Factory, g *globalOptions) *cobra.Command {
	o := &gpuOptions{}
	cmd := &cobra.Command{
		Use:   "gpu",
		Short: "Check this host's NVIDIA GPUs for CUDA 11.8 readiness (OpenVoice)",
		Long: `Reads the GPUs through NVML, applies the CUDA 11.8 + cuDNN 8 rules, checks that the
Docker Engine can hand a GPU to a container, and with --probe runs the OpenVoice image's
own CUDA check with the GPU attached.

Exit codes: 0 ready (possibly with a warning), 3 not ready, 4 could not tell.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runGPU(cmd.Context(), f, g, o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.env, "env", "local", "environment whose OpenVoice GPU needs apply (min memory)")
	fl.StringVarP(&o.output, "output", "o", "table", "table or json")
	fl.BoolVar(&o.probe, "probe", false, "also run the OpenVoice image's CUDA check in a container with the GPU")
	fl.StringVar(&o.image, "image", "", "image to probe (default: the stack's openvoice image)")
	return cmd
}

// gpuReport is vmctl gpu's result.
type gpuReport struct {
	gpu.HostReport
	Docker  gpu.Verdict      `json:"docker"`
	Probe   *gpu.ProbeResult `json:"probe,omitempty"`
	ProbeV  *gpu.Verdict     `json:"probe_verdict,omitempty"`
	Verdict gpu.Verdict      `json:"verdict"`
}

// optionalEnvironment loads an environment file when the directory has one.
func optionalEnvironment(dir, name string) (*environment.Environment, error) {
	if _, err := os.Stat(filepath.Join(dir, name+".yaml")); errors.Is(err, fs.ErrNotExist) && name == "local" {
		return nil, nil
	}
	return environment.LoadNamed(dir, name)
}

// hostGPU is the verdict on this host: NVML and the CUDA rules, and the
// engine's ability to hand the GPU out.
func hostGPU(ctx context.Context, f *Factory, env *environment.Environment) (gpu.HostReport, gpu.Verdict, gpu.Verdict) {
	report := gpu.Evaluate(f.GPU(), doctor.Requirements(env))
	docker := gpu.Verdict{Level: gpu.Unknown}
	if c, err := f.Docker(ctx); err != nil {
		docker.Reasons = []string{firstLine(err.Error())}
	} else if info, err := c.Info(ctx); err != nil {
		docker.Reasons = []string{"docker info: " + err.Error()}
	} else {
		docker = gpu.Docker(info)
	}
	return report, docker, gpu.Combine(report, docker)
}

func runGPU(ctx context.Context, f *Factory, g *globalOptions, o *gpuOptions) error {
	format, err := parseOutput(o.output)
	if err != nil {
		return err
	}
	env, err := optionalEnvironment(g.envDir, o.env)
	if err != nil {
		return err
	}
	host, docker, verdict := hostGPU(ctx, f, env)
	out := gpuReport{HostReport: host, Docker: docker, Verdict: verdict}
	if o.probe {
		if err := probeImage(ctx, f, g, o, &out); err != nil {
			return err
		}
	}
	if format == outputJSON {
		if err := writeJSON(f.IO.Out, out); err != nil {
			return err
		}
	} else if err := printGPU(f, out); err != nil {
		return err
	}
	switch {
	case out.Verdict.Level.OK():
		return nil
	case out.Verdict.Level == gpu.Unknown:
		return &exitError{code: ExitUnknown, err: fmt.Errorf("GPU readiness could not be told: %s", out.Verdict.Summary())}
	}
	return &exitError{code: ExitNotReady, err: fmt.Errorf("this host cannot run OpenVoice on the GPU: %s", out.Verdict.Summary())}
}

func probeImage(ctx context.Context, f *Factory, g *globalOptions, o *gpuOptions, out *gpuReport) error {
	if !out.Verdict.Level.OK() {
		v := gpu.Verdict{Level: gpu.Unknown, Reasons: []string{"probe skipped: the host is not ready"}}
		out.ProbeV = &v
		return nil
	}
	image := o.image
	if image == "" {
		st, err := f.loadStack(ctx, g)
		if err != nil {
			return fmt.Errorf("find the openvoice image to probe: %w (or pass --image)", err)
		}
		svc, err := st.Service("openvoice")
		if err != nil {
			return fmt.Errorf("find the openvoice image to probe: %w (or pass --image)", err)
		}
		image = engine.ImageName(st.Name(), svc)
	}
	c, err := f.Docker(ctx)
	if err != nil {
		return err
	}
	res, v, err := gpu.Probe(ctx, c, gpu.ProbeOptions{Image: image})
	if err != nil {
		v = gpu.Verdict{Level: gpu.Unknown, Reasons: []string{err.Error()}}
	}
	out.Probe, out.ProbeV = &res, &v
	out.Verdict = mergeVerdict(out.Verdict, v)
	return nil
}

func mergeVerdict(a, b gpu.Verdict) gpu.Verdict {
	order := map[gpu.Level]int{gpu.Ready: 0, gpu.ReadyWarning: 1, gpu.Unknown: 2, gpu.NotReady: 3}
	out := a
	if order[b.Level] > order[a.Level] {
		out.Level = b.Level
	}
	if !b.Level.OK() {
		out.Reasons = append(append([]string(nil), a.Reasons...), b.Reasons...)
		out.Fixes = append(append([]string(nil), a.Fixes...), b.Fixes...)
	}
	return out
}

func printGPU(f *Factory, r gpuReport) error {
	w := f.IO.Out
	inv := r.Inventory
	switch {
	case inv.Available:
		fmt.Fprintf(w, "Driver %s · NVML %s · CUDA %s (driver)\n", inv.DriverVersion, dash(inv.NVMLVersion), dash(inv.CUDAVersion()))
		t := newTable(w, f.IO.OutIsTerminal, "GPU", "NAME", "MEMORY", "CC", "UTIL", "TEMP", "VERDICT")
		for i, d := range inv.GPUs {
			util, temp := "-", "-"
			if d.Utilization != nil {
				util = fmt.Sprintf("%d%%", *d.Utilization)
			}
			if d.TemperatureC != nil {
				temp = fmt.Sprintf("%d°C", *d.TemperatureC)
			}
			v := r.GPUs[i].Verdict
			t.add(fmt.Sprint(d.Index), d.Name, fmt.Sprintf("%d MiB (%d free)", d.MemoryTotalMiB, d.MemoryFreeMiB), d.ComputeCapability(), util, temp, v.Summary())
		}
		if err := t.flush(); err != nil {
			return err
		}
	default:
		fmt.Fprintf(w, "NVML: %s\n", inv.Problem)
	}
	fmt.Fprintf(w, "Docker: %s\n", r.Docker.Summary())
	if r.ProbeV != nil {
		fmt.Fprintf(w, "Image probe: %s\n", r.ProbeV.Summary())
	}
	fmt.Fprintf(w, "Verdict: %s\n", r.Verdict.Summary())
	for _, fix := range r.Verdict.Fixes {
		fmt.Fprintf(w, "  next: %s\n", fix)
	}
	return nil
}

// upGPUVerdict is what `up --gpu auto|on` decides with: the CUDA 11.8
// verdict of this host, not only whether Docker has a GPU runtime.
func upGPUVerdict(ctx context.Context, f *Factory, g *globalOptions, st *stack.Stack, services []string) (*engine.GPUVerdict, error) {
	names, err := st.Select(services)
	if err != nil {
		return nil, err
	}
	needs := false
	for _, n := range names {
		needs = needs || len(stack.GPURequests(st.Project.Services[n])) > 0
	}
	if !needs {
		return nil, nil
	}
	env, err := optionalEnvironment(g.envDir, "local")
	if err != nil {
		return nil, err
	}
	_, _, v := hostGPU(ctx, f, env)
	reason := strings.Join(v.Reasons, "; ")
	if !v.Level.OK() && len(v.Fixes) > 0 {
		reason += " (next: " + v.Fixes[0] + ")"
	}
	return &engine.GPUVerdict{Ready: v.Level.OK(), Reason: reason}, nil
}
