package infra

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation/types"

	vmaws "github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/environment"
)

// MaxTemplateBody is the largest template CloudFormation takes inline (TemplateBody);
// beyond it a template is staged in S3 first (ChangeSetOptions.Stage), up to 1 MB.
const MaxTemplateBody = 51200

// Action is what a change set does to one resource, in the words vmctl prints.
type Action string

// The actions, in the order a summary lists them.
const (
	ActionAdd     Action = "add"
	ActionModify  Action = "modify"
	ActionReplace Action = "replace" // CloudFormation makes a new resource and deletes the old one
	ActionRemove  Action = "remove"
	ActionImport  Action = "import"
)

// Change is one resource in a change set.
type Change struct {
	Action     Action `json:"action"`
	LogicalID  string `json:"logical_id"`
	Type       string `json:"type"`
	PhysicalID string `json:"physical_id,omitempty"`
	// Replacement is CloudFormation's word for a replace: True, or Conditional when it
	// depends on a value only known while applying (vmctl treats both as a replacement).
	Replacement string `json:"replacement,omitempty"`
	// Stateful marks the resources that hold data (Stateful): never replaced or removed
	// without --allow-replace.
	Stateful bool `json:"stateful,omitempty"`
	// Policy is what CloudFormation does with the old resource (Delete, Retain, Snapshot,
	// ReplaceAndSnapshot …), when it says.
	Policy string `json:"policy,omitempty"`
	// Properties are the top-level properties that change.
	Properties []string `json:"properties,omitempty"`
}

// ChangeSet is a created, described change set against an environment's stack.
type ChangeSet struct {
	Env   string `json:"environment"`
	Stack string `json:"stack"`
	Name  string `json:"change_set"`
	ID    string `json:"change_set_id,omitempty"`
	// StackID is the stack's ARN: events are read by it, so a stack deleted and made
	// again under the same name is not confused with the old one.
	StackID string `json:"stack_id,omitempty"`
	// Create says the stack does not exist yet: there is no CloudFormation change set,
	// and executing creates the stack.
	Create  bool     `json:"create"`
	Changes []Change `json:"changes"`
	// ReplacesFailed is the id of a stack that holds nothing and can only be deleted (a
	// creation rolled back, or a change set never executed): Execute deletes it before
	// creating the stack again.
	ReplacesFailed string `json:"replaces_failed_stack,omitempty"`
	// Deleted says the change set is gone (it held no changes, or was cleaned up).
	Deleted bool `json:"-"`

	body  string            // the template, for CreateStack
	tags  map[string]string // likewise
	stage Stager            // where a template too large to send inline goes
	limit int               // InlineLimit
}

// Empty says the stack already matches the template.
func (cs *ChangeSet) Empty() bool { return len(cs.Changes) == 0 }

// Count returns how many changes have each action.
func (cs *ChangeSet) Count() map[Action]int {
	n := map[Action]int{}
	for _, c := range cs.Changes {
		n[c.Action]++
	}
	return n
}

// ChangeSetOptions are what CreateChangeSet sends and how long it waits.
type ChangeSetOptions struct {
	Template []byte            // the template, JSON
	Tags     map[string]string // on the stack and, through CloudFormation, on every resource that takes tags
	// Wait bounds how long CloudFormation may take to compute the change set (default 5 min).
	Wait time.Duration
	// MinDelay and MaxDelay bound the waiter's polling (defaults 2 s and 10 s).
	MinDelay, MaxDelay time.Duration
	Now                func() time.Time
	// Stage puts a template over InlineLimit where CloudFormation reads it (S3Stager); nil:
	// such a template is an error.
	Stage Stager
	// InlineLimit is the largest template sent inline; 0 means MaxTemplateBody.
	InlineLimit int
}

// source is how the template reaches CloudFormation: inline, or staged (for a new stack,
// only once it is executed, so a declined apply writes nothing).
func (cs *ChangeSet) source(ctx context.Context, limit int) (body, url *string, err error) {
	if limit <= 0 {
		limit = MaxTemplateBody
	}
	if len(cs.body) <= limit {
		return sdkaws.String(cs.body), nil, nil
	}
	if cs.stage == nil {
		return nil, nil, fmt.Errorf("the rendered template of stack %s is %d bytes, over CloudFormation's %d-byte limit for a template sent inline, and there is nowhere to stage it: this is a bug in vmctl", cs.Stack, len(cs.body), limit)
	}
	u, err := cs.stage(ctx, cs.Env, cs.body)
	if err != nil {
		return nil, nil, err
	}
	return nil, sdkaws.String(u), nil
}

// noChanges is how CloudFormation says a change set would change nothing (the first on
// change sets, the second on direct updates); moto says the first.
var noChanges = []string{"didn't contain changes", "No updates are to be performed"}

// CreateChangeSet previews opts.Template against env's stack. For a stack that exists it
// creates a CloudFormation change set, waits until CloudFormation has computed it and
// describes it; a change set that holds no changes is deleted at once and returned empty.
// For a stack that does not exist yet nothing is created: every resource of the template is
// an add, which is all a CREATE change set could say, and Execute creates the stack with
// CreateStack, so a declined first apply leaves no empty REVIEW_IN_PROGRESS stack behind.
// A stack in a state no change can be made to (failed, being changed) is a *StackError
// naming what recovers it.
func CreateChangeSet(ctx context.Context, c vmaws.CloudFormation, env string, opts ChangeSetOptions) (*ChangeSet, error) {
	body, err := compactTemplate(opts.Template)
	if err != nil {
		return nil, err
	}
	st, err := DescribeStack(ctx, c, env)
	if err != nil {
		return nil, err
	}
	cs := &ChangeSet{Env: env, Stack: StackName(env), body: body, tags: opts.Tags, stage: opts.Stage, limit: opts.InlineLimit}
	switch {
	case st == nil || st.StackStatus == types.StackStatusRollbackComplete || st.StackStatus == types.StackStatusReviewInProgress:
		// ROLLBACK_COMPLETE (a failed creation) and REVIEW_IN_PROGRESS (a change set never
		// executed) hold no resources, and CloudFormation can only delete them: Execute
		// deletes the stack and creates it again.
		cs.Create = true
		if st != nil {
			cs.ReplacesFailed = sdkaws.ToString(st.StackId)
		}
		cs.Changes, err = templateAdds(body)
		return cs, err
	case st.StackStatus == types.StackStatusCreateComplete || st.StackStatus == types.StackStatusUpdateComplete ||
		st.StackStatus == types.StackStatusUpdateRollbackComplete || st.StackStatus == types.StackStatusImportComplete ||
		st.StackStatus == types.StackStatusImportRollbackComplete:
	default:
		return nil, &StackError{Env: env, Status: st.StackStatus, Reason: sdkaws.ToString(st.StackStatusReason)}
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	cs.StackID = sdkaws.ToString(st.StackId)
	cs.Name = "vmctl-" + now().UTC().Format("20060102-150405")
	inline, staged, err := cs.source(ctx, opts.InlineLimit)
	if err != nil {
		return nil, err
	}
	out, err := c.CreateChangeSet(ctx, &cloudformation.CreateChangeSetInput{
		StackName:     sdkaws.String(cs.Stack), // moto 5.2 finds an UPDATE's stack by name only
		ChangeSetName: sdkaws.String(cs.Name),
		ChangeSetType: types.ChangeSetTypeUpdate,
		TemplateBody:  inline,
		TemplateURL:   staged,
		Capabilities:  capabilities,
		Tags:          cfnTags(opts.Tags),
		Description:   sdkaws.String("vmctl infra apply --env " + env),
	})
	if err != nil {
		return nil, fmt.Errorf("create a change set for stack %s: %s: fix the environment file or the template and run again", cs.Stack, apiMessage(err))
	}
	cs.ID = sdkaws.ToString(out.Id)

	desc, err := waitChangeSet(ctx, c, cs, opts)
	if err != nil {
		return nil, cs.Abandon(ctx, c, err)
	}
	if desc.Status == types.ChangeSetStatusFailed {
		reason := sdkaws.ToString(desc.StatusReason)
		for _, s := range noChanges {
			if strings.Contains(reason, s) {
				return cs, cs.Delete(ctx, c)
			}
		}
		return nil, cs.Abandon(ctx, c, fmt.Errorf("CloudFormation could not make a change set for stack %s: %s: fix the environment file or the template and run again", cs.Stack, oneLine(reason)))
	}
	if err := cs.describe(ctx, c); err != nil {
		return nil, cs.Abandon(ctx, c, err)
	}
	return cs, nil
}

// capabilities acknowledge that the foundation names its IAM roles (task roles, the GPU
// instance role).
var capabilities = []types.Capability{types.CapabilityCapabilityNamedIam}

func cfnTags(m map[string]string) []types.Tag {
	var tags []types.Tag
	for _, k := range slices.Sorted(maps.Keys(m)) {
		tags = append(tags, types.Tag{Key: sdkaws.String(k), Value: sdkaws.String(m[k])})
	}
	return tags
}

// templateAdds lists every resource of a template as an add: the preview of a new stack.
func templateAdds(body string) ([]Change, error) {
	var tpl struct {
		Resources map[string]struct{ Type string }
	}
	if err := json.Unmarshal([]byte(body), &tpl); err != nil {
		return nil, fmt.Errorf("read the rendered template: %w: this is a bug in vmctl", err)
	}
	var adds []Change
	for _, id := range slices.Sorted(maps.Keys(tpl.Resources)) {
		adds = append(adds, Change{Action: ActionAdd, LogicalID: id, Type: tpl.Resources[id].Type, Stateful: IsStateful(id)})
	}
	return adds, nil
}

// compactTemplate checks the template is JSON and drops its indentation: CloudFormation
// counts the bytes of an inline body.
func compactTemplate(tpl []byte) (string, error) {
	var b bytes.Buffer
	if err := json.Compact(&b, tpl); err != nil {
		return "", fmt.Errorf("the rendered template is not JSON: %w: this is a bug in vmctl", err)
	}
	return b.String(), nil
}

// waitChangeSet waits with the SDK's waiter until the change set is computed; FAILED ends
// the wait as well (no changes is a FAILED change set), and the caller reads why.
func waitChangeSet(ctx context.Context, c vmaws.CloudFormation, cs *ChangeSet, opts ChangeSetOptions) (*cloudformation.DescribeChangeSetOutput, error) {
	wait := opts.Wait
	if wait <= 0 {
		wait = 5 * time.Minute
	}
	w := cloudformation.NewChangeSetCreateCompleteWaiter(c, func(o *cloudformation.ChangeSetCreateCompleteWaiterOptions) {
		o.MinDelay, o.MaxDelay = 2*time.Second, 10*time.Second
		if opts.MinDelay > 0 {
			o.MinDelay = opts.MinDelay
		}
		if opts.MaxDelay > 0 {
			o.MaxDelay = opts.MaxDelay
		}
		o.Retryable = func(ctx context.Context, in *cloudformation.DescribeChangeSetInput, out *cloudformation.DescribeChangeSetOutput, err error) (bool, error) {
			if err != nil {
				return false, err
			}
			switch out.Status {
			case types.ChangeSetStatusCreateComplete, types.ChangeSetStatusFailed:
				return false, nil
			}
			return true, nil
		}
	})
	out, err := w.WaitForOutput(ctx, &cloudformation.DescribeChangeSetInput{ChangeSetName: sdkaws.String(cs.ID), StackName: sdkaws.String(cs.StackID)}, wait)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("wait for change set %s of stack %s: %w", cs.Name, cs.Stack, err)
	}
	return out, nil
}

// describe reads every change of the change set (the SDK's paginator: a large change
// set comes in pages) and classifies it.
func (cs *ChangeSet) describe(ctx context.Context, c vmaws.CloudFormation) error {
	p := cloudformation.NewDescribeChangeSetPaginator(c, &cloudformation.DescribeChangeSetInput{ChangeSetName: sdkaws.String(cs.ID), StackName: sdkaws.String(cs.StackID)})
	cs.Changes = nil
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("read change set %s of stack %s: %w", cs.Name, cs.Stack, err)
		}
		for _, ch := range page.Changes {
			if rc := ch.ResourceChange; rc != nil {
				cs.Changes = append(cs.Changes, classify(rc))
			}
		}
	}
	slices.SortStableFunc(cs.Changes, func(a, b Change) int {
		if d := actionOrder(a.Action) - actionOrder(b.Action); d != 0 {
			return d
		}
		return strings.Compare(a.LogicalID, b.LogicalID)
	})
	return nil
}

func actionOrder(a Action) int {
	return slices.Index([]Action{ActionReplace, ActionRemove, ActionModify, ActionAdd, ActionImport}, a)
}

// classify turns CloudFormation's resource change into vmctl's words: a Modify that
// replaces (True or Conditional) is a replace.
func classify(rc *types.ResourceChange) Change {
	c := Change{
		LogicalID:  sdkaws.ToString(rc.LogicalResourceId),
		Type:       sdkaws.ToString(rc.ResourceType),
		PhysicalID: sdkaws.ToString(rc.PhysicalResourceId),
		Policy:     string(rc.PolicyAction),
	}
	c.Stateful = IsStateful(c.LogicalID)
	switch rc.Action {
	case types.ChangeActionAdd:
		c.Action = ActionAdd
	case types.ChangeActionRemove:
		c.Action = ActionRemove
	case types.ChangeActionImport:
		c.Action = ActionImport
	default: // Modify, and Dynamic (a change CloudFormation can only tell while applying)
		c.Action = ActionModify
		if rc.Replacement == types.ReplacementTrue || rc.Replacement == types.ReplacementConditional {
			c.Action = ActionReplace
			c.Replacement = string(rc.Replacement)
		}
	}
	seen := map[string]bool{}
	for _, d := range rc.Details {
		if d.Target == nil || d.Target.Attribute != types.ResourceAttributeProperties {
			continue
		}
		name := sdkaws.ToString(d.Target.Name)
		if name != "" && !seen[name] {
			seen[name] = true
			c.Properties = append(c.Properties, name)
		}
	}
	slices.Sort(c.Properties)
	return c
}

// RefuseStateful returns an error when the change set replaces or removes a stateful
// resource that allow does not name; nil when there is none.
func (cs *ChangeSet) RefuseStateful(allow []string) error {
	var hits []string
	for _, c := range cs.Changes {
		if !c.Stateful || (c.Action != ActionReplace && c.Action != ActionRemove) || slices.Contains(allow, c.LogicalID) {
			continue
		}
		what := c.Action
		if c.Action == ActionReplace && c.Replacement == string(types.ReplacementConditional) {
			what = "maybe replace"
		}
		hits = append(hits, fmt.Sprintf("%s %s (%s)", what, c.LogicalID, c.Type))
	}
	if len(hits) == 0 {
		return nil
	}
	var flags []string
	for _, c := range cs.Changes {
		if c.Stateful && (c.Action == ActionReplace || c.Action == ActionRemove) && !slices.Contains(allow, c.LogicalID) {
			flags = append(flags, "--allow-replace "+c.LogicalID)
		}
	}
	return &RefusedError{Stack: cs.Stack, Env: cs.Env, What: hits, Flags: flags}
}

// RefusedError is a change set refused because it would replace or remove data.
type RefusedError struct {
	Env, Stack string
	What       []string // "replace Database (AWS::RDS::DBInstance)"
	Flags      []string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("refused to change stack %s: the change set would %s, and stateful resources are never replaced or removed silently: nothing was changed; if the data may go, run vmctl infra apply --env %s %s",
		e.Stack, strings.Join(e.What, ", "), e.Env, strings.Join(e.Flags, " "))
}

// Delete deletes the change set, which is not to be executed.
func (cs *ChangeSet) Delete(ctx context.Context, c vmaws.CloudFormation) error {
	if cs.Deleted || cs.ID == "" {
		return nil
	}
	// Cleaning up must happen even when the command was cancelled.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, err := c.DeleteChangeSet(ctx, &cloudformation.DeleteChangeSetInput{ChangeSetName: sdkaws.String(cs.ID), StackName: sdkaws.String(cs.StackID)}); err != nil {
		return fmt.Errorf("delete change set %s of stack %s: %s: delete it in the CloudFormation console", cs.Name, cs.Stack, apiMessage(err))
	}
	cs.Deleted = true
	return nil
}

// Abandon deletes the change set after err and returns err, with the cleanup's failure
// joined when there was one.
func (cs *ChangeSet) Abandon(ctx context.Context, c vmaws.CloudFormation, err error) error {
	if derr := cs.Delete(ctx, c); derr != nil {
		return errors.Join(err, derr)
	}
	return err
}

// ShiftedRules are the listener rules ECS blue/green rewrites at each deploy: after one, the
// rule forwards to whichever target group holds the new tasks, which the template cannot
// know. A change set that rewrites such a rule would send production traffic back to the
// template's group, which may have been drained.
func ShiftedRules(env *environment.Environment) []string {
	if env.AWS == nil || env.AWS.Deployment.Strategy != environment.StrategyBlueGreen {
		return nil
	}
	var out []string
	for _, name := range slices.Sorted(maps.Keys(env.Services)) {
		if env.Services[name].LoadBalancer != nil {
			out = append(out, LogicalRule(name))
		}
	}
	return out
}

// RefuseRuleReset returns an error when the change set modifies, replaces or removes one of
// rules (ShiftedRules) that allow does not name.
func (cs *ChangeSet) RefuseRuleReset(rules, allow []string) error {
	var hits, flags []string
	for _, c := range cs.Changes {
		if c.Action == ActionAdd || !slices.Contains(rules, c.LogicalID) || slices.Contains(allow, c.LogicalID) {
			continue
		}
		hits = append(hits, string(c.Action)+" "+c.LogicalID)
		flags = append(flags, "--allow-replace "+c.LogicalID)
	}
	if len(hits) == 0 {
		return nil
	}
	return fmt.Errorf("refused to change stack %s: the change set would %s, a listener rule ECS blue/green shifts between target groups at each deploy: CloudFormation would point it back at the template's group, which may hold no tasks since the last deploy; nothing was changed; if every service runs in its primary group (vmctl status --env %s), run vmctl infra apply --env %s %s",
		cs.Stack, strings.Join(hits, ", "), cs.Env, cs.Env, strings.Join(flags, " "))
}
