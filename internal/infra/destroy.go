package infra

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation/types"

	vmaws "github.com/vmctl/vmctl/internal/aws"
)

// Retained is a resource CloudFormation keeps when the stack goes.
type Retained struct {
	LogicalID  string `json:"logical_id"`
	Type       string `json:"type"`
	PhysicalID string `json:"physical_id,omitempty"`
	Policy     string `json:"policy"` // Retain, Snapshot, RetainExceptOnCreate
}

// Destroy deletes env's foundation stack and streams its events until it is gone. The
// resources whose DeletionPolicy keeps them (the data: database snapshot, file system,
// bucket, key) are read from the stack's own template first and returned. A stack that
// does not exist gives a Result with an empty Status.
func Destroy(ctx context.Context, c vmaws.CloudFormation, env string, opts WatchOptions) (*Result, error) {
	res := &Result{Env: env, Stack: StackName(env)}
	st, err := DescribeStack(ctx, c, env)
	if err != nil || st == nil {
		return res, err
	}
	if st.StackStatus != types.StackStatusReviewInProgress && strings.HasSuffix(string(st.StackStatus), "_IN_PROGRESS") {
		return nil, &StackError{Env: env, Status: st.StackStatus}
	}
	id := sdkaws.ToString(st.StackId)
	if res.Retained, err = retained(ctx, c, id); err != nil {
		return nil, err
	}
	w, err := newWatcher(ctx, c, id, res.Stack, opts.writer(), opts.Poll)
	if err != nil {
		return nil, err
	}
	if _, err := c.DeleteStack(ctx, &cloudformation.DeleteStackInput{StackName: sdkaws.String(id)}); err != nil {
		return nil, fmt.Errorf("delete stack %s: %w", res.Stack, err)
	}
	end, err := w.until(ctx)
	if err != nil {
		if isNotFound(err) {
			res.Status = string(types.StackStatusDeleteComplete)
			return res, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("stopped watching stack %s; CloudFormation carries on deleting it: follow it with vmctl infra status --env %s: %w", res.Stack, env, ctx.Err())
		}
		return nil, err
	}
	res.Status = string(end.StackStatus)
	if end.StackStatus != types.StackStatusDeleteComplete {
		return res, &OperationError{Op: "destroy", Env: env, Status: end.StackStatus, Failure: w.failed()}
	}
	return res, nil
}

// retained lists the stack's resources whose DeletionPolicy keeps them, from the template
// CloudFormation holds (not the one vmctl would render now), with their physical ids.
func retained(ctx context.Context, c vmaws.CloudFormation, stackID string) ([]Retained, error) {
	out, err := c.GetTemplate(ctx, &cloudformation.GetTemplateInput{StackName: sdkaws.String(stackID), TemplateStage: types.TemplateStageOriginal})
	if err != nil {
		return nil, fmt.Errorf("read the template of stack %s: %w", stackID, err)
	}
	var tpl struct {
		Resources map[string]struct {
			Type           string
			DeletionPolicy string
		}
	}
	// A stack made outside vmctl may hold YAML; then nothing is known to be kept.
	_ = json.Unmarshal([]byte(sdkaws.ToString(out.TemplateBody)), &tpl)
	var keep []Retained
	for _, id := range slices.Sorted(maps.Keys(tpl.Resources)) {
		r := tpl.Resources[id]
		switch r.DeletionPolicy {
		case "Retain", "Snapshot", "RetainExceptOnCreate":
			keep = append(keep, Retained{LogicalID: id, Type: r.Type, Policy: r.DeletionPolicy})
		}
	}
	if len(keep) == 0 {
		return nil, nil
	}
	physical := map[string]string{}
	p := cloudformation.NewListStackResourcesPaginator(c, &cloudformation.ListStackResourcesInput{StackName: sdkaws.String(stackID)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list the resources of stack %s: %w", stackID, err)
		}
		for _, s := range page.StackResourceSummaries {
			physical[sdkaws.ToString(s.LogicalResourceId)] = sdkaws.ToString(s.PhysicalResourceId)
		}
	}
	for i := range keep {
		keep[i].PhysicalID = physical[keep[i].LogicalID]
	}
	return keep, nil
}
