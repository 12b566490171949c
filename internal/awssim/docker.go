package awssim

import (
	"context"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
)

// Labels on the containers the simulator starts. Every one carries LabelSim
// (the simulator's ID), so Close can remove them; task containers carry the
// log group and stream that CloudWatch Logs shows their output under.
const (
	LabelSim       = "awssim.sim"
	LabelLogGroup  = "awssim.log-group"
	LabelLogStream = "awssim.log-stream"
)

// UseDocker gives the simulator a Docker Engine: ECS runs tasks on it and
// CloudWatch Logs reads their output. When the simulator closes, every
// container labelled with its ID is removed. Call it before the first request.
func (s *Sim) UseDocker(api *client.Client) {
	s.mu.Lock()
	first := s.docker == nil
	s.docker = api
	s.mu.Unlock()
	if first {
		s.OnClose(s.removeContainers)
	}
}

// dockerAPI is the engine UseDocker gave, or nil.
func (s *Sim) dockerAPI() *client.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.docker
}

// simContainers lists this simulator's containers, stopped ones included,
// that carry all the given labels ("key=value").
func (s *Sim) simContainers(ctx context.Context, labels ...string) ([]container.Summary, error) {
	api := s.dockerAPI()
	if api == nil {
		return nil, nil
	}
	f := filters.NewArgs(filters.Arg("label", LabelSim+"="+s.ID))
	for _, l := range labels {
		f.Add("label", l)
	}
	return api.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
}

func (s *Sim) removeContainers() {
	api := s.dockerAPI()
	if api == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s.removeLabelled(ctx, api)
}

// removeLabelled removes every container, network and volume carrying the
// simulator's label, as `vmctl down` removes what vmctl created; callers
// first let in-flight engine calls finish, so nothing is created after.
func (s *Sim) removeLabelled(ctx context.Context, api *client.Client) {
	f := filters.NewArgs(filters.Arg("label", LabelSim+"="+s.ID))
	if list, err := api.ContainerList(ctx, container.ListOptions{All: true, Filters: f}); err == nil {
		for _, c := range list {
			_ = api.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		}
	}
	if nets, err := api.NetworkList(ctx, network.ListOptions{Filters: f}); err == nil {
		for _, n := range nets {
			_ = api.NetworkRemove(ctx, n.ID)
		}
	}
	if vols, err := api.VolumeList(ctx, volume.ListOptions{Filters: f}); err == nil {
		for _, v := range vols.Volumes {
			_ = api.VolumeRemove(ctx, v.Name, true)
		}
	}
}
