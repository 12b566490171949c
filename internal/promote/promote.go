// Package promote takes the release running in one environment to another: verify
// the source, gate on the images' scans, copy the images to the target's registry by
// digest, deploy them there and verify the target.
package promote

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/progress"
	"github.com/vmctl/vmctl/internal/registry"
	"github.com/vmctl/vmctl/internal/release"
	"github.com/vmctl/vmctl/internal/rollout"
	"github.com/vmctl/vmctl/internal/verify"
)

// ErrVerifyFailed is in the error of a promotion that verify refused, so the CLI
// can tell a negative verdict from a failure (the scan gate's is
// registry.ErrVulnerable).
var ErrVerifyFailed = errors.New("verify did not pass")

// TagPromotedFrom records on B's task definitions and services where the release came from.
const TagPromotedFrom = "vmctl:promoted-from"

// Options says what to promote where, and how.
type Options struct {
	From, To string // environment names
	// Render renders an environment's plan for a release: the stack and the
	// environment file, as vmctl plan does.
	Render func(env string, rel release.Release) (*ecs.Plan, error)
	// Resolve turns what A runs into the release to promote: normally the
	// manifest of that id from the release store, checked against the
	// digests. Nil makes a release of the running digests alone.
	Resolve func(id string, digests map[string]string) (*release.Release, error)
	// Approve is asked once the release is known, verified in A and cleared
	// by the scan, before anything is written to B; an error stops there.
	Approve func(ctx context.Context, p Plan) error
	// AllowVulnerable, when not empty, is why CRITICAL findings may ship; it
	// is recorded on B's task definitions and services.
	AllowVulnerable string
	// Actor is who promotes (the caller's ARN in B), for the audit record.
	Actor string

	VerifyFrom, VerifyTo verify.Options
	Progress             progress.Writer
	Events               io.Writer     // B's rollout events, as deploy prints them
	Poll                 time.Duration // passed to Deploy
	ScanTimeout          time.Duration // for an image scan still in progress; 5 min
}

// Plan is what a promotion will do, for approval.
type Plan struct {
	Release         string               `json:"release"`
	Revision        string               `json:"revision,omitempty"`
	From            string               `json:"from"`
	To              string               `json:"to"`
	Images          []registry.Image     `json:"images"`
	FromRegistry    string               `json:"from_registry"`
	ToRegistry      string               `json:"to_registry"`
	SameRegistry    bool                 `json:"same_registry"`
	Vulnerable      []registry.ImageScan `json:"vulnerable,omitempty"`
	AllowVulnerable string               `json:"allow_vulnerable,omitempty"`
}

// Result is what a promotion did; on error it holds what was done.
type Result struct {
	Plan            Plan                 `json:"plan"`
	FromVerify      *verify.Report       `json:"from_verify,omitempty"`
	Scans           []registry.ImageScan `json:"scans,omitempty"`
	AllowVulnerable string               `json:"allow_vulnerable,omitempty"`
	Copies          []registry.Copied    `json:"copies,omitempty"`
	BytesMoved      int64                `json:"bytes_moved"` // layer and config bytes sent between registries
	Deploy          *rollout.Result      `json:"deploy,omitempty"`
	ToVerify        *verify.Report       `json:"to_verify,omitempty"`
}

// Promote takes the release running in A to B: it requires verify A to
// pass, refuses CRITICAL scan findings unless allowed with a reason, copies
// the images to B's registry by digest (a manifest-only retag within one
// registry; a registry-to-registry copy of the missing blobs across
// registries; never a rebuild, never through a Docker Engine), deploys
// them to B and verifies B.
func Promote(ctx context.Context, from, to aws.Clients, opts Options) (*Result, error) {
	if opts.Render == nil {
		return nil, errors.New("promote: a renderer is required")
	}
	pw := opts.Progress
	if pw == nil {
		pw = progress.Discard{}
	}
	res := &Result{Plan: Plan{From: opts.From, To: opts.To, AllowVulnerable: opts.AllowVulnerable}}

	// What A runs.
	bare, err := opts.Render(opts.From, release.Release{})
	if err != nil {
		return res, err
	}
	id, digests, err := rollout.CurrentRelease(ctx, from, bare)
	if err != nil {
		return res, fmt.Errorf("find the release %s runs: %w", opts.From, err)
	}
	if id == "" || len(digests) == 0 {
		return res, fmt.Errorf("%s runs no vmctl release: deploy one there first (vmctl deploy --env %s)", opts.From, opts.From)
	}
	rel, err := resolveRelease(opts, id, digests)
	if err != nil {
		return res, err
	}
	res.Plan.Release, res.Plan.Revision = rel.ID, rel.Revision
	planA, err := opts.Render(opts.From, *rel)
	if err != nil {
		return res, err
	}
	planB, err := opts.Render(opts.To, *rel)
	if err != nil {
		return res, err
	}

	// A must be well before B gets its release.
	res.FromVerify, err = verifyStep(ctx, pw, opts.From, from, planA, rel, opts.VerifyFrom)
	if err != nil {
		return res, err
	}
	if !res.FromVerify.Passed() {
		return res, fmt.Errorf("promote %s from %s: %w in %s: %s: fix %s first (vmctl verify --env %s)", rel.ID, opts.From, ErrVerifyFailed, opts.From, res.FromVerify.Summary(), opts.From, opts.From)
	}

	images, err := registry.PairImages(planA, planB, rel)
	if err != nil {
		return res, err
	}
	res.Plan.Images = images

	res.Scans, res.Plan.Vulnerable, err = registry.GateScans(ctx, from.ECR, images, registry.ScanOptions{Timeout: opts.ScanTimeout, Poll: opts.VerifyFrom.Poll, Progress: pw})
	if err != nil {
		return res, err
	}
	if len(res.Plan.Vulnerable) > 0 {
		if strings.TrimSpace(opts.AllowVulnerable) == "" {
			return res, fmt.Errorf("promote %s to %s: %w: %s: rebuild on patched bases or rescan, or pass --allow-vulnerable \"why\" to ship it anyway (the reason is recorded)", rel.ID, opts.To, registry.ErrVulnerable, registry.DescribeBlocked(res.Plan.Vulnerable))
		}
		res.AllowVulnerable = opts.AllowVulnerable
		pw.Event(progress.Event{Resource: "scan", Status: progress.Warning, Text: "Allowed", Detail: registry.DescribeBlocked(res.Plan.Vulnerable) + ": " + opts.AllowVulnerable})
	}

	regA, err := registry.ECRRegistry(ctx, from.ECR)
	if err != nil {
		return res, fmt.Errorf("%s: %w", opts.From, err)
	}
	regB, err := registry.ECRRegistry(ctx, to.ECR)
	if err != nil {
		return res, fmt.Errorf("%s: %w", opts.To, err)
	}
	res.Plan.FromRegistry, res.Plan.ToRegistry = regA.Host(), regB.Host()
	res.Plan.SameRegistry = regA.Host() == regB.Host()
	if opts.Approve != nil {
		if err := opts.Approve(ctx, res.Plan); err != nil {
			return res, err
		}
		// The approval covers the release shown: if A moved on while a person read it,
		// nothing is written to B.
		idNow, digestsNow, err := rollout.CurrentRelease(ctx, from, bare)
		if err != nil {
			return res, fmt.Errorf("find the release %s runs: %w", opts.From, err)
		}
		if idNow != id || !maps.Equal(digestsNow, digests) {
			return res, fmt.Errorf("promote %s to %s: %s changed between the preview and the approval (it now runs %s): nothing was written to %s; run the command again to approve what runs now", rel.ID, opts.To, opts.From, cmp.Or(idNow, "no vmctl release"), opts.To)
		}
	}

	// Nothing above wrote to B.
	if err := registry.EnsureRepositories(ctx, to.ECR, planB.Repositories); err != nil {
		return res, fmt.Errorf("%s: %w", opts.To, err)
	}
	res.Copies, err = registry.CopyImages(ctx, from.ECR, to.ECR, regA, regB, planB, images, rel.ID, pw)
	for _, c := range res.Copies {
		res.BytesMoved += c.Stats.BytesMoved
	}
	if err != nil {
		return res, err
	}

	recordPromotion(planB, opts.From, res.AllowVulnerable)
	res.Deploy, err = rollout.Deploy(ctx, to, rollout.Options{Plan: planB, Release: rel, Progress: pw, Events: opts.Events, Poll: opts.Poll})
	if res.AllowVulnerable != "" {
		// Recorded whatever the rollout did: the images were let in.
		o := rollout.Override{Environment: opts.To, Release: rel.ID, Action: "promote " + opts.From + " " + opts.To, Reason: res.AllowVulnerable, By: opts.Actor, At: time.Now().UTC(), Images: res.Plan.Vulnerable}
		// Ctrl-C stops watching, not the rollout of the images let in: record anyway.
		if rerr := rollout.RecordOverride(context.WithoutCancel(ctx), to, planB, o); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}
	if err != nil {
		return res, fmt.Errorf("deploy %s to %s: %w", rel.ID, opts.To, err)
	}

	res.ToVerify, err = verifyStep(ctx, pw, opts.To, to, planB, rel, opts.VerifyTo)
	if err != nil {
		return res, err
	}
	if !res.ToVerify.Passed() {
		return res, fmt.Errorf("%s runs %s but %w there: %s: see vmctl verify --env %s, or roll back with vmctl rollback --env %s", opts.To, rel.ID, ErrVerifyFailed, res.ToVerify.Summary(), opts.To, opts.To)
	}
	return res, nil
}

// verifyStep verifies one side of the promotion, reporting it as one progress line.
func verifyStep(ctx context.Context, pw progress.Writer, env string, c aws.Clients, plan *ecs.Plan, rel *release.Release, opts verify.Options) (*verify.Report, error) {
	pw.Event(progress.Event{Resource: "verify " + env, Status: progress.Working, Text: "Verifying", Detail: "release " + rel.ID})
	if opts.Progress == nil {
		opts.Progress = pw
	}
	rep, err := verify.Verify(ctx, c, plan, rel, opts)
	if err != nil {
		return rep, err
	}
	status, text := progress.Done, "Verified"
	if !rep.Passed() {
		status, text = progress.Error, "Not verified"
	}
	pw.Event(progress.Event{Resource: "verify " + env, Status: status, Text: text, Detail: rep.Summary()})
	return rep, nil
}

// resolveRelease is the release A runs, with exactly the digests it runs.
func resolveRelease(opts Options, id string, digests map[string]string) (*release.Release, error) {
	if opts.Resolve == nil {
		rel := &release.Release{ID: id, Images: map[string]release.Image{}}
		for svc, d := range digests {
			rel.Images[svc] = release.Image{Digest: d}
		}
		return rel, rel.Validate()
	}
	rel, err := opts.Resolve(id, digests)
	if err != nil {
		return nil, err
	}
	for svc, d := range digests {
		if got := rel.Images[svc].Digest; got != d {
			return nil, fmt.Errorf("%s runs %s %s, but release %s has %s: the environment does not run the release it names; redeploy it (vmctl deploy --env %s --release %s)", opts.From, svc, registry.ShortDigest(d), id, cmp.Or(registry.ShortDigest(got), "no digest"), opts.From, id)
		}
	}
	return rel, nil
}

// recordPromotion tags B's task definitions and services with where the
// release came from and, when CRITICAL findings were allowed, why.
func recordPromotion(plan *ecs.Plan, from, allowVulnerable string) {
	tags := map[string]string{TagPromotedFrom: from}
	if allowVulnerable != "" {
		tags[rollout.TagAllowVulnerable] = rollout.TagValue(allowVulnerable)
	}
	for i := range plan.Services {
		s := &plan.Services[i]
		for _, k := range slices.Sorted(maps.Keys(tags)) {
			s.TaskDefinition.Tags = setTag(s.TaskDefinition.Tags, k, tags[k])
			s.Service.Tags = setTag(s.Service.Tags, k, tags[k])
		}
	}
}

func setTag(tags []ecstypes.Tag, k, v string) []ecstypes.Tag {
	tags = slices.DeleteFunc(slices.Clone(tags), func(t ecstypes.Tag) bool { return sdkaws.ToString(t.Key) == k })
	return append(tags, ecstypes.Tag{Key: sdkaws.String(k), Value: sdkaws.String(v)})
}
