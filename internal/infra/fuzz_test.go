package infra_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/infra"
	"github.com/vmctl/vmctl/internal/release"
)

// FuzzRender feeds arbitrary environment files through the loader, the deploy plan and
// the template renderer: each may refuse its input, none may panic, and a template that
// renders must marshal to JSON. Minimising a new input re-renders it many times; keep that
// short: go test ./internal/infra -run '^$' -fuzz FuzzRender -fuzzminimizetime 2s.
func FuzzRender(f *testing.F) {
	for _, name := range envNames {
		b, err := os.ReadFile(filepath.Join(envDir, name+".yaml"))
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add([]byte("kind: aws\naws: {network: {vpc_id: vpc-01234567, cidr: 10.0.0.0/16}}\nservices: {a: {placement: fargate}}\n"))
	st := loadStack(f)
	// One file per worker, rewritten for each input: a worker runs its inputs one by one.
	path := filepath.Join(f.TempDir(), "fuzz.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		require.NoError(t, os.WriteFile(path, data, 0o644))
		env, err := environment.Load(path)
		if err != nil || env.Kind != environment.KindAWS {
			return
		}
		plan, err := ecs.Render(st, infra.Offline(env), release.Release{})
		if err != nil {
			return
		}
		tmpl, err := infra.Render(env, plan)
		if err != nil {
			return
		}
		body, err := infra.TemplateJSON(tmpl)
		require.NoError(t, err)
		require.True(t, json.Valid(body))
	})
}
