package rollout

import (
	"context"
	"fmt"
	"strings"
	"testing"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/ecs"
)

// taggedECS runs one service, backend, on revision 2 of its family; each revision's
// vmctl:release tag is in releases. Every call it does not answer panics.
type taggedECS struct {
	aws.ECS
	releases map[int32]string
}

func (f taggedECS) DescribeServices(ctx context.Context, in *awsecs.DescribeServicesInput, _ ...func(*awsecs.Options)) (*awsecs.DescribeServicesOutput, error) {
	return &awsecs.DescribeServicesOutput{Services: []ecstypes.Service{{
		ServiceName: sdkaws.String("backend"), Status: sdkaws.String("ACTIVE"), TaskDefinition: sdkaws.String("backend:2"),
	}}}, nil
}

func (f taggedECS) DescribeTaskDefinition(ctx context.Context, in *awsecs.DescribeTaskDefinitionInput, _ ...func(*awsecs.Options)) (*awsecs.DescribeTaskDefinitionOutput, error) {
	var rev int32
	_, err := fmt.Sscanf(sdkaws.ToString(in.TaskDefinition), "backend:%d", &rev)
	if err != nil {
		return nil, err
	}
	arn := fmt.Sprintf("arn:aws:ecs:ap-northeast-1:111111111111:task-definition/backend:%d", rev)
	return &awsecs.DescribeTaskDefinitionOutput{
		TaskDefinition: &ecstypes.TaskDefinition{
			Family: sdkaws.String("backend"), Revision: rev, TaskDefinitionArn: sdkaws.String(arn),
			Status: ecstypes.TaskDefinitionStatusActive,
			ContainerDefinitions: []ecstypes.ContainerDefinition{{
				Name: sdkaws.String("backend"), Image: sdkaws.String("r.example/backend@sha256:" + strings.Repeat("a", 64)),
			}},
		},
		Tags: []ecstypes.Tag{{Key: sdkaws.String(ReleaseTag), Value: sdkaws.String(f.releases[rev])}},
	}, nil
}

// A vmctl:release tag becomes a manifest's file name, so one that is no release id is an
// unknown release, never a path.
func TestReleaseTagsThatAreNoReleaseIDsAreRefused(t *testing.T) {
	plan := &ecs.Plan{Environment: "dev", Cluster: "c", Services: []ecs.Service{{Name: "backend"}}}
	tests := []struct {
		name     string
		releases map[int32]string
		current  string // CurrentRelease's error, or "" for r2
		previous string // PreviousRelease's error, or "" for r1
	}{
		{"release ids", map[int32]string{1: "r1", 2: "r2"}, "", ""},
		{"a path running", map[int32]string{1: "r1", 2: "../../x"},
			`service backend runs backend:2, an unknown release: its vmctl:release tag is release "../../x": not a release id`,
			`service backend runs backend:2, an unknown release: its vmctl:release tag is release "../../x": not a release id`},
		{"a path before", map[int32]string{1: "/etc/passwd", 2: "r2"}, "",
			`backend:1, the revision before, runs an unknown release: its vmctl:release tag is release "/etc/passwd": not a release id`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := aws.Clients{ECS: taggedECS{releases: tt.releases}}
			id, _, err := CurrentRelease(context.Background(), c, plan)
			if tt.current != "" {
				require.ErrorContains(t, err, tt.current)
				assert.Contains(t, err.Error(), "deploy a release with vmctl deploy --env dev")
			} else {
				require.NoError(t, err)
				assert.Equal(t, "r2", id)
			}
			target, err := PreviousRelease(context.Background(), c, plan)
			if tt.previous != "" {
				require.ErrorContains(t, err, tt.previous)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "r1", target.Release)
		})
	}
}

func TestShownReleaseHidesTagsThatAreNoReleaseIDs(t *testing.T) {
	assert.Equal(t, "r1", ShownRelease(map[string]string{ReleaseTag: "r1"}))
	assert.Empty(t, ShownRelease(map[string]string{ReleaseTag: "../x"}))
	assert.Empty(t, ShownRelease(map[string]string{}))
}
