// Package doctor is the checklist for a new developer machine or a new GPU
// host: engine, files, GPU, ports, disk and cloud credentials, each with a
// verdict and the next step to take. Every probe is injected, so the
// checklist is the same whether it runs for real or under test.
package doctor

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/docker/docker/api/types/system"

	"github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/engine"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/gpu"
	"github.com/vmctl/vmctl/internal/stack"
)

// Status is one check's outcome.
type Status string

// The outcomes, drawn ✓ ! ✗ and - .
const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "fail"
	Skip Status = "skip"
)

// Mark is the status as the checklist draws it.
func (s Status) Mark() string {
	switch s {
	case OK:
		return "✓"
	case Warn:
		return "!"
	case Fail:
		return "✗"
	}
	return "-"
}

// Check is one line of the checklist.
type Check struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// Report is the whole checklist.
type Report struct {
	Environment string  `json:"environment"`
	Checks      []Check `json:"checks"`
}

// Failed says whether any check failed.
func (r Report) Failed() bool {
	for _, c := range r.Checks {
		if c.Status == Fail {
			return true
		}
	}
	return false
}

// Deps are the probes the checklist uses.
type Deps struct {
	EnvDir string
	Env    string // the environment to check; local when empty

	DockerInfo func(ctx context.Context) (system.Info, string, error) // info and the API version in use
	Stack      func(ctx context.Context) (*stack.Stack, error)
	GPU        func() gpu.Inventory
	Ports      func(ctx context.Context, st *stack.Stack) ([]engine.PortConflict, error)
	DiskFree   func(path string) (uint64, error)
	Identity   func(ctx context.Context, env *environment.Environment) (aws.Identity, error)
	// Foundation reads the environment's foundation stack: its status in a few words, or
	// why the commands cannot use it (which says what to run).
	Foundation func(ctx context.Context, env *environment.Environment) (string, error)
}

// Disk space the stack's images need: the OpenVoice image alone (CUDA,
// cuDNN, torch) is around 10 GB.
const (
	diskWarnBytes = 30 << 30
	diskFailBytes = 12 << 30
)

// Run walks the checklist. Later checks that need an earlier one (ports
// need the engine and the stack) are skipped when it failed.
func Run(ctx context.Context, d Deps) Report {
	envName := d.Env
	if envName == "" {
		envName = "local"
	}
	r := Report{Environment: envName}
	add := func(c Check) { r.Checks = append(r.Checks, c) }

	info, apiVersion, dockerErr := d.DockerInfo(ctx)
	if dockerErr != nil {
		add(Check{Name: "Docker Engine", Status: Fail, Detail: dockerErr.Error(), Fix: "start it (sudo systemctl start docker, or dockerd &) or set DOCKER_HOST"})
	} else {
		add(Check{Name: "Docker Engine", Status: OK, Detail: fmt.Sprintf("%s (API %s), %s", info.ServerVersion, apiVersion, info.OperatingSystem)})
	}

	st, stackErr := d.Stack(ctx)
	if stackErr != nil {
		add(Check{Name: "Compose stack", Status: Fail, Detail: stackErr.Error(), Fix: "fix the compose file, or point at the app with VMCTL_APP_SOURCE"})
	} else {
		add(Check{Name: "Compose stack", Status: OK, Detail: fmt.Sprintf("%s: %d services (%s)", st.Name(), len(st.Names()), strings.Join(st.Names(), ", "))})
	}

	env, envChecks := environments(d.EnvDir, envName)
	for _, c := range envChecks {
		add(c)
	}

	add(gpuCheck(d, env, info, dockerErr))

	switch {
	case dockerErr != nil || stackErr != nil:
		add(Check{Name: "Host ports", Status: Skip, Detail: "needs the engine and the stack"})
	default:
		add(portsCheck(ctx, d, st))
	}

	if dockerErr != nil {
		add(Check{Name: "Disk space", Status: Skip, Detail: "needs the engine"})
	} else {
		add(diskCheck(d, info.DockerRootDir))
	}

	if env != nil && env.Kind == environment.KindAWS {
		id := identityCheck(ctx, d, env)
		add(id)
		switch {
		case d.Foundation == nil:
		case id.Status != OK:
			add(Check{Name: "Foundation (" + env.Name + ")", Status: Skip, Detail: "needs credentials for the account"})
		default:
			add(foundationCheck(ctx, d, env))
		}
	}
	return r
}

// foundationCheck says whether the stack behind the environment's ids exists and is usable.
func foundationCheck(ctx context.Context, d Deps, env *environment.Environment) Check {
	name := "Foundation (" + env.Name + ")"
	detail, err := d.Foundation(ctx, env)
	if err != nil {
		return Check{Name: name, Status: Fail, Detail: err.Error(), Fix: "vmctl infra plan --env " + env.Name + ", then vmctl infra apply --env " + env.Name}
	}
	return Check{Name: name, Status: OK, Detail: detail}
}

func environments(dir, want string) (*environment.Environment, []Check) {
	names, err := environment.Names(dir)
	if err != nil {
		return nil, []Check{{Name: "Environment files", Status: Fail, Detail: err.Error(), Fix: "run vmctl from the repository root, or pass --env-dir"}}
	}
	var bad []string
	var chosen *environment.Environment
	for _, n := range names {
		e, err := environment.LoadNamed(dir, n)
		if err != nil {
			bad = append(bad, strings.ReplaceAll(err.Error(), "\n", "; "))
			continue
		}
		if n == want {
			chosen = e
		}
	}
	var out []Check
	if len(bad) > 0 {
		out = append(out, Check{Name: "Environment files", Status: Fail, Detail: strings.Join(bad, "; "), Fix: "fix the fields named above"})
	} else {
		out = append(out, Check{Name: "Environment files", Status: OK, Detail: fmt.Sprintf("%s valid (%s)", dir, strings.Join(names, ", "))})
	}
	if chosen == nil && !contains(names, want) {
		out = append(out, Check{Name: "Environment " + want, Status: Fail, Detail: fmt.Sprintf("no %s.yaml in %s", want, dir), Fix: "use one of: " + strings.Join(names, ", ")})
	}
	return chosen, out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Requirements reads OpenVoice's GPU needs from an environment file.
func Requirements(env *environment.Environment) gpu.Requirements {
	req := gpu.Requirements{Count: 1}
	if env == nil {
		return req
	}
	if s, ok := env.Services["openvoice"]; ok && s.GPU != nil {
		req.Count = s.GPU.Count
		req.MinMemoryMiB = uint64(s.GPU.MinMemoryMiB)
	}
	return req
}

func gpuCheck(d Deps, env *environment.Environment, info system.Info, dockerErr error) Check {
	report := gpu.Evaluate(d.GPU(), Requirements(env))
	docker := gpu.Verdict{Level: gpu.Unknown, Reasons: []string{"the Docker Engine is unreachable"}}
	if dockerErr == nil {
		docker = gpu.Docker(info)
	}
	v := gpu.Combine(report, docker)
	c := Check{Name: "GPU (CUDA 11.8)", Detail: v.Summary(), Fix: strings.Join(v.Fixes, "; ")}
	switch v.Level {
	case gpu.Ready:
		c.Status = OK
		var names []string
		for _, g := range report.Inventory.GPUs {
			names = append(names, fmt.Sprintf("%s %s", g.Name, g.ComputeCapability()))
		}
		c.Detail = fmt.Sprintf("ready: driver %s, CUDA %s, %s", report.Inventory.DriverVersion, report.Inventory.CUDAVersion(), strings.Join(names, ", "))
	case gpu.ReadyWarning:
		c.Status = Warn
	default:
		// A developer laptop without a GPU still runs the stack: OpenVoice
		// goes to CPU mode. That is worth a warning, not a failure.
		c.Status = Warn
		if report.Inventory.Available && len(report.Inventory.GPUs) > 0 {
			c.Status = Fail // a GPU host that cannot run OpenVoice
		}
	}
	return c
}

func portsCheck(ctx context.Context, d Deps, st *stack.Stack) Check {
	conflicts, err := d.Ports(ctx, st)
	if err != nil {
		return Check{Name: "Host ports", Status: Fail, Detail: err.Error()}
	}
	if len(conflicts) == 0 {
		var ports []string
		for _, n := range st.Names() {
			hp, _ := stack.HostPorts(st.Project.Services[n])
			for _, p := range hp {
				ports = append(ports, fmt.Sprint(p.Port))
			}
		}
		sort.Strings(ports)
		return Check{Name: "Host ports", Status: OK, Detail: "free or held by this stack: " + strings.Join(ports, ", ")}
	}
	var why []string
	for _, c := range conflicts {
		why = append(why, fmt.Sprintf("%d (%s) held by %s", c.Port, c.Service, c.Holder))
	}
	return Check{Name: "Host ports", Status: Fail, Detail: strings.Join(why, "; "), Fix: "stop what holds them, or change the published ports in the compose file"}
}

func diskCheck(d Deps, root string) Check {
	free, err := d.DiskFree(root)
	if err != nil {
		return Check{Name: "Disk space", Status: Skip, Detail: fmt.Sprintf("cannot read free space of %s: %v", root, err)}
	}
	detail := fmt.Sprintf("%.1f GiB free in %s", float64(free)/(1<<30), root)
	switch {
	case free < diskFailBytes:
		return Check{Name: "Disk space", Status: Fail, Detail: detail + "; the images need about 12 GiB", Fix: "free space (docker system prune) or move the Docker root dir"}
	case free < diskWarnBytes:
		return Check{Name: "Disk space", Status: Warn, Detail: detail + "; room for one build of the images, not many", Fix: "docker system prune removes old images and build cache"}
	}
	return Check{Name: "Disk space", Status: OK, Detail: detail}
}

func identityCheck(ctx context.Context, d Deps, env *environment.Environment) Check {
	id, err := d.Identity(ctx, env)
	name := "AWS credentials (" + env.Name + ")"
	if err != nil {
		return Check{Name: name, Status: Fail, Detail: err.Error(), Fix: "aws sso login, or set AWS_PROFILE to a profile of account " + env.AWS.AccountID}
	}
	if id.Account != env.AWS.AccountID {
		return Check{Name: name, Status: Fail, Detail: fmt.Sprintf("credentials are for account %s (%s), %s is account %s", id.Account, id.ARN, env.Name, env.AWS.AccountID), Fix: "switch AWS_PROFILE to a profile of account " + env.AWS.AccountID}
	}
	return Check{Name: name, Status: OK, Detail: fmt.Sprintf("%s in account %s", id.ARN, id.Account)}
}
