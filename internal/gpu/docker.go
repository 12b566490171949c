package gpu

import (
	"strings"

	"github.com/docker/docker/api/types/system"
)

// FixDockerRuntime is the step that lets Docker hand out NVIDIA GPUs.
const FixDockerRuntime = "install the NVIDIA Container Toolkit, then run `sudo nvidia-ctk runtime configure --runtime=docker` and restart dockerd"

// Docker reads from `docker info` whether the engine can hand an NVIDIA GPU
// to a container: an nvidia runtime, or CDI devices from the NVIDIA driver.
func Docker(info system.Info) Verdict {
	if _, ok := info.Runtimes["nvidia"]; ok {
		return Verdict{Level: Ready, Reasons: []string{"the Docker Engine has the nvidia runtime"}}
	}
	for _, d := range info.DiscoveredDevices {
		if d.Source == "cdi" && strings.HasPrefix(d.ID, "nvidia.com/gpu") {
			return Verdict{Level: Ready, Reasons: []string{"the Docker Engine has CDI device " + d.ID}}
		}
	}
	return Verdict{
		Level:   NotReady,
		Reasons: []string{"the Docker Engine has no nvidia runtime and no CDI GPU devices"},
		Fixes:   []string{FixDockerRuntime},
	}
}

// Combine folds the Docker verdict into a host report: OpenVoice needs both
// a ready GPU and an engine that can hand it out.
func Combine(r HostReport, docker Verdict) Verdict {
	v := r.Host
	v.Reasons = append([]string(nil), v.Reasons...)
	v.Fixes = append([]string(nil), v.Fixes...)
	if docker.Level.OK() {
		return v
	}
	d := docker
	d.Fixes = append([]string(nil), d.Fixes...)
	v.merge(d)
	return v
}
