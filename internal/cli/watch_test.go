package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/dockertest"
)

func TestWatchRefusesStacksWithoutRules(t *testing.T) {
	env := fixtureEnv(t)
	code, _, errOut := run(t, env, "-f", "../engine/testdata/fixture.yaml", "watch")
	assert.Equal(t, ExitError, code)
	assert.Equal(t, "vmctl: cannot watch: no service declares develop.watch rules: add some to a service (develop: watch: - path: ./src, action: sync, target: /app/src)\n", errOut)

	code, _, errOut = run(t, env, "-f", "../engine/testdata/fixture.yaml", "up", "--watch")
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, errOut, "vmctl: --watch: no selected service declares develop.watch rules")

	code, _, errOut = run(t, nil, "-f", "../../compose/demo.yaml", "watch", "postgres")
	assert.Equal(t, ExitError, code)
	assert.Contains(t, errOut, "vmctl: cannot watch: service postgres declares no develop.watch rules")
}

// up --watch, and watch on a stack that is not up, then Ctrl-C: exit 130
// and the stack left running.
func TestWatchThenCancelLeavesTheStackUp(t *testing.T) {
	dockertest.Client(t)
	// up starts the whole stack; watch only what it watches (and its dependencies).
	t.Run("up --watch", func(t *testing.T) { watchThenCancel(t, []string{"up", "--watch"}, 2) })
	t.Run("watch starts it", func(t *testing.T) { watchThenCancel(t, []string{"watch"}, 1) })
}

func watchThenCancel(t *testing.T, cmd []string, containers int) {
	env := map[string]string{
		"WATCH_IMAGE":   dockertest.FixtureImage,
		"WATCH_CONTEXT": dockertest.FixtureContext(t),
		"SYNC_DIR":      t.TempDir(),
		"CONF_DIR":      t.TempDir(),
		"APP_PORT":      dockertest.FreePort(t),
	}
	require.NoError(t, os.WriteFile(filepath.Join(env["CONF_DIR"], "app.conf"), nil, 0o644))
	project := "vmctlcliwatch" + cmd[0]
	args := []string{"-f", "../watch/testdata/watch.yaml", "-p", project}
	t.Cleanup(func() { run(t, env, append(args, "down", "-v")...) })

	var out, errOut lockedBuffer
	f := testFactory(env, &out, &errOut)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- Run(ctx, f, append(append(args, "--progress", "quiet"), cmd...)) }()

	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(errOut.String(), "watching app (3 rules); Ctrl-C stops watching and leaves the stack up\n") {
		select {
		case code := <-done:
			t.Fatalf("%s ended with %d: %s", cmd, code, errOut.String())
		default:
		}
		require.False(t, time.Now().After(deadline), "not watching: %s", errOut.String())
		time.Sleep(50 * time.Millisecond)
	}
	assert.Contains(t, out.String(), "app\trunning\thealthy", "up's table first")
	if cmd[0] == "watch" {
		assert.Contains(t, errOut.String(), "app not running: starting it first\n")
	}
	cancel()
	assert.Equal(t, ExitCancelled, <-done)
	assert.Contains(t, errOut.String(), "stopped watching; the stack is still up (vmctl down stops it)\nvmctl: cancelled\n")
	list := projectContainers(t, project)
	require.Len(t, list, containers)
	for _, c := range list {
		assert.Equal(t, container.StateRunning, c.State)
	}
}
