package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	vmaws "github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/registry"
	"github.com/vmctl/vmctl/internal/release"
	"github.com/vmctl/vmctl/internal/rollout"
)

// scanOverride is what the scan gate let through, and why: recorded in the release
// manifest before the write, and on the services and in the audit log after it.
type scanOverride struct {
	rollout.Override
}

// gateScans is the scan gate of a deploy or rollback into a protected environment:
// images whose scan is missing, failed, unsupported or CRITICAL block it unless allow
// gives a reason. It returns the override to record, nil when nothing was blocked.
func gateScans(ctx context.Context, f *Factory, c vmaws.Clients, env *environment.Environment, id vmaws.Identity, plan *ecs.Plan, rel *release.Release, allow, action string) (*scanOverride, error) {
	if !env.Protected {
		return nil, nil
	}
	blocked, err := registry.CheckScans(ctx, c.ECR, plan, rel, allow, registry.ScanOptions{})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", action, err)
	}
	if len(blocked) == 0 {
		return nil, nil
	}
	fmt.Fprintf(f.IO.ErrOut, "scan gate: %s allowed by --allow-vulnerable (recorded in the release, on the services and in %s): %s\n", registry.DescribeBlocked(blocked), plan.AuditLogGroup.Name, allow)
	return &scanOverride{rollout.Override{Environment: env.Name, Release: rel.ID, Action: action, Reason: allow, By: id.ARN, At: time.Now().UTC(), Images: blocked}}, nil
}

// begin records the override in the release manifest, once approved and before
// anything is written to the environment.
func (o *scanOverride) begin(g *globalOptions) error {
	if o == nil {
		return nil
	}
	if err := recordInRelease(g, o.Override); err != nil {
		return fmt.Errorf("%s: %w: nothing was written to %s", o.Action, err, o.Environment)
	}
	return nil
}

// recordInRelease adds the override to the release's manifest, when the local store
// has it (a release resolved from what runs elsewhere has none here).
func recordInRelease(g *globalOptions, o rollout.Override) error {
	var blocked []string
	for _, s := range o.Images {
		blocked = append(blocked, fmt.Sprintf("%s %s: scan %s, %d CRITICAL", s.Service, s.Digest, s.Status, max(s.Counts["CRITICAL"], int32(len(s.Critical)))))
	}
	_, err := releaseStore(g).RecordOverride(o.Release, release.Override{
		Environment: o.Environment, Action: o.Action, Reason: o.Reason, By: o.By, At: o.At, Blocked: blocked,
	})
	if errors.Is(err, release.ErrNotFound) {
		return nil
	}
	return err
}

// record tags the services and writes the audit event, once the write is done; Ctrl-C
// stops watching, not the rollout of the images let in, so it does not stop the record.
func (o *scanOverride) record(ctx context.Context, c vmaws.Clients, plan *ecs.Plan) error {
	if o == nil {
		return nil
	}
	return rollout.RecordOverride(context.WithoutCancel(ctx), c, plan, o.Override)
}
