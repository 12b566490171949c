package engine

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"

	"github.com/vmctl/vmctl/internal/stack"
)

// spec is everything needed to create one service's container.
type spec struct {
	name     string
	config   *container.Config
	host     *container.HostConfig
	networks []string // engine network names; the first is attached at create
	aliases  []string
}

// containerSpec turns a compose service into Docker API create parameters,
// the same mapping docker compose makes.
func containerSpec(st *stack.Stack, svc types.ServiceConfig, imageRef string, gpu bool, labels map[string]string) (spec, error) {
	project := st.Project
	if err := checkKeys(svc); err != nil {
		return spec{}, err
	}
	env := map[string]string{}
	for k, v := range svc.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	if !gpu && len(stack.GPURequests(svc)) > 0 {
		if fb := st.Extension(svc.Name).CPUFallback; fb != nil {
			for k, v := range fb.Environment {
				env[k] = v
			}
		}
	}
	envList := make([]string, 0, len(env))
	for k, v := range env {
		envList = append(envList, k+"="+v)
	}
	sort.Strings(envList)

	allLabels := map[string]string{}
	for k, v := range svc.Labels {
		allLabels[k] = v
	}
	for k, v := range labels {
		allLabels[k] = v
	}

	exposed := nat.PortSet{}
	bindings := nat.PortMap{}
	for _, p := range svc.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = "tcp"
		}
		port := nat.Port(fmt.Sprintf("%d/%s", p.Target, proto))
		exposed[port] = struct{}{}
		if p.Published != "" || p.Mode != "host" {
			bindings[port] = append(bindings[port], nat.PortBinding{HostIP: p.HostIP, HostPort: p.Published})
		}
	}
	for _, e := range svc.Expose {
		port := e
		if !strings.Contains(port, "/") {
			port += "/tcp"
		}
		exposed[nat.Port(port)] = struct{}{}
	}

	cfg := &container.Config{
		Image:        imageRef,
		Env:          envList,
		Cmd:          []string(svc.Command),
		Entrypoint:   []string(svc.Entrypoint),
		Labels:       allLabels,
		ExposedPorts: exposed,
		WorkingDir:   svc.WorkingDir,
		User:         svc.User,
		Hostname:     svc.Hostname,
		Domainname:   svc.DomainName,
		Tty:          svc.Tty,
		OpenStdin:    svc.StdinOpen,
		StopSignal:   svc.StopSignal,
		Healthcheck:  healthConfig(svc.HealthCheck),
	}
	if svc.StopGracePeriod != nil {
		secs := int(time.Duration(*svc.StopGracePeriod).Seconds())
		cfg.StopTimeout = &secs
	}

	restart, err := restartPolicy(svc.Restart)
	if err != nil {
		return spec{}, fmt.Errorf("service %s: %w", svc.Name, err)
	}
	host := &container.HostConfig{
		PortBindings:   bindings,
		RestartPolicy:  restart,
		Privileged:     svc.Privileged,
		CapAdd:         svc.CapAdd,
		CapDrop:        svc.CapDrop,
		ExtraHosts:     svc.ExtraHosts.AsList(":"),
		Init:           svc.Init,
		ReadonlyRootfs: svc.ReadOnly,
		SecurityOpt:    svc.SecurityOpt,
		ShmSize:        int64(svc.ShmSize),
		Runtime:        svc.Runtime,
		GroupAdd:       svc.GroupAdd,
		Sysctls:        svc.Sysctls,
		DNS:            svc.DNS,
		DNSSearch:      svc.DNSSearch,
		DNSOptions:     svc.DNSOpts,
	}
	if len(svc.Tmpfs) > 0 {
		host.Tmpfs = map[string]string{}
		for _, t := range svc.Tmpfs {
			path, opts, _ := strings.Cut(t, ":")
			host.Tmpfs[path] = opts
		}
	}
	if svc.Logging != nil {
		host.LogConfig = container.LogConfig{Type: svc.Logging.Driver, Config: svc.Logging.Options}
	}
	host.Resources = resources(svc)
	hostExtras(project, svc, host)
	if gpu {
		for _, d := range stack.GPURequests(svc) {
			count := int(d.Count)
			if count == 0 && len(d.IDs) == 0 {
				count = -1 // compose's default: all GPUs
			}
			host.DeviceRequests = append(host.DeviceRequests, container.DeviceRequest{
				Driver:       d.Driver,
				Count:        count,
				DeviceIDs:    d.IDs,
				Capabilities: [][]string{d.Capabilities},
				Options:      d.Options,
			})
		}
	}
	for _, v := range svc.Volumes {
		m, err := volumeMount(project, svc.Name, v)
		if err != nil {
			return spec{}, err
		}
		host.Mounts = append(host.Mounts, m)
	}

	s := spec{name: containerName(project.Name, svc.Name), config: cfg, host: host, aliases: []string{svc.Name}}
	if svc.ContainerName != "" {
		s.name = svc.ContainerName
	}
	switch {
	case svc.NetworkMode != "":
		host.NetworkMode = container.NetworkMode(svc.NetworkMode)
		if strings.HasPrefix(svc.NetworkMode, "service:") {
			dep := strings.TrimPrefix(svc.NetworkMode, "service:")
			host.NetworkMode = container.NetworkMode("container:" + containerName(project.Name, dep))
		}
	default:
		for _, n := range svc.NetworksByPriority() {
			nc, ok := project.Networks[n]
			if !ok {
				return spec{}, fmt.Errorf("service %s: network %q is not declared under networks", svc.Name, n)
			}
			s.networks = append(s.networks, nc.Name)
		}
		if len(s.networks) > 0 {
			host.NetworkMode = container.NetworkMode(s.networks[0])
		}
	}
	return s, nil
}

func (s spec) networking() *network.NetworkingConfig {
	if len(s.networks) == 0 {
		return nil
	}
	return &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		s.networks[0]: {Aliases: s.aliases},
	}}
}

func healthConfig(h *types.HealthCheckConfig) *container.HealthConfig {
	if h == nil {
		return nil
	}
	if h.Disable {
		return &container.HealthConfig{Test: []string{"NONE"}}
	}
	c := &container.HealthConfig{Test: h.Test}
	if h.Interval != nil {
		c.Interval = time.Duration(*h.Interval)
	}
	if h.Timeout != nil {
		c.Timeout = time.Duration(*h.Timeout)
	}
	if h.StartPeriod != nil {
		c.StartPeriod = time.Duration(*h.StartPeriod)
	}
	if h.StartInterval != nil {
		c.StartInterval = time.Duration(*h.StartInterval)
	}
	if h.Retries != nil {
		c.Retries = int(*h.Retries)
	}
	return c
}

func restartPolicy(s string) (container.RestartPolicy, error) {
	name, count, _ := strings.Cut(s, ":")
	switch name {
	case "", "no":
		return container.RestartPolicy{Name: container.RestartPolicyDisabled}, nil
	case "always", "unless-stopped":
		return container.RestartPolicy{Name: container.RestartPolicyMode(name)}, nil
	case "on-failure":
		p := container.RestartPolicy{Name: container.RestartPolicyOnFailure}
		if count != "" {
			n, err := strconv.Atoi(count)
			if err != nil {
				return p, fmt.Errorf("restart %q: the retry count is not a number", s)
			}
			p.MaximumRetryCount = n
		}
		return p, nil
	}
	return container.RestartPolicy{}, fmt.Errorf("restart %q: use no, always, unless-stopped or on-failure[:N]", s)
}

func resources(svc types.ServiceConfig) container.Resources {
	r := container.Resources{
		Memory:    int64(svc.MemLimit),
		NanoCPUs:  int64(svc.CPUS * 1e9),
		CPUShares: svc.CPUShares,
		PidsLimit: nil,
	}
	if svc.PidsLimit != 0 {
		p := svc.PidsLimit
		r.PidsLimit = &p
	}
	if svc.Deploy != nil && svc.Deploy.Resources.Limits != nil {
		l := svc.Deploy.Resources.Limits
		if l.MemoryBytes != 0 {
			r.Memory = int64(l.MemoryBytes)
		}
		if l.NanoCPUs != 0 {
			r.NanoCPUs = int64(float64(l.NanoCPUs) * 1e9)
		}
	}
	if svc.Deploy != nil && svc.Deploy.Resources.Reservations != nil && svc.Deploy.Resources.Reservations.MemoryBytes != 0 {
		r.MemoryReservation = int64(svc.Deploy.Resources.Reservations.MemoryBytes)
	}
	return r
}

func volumeMount(project *types.Project, service string, v types.ServiceVolumeConfig) (mount.Mount, error) {
	m := mount.Mount{Target: v.Target, ReadOnly: v.ReadOnly}
	switch v.Type {
	case types.VolumeTypeVolume:
		m.Type = mount.TypeVolume
		if v.Source != "" {
			vc, ok := project.Volumes[v.Source]
			if !ok {
				return m, fmt.Errorf("service %s: volume %q is not declared under volumes", service, v.Source)
			}
			m.Source = vc.Name
		}
		if v.Volume != nil && v.Volume.NoCopy {
			m.VolumeOptions = &mount.VolumeOptions{NoCopy: true}
		}
	case types.VolumeTypeBind:
		m.Type = mount.TypeBind
		m.Source = v.Source
		if v.Bind != nil && v.Bind.CreateHostPath {
			m.BindOptions = &mount.BindOptions{CreateMountpoint: true}
		}
	case types.VolumeTypeTmpfs:
		m.Type = mount.TypeTmpfs
		if v.Tmpfs != nil {
			m.TmpfsOptions = &mount.TmpfsOptions{SizeBytes: int64(v.Tmpfs.Size)}
		}
	default:
		return m, fmt.Errorf("service %s: volume type %q is not supported", service, v.Type)
	}
	return m, nil
}
