package engine_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/dockertest"
	"github.com/vmctl/vmctl/internal/engine"
	"github.com/vmctl/vmctl/internal/stack"
)

type fixture struct {
	t       *testing.T
	api     *client.Client
	eng     *engine.Engine
	project string
	env     map[string]string
}

func newFixture(t *testing.T) *fixture {
	api := dockertest.Client(t)
	f := &fixture{
		t:       t,
		api:     api,
		eng:     engine.New(api, engine.WithProbeInterval(100*time.Millisecond)),
		project: fmt.Sprintf("vmctltest%d", time.Now().UnixNano()%1e9),
		env: map[string]string{
			"FIXTURE_IMAGE":   dockertest.FixtureImage,
			"FIXTURE_CONTEXT": dockertest.FixtureContext(t),
			"API_PORT":        dockertest.FreePort(t),
			"WEB_PORT":        dockertest.FreePort(t),
		},
	}
	t.Cleanup(func() {
		_ = f.eng.Down(context.Background(), f.project, engine.DownOptions{Volumes: true})
	})
	return f
}

func (f *fixture) stack(profiles ...string) *stack.Stack {
	f.t.Helper()
	st, err := stack.Load(context.Background(), stack.LoadOptions{
		Files:       []string{"testdata/fixture.yaml"},
		ProjectName: f.project,
		Env:         f.env,
		Profiles:    profiles,
	})
	require.NoError(f.t, err)
	return st
}

func (f *fixture) up(opts engine.UpOptions, profiles ...string) ([]engine.ServiceStatus, error) {
	if opts.WaitTimeout == 0 {
		opts.WaitTimeout = time.Minute
	}
	return f.eng.Up(context.Background(), f.stack(profiles...), opts)
}

// ids maps service to container ID for every container of the project.
func (f *fixture) ids() map[string]string {
	f.t.Helper()
	list, err := f.api.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", engine.LabelProject+"="+f.project))})
	require.NoError(f.t, err)
	out := map[string]string{}
	for _, c := range list {
		out[c.Labels[engine.LabelService]] = c.ID
	}
	return out
}

// started maps service to when its container last started: a restart, or a
// job run again, moves it.
func (f *fixture) started() map[string]string {
	f.t.Helper()
	out := map[string]string{}
	for svc, id := range f.ids() {
		c, err := f.api.ContainerInspect(context.Background(), id)
		require.NoError(f.t, err)
		out[svc] = c.State.StartedAt
	}
	return out
}

func (f *fixture) networks() []network.Summary {
	nets, err := f.api.NetworkList(context.Background(), network.ListOptions{Filters: filters.NewArgs(filters.Arg("label", engine.LabelProject+"="+f.project))})
	require.NoError(f.t, err)
	return nets
}

func (f *fixture) volumes() []*volume.Volume {
	vols, err := f.api.VolumeList(context.Background(), volume.ListOptions{Filters: filters.NewArgs(filters.Arg("label", engine.LabelProject+"="+f.project))})
	require.NoError(f.t, err)
	return vols.Volumes
}

func byService(rows []engine.ServiceStatus) map[string]engine.ServiceStatus {
	m := map[string]engine.ServiceStatus{}
	for _, r := range rows {
		m[r.Service] = r
	}
	return m
}

func TestUpPsLogsDown(t *testing.T) {
	f := newFixture(t)
	// A container of another project must survive our down.
	other := newFixture(t)
	_, err := other.up(engine.UpOptions{Services: []string{"db"}})
	require.NoError(t, err)

	rows, err := f.up(engine.UpOptions{})
	require.NoError(t, err)
	got := byService(rows)
	require.Len(t, got, 4)
	assert.Equal(t, "healthy", got["db"].Health)
	assert.Equal(t, "exited (0)", got["migrate"].Health)
	assert.Equal(t, "healthy", got["api"].Health)
	assert.Equal(t, "healthy", got["web"].Health)
	assert.Equal(t, "http://127.0.0.1:"+f.env["API_PORT"]+"/health", got["api"].URL)
	for _, s := range []string{"db", "api", "web"} {
		assert.Equal(t, "running", got[s].State, s)
		assert.Equal(t, "created", got[s].Action, s)
	}

	ps, err := f.eng.PS(context.Background(), f.stack())
	require.NoError(t, err)
	assert.Len(t, ps, 4)
	assert.Contains(t, byService(ps)["api"].Ports, "127.0.0.1:"+f.env["API_PORT"]+"->8080/tcp")

	var logs strings.Builder
	require.NoError(t, f.eng.Logs(context.Background(), f.stack(), &logs, engine.LogsOptions{Services: []string{"api", "db"}}))
	assert.Contains(t, logs.String(), "api | ")
	assert.Contains(t, logs.String(), "db  | ")
	assert.Contains(t, logs.String(), "listening on :8080")
	assert.NotContains(t, logs.String(), "web | ")

	require.Len(t, f.networks(), 1)
	require.Len(t, f.volumes(), 1)
	require.NoError(t, f.eng.Down(context.Background(), f.project, engine.DownOptions{}))
	assert.Empty(t, f.ids())
	assert.Empty(t, f.networks())
	assert.Len(t, f.volumes(), 1, "volumes stay without -v")
	require.NoError(t, f.eng.Down(context.Background(), f.project, engine.DownOptions{Volumes: true}))
	assert.Empty(t, f.volumes())

	assert.Len(t, other.ids(), 1, "down must not touch another project")
}

func TestUpIsIdempotentAndRecreatesOnlyWhatChanged(t *testing.T) {
	f := newFixture(t)
	_, err := f.up(engine.UpOptions{})
	require.NoError(t, err)
	first, firstStarted := f.ids(), f.started()

	rows, err := f.up(engine.UpOptions{})
	require.NoError(t, err)
	assert.Equal(t, first, f.ids(), "nothing changed, nothing recreated")
	assert.Equal(t, firstStarted, f.started(), "nothing started again: not the servers, not the completed job")
	for _, r := range rows {
		assert.Equal(t, "unchanged", r.Action, r.Service)
	}
	assert.Equal(t, "exited (0)", byService(rows)["migrate"].Health)
	assert.Equal(t, "healthy", byService(rows)["api"].Health)

	f.env["API_VERSION"] = "2"
	rows, err = f.up(engine.UpOptions{})
	require.NoError(t, err)
	second, secondStarted := f.ids(), f.started()
	assert.NotEqual(t, first["api"], second["api"], "the changed service is recreated")
	for _, s := range []string{"db", "migrate", "web"} {
		assert.Equal(t, first[s], second[s], "%s is kept", s)
		assert.Equal(t, firstStarted[s], secondStarted[s], "%s is not restarted", s)
	}
	assert.Equal(t, "recreated", byService(rows)["api"].Action)
	assert.Equal(t, "healthy", byService(rows)["api"].Health)
}

func TestRecreatedDependencyRestartsDependentsThatAskForIt(t *testing.T) {
	f := newFixture(t)
	_, err := f.up(engine.UpOptions{})
	require.NoError(t, err)
	first, firstStarted := f.ids(), f.started()

	f.env["DB_DELAY"] = "100ms"
	rows, err := f.up(engine.UpOptions{})
	require.NoError(t, err)
	got := byService(rows)
	assert.Equal(t, "recreated", got["db"].Action)
	assert.Equal(t, "restarted", got["api"].Action, "api depends on db with restart: true")
	assert.Equal(t, "unchanged", got["web"].Action)
	assert.Equal(t, "unchanged", got["migrate"].Action, "migrate depends on db without restart: its run stands")
	assert.Equal(t, first["api"], f.ids()["api"], "a restart keeps the container")
	started := f.started()
	assert.NotEqual(t, firstStarted["api"], started["api"])
	for _, s := range []string{"migrate", "web"} {
		assert.Equal(t, firstStarted[s], started[s], "%s is not restarted", s)
	}
}

func TestUnhealthyServiceFailsUpWithItsLogs(t *testing.T) {
	f := newFixture(t)
	f.env["API_FAIL"] = "unhealthy"
	_, err := f.up(engine.UpOptions{WaitTimeout: 6 * time.Second})
	var se *engine.ServiceError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "api", se.Service, "the root cause, not its dependents")
	assert.Contains(t, se.Error(), "not healthy within 6s")
	assert.Contains(t, se.Error(), "503")
	assert.Contains(t, se.Logs, "listening on :8080")
}

func TestExitingServiceFailsFast(t *testing.T) {
	f := newFixture(t)
	f.env["DB_FAIL"] = "exit"
	start := time.Now()
	_, err := f.up(engine.UpOptions{WaitTimeout: time.Minute})
	var se *engine.ServiceError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "db", se.Service)
	assert.Contains(t, se.Error(), "exited with code 3")
	assert.Contains(t, se.Logs, "failing on purpose")
	assert.Less(t, time.Since(start), 30*time.Second, "an exited container does not wait out the timeout")
}

func TestFailedJobBlocksItsDependents(t *testing.T) {
	f := newFixture(t)
	f.env["MIGRATE_EXIT"] = "4"
	_, err := f.up(engine.UpOptions{WaitTimeout: 20 * time.Second})
	var se *engine.ServiceError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "migrate", se.Service)
	assert.Contains(t, se.Error(), "exited with code 4")
	_, apiCreated := f.ids()["api"]
	assert.False(t, apiCreated, "api waits for migrate to complete successfully")
}

func TestPortInUseRefusesBeforeAnythingChanges(t *testing.T) {
	f := newFixture(t)
	l, err := net.Listen("tcp", "127.0.0.1:"+f.env["WEB_PORT"])
	require.NoError(t, err)
	defer l.Close()

	_, err = f.up(engine.UpOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "host port "+f.env["WEB_PORT"]+" is already in use by process")
	assert.Contains(t, err.Error(), "(pid ")
	assert.Empty(t, f.ids())
	assert.Empty(t, f.networks())
	assert.Empty(t, f.volumes())
}

func TestPortHeldByAnotherProjectNamesTheContainer(t *testing.T) {
	f := newFixture(t)
	_, err := f.up(engine.UpOptions{Services: []string{"web"}})
	require.NoError(t, err)
	g := newFixture(t)
	g.env["WEB_PORT"] = f.env["WEB_PORT"]
	_, err = g.up(engine.UpOptions{Services: []string{"web"}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "in use by container "+f.project+"-web-1 (project "+f.project+")")
	assert.Empty(t, g.ids())
}

func TestCancelRemovesWhatTheRunCreated(t *testing.T) {
	f := newFixture(t)
	f.env["DB_DELAY"] = "1m"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := f.eng.Up(ctx, f.stack(), engine.UpOptions{WaitTimeout: 2 * time.Minute})
		done <- err
	}()
	require.Eventually(t, func() bool { return len(f.ids()) > 0 }, 30*time.Second, 50*time.Millisecond)
	cancel()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(60 * time.Second):
		t.Fatal("up did not return after cancel")
	}
	assert.Empty(t, f.ids(), "no half-created containers")
	assert.Empty(t, f.networks())
	assert.Empty(t, f.volumes())
}

func TestGPUModes(t *testing.T) {
	f := newFixture(t)
	var notes strings.Builder
	_, err := f.up(engine.UpOptions{Services: []string{"gpu"}, GPU: engine.GPUOn, GPUReady: &engine.GPUVerdict{Reason: "no nvidia runtime"}}, "gpu")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--gpu on: gpu reserve a GPU but this host cannot provide one: no nvidia runtime")
	assert.Empty(t, f.ids(), "refused before anything starts")

	rows, err := f.up(engine.UpOptions{Services: []string{"gpu"}, GPU: engine.GPUAuto, GPUReady: &engine.GPUVerdict{Reason: "no nvidia runtime"}, Notices: &notes}, "gpu")
	require.NoError(t, err)
	assert.Equal(t, "off", byService(rows)["gpu"].GPU)
	assert.Contains(t, notes.String(), "gpu: auto: gpu run in CPU mode: no nvidia runtime")
	c, err := f.api.ContainerInspect(context.Background(), f.ids()["gpu"])
	require.NoError(t, err)
	assert.Contains(t, c.Config.Env, "OPENVOICE_DEVICE=cpu")
	assert.Empty(t, c.HostConfig.DeviceRequests)
}

func TestUnknownServiceChangesNothing(t *testing.T) {
	f := newFixture(t)
	_, err := f.up(engine.UpOptions{Services: []string{"nope"}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `no such service: "nope"`)
	assert.Empty(t, f.ids())
	assert.True(t, errors.Is(err, err))
}

func TestBuildWithExternalDockerfileAndNamedContext(t *testing.T) {
	api := dockertest.Client(t)
	ctxDir := dockertest.FixtureContext(t)
	extDir, err := filepath.Abs("testdata/extctx")
	require.NoError(t, err)
	st, err := stack.Load(context.Background(), stack.LoadOptions{
		Files: []string{"testdata/extctx.yaml"}, ProjectName: "vmctlextctx",
		Env: map[string]string{"FIXTURE_CONTEXT": ctxDir, "EXTCTX_DIR": extDir},
	})
	require.NoError(t, err)
	ids, err := engine.New(api).Build(context.Background(), st, engine.BuildOptions{Force: true})
	require.NoError(t, err)
	require.NotEmpty(t, ids["app"])
	img, err := api.ImageInspect(context.Background(), "vmctl-extctx:test")
	require.NoError(t, err)
	assert.Equal(t, ids["app"], img.ID)
	assert.Equal(t, []string{"/vmctl-demo"}, []string(img.Config.Entrypoint))
}

// vmctl's config hash is its own label: under compose's, docker compose and
// vmctl would each recreate every container the other made.
func TestUpLabelsContainersWithVmctlsConfigHash(t *testing.T) {
	f := newFixture(t)
	_, err := f.up(engine.UpOptions{Services: []string{"db"}})
	require.NoError(t, err)
	c, err := f.api.ContainerInspect(context.Background(), f.ids()["db"])
	require.NoError(t, err)
	assert.Equal(t, engine.LabelConfigHash, "dev.vmctl.config-hash")
	assert.NotEmpty(t, c.Config.Labels["dev.vmctl.config-hash"])
	assert.NotContains(t, c.Config.Labels, "com.docker.compose.config-hash")
}

// A project of the same name that docker compose created is not vmctl's:
// down -v and up --remove-orphans refuse, naming the project, and change nothing.
func TestForeignProjectIsLeftAlone(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	img := dockertest.FixtureImageBuilt(t, f.api)
	composeLabels := func(extra map[string]string) map[string]string {
		l := map[string]string{engine.LabelProject: f.project, "com.docker.compose.version": "2.20.0"}
		for k, v := range extra {
			l[k] = v
		}
		return l
	}
	vol, err := f.api.VolumeCreate(ctx, volume.CreateOptions{Name: f.project + "_data", Labels: composeLabels(map[string]string{engine.LabelVolume: "data"})})
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.api.VolumeRemove(context.Background(), vol.Name, true) })
	var ids []string
	for _, svc := range []string{"db", "retired"} { // one the stack has, one an orphan to it
		c, err := f.api.ContainerCreate(ctx, &container.Config{Image: img, Labels: composeLabels(map[string]string{
			engine.LabelService: svc, engine.LabelOneOff: "False", engine.LabelNumber: "1", "com.docker.compose.config-hash": "composehash",
		})}, &container.HostConfig{Binds: []string{vol.Name + ":/data"}}, nil, nil, f.project+"-"+svc+"-1")
		require.NoError(t, err)
		ids = append(ids, c.ID)
		t.Cleanup(func() {
			_ = f.api.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
		})
	}
	untouched := func() {
		t.Helper()
		assert.ElementsMatch(t, ids, mapValues(f.ids()), "the other tool's containers stay, and no others appear")
		require.Len(t, f.volumes(), 1)
		assert.Equal(t, vol.Name, f.volumes()[0].Name)
		assert.Empty(t, f.networks())
	}

	tests := []struct {
		name string
		run  func() error
		op   string
	}{
		{"down -v", func() error { return f.eng.Down(ctx, f.project, engine.DownOptions{Volumes: true}) }, "down"},
		{"down", func() error { return f.eng.Down(ctx, f.project, engine.DownOptions{}) }, "down"},
		{"up --remove-orphans", func() error {
			_, err := f.up(engine.UpOptions{RemoveOrphans: true})
			return err
		}, "up"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			var fe *engine.ForeignProjectError
			require.ErrorAs(t, err, &fe)
			assert.Contains(t, err.Error(), tt.op+`: project "`+f.project+`" was created by another tool (docker compose), not vmctl`)
			assert.NotContains(t, err.Error(), "\n")
			untouched()
		})
	}
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
