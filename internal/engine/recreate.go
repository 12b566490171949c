package engine

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/vmctl/vmctl/internal/progress"
	"github.com/vmctl/vmctl/internal/stack"
)

// Recreate brings one service's container in line with its current image
// and waits until it is ready, touching no other service: `vmctl watch`
// calls it after rebuilding the image, where `up` would also converge
// the dependencies (and recreate every service sharing the image). It
// returns the readiness up reports ("healthy", "running"), or
// "unchanged" when the container already runs that image and config.
func (e *Engine) Recreate(ctx context.Context, st *stack.Stack, service string, waitTimeout time.Duration, pw progress.Writer) (string, error) {
	if pw == nil {
		pw = progress.Discard{}
	}
	if waitTimeout <= 0 {
		waitTimeout = 3 * time.Minute
	}
	svc, err := st.Service(service)
	if err != nil {
		return "", err
	}
	existing, err := e.projectContainers(ctx, st.Name())
	if err != nil {
		return "", err
	}
	id, err := e.ImageID(ctx, ImageName(st.Name(), svc))
	if err != nil {
		return "", err
	}
	if id == "" {
		return "", fmt.Errorf("service %s: image %s is missing: build it with vmctl build %s", service, ImageName(st.Name(), svc), service)
	}
	// Keep the GPU decision up made: watch has no --gpu of its own.
	gpuOn := existing[service].Labels[LabelGPU] == "on"
	plan, err := planServices(st, []string{service}, existing, map[string]string{service: id}, map[string]bool{service: gpuOn})
	if err != nil {
		return "", err
	}
	p := plan[service]
	if p.act == actKeep {
		return "unchanged", nil
	}
	waitCtx, cancel := context.WithTimeout(ctx, waitTimeout)
	defer cancel()
	cid, err := e.converge(waitCtx, st, p, strconv.FormatInt(e.now().UnixNano(), 36), pw)
	if err != nil {
		return "", &ServiceError{Service: service, Err: err}
	}
	res, err := e.waitReady(waitCtx, st, service, cid, false)
	if err != nil {
		return "", &ServiceError{Service: service, Err: err, Logs: e.tail(context.WithoutCancel(ctx), cid, 20)}
	}
	return res, nil
}
