package engine

import (
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestForeignResourcesRefuseTheProject(t *testing.T) {
	ours := map[string]string{LabelProject: "x", LabelManaged: "true"}
	compose := map[string]string{LabelProject: "x", labelComposeVersion: "2.20.0"}
	bare := map[string]string{LabelProject: "x"}
	tests := []struct {
		name string
		op   string
		res  projectResources
		want string // "" when vmctl may act
	}{
		{name: "empty project", op: "down"},
		{
			name: "everything is vmctl's", op: "down",
			res: projectResources{
				containers: []container.Summary{{Names: []string{"/x-web-1"}, Labels: ours}},
				networks:   []network.Summary{{Name: "x_default", Labels: ours}},
				volumes:    []*volume.Volume{{Name: "x_data", Labels: ours}},
			},
		},
		{
			name: "docker compose's volume", op: "down",
			res: projectResources{
				containers: []container.Summary{{Names: []string{"/x-web-1"}, Labels: ours}},
				volumes:    []*volume.Volume{{Name: "x_data", Labels: compose}},
			},
			want: `down: project "x" was created by another tool (docker compose), not vmctl: vmctl leaves it alone (volume x_data); use that tool to remove it`,
		},
		{
			name: "an unknown tool's containers, up", op: "up",
			res: projectResources{containers: []container.Summary{
				{Names: []string{"/x-b-1"}, Labels: bare}, {Names: []string{"/x-a-1"}, Labels: bare},
				{Names: []string{"/x-c-1"}, Labels: bare}, {Names: []string{"/x-d-1"}, Labels: bare},
			}},
			want: `up: project "x" was created by another tool, not vmctl: vmctl leaves it alone (container x-a-1, container x-b-1, container x-c-1, 1 more); use that tool to remove it, or give vmctl's stack another project name with -p`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.res.foreign(tt.op, "x")
			if tt.want == "" {
				assert.NoError(t, err)
				return
			}
			var fe *ForeignProjectError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tt.want, err.Error())
		})
	}
}
