package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	logtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/registry"
)

// TagAllowVulnerable records on task definitions and services why images the scan
// gate blocked were let in.
const TagAllowVulnerable = "vmctl:allow-vulnerable"

// Override is a recorded decision to ship images the scan gate blocked.
type Override struct {
	Event       string               `json:"event"` // "allow-vulnerable"
	Environment string               `json:"environment"`
	Release     string               `json:"release"`
	Action      string               `json:"action"` // deploy, promote, rollback
	Reason      string               `json:"reason"`
	By          string               `json:"by"` // the caller's ARN
	At          time.Time            `json:"at"`
	Images      []registry.ImageScan `json:"images"`
}

// RecordOverride makes an override durable in AWS: a tag on every service of the plan
// (TagResource: UpdateService carries no tags, so a tag set at creation would be the
// first override's forever) and an event in the environment's audit log group, which
// is created with the environment's audit retention when missing.
func RecordOverride(ctx context.Context, c aws.Clients, plan *ecs.Plan, o Override) error {
	o.Event = "allow-vulnerable"
	tag := []ecstypes.Tag{{Key: sdkaws.String(TagAllowVulnerable), Value: sdkaws.String(TagValue(o.Release + ": " + o.Reason))}}
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
func WriteAudit(ctx context.Context, api aws.Audit, group ecs.LogGroup, event any) error {
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
func serviceARN(ctx context.Context, api aws.ECS, cluster, name string) (string, error) {
	svcs, err := DescribeServices(ctx, api, cluster, []string{name})
	if err != nil {
		return "", err
	}
	return sdkaws.ToString(svcs[name].ServiceArn), nil
}

// TagValue fits free text into an ECS tag value: at most 256 characters that are
// letters and digits in any script, spaces, and _ . : / = + - @ (AWS's tag rule), so a
// reason written in Japanese is kept, not emptied.
func TagValue(s string) string {
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
