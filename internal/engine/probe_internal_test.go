package engine

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dtypes "github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/vmctl/vmctl/internal/stack"
)

// execFake is a Docker API whose containers all run with Docker's health
// still "starting"; each container's health test fails twice, then passes.
// It records the most exec probes it ever saw in flight.
type execFake struct {
	API      // unused methods panic
	mu       sync.Mutex
	execs    map[string]string // exec ID → container ID
	runs     map[string]int    // container ID → tests run
	inFlight atomic.Int32
	maxSeen  atomic.Int32
	next     atomic.Int32
}

func (f *execFake) ContainerInspect(_ context.Context, id string) (container.InspectResponse, error) {
	return container.InspectResponse{ContainerJSONBase: &container.ContainerJSONBase{ID: id, State: &container.State{
		Status: container.StateRunning, Running: true, Health: &container.Health{Status: container.Starting},
	}}}, nil
}

func (f *execFake) ContainerExecCreate(_ context.Context, id string, _ container.ExecOptions) (container.ExecCreateResponse, error) {
	n := f.inFlight.Add(1)
	for {
		m := f.maxSeen.Load()
		if n <= m || f.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	execID := fmt.Sprint("exec", f.next.Add(1))
	f.mu.Lock()
	f.execs[execID] = id
	f.mu.Unlock()
	return container.ExecCreateResponse{ID: execID}, nil
}

func (f *execFake) ContainerExecAttach(context.Context, string, container.ExecAttachOptions) (dtypes.HijackedResponse, error) {
	time.Sleep(2 * time.Millisecond) // the test runs for a while, so probes overlap
	client, server := net.Pipe()
	server.Close()
	return dtypes.HijackedResponse{Conn: client, Reader: bufio.NewReader(strings.NewReader(""))}, nil
}

func (f *execFake) ContainerExecInspect(_ context.Context, execID string) (container.ExecInspect, error) {
	defer f.inFlight.Add(-1)
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.execs[execID]
	f.runs[id]++
	code := 1
	if f.runs[id] > 2 {
		code = 0
	}
	return container.ExecInspect{ExecID: execID, ExitCode: code}, nil
}

// TestExecProbesAreBounded: however wide the stack, no more exec probes
// than the bound run at once, and every service still becomes healthy.
func TestExecProbesAreBounded(t *testing.T) {
	const services, bound = 24, 3
	var y strings.Builder
	y.WriteString("services:\n")
	for i := range services {
		fmt.Fprintf(&y, "  s%02d:\n    image: fixture:test\n    healthcheck: {test: [CMD, /check], interval: 10s, timeout: 3s}\n", i)
	}
	file := filepath.Join(t.TempDir(), "wide.yaml")
	require.NoError(t, os.WriteFile(file, []byte(y.String()), 0o644))
	st, err := stack.Load(context.Background(), stack.LoadOptions{Files: []string{file}, ProjectName: "wide"})
	require.NoError(t, err)

	fake := &execFake{execs: map[string]string{}, runs: map[string]int{}}
	e := New(fake, WithProbeInterval(time.Millisecond), WithExecProbes(bound))
	var g errgroup.Group
	for _, n := range st.Names() {
		g.Go(func() error {
			res, err := e.waitReady(context.Background(), st, n, n+"-id", false)
			if err == nil && res != "healthy" {
				err = fmt.Errorf("%s: %s", n, res)
			}
			return err
		})
	}
	require.NoError(t, g.Wait())
	assert.LessOrEqual(t, fake.maxSeen.Load(), int32(bound))
	assert.Equal(t, int32(bound), fake.maxSeen.Load(), "the bound is used, not serialised below it")
	for _, n := range st.Names() {
		assert.Equal(t, 3, fake.runs[n+"-id"], "%s: two failed tests and one that passed", n)
	}
}

// TestFreshHealthy: Docker's verdict stands for an exec only while its
// latest check passed within one check period.
func TestFreshHealthy(t *testing.T) {
	now := time.Now()
	log := func(code int, ago time.Duration) []*container.HealthcheckResult {
		return []*container.HealthcheckResult{{ExitCode: code, End: now.Add(-ago)}}
	}
	tests := []struct {
		name string
		h    *container.Health
		want bool
	}{
		{"no health check", nil, false},
		{"starting", &container.Health{Status: container.Starting}, false},
		{"healthy, checked just now", &container.Health{Status: container.Healthy, Log: log(0, time.Second)}, true},
		{"healthy, but the latest check failed", &container.Health{Status: container.Healthy, Log: log(1, time.Second)}, false},
		{"healthy, but checked long ago", &container.Health{Status: container.Healthy, Log: log(0, time.Hour)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, freshHealthy(tt.h, 40*time.Second, now))
		})
	}
}
