package awssim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"
)

// Tasks run as real containers on the local Docker Engine. A task's
// containers share the network namespace of its first container, as an
// awsvpc task shares its network interface, and each container port is
// published on 127.0.0.1 with a random host port, so that target groups
// can probe it.

// Labels of task containers, besides LabelSim and the log labels.
const (
	labelTaskARN   = "awssim.task-arn"
	labelCluster   = "awssim.cluster"
	labelContainer = "awssim.container"
)

// containerPlan is what a goroutine needs to create one container, copied
// under the lock.
type containerPlan struct {
	name, image string
	config      *container.Config
	host        *container.HostConfig
}

// startTask pulls, creates and starts the task's containers in a goroutine;
// the caller holds the lock.
func (s *Sim) startTask(t *ecsTask) {
	f := s.compute
	t.busy = true
	plans := s.planContainers(t)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		ids, digests, ports, why := s.runContainers(t, plans)
		f.mu.Lock()
		defer f.mu.Unlock()
		t.busy = false
		now := time.Now()
		for i, c := range t.containers {
			if i < len(ids) {
				c.dockerID = ids[i]
			}
			if i < len(digests) {
				c.digest = digests[i]
			}
		}
		if why != "" {
			t.pullStopped = now
			t.last, t.desired, t.stopped, t.stopping = "STOPPED", "STOPPED", now, now
			t.stopCode, t.stopWhy = "TaskFailedToStart", why
			for _, c := range t.containers {
				c.last, c.reason = "STOPPED", why
			}
			return
		}
		t.containers[0].ports = ports
		for _, c := range t.containers {
			c.last = "RUNNING"
		}
		t.last, t.started = "RUNNING", now
	}()
}

// plan builds the Docker configuration of each container; the caller holds
// the lock.
func (s *Sim) planContainers(t *ecsTask) []containerPlan {
	f := s.compute
	var plans []containerPlan
	exposed, bindings := nat.PortSet{}, nat.PortMap{}
	for _, c := range t.containers {
		for _, pm := range c.spec.PortMappings {
			proto := strings.ToLower(pm.Protocol)
			if proto == "" {
				proto = "tcp"
			}
			port := nat.Port(fmt.Sprintf("%d/%s", pm.ContainerPort, proto))
			exposed[port] = struct{}{}
			bindings[port] = []nat.PortBinding{{HostIP: "127.0.0.1"}}
		}
	}
	for i, c := range t.containers {
		cs := c.spec
		o := t.overrides[cs.Name]
		env := map[string]string{
			"AWS_REGION":         t.home.region,
			"AWS_DEFAULT_REGION": t.home.region,
			"AWS_EXECUTION_ENV":  "AWS_ECS_" + t.launchType,
		}
		for _, kv := range cs.Environment {
			env[kv.Name] = kv.Value
		}
		for _, kv := range o.Environment {
			env[kv.Name] = kv.Value
		}
		if len(t.gpuIDs) > 0 && cs.gpus() > 0 {
			env["NVIDIA_VISIBLE_DEVICES"] = strings.Join(t.gpuIDs, ",")
		}
		var envList []string
		for k, v := range env {
			envList = append(envList, k+"="+v)
		}
		sort.Strings(envList)
		cmd := cs.Command
		if o.Command != nil {
			cmd = o.Command
		}
		labels := map[string]string{
			LabelSim: s.ID, labelTaskARN: t.arn(), labelCluster: t.cluster.name, labelContainer: cs.Name,
		}
		for k, v := range cs.DockerLabels {
			labels[k] = v
		}
		if lc := cs.LogConfiguration; lc != nil && lc.LogDriver == "awslogs" && lc.Options["awslogs-group"] != "" {
			labels[LabelLogGroup] = lc.Options["awslogs-group"]
			// awslogs names a stream prefix/container/task-id.
			stream := t.id
			if p := lc.Options["awslogs-stream-prefix"]; p != "" {
				stream = p + "/" + cs.Name + "/" + t.id
			}
			labels[LabelLogStream] = stream
		}
		cfg := &container.Config{
			Image: cs.Image, Env: envList, Cmd: cmd, Entrypoint: cs.EntryPoint,
			Labels: labels, WorkingDir: cs.WorkingDirectory, User: cs.User,
			Healthcheck: f.healthConfig(cs.HealthCheck),
		}
		host := &container.HostConfig{}
		if i == 0 {
			cfg.ExposedPorts, host.PortBindings = exposed, bindings
		}
		plans = append(plans, containerPlan{name: fmt.Sprintf("awssim-%s-%s-%s", s.ID, t.id[:12], ecsSafeName(cs.Name)), image: cs.Image, config: cfg, host: host})
	}
	return plans
}

func ecsSafeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-' {
			return r
		}
		return '-'
	}, s)
}

// healthConfig is the container health check as Docker runs it, its
// interval and start period in simulated seconds; the caller holds the lock.
func (f *compute) healthConfig(hc *healthCheckSpec) *container.HealthConfig {
	if hc == nil || len(hc.Command) == 0 {
		return nil
	}
	if hc.Command[0] == "NONE" {
		return &container.HealthConfig{Test: []string{"NONE"}}
	}
	get := func(v *int, def int) int {
		if v == nil {
			return def
		}
		return *v
	}
	return &container.HealthConfig{
		Test:        hc.Command,
		Interval:    time.Duration(get(hc.Interval, 30)) * f.healthSecond,
		Timeout:     time.Duration(get(hc.Timeout, 5)) * time.Second,
		Retries:     get(hc.Retries, 3),
		StartPeriod: time.Duration(get(hc.StartPeriod, 0)) * f.healthSecond,
	}
}

// runContainers does the Docker work of starting a task, without the lock.
// why is the task's stoppedReason when it fails to start.
func (s *Sim) runContainers(t *ecsTask, plans []containerPlan) (ids, digests []string, ports map[int]int, why string) {
	f := s.compute
	// Engine calls are not cancelled by Close: a create whose request the
	// daemon already took finishes daemon-side anyway, and would leave a
	// container Close never sees. Close instead stops new calls (closing)
	// and waits for these to end before it removes.
	ctx := context.WithoutCancel(f.ctx)
	closing := func() bool { return f.ctx.Err() != nil }
	api := s.computeDocker()
	f.mu.Lock()
	t.last, t.pullStarted = "PENDING", time.Now()
	f.mu.Unlock()
	if api == nil {
		return nil, nil, nil, "CannotPullContainerError: awssim has no Docker Engine to run tasks on: call Sim.UseDocker"
	}
	refs := make([]string, len(plans))
	for i, p := range plans {
		if closing() {
			return nil, nil, nil, "TaskFailedToStart: the simulator is closing"
		}
		ref, digest, err := s.resolveTaskImage(ctx, api, p.image)
		if err != nil {
			return nil, nil, nil, fmt.Sprintf("CannotPullContainerError: pull image manifest has been retried 1 time(s): failed to resolve ref %s: %v", p.image, err)
		}
		refs[i], digests = ref, append(digests, digest)
	}
	f.mu.Lock()
	t.pullStopped = time.Now()
	f.mu.Unlock()
	for i, p := range plans {
		if closing() {
			return ids, digests, nil, "TaskFailedToStart: the simulator is closing"
		}
		p.config.Image = refs[i]
		if i > 0 {
			p.host.NetworkMode = container.NetworkMode("container:" + ids[0])
		}
		created, err := api.ContainerCreate(ctx, p.config, p.host, nil, nil, p.name)
		if err != nil {
			return ids, digests, nil, fmt.Sprintf("CannotCreateContainerError: %v", err)
		}
		ids = append(ids, created.ID)
		if err := api.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
			return ids, digests, nil, fmt.Sprintf("CannotStartContainerError: %v", err)
		}
	}
	ports = map[int]int{}
	info, err := api.ContainerInspect(ctx, ids[0])
	if err != nil {
		return ids, digests, nil, fmt.Sprintf("CannotInspectContainerError: %v", err)
	}
	if info.NetworkSettings != nil {
		for port, bs := range info.NetworkSettings.Ports {
			for _, b := range bs {
				if hp, err := strconv.Atoi(b.HostPort); err == nil && b.HostIP != "::" {
					ports[port.Int()] = hp
				}
			}
		}
	}
	return ids, digests, ports, ""
}

// resolveTaskImage makes an image reference of a task definition runnable
// here: one that names a registry (ECR's, say) is pulled by digest or tag
// from the simulator's own registry; a bare name (vmctl-fixture:test) must
// be an image of the local engine, since nothing is pulled from the
// internet. It returns the reference to run and the manifest digest.
func (s *Sim) resolveTaskImage(ctx context.Context, api *client.Client, img string) (ref, digest string, err error) {
	named, err := reference.ParseNormalizedNamed(img)
	if err != nil {
		return "", "", err
	}
	first, _, hasSlash := strings.Cut(img, "/")
	if !hasSlash || !strings.ContainsAny(first, ".:") && first != "localhost" {
		info, err := api.ImageInspect(ctx, img)
		if err != nil {
			return "", "", fmt.Errorf("%s: not found (awssim pulls only from its own registry; a name without a registry must be an image of the local engine)", img)
		}
		digest = info.ID
		for _, rd := range info.RepoDigests {
			if _, d, ok := strings.Cut(rd, "@"); ok {
				digest = d
				break
			}
		}
		return img, digest, nil
	}
	host := s.RegistryHost()
	if host == "" {
		return "", "", errors.New("awssim has no registry to pull from")
	}
	ref = host + "/" + reference.Path(named)
	switch n := named.(type) {
	case reference.Canonical:
		ref += "@" + n.Digest().String()
		digest = n.Digest().String()
	case reference.Tagged:
		ref += ":" + n.Tag()
	default:
		ref += ":latest"
	}
	f := s.compute
	f.mu.Lock()
	known, pulled := f.pulled[ref]
	f.mu.Unlock()
	if pulled {
		// The engine may have dropped it since (an untag after a push removes
		// the digest reference too): pull again rather than fail the task.
		if _, err := api.ImageInspect(ctx, ref); err == nil {
			return ref, known, nil
		}
	}
	rc, err := api.ImagePull(ctx, ref, image.PullOptions{RegistryAuth: s.RegistryAuth()})
	if err != nil {
		return "", "", err
	}
	defer rc.Close()
	if err := readPullStream(rc); err != nil {
		return "", "", err
	}
	if digest == "" {
		info, err := api.ImageInspect(ctx, ref)
		if err != nil {
			return "", "", err
		}
		for _, rd := range info.RepoDigests {
			if name, d, ok := strings.Cut(rd, "@"); ok && name == host+"/"+reference.Path(named) {
				digest = d
			}
		}
	}
	f.mu.Lock()
	f.pulled[ref] = digest
	f.mu.Unlock()
	return ref, digest, nil
}

// readPullStream reads a pull's progress to its end and returns its error.
func readPullStream(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var msg struct {
			Error       string `json:"error"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if msg.ErrorDetail != nil {
			return errors.New(msg.ErrorDetail.Message)
		}
		if msg.Error != "" {
			return errors.New(msg.Error)
		}
	}
}

// observe reads the containers of running tasks from Docker and applies
// what it sees: health, and essential containers that exited.
func (s *Sim) observeTasks() {
	f := s.compute
	api := s.computeDocker()
	if api == nil {
		return
	}
	type probe struct {
		c  *taskContainer
		id string
	}
	var probes []probe
	f.mu.Lock()
	for _, c := range f.clusters {
		for _, t := range c.tasks {
			if t.last != "RUNNING" || t.busy {
				continue
			}
			for _, tc := range t.containers {
				if tc.last == "RUNNING" && tc.dockerID != "" {
					probes = append(probes, probe{tc, tc.dockerID})
				}
			}
		}
	}
	f.mu.Unlock()
	type seen struct {
		running bool
		exit    int
		health  string
		oom     bool
	}
	results := map[*taskContainer]seen{}
	for _, p := range probes {
		ctx, cancel := context.WithTimeout(f.ctx, 5*time.Second)
		info, err := api.ContainerInspect(ctx, p.id)
		cancel()
		if err != nil {
			if client.IsErrNotFound(err) {
				results[p.c] = seen{exit: 137}
			}
			continue
		}
		st := seen{running: info.State.Running, exit: info.State.ExitCode, oom: info.State.OOMKilled, health: "UNKNOWN"}
		if info.State.Health != nil {
			switch info.State.Health.Status {
			case container.Healthy:
				st.health = "HEALTHY"
			case container.Unhealthy:
				st.health = "UNHEALTHY"
			}
		}
		results[p.c] = st
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.clusters {
		for _, t := range c.tasks {
			if t.last != "RUNNING" || t.busy {
				continue
			}
			exited := false
			for _, tc := range t.containers {
				st, ok := results[tc]
				if !ok || tc.last != "RUNNING" {
					continue
				}
				tc.health = st.health
				if !st.running {
					code := st.exit
					tc.last, tc.exitCode = "STOPPED", &code
					if st.oom {
						tc.reason = "OutOfMemoryError: Container killed due to memory usage"
					}
					exited = exited || tc.spec.essential()
				}
			}
			if exited && t.desired != "STOPPED" {
				f.beginStop(t, "EssentialContainerExited", "Essential container in task exited")
			}
		}
	}
}

// beginStop asks a task to stop: its targets drain first, then the
// reconciler stops its containers. The caller holds the lock.
func (f *compute) beginStop(t *ecsTask, code, why string) {
	if t.desired == "STOPPED" {
		return
	}
	now := time.Now()
	t.desired, t.stopping, t.stopCode, t.stopWhy = "STOPPED", now, code, why
	t.drainUntil = f.deregisterTask(t)
}

// finishStops stops the containers of tasks whose targets have drained;
// the caller holds the lock.
func (s *Sim) finishStops() {
	f := s.compute
	now := time.Now()
	for _, c := range f.clusters {
		for _, t := range c.tasks {
			if t.desired != "STOPPED" || t.last == "STOPPED" || t.busy || now.Before(t.drainUntil) {
				continue
			}
			t.busy = true
			var ids []string
			for _, tc := range t.containers {
				if tc.dockerID != "" {
					ids = append(ids, tc.dockerID)
				}
			}
			timeout := int(f.stopTimeout / time.Second)
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				exits := s.stopContainers(ids, timeout)
				f.mu.Lock()
				defer f.mu.Unlock()
				t.busy = false
				t.last, t.stopped = "STOPPED", time.Now()
				for _, tc := range t.containers {
					if code, ok := exits[tc.dockerID]; ok && tc.exitCode == nil {
						tc.exitCode = &code
					}
					tc.last = "STOPPED"
				}
			}()
		}
	}
}

// stopContainers stops a task's containers, last first, and returns their
// exit codes. It runs without the lock.
func (s *Sim) stopContainers(ids []string, timeout int) map[string]int {
	api := s.computeDocker()
	exits := map[string]int{}
	if api == nil {
		return exits
	}
	ctx := context.WithoutCancel(s.compute.ctx)
	for i := len(ids) - 1; i >= 0; i-- {
		sctx, cancel := context.WithTimeout(ctx, time.Duration(timeout+5)*time.Second)
		_ = api.ContainerStop(sctx, ids[i], container.StopOptions{Timeout: &timeout})
		if info, err := api.ContainerInspect(sctx, ids[i]); err == nil {
			exits[ids[i]] = info.State.ExitCode
		}
		cancel()
	}
	return exits
}

// closeCompute stops the scheduler, probes, load balancers and Docker work,
// then removes every container labelled with the simulator's ID and the
// image references it pulled.
func (s *Sim) closeCompute() {
	f := s.compute
	f.cancel()
	f.wg.Wait()
	f.mu.Lock()
	var servers []func()
	for _, lb := range f.lbs {
		servers = append(servers, lb.srv.Close)
	}
	pulled := make([]string, 0, len(f.pulled))
	for ref := range f.pulled {
		pulled = append(pulled, ref)
	}
	f.mu.Unlock()
	for _, stop := range servers {
		stop()
	}
	api := s.computeDocker()
	if api == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s.removeLabelled(ctx, api)
	for _, ref := range pulled {
		_, _ = api.ImageRemove(ctx, ref, image.RemoveOptions{})
	}
}
