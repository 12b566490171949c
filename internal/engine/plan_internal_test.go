package engine

import (
	"context"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/stack"
)

// TestPlanServices decides create, recreate, start, keep and restart from
// the containers that exist, with no Docker Engine.
func TestPlanServices(t *testing.T) {
	st, err := stack.Load(context.Background(), stack.LoadOptions{
		Files:       []string{"testdata/fixture.yaml"},
		ProjectName: "plan",
		Env:         map[string]string{"FIXTURE_IMAGE": "fixture:test", "FIXTURE_CONTEXT": t.TempDir(), "API_PORT": "18080", "WEB_PORT": "18081"},
	})
	require.NoError(t, err)
	names := []string{"db", "migrate", "api", "web"}
	images := map[string]string{"db": "sha256:1", "migrate": "sha256:1", "api": "sha256:1", "web": "sha256:1"}
	// The hashes of the current configuration, as up labels the containers.
	fresh, err := planServices(st, names, nil, images, nil)
	require.NoError(t, err)
	running := func(n string, labels map[string]string) container.Summary {
		return container.Summary{ID: n + "-id", State: container.StateRunning, Labels: labels}
	}
	current := func(n string) map[string]string {
		return map[string]string{LabelService: n, LabelManaged: "true", LabelConfigHash: fresh[n].hash}
	}
	upToDate := func() map[string]container.Summary {
		m := map[string]container.Summary{}
		for _, n := range names {
			m[n] = running(n, current(n))
		}
		return m
	}

	tests := []struct {
		name     string
		existing func() map[string]container.Summary
		images   map[string]string
		gpuOn    map[string]bool
		want     map[string]string // service → planned.describe()
	}{
		{
			name:     "nothing exists: every container is created",
			existing: func() map[string]container.Summary { return nil },
			want:     map[string]string{"db": "created", "migrate": "created", "api": "created", "web": "created"},
		},
		{
			name:     "nothing changed: every container is kept",
			existing: upToDate,
			want:     map[string]string{"db": "unchanged", "migrate": "unchanged", "api": "unchanged", "web": "unchanged"},
		},
		{
			name: "a stopped container is started",
			existing: func() map[string]container.Summary {
				m := upToDate()
				c := m["migrate"]
				c.State = container.StateExited
				m["migrate"] = c
				return m
			},
			want: map[string]string{"db": "unchanged", "migrate": "started", "api": "unchanged", "web": "unchanged"},
		},
		{
			name: "a completed job is left alone",
			existing: func() map[string]container.Summary {
				m := upToDate()
				c := m["migrate"]
				c.State, c.Status = container.StateExited, "Exited (0) 2 minutes ago"
				m["migrate"] = c
				return m
			},
			want: map[string]string{"db": "unchanged", "migrate": "unchanged", "api": "unchanged", "web": "unchanged"},
		},
		{
			name: "a job that failed runs again",
			existing: func() map[string]container.Summary {
				m := upToDate()
				c := m["migrate"]
				c.State, c.Status = container.StateExited, "Exited (4) 2 minutes ago"
				m["migrate"] = c
				return m
			},
			want: map[string]string{"db": "unchanged", "migrate": "started", "api": "unchanged", "web": "unchanged"},
		},
		{
			name: "a changed service is recreated and restarts the dependents that ask for it",
			existing: func() map[string]container.Summary {
				m := upToDate()
				m["db"] = running("db", map[string]string{LabelService: "db", LabelManaged: "true", LabelConfigHash: "old"})
				return m
			},
			// api depends on db with restart: true; migrate without; web not on db.
			want: map[string]string{"db": "recreated", "migrate": "unchanged", "api": "restarted", "web": "unchanged"},
		},
		{
			name:     "a new image recreates its service",
			existing: upToDate,
			images:   map[string]string{"db": "sha256:1", "migrate": "sha256:1", "api": "sha256:1", "web": "sha256:2"},
			want:     map[string]string{"db": "unchanged", "migrate": "unchanged", "api": "unchanged", "web": "recreated"},
		},
		{
			name:     "turning the GPU on recreates the service",
			existing: upToDate,
			gpuOn:    map[string]bool{"api": true},
			want:     map[string]string{"db": "unchanged", "migrate": "unchanged", "api": "recreated", "web": "unchanged"},
		},
		{
			name: "compose's config-hash label is not vmctl's",
			existing: func() map[string]container.Summary {
				m := upToDate()
				m["web"] = running("web", map[string]string{LabelService: "web", LabelManaged: "true", "com.docker.compose.config-hash": fresh["web"].hash})
				return m
			},
			want: map[string]string{"db": "unchanged", "migrate": "unchanged", "api": "unchanged", "web": "recreated"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			imgs := images
			if tt.images != nil {
				imgs = tt.images
			}
			plan, err := planServices(st, names, tt.existing(), imgs, tt.gpuOn)
			require.NoError(t, err)
			got := map[string]string{}
			for n, p := range plan {
				got[n] = p.describe()
				assert.Equal(t, tt.gpuOn[n], p.gpu, n)
			}
			assert.Equal(t, tt.want, got)
		})
	}
}
