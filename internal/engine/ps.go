package engine

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/docker/docker/api/types/container"

	"github.com/vmctl/vmctl/internal/stack"
)

// PS lists the project's containers, one row per service.
func (e *Engine) PS(ctx context.Context, st *stack.Stack) ([]ServiceStatus, error) {
	list, err := e.api.ContainerList(ctx, container.ListOptions{All: true, Filters: projectFilter(st.Name())})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := make([]ServiceStatus, 0, len(list))
	for _, c := range list {
		svcName := c.Labels[LabelService]
		s := ServiceStatus{
			Service:   svcName,
			Container: strings.TrimPrefix(c.Names[0], "/"),
			ID:        c.ID[:12],
			State:     string(c.State),
			Health:    healthFromStatus(c.Status),
			Ports:     formatPorts(c.Ports),
			GPU:       c.Labels[LabelGPU],
		}
		if svc, ok := st.Project.Services[svcName]; ok && c.State == container.StateRunning {
			s.URL = stack.PublishedURL(svc)
			if h, ok := st.Health(svcName); ok {
				s.URL = h.URL()
			}
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Service < out[j].Service })
	return out, nil
}

// healthFromStatus reads the health word Docker appends to a container's
// status ("Up 3 seconds (healthy)"); API 1.41 has no separate field.
func healthFromStatus(status string) string {
	switch {
	case strings.Contains(status, "(healthy)"):
		return "healthy"
	case strings.Contains(status, "(unhealthy)"):
		return "unhealthy"
	case strings.Contains(status, "(health: starting)"):
		return "starting"
	}
	return ""
}

func formatPorts(ports []container.Port) string {
	seen := map[string]bool{}
	var parts []string
	for _, p := range ports {
		var s string
		if p.PublicPort != 0 {
			s = fmt.Sprintf("%s:%d->%d/%s", p.IP, p.PublicPort, p.PrivatePort, p.Type)
		} else {
			s = fmt.Sprintf("%d/%s", p.PrivatePort, p.Type)
		}
		if !seen[s] {
			seen[s] = true
			parts = append(parts, s)
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
