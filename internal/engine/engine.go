// Package engine runs a stack on the Docker Engine: it builds images,
// creates the project's network and volumes, starts containers in
// dependency order, waits for health, and lists, follows and removes what
// it started. It talks to the engine only through the Docker API.
package engine

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/vmctl/vmctl/internal/health"
)

// API is the part of the Docker client the engine uses; *client.Client
// satisfies it.
type API interface {
	Info(ctx context.Context) (system.Info, error)
	ImageBuild(ctx context.Context, buildContext io.Reader, options build.ImageBuildOptions) (build.ImageBuildResponse, error)
	ImageInspect(ctx context.Context, ref string, opts ...client.ImageInspectOption) (image.InspectResponse, error)
	ImagePull(ctx context.Context, ref string, options image.PullOptions) (io.ReadCloser, error)
	ContainerList(ctx context.Context, options container.ListOptions) ([]container.Summary, error)
	ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error)
	ContainerCreate(ctx context.Context, config *container.Config, hostConfig *container.HostConfig, networkingConfig *network.NetworkingConfig, platform *ocispec.Platform, name string) (container.CreateResponse, error)
	ContainerStart(ctx context.Context, id string, options container.StartOptions) error
	ContainerStop(ctx context.Context, id string, options container.StopOptions) error
	ContainerRestart(ctx context.Context, id string, options container.StopOptions) error
	ContainerRemove(ctx context.Context, id string, options container.RemoveOptions) error
	ContainerLogs(ctx context.Context, id string, options container.LogsOptions) (io.ReadCloser, error)
	ContainerExecCreate(ctx context.Context, id string, options container.ExecOptions) (container.ExecCreateResponse, error)
	ContainerExecAttach(ctx context.Context, execID string, config container.ExecAttachOptions) (types.HijackedResponse, error)
	ContainerExecInspect(ctx context.Context, execID string) (container.ExecInspect, error)
	NetworkList(ctx context.Context, options network.ListOptions) ([]network.Summary, error)
	NetworkCreate(ctx context.Context, name string, options network.CreateOptions) (network.CreateResponse, error)
	NetworkConnect(ctx context.Context, networkID, containerID string, config *network.EndpointSettings) error
	NetworkRemove(ctx context.Context, networkID string) error
	VolumeList(ctx context.Context, options volume.ListOptions) (volume.ListResponse, error)
	VolumeCreate(ctx context.Context, options volume.CreateOptions) (volume.Volume, error)
	VolumeRemove(ctx context.Context, volumeID string, force bool) error
}

// Labels shared with docker compose, so `docker compose ps` and vmctl see
// the same project; vmctl's own labels live under dev.vmctl. LabelManaged
// marks what vmctl created: vmctl acts on nothing without it. The config
// hash is vmctl's own, not compose's: the two hash differently, and under
// one label each tool would recreate every container the other made.
const (
	LabelProject    = "com.docker.compose.project"
	LabelService    = "com.docker.compose.service"
	LabelNumber     = "com.docker.compose.container-number"
	LabelOneOff     = "com.docker.compose.oneoff"
	LabelNetwork    = "com.docker.compose.network"
	LabelVolume     = "com.docker.compose.volume"
	LabelConfigHash = "dev.vmctl.config-hash"
	LabelManaged    = "dev.vmctl.managed"
	LabelRun        = "dev.vmctl.run"
	LabelGPU        = "dev.vmctl.gpu"

	// labelComposeVersion is on everything docker compose creates.
	labelComposeVersion = "com.docker.compose.version"
)

// Engine runs stacks on one Docker Engine.
type Engine struct {
	api           API
	prober        *health.Prober
	probeInterval time.Duration
	execSlots     chan struct{} // bounds the exec health probes in flight
	now           func() time.Time
}

// Option configures an Engine.
type Option func(*Engine)

// WithProbeInterval sets how often health is probed while waiting.
func WithProbeInterval(d time.Duration) Option { return func(e *Engine) { e.probeInterval = d } }

// WithExecProbes bounds how many health-test execs run at once (default 4):
// each is work for the Docker daemon, which on a small host is shared with
// the containers being started.
func WithExecProbes(n int) Option {
	return func(e *Engine) { e.execSlots = make(chan struct{}, max(n, 1)) }
}

// WithClock injects the clock used for deadlines and run IDs.
func WithClock(now func() time.Time) Option { return func(e *Engine) { e.now = now } }

// New returns an Engine over a Docker API client.
func New(api API, opts ...Option) *Engine {
	e := &Engine{api: api, prober: health.NewProber(2 * time.Second), probeInterval: 200 * time.Millisecond, execSlots: make(chan struct{}, 4), now: time.Now}
	for _, o := range opts {
		o(e)
	}
	return e
}

func projectFilter(project string, extra ...filters.KeyValuePair) filters.Args {
	return filters.NewArgs(append([]filters.KeyValuePair{filters.Arg("label", LabelProject+"="+project)}, extra...)...)
}

// containerName is compose's naming, so users find the containers they expect.
func containerName(project, service string) string {
	return fmt.Sprintf("%s-%s-1", project, service)
}
