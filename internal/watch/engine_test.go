package watch_test

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/dockertest"
	"github.com/vmctl/vmctl/internal/engine"
	"github.com/vmctl/vmctl/internal/stack"
	"github.com/vmctl/vmctl/internal/watch"
)

const contextDockerfile = "FROM scratch\nCOPY vmctl-demo /vmctl-demo\nCOPY version.txt /version.txt\nENTRYPOINT [\"/vmctl-demo\"]\n"

// readFile reads one file out of a container through the Docker API.
func readFile(api *client.Client, id, path string) (string, error) {
	rc, _, err := api.CopyFromContainer(context.Background(), id, path)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	if _, err := tr.Next(); err != nil {
		return "", err
	}
	b, err := io.ReadAll(tr)
	return string(b), err
}

func containerIDs(t *testing.T, api *client.Client, project string) map[string]string {
	t.Helper()
	list, err := api.ContainerList(context.Background(), container.ListOptions{Filters: filters.NewArgs(filters.Arg("label", engine.LabelProject+"="+project))})
	require.NoError(t, err)
	out := map[string]string{}
	for _, c := range list {
		out[c.Labels[engine.LabelService]] = c.ID
	}
	return out
}

// TestWatchOnTheEngine runs the stack, then syncs, rebuilds and fails a
// rebuild through a real Docker Engine, in that order, on one stack.
func TestWatchOnTheEngine(t *testing.T) {
	api := dockertest.Client(t)
	fixture := dockertest.FixtureContext(t)
	project := fmt.Sprintf("vmctlwatch%d", time.Now().UnixNano()%1e9)
	img := project + ":test"

	// The test's own context and image: the rebuild must not change the
	// fixture image other packages' tests run.
	ctxDir, syncDir, confDir := t.TempDir(), t.TempDir(), t.TempDir()
	bin, err := os.ReadFile(filepath.Join(fixture, "vmctl-demo"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(ctxDir, "vmctl-demo"), bin, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(contextDockerfile), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(ctxDir, "version.txt"), []byte("1"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(syncDir, "before.txt"), []byte("on disk before watch"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(confDir, "app.conf"), []byte("level=1"), 0o644))

	port := dockertest.FreePort(t)
	st, err := stack.Load(context.Background(), stack.LoadOptions{
		Files: []string{"testdata/watch.yaml"}, ProjectName: project,
		Env: map[string]string{"WATCH_IMAGE": img, "WATCH_CONTEXT": ctxDir, "SYNC_DIR": syncDir, "CONF_DIR": confDir, "APP_PORT": port},
	})
	require.NoError(t, err)
	eng := engine.New(api, engine.WithProbeInterval(100*time.Millisecond))
	var images []string
	t.Cleanup(func() {
		for _, id := range images {
			_, _ = api.ImageRemove(context.Background(), id, image.RemoveOptions{Force: true, PruneChildren: true})
		}
	})
	t.Cleanup(func() { _ = eng.Down(context.Background(), project, engine.DownOptions{Volumes: true}) })
	imageID := func() string {
		id, err := eng.ImageID(context.Background(), img)
		require.NoError(t, err)
		images = append(images, id)
		return id
	}

	_, err = eng.Up(context.Background(), st, engine.UpOptions{WaitTimeout: time.Minute})
	require.NoError(t, err)
	firstImage := imageID()
	before := containerIDs(t, api, project)
	require.Len(t, before, 2)

	rules, err := watch.Rules(st, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{}
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- watch.Run(ctx, st, api, eng, rules, watch.Options{Out: out, WaitTimeout: time.Minute, Ready: func() { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("watch ended before it was ready: %v", err)
	}
	// A burst may arrive as one batch or two: lines are found by what
	// they say, not by their number.
	printed := func(re string) func() bool {
		return func() bool { return regexp.MustCompile(`(?m)` + re).MatchString(out.String()) }
	}

	// initial_sync: what was on disk is in the container once watch is ready.
	got, err := readFile(api, before["app"], "/srv/sync/before.txt")
	require.NoError(t, err)
	assert.Equal(t, "on disk before watch", got)
	assert.Equal(t, "app  synced 1 file\n", out.String())

	// sync: a change under the path appears in the running container.
	require.NoError(t, os.MkdirAll(filepath.Join(syncDir, "sub"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(syncDir, "sub", "hello.txt"), []byte("hello from the host"), 0o644))
	eventually(t, "the synced file", func() bool {
		got, err := readFile(api, before["app"], "/srv/sync/sub/hello.txt")
		return err == nil && got == "hello from the host"
	})
	eventually(t, "the sync line", printed(`^app  synced 1 file\napp  synced \d+ files?$`))

	// sync+restart: the file is copied, then the container restarted (the
	// same container: its ID stays, its start time moves).
	started := func() string {
		c, err := api.ContainerInspect(context.Background(), before["app"])
		require.NoError(t, err)
		return c.State.StartedAt
	}
	firstStart := started()
	require.NoError(t, os.WriteFile(filepath.Join(confDir, "app.conf"), []byte("level=2"), 0o644))
	eventually(t, "the restart line", printed(`^app  synced 1 file, restarted$`))
	assert.NotEqual(t, firstStart, started())
	got, err = readFile(api, before["app"], "/etc/app.conf")
	require.NoError(t, err)
	assert.Equal(t, "level=2", got)
	assert.Equal(t, before, containerIDs(t, api, project))

	// rebuild: a change in the build context replaces app's container only.
	require.NoError(t, os.WriteFile(filepath.Join(ctxDir, "version.txt"), []byte("2"), 0o644))
	eventually(t, "the rebuild line", printed(`^app  rebuilt in \d+\.\d s, healthy$`))
	after := containerIDs(t, api, project)
	assert.NotEqual(t, before["app"], after["app"], "app is recreated")
	assert.Equal(t, before["other"], after["other"], "other keeps its container")
	got, err = readFile(api, after["app"], "/version.txt")
	require.NoError(t, err)
	assert.Equal(t, "2", got)
	assert.NotEqual(t, firstImage, imageID())

	// A broken build: the reason in one line, the old container still serving.
	require.NoError(t, os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM scratch\nCOPY missing.txt /missing.txt\n"), 0o644))
	eventually(t, "the failure line", printed(`^app  rebuild failed, the previous container keeps running: build app: .*missing\.txt.*: fix it and save again$`))
	assert.Equal(t, after, containerIDs(t, api, project), "nothing recreated")
	resp, err := http.Get("http://127.0.0.1:" + port + "/health")
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	// Ctrl-C: watching stops, the stack stays up.
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
	assert.Equal(t, after, containerIDs(t, api, project))
}
