package gpu

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/pkg/stdcopy"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ProbeAPI is the part of the Docker client the image probe uses.
type ProbeAPI interface {
	ContainerCreate(ctx context.Context, config *container.Config, hostConfig *container.HostConfig, networkingConfig *network.NetworkingConfig, platform *ocispec.Platform, name string) (container.CreateResponse, error)
	ContainerStart(ctx context.Context, id string, options container.StartOptions) error
	ContainerWait(ctx context.Context, id string, condition container.WaitCondition) (<-chan container.WaitResponse, <-chan error)
	ContainerLogs(ctx context.Context, id string, options container.LogsOptions) (io.ReadCloser, error)
	ContainerRemove(ctx context.Context, id string, options container.RemoveOptions) error
}

// DefaultProbeCommand runs the check the OpenVoice image carries.
var DefaultProbeCommand = []string{"python3", "/opt/vmctl/cuda_check.py"}

// ProbeOptions says which image to probe and how.
type ProbeOptions struct {
	Image   string
	Command []string // DefaultProbeCommand when empty
	Env     []string
	// NoGPU leaves out the GPU device request (tests, and CPU-only images).
	NoGPU   bool
	Timeout time.Duration
}

// ProbeResult is what the image's CUDA check printed.
type ProbeResult struct {
	Image            string        `json:"image"`
	ExitCode         int           `json:"exit_code"`
	TorchVersion     string        `json:"torch_version"`
	TorchCUDAVersion string        `json:"torch_cuda_version"`
	CuDNNVersion     int           `json:"cudnn_version"`
	CuDNNMajor       int           `json:"cudnn_major"`
	CUDAAvailable    bool          `json:"cuda_available"`
	DeviceCount      int           `json:"device_count"`
	Devices          []ProbeDevice `json:"devices"`
	OK               bool          `json:"ok"`
	Error            string        `json:"error"`
}

// ProbeDevice is one device as torch sees it.
type ProbeDevice struct {
	Index          int    `json:"index"`
	Name           string `json:"name"`
	Capability     string `json:"capability"`
	TotalMemoryMiB int    `json:"total_memory_mib"`
}

// Probe runs the image's CUDA check in a throwaway container with the GPU
// attached and judges what torch sees: CUDA 11.8, cuDNN 8 and a device.
func Probe(ctx context.Context, api ProbeAPI, opts ProbeOptions) (ProbeResult, Verdict, error) {
	res := ProbeResult{Image: opts.Image}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Minute // the first CUDA initialisation can be slow
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	cmd := opts.Command
	if len(cmd) == 0 {
		cmd = DefaultProbeCommand
	}
	host := &container.HostConfig{NetworkMode: "none"}
	if !opts.NoGPU {
		host.DeviceRequests = []container.DeviceRequest{{Driver: "nvidia", Count: 1, Capabilities: [][]string{{"gpu"}}}}
	}
	created, err := api.ContainerCreate(ctx, &container.Config{
		Image: opts.Image, Cmd: cmd, Entrypoint: []string{}, Env: opts.Env,
		Labels: map[string]string{"dev.vmctl.managed": "true", "dev.vmctl.role": "cuda-probe"},
	}, host, nil, nil, "")
	if err != nil {
		return res, Verdict{}, fmt.Errorf("create the probe container from %s: %w", opts.Image, err)
	}
	defer func() {
		rmCtx, rmCancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer rmCancel()
		_ = api.ContainerRemove(rmCtx, created.ID, container.RemoveOptions{Force: true})
	}()
	waitCh, errCh := api.ContainerWait(ctx, created.ID, container.WaitConditionNextExit)
	if err := api.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		return res, Verdict{}, fmt.Errorf("start the probe container: %w", err)
	}
	select {
	case w := <-waitCh:
		res.ExitCode = int(w.StatusCode)
	case err := <-errCh:
		return res, Verdict{}, fmt.Errorf("wait for the probe container: %w", err)
	}
	rc, err := api.ContainerLogs(ctx, created.ID, container.LogsOptions{ShowStdout: true})
	if err != nil {
		return res, Verdict{}, fmt.Errorf("read the probe's output: %w", err)
	}
	defer rc.Close()
	var stdout bytes.Buffer
	if _, err := stdcopy.StdCopy(&stdout, io.Discard, rc); err != nil {
		return res, Verdict{}, fmt.Errorf("read the probe's output: %w", err)
	}
	line := lastJSONLine(stdout.String())
	if line == "" {
		return res, Verdict{}, fmt.Errorf("the probe printed no JSON (exit code %d): is %s the OpenVoice image with /opt/vmctl/cuda_check.py?", res.ExitCode, opts.Image)
	}
	code := res.ExitCode
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		return res, Verdict{}, fmt.Errorf("the probe's output is not the CUDA check's JSON: %w", err)
	}
	res.ExitCode, res.Image = code, opts.Image
	return res, JudgeProbe(res), nil
}

// JudgeProbe applies the CUDA 11.8 rules to what the image saw.
func JudgeProbe(r ProbeResult) Verdict {
	v := Verdict{Level: Ready}
	const fixImage = "rebuild the OpenVoice image on nvidia/cuda:11.8.0-cudnn8 with torch built for cu118 (images/openvoice/Dockerfile)"
	if r.ExitCode == 2 || r.TorchVersion == "" {
		v.worse(NotReady, "torch cannot be imported in the image: "+r.Error, fixImage)
		return v
	}
	if !strings.HasPrefix(r.TorchCUDAVersion, "11.8") {
		v.worse(NotReady, fmt.Sprintf("torch %s is built for CUDA %q, not 11.8", r.TorchVersion, r.TorchCUDAVersion), fixImage)
	}
	if r.CuDNNMajor != 8 {
		v.worse(NotReady, fmt.Sprintf("cuDNN %d, not 8.x", r.CuDNNVersion), fixImage)
	}
	if !r.CUDAAvailable || r.DeviceCount == 0 {
		why := "torch sees no CUDA device"
		if r.Error != "" {
			why += ": " + r.Error
		}
		v.worse(NotReady, why, "check the host with vmctl gpu, and that the container gets the GPU (--gpus / the nvidia runtime)")
	}
	if v.Level == Ready {
		names := make([]string, 0, len(r.Devices))
		for _, d := range r.Devices {
			names = append(names, fmt.Sprintf("%s (%s)", d.Name, d.Capability))
		}
		v.Reasons = append(v.Reasons, fmt.Sprintf("torch %s, CUDA %s, cuDNN %d, %s", r.TorchVersion, r.TorchCUDAVersion, r.CuDNNVersion, strings.Join(names, ", ")))
	}
	return v
}

func lastJSONLine(out string) string {
	var last string
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, "{") {
			last = l
		}
	}
	return last
}
