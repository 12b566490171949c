package stack_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/stack"
)

func load(t *testing.T, file string, env map[string]string) *stack.Stack {
	t.Helper()
	st, err := stack.Load(context.Background(), stack.LoadOptions{Files: []string{file}, Env: env})
	require.NoError(t, err)
	return st
}

func appEnv(t *testing.T) map[string]string {
	return map[string]string{"VMCTL_APP_SOURCE": t.TempDir(), "VMCTL_IMAGES": "/images"}
}

// The real stack and the demo share the Video Message App's topology.
func TestShippedStacksHaveTheAppTopology(t *testing.T) {
	for _, file := range []string{"../../compose/compose.yaml", "../../compose/demo.yaml"} {
		t.Run(filepath.Base(file), func(t *testing.T) {
			st := load(t, file, appEnv(t))
			assert.Equal(t, []string{"backend", "frontend", "openvoice", "postgres", "redis", "voicevox"}, st.Names())

			want := map[string]struct {
				port uint32
				path string
			}{
				"frontend":  {55434, "/"},
				"backend":   {55433, "/health"},
				"voicevox":  {50021, "/version"},
				"openvoice": {8001, "/health"},
			}
			for svc, w := range want {
				h, ok := st.Health(svc)
				require.True(t, ok, svc)
				assert.Equal(t, w.port, h.ContainerPort, svc)
				assert.Equal(t, w.path, h.Path, svc)
				assert.Equal(t, "127.0.0.1", h.HostIP, "%s publishes on loopback only", svc)
			}

			gpu := stack.GPURequests(st.Project.Services["openvoice"])
			require.Len(t, gpu, 1)
			assert.Equal(t, "nvidia", gpu[0].Driver)
			assert.EqualValues(t, 1, gpu[0].Count)
			assert.Equal(t, map[string]string{"OPENVOICE_DEVICE": "cpu"}, st.Extension("openvoice").CPUFallback.Environment)
			for _, s := range []string{"frontend", "backend", "voicevox", "postgres", "redis"} {
				assert.Empty(t, stack.GPURequests(st.Project.Services[s]), s)
			}

			deps := st.Dependencies("backend")
			for _, d := range []string{"postgres", "redis", "voicevox", "openvoice"} {
				assert.Equal(t, types.ServiceConditionHealthy, deps[d].Condition, "backend waits for %s", d)
			}
			assert.Equal(t, types.ServiceConditionHealthy, st.Dependencies("frontend")["backend"].Condition)

			levels, err := st.Order(st.Names())
			require.NoError(t, err)
			assert.Equal(t, [][]string{{"openvoice", "postgres", "redis", "voicevox"}, {"backend"}, {"frontend"}}, levels)

			var vols []string
			for _, v := range st.Project.Services["openvoice"].Volumes {
				vols = append(vols, v.Source)
			}
			assert.ElementsMatch(t, []string{"voice_profiles", "model_cache"}, vols)
		})
	}
}

func TestRealStackBuildsFromTheAppSource(t *testing.T) {
	env := appEnv(t)
	st := load(t, "../../compose/compose.yaml", env)
	b := st.Project.Services["backend"].Build
	require.NotNil(t, b)
	assert.Equal(t, filepath.Join(env["VMCTL_APP_SOURCE"], "backend"), b.Context)
	assert.Equal(t, "/images/backend/Dockerfile", b.Dockerfile)

	_, err := stack.Load(context.Background(), stack.LoadOptions{Files: []string{"../../compose/compose.yaml"}, Env: map[string]string{"VMCTL_IMAGES": "/images"}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "set app_source in environments/local.yaml or VMCTL_APP_SOURCE")
}

func TestSelectAddsDependencies(t *testing.T) {
	st := load(t, "../../compose/demo.yaml", nil)
	got, err := st.Select([]string{"backend"})
	require.NoError(t, err)
	assert.Equal(t, []string{"backend", "openvoice", "postgres", "redis", "voicevox"}, got)

	got, err = st.Select(nil)
	require.NoError(t, err)
	assert.Len(t, got, 6)

	_, err = st.Select([]string{"backend", "nope"})
	require.EqualError(t, err, `no such service: "nope" (services: backend, frontend, openvoice, postgres, redis, voicevox)`)
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"testdata/cycle.yaml", []string{"cycle"}},
		{"testdata/malformed.yaml", []string{"testdata/malformed.yaml", "line 5"}},
		{"testdata/badext.yaml", []string{"service backend", "x-vmctl", "health_pth"}},
		{"testdata/missing.yaml", []string{"testdata/missing.yaml", "no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := stack.Load(context.Background(), stack.LoadOptions{Files: []string{tt.file}})
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestConfigHash(t *testing.T) {
	st := load(t, "../../compose/demo.yaml", nil)
	svc := st.Project.Services["backend"]
	h1, err := stack.ConfigHash(svc, "image=sha256:a")
	require.NoError(t, err)
	h2, err := stack.ConfigHash(svc, "image=sha256:a")
	require.NoError(t, err)
	assert.Equal(t, h1, h2, "stable")

	other, _ := stack.ConfigHash(svc, "image=sha256:b")
	assert.NotEqual(t, h1, other, "a new image recreates")

	changed := svc
	changed.Environment = types.MappingWithEquals{}
	for k, v := range svc.Environment {
		changed.Environment[k] = v
	}
	x := "1"
	changed.Environment["NEW"] = &x
	h3, _ := stack.ConfigHash(changed, "image=sha256:a")
	assert.NotEqual(t, h1, h3, "a new variable recreates")

	deps := svc
	deps.DependsOn = nil
	h4, _ := stack.ConfigHash(deps, "image=sha256:a")
	assert.Equal(t, h1, h4, "dependency edges do not shape the container")
}

func TestHostPorts(t *testing.T) {
	svc := types.ServiceConfig{Name: "x"}
	svc.Ports = []types.ServicePortConfig{{Target: 80, Published: "8000-8002"}, {Target: 53, Published: "53", Protocol: "udp"}, {Target: 9}}
	got, err := stack.HostPorts(svc)
	require.NoError(t, err)
	assert.Equal(t, []stack.HostPort{{Port: 8000, Protocol: "tcp"}, {Port: 8001, Protocol: "tcp"}, {Port: 8002, Protocol: "tcp"}, {Port: 53, Protocol: "udp"}}, got)
}

// Variables tells a literal value from one written with ${VAR}, for rendering to refuse.
func TestVariablesReadTheFileAsWritten(t *testing.T) {
	file := filepath.Join(t.TempDir(), "compose.yaml")
	require.NoError(t, os.WriteFile(file, []byte(`name: fx
services:
  map:
    image: x
    environment: {LIT: "a", DOLLAR: "$$HOME", REF: "${A}", DEF: "${B:-${C}}", NUM: 3, BARE: }
    command: "serve $$X"
    healthcheck: {test: [CMD, check, "$D"]}
  list:
    image: x
    environment: [LIT=a, REF=$E, BARE]
    labels: ["k=${F:?set F}"]
`), 0o644))
	st := load(t, file, map[string]string{"A": "1", "BARE": "2", "E": "3", "F": "4"})
	tests := []struct {
		service, key string
		want         []string
	}{
		{"map", "environment.LIT", []string{}},
		{"map", "environment.DOLLAR", []string{}},
		{"map", "environment.NUM", []string{}},
		{"map", "environment.REF", []string{"A"}},
		{"map", "environment.DEF", []string{"B", "C"}},
		{"map", "environment.BARE", []string{"BARE"}},
		{"map", "environment.MISSING", []string{"MISSING"}},
		{"map", "command", []string{}},
		{"map", "healthcheck.test", []string{"D"}},
		{"list", "environment.LIT", []string{}},
		{"list", "environment.REF", []string{"E"}},
		{"list", "environment.BARE", []string{"BARE"}},
		{"list", "labels", []string{"F"}},
	}
	for _, tt := range tests {
		t.Run(tt.service+" "+tt.key, func(t *testing.T) {
			got, err := st.Variables(tt.service, tt.key)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
	_, err := st.Variables("map", "image")
	assert.ErrorContains(t, err, `key "image" is not one of`)

	bare, err := stack.New(st.Project)
	require.NoError(t, err)
	assert.ErrorContains(t, bare.Written(), "load it with stack.Load")
}
