package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/dockertest"
	"github.com/vmctl/vmctl/internal/engine"
)

// run executes vmctl in-process with captured streams.
func run(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Run(context.Background(), testFactory(env, &out, &errOut), args)
	return code, out.String(), errOut.String()
}

// testFactory is a factory whose environment is env and whose streams are these.
func testFactory(env map[string]string, out, errOut io.Writer) *Factory {
	f := NewFactory(&IOStreams{In: strings.NewReader(""), Out: out, ErrOut: errOut})
	f.Environ = func() []string {
		var kv []string
		for k, v := range env {
			kv = append(kv, k+"="+v)
		}
		return kv
	}
	f.LookupEnv = func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	return f
}

func TestVersion(t *testing.T) {
	code, out, _ := run(t, nil, "version")
	require.Equal(t, ExitOK, code)
	assert.Regexp(t, `^vmctl dev .*go1\.\d+.* linux/`, out)

	code, out, _ = run(t, nil, "version", "--output", "json")
	require.Equal(t, ExitOK, code)
	var v versionInfo
	require.NoError(t, json.Unmarshal([]byte(out), &v))
	assert.Equal(t, "dev", v.Version)
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"up", "--bogus"},
		{"up", "--gpu", "maybe", "-f", "../../compose/demo.yaml"},
		{"ps", "--output", "xml", "-f", "../../compose/demo.yaml"},
		{"nosuchcommand"},
	} {
		code, _, errOut := run(t, nil, args...)
		assert.Equal(t, ExitUsage, code, args)
		assert.Contains(t, errOut, "vmctl: ", args)
	}
}

func TestConfigPrintsTheResolvedStack(t *testing.T) {
	code, out, _ := run(t, nil, "-f", "../../compose/demo.yaml", "config")
	require.Equal(t, ExitOK, code)
	assert.Contains(t, out, "name: vmapp-demo")
	assert.Contains(t, out, "condition: service_healthy")

	code, out, _ = run(t, nil, "-f", "../../compose/demo.yaml", "config", "--services")
	require.Equal(t, ExitOK, code)
	assert.Equal(t, "backend\nfrontend\nopenvoice\npostgres\nredis\nvoicevox\n", out)
}

func TestBadInputIsOneLineAndChangesNothing(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "local.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("kind: local\napp_sorce: x\n"), 0o644))
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"unknown service", nil, []string{"-f", "../../compose/demo.yaml", "up", "nope"}, `vmctl: no such service: "nope"`},
		{"missing compose file", nil, []string{"-f", "nope.yaml", "up"}, "vmctl: load compose file nope.yaml: no such file or directory"},
		{"unreachable engine", map[string]string{"DOCKER_HOST": "unix:///nonexistent/docker.sock"}, []string{"-f", "../../compose/demo.yaml", "ps"}, "vmctl: cannot reach the Docker Engine at unix:///nonexistent/docker.sock"},
		{"bad environment file", nil, []string{"--env-dir", dir, "-f", "../../compose/demo.yaml", "config"}, "local.yaml:2: app_sorce"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != nil {
				for k, v := range tt.env {
					t.Setenv(k, v)
				}
			}
			code, out, errOut := run(t, tt.env, tt.args...)
			assert.Equal(t, ExitError, code)
			assert.Empty(t, out)
			assert.Contains(t, errOut, tt.want)
			assert.Equal(t, 1, strings.Count(strings.TrimSpace(errOut), "\n")+1, "one line: %q", errOut)
		})
	}
}

func fixtureEnv(t *testing.T) map[string]string {
	return map[string]string{
		"FIXTURE_IMAGE":   dockertest.FixtureImage,
		"FIXTURE_CONTEXT": dockertest.FixtureContext(t),
		"API_PORT":        dockertest.FreePort(t),
		"WEB_PORT":        dockertest.FreePort(t),
		"XDG_STATE_HOME":  t.TempDir(),
	}
}

func projectContainers(t *testing.T, project string) []container.Summary {
	api := dockertest.Client(t)
	list, err := api.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", engine.LabelProject+"="+project))})
	require.NoError(t, err)
	return list
}

func TestUpPsDownThroughTheCLI(t *testing.T) {
	dockertest.Client(t)
	env := fixtureEnv(t)
	project := "vmctlcli" + strings.ToLower(t.Name()[4:8])
	args := []string{"-f", "../engine/testdata/fixture.yaml", "-p", project}
	t.Cleanup(func() { run(t, env, append(args, "down", "-v")...) })

	code, out, errOut := run(t, env, append(args, "up", "--progress", "json")...)
	require.Equal(t, ExitOK, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	assert.Equal(t, "SERVICE\tSTATE\tHEALTH\tURL", lines[0], "tab-separated when piped")
	assert.Contains(t, out, "api\trunning\thealthy\thttp://127.0.0.1:"+env["API_PORT"]+"/health")
	assert.Contains(t, errOut, `"resource":"api","status":"done","text":"Healthy"`, "JSON progress events")

	code, out, _ = run(t, env, append(args, "ps", "--output", "json")...)
	require.Equal(t, ExitOK, code)
	var rows []engine.PSRow
	require.NoError(t, json.Unmarshal([]byte(out), &rows))
	assert.Len(t, rows, 4)
	// Docker checks every 30 s, so it still says "starting": ps shows what up saw, and says so.
	for _, r := range rows {
		switch r.Service {
		case "api", "web":
			assert.Equal(t, "healthy", r.Health, r.Service)
			assert.Equal(t, "vmctl", r.HealthSource, r.Service)
			assert.NotNil(t, r.ObservedAt, r.Service)
		case "migrate":
			assert.Empty(t, r.HealthSource)
		}
	}
	code, out, _ = run(t, env, append(args, "ps")...)
	require.Equal(t, ExitOK, code)
	assert.Regexp(t, `(?m)^api\t\S+\trunning\thealthy\t`, out)
	// A restart resets Docker's verdict after vmctl's: Docker's is the newer one again.
	for _, r := range rows {
		if r.Service == "api" {
			require.NoError(t, dockertest.Client(t).ContainerRestart(context.Background(), r.ID, container.StopOptions{}))
		}
	}
	code, out, _ = run(t, env, append(args, "ps", "--output", "json")...)
	require.Equal(t, ExitOK, code)
	var after []engine.PSRow
	require.NoError(t, json.Unmarshal([]byte(out), &after))
	for _, r := range after {
		if r.Service == "api" {
			assert.Equal(t, "starting", r.Health)
			assert.Equal(t, "docker", r.HealthSource)
		}
	}

	code, out, _ = run(t, env, append(args, "logs", "--tail", "2", "web")...)
	require.Equal(t, ExitOK, code)
	assert.Regexp(t, `(?m)^web \| .*listening on :8080 `, out)
	assert.Len(t, strings.Split(strings.TrimSpace(out), "\n"), 2)

	code, _, errOut = run(t, env, append(args, "down", "-v")...)
	require.Equal(t, ExitOK, code, errOut)
	assert.Empty(t, projectContainers(t, project))
}

func TestFailingUpPrintsTheServiceAndItsLogs(t *testing.T) {
	dockertest.Client(t)
	env := fixtureEnv(t)
	env["DB_FAIL"] = "exit"
	project := "vmctlclifail"
	args := []string{"-f", "../engine/testdata/fixture.yaml", "-p", project}
	t.Cleanup(func() { run(t, env, append(args, "down", "-v")...) })
	code, _, errOut := run(t, env, append(args, "up", "--progress", "quiet")...)
	assert.Equal(t, ExitError, code)
	assert.Contains(t, errOut, "vmctl: service db: container exited with code 3")
	assert.Contains(t, errOut, "last log lines of db:\n")
	assert.Contains(t, errOut, "failing on purpose")
}

// Ctrl-C on the real binary: exit 130, and nothing of the run left behind.
func TestCtrlCDuringUp(t *testing.T) {
	api := dockertest.Client(t)
	bin := filepath.Join(t.TempDir(), "vmctl")
	build := exec.Command("go", "build", "-o", bin, "./cmd/vmctl")
	build.Dir = dockertest.RepoRoot()
	out, err := build.CombinedOutput()
	require.NoError(t, err, string(out))

	env := fixtureEnv(t)
	env["DB_DELAY"] = "5m"
	project := "vmctlclictrlc"
	cmd := exec.Command(bin, "-f", "../engine/testdata/fixture.yaml", "-p", project, "up", "--progress", "plain")
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { run(t, env, "-f", "../engine/testdata/fixture.yaml", "-p", project, "down", "-v") })

	require.Eventually(t, func() bool { return len(projectContainers(t, project)) > 0 }, 3*time.Minute, 50*time.Millisecond)
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	err = cmd.Wait()
	var exitErr *exec.ExitError
	require.ErrorAs(t, err, &exitErr, stderr.String())
	assert.Equal(t, ExitCancelled, exitErr.ExitCode(), stderr.String())
	assert.Contains(t, stderr.String(), "vmctl: cancelled")

	assert.Empty(t, projectContainers(t, project), "no half-created containers")
	nets, err := api.NetworkList(context.Background(), network.ListOptions{Filters: filters.NewArgs(filters.Arg("label", engine.LabelProject+"="+project))})
	require.NoError(t, err)
	assert.Empty(t, nets)
}
