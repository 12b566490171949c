package doctor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/docker/docker/api/types/system"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/engine"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/gpu"
	"github.com/vmctl/vmctl/internal/stack"
)

func deps(t *testing.T) Deps {
	envDir, err := filepath.Abs("../../environments")
	require.NoError(t, err)
	return Deps{
		EnvDir: envDir,
		DockerInfo: func(context.Context) (system.Info, string, error) {
			return system.Info{ServerVersion: "20.10.24", OperatingSystem: "Debian", DockerRootDir: "/var/lib/docker"}, "1.41", nil
		},
		Stack: func(ctx context.Context) (*stack.Stack, error) {
			return stack.Load(ctx, stack.LoadOptions{Files: []string{"../../compose/demo.yaml"}})
		},
		GPU:      func() gpu.Inventory { return gpu.Inventory{NoDriver: true, Problem: "libnvidia-ml.so.1 was not found"} },
		Ports:    func(context.Context, *stack.Stack) ([]engine.PortConflict, error) { return nil, nil },
		DiskFree: func(string) (uint64, error) { return 100 << 30, nil },
		Identity: func(context.Context, *environment.Environment) (aws.Identity, error) {
			return aws.Identity{}, errors.New("no credentials")
		},
	}
}

func byName(r Report) map[string]Check {
	m := map[string]Check{}
	for _, c := range r.Checks {
		m[c.Name] = c
	}
	return m
}

func TestChecklist(t *testing.T) {
	d := deps(t)
	r := Run(context.Background(), d)
	assert.False(t, r.Failed())
	got := byName(r)
	assert.Equal(t, OK, got["Docker Engine"].Status)
	assert.Equal(t, Warn, got["GPU (CUDA 11.8)"].Status, "no GPU: OpenVoice runs in CPU mode")
	assert.Equal(t, OK, got["Disk space"].Status)
	_, asked := got["AWS credentials (local)"]
	assert.False(t, asked, "local needs no credentials")

	d.Env = "staging"
	r = Run(context.Background(), d)
	assert.True(t, r.Failed())
	assert.Equal(t, Fail, byName(r)["AWS credentials (staging)"].Status)
	assert.Contains(t, byName(r)["AWS credentials (staging)"].Fix, "account 222222222222")
}

func TestDiskThresholds(t *testing.T) {
	for _, tt := range []struct {
		free uint64
		want Status
	}{{100 << 30, OK}, {20 << 30, Warn}, {5 << 30, Fail}} {
		d := deps(t)
		d.DiskFree = func(string) (uint64, error) { return tt.free, nil }
		assert.Equal(t, tt.want, byName(Run(context.Background(), d))["Disk space"].Status, tt.free>>30)
	}
}

func TestEngineDownSkipsWhatNeedsIt(t *testing.T) {
	d := deps(t)
	d.DockerInfo = func(context.Context) (system.Info, string, error) {
		return system.Info{}, "", errors.New("cannot reach the Docker Engine")
	}
	r := Run(context.Background(), d)
	got := byName(r)
	assert.Equal(t, Fail, got["Docker Engine"].Status)
	assert.Equal(t, Skip, got["Host ports"].Status)
	assert.Equal(t, Skip, got["Disk space"].Status)
	assert.True(t, r.Failed())
}

func TestBrokenEnvironmentFile(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "local.yaml"), []byte("kind: local\nbogus: 1\n"), 0o644))
	d := deps(t)
	d.EnvDir = dir
	got := byName(Run(context.Background(), d))
	assert.Equal(t, Fail, got["Environment files"].Status)
	assert.Contains(t, got["Environment files"].Detail, "local.yaml:2: bogus")
}

func TestMarks(t *testing.T) {
	assert.Equal(t, "✓", OK.Mark())
	assert.Equal(t, "!", Warn.Mark())
	assert.Equal(t, "✗", Fail.Mark())
	assert.Equal(t, "-", Skip.Mark())
}

func TestFoundationCheck(t *testing.T) {
	d := deps(t)
	d.Env = "staging"
	d.Foundation = func(context.Context, *environment.Environment) (string, error) {
		t.Fatal("the foundation is not read without credentials")
		return "", nil
	}
	assert.Equal(t, Skip, byName(Run(context.Background(), d))["Foundation (staging)"].Status)

	d.Identity = func(context.Context, *environment.Environment) (aws.Identity, error) {
		return aws.Identity{Account: "222222222222", ARN: "arn:aws:iam::222222222222:role/ci"}, nil
	}
	d.Foundation = func(context.Context, *environment.Environment) (string, error) {
		return "", errors.New("environment staging has no foundation: stack vmctl-staging does not exist: run vmctl infra apply --env staging")
	}
	c := byName(Run(context.Background(), d))["Foundation (staging)"]
	assert.Equal(t, Fail, c.Status)
	assert.Contains(t, c.Detail, "stack vmctl-staging does not exist")
	assert.Equal(t, "vmctl infra plan --env staging, then vmctl infra apply --env staging", c.Fix)

	d.Foundation = func(context.Context, *environment.Environment) (string, error) {
		return "stack vmctl-staging CREATE_COMPLETE", nil
	}
	assert.Equal(t, OK, byName(Run(context.Background(), d))["Foundation (staging)"].Status)
}
