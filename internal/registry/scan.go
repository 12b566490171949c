package registry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"

	"github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/progress"
	"github.com/vmctl/vmctl/internal/release"
)

// ErrVulnerable is in the error of a write the scan gate refused, so the CLI can tell a
// negative verdict from a failure.
var ErrVulnerable = errors.New("the scan gate is closed")

// Image is one image and the repositories it goes between.
type Image struct {
	Services []string `json:"services"`
	From     string   `json:"from"` // A's repository
	To       string   `json:"to"`   // B's repository
	Digest   string   `json:"digest"`
}

// ImageScan is an image's ECR scan as the scan gate judged it.
type ImageScan struct {
	Service    string           `json:"service"`
	Repository string           `json:"repository"`
	Digest     string           `json:"digest"`
	Status     string           `json:"status"` // COMPLETE, NOT_SCANNED, FAILED, …
	Counts     map[string]int32 `json:"counts,omitempty"`
	Critical   []string         `json:"critical,omitempty"` // CVE names
}

// ScanOptions tunes how long the scan gate waits for a scan in progress.
type ScanOptions struct {
	Timeout  time.Duration // 5 min
	Poll     time.Duration // 2 s
	Progress progress.Writer
}

// GateScans reads each image's ECR scan and returns the scans and the images the
// gate blocks. The gate fails closed: CRITICAL findings block, and so does a scan
// that is missing, failed, unsupported or otherwise not finished, since an image
// nobody scanned is not an image known to be clean.
func GateScans(ctx context.Context, api aws.ECRAll, images []Image, opts ScanOptions) (scans, blocked []ImageScan, err error) {
	scans, err = scanImages(ctx, api, images, opts)
	if err != nil {
		return scans, nil, err
	}
	for _, s := range scans {
		if !scanFinished(s) || len(s.Critical) > 0 || s.Counts["CRITICAL"] > 0 {
			blocked = append(blocked, s)
		}
	}
	return scans, blocked, nil
}

// scanFinished: ECR finished scanning the image (basic scanning says COMPLETE,
// enhanced scanning ACTIVE).
func scanFinished(s ImageScan) bool {
	return s.Status == string(ecrtypes.ScanStatusComplete) || s.Status == string(ecrtypes.ScanStatusActive)
}

// ReleaseImages pairs each image of a release with its repository in the plan's
// registry, for the scan gate of a deploy or rollback.
func ReleaseImages(plan *ecs.Plan, rel *release.Release) ([]Image, error) {
	return PairImages(plan, plan, rel)
}

// PairImages pairs each image of the release with its repository in A
// and in B.
func PairImages(planA, planB *ecs.Plan, rel *release.Release) ([]Image, error) {
	repoA := map[string]string{}
	for _, r := range planA.Repositories {
		for _, svc := range r.Services {
			repoA[svc] = r.Name
		}
	}
	var out []Image
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
			i := slices.IndexFunc(out, func(p Image) bool { return p.To == r.Name && p.Digest == d })
			if i >= 0 {
				out[i].Services = append(out[i].Services, svc)
				continue
			}
			out = append(out, Image{Services: []string{svc}, From: src, To: r.Name, Digest: d})
		}
	}
	return out, nil
}

// CheckScans is the scan gate of a write into an environment: it returns the blocked
// images, or an error wrapping ErrVulnerable when some are blocked and no reason
// allows them. what names the write for the message.
func CheckScans(ctx context.Context, api aws.ECRAll, plan *ecs.Plan, rel *release.Release, allow string, opts ScanOptions) ([]ImageScan, error) {
	images, err := ReleaseImages(plan, rel)
	if err != nil {
		return nil, err
	}
	_, blocked, err := GateScans(ctx, api, images, opts)
	if err != nil {
		return nil, err
	}
	if len(blocked) > 0 && strings.TrimSpace(allow) == "" {
		return blocked, fmt.Errorf("%w for release %s in %s: %s: rebuild on patched bases or rescan, or pass --allow-vulnerable \"why\" to ship it anyway (the reason is recorded)", ErrVulnerable, rel.ID, plan.Environment, DescribeBlocked(blocked))
	}
	return blocked, nil
}

// DescribeBlocked names each blocked image and why, in one clause each.
func DescribeBlocked(scans []ImageScan) string {
	var parts []string
	for _, s := range scans {
		if !scanFinished(s) {
			parts = append(parts, fmt.Sprintf("%s %s: scan %s", s.Service, ShortDigest(s.Digest), cmp.Or(s.Status, "missing")))
			continue
		}
		what := fmt.Sprintf("%d CRITICAL", max(s.Counts["CRITICAL"], int32(len(s.Critical))))
		if len(s.Critical) > 0 {
			what += " (" + strings.Join(FirstN(s.Critical, 3), ", ") + ")"
		}
		parts = append(parts, fmt.Sprintf("%s %s: %s", s.Service, ShortDigest(s.Digest), what))
	}
	return strings.Join(parts, "; ")
}

// scanImages reads each image's ECR scan in its repository, waiting for one in progress.
func scanImages(ctx context.Context, api aws.ECRAll, images []Image, opts ScanOptions) ([]ImageScan, error) {
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
			status, detail = progress.Error, DescribeBlocked([]ImageScan{s})
		case !scanFinished(s):
			status = progress.Error
		}
		pw.Event(progress.Event{Resource: "scan " + strings.Join(img.Services, ","), Status: status, Text: "Scanned", Detail: detail})
		out = append(out, s)
	}
	return out, nil
}

func scanImage(ctx context.Context, api aws.ECRAll, img Image, timeout, poll time.Duration) (ImageScan, error) {
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
			s.Critical = Dedupe(s.Critical)
			return s, nil
		}
		if time.Now().After(deadline) || !SleepCtx(ctx, poll) {
			if ctx.Err() != nil {
				return s, ctx.Err()
			}
			return s, fmt.Errorf("the scan of %s@%s is still %s after %s: run the command again once it finishes, or pass --allow-vulnerable \"why\"", img.From, ShortDigest(img.Digest), status, timeout)
		}
	}
}
