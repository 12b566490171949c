package engine_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/vmctl/vmctl/internal/dockertest"
	"github.com/vmctl/vmctl/internal/engine"
	"github.com/vmctl/vmctl/internal/stack"
)

// BenchmarkUp times vmctl and the newest docker compose on this machine side
// by side, on the same compose file: cold (nothing up to every service
// healthy), no-op (up again, nothing changed) and one-changed (one service's
// environment changed). Each tool runs alone: its stack is removed before
// the other's starts. Before a no-op or one-changed run the stack has
// settled (Docker itself reports every service healthy), the same start
// for both tools; compose's time includes the wait for Docker's health,
// as its --wait does. It reports seconds per tool and vmctl's time as a
// fraction of compose's (ratio-vs-compose; below 1 is faster); ns/op mixes
// both tools and the setup, so read the named metrics.
//
// Stacks: testdata/bench.yaml (the demo topology, two levels deep) and a
// stack of 40 independent services with an exec health check each,
// generated at bench time.
func BenchmarkUp(b *testing.B) {
	cli, haveCompose := findCompose()
	// Printed, not logged: a passing benchmark's log is not shown.
	if haveCompose {
		fmt.Printf("BenchmarkUp: vmctl compared with %s\n", cli.name)
	} else {
		fmt.Println("BenchmarkUp: no docker compose found (apt-get install docker-compose): vmctl figures only")
	}
	stacks := []struct {
		name, file, changed string
	}{
		{"demo", "testdata/bench.yaml", "backend"},
		{"wide40", wideStack(b, 40), "w00"},
	}
	for _, s := range stacks {
		b.Run(s.name, func(b *testing.B) {
			bf := newBenchFixture(b, s.name, s.file, s.changed, cli, haveCompose)
			for _, sc := range []string{"cold", "noop", "changed"} {
				b.Run(sc, func(b *testing.B) {
					var vm, co time.Duration
					for b.Loop() {
						vm += bf.vmctl(sc)
						if haveCompose {
							co += bf.compose(sc)
						}
					}
					n := float64(b.N)
					b.ReportMetric(vm.Seconds()/n, "vmctl-s")
					if haveCompose {
						b.ReportMetric(co.Seconds()/n, "compose-s")
						b.ReportMetric(vm.Seconds()/co.Seconds(), "ratio-vs-compose")
					}
				})
			}
		})
	}
}

// composeCLI is how to run docker compose: the v2 plugin when the docker
// CLI has it, else a docker-compose binary (Debian's is v1).
type composeCLI struct {
	argv []string
	name string
	v2   bool
}

func findCompose() (composeCLI, bool) {
	if out, err := exec.Command("docker", "compose", "version", "--short").Output(); err == nil {
		v := strings.TrimSpace(string(out))
		return composeCLI{argv: []string{"docker", "compose"}, name: "docker compose " + v + " (plugin)", v2: true}, true
	}
	if _, err := exec.LookPath("docker-compose"); err == nil {
		out, _ := exec.Command("docker-compose", "version", "--short").Output()
		v := strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
		return composeCLI{argv: []string{"docker-compose"}, name: "docker-compose " + v, v2: strings.HasPrefix(v, "2")}, true
	}
	return composeCLI{}, false
}

// wideStack writes a compose file of n independent services, each with an
// exec health check at a typical 10 s interval, in the subset
// docker-compose v1 reads; BENCH_REV changes w00's environment.
func wideStack(b *testing.B, n int) string {
	var y strings.Builder
	y.WriteString("x-app: &app\n  image: ${FIXTURE_IMAGE}\n  build:\n    context: ${FIXTURE_CONTEXT}\n\nservices:\n")
	for i := range n {
		fmt.Fprintf(&y, "  w%02d:\n    <<: *app\n    environment: {DEMO_NAME: w%02d, DEMO_PORT: \"8080\"", i, i)
		if i == 0 {
			y.WriteString(`, DEMO_VERSION: "${BENCH_REV:-0}"`)
		}
		y.WriteString("}\n    healthcheck: {interval: 10s, timeout: 3s, retries: 5, test: [\"CMD\", \"/vmctl-demo\", \"healthcheck\", \"http://127.0.0.1:8080/health\"]}\n")
	}
	file := filepath.Join(b.TempDir(), "wide.yaml")
	if err := os.WriteFile(file, []byte(y.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	return file
}

type benchFixture struct {
	b              *testing.B
	api            *client.Client
	eng            *engine.Engine
	file, changed  string
	env            map[string]string
	project, peer  string // vmctl's project, compose's
	cli            composeCLI
	services, revs int
}

func newBenchFixture(b *testing.B, name, file, changed string, cli composeCLI, haveCompose bool) *benchFixture {
	api := dockertest.Client(b)
	f := &benchFixture{
		b: b, api: api, eng: engine.New(api), file: file, changed: changed, cli: cli,
		project: "vmctlbench" + name, peer: "vmctlbenchcompose" + name,
		env: map[string]string{
			"FIXTURE_IMAGE":   dockertest.FixtureImage,
			"FIXTURE_CONTEXT": dockertest.FixtureContext(b),
			"API_PORT":        dockertest.FreePort(b),
			"WEB_PORT":        dockertest.FreePort(b),
			"VOICEVOX_PORT":   dockertest.FreePort(b),
			"OPENVOICE_PORT":  dockertest.FreePort(b),
		},
	}
	st := f.stack("0")
	f.services = len(st.Names())
	// Build once, outside the timings.
	if _, err := f.eng.Build(context.Background(), st, engine.BuildOptions{}); err != nil {
		b.Fatal(err)
	}
	f.vmctlDown()
	if haveCompose {
		f.composeRun("0", "down", "-v")
	}
	b.Cleanup(func() {
		f.vmctlDown()
		if haveCompose {
			f.composeRun("0", "down", "-v")
		}
	})
	return f
}

func (f *benchFixture) stack(rev string) *stack.Stack {
	env := map[string]string{"BENCH_REV": rev}
	for k, v := range f.env {
		env[k] = v
	}
	st, err := stack.Load(context.Background(), stack.LoadOptions{Files: []string{f.file}, ProjectName: f.project, Env: env})
	if err != nil {
		f.b.Fatal(err)
	}
	return st
}

// nextRev is a BENCH_REV no run has used, so every one-changed up changes.
func (f *benchFixture) nextRev() string {
	f.revs++
	return fmt.Sprint(f.revs)
}

func (f *benchFixture) vmctlUp(rev string) time.Duration {
	f.b.Helper()
	start := time.Now()
	if _, err := f.eng.Up(context.Background(), f.stack(rev), engine.UpOptions{WaitTimeout: 5 * time.Minute}); err != nil {
		f.b.Fatal(err)
	}
	return time.Since(start)
}

// vmctlDown removes vmctl's stack; a network Docker 20.10 keeps a stale
// endpoint on (see composeRun) stays, and the next up reuses it.
func (f *benchFixture) vmctlDown() {
	for attempt := 1; ; attempt++ {
		err := f.eng.Down(context.Background(), f.project, engine.DownOptions{Volumes: true})
		if err == nil || strings.Contains(err.Error(), "active endpoints") && attempt == 3 {
			return
		}
		if !strings.Contains(err.Error(), "active endpoints") {
			f.b.Fatal(err)
		}
		time.Sleep(time.Second)
	}
}

// vmctl times one scenario of `vmctl up`, and leaves nothing running.
func (f *benchFixture) vmctl(scenario string) time.Duration {
	defer f.vmctlDown()
	rev := f.nextRev()
	if scenario == "cold" {
		return f.vmctlUp(rev)
	}
	f.vmctlUp(rev)
	f.settle(f.project, "")
	if scenario == "changed" {
		rev = f.nextRev()
	}
	return f.vmctlUp(rev)
}

func (f *benchFixture) composeRun(rev string, args ...string) {
	f.b.Helper()
	argv := append(append([]string{}, f.cli.argv...), append([]string{"-p", f.peer, "-f", f.file}, args...)...)
	for attempt := 1; ; attempt++ {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), "BENCH_REV="+rev)
		for k, v := range f.env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		out, err := cmd.CombinedOutput()
		if err == nil {
			return
		}
		// Docker 20.10 can refuse a network whose last container has just
		// gone ("has active endpoints"); a moment later it mostly agrees,
		// and when it keeps a stale endpoint the next up reuses the network.
		if args[0] == "down" && strings.Contains(string(out), "active endpoints") {
			if attempt < 3 {
				time.Sleep(time.Second)
				continue
			}
			return
		}
		if len(out) > 2000 {
			out = out[len(out)-2000:]
		}
		f.b.Fatalf("%s %v: %v\n%s", f.cli.name, args, err, out)
	}
}

// composeUp is `up -d` and then the wait until Docker reports every
// service healthy (v2's --wait does it too) and, after a change, the
// changed service's container is a new one.
func (f *benchFixture) composeUp(rev, old string) time.Duration {
	start := time.Now()
	args := []string{"up", "-d"}
	if f.cli.v2 {
		args = append(args, "--wait")
	}
	f.composeRun(rev, args...)
	f.settle(f.peer, old)
	return time.Since(start)
}

// settle waits until Docker reports every service of project healthy and,
// when old is set, the changed service's container is a new one. Before a
// no-op or one-changed run it makes both tools start from the same place:
// a stack up for a while, whose health Docker has checked.
func (f *benchFixture) settle(project, old string) {
	start := time.Now()
	for {
		list, err := f.api.ContainerList(context.Background(), container.ListOptions{Filters: filters.NewArgs(
			filters.Arg("label", "com.docker.compose.project="+project), filters.Arg("health", "healthy"))})
		if err != nil {
			f.b.Fatal(err)
		}
		if len(list) == f.services && f.composeID(list) != old {
			return
		}
		if time.Since(start) > 5*time.Minute {
			f.b.Fatalf("%s: stack not healthy within 5 minutes", project)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// composeID is the ID of the changed service's container in list.
func (f *benchFixture) composeID(list []container.Summary) string {
	for _, c := range list {
		if c.Labels["com.docker.compose.service"] == f.changed {
			return c.ID
		}
	}
	return ""
}

// compose times one scenario of docker compose, and leaves nothing running.
func (f *benchFixture) compose(scenario string) time.Duration {
	defer f.composeRun("0", "down", "-v")
	rev := f.nextRev()
	if scenario == "cold" {
		return f.composeUp(rev, "")
	}
	f.composeUp(rev, "")
	old := ""
	if scenario == "changed" {
		list, err := f.api.ContainerList(context.Background(), container.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "com.docker.compose.project="+f.peer))})
		if err != nil {
			f.b.Fatal(err)
		}
		old, rev = f.composeID(list), f.nextRev()
	}
	return f.composeUp(rev, old)
}
