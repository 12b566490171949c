//go:build cgo && linux

package gpu

import (
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxb200"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh200"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// teslaT4 is the GPU of a g4dn.xlarge; go-nvml ships no preset for it.
var teslaT4 = gpus.Config{
	Name:         "Tesla T4",
	Architecture: nvml.DEVICE_ARCH_TURING,
	Brand:        nvml.BRAND_NVIDIA,
	MemoryMB:     15360,
	CudaMajor:    7,
	CudaMinor:    5,
	PciDeviceId:  0x1EB810DE,
}

func newServer(t *testing.T, driver string, cuda int, cfgs ...gpus.Config) *server.Server {
	t.Helper()
	s, err := server.New(server.WithGPUs(cfgs...), server.WithDriverVersion(driver), server.WithNVMLVersion("12."+driver), server.WithCUDADriverVersion(cuda))
	require.NoError(t, err)
	return s
}

// withTelemetry fills what the mock servers leave unset: free memory,
// utilisation and temperature, as a real idle GPU reports them.
func withTelemetry(s *server.Server) *server.Server {
	for _, d := range s.Devices {
		dev := d.(*server.Device)
		dev.MemoryInfo.Free = dev.MemoryInfo.Total - 512<<20
		dev.MemoryInfo.Used = 512 << 20
		dev.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{Gpu: 3}, nvml.SUCCESS }
		dev.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 41, nvml.SUCCESS }
		dev.GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) {
			return nvml.Memory_v2{Total: dev.MemoryInfo.Total, Free: dev.MemoryInfo.Free, Used: dev.MemoryInfo.Used}, nvml.SUCCESS
		}
	}
	return s
}

func TestReadAndEvaluateOverMockServers(t *testing.T) {
	req := Requirements{Count: 1, MinMemoryMiB: 8192}
	tests := []struct {
		name     string
		lib      nvml.Interface
		gpus     int
		level    Level
		reason   string
		firstCC  string
		firstMiB uint64
	}{
		{"T4 on driver 535", withTelemetry(newServer(t, "535.104.05", 12020, teslaT4)), 1, Ready, "", "7.5", 15360},
		{"DGX A100", withTelemetry(dgxa100.New()), 8, Ready, "", "8.0", 40960},
		{"DGX H200", withTelemetry(dgxh200.New()), 8, Ready, "", "9.0", 144384},
		{"DGX B200", withTelemetry(dgxb200.New()), 8, NotReady, "compute capability 10.0 is above 9.0", "10.0", 184320},
		{"470 branch, CUDA 11.4", withTelemetry(newServer(t, "470.223.02", 11040, teslaT4)), 1, ReadyWarning, "the driver's own CUDA is 11.4", "7.5", 15360},
		{"driver 450.80.02", withTelemetry(newServer(t, "450.80.02", 11000, teslaT4)), 1, ReadyWarning, "minor-version compatibility", "7.5", 15360},
		{"driver 418", withTelemetry(newServer(t, "418.87.01", 10010, teslaT4)), 1, NotReady, "older than 450.80.02", "7.5", 15360},
		{"zero GPUs", newServer(t, "535.104.05", 12020), 0, NotReady, "no NVIDIA GPU found", "", 0},
		{"too little memory", withTelemetry(newServer(t, "535.104.05", 12020, gpus.Config{Name: "Tesla M60", MemoryMB: 4096, CudaMajor: 5, CudaMinor: 2})), 1, NotReady, "4096 MiB of GPU memory, OpenVoice needs 8192 MiB", "5.2", 4096},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := Read(tt.lib)
			require.True(t, inv.Available, inv.Problem)
			require.Len(t, inv.GPUs, tt.gpus)
			r := Evaluate(inv, req)
			assert.Equal(t, tt.level, r.Host.Level, r.Host.Summary())
			if tt.reason != "" {
				assert.Contains(t, r.Host.Summary(), tt.reason)
				assert.NotEmpty(t, r.Host.Fixes)
			}
			if tt.gpus > 0 {
				g := inv.GPUs[0]
				assert.Equal(t, tt.firstCC, g.ComputeCapability())
				assert.Equal(t, tt.firstMiB, g.MemoryTotalMiB)
				assert.NotEmpty(t, g.UUID)
				require.NotNil(t, g.Utilization)
				require.NotNil(t, g.TemperatureC)
				assert.EqualValues(t, 41, *g.TemperatureC)
			}
		})
	}
}

func TestReadHostInfo(t *testing.T) {
	inv := Read(withTelemetry(dgxh200.New()))
	assert.Equal(t, "550.54.15", inv.DriverVersion)
	assert.Equal(t, "12.550.54.15", inv.NVMLVersion)
	assert.Equal(t, "12.4", inv.CUDAVersion())
	assert.Contains(t, inv.GPUs[0].Name, "H200")
}

// A failed Init must be the last NVML call: every other mock function is
// left nil, so touching one would panic the test.
func TestFailedInitTouchesNothingElse(t *testing.T) {
	for _, tt := range []struct {
		ret      nvml.Return
		noDriver bool
		want     string
	}{
		{nvml.ERROR_LIBRARY_NOT_FOUND, true, "libnvidia-ml.so.1 was not found"},
		{nvml.ERROR_DRIVER_NOT_LOADED, false, "the NVIDIA kernel driver is not loaded"},
		{nvml.ERROR_LIB_RM_VERSION_MISMATCH, false, "version mismatch"},
	} {
		lib := &mock.Interface{InitFunc: func() nvml.Return { return tt.ret }}
		inv := Read(lib)
		assert.False(t, inv.Available)
		assert.Equal(t, tt.noDriver, inv.NoDriver)
		assert.Contains(t, inv.Problem, tt.want)
		assert.Len(t, lib.InitCalls(), 1)
		r := Evaluate(inv, Requirements{})
		assert.Equal(t, NotReady, r.Host.Level)
	}
}

// An older driver without nvmlDeviceGetMemoryInfo_v2: the v2 call must not
// be made (its mock is nil and would panic); v1 answers instead.
func TestOlderDriverSymbolIsLookedUpFirst(t *testing.T) {
	s := newServer(t, "470.223.02", 11040, teslaT4)
	s.LookupSymbolFunc = func(name string) error {
		if name == "nvmlDeviceGetMemoryInfo_v2" {
			return nvml.ERROR_FUNCTION_NOT_FOUND
		}
		return nil
	}
	for _, d := range s.Devices {
		dev := d.(*server.Device)
		dev.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{}, nvml.ERROR_NOT_SUPPORTED }
		dev.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
	}
	inv := Read(s)
	require.Len(t, inv.GPUs, 1)
	assert.EqualValues(t, 15360, inv.GPUs[0].MemoryTotalMiB)
	assert.Nil(t, inv.GPUs[0].Utilization, "not supported is not an error")
	assert.Empty(t, inv.GPUs[0].Problems)
}

// On this machine (no driver), the real library path reports it cleanly.
func TestReadHostWithoutDriver(t *testing.T) {
	inv := ReadHost()
	if inv.Available {
		t.Skip("this host has an NVIDIA driver")
	}
	assert.True(t, inv.NoDriver, inv.Problem)
	assert.Equal(t, NotReady, Evaluate(inv, Requirements{}).Host.Level)
}
