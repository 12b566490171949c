package engine_test

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/vmctl/vmctl/internal/dockertest"
	"github.com/vmctl/vmctl/internal/engine"
	"github.com/vmctl/vmctl/internal/stack"
)

// benchFixture is the demo topology in testdata/bench.yaml on free ports.
func benchFixture(b *testing.B) (*engine.Engine, *stack.Stack, []string) {
	api := dockertest.Client(b)
	env := map[string]string{
		"FIXTURE_IMAGE":   dockertest.FixtureImage,
		"FIXTURE_CONTEXT": dockertest.FixtureContext(b),
		"API_PORT":        dockertest.FreePort(b),
		"WEB_PORT":        dockertest.FreePort(b),
		"VOICEVOX_PORT":   dockertest.FreePort(b),
		"OPENVOICE_PORT":  dockertest.FreePort(b),
	}
	st, err := stack.Load(context.Background(), stack.LoadOptions{Files: []string{"testdata/bench.yaml"}, ProjectName: "vmctlbench", Env: env})
	if err != nil {
		b.Fatal(err)
	}
	osEnv := os.Environ()
	for k, v := range env {
		osEnv = append(osEnv, k+"="+v)
	}
	eng := engine.New(api)
	// Build once, outside the timings.
	if _, err := eng.Build(context.Background(), st, engine.BuildOptions{}); err != nil {
		b.Fatal(err)
	}
	return eng, st, osEnv
}

// BenchmarkUpColdVmctl: `vmctl up` from nothing to every service healthy.
func BenchmarkUpColdVmctl(b *testing.B) {
	eng, st, _ := benchFixture(b)
	ctx := context.Background()
	defer eng.Down(ctx, st.Name(), engine.DownOptions{Volumes: true})
	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		if err := eng.Down(ctx, st.Name(), engine.DownOptions{Volumes: true}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		if _, err := eng.Up(ctx, st, engine.UpOptions{WaitTimeout: 3 * time.Minute}); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s-to-healthy")
}

// BenchmarkUpNoChange: `vmctl up` on a stack that is already up.
func BenchmarkUpNoChange(b *testing.B) {
	eng, st, _ := benchFixture(b)
	ctx := context.Background()
	defer eng.Down(ctx, st.Name(), engine.DownOptions{Volumes: true})
	if _, err := eng.Up(ctx, st, engine.UpOptions{}); err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	for b.Loop() {
		start := time.Now()
		if _, err := eng.Up(ctx, st, engine.UpOptions{}); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s-to-healthy")
}

// BenchmarkUpColdDockerCompose: the peer, Debian's docker-compose, on the
// same file: `up -d`, then wait until Docker reports every service healthy.
func BenchmarkUpColdDockerCompose(b *testing.B) {
	if _, err := exec.LookPath("docker-compose"); err != nil {
		b.Skip("docker-compose is not installed (apt-get install docker-compose)")
	}
	eng, st, env := benchFixture(b)
	api := dockertest.Client(b)
	ctx := context.Background()
	compose := func(args ...string) {
		cmd := exec.Command("docker-compose", append([]string{"-p", "vmctlbenchcompose", "-f", "testdata/bench.yaml"}, args...)...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("docker-compose %v: %v\n%s", args, err, out)
		}
	}
	defer compose("down", "-v")
	_ = eng
	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		compose("down", "-v")
		b.StartTimer()
		start := time.Now()
		compose("up", "-d")
		for {
			list, err := api.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "com.docker.compose.project=vmctlbenchcompose"), filters.Arg("health", "healthy"))})
			if err != nil {
				b.Fatal(err)
			}
			if len(list) == len(st.Names()) {
				break
			}
			if time.Since(start) > 5*time.Minute {
				b.Fatal("docker-compose stack not healthy within 5 minutes")
			}
			time.Sleep(100 * time.Millisecond)
		}
		total += time.Since(start)
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s-to-healthy")
}
