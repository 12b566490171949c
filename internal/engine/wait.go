package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/vmctl/vmctl/internal/stack"
)

// waitReady waits until a service is ready, and says how: "healthy" when
// its declared test and its HTTP endpoint both pass, "running" when it
// declares neither, "exited (0)" for a one-shot service others wait on.
//
// vmctl runs the declared test itself instead of waiting for Docker's own
// cadence (30 s by default), so dependents start as soon as a dependency
// is healthy. The cost stays off the engine: Docker's own verdict counts
// when it is healthy and fresh, the cheap HTTP probe runs before the exec,
// each service backs off from a quick first probe to the probe interval
// (five times it once the wait is long), and execProbe bounds the exec probes in flight engine-wide.
func (e *Engine) waitReady(ctx context.Context, st *stack.Stack, service, id string, oneShot bool) (string, error) {
	svc := st.Project.Services[service]
	var test []string
	if h := svc.HealthCheck; h != nil && !h.Disable && len(h.Test) > 0 && h.Test[0] != "NONE" {
		test = execCommand(h.Test)
	}
	testTimeout, interval := healthTimes(svc.HealthCheck)
	endpoint, hasHTTP := st.Health(service)
	declaredOK, httpOK := test == nil, !hasHTTP
	var last error
	delay, began := e.probeInterval/8, time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
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
			if !declaredOK && freshHealthy(s.Health, interval+testTimeout, e.now()) {
				declaredOK = true
			}
			// The HTTP probe costs the engine nothing: it goes first, and
			// the exec runs once the service already answers.
			if !httpOK {
				if err := e.prober.Probe(ctx, endpoint.URL()); err == nil {
					httpOK = true
				} else if ctx.Err() == nil {
					last = err
				}
			}
			if httpOK && !declaredOK {
				if err := e.execProbe(ctx, id, test, testTimeout); err == nil {
					declaredOK = true
				} else if ctx.Err() == nil {
					last = fmt.Errorf("health test %q: %w", strings.Join(test, " "), err)
				}
			}
			if declaredOK && httpOK {
				if test == nil && !hasHTTP {
					return "running", nil
				}
				return "healthy", nil
			}
		}
		timer.Reset(delay)
		// A service slow to start is probed less often: its wait is long
		// anyway, and the engine it shares has other containers to start.
		ceiling := e.probeInterval
		if time.Since(began) > 10*e.probeInterval {
			ceiling = 5 * e.probeInterval
		}
		delay = min(delay*3/2, ceiling)
		select {
		case <-ctx.Done():
			if last != nil {
				return "", fmt.Errorf("%w: last check: %v", ctx.Err(), last)
			}
			return "", ctx.Err()
		case <-timer.C:
		}
	}
}

// healthTimes returns a health check's timeout and interval, with Docker's
// defaults (30 s each) where the compose file sets none.
func healthTimes(h *types.HealthCheckConfig) (timeout, interval time.Duration) {
	timeout, interval = 30*time.Second, 30*time.Second
	if h == nil {
		return timeout, interval
	}
	if h.Timeout != nil && *h.Timeout > 0 {
		timeout = time.Duration(*h.Timeout)
	}
	if h.Interval != nil && *h.Interval > 0 {
		interval = time.Duration(*h.Interval)
	}
	return timeout, interval
}

// freshHealthy says whether Docker's own verdict can stand for an exec:
// healthy, and its latest check passed within one check period. Docker
// keeps "healthy" through retries-1 failed checks, so the status alone is
// not enough.
func freshHealthy(h *container.Health, period time.Duration, now time.Time) bool {
	if h == nil || h.Status != container.Healthy || len(h.Log) == 0 {
		return false
	}
	l := h.Log[len(h.Log)-1]
	return l.ExitCode == 0 && now.Sub(l.End) <= period+time.Second
}

// readyKept settles a service whose container up kept as it was, with as
// little as it can: a completed job is done; a running container is known
// healthy by one HTTP probe of its health path, or else by Docker's own
// fresh verdict. It says ok=false when it cannot tell, and waitReady
// decides.
func (e *Engine) readyKept(ctx context.Context, st *stack.Stack, p *planned) (string, bool) {
	if p.completed {
		return "exited (0)", true
	}
	svc := st.Project.Services[p.svc.Name]
	hasTest := svc.HealthCheck != nil && !svc.HealthCheck.Disable && len(svc.HealthCheck.Test) > 0 && svc.HealthCheck.Test[0] != "NONE"
	endpoint, hasHTTP := st.Health(p.svc.Name)
	c, err := e.api.ContainerInspect(ctx, p.existing.ID)
	if err != nil || !c.State.Running || c.State.Restarting {
		return "", false
	}
	if h := c.State.Health; h != nil && h.Status == container.Unhealthy {
		return "", false
	}
	switch {
	case hasHTTP:
		if e.prober.Probe(ctx, endpoint.URL()) != nil {
			return "", false
		}
	case hasTest:
		testTimeout, interval := healthTimes(svc.HealthCheck)
		if !freshHealthy(c.State.Health, interval+testTimeout, e.now()) {
			return "", false
		}
	default:
		return "running", true
	}
	return "healthy", true
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

// execProbe runs the health test inside the container once, when one of
// the engine's exec slots is free: every exec is work for the Docker
// daemon, and a wide stack probing all at once would slow the very
// containers it waits on. The test's timeout starts with the exec.
func (e *Engine) execProbe(ctx context.Context, id string, cmd []string, timeout time.Duration) error {
	select {
	case e.execSlots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-e.execSlots }()
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
