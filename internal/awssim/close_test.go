package awssim_test

import (
	"context"
	"testing"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/awssim"
	"github.com/vmctl/vmctl/internal/dockertest"
)

// Close while task containers are being created leaves nothing labelled with
// the simulator behind: in-flight creates finish, then everything goes.
func TestCloseDuringCreatesLeavesNothing(t *testing.T) {
	api := dockertest.Client(t)
	dockertest.FixtureImageBuilt(t, api)
	ctx := context.Background()
	for round := range 3 {
		sim := awssim.New()
		sim.AddUser(computeKey, awssim.Principal{Account: computeAccount, ARN: "arn:aws:iam::" + computeAccount + ":user/ci"})
		sim.UseDocker(api)
		sim.CreateCluster("default")
		c := newECS(t, sim)
		_, err := c.RegisterTaskDefinition(ctx, demoTaskDef("web", dockertest.FixtureImage))
		require.NoError(t, err)
		_, err = c.RunTask(ctx, &ecs.RunTaskInput{TaskDefinition: sdkaws.String("web"), Count: sdkaws.Int32(10),
			LaunchType: ecstypes.LaunchTypeFargate, NetworkConfiguration: awsvpcNetwork})
		require.NoError(t, err)

		label := filters.NewArgs(filters.Arg("label", awssim.LabelSim+"="+sim.ID))
		// Close as soon as the first container exists: the other nine are mid-create.
		deadline := time.Now().Add(30 * time.Second)
		for {
			list, err := api.ContainerList(ctx, container.ListOptions{All: true, Filters: label})
			require.NoError(t, err)
			if len(list) > 0 {
				break
			}
			require.True(t, time.Now().Before(deadline), "round %d: no task container was created", round)
			time.Sleep(5 * time.Millisecond)
		}
		sim.Close()

		left, err := api.ContainerList(ctx, container.ListOptions{All: true, Filters: label})
		require.NoError(t, err)
		require.Empty(t, left, "round %d: containers outlived the simulator", round)
		nets, err := api.NetworkList(ctx, network.ListOptions{Filters: label})
		require.NoError(t, err)
		require.Empty(t, nets, "round %d: networks outlived the simulator", round)
		vols, err := api.VolumeList(ctx, volume.ListOptions{Filters: label})
		require.NoError(t, err)
		require.Empty(t, vols.Volumes, "round %d: volumes outlived the simulator", round)
	}
}
