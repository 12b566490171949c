package gpu_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/dockertest"
	"github.com/vmctl/vmctl/internal/gpu"
)

const readyT4 = `{"torch_version":"2.0.1+cu118","torch_cuda_version":"11.8","cudnn_version":8700,"cudnn_major":8,"cuda_available":true,"device_count":1,"devices":[{"index":0,"name":"Tesla T4","capability":"7.5","total_memory_mib":14931}],"ok":true,"error":null}`

// The probe runs a real container (the demo program standing in for the
// OpenVoice image's cuda_check.py) and judges what it printed.
func TestProbeRunsTheImageCheck(t *testing.T) {
	api := dockertest.Client(t)
	image := dockertest.FixtureImageBuilt(t, api)
	tests := []struct {
		name   string
		output string
		level  gpu.Level
		reason string
	}{
		{"ready T4", readyT4, gpu.Ready, "torch 2.0.1+cu118, CUDA 11.8, cuDNN 8700, Tesla T4 (7.5)"},
		{"cpu-only host", "", gpu.NotReady, "torch sees no CUDA device"},
		{"cuda 12 build", `{"torch_version":"2.3.0+cu121","torch_cuda_version":"12.1","cudnn_version":8902,"cudnn_major":8,"cuda_available":true,"device_count":1,"devices":[],"ok":false}`, gpu.NotReady, `built for CUDA "12.1", not 11.8`},
		{"cudnn 9", `{"torch_version":"2.0.1+cu118","torch_cuda_version":"11.8","cudnn_version":90100,"cudnn_major":9,"cuda_available":true,"device_count":1,"devices":[],"ok":false}`, gpu.NotReady, "cuDNN 90100, not 8.x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var env []string
			if tt.output != "" {
				env = []string{"DEMO_CUDA_CHECK=" + tt.output}
			}
			res, v, err := gpu.Probe(context.Background(), api, gpu.ProbeOptions{Image: image, Command: []string{"/vmctl-demo", "cuda-check"}, Env: env, NoGPU: true})
			require.NoError(t, err)
			assert.Equal(t, tt.level, v.Level, v.Summary())
			assert.Contains(t, v.Summary(), tt.reason)
			assert.Equal(t, image, res.Image)
		})
	}
}

func TestProbeFailsClearly(t *testing.T) {
	api := dockertest.Client(t)
	image := dockertest.FixtureImageBuilt(t, api)
	// An image without the check prints no JSON.
	_, _, err := gpu.Probe(context.Background(), api, gpu.ProbeOptions{Image: image, Command: []string{"/vmctl-demo", "healthcheck", "http://127.0.0.1:1/"}, NoGPU: true})
	require.ErrorContains(t, err, "the probe printed no JSON (exit code 1)")

	// With the GPU requested on a host whose engine has no nvidia runtime.
	info, err := api.Info(context.Background())
	require.NoError(t, err)
	if gpu.Docker(info).Level.OK() {
		t.Skip("this engine can hand out GPUs")
	}
	_, _, err = gpu.Probe(context.Background(), api, gpu.ProbeOptions{Image: image, Command: []string{"/vmctl-demo", "cuda-check"}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "start the probe container")
}
