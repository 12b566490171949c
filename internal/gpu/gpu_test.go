package gpu

import (
	"testing"

	"github.com/docker/docker/api/types/system"
	"github.com/stretchr/testify/assert"
)

func TestDriverRules(t *testing.T) {
	tests := []struct {
		driver string
		cuda   int
		want   Level
		reason string
	}{
		{"535.104.05", 12020, Ready, ""},
		{"520.61.05", 11080, Ready, ""},
		{"525.60.13", 11070, NotReady, "reports CUDA 11.7, below 11.8"},
		{"520.56.06", 11080, ReadyWarning, "minor-version compatibility"},
		{"470.223.02", 11040, ReadyWarning, "the driver's own CUDA is 11.4"},
		{"450.80.02", 11000, ReadyWarning, "older than 520.61.05"},
		{"450.51.06", 11000, NotReady, "older than 450.80.02"},
		{"418.87.01", 10010, NotReady, "older than 450.80.02"},
		{"garbage", 0, Unknown, "not readable"},
	}
	for _, tt := range tests {
		t.Run(tt.driver, func(t *testing.T) {
			v := driverVerdict(Inventory{DriverVersion: tt.driver, CUDADriverVersion: tt.cuda})
			assert.Equal(t, tt.want, v.Level)
			if tt.reason != "" {
				assert.Contains(t, v.Summary(), tt.reason)
			}
			if tt.want == NotReady || tt.want == ReadyWarning {
				assert.Contains(t, v.Fixes, fixDriver)
			}
		})
	}
}

func TestDeviceRules(t *testing.T) {
	req := Requirements{Count: 1, MinMemoryMiB: 8192}
	tests := []struct {
		name   string
		dev    Device
		want   Level
		reason string
	}{
		{"T4", Device{Name: "Tesla T4", CCMajor: 7, CCMinor: 5, MemoryTotalMiB: 15360, MemoryFreeMiB: 15000}, Ready, ""},
		{"H200", Device{CCMajor: 9, CCMinor: 0, MemoryTotalMiB: 143771, MemoryFreeMiB: 143000}, Ready, ""},
		{"B200", Device{CCMajor: 10, CCMinor: 0, MemoryTotalMiB: 184320, MemoryFreeMiB: 184000}, NotReady, "above 9.0"},
		{"Kepler", Device{CCMajor: 3, CCMinor: 7, MemoryTotalMiB: 12288, MemoryFreeMiB: 12000}, NotReady, "below 5.0"},
		{"small", Device{CCMajor: 7, CCMinor: 5, MemoryTotalMiB: 4096, MemoryFreeMiB: 4000}, NotReady, "4096 MiB of GPU memory, OpenVoice needs 8192 MiB"},
		{"busy", Device{CCMajor: 7, CCMinor: 5, MemoryTotalMiB: 15360, MemoryFreeMiB: 2048}, ReadyWarning, "only 2048 MiB free"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := deviceVerdict(tt.dev, req)
			assert.Equal(t, tt.want, v.Level, v.Summary())
			if tt.reason != "" {
				assert.Contains(t, v.Summary(), tt.reason)
			}
		})
	}
}

func TestHostVerdicts(t *testing.T) {
	t4 := Device{Name: "Tesla T4", CCMajor: 7, CCMinor: 5, MemoryTotalMiB: 15360, MemoryFreeMiB: 15000}
	b200 := Device{Index: 1, Name: "B200", CCMajor: 10, MemoryTotalMiB: 184320, MemoryFreeMiB: 184000}
	ok := Inventory{Available: true, DriverVersion: "535.104.05", CUDADriverVersion: 12020}

	r := Evaluate(Inventory{NoDriver: true, Problem: "libnvidia-ml.so.1 was not found"}, Requirements{})
	assert.Equal(t, NotReady, r.Host.Level)
	assert.Contains(t, r.Host.Summary(), "no NVIDIA driver")
	assert.Contains(t, r.Host.Fixes, fixCPUMode)

	r = Evaluate(Inventory{Unsupported: true, Problem: "no cgo"}, Requirements{})
	assert.Equal(t, Unknown, r.Host.Level)

	zero := ok
	zero.GPUs = nil
	r = Evaluate(zero, Requirements{})
	assert.Equal(t, NotReady, r.Host.Level)
	assert.Contains(t, r.Host.Summary(), "no NVIDIA GPU found")

	mixed := ok
	mixed.GPUs = []Device{t4, b200}
	r = Evaluate(mixed, Requirements{Count: 1})
	assert.Equal(t, Ready, r.Host.Level, "one ready GPU is enough for one")
	assert.Equal(t, NotReady, r.GPUs[1].Verdict.Level)
	r = Evaluate(mixed, Requirements{Count: 2})
	assert.Equal(t, NotReady, r.Host.Level)
	assert.Contains(t, r.Host.Summary(), "1 of 2 GPUs can run OpenVoice, 2 needed")
}

func TestDockerSupport(t *testing.T) {
	assert.Equal(t, NotReady, Docker(system.Info{Runtimes: map[string]system.RuntimeWithStatus{"runc": {}}}).Level)
	assert.Equal(t, Ready, Docker(system.Info{Runtimes: map[string]system.RuntimeWithStatus{"nvidia": {}}}).Level)
	assert.Equal(t, Ready, Docker(system.Info{DiscoveredDevices: []system.DeviceInfo{{Source: "cdi", ID: "nvidia.com/gpu=0"}}}).Level)

	ready := Evaluate(Inventory{Available: true, DriverVersion: "535.104.05", CUDADriverVersion: 12020, GPUs: []Device{{CCMajor: 7, CCMinor: 5, MemoryTotalMiB: 15360}}}, Requirements{})
	v := Combine(ready, Docker(system.Info{}))
	assert.Equal(t, NotReady, v.Level, "a ready GPU the engine cannot hand out is not ready")
	assert.Contains(t, v.Fixes, FixDockerRuntime)
	assert.Equal(t, Ready, Combine(ready, Verdict{Level: Ready}).Level)
}
