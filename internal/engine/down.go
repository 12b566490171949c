package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/docker/docker/errdefs"
	"golang.org/x/sync/errgroup"

	"github.com/vmctl/vmctl/internal/progress"
)

// DownOptions configures Down.
type DownOptions struct {
	Volumes  bool // also remove the project's named volumes
	Progress progress.Writer
}

// Down removes the project's containers and networks (and volumes when
// asked), found by the project label, so nothing else on the host is
// touched; a project holding anything vmctl did not create is refused
// whole (*ForeignProjectError), before anything is removed.
func (e *Engine) Down(ctx context.Context, project string, opts DownOptions) error {
	pw := opts.Progress
	if pw == nil {
		pw = progress.Discard{}
	}
	res, err := e.listProject(ctx, project)
	if err != nil {
		return err
	}
	if err := res.foreign("down", project); err != nil {
		return err
	}
	var g errgroup.Group
	for _, c := range res.containers {
		name := strings.TrimPrefix(c.Names[0], "/")
		g.Go(func() error {
			pw.Event(progress.Event{Resource: name, Status: progress.Working, Text: "Removing"})
			if err := e.removeContainer(ctx, c.ID); err != nil {
				pw.Event(progress.Event{Resource: name, Status: progress.Error, Text: "Remove failed", Detail: err.Error()})
				return fmt.Errorf("remove container %s: %w", name, err)
			}
			pw.Event(progress.Event{Resource: name, Status: progress.Done, Text: "Removed"})
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	var errs []error
	for _, n := range res.networks {
		what := "network " + n.Name
		if err := e.api.NetworkRemove(ctx, n.ID); err != nil && !errdefs.IsNotFound(err) {
			pw.Event(progress.Event{Resource: what, Status: progress.Error, Text: "Remove failed", Detail: err.Error()})
			errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
			continue
		}
		pw.Event(progress.Event{Resource: what, Status: progress.Done, Text: "Removed"})
	}
	if opts.Volumes {
		for _, v := range res.volumes {
			what := "volume " + v.Name
			if err := e.api.VolumeRemove(ctx, v.Name, false); err != nil && !errdefs.IsNotFound(err) {
				pw.Event(progress.Event{Resource: what, Status: progress.Error, Text: "Remove failed", Detail: err.Error()})
				errs = append(errs, fmt.Errorf("remove volume %s: %w", v.Name, err))
				continue
			}
			pw.Event(progress.Event{Resource: what, Status: progress.Done, Text: "Removed"})
		}
	}
	return errors.Join(errs...)
}
