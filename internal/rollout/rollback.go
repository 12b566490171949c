package rollout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/progress"
	"github.com/vmctl/vmctl/internal/release"
)

// rollbackWindow is how many revisions before the running one Rollback looks through for
// the previous release: as many as ECR keeps images for.
const rollbackWindow = ecs.KeepReleases

// RollbackOptions says where a rollback goes.
type RollbackOptions struct {
	// Plan is the environment's plan. With To, it is rendered for release To, and Rollback
	// deploys it like any release (an identical revision that exists is reused, not
	// registered again). Without To only its cluster and services are read.
	Plan     *ecs.Plan
	To       string
	Progress progress.Writer
	Events   io.Writer
	Poll     time.Duration
	// Approved (with To) and ApprovedTarget (without) are the previews a person
	// approved; the rollback stops, writing nothing, if they no longer hold.
	Approved       []Change
	ApprovedTarget *RollbackTarget
}

// RollbackTarget is where a rollback without a named release goes.
type RollbackTarget struct {
	From    string `json:"from"`    // the release the services run
	Release string `json:"release"` // the release before it
	// TaskDefinitions are the revisions that ran it, by service.
	TaskDefinitions map[string]string `json:"taskDefinitions"`
}

// Rollback puts an environment back on an earlier release. Without a named release it goes
// to the one before what runs, as ECS recorded it: for every service, the newest older
// task definition revision whose release differs; the services go back to those revisions
// as they are (only the task definition changes), and the rollout is watched as Deploy's.
func Rollback(ctx context.Context, c aws.Clients, opts RollbackOptions) (*Result, error) {
	if opts.Plan == nil {
		return nil, errors.New("rollback: no plan")
	}
	if opts.To != "" {
		if opts.Plan.Release.ID != opts.To {
			return nil, fmt.Errorf("rollback to %s: the plan is rendered for release %q", opts.To, opts.Plan.Release.ID)
		}
		d := newDeployer(c, opts.Plan, opts.Progress, opts.Events, opts.Poll)
		d.what = fmt.Sprintf("roll %s back to %s", opts.Plan.Environment, opts.To)
		if opts.Plan.Unpinned {
			return nil, fmt.Errorf("%s: release %s has no digest for some images: vmctl deploys by digest only: push it (vmctl push --env %s --release %s)", d.what, opts.To, opts.Plan.Environment, opts.To)
		}
		if err := checkApproved(ctx, c, opts.Plan, opts.Approved); err != nil {
			return nil, err
		}
		return d.run(ctx, nil)
	}
	t, err := PreviousRelease(ctx, c, opts.Plan)
	if err != nil {
		return nil, err
	}
	if opts.ApprovedTarget != nil && !reflect.DeepEqual(t, opts.ApprovedTarget) {
		return nil, fmt.Errorf("roll %s back: it changed between the preview and the approval (the way back is now %s → %s): nothing was written; run the command again", opts.Plan.Environment, t.From, t.Release)
	}
	d := newDeployer(c, opts.Plan, opts.Progress, opts.Events, opts.Poll)
	d.release = t.Release
	d.what = fmt.Sprintf("roll %s back from %s to %s", opts.Plan.Environment, t.From, t.Release)
	return d.run(ctx, t.TaskDefinitions)
}

// PreviousRelease finds the release before the one the plan's services run, and the
// revisions that ran it.
func PreviousRelease(ctx context.Context, c aws.Clients, plan *ecs.Plan) (*RollbackTarget, error) {
	var names []string
	for _, s := range plan.Services {
		names = append(names, s.Name)
	}
	svcs, err := DescribeServices(ctx, c.ECS, plan.Cluster, names)
	if err != nil {
		return nil, err
	}
	hint := fmt.Sprintf("name the release with vmctl rollback --env %s --to R", plan.Environment)
	t := &RollbackTarget{TaskDefinitions: map[string]string{}}
	current, previous := map[string][]string{}, map[string][]string{}
	for _, n := range names {
		svc, ok := svcs[n]
		if !ok {
			return nil, fmt.Errorf("roll back %s: service %s is not deployed: %s", plan.Environment, n, hint)
		}
		td, tags, err := DescribeTaskDef(ctx, c.ECS, sdkaws.ToString(svc.TaskDefinition))
		if err != nil {
			return nil, err
		}
		if td == nil || tags[ReleaseTag] == "" {
			return nil, fmt.Errorf("roll back %s: service %s runs %s, which names no release: %s", plan.Environment, n, familyRevision(sdkaws.ToString(svc.TaskDefinition)), hint)
		}
		from, err := releaseTag(tags)
		if err != nil {
			return nil, fmt.Errorf("roll back %s: service %s runs %s, an unknown release: %w: %s", plan.Environment, n, familyRevision(sdkaws.ToString(svc.TaskDefinition)), err, hint)
		}
		current[from] = append(current[from], n)
		arn, rel, err := previousRevision(ctx, c.ECS, td, from)
		if err != nil {
			return nil, err
		}
		if arn == "" {
			return nil, fmt.Errorf("roll back %s: service %s has no revision of a release before %s among its last %d: %s", plan.Environment, n, from, rollbackWindow, hint)
		}
		previous[rel] = append(previous[rel], n)
		t.TaskDefinitions[n] = arn
	}
	if len(current) > 1 {
		return nil, fmt.Errorf("roll back %s: its services run different releases (%s): %s", plan.Environment, describeGroups(current), hint)
	}
	if len(previous) > 1 {
		return nil, fmt.Errorf("roll back %s: its services ran different releases before (%s): %s", plan.Environment, describeGroups(previous), hint)
	}
	for r := range current {
		t.From = r
	}
	for r := range previous {
		t.Release = r
	}
	return t, nil
}

// previousRevision walks back from the running revision to the newest active one of
// another release.
func previousRevision(ctx context.Context, api aws.ECS, td *ecstypes.TaskDefinition, release string) (string, string, error) {
	family := sdkaws.ToString(td.Family)
	for rev := td.Revision - 1; rev >= 1 && rev >= td.Revision-int32(rollbackWindow); rev-- {
		old, tags, err := DescribeTaskDef(ctx, api, fmt.Sprintf("%s:%d", family, rev))
		if err != nil {
			return "", "", err
		}
		if old == nil || old.Status != ecstypes.TaskDefinitionStatusActive {
			continue
		}
		r, err := releaseTag(tags)
		if err != nil {
			return "", "", fmt.Errorf("roll back: %s:%d, the revision before, runs an unknown release: %w: name the release with vmctl rollback --to R", family, rev, err)
		}
		if r != "" && r != release {
			return sdkaws.ToString(old.TaskDefinitionArn), r, nil
		}
	}
	return "", "", nil
}

func describeGroups(m map[string][]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+": "+strings.Join(m[k], ", "))
	}
	return strings.Join(parts, "; ")
}

// CheckRanBefore refuses a rollback to a release the environment never ran: every
// service must have a revision of it among its recent task definitions (the running
// one and the rollback window before it). Anything else is a deploy, with a deploy's
// checks, not a way back.
func CheckRanBefore(ctx context.Context, c aws.Clients, plan *ecs.Plan, id string) error {
	var names []string
	for _, s := range plan.Services {
		names = append(names, s.Name)
	}
	svcs, err := DescribeServices(ctx, c.ECS, plan.Cluster, names)
	if err != nil {
		return err
	}
	deployHint := fmt.Sprintf("deploy it instead (vmctl deploy --env %s --release %s), with a deploy's checks", plan.Environment, id)
	for _, s := range plan.Services {
		n := s.Name
		svc, ok := svcs[n]
		if !ok {
			return fmt.Errorf("roll %s back to %s: service %s is not deployed there, so %s never ran there: %s", plan.Environment, id, n, id, deployHint)
		}
		td, tags, err := DescribeTaskDef(ctx, c.ECS, sdkaws.ToString(svc.TaskDefinition))
		if err != nil {
			return err
		}
		if td == nil {
			return fmt.Errorf("roll %s back to %s: service %s runs a task definition ECS does not show: %s", plan.Environment, id, n, deployHint)
		}
		ran := []string{tags[ReleaseTag]}
		match := td
		if tags[ReleaseTag] != id {
			match = nil
		}
		family := sdkaws.ToString(td.Family)
		// From the family's newest revision: after a rollback, the release rolled back
		// from is newer than the one running, and is a way back too.
		top := td.Revision
		if latest, _, err := DescribeTaskDef(ctx, c.ECS, family); err != nil {
			return err
		} else if latest != nil {
			top = max(top, latest.Revision)
		}
		for rev := top; rev >= 1 && rev > top-int32(rollbackWindow) && match == nil; rev-- {
			if rev == td.Revision {
				continue
			}
			old, oldTags, err := DescribeTaskDef(ctx, c.ECS, fmt.Sprintf("%s:%d", family, rev))
			if err != nil {
				return err
			}
			r := oldTags[ReleaseTag]
			if r == id {
				match = old
			}
			if r != "" && !slices.Contains(ran, r) {
				ran = append(ran, r)
			}
		}
		if match == nil {
			ran = slices.DeleteFunc(ran, func(r string) bool { return r == "" })
			return fmt.Errorf("roll %s back to %s: %s never ran release %s in %s (its last releases: %s): pick one of those, or %s", plan.Environment, id, n, id, plan.Environment, strings.Join(ran, ", "), deployHint)
		}
		// The way back is what ran, not what the local manifest of that name says now.
		ranDigests := containerDigests(match.ContainerDefinitions)
		for name, want := range containerDigests(s.TaskDefinition.ContainerDefinitions) {
			if got := ranDigests[name]; got != want {
				return fmt.Errorf("roll %s back to %s: %s ran %s of release %s as %s, but the release manifest here says %s: the manifest is not what ran; roll back without --to, or deploy it (vmctl deploy --env %s --release %s)",
					plan.Environment, id, n, name, id, cmpOr(got, "no digest"), cmpOr(want, "no digest"), plan.Environment, id)
			}
		}
	}
	return nil
}

// containerDigests are the image digests of a task definition's containers, by name.
func containerDigests(cds []ecstypes.ContainerDefinition) map[string]string {
	out := map[string]string{}
	for _, cd := range cds {
		out[sdkaws.ToString(cd.Name)] = ImageDigest(sdkaws.ToString(cd.Image))
	}
	return out
}

// TargetRelease is the release a rollback without a named release returns to, with
// the digests its revisions pin, so the scan gate can judge them.
func TargetRelease(ctx context.Context, c aws.Clients, t *RollbackTarget) (*release.Release, error) {
	rel := &release.Release{ID: t.Release, Images: map[string]release.Image{}}
	for svc, arn := range t.TaskDefinitions {
		td, _, err := DescribeTaskDef(ctx, c.ECS, arn)
		if err != nil {
			return nil, err
		}
		if td == nil {
			return nil, fmt.Errorf("task definition %s of %s is gone", familyRevision(arn), svc)
		}
		// Every container, sidecars included: each is a compose service of the release.
		for name, digest := range containerDigests(td.ContainerDefinitions) {
			if digest != "" {
				rel.Images[name] = release.Image{Digest: digest}
			}
		}
	}
	return rel, nil
}
