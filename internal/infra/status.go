package infra

import (
	"context"
	"errors"
	"fmt"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/smithy-go"

	vmaws "github.com/vmctl/vmctl/internal/aws"
)

// State is an environment's foundation as CloudFormation has it.
type State struct {
	Env    string `json:"environment"`
	Stack  string `json:"stack"`
	Exists bool   `json:"exists"`
	Status string `json:"status,omitempty"`
	// Meaning and Next say what the status means and what to run, when anything.
	Meaning     string            `json:"meaning,omitempty"`
	Next        string            `json:"next,omitempty"`
	Reason      string            `json:"reason,omitempty"`
	LastUpdated *time.Time        `json:"last_updated,omitempty"`
	Drift       *Drift            `json:"drift,omitempty"`
	Outputs     map[string]string `json:"outputs,omitempty"`
}

// Drift is what CloudFormation's drift detection found.
type Drift struct {
	// Status is IN_SYNC, DRIFTED, UNKNOWN (CloudFormation could not tell, or not in time)
	// or NOT_CHECKED.
	Status  string `json:"status"`
	Drifted int    `json:"drifted_resources,omitempty"`
	Detail  string `json:"detail,omitempty"`
	// CheckedAt is when the status was found: now, or an earlier check CloudFormation
	// remembers when this one could not finish.
	CheckedAt *time.Time `json:"checked_at,omitempty"`
}

// StatusOptions bound drift detection.
type StatusOptions struct {
	// DriftTimeout bounds drift detection; 0 skips it.
	DriftTimeout time.Duration
	Poll         time.Duration // default 2 s
}

// Status reads env's foundation stack: its status, when it last changed, its outputs, and,
// when asked, whether its resources drifted from the template.
func Status(ctx context.Context, c vmaws.CloudFormation, env string, opts StatusOptions) (*State, error) {
	s := &State{Env: env, Stack: StackName(env)}
	st, err := DescribeStack(ctx, c, env)
	if err != nil {
		return nil, err
	}
	if st == nil {
		s.Meaning, s.Next = "does not exist", "run vmctl infra apply --env "+env
		return s, nil
	}
	s.Exists = true
	s.Status = string(st.StackStatus)
	s.Meaning, s.Next = Condition(env, st.StackStatus)
	s.Reason = oneLine(sdkaws.ToString(st.StackStatusReason))
	s.LastUpdated = st.LastUpdatedTime
	if s.LastUpdated == nil {
		s.LastUpdated = st.CreationTime
	}
	s.Outputs = outputs(st)
	switch {
	case opts.DriftTimeout <= 0:
	case !usable(st.StackStatus) || st.StackStatus != types.StackStatusCreateComplete && st.StackStatus != types.StackStatusUpdateComplete && st.StackStatus != types.StackStatusUpdateRollbackComplete:
		s.Drift = &Drift{Status: "NOT_CHECKED", Detail: "CloudFormation checks drift only on a stack at rest"}
	default:
		s.Drift = detectDrift(ctx, c, sdkaws.ToString(st.StackId), opts)
		// A check that could not finish in time says what the last one found.
		if di := st.DriftInformation; s.Drift.Status == "UNKNOWN" && di != nil && di.LastCheckTimestamp != nil && di.StackDriftStatus != types.StackDriftStatusNotChecked {
			s.Drift.Detail += fmt.Sprintf("; the last check, at %s, found it %s", di.LastCheckTimestamp.UTC().Format(time.RFC3339), di.StackDriftStatus)
		}
	}
	return s, nil
}

// detectDrift starts drift detection and polls it for at most opts.DriftTimeout. The SDK
// has no waiter for DescribeStackDriftDetectionStatus, hence the loop. Failure to tell is
// reported as UNKNOWN with CloudFormation's reason, never as an error: drift is extra.
func detectDrift(ctx context.Context, c vmaws.CloudFormation, stackID string, opts StatusOptions) *Drift {
	poll := opts.Poll
	if poll <= 0 {
		poll = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, opts.DriftTimeout)
	defer cancel()
	start, err := c.DetectStackDrift(ctx, &cloudformation.DetectStackDriftInput{StackName: sdkaws.String(stackID)})
	if err != nil {
		return &Drift{Status: "UNKNOWN", Detail: "CloudFormation could not detect drift: " + apiMessage(err)}
	}
	for {
		out, err := c.DescribeStackDriftDetectionStatus(ctx, &cloudformation.DescribeStackDriftDetectionStatusInput{StackDriftDetectionId: start.StackDriftDetectionId})
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return &Drift{Status: "UNKNOWN", Detail: "CloudFormation could not detect drift: " + apiMessage(err)}
		}
		switch out.DetectionStatus {
		case types.StackDriftDetectionStatusDetectionComplete:
			return &Drift{Status: string(out.StackDriftStatus), Drifted: int(sdkaws.ToInt32(out.DriftedStackResourceCount)), CheckedAt: out.Timestamp}
		case types.StackDriftDetectionStatusDetectionFailed:
			// Some resource types cannot be checked; what could be is still reported.
			return &Drift{Status: string(out.StackDriftStatus), Drifted: int(sdkaws.ToInt32(out.DriftedStackResourceCount)), CheckedAt: out.Timestamp, Detail: "partly checked: " + oneLine(sdkaws.ToString(out.DetectionStatusReason))}
		}
		select {
		case <-ctx.Done():
		case <-time.After(poll):
			continue
		}
		break
	}
	return &Drift{Status: "UNKNOWN", Detail: fmt.Sprintf("detection took longer than %s: it goes on in CloudFormation; run vmctl infra status again", opts.DriftTimeout)}
}

// apiMessage is an AWS error's code and message, without the SDK's request details.
func apiMessage(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode() + ": " + oneLine(ae.ErrorMessage())
	}
	return oneLine(err.Error())
}
