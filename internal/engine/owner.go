package engine

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
)

// ForeignProjectError refuses to act on a project that holds containers,
// networks or volumes vmctl did not create: compose's project label alone
// does not make them vmctl's, and removing or recreating them would destroy
// another tool's work (docker compose's volumes, for one).
type ForeignProjectError struct {
	Op        string   // the refused command: up or down
	Project   string   // the project name both tools use
	Tool      string   // "docker compose" when its labels say so, else ""
	Resources []string // what vmctl did not create, e.g. "container x-web-1"
}

func (e *ForeignProjectError) Error() string {
	tool := ""
	if e.Tool != "" {
		tool = " (" + e.Tool + ")"
	}
	res := e.Resources
	if len(res) > 3 {
		res = append(res[:3:3], fmt.Sprintf("%d more", len(e.Resources)-3))
	}
	next := "use that tool to remove it"
	if e.Op == "up" {
		next += ", or give vmctl's stack another project name with -p"
	}
	return fmt.Sprintf("%s: project %q was created by another tool%s, not vmctl: vmctl leaves it alone (%s); %s",
		e.Op, e.Project, tool, strings.Join(res, ", "), next)
}

// owned says vmctl created the resource.
func owned(labels map[string]string) bool { return labels[LabelManaged] == "true" }

// projectResources is everything on the engine that carries the project's label.
type projectResources struct {
	containers []container.Summary
	networks   []network.Summary
	volumes    []*volume.Volume
}

func (e *Engine) listProject(ctx context.Context, project string) (projectResources, error) {
	var r projectResources
	var err error
	if r.containers, err = e.api.ContainerList(ctx, container.ListOptions{All: true, Filters: projectFilter(project)}); err != nil {
		return r, fmt.Errorf("list containers: %w", err)
	}
	if r.networks, err = e.api.NetworkList(ctx, network.ListOptions{Filters: projectFilter(project)}); err != nil {
		return r, fmt.Errorf("list networks: %w", err)
	}
	vols, err := e.api.VolumeList(ctx, volume.ListOptions{Filters: projectFilter(project)})
	if err != nil {
		return r, fmt.Errorf("list volumes: %w", err)
	}
	r.volumes = vols.Volumes
	return r, nil
}

// foreign returns a *ForeignProjectError for op when anything in r was not
// created by vmctl, and nil when all of it was.
func (r projectResources) foreign(op, project string) error {
	ferr := &ForeignProjectError{Op: op, Project: project}
	note := func(kind, name string, labels map[string]string) {
		if owned(labels) {
			return
		}
		ferr.Resources = append(ferr.Resources, kind+" "+name)
		if labels[labelComposeVersion] != "" {
			ferr.Tool = "docker compose"
		}
	}
	for _, c := range r.containers {
		note("container", strings.TrimPrefix(firstName(c.Names), "/"), c.Labels)
	}
	for _, n := range r.networks {
		note("network", n.Name, n.Labels)
	}
	for _, v := range r.volumes {
		note("volume", v.Name, v.Labels)
	}
	if len(ferr.Resources) == 0 {
		return nil
	}
	sort.Strings(ferr.Resources)
	return ferr
}

func firstName(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return names[0]
}
