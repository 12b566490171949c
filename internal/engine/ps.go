package engine

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

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

// PSRow is a ps row with where its health comes from.
type PSRow struct {
	ServiceStatus
	// HealthSource is "docker" (its health check) or "vmctl" (what up saw
	// later than Docker's last check); empty without any health verdict.
	HealthSource string `json:"health_source,omitempty"`
	// ObservedAt is when that source last looked.
	ObservedAt *time.Time `json:"observed_at,omitempty"`
}

// PSObserved is PS with vmctl's own observations (see Observation) standing
// in for Docker's health when they are newer than Docker's last check or
// the container's start.
func (e *Engine) PSObserved(ctx context.Context, st *stack.Stack, obs map[string]Observation) ([]PSRow, error) {
	rows, err := e.PS(ctx, st)
	if err != nil {
		return nil, err
	}
	out := make([]PSRow, 0, len(rows))
	for _, s := range rows {
		r := PSRow{ServiceStatus: s}
		o, seen := obs[s.Service]
		seen = seen && o.Container == s.ID
		if s.State != string(container.StateRunning) || (s.Health == "" && !seen) {
			out = append(out, r)
			continue
		}
		var docker time.Time
		if c, err := e.api.ContainerInspect(ctx, s.ID); err == nil && c.State != nil {
			docker = dockerHealthTime(c.State)
		}
		switch {
		case seen && o.At.After(docker):
			at := o.At
			r.Health, r.HealthSource, r.ObservedAt = o.Health, "vmctl", &at
		case s.Health != "":
			r.HealthSource = "docker"
			if !docker.IsZero() {
				r.ObservedAt = &docker
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// dockerHealthTime is when Docker last formed its health verdict: its last
// check's end or, before any check, the container's start (which resets it).
func dockerHealthTime(s *container.State) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s.StartedAt)
	if s.Health != nil && len(s.Health.Log) > 0 {
		if end := s.Health.Log[len(s.Health.Log)-1].End; end.After(t) {
			t = end
		}
	}
	return t.UTC()
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
