package ecs_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/release"
	"github.com/vmctl/vmctl/internal/stack"
)

// FuzzLoad feeds the environment loader arbitrary files, and renders the real stack with
// whatever it accepts: the loader may refuse a file and the renderer may refuse a plan,
// neither may panic. It lives here because the renderer is what trusts a loaded environment.
func FuzzLoad(f *testing.F) {
	for _, name := range []string{"dev", "staging", "prod", "local"} {
		b, err := os.ReadFile(filepath.Join(envDir, name+".yaml"))
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add([]byte("kind: aws\naws: {}\nservices: {a: {placement: fargate}}\n"))
	st, rel := loadStack(f, stackFile), fakeRelease()
	// One file per worker, rewritten for each input: a worker runs its inputs one by one.
	path := filepath.Join(f.TempDir(), "fuzz.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		require.NoError(t, os.WriteFile(path, data, 0o644))
		env, err := environment.Load(path)
		if err != nil {
			return
		}
		require.Equal(t, "fuzz", env.Name)
		if env.Kind != environment.KindAWS {
			return
		}
		require.NotNil(t, env.AWS, "a valid aws environment has its aws section")
		checkRender(t, st, env, rel)
	})
}

// FuzzRender renders arbitrary compose files into prod: compose-go may refuse a file and the
// renderer may refuse what it cannot express, but whatever renders must marshal and compare.
func FuzzRender(f *testing.F) {
	for _, file := range []string{stackFile, "../../compose/demo.yaml"} {
		b, err := os.ReadFile(file)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add([]byte("services:\n  app:\n    image: x\n    ports: [\"8080:80\", \"8081:80\"]\n    network_mode: service:side\n  side:\n    image: y\n    volumes: [\"/h:/c\"]\n"))
	env, rel := loadEnv(f, "prod"), fakeRelease()
	dir := f.TempDir()
	path := filepath.Join(dir, "compose.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		require.NoError(t, os.WriteFile(path, data, 0o644))
		st, err := stack.Load(context.Background(), stack.LoadOptions{
			Files: []string{path}, WorkDir: dir, ProjectName: "fuzz",
			Env: map[string]string{"VMCTL_APP_SOURCE": dir, "VMCTL_IMAGES": dir},
		})
		if err != nil {
			return
		}
		ecs.LocalView(st, nil)
		checkRender(t, st, env, rel)
	})
}

func checkRender(t *testing.T, st *stack.Stack, env *environment.Environment, rel release.Release) {
	t.Helper()
	plan, err := ecs.Render(st, env, rel)
	if err != nil {
		return
	}
	b, err := json.Marshal(plan)
	require.NoError(t, err)
	require.True(t, json.Valid(b))
	for _, s := range plan.Services {
		require.NotEmpty(t, s.TaskDefinition.ContainerDefinitions, s.Name)
		require.Equal(t, s.Name, *s.TaskDefinition.ContainerDefinitions[0].Name)
	}
	ecs.Compare(ecs.LocalView(st, nil), ecs.AWSView(st, plan, env))
}
