package watch_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/engine"
	"github.com/vmctl/vmctl/internal/progress"
	"github.com/vmctl/vmctl/internal/stack"
	"github.com/vmctl/vmctl/internal/watch"
)

// syncBuffer is an io.Writer the test reads while watch writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fakeDocker records what watch copies and restarts.
type fakeDocker struct {
	mu       sync.Mutex
	copies   [][]string // tar entry names of each copy
	restarts int
}

func (f *fakeDocker) ContainerList(context.Context, container.ListOptions) ([]container.Summary, error) {
	return []container.Summary{{ID: "cid"}}, nil
}

func (f *fakeDocker) CopyToContainer(_ context.Context, id, dst string, content io.Reader, _ container.CopyToContainerOptions) error {
	if id != "cid" || dst != "/" {
		return errors.New("unexpected destination")
	}
	var names []string
	tr := tar.NewReader(content)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg {
			names = append(names, h.Name)
		}
	}
	sort.Strings(names)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.copies = append(f.copies, names)
	return nil
}

func (f *fakeDocker) ContainerRestart(context.Context, string, container.StopOptions) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.restarts++
	return nil
}

func (f *fakeDocker) snapshot() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]string(nil), f.copies...)
}

// fakeEngine fails every build, as a broken Dockerfile does.
type fakeEngine struct {
	mu         sync.Mutex
	recreated  int
	buildError error
}

func (f *fakeEngine) Build(context.Context, *stack.Stack, engine.BuildOptions) (map[string]string, error) {
	return nil, f.buildError
}

func (f *fakeEngine) Recreate(context.Context, *stack.Stack, string, time.Duration, progress.Writer) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recreated++
	return "healthy", nil
}

// startWatch runs watch over testdata/watch.yaml until the test ends.
func startWatch(t *testing.T, api watch.Docker, eng watch.Engine) (env map[string]string, out *syncBuffer) {
	t.Helper()
	_, _, env = dirs(t)
	st := load(t, "testdata/watch.yaml", env)
	rules, err := watch.Rules(st, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	out = &syncBuffer{}
	ready := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		// A long debounce, so the test's burst is one batch even on a busy machine.
		errc <- watch.Run(ctx, st, api, eng, rules, watch.Options{Debounce: time.Second, Out: out, Ready: func() { close(ready) }})
	}()
	t.Cleanup(func() {
		cancel()
		<-errc
	})
	select {
	case <-ready:
	case err := <-errc:
		t.Fatalf("watch ended before it was ready: %v", err)
	}
	return env, out
}

// eventually polls cond until a deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestABurstOfChangesIsOneSync(t *testing.T) {
	api := &fakeDocker{}
	env, out := startWatch(t, api, &fakeEngine{})
	syncDir := env["SYNC_DIR"]

	require.NoError(t, os.MkdirAll(filepath.Join(syncDir, "sub"), 0o755))
	for _, name := range []string{"a.txt", "b.txt", "sub/c.txt", "ignored.tmp"} {
		require.NoError(t, os.WriteFile(filepath.Join(syncDir, name), []byte(name), 0o644))
	}
	eventually(t, "the sync line", func() bool { return strings.Contains(out.String(), "app  synced 3 files\n") })
	copies := api.snapshot()
	require.Len(t, copies, 1, out.String())
	assert.Equal(t, []string{"srv/sync/a.txt", "srv/sync/b.txt", "srv/sync/sub/c.txt"}, copies[0])
	assert.Zero(t, api.restarts, "a plain sync does not restart")
}

func TestAFailedBuildSaysWhyAndRecreatesNothing(t *testing.T) {
	eng := &fakeEngine{buildError: errors.New("build app: COPY failed: file not found in build context: missing.txt")}
	env, out := startWatch(t, &fakeDocker{}, eng)
	ctxDir := env["WATCH_CONTEXT"]

	require.NoError(t, os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM scratch\nCOPY missing.txt /\n"), 0o644))
	eventually(t, "the failure line", func() bool { return strings.Contains(out.String(), "\n") })
	assert.Equal(t, "app  rebuild failed, the previous container keeps running: build app: COPY failed: file not found in build context: missing.txt: fix it and save again\n", out.String())
	assert.Zero(t, eng.recreated)
}

func TestIgnoredChangesDoNothing(t *testing.T) {
	api := &fakeDocker{}
	env, out := startWatch(t, api, &fakeEngine{})
	syncDir, ctxDir := env["SYNC_DIR"], env["WATCH_CONTEXT"]
	// Only ignored paths first, then one that counts: the line shows that
	// the ignored ones were never part of a batch.
	require.NoError(t, os.WriteFile(filepath.Join(ctxDir, "debug.log"), nil, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(syncDir, "x.tmp"), nil, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(syncDir, "kept.txt"), nil, 0o644))
	eventually(t, "the sync line", func() bool { return strings.Contains(out.String(), "\n") })
	assert.Equal(t, "app  synced 1 file\n", out.String())
}

func TestSyncRestartCopiesThenRestarts(t *testing.T) {
	api := &fakeDocker{}
	env, out := startWatch(t, api, &fakeEngine{})
	require.NoError(t, os.WriteFile(filepath.Join(env["CONF_DIR"], "app.conf"), []byte("x=1"), 0o644))
	eventually(t, "the line", func() bool { return strings.Contains(out.String(), "\n") })
	assert.Equal(t, "app  synced 1 file, restarted\n", out.String())
	assert.Equal(t, [][]string{{"etc/app.conf"}}, api.snapshot())
	assert.Equal(t, 1, api.restarts)
}

func TestCancelEndsWatching(t *testing.T) {
	_, _, env := dirs(t)
	st := load(t, "testdata/watch.yaml", env)
	rules, err := watch.Rules(st, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	err = watch.Run(ctx, st, &fakeDocker{}, &fakeEngine{}, rules, watch.Options{Ready: cancel})
	assert.ErrorIs(t, err, context.Canceled)
}
