package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	logtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/progress"
	"github.com/vmctl/vmctl/internal/release"
)

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
func GateScans(ctx context.Context, api ECRAll, images []PromoteImage, opts ScanOptions) (scans, blocked []ImageScan, err error) {
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
func ReleaseImages(plan *ecs.Plan, rel *release.Release) ([]PromoteImage, error) {
	return promoteImages(plan, plan, rel)
}

// CheckScans is the scan gate of a write into an environment: it returns the blocked
// images, or an error wrapping ErrVulnerable when some are blocked and no reason
// allows them. what names the write for the message.
func CheckScans(ctx context.Context, api ECRAll, plan *ecs.Plan, rel *release.Release, allow string, opts ScanOptions) ([]ImageScan, error) {
	images, err := ReleaseImages(plan, rel)
	if err != nil {
		return nil, err
	}
	_, blocked, err := GateScans(ctx, api, images, opts)
	if err != nil {
		return nil, err
	}
	if len(blocked) > 0 && strings.TrimSpace(allow) == "" {
		return blocked, fmt.Errorf("%w for release %s in %s: %s: rebuild on patched bases or rescan, or pass --allow-vulnerable \"why\" to ship it anyway (the reason is recorded)", ErrVulnerable, rel.ID, plan.Environment, describeVulnerable(blocked))
	}
	return blocked, nil
}

// Override is a recorded decision to ship images the scan gate blocked.
type Override struct {
	Event       string      `json:"event"` // "allow-vulnerable"
	Environment string      `json:"environment"`
	Release     string      `json:"release"`
	Action      string      `json:"action"` // deploy, promote, rollback
	Reason      string      `json:"reason"`
	By          string      `json:"by"` // the caller's ARN
	At          time.Time   `json:"at"`
	Images      []ImageScan `json:"images"`
}

// Audit is the part of CloudWatch Logs that keeps the environment's audit trail.
type Audit interface {
	CreateLogGroup(ctx context.Context, in *cloudwatchlogs.CreateLogGroupInput, opts ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.CreateLogGroupOutput, error)
	PutRetentionPolicy(ctx context.Context, in *cloudwatchlogs.PutRetentionPolicyInput, opts ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.PutRetentionPolicyOutput, error)
	CreateLogStream(ctx context.Context, in *cloudwatchlogs.CreateLogStreamInput, opts ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.CreateLogStreamOutput, error)
	PutLogEvents(ctx context.Context, in *cloudwatchlogs.PutLogEventsInput, opts ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.PutLogEventsOutput, error)
}

// RecordOverride makes an override durable in AWS: a tag on every service of the plan
// (TagResource: UpdateService carries no tags, so a tag set at creation would be the
// first override's forever) and an event in the environment's audit log group, which
// is created with the environment's audit retention when missing.
func RecordOverride(ctx context.Context, c Clients, plan *ecs.Plan, o Override) error {
	o.Event = "allow-vulnerable"
	tag := []ecstypes.Tag{{Key: sdkaws.String(TagAllowVulnerable), Value: sdkaws.String(tagValue(o.Release + ": " + o.Reason))}}
	for _, s := range plan.Services {
		arn, err := serviceARN(ctx, c.ECS, plan.Cluster, s.Name)
		if err != nil {
			return fmt.Errorf("record the override on %s: %w", s.Name, err)
		}
		if arn == "" {
			continue // not created: nothing runs the blocked image there
		}
		if _, err := c.ECS.TagResource(ctx, &awsecs.TagResourceInput{ResourceArn: sdkaws.String(arn), Tags: tag}); err != nil {
			return fmt.Errorf("record the override on %s: %w", s.Name, err)
		}
	}
	return WriteAudit(ctx, c.Audit, plan.AuditLogGroup, o)
}

// WriteAudit appends one JSON event to the audit log group, making sure the group
// exists with its retention first.
func WriteAudit(ctx context.Context, api Audit, group ecs.LogGroup, event any) error {
	if api == nil || group.Name == "" {
		return errors.New("write the audit event: the environment has no audit log group")
	}
	_, err := api.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: sdkaws.String(group.Name)})
	var exists *logtypes.ResourceAlreadyExistsException
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("create the audit log group %s: %w", group.Name, err)
	}
	if group.RetentionDays > 0 {
		if _, err := api.PutRetentionPolicy(ctx, &cloudwatchlogs.PutRetentionPolicyInput{LogGroupName: sdkaws.String(group.Name), RetentionInDays: sdkaws.Int32(int32(group.RetentionDays))}); err != nil {
			return fmt.Errorf("set the retention of %s: %w", group.Name, err)
		}
	}
	msg, err := json.Marshal(event)
	if err != nil {
		return err
	}
	now := time.Now()
	stream := "vmctl/" + now.UTC().Format("20060102T150405.000000000Z")
	if _, err := api.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: sdkaws.String(group.Name), LogStreamName: sdkaws.String(stream)}); err != nil {
		return fmt.Errorf("write the audit event to %s: %w", group.Name, err)
	}
	_, err = api.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{
		LogGroupName: sdkaws.String(group.Name), LogStreamName: sdkaws.String(stream),
		LogEvents: []logtypes.InputLogEvent{{Message: sdkaws.String(string(msg)), Timestamp: sdkaws.Int64(now.UnixMilli())}},
	})
	if err != nil {
		return fmt.Errorf("write the audit event to %s: %w", group.Name, err)
	}
	return nil
}

// serviceARN is the ARN of a service that is not deleted, or "" when there is none.
func serviceARN(ctx context.Context, api ECS, cluster, name string) (string, error) {
	svcs, err := describeServices(ctx, api, cluster, []string{name})
	if err != nil {
		return "", err
	}
	return sdkaws.ToString(svcs[name].ServiceArn), nil
}

// DescribeBlocked names each blocked image and why, in one clause each.
func DescribeBlocked(scans []ImageScan) string { return describeVulnerable(scans) }
