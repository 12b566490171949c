package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/vmctl/vmctl/internal/stack"
)

// waitReady waits until a service is ready, and says how: "healthy" when
// its declared test and its HTTP endpoint both pass, "running" when it
// declares neither, "exited (0)" for a one-shot service others wait on.
//
// vmctl runs the declared test itself every probe interval until it first
// passes, instead of waiting for Docker's own cadence (30 s by default), so
// dependents start as soon as a dependency is healthy.
func (e *Engine) waitReady(ctx context.Context, st *stack.Stack, service, id string, oneShot bool) (string, error) {
	svc := st.Project.Services[service]
	var test []string
	if h := svc.HealthCheck; h != nil && !h.Disable && len(h.Test) > 0 && h.Test[0] != "NONE" {
		test = execCommand(h.Test)
	}
	var testTimeout time.Duration
	if svc.HealthCheck != nil && svc.HealthCheck.Timeout != nil {
		testTimeout = time.Duration(*svc.HealthCheck.Timeout)
	}
	endpoint, hasHTTP := st.Health(service)
	declaredOK, httpOK := test == nil, !hasHTTP
	var last error
	tick := time.NewTicker(e.probeInterval)
	defer tick.Stop()
	for {
		c, err := e.api.ContainerInspect(ctx, id)
		if err != nil {
			if ctx.Err() != nil && last != nil {
				return "", fmt.Errorf("%w: last check: %v", ctx.Err(), last)
			}
			return "", fmt.Errorf("inspect container: %w", err)
		}
		s := c.State
		switch {
		case s.Status == container.StateExited || s.Status == container.StateDead:
			if s.ExitCode == 0 && (oneShot || test == nil && !hasHTTP) {
				return "exited (0)", nil
			}
			return "", fmt.Errorf("container exited with code %d%s", s.ExitCode, oomNote(s))
		case s.Restarting:
			last = fmt.Errorf("container keeps restarting (last exit code %d)", s.ExitCode)
		case s.Health != nil && s.Health.Status == container.Unhealthy:
			return "", fmt.Errorf("Docker reports it unhealthy: %s", lastHealthOutput(s.Health))
		case s.Running:
			if oneShot {
				break // a one-shot service is ready when it has exited 0
			}
			if !declaredOK {
				if s.Health != nil && s.Health.Status == container.Healthy {
					declaredOK = true
				} else if err := e.execTest(ctx, id, test, testTimeout); err == nil {
					declaredOK = true
				} else if ctx.Err() == nil {
					last = fmt.Errorf("health test %q: %w", strings.Join(test, " "), err)
				}
			}
			if declaredOK && !httpOK {
				if err := e.prober.Probe(ctx, endpoint.URL()); err == nil {
					httpOK = true
				} else if ctx.Err() == nil {
					last = err
				}
			}
			if declaredOK && httpOK {
				if test == nil && !hasHTTP {
					return "running", nil
				}
				return "healthy", nil
			}
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return "", fmt.Errorf("%w: last check: %v", ctx.Err(), last)
			}
			return "", ctx.Err()
		case <-tick.C:
		}
	}
}

func oomNote(s *container.State) string {
	if s.OOMKilled {
		return " (killed: out of memory)"
	}
	if s.Error != "" {
		return ": " + s.Error
	}
	return ""
}

func lastHealthOutput(h *container.Health) string {
	if len(h.Log) == 0 {
		return "no output"
	}
	out := strings.TrimSpace(h.Log[len(h.Log)-1].Output)
	if out == "" {
		return fmt.Sprintf("exit code %d", h.Log[len(h.Log)-1].ExitCode)
	}
	return out
}

// execCommand turns a compose health test into the argv vmctl executes.
func execCommand(test []string) []string {
	switch test[0] {
	case "CMD":
		return test[1:]
	case "CMD-SHELL":
		return []string{"/bin/sh", "-c", strings.Join(test[1:], " ")}
	}
	// compose-go normalises a plain string to CMD-SHELL; anything else runs as is.
	return test
}

// execTest runs the health test inside the container once.
func (e *Engine) execTest(ctx context.Context, id string, cmd []string, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = 30 * time.Second // Docker's default
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ex, err := e.api.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return err
	}
	att, err := e.api.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return err
	}
	var out bytes.Buffer
	_, _ = stdcopy.StdCopy(&out, &out, io.LimitReader(att.Reader, 4096))
	att.Close()
	res, err := e.api.ContainerExecInspect(ctx, ex.ID)
	if err != nil {
		return err
	}
	if res.Running {
		return errors.New("still running")
	}
	if res.ExitCode != 0 {
		msg := strings.TrimSpace(out.String())
		if msg == "" {
			return fmt.Errorf("exit code %d", res.ExitCode)
		}
		return fmt.Errorf("exit code %d: %s", res.ExitCode, msg)
	}
	return nil
}

// tail returns the last n log lines of a container, for failure reports.
func (e *Engine) tail(ctx context.Context, id string, n int) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rc, err := e.api.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: fmt.Sprint(n)})
	if err != nil {
		return ""
	}
	defer rc.Close()
	var out bytes.Buffer
	_, _ = stdcopy.StdCopy(&out, &out, rc)
	return strings.TrimRight(out.String(), "\n")
}
