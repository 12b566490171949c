package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/errdefs"

	"github.com/vmctl/vmctl/internal/progress"
	"github.com/vmctl/vmctl/internal/stack"
)

// GPUMode says whether services that reserve a GPU get it.
type GPUMode string

// The GPU modes of `vmctl up --gpu`.
const (
	GPUAuto GPUMode = "auto"
	GPUOn   GPUMode = "on"
	GPUOff  GPUMode = "off"
)

// ParseGPUMode validates a --gpu value.
func ParseGPUMode(s string) (GPUMode, error) {
	switch m := GPUMode(s); m {
	case GPUAuto, GPUOn, GPUOff:
		return m, nil
	}
	return "", fmt.Errorf("invalid --gpu %q: use auto, on or off", s)
}

// UpOptions configures Up.
type UpOptions struct {
	Services      []string
	Build         bool
	GPU           GPUMode
	GPUReady      *GPUVerdict // decided by the caller; nil asks the engine
	WaitTimeout   time.Duration
	RemoveOrphans bool
	Progress      progress.Writer
	Notices       io.Writer // one-line notes for the user (GPU fallback, orphans)
}

// ServiceStatus is one row of the table up and ps print.
type ServiceStatus struct {
	Service   string `json:"service"`
	Container string `json:"container"`
	ID        string `json:"id"`
	State     string `json:"state"`
	Health    string `json:"health"`
	URL       string `json:"url,omitempty"`
	Ports     string `json:"ports,omitempty"`
	GPU       string `json:"gpu,omitempty"`
	Action    string `json:"action,omitempty"`
}

// ServiceError names the service that failed and carries its last log lines.
type ServiceError struct {
	Service string
	Err     error
	Logs    string
}

func (e *ServiceError) Error() string { return fmt.Sprintf("service %s: %v", e.Service, e.Err) }
func (e *ServiceError) Unwrap() error { return e.Err }

type action string

const (
	actCreate   action = "create"
	actRecreate action = "recreate"
	actStart    action = "start"
	actKeep     action = "keep"
)

// plan is what up will do to one service.
type planned struct {
	svc      types.ServiceConfig
	image    string
	hash     string
	gpu      bool
	act      action
	existing *container.Summary
	restart  bool // kept, but restarted because a dependency was recreated or restarted
	// completed: a one-shot job that already exited 0 with this very
	// configuration; up leaves it alone, as docker compose does.
	completed bool
}

// serviceState is published by each service's goroutine for its dependents.
type serviceState struct {
	started, healthy, completed chan struct{}
	failed                      chan struct{}
	once                        sync.Once
	containerID                 string
	health                      string
}

func newServiceState() *serviceState {
	return &serviceState{started: make(chan struct{}), healthy: make(chan struct{}), completed: make(chan struct{}), failed: make(chan struct{})}
}

// Up converges the stack's containers to the compose file and waits until
// every selected service is healthy.
func (e *Engine) Up(ctx context.Context, st *stack.Stack, opts UpOptions) ([]ServiceStatus, error) {
	pw := opts.Progress
	if pw == nil {
		pw = progress.Discard{}
	}
	notices := opts.Notices
	if notices == nil {
		notices = io.Discard
	}
	if opts.WaitTimeout <= 0 {
		opts.WaitTimeout = 3 * time.Minute
	}
	if opts.GPU == "" {
		opts.GPU = GPUAuto
	}
	names, err := st.Select(opts.Services)
	if err != nil {
		return nil, err
	}
	project := st.Name()

	// Everything that can refuse the run is checked before anything changes.
	gpuOn, err := e.decideGPU(ctx, st, names, opts, notices)
	if err != nil {
		return nil, err
	}
	existing, err := e.projectContainers(ctx, project)
	if err != nil {
		return nil, err
	}
	if err := checkDuplicatePorts(st, names); err != nil {
		return nil, err
	}

	// Images: build what must be built, pull what is missing.
	var buildNames []string
	for _, n := range names {
		if st.Project.Services[n].Build != nil {
			buildNames = append(buildNames, n)
		}
	}
	imageIDs, err := e.Build(ctx, st, BuildOptions{Services: buildNames, Force: opts.Build, Progress: pw})
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if _, ok := imageIDs[n]; ok {
			continue
		}
		id, err := e.ensureImage(ctx, ImageName(project, st.Project.Services[n]), pw)
		if err != nil {
			return nil, &ServiceError{Service: n, Err: err}
		}
		imageIDs[n] = id
	}

	plan, err := planServices(st, names, existing, imageIDs, gpuOn)
	if err != nil {
		return nil, err
	}
	if err := e.checkPorts(ctx, st, plan); err != nil {
		return nil, err
	}
	e.warnOrphans(ctx, st, existing, opts.RemoveOrphans, notices)

	runID := strconv.FormatInt(e.now().UnixNano(), 36)
	created, err := e.ensureNetworksAndVolumes(ctx, st, names)
	if err != nil {
		return nil, err
	}

	waitCtx, cancelWait := context.WithTimeout(ctx, opts.WaitTimeout)
	defer cancelWait()
	states := map[string]*serviceState{}
	for _, n := range names {
		states[n] = newServiceState()
	}
	needsCompletion := oneShots(st, names)

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []*ServiceError
	)
	fail := func(n string, err error) {
		mu.Lock()
		failures = append(failures, &ServiceError{Service: n, Err: err})
		mu.Unlock()
		states[n].once.Do(func() { close(states[n].failed) })
		// One failed service fails up: stop waiting on the others now
		// rather than at the deadline.
		if !isDependencyErr(err) && !errors.Is(err, context.DeadlineExceeded) {
			cancelWait()
		}
	}
	for _, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := plan[n]
			if err := e.waitDependencies(waitCtx, st, n, states); err != nil {
				pw.Event(progress.Event{Resource: n, Status: progress.Error, Text: "Not started", Detail: err.Error()})
				fail(n, err)
				return
			}
			id, err := e.converge(waitCtx, st, p, runID, pw)
			if err != nil {
				pw.Event(progress.Event{Resource: n, Status: progress.Error, Text: "Failed", Detail: err.Error()})
				if waitCtx.Err() != nil {
					// Time ran out (or another service failed) while this one
					// was being created: a consequence, not the cause.
					err = fmt.Errorf("%w: %w", errDependency, err)
				}
				fail(n, err)
				return
			}
			states[n].containerID = id
			close(states[n].started)
			// A kept container is usually known ready at once: no wait.
			res, known := "", false
			if p.act == actKeep && !p.restart {
				res, known = e.readyKept(waitCtx, st, p)
			}
			if !known {
				pw.Event(progress.Event{Resource: n, Status: progress.Working, Text: "Waiting", Detail: "for health"})
				res, err = e.waitReady(waitCtx, st, n, id, needsCompletion[n])
			}
			if err != nil {
				pw.Event(progress.Event{Resource: n, Status: progress.Error, Text: "Unhealthy", Detail: err.Error()})
				fail(n, err)
				return
			}
			states[n].health = res
			if res == "exited (0)" {
				close(states[n].completed)
				pw.Event(progress.Event{Resource: n, Status: progress.Done, Text: "Completed"})
				return
			}
			close(states[n].healthy)
			text := "Healthy"
			if res == "running" {
				text = "Running"
			}
			pw.Event(progress.Event{Resource: n, Status: progress.Done, Text: text, Detail: p.describe()})
		}()
	}
	wg.Wait()

	if ctx.Err() != nil {
		// Ctrl-C: take back what this run created, so nothing is left half made.
		e.rollback(context.WithoutCancel(ctx), project, runID, created)
		return nil, ctx.Err()
	}
	if len(failures) > 0 {
		// The root cause first: a dependency failure is a consequence.
		sort.SliceStable(failures, func(i, j int) bool {
			return !secondary(failures[i].Err) && secondary(failures[j].Err)
		})
		first := failures[0]
		if id := states[first.Service].containerID; id != "" {
			first.Logs = e.tail(context.WithoutCancel(ctx), id, 20)
		}
		if errors.Is(first.Err, context.DeadlineExceeded) {
			first.Err = fmt.Errorf("not healthy within %s: %w", opts.WaitTimeout, first.Err)
		}
		return e.statuses(context.WithoutCancel(ctx), st, names, plan, states), first
	}
	return e.statuses(ctx, st, names, plan, states), nil
}

// describe says in a word what up did to the service's container.
func (p *planned) describe() string {
	switch {
	case p.restart:
		return "restarted"
	case p.act == actCreate:
		return "created"
	case p.act == actRecreate:
		return "recreated"
	case p.act == actStart:
		return "started"
	}
	return "unchanged"
}

// oneShots are the services some selected service waits on to complete
// (service_completed_successfully): jobs, not servers.
func oneShots(st *stack.Stack, names []string) map[string]bool {
	out := map[string]bool{}
	for _, n := range names {
		for dep, d := range st.Dependencies(n) {
			if d.Condition == types.ServiceConditionCompletedSuccessfully {
				out[dep] = true
			}
		}
	}
	return out
}

// exitedZero reads a stopped container's exit code from its status
// ("Exited (0) 3 minutes ago"); the list API has no separate field.
func exitedZero(c container.Summary) bool {
	return c.State == container.StateExited && strings.HasPrefix(c.Status, "Exited (0)")
}

var errDependency = errors.New("dependency failed")

func isDependencyErr(err error) bool { return errors.Is(err, errDependency) }

// secondary errors are consequences of another service's failure.
func secondary(err error) bool { return isDependencyErr(err) || errors.Is(err, context.Canceled) }

func (e *Engine) waitDependencies(ctx context.Context, st *stack.Stack, n string, states map[string]*serviceState) error {
	for dep, d := range st.Dependencies(n) {
		ds, ok := states[dep]
		if !ok {
			continue // not selected: it is already up, or optional
		}
		var ready chan struct{}
		switch d.Condition {
		case types.ServiceConditionHealthy:
			ready = ds.healthy
		case types.ServiceConditionCompletedSuccessfully:
			ready = ds.completed
		default:
			ready = ds.started
		}
		select {
		case <-ready:
		case <-ds.failed:
			return fmt.Errorf("%w: %s did not reach %s", errDependency, dep, d.Condition)
		case <-ctx.Done():
			return fmt.Errorf("%w: waiting for %s (%s): %w", errDependency, dep, d.Condition, ctx.Err())
		}
	}
	return nil
}

// projectContainers maps service to the project's container, after making
// sure vmctl created everything the project holds: up never recreates or
// removes (as an orphan) what another tool made under the same name.
func (e *Engine) projectContainers(ctx context.Context, project string) (map[string]container.Summary, error) {
	res, err := e.listProject(ctx, project)
	if err != nil {
		return nil, err
	}
	if err := res.foreign("up", project); err != nil {
		return nil, err
	}
	out := map[string]container.Summary{}
	for _, c := range res.containers {
		if c.Labels[LabelOneOff] == "False" {
			out[c.Labels[LabelService]] = c
		}
	}
	return out, nil
}

// planServices decides, per service, whether its container is kept,
// started, created or recreated; a recreated service restarts the
// dependents that asked for it (depends_on.restart). It makes no engine
// calls, so the decisions are tested without a Docker Engine.
func planServices(st *stack.Stack, names []string, existing map[string]container.Summary, imageIDs map[string]string, gpuOn map[string]bool) (map[string]*planned, error) {
	plan := map[string]*planned{}
	jobs := oneShots(st, names)
	levels, err := st.Order(names)
	if err != nil {
		return nil, err
	}
	for _, level := range levels {
		for _, n := range level {
			svc := st.Project.Services[n]
			gpu := "off"
			if gpuOn[n] {
				gpu = "on"
			}
			hash, err := stack.ConfigHash(svc, "image="+imageIDs[n], "gpu="+gpu)
			if err != nil {
				return nil, err
			}
			p := &planned{svc: svc, image: ImageName(st.Name(), svc), hash: hash, gpu: gpuOn[n]}
			c, ok := existing[n]
			switch {
			case !ok:
				p.act = actCreate
			case c.Labels[LabelConfigHash] != hash:
				p.act = actRecreate
			case jobs[n] && exitedZero(c):
				p.act, p.completed = actKeep, true
			case c.State != container.StateRunning:
				p.act = actStart
			default:
				p.act = actKeep
			}
			if ok {
				cc := c
				p.existing = &cc
			}
			if p.act == actKeep {
				// A restart propagates: a dependent that asked to follow
				// api follows it whether api was recreated or restarted.
				for dep, d := range st.Dependencies(n) {
					if dp, ok := plan[dep]; ok && d.Restart && (dp.act == actRecreate || dp.restart) {
						p.restart = true
					}
				}
			}
			plan[n] = p
		}
	}
	return plan, nil
}

// converge makes one service's container match its plan and returns its ID.
func (e *Engine) converge(waitCtx context.Context, st *stack.Stack, p *planned, runID string, pw progress.Writer) (string, error) {
	n := p.svc.Name
	// Each engine call runs to completion even when up is cancelled: an
	// aborted HTTP request can leave the daemon finishing a create that
	// nobody then removes. Cancellation is checked between the calls.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(waitCtx), 2*time.Minute)
	defer cancel()
	if err := waitCtx.Err(); err != nil {
		return "", err
	}
	switch p.act {
	case actKeep:
		if p.restart {
			pw.Event(progress.Event{Resource: n, Status: progress.Working, Text: "Restarting", Detail: "a dependency was recreated"})
			if err := e.api.ContainerRestart(ctx, p.existing.ID, container.StopOptions{}); err != nil {
				return "", fmt.Errorf("restart: %w", err)
			}
			return p.existing.ID, nil
		}
		if !p.completed {
			pw.Event(progress.Event{Resource: n, Status: progress.Working, Text: "Running", Detail: "unchanged"})
		}
		return p.existing.ID, nil
	case actStart:
		pw.Event(progress.Event{Resource: n, Status: progress.Working, Text: "Starting"})
		if err := e.api.ContainerStart(ctx, p.existing.ID, container.StartOptions{}); err != nil {
			return "", fmt.Errorf("start: %w", err)
		}
		return p.existing.ID, nil
	case actRecreate:
		pw.Event(progress.Event{Resource: n, Status: progress.Working, Text: "Recreating"})
		if err := e.removeContainer(ctx, p.existing.ID); err != nil {
			return "", fmt.Errorf("remove the old container: %w", err)
		}
	default:
		pw.Event(progress.Event{Resource: n, Status: progress.Working, Text: "Creating"})
	}
	gpu := "off"
	if p.gpu {
		gpu = "on"
	}
	labels := map[string]string{
		LabelProject:    st.Name(),
		LabelService:    n,
		LabelNumber:     "1",
		LabelOneOff:     "False",
		LabelConfigHash: p.hash,
		LabelManaged:    "true",
		LabelRun:        runID,
		LabelGPU:        gpu,
	}
	sp, err := containerSpec(st, p.svc, p.image, p.gpu, labels)
	if err != nil {
		return "", err
	}
	resp, err := e.api.ContainerCreate(ctx, sp.config, sp.host, sp.networking(), nil, sp.name)
	if err != nil {
		if errdefs.IsConflict(err) {
			return "", fmt.Errorf("create: container name %s is taken by a container outside this project: remove it or set another project name with -p", sp.name)
		}
		return "", fmt.Errorf("create: %w", err)
	}
	if err := waitCtx.Err(); err != nil {
		return resp.ID, err
	}
	for _, netName := range sp.networks[min(1, len(sp.networks)):] {
		if err := e.api.NetworkConnect(ctx, netName, resp.ID, &network.EndpointSettings{Aliases: sp.aliases}); err != nil {
			return resp.ID, fmt.Errorf("connect to network %s: %w", netName, err)
		}
	}
	pw.Event(progress.Event{Resource: n, Status: progress.Working, Text: "Starting"})
	if err := e.api.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		return resp.ID, fmt.Errorf("start: %w", err)
	}
	return resp.ID, nil
}

func (e *Engine) removeContainer(ctx context.Context, id string) error {
	timeout := 10
	if err := e.api.ContainerStop(ctx, id, container.StopOptions{Timeout: &timeout}); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	if err := e.api.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	return nil
}

// createdResources remembers what this run created, for a clean Ctrl-C.
type createdResources struct {
	networks []string
	volumes  []string
}

func (e *Engine) ensureNetworksAndVolumes(ctx context.Context, st *stack.Stack, names []string) (createdResources, error) {
	var created createdResources
	usedNets, usedVols := map[string]bool{}, map[string]bool{}
	for _, n := range names {
		svc := st.Project.Services[n]
		if svc.NetworkMode == "" {
			for net := range svc.Networks {
				usedNets[net] = true
			}
		}
		for _, v := range svc.Volumes {
			if v.Type == types.VolumeTypeVolume && v.Source != "" {
				usedVols[v.Source] = true
			}
		}
	}
	for _, key := range sortedKeys(usedNets) {
		nc := st.Project.Networks[key]
		if bool(nc.External) {
			continue
		}
		list, err := e.api.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("name", nc.Name))})
		if err != nil {
			return created, fmt.Errorf("list networks: %w", err)
		}
		if exact(list, nc.Name) {
			continue
		}
		labels := map[string]string{LabelProject: st.Name(), LabelNetwork: key, LabelManaged: "true"}
		for k, v := range nc.Labels {
			labels[k] = v
		}
		driver := nc.Driver
		if driver == "" {
			driver = "bridge"
		}
		if _, err := e.api.NetworkCreate(ctx, nc.Name, network.CreateOptions{Driver: driver, Labels: labels, Internal: nc.Internal, Attachable: nc.Attachable, Options: nc.DriverOpts}); err != nil {
			return created, fmt.Errorf("create network %s: %w", nc.Name, err)
		}
		created.networks = append(created.networks, nc.Name)
	}
	for _, key := range sortedKeys(usedVols) {
		vc := st.Project.Volumes[key]
		if bool(vc.External) {
			continue
		}
		list, err := e.api.VolumeList(ctx, volume.ListOptions{Filters: filters.NewArgs(filters.Arg("name", vc.Name))})
		if err != nil {
			return created, fmt.Errorf("list volumes: %w", err)
		}
		found := false
		for _, v := range list.Volumes {
			found = found || v.Name == vc.Name
		}
		if found {
			continue
		}
		labels := map[string]string{LabelProject: st.Name(), LabelVolume: key, LabelManaged: "true"}
		for k, v := range vc.Labels {
			labels[k] = v
		}
		if _, err := e.api.VolumeCreate(ctx, volume.CreateOptions{Name: vc.Name, Driver: vc.Driver, DriverOpts: vc.DriverOpts, Labels: labels}); err != nil {
			return created, fmt.Errorf("create volume %s: %w", vc.Name, err)
		}
		created.volumes = append(created.volumes, vc.Name)
	}
	return created, nil
}

func exact(list []network.Summary, name string) bool {
	for _, n := range list {
		if n.Name == name {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// rollback removes the containers a cancelled run created, and the network
// and volumes it created for them.
func (e *Engine) rollback(ctx context.Context, project, runID string, created createdResources) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	list, err := e.api.ContainerList(ctx, container.ListOptions{All: true, Filters: projectFilter(project, filters.Arg("label", LabelRun+"="+runID))})
	if err == nil {
		for _, c := range list {
			_ = e.api.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		}
	}
	for _, n := range created.networks {
		_ = e.api.NetworkRemove(ctx, n)
	}
	for _, v := range created.volumes {
		_ = e.api.VolumeRemove(ctx, v, false)
	}
}

func (e *Engine) warnOrphans(ctx context.Context, st *stack.Stack, existing map[string]container.Summary, remove bool, w io.Writer) {
	var orphans []string
	for svc, c := range existing {
		if _, ok := st.Project.Services[svc]; ok {
			continue
		}
		if _, ok := st.Project.DisabledServices[svc]; ok {
			continue
		}
		if remove {
			if err := e.removeContainer(ctx, c.ID); err == nil {
				fmt.Fprintf(w, "removed orphan container %s\n", strings.TrimPrefix(c.Names[0], "/"))
			}
			continue
		}
		orphans = append(orphans, strings.TrimPrefix(c.Names[0], "/"))
	}
	if len(orphans) > 0 {
		sort.Strings(orphans)
		fmt.Fprintf(w, "found containers of services no longer in the stack (%s): remove them with --remove-orphans\n", strings.Join(orphans, ", "))
	}
}

func (e *Engine) statuses(ctx context.Context, st *stack.Stack, names []string, plan map[string]*planned, states map[string]*serviceState) []ServiceStatus {
	all, _ := e.PS(ctx, st)
	byService := map[string]ServiceStatus{}
	for _, s := range all {
		byService[s.Service] = s
	}
	out := make([]ServiceStatus, 0, len(names))
	for _, n := range names {
		s, ok := byService[n]
		if !ok {
			s = ServiceStatus{Service: n, State: "missing"}
		}
		if p := plan[n]; p != nil {
			s.Action = p.describe()
		}
		// vmctl's own verdict: Docker's health lags by its check interval.
		if ss := states[n]; ss != nil && ss.health != "" {
			s.Health = ss.health
		} else if ss != nil && s.State == "running" {
			s.Health = "not ready"
		}
		out = append(out, s)
	}
	return out
}
