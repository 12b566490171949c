package deploy

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
	"unicode"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/progress"
	"github.com/vmctl/vmctl/internal/release"
)

// Errors a refused or unfinished promotion wraps, so the CLI can tell a
// negative verdict from a failure.
var (
	ErrVerifyFailed = errors.New("verify did not pass")
	ErrVulnerable   = errors.New("the scan gate is closed")
)

// Tags that record a promotion on B's task definitions and services.
const (
	TagPromotedFrom    = "vmctl:promoted-from"
	TagAllowVulnerable = "vmctl:allow-vulnerable"
)

// PromoteOptions says what to promote where, and how.
type PromoteOptions struct {
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
	Approve func(ctx context.Context, p PromotePlan) error
	// AllowVulnerable, when not empty, is why CRITICAL findings may ship; it
	// is recorded on B's task definitions and services.
	AllowVulnerable string
	// Actor is who promotes (the caller's ARN in B), for the audit record.
	Actor string

	VerifyFrom, VerifyTo VerifyOptions
	Progress             progress.Writer
	Events               io.Writer     // B's rollout events, as deploy prints them
	Poll                 time.Duration // passed to Deploy
	ScanTimeout          time.Duration // for an image scan still in progress; 5 min
}

// PromotePlan is what a promotion will do, for approval.
type PromotePlan struct {
	Release         string         `json:"release"`
	Revision        string         `json:"revision,omitempty"`
	From            string         `json:"from"`
	To              string         `json:"to"`
	Images          []PromoteImage `json:"images"`
	FromRegistry    string         `json:"from_registry"`
	ToRegistry      string         `json:"to_registry"`
	SameRegistry    bool           `json:"same_registry"`
	Vulnerable      []ImageScan    `json:"vulnerable,omitempty"`
	AllowVulnerable string         `json:"allow_vulnerable,omitempty"`
}

// PromoteImage is one image and the repositories it goes between.
type PromoteImage struct {
	Services []string `json:"services"`
	From     string   `json:"from"` // A's repository
	To       string   `json:"to"`   // B's repository
	Digest   string   `json:"digest"`
}

// ImageScan is an image's ECR scan as promote judged it.
type ImageScan struct {
	Service    string           `json:"service"`
	Repository string           `json:"repository"`
	Digest     string           `json:"digest"`
	Status     string           `json:"status"` // COMPLETE, NOT_SCANNED, FAILED, …
	Counts     map[string]int32 `json:"counts,omitempty"`
	Critical   []string         `json:"critical,omitempty"` // CVE names
}

// Copied is one image's copy to B.
type Copied struct {
	PromoteImage
	// Method: present (B had it), retag (a manifest put into B's repository),
	// or copy (blobs mounted or sent over the distribution API).
	Method string    `json:"method"`
	Stats  CopyStats `json:"stats"`
}

// PromoteResult is what a promotion did; on error it holds what was done.
type PromoteResult struct {
	Plan            PromotePlan   `json:"plan"`
	FromVerify      *VerifyReport `json:"from_verify,omitempty"`
	Scans           []ImageScan   `json:"scans,omitempty"`
	AllowVulnerable string        `json:"allow_vulnerable,omitempty"`
	Copies          []Copied      `json:"copies,omitempty"`
	BytesMoved      int64         `json:"bytes_moved"` // layer and config bytes sent between registries
	Deploy          *Result       `json:"deploy,omitempty"`
	ToVerify        *VerifyReport `json:"to_verify,omitempty"`
}

// Promote takes the release running in A to B: it requires verify A to
// pass, refuses CRITICAL scan findings unless allowed with a reason, copies
// the images to B's registry by digest (a manifest-only retag within one
// registry; a registry-to-registry copy of the missing blobs across
// registries; never a rebuild, never through a Docker Engine), deploys
// them to B and verifies B.
func Promote(ctx context.Context, from, to Clients, opts PromoteOptions) (*PromoteResult, error) {
	if opts.Render == nil {
		return nil, errors.New("promote: a renderer is required")
	}
	pw := opts.Progress
	if pw == nil {
		pw = progress.Discard{}
	}
	res := &PromoteResult{Plan: PromotePlan{From: opts.From, To: opts.To, AllowVulnerable: opts.AllowVulnerable}}

	// What A runs.
	bare, err := opts.Render(opts.From, release.Release{})
	if err != nil {
		return res, err
	}
	id, digests, err := CurrentRelease(ctx, from, bare)
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
	pw.Event(progress.Event{Resource: "verify " + opts.From, Status: progress.Working, Text: "Verifying", Detail: "release " + rel.ID})
	vf := opts.VerifyFrom
	if vf.Progress == nil {
		vf.Progress = pw
	}
	res.FromVerify, err = Verify(ctx, from, planA, rel, vf)
	if err != nil {
		return res, err
	}
	if !res.FromVerify.Passed() {
		pw.Event(progress.Event{Resource: "verify " + opts.From, Status: progress.Error, Text: "Not verified", Detail: res.FromVerify.Summary()})
		return res, fmt.Errorf("promote %s from %s: %w in %s: %s: fix %s first (vmctl verify --env %s)", rel.ID, opts.From, ErrVerifyFailed, opts.From, res.FromVerify.Summary(), opts.From, opts.From)
	}
	pw.Event(progress.Event{Resource: "verify " + opts.From, Status: progress.Done, Text: "Verified", Detail: res.FromVerify.Summary()})

	images, err := promoteImages(planA, planB, rel)
	if err != nil {
		return res, err
	}
	res.Plan.Images = images

	res.Scans, res.Plan.Vulnerable, err = GateScans(ctx, from.ECR, images, ScanOptions{Timeout: opts.ScanTimeout, Poll: opts.VerifyFrom.Poll, Progress: pw})
	if err != nil {
		return res, err
	}
	if len(res.Plan.Vulnerable) > 0 {
		if strings.TrimSpace(opts.AllowVulnerable) == "" {
			return res, fmt.Errorf("promote %s to %s: %w: %s: rebuild on patched bases or rescan, or pass --allow-vulnerable \"why\" to ship it anyway (the reason is recorded)", rel.ID, opts.To, ErrVulnerable, describeVulnerable(res.Plan.Vulnerable))
		}
		res.AllowVulnerable = opts.AllowVulnerable
		pw.Event(progress.Event{Resource: "scan", Status: progress.Warning, Text: "Allowed", Detail: describeVulnerable(res.Plan.Vulnerable) + ": " + opts.AllowVulnerable})
	}

	regA, err := ECRRegistry(ctx, from.ECR)
	if err != nil {
		return res, fmt.Errorf("%s: %w", opts.From, err)
	}
	regB, err := ECRRegistry(ctx, to.ECR)
	if err != nil {
		return res, fmt.Errorf("%s: %w", opts.To, err)
	}
	res.Plan.FromRegistry, res.Plan.ToRegistry = regA.Host(), regB.Host()
	res.Plan.SameRegistry = regA.Host() == regB.Host()
	if opts.Approve != nil {
		if err := opts.Approve(ctx, res.Plan); err != nil {
			return res, err
		}
	}

	// Nothing above wrote to B.
	if err := EnsureRepositories(ctx, to.ECR, planB.Repositories); err != nil {
		return res, fmt.Errorf("%s: %w", opts.To, err)
	}
	res.Copies, err = copyImages(ctx, from, to, regA, regB, planB, images, rel.ID, pw)
	for _, c := range res.Copies {
		res.BytesMoved += c.Stats.BytesMoved
	}
	if err != nil {
		return res, err
	}

	recordPromotion(planB, opts.From, res.AllowVulnerable)
	res.Deploy, err = Deploy(ctx, to, Options{Plan: planB, Release: rel, Progress: pw, Events: opts.Events, Poll: opts.Poll})
	if res.AllowVulnerable != "" {
		// Recorded whatever the rollout did: the images were let in.
		o := Override{Environment: opts.To, Release: rel.ID, Action: "promote " + opts.From + " " + opts.To, Reason: res.AllowVulnerable, By: opts.Actor, At: time.Now().UTC(), Images: res.Plan.Vulnerable}
		if rerr := RecordOverride(ctx, to, planB, o); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}
	if err != nil {
		return res, fmt.Errorf("deploy %s to %s: %w", rel.ID, opts.To, err)
	}

	pw.Event(progress.Event{Resource: "verify " + opts.To, Status: progress.Working, Text: "Verifying", Detail: "release " + rel.ID})
	vt := opts.VerifyTo
	if vt.Progress == nil {
		vt.Progress = pw
	}
	res.ToVerify, err = Verify(ctx, to, planB, rel, vt)
	if err != nil {
		return res, err
	}
	if !res.ToVerify.Passed() {
		pw.Event(progress.Event{Resource: "verify " + opts.To, Status: progress.Error, Text: "Not verified", Detail: res.ToVerify.Summary()})
		return res, fmt.Errorf("%s runs %s but %w there: %s: see vmctl verify --env %s, or roll back with vmctl rollback --env %s", opts.To, rel.ID, ErrVerifyFailed, res.ToVerify.Summary(), opts.To, opts.To)
	}
	pw.Event(progress.Event{Resource: "verify " + opts.To, Status: progress.Done, Text: "Verified", Detail: res.ToVerify.Summary()})
	return res, nil
}

// resolveRelease is the release A runs, with exactly the digests it runs.
func resolveRelease(opts PromoteOptions, id string, digests map[string]string) (*release.Release, error) {
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
			return nil, fmt.Errorf("%s runs %s %s, but release %s has %s: the environment does not run the release it names; redeploy it (vmctl deploy --env %s --release %s)", opts.From, svc, shortDigest(d), id, cmp.Or(shortDigest(got), "no digest"), opts.From, id)
		}
	}
	return rel, nil
}

// promoteImages pairs each image of the release with its repository in A
// and in B.
func promoteImages(planA, planB *ecs.Plan, rel *release.Release) ([]PromoteImage, error) {
	repoA := map[string]string{}
	for _, r := range planA.Repositories {
		for _, svc := range r.Services {
			repoA[svc] = r.Name
		}
	}
	var out []PromoteImage
	for _, r := range planB.Repositories {
		for _, svc := range r.Services {
			d := rel.Images[svc].Digest
			if d == "" {
				return nil, fmt.Errorf("release %s has no digest for %s: push it first (vmctl push)", rel.ID, svc)
			}
			src, ok := repoA[svc]
			if !ok {
				return nil, fmt.Errorf("%s is not in %s's plan", svc, planA.Environment)
			}
			i := slices.IndexFunc(out, func(p PromoteImage) bool { return p.To == r.Name && p.Digest == d })
			if i >= 0 {
				out[i].Services = append(out[i].Services, svc)
				continue
			}
			out = append(out, PromoteImage{Services: []string{svc}, From: src, To: r.Name, Digest: d})
		}
	}
	return out, nil
}

func describeVulnerable(scans []ImageScan) string {
	var parts []string
	for _, s := range scans {
		if !scanFinished(s) {
			parts = append(parts, fmt.Sprintf("%s %s: scan %s", s.Service, shortDigest(s.Digest), cmp.Or(s.Status, "missing")))
			continue
		}
		what := fmt.Sprintf("%d CRITICAL", max(s.Counts["CRITICAL"], int32(len(s.Critical))))
		if len(s.Critical) > 0 {
			what += " (" + strings.Join(firstN(s.Critical, 3), ", ") + ")"
		}
		parts = append(parts, fmt.Sprintf("%s %s: %s", s.Service, shortDigest(s.Digest), what))
	}
	return strings.Join(parts, "; ")
}

// scanImages reads each image's ECR scan in its repository, waiting for one in progress.
func scanImages(ctx context.Context, api ECRAll, images []PromoteImage, opts ScanOptions) ([]ImageScan, error) {
	timeout := cmp.Or(opts.Timeout, 5*time.Minute)
	poll := cmp.Or(opts.Poll, 2*time.Second)
	pw := opts.Progress
	if pw == nil {
		pw = progress.Discard{}
	}
	var out []ImageScan
	for _, img := range images {
		s, err := scanImage(ctx, api, img, timeout, poll)
		if err != nil {
			return out, err
		}
		status, detail := progress.Done, s.Status
		switch {
		case len(s.Critical) > 0 || s.Counts["CRITICAL"] > 0:
			status, detail = progress.Error, describeVulnerable([]ImageScan{s})
		case !scanFinished(s):
			status = progress.Error
		}
		pw.Event(progress.Event{Resource: "scan " + strings.Join(img.Services, ","), Status: status, Text: "Scanned", Detail: detail})
		out = append(out, s)
	}
	return out, nil
}

func scanImage(ctx context.Context, api ECRAll, img PromoteImage, timeout, poll time.Duration) (ImageScan, error) {
	s := ImageScan{Service: strings.Join(img.Services, ","), Repository: img.From, Digest: img.Digest}
	deadline := time.Now().Add(timeout)
	for {
		in := &ecr.DescribeImageScanFindingsInput{RepositoryName: sdkaws.String(img.From), ImageId: &ecrtypes.ImageIdentifier{ImageDigest: sdkaws.String(img.Digest)}}
		s.Critical, s.Counts = nil, nil
		var status string
		for {
			out, err := api.DescribeImageScanFindings(ctx, in)
			var nf *ecrtypes.ScanNotFoundException
			if errors.As(err, &nf) {
				// Nothing to judge; push turns scan on push on, so this is rare.
				s.Status = "NOT_SCANNED"
				return s, nil
			}
			if err != nil {
				return s, fmt.Errorf("read the scan of %s@%s: %w", img.From, img.Digest, err)
			}
			if out.ImageScanStatus != nil {
				status = string(out.ImageScanStatus.Status)
			}
			if f := out.ImageScanFindings; f != nil {
				if s.Counts == nil && len(f.FindingSeverityCounts) > 0 {
					s.Counts = f.FindingSeverityCounts
				}
				for _, x := range f.Findings {
					if x.Severity == ecrtypes.FindingSeverityCritical {
						s.Critical = append(s.Critical, sdkaws.ToString(x.Name))
					}
				}
				for _, x := range f.EnhancedFindings {
					if strings.EqualFold(sdkaws.ToString(x.Severity), "CRITICAL") {
						name := sdkaws.ToString(x.Title)
						if x.PackageVulnerabilityDetails != nil {
							name = cmp.Or(sdkaws.ToString(x.PackageVulnerabilityDetails.VulnerabilityId), name)
						}
						s.Critical = append(s.Critical, name)
					}
				}
			}
			if out.NextToken == nil {
				break
			}
			in.NextToken = out.NextToken
		}
		s.Status = status
		switch ecrtypes.ScanStatus(status) {
		case ecrtypes.ScanStatusInProgress, ecrtypes.ScanStatusPending:
		default:
			s.Critical = dedupe(s.Critical)
			return s, nil
		}
		if time.Now().After(deadline) || !sleepCtx(ctx, poll) {
			if ctx.Err() != nil {
				return s, ctx.Err()
			}
			return s, fmt.Errorf("the scan of %s@%s is still %s after %s: promote once it finishes, or pass --allow-vulnerable \"why\"", img.From, shortDigest(img.Digest), status, timeout)
		}
	}
}

// copyImages puts every image into B's repositories by digest, tagged with
// the release id.
func copyImages(ctx context.Context, from, to Clients, regA, regB Registry, planB *ecs.Plan, images []PromoteImage, tag string, pw progress.Writer) ([]Copied, error) {
	same := regA.Host() == regB.Host()
	var reposB []string
	for _, r := range planB.Repositories {
		reposB = append(reposB, r.Name)
	}
	var out []Copied
	for _, img := range images {
		res := "copy " + strings.Join(img.Services, ",")
		c := Copied{PromoteImage: img}
		srcRepo, dstRepo := img.From, img.To
		pw.Event(progress.Event{Resource: res, Status: progress.Working, Text: "Copying", Detail: regB.Host() + "/" + dstRepo + "@" + img.Digest})
		var err error
		if same {
			var changed bool
			changed, err = RetagImage(ctx, from.ECR, to.ECR, srcRepo, dstRepo, img.Digest, tag)
			c.Method = map[bool]string{true: "retag", false: "present"}[changed]
			if errors.Is(err, errNeedBlobs) {
				// The layers are in this registry, under A's repository: mount them.
				c.Method = "copy"
				c.Stats, err = CopyImage(ctx, regA, srcRepo, regB, dstRepo, img.Digest, []string{tag}, append([]string{srcRepo}, reposB...))
			}
		} else {
			c.Method = "copy"
			c.Stats, err = CopyImage(ctx, regA, srcRepo, regB, dstRepo, img.Digest, []string{tag}, reposB)
			if err == nil && c.Stats.Manifests == 0 {
				c.Method = "present"
			}
		}
		if err != nil {
			pw.Event(progress.Event{Resource: res, Status: progress.Error, Text: "Copy failed", Detail: err.Error()})
			return out, fmt.Errorf("copy %s to %s: %w", strings.Join(img.Services, ","), planB.Environment, err)
		}
		// B's ECR must now hold the digest, whichever way it got there.
		if _, err := to.ECR.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: sdkaws.String(dstRepo), ImageIds: []ecrtypes.ImageIdentifier{{ImageDigest: sdkaws.String(img.Digest)}}}); err != nil {
			return out, fmt.Errorf("copy %s to %s: ECR does not show %s@%s: %w", strings.Join(img.Services, ","), planB.Environment, dstRepo, img.Digest, err)
		}
		pw.Event(progress.Event{Resource: res, Status: progress.Done, Text: c.Method, Detail: fmt.Sprintf("%s, %d bytes moved", shortDigest(img.Digest), c.Stats.BytesMoved)})
		out = append(out, c)
	}
	return out, nil
}

// recordPromotion tags B's task definitions and services with where the
// release came from and, when CRITICAL findings were allowed, why.
func recordPromotion(plan *ecs.Plan, from, allowVulnerable string) {
	tags := map[string]string{TagPromotedFrom: from}
	if allowVulnerable != "" {
		tags[TagAllowVulnerable] = tagValue(allowVulnerable)
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

// tagValue fits free text into an ECS tag value: at most 256 characters that are
// letters and digits in any script, spaces, and _ . : / = + - @ (AWS's tag rule), so a
// reason written in Japanese is kept, not emptied.
func tagValue(s string) string {
	clean := strings.Map(func(r rune) rune {
		switch {
		case unicode.IsLetter(r), unicode.IsNumber(r), unicode.IsMark(r), strings.ContainsRune(" _.:/=+-@", r):
			return r
		}
		return ' '
	}, s)
	clean = strings.Join(strings.Fields(clean), " ")
	if r := []rune(clean); len(r) > 256 {
		clean = string(r[:256])
	}
	return clean
}
