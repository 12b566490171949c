package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/awssim"
	"github.com/vmctl/vmctl/internal/awssim/simtest"
	"github.com/vmctl/vmctl/internal/dockertest"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/gpu"
	"github.com/vmctl/vmctl/internal/stack"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// vmctlBinary builds the real binary once per test run.
func vmctlBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := filepathTemp()
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "vmctl")
		build := exec.Command("go", "build", "-o", binPath, "./cmd/vmctl")
		build.Dir = dockertest.RepoRoot()
		if out, err := build.CombinedOutput(); err != nil {
			binErr = err
			t.Log(string(out))
		}
	})
	require.NoError(t, binErr)
	return binPath
}

var readyT4 = gpu.Inventory{
	Available: true, DriverVersion: "535.104.05", NVMLVersion: "12.535.104.05", CUDADriverVersion: 12020,
	GPUs: []gpu.Device{{Index: 0, Name: "Tesla T4", UUID: "GPU-1", MemoryTotalMiB: 15360, MemoryFreeMiB: 14900, CCMajor: 7, CCMinor: 5}},
}

// runWith runs vmctl in-process with a GPU inventory and AWS config of the test's choosing.
func runWith(t *testing.T, inv gpu.Inventory, awsCfg func(ctx context.Context, env *environment.Environment) (sdkaws.Config, error), args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytesBuffer
	f := NewFactory(&IOStreams{Out: &out, ErrOut: &errOut})
	f.GPU = func() gpu.Inventory { return inv }
	if awsCfg != nil {
		f.AWSConfig = awsCfg
	}
	code := Run(context.Background(), f, args)
	return code, out.String(), errOut.String()
}

func TestGPUVerdictsAndExitCodes(t *testing.T) {
	dockertest.Client(t)
	envDir := filepath.Join(dockertest.RepoRoot(), "environments")

	// A ready T4, but this engine has no nvidia runtime: not ready, with the fix.
	code, out, _ := runWith(t, readyT4, nil, "--env-dir", envDir, "gpu")
	assert.Equal(t, ExitNotReady, code)
	assert.Contains(t, out, "Driver 535.104.05 · NVML 12.535.104.05 · CUDA 12.2 (driver)")
	assert.Regexp(t, `0\tTesla T4\t15360 MiB \(14900 free\)\t7\.5\t`, out)
	assert.Contains(t, out, "nvidia-ctk runtime configure --runtime=docker")

	code, out, _ = runWith(t, gpu.Inventory{NoDriver: true, Problem: "libnvidia-ml.so.1 was not found"}, nil, "--env-dir", envDir, "gpu", "-o", "json")
	assert.Equal(t, ExitNotReady, code)
	var rep gpuReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	assert.Equal(t, gpu.NotReady, rep.Verdict.Level)
	assert.EqualValues(t, 8192, rep.Required.MinMemoryMiB, "from environments/local.yaml")

	// Neither NVML (a build without cgo) nor the engine can be asked: unknown.
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
	code, _, errOut := runWith(t, gpu.Inventory{Unsupported: true, Problem: "NVML is not available on this build"}, nil, "--env-dir", envDir, "gpu")
	assert.Equal(t, ExitUnknown, code)
	assert.Contains(t, errOut, "could not be told")
}

// The real binary on a host without an NVIDIA driver: a clear verdict,
// the documented exit code, no crash.
func TestRealBinaryWithoutDriver(t *testing.T) {
	if inv := gpu.ReadHost(); inv.Available {
		t.Skip("this host has an NVIDIA driver")
	}
	cmd := exec.Command(vmctlBinary(t), "--env-dir", filepath.Join(dockertest.RepoRoot(), "environments"), "gpu")
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	require.ErrorAs(t, err, &exitErr, string(out))
	assert.Equal(t, ExitNotReady, exitErr.ExitCode(), string(out))
	assert.Contains(t, string(out), "no NVIDIA driver: libnvidia-ml.so.1 was not found")
}

func TestUpFallsBackToCPUWithTheReason(t *testing.T) {
	dockertest.Client(t)
	env := fixtureEnv(t)
	project := "vmctlcligpu"
	args := []string{"-f", "../engine/testdata/fixture.yaml", "-p", project, "--profile", "gpu"}
	t.Cleanup(func() { run(t, env, append(args, "down", "-v")...) })
	for k, v := range env {
		t.Setenv(k, v)
	}
	code, _, errOut := runWith(t, gpu.Inventory{NoDriver: true, Problem: "libnvidia-ml.so.1 was not found"}, nil, append(args, "up", "gpu", "--progress", "quiet")...)
	require.Equal(t, ExitOK, code, errOut)
	assert.Contains(t, errOut, "gpu: auto: gpu run in CPU mode: no NVIDIA driver: libnvidia-ml.so.1 was not found")

	code, _, errOut = runWith(t, gpu.Inventory{NoDriver: true, Problem: "libnvidia-ml.so.1 was not found"}, nil, append(args, "up", "gpu", "--gpu", "on", "--progress", "quiet")...)
	assert.Equal(t, ExitError, code)
	assert.Contains(t, errOut, "--gpu on: gpu reserve a GPU but this host cannot provide one: no NVIDIA driver")
}

func TestDoctor(t *testing.T) {
	dockertest.Client(t)
	sim := awssim.New()
	defer sim.Close()
	sim.AddUser("AKIADEV", awssim.Principal{Account: "111111111111", ARN: "arn:aws:iam::111111111111:role/dev-deployer"})
	sim.AddUser("AKIAPROD", awssim.Principal{Account: "333333333333", ARN: "arn:aws:iam::333333333333:role/prod"})
	awsCfg := func(key string) func(ctx context.Context, env *environment.Environment) (sdkaws.Config, error) {
		return simAWS(sim, key)
	}
	t.Setenv("VMCTL_APP_SOURCE", t.TempDir())
	root := dockertest.RepoRoot()
	base := []string{"-f", filepath.Join(root, "compose", "demo.yaml"), "-p", "vmctldoctor", "--env-dir", filepath.Join(root, "environments"), "doctor"}
	// dev's account has its foundation, as vmctl infra apply makes it.
	st, err := stack.Load(context.Background(), stack.LoadOptions{Files: []string{filepath.Join(root, "compose", "demo.yaml")}})
	require.NoError(t, err)
	dev, err := environment.LoadNamed(filepath.Join(root, "environments"), "dev")
	require.NoError(t, err)
	simtest.Foundation(t, sim, "AKIADEV", st, dev)

	code, out, errOut := runWith(t, gpu.Inventory{NoDriver: true, Problem: "libnvidia-ml.so.1 was not found"}, awsCfg("AKIADEV"), append(base, "--env", "dev")...)
	assert.Equal(t, ExitOK, code, out+errOut)
	assert.Contains(t, out, "✓ Docker Engine")
	assert.Contains(t, out, "✓ Compose stack          vmctldoctor: 6 services")
	assert.Contains(t, out, "! GPU (CUDA 11.8)        not-ready: no NVIDIA driver")
	assert.Contains(t, out, "✓ AWS credentials (dev)  arn:aws:iam::111111111111:role/dev-deployer in account 111111111111")
	assert.Contains(t, out, "✓ Foundation (dev)")

	code, out, _ = runWith(t, readyT4, awsCfg("AKIAPROD"), append(base, "--env", "dev", "-o", "json")...)
	assert.Equal(t, ExitNotReady, code)
	var rep struct {
		Checks []struct{ Name, Status, Detail, Fix string }
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	byName := map[string]string{}
	for _, c := range rep.Checks {
		byName[c.Name] = c.Status + ": " + c.Detail
	}
	assert.Contains(t, byName["AWS credentials (dev)"], "fail: credentials are for account 333333333333")
	assert.Contains(t, byName["GPU (CUDA 11.8)"], "fail: not-ready", "a GPU host whose engine cannot hand out the GPU fails")
}

type bytesBuffer = bytes.Buffer

func filepathTemp() (string, error) { return os.MkdirTemp("", "vmctl-bin-") }
