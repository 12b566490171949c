package infra_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/infra"
	"github.com/vmctl/vmctl/internal/progress"
)

const stackARN = "arn:aws:cloudformation:ap-northeast-1:111111111111:stack/vmctl-dev/1"

func stackOut(status types.StackStatus, reason string) *cloudformation.DescribeStacksOutput {
	return &cloudformation.DescribeStacksOutput{Stacks: []types.Stack{{
		StackName: sdkaws.String("vmctl-dev"), StackId: sdkaws.String(stackARN), StackStatus: status,
		StackStatusReason: sdkaws.String(reason), CreationTime: sdkaws.Time(time.Unix(1e9, 0)),
	}}}
}

func event(id, logical, typ string, status types.ResourceStatus, reason string) types.StackEvent {
	return types.StackEvent{EventId: sdkaws.String(id), LogicalResourceId: sdkaws.String(logical), ResourceType: sdkaws.String(typ),
		ResourceStatus: status, ResourceStatusReason: sdkaws.String(reason), Timestamp: sdkaws.Time(time.Unix(1e9, 0)), StackName: sdkaws.String("vmctl-dev")}
}

// An update that fails: the change set is shown as CloudFormation computed it, the events
// stream in order, and the error names the first resource that failed (not the one
// cancelled because of it) and that the stack rolled back.
func TestFailedUpdateNamesTheFirstFailureAndTheRollback(t *testing.T) {
	asg := "AWS::AutoScaling::AutoScalingGroup"
	history := []types.StackEvent{event("old", "vmctl-dev", "AWS::CloudFormation::Stack", types.ResourceStatusCreateComplete, "")}
	executed := false
	polls := 0
	s := newStub(map[string]func(any) (any, error){
		"DescribeStacks": func(any) (any, error) {
			switch {
			case !executed:
				return stackOut(types.StackStatusCreateComplete, ""), nil
			case polls < 2:
				polls++
				return stackOut(types.StackStatusUpdateInProgress, ""), nil
			}
			return stackOut(types.StackStatusUpdateRollbackComplete, ""), nil
		},
		"CreateChangeSet": func(in any) (any, error) {
			cin := in.(*cloudformation.CreateChangeSetInput)
			assert.Equal(t, types.ChangeSetTypeUpdate, cin.ChangeSetType)
			assert.Equal(t, []types.Capability{types.CapabilityCapabilityNamedIam}, cin.Capabilities)
			assert.Equal(t, []types.Tag{{Key: sdkaws.String("vmctl:environment"), Value: sdkaws.String("dev")}}, cin.Tags)
			assert.JSONEq(t, `{"Resources":{}}`, *cin.TemplateBody)
			assert.NotContains(t, *cin.TemplateBody, "\n", "sent compact")
			return &cloudformation.CreateChangeSetOutput{Id: sdkaws.String("cs-1"), StackId: sdkaws.String(stackARN)}, nil
		},
		"DescribeChangeSet": func(any) (any, error) {
			return &cloudformation.DescribeChangeSetOutput{Status: types.ChangeSetStatusCreateComplete, Changes: []types.Change{
				{ResourceChange: &types.ResourceChange{Action: types.ChangeActionModify, LogicalResourceId: sdkaws.String("GpuGroup"), ResourceType: sdkaws.String(asg), Replacement: types.ReplacementFalse,
					Details: []types.ResourceChangeDetail{{Target: &types.ResourceTargetDefinition{Attribute: types.ResourceAttributeProperties, Name: sdkaws.String("MaxSize")}}}}},
				{ResourceChange: &types.ResourceChange{Action: types.ChangeActionAdd, LogicalResourceId: sdkaws.String("Alarm"), ResourceType: sdkaws.String("AWS::CloudWatch::Alarm")}},
			}}, nil
		},
		"ExecuteChangeSet": func(any) (any, error) {
			executed = true
			history = append([]types.StackEvent{
				event("e6", "vmctl-dev", "AWS::CloudFormation::Stack", types.ResourceStatusUpdateRollbackComplete, ""),
				event("e5", "Alarm", "AWS::CloudWatch::Alarm", types.ResourceStatusCreateFailed, "Resource creation cancelled"),
				event("e4", "GpuGroup", asg, types.ResourceStatusUpdateFailed, "Max bound, 99, must be less than or equal to 50"),
				event("e3", "GpuGroup", asg, types.ResourceStatusUpdateInProgress, ""),
				event("e2", "Alarm", "AWS::CloudWatch::Alarm", types.ResourceStatusCreateInProgress, ""),
				event("e1", "vmctl-dev", "AWS::CloudFormation::Stack", types.ResourceStatusUpdateInProgress, "User Initiated"),
			}, history...)
			return &cloudformation.ExecuteChangeSetOutput{}, nil
		},
		"DescribeStackEvents": func(any) (any, error) {
			return &cloudformation.DescribeStackEventsOutput{StackEvents: history}, nil
		},
	})
	cfn := s.client(t)
	ctx := context.Background()
	cs, err := infra.CreateChangeSet(ctx, cfn, "dev", infra.ChangeSetOptions{Template: []byte("{\n  \"Resources\": {}\n}"), Tags: map[string]string{"vmctl:environment": "dev"}, MinDelay: time.Millisecond, MaxDelay: time.Millisecond})
	require.NoError(t, err)
	assert.Equal(t, []infra.Change{
		{Action: infra.ActionModify, LogicalID: "GpuGroup", Type: asg, Properties: []string{"MaxSize"}},
		{Action: infra.ActionAdd, LogicalID: "Alarm", Type: "AWS::CloudWatch::Alarm"},
	}, cs.Changes, "modifications before additions")

	rec := &recorder{}
	res, err := infra.Execute(ctx, cfn, cs, infra.WatchOptions{Progress: rec, Poll: time.Millisecond})
	require.EqualError(t, err, "apply of stack vmctl-dev failed: GpuGroup (AWS::AutoScaling::AutoScalingGroup) UPDATE_FAILED: Max bound, 99, must be less than or equal to 50; the stack rolled back to its previous state: fix the cause and run vmctl infra apply --env dev again")
	assert.Equal(t, "UPDATE_ROLLBACK_COMPLETE", res.Status)
	assert.Equal(t, "vmctl-dev UPDATE_IN_PROGRESS\nAlarm CREATE_IN_PROGRESS\nGpuGroup UPDATE_IN_PROGRESS\nGpuGroup UPDATE_FAILED\nAlarm CREATE_FAILED\nvmctl-dev UPDATE_ROLLBACK_COMPLETE\n", rec.lines(), "each event once, oldest first, none from before")
	assert.Equal(t, progress.Event{Time: time.Unix(1e9, 0), Resource: "GpuGroup", Status: progress.Error, Text: "UPDATE_FAILED", Detail: asg + ": Max bound, 99, must be less than or equal to 50"}, rec.events[3])
	assert.Equal(t, progress.Warning, rec.events[5].Status)
	assert.Zero(t, s.count("DeleteChangeSet"), "an executed change set is CloudFormation's")
}

// Replacements, certain or conditional, are told apart from modifications; a stateful
// one is refused unless named, and the refused change set is deleted by the caller.
func TestReplacementsAreClassifiedAndStatefulOnesRefused(t *testing.T) {
	rc := func(id, typ string, r types.Replacement, policy types.PolicyAction) types.Change {
		return types.Change{ResourceChange: &types.ResourceChange{Action: types.ChangeActionModify, LogicalResourceId: sdkaws.String(id), ResourceType: sdkaws.String(typ), Replacement: r, PolicyAction: policy, PhysicalResourceId: sdkaws.String(id + "-1")}}
	}
	s := newStub(map[string]func(any) (any, error){
		"DescribeStacks":  func(any) (any, error) { return stackOut(types.StackStatusUpdateRollbackComplete, ""), nil },
		"CreateChangeSet": func(any) (any, error) { return &cloudformation.CreateChangeSetOutput{Id: sdkaws.String("cs-1")}, nil },
		"DescribeChangeSet": func(any) (any, error) {
			return &cloudformation.DescribeChangeSetOutput{Status: types.ChangeSetStatusCreateComplete, Changes: []types.Change{
				rc("Cluster", "AWS::ECS::Cluster", types.ReplacementTrue, ""),
				rc("Database", "AWS::RDS::DBInstance", types.ReplacementTrue, types.PolicyActionReplaceAndSnapshot),
				rc("FileSystem", "AWS::EFS::FileSystem", types.ReplacementConditional, ""),
				{ResourceChange: &types.ResourceChange{Action: types.ChangeActionRemove, LogicalResourceId: sdkaws.String("DataKey"), ResourceType: sdkaws.String("AWS::KMS::Key"), PolicyAction: types.PolicyActionRetain}},
			}}, nil
		},
		"DeleteChangeSet": func(any) (any, error) { return &cloudformation.DeleteChangeSetOutput{}, nil },
	})
	cfn := s.client(t)
	cs, err := infra.CreateChangeSet(context.Background(), cfn, "dev", infra.ChangeSetOptions{Template: []byte(`{}`)})
	require.NoError(t, err)
	assert.Equal(t, []infra.Change{
		{Action: infra.ActionReplace, LogicalID: "Cluster", Type: "AWS::ECS::Cluster", PhysicalID: "Cluster-1", Replacement: "True"},
		{Action: infra.ActionReplace, LogicalID: "Database", Type: "AWS::RDS::DBInstance", PhysicalID: "Database-1", Replacement: "True", Stateful: true, Policy: "ReplaceAndSnapshot"},
		{Action: infra.ActionReplace, LogicalID: "FileSystem", Type: "AWS::EFS::FileSystem", PhysicalID: "FileSystem-1", Replacement: "Conditional", Stateful: true},
		{Action: infra.ActionRemove, LogicalID: "DataKey", Type: "AWS::KMS::Key", Stateful: true, Policy: "Retain"},
	}, cs.Changes, "replacements first, then removals")

	err = cs.RefuseStateful([]string{"FileSystem"})
	require.EqualError(t, err, "refused to change stack vmctl-dev: the change set would replace Database (AWS::RDS::DBInstance), remove DataKey (AWS::KMS::Key), and stateful resources are never replaced or removed silently: nothing was changed; if the data may go, run vmctl infra apply --env dev --allow-replace Database --allow-replace DataKey")
	var refused *infra.RefusedError
	require.ErrorAs(t, err, &refused)
	require.NoError(t, cs.RefuseStateful([]string{"Database", "DataKey", "FileSystem"}))
	require.NoError(t, cs.Delete(context.Background(), cfn))
	require.NoError(t, cs.Delete(context.Background(), cfn), "deleting twice is a no-op")
	assert.Equal(t, 1, s.count("DeleteChangeSet"))
}

// A stack in a state no change can be made to is named with what recovers it, and nothing
// is created against it; its outputs are refused the same way.
func TestUnusableStacksNameTheirRecovery(t *testing.T) {
	tests := []struct {
		status types.StackStatus
		want   string
	}{
		{types.StackStatusRollbackFailed, "environment dev's foundation is not usable: stack vmctl-dev is ROLLBACK_FAILED (its creation failed and so did the cleanup): The following resource(s) failed to create: [Database].: read why with vmctl infra status --env dev, delete what blocked it, then run aws cloudformation delete-stack --stack-name vmctl-dev and vmctl infra apply --env dev"},
		{types.StackStatusUpdateRollbackFailed, "environment dev's foundation is not usable: stack vmctl-dev is UPDATE_ROLLBACK_FAILED (an update failed and so did its rollback): The following resource(s) failed to create: [Database].: fix what blocked the rollback, then run aws cloudformation continue-update-rollback --stack-name vmctl-dev and wait for UPDATE_ROLLBACK_COMPLETE"},
		{types.StackStatusDeleteFailed, "environment dev's foundation is not usable: stack vmctl-dev is DELETE_FAILED (its deletion failed): The following resource(s) failed to create: [Database].: fix what blocked it (read vmctl infra status --env dev), then run vmctl infra destroy --env dev again"},
		{types.StackStatusCreateInProgress, "environment dev's foundation is not usable: stack vmctl-dev is CREATE_IN_PROGRESS (an operation is under way): The following resource(s) failed to create: [Database].: follow it with vmctl infra status --env dev"},
	}
	for _, tt := range tests {
		t.Run(string(tt.status), func(t *testing.T) {
			s := newStub(map[string]func(any) (any, error){
				"DescribeStacks": func(any) (any, error) {
					return stackOut(tt.status, "The following resource(s) failed to create: [Database]. "), nil
				},
			})
			_, err := infra.ReadOutputs(context.Background(), s.client(t), "dev")
			require.EqualError(t, err, tt.want)
			_, err = infra.CreateChangeSet(context.Background(), s.client(t), "dev", infra.ChangeSetOptions{Template: []byte(`{}`)})
			require.EqualError(t, err, tt.want)
			var se *infra.StackError
			require.ErrorAs(t, err, &se)
		})
	}

	// An update in flight still has the last good outputs.
	s := newStub(map[string]func(any) (any, error){"DescribeStacks": func(any) (any, error) {
		out := stackOut(types.StackStatusUpdateInProgress, "")
		out.Stacks[0].Outputs = []types.Output{{OutputKey: sdkaws.String(infra.OutVPC), OutputValue: sdkaws.String("vpc-1")}}
		return out, nil
	}})
	out, err := infra.ReadOutputs(context.Background(), s.client(t), "dev")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{infra.OutVPC: "vpc-1"}, out)

	// A failure to read is not "no foundation".
	s = newStub(map[string]func(any) (any, error){"DescribeStacks": func(any) (any, error) { return nil, errors.New("connection refused") }})
	_, err = infra.ReadOutputs(context.Background(), s.client(t), "dev")
	require.EqualError(t, err, "read stack vmctl-dev: operation error CloudFormation: DescribeStacks, connection refused: check the credentials may use CloudFormation (cloudformation:DescribeStacks) in this account and region")
	var se *infra.StackError
	assert.False(t, errors.As(err, &se))
}

// Ctrl-C while watching stops the watching, not the update: nothing is cancelled or
// deleted, and the error says how to follow.
func TestCancelStopsWatchingNotTheUpdate(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := newStub(map[string]func(any) (any, error){
		"DescribeStacks":      func(any) (any, error) { return stackOut(types.StackStatusUpdateInProgress, ""), nil },
		"DescribeStackEvents": func(any) (any, error) { cancel(); return &cloudformation.DescribeStackEventsOutput{}, nil },
	})
	cs := &infra.ChangeSet{Env: "dev", Stack: "vmctl-dev", StackID: stackARN, ID: "cs-1", Name: "vmctl-1"}
	s.handlers["ExecuteChangeSet"] = func(any) (any, error) { return &cloudformation.ExecuteChangeSetOutput{}, nil }
	_, err := infra.Execute(ctx, s.client(t), cs, infra.WatchOptions{Poll: time.Hour})
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, "stopped watching stack vmctl-dev; CloudFormation carries on: follow it with vmctl infra status --env dev: context canceled", err.Error())
	assert.Equal(t, 1, s.count("ExecuteChangeSet"))
	assert.Zero(t, s.count("DeleteChangeSet"))
}

func ExampleOperationError() {
	err := &infra.OperationError{Op: "apply", Env: "dev", Status: types.StackStatusRollbackComplete,
		Failure: &infra.Failure{LogicalID: "Database", Type: "AWS::RDS::DBInstance", Status: "CREATE_FAILED", Reason: "DBInstance quota exceeded"}}
	fmt.Println(err)
	// Output: apply of stack vmctl-dev failed: Database (AWS::RDS::DBInstance) CREATE_FAILED: DBInstance quota exceeded; the stack rolled back and holds nothing: fix the cause and run vmctl infra apply --env dev again (it deletes the failed stack first)
}

// A creation that failed and rolled back (ROLLBACK_COMPLETE) can only be deleted: apply says
// so in its preview, its outputs are refused, and executing deletes it and creates it again.
func TestApplyAfterAFailedCreationStartsAgain(t *testing.T) {
	phase := "failed"
	const newARN = "arn:aws:cloudformation:ap-northeast-1:111111111111:stack/vmctl-dev/2"
	s := newStub(map[string]func(any) (any, error){
		"DescribeStacks": func(in any) (any, error) {
			switch phase {
			case "failed":
				return stackOut(types.StackStatusRollbackComplete, "The following resource(s) failed to create: [Database]."), nil
			case "deleting":
				phase = "deleted"
				return stackOut(types.StackStatusDeleteInProgress, ""), nil
			case "deleted":
				return stackOut(types.StackStatusDeleteComplete, ""), nil
			}
			assert.Equal(t, newARN, *in.(*cloudformation.DescribeStacksInput).StackName, "the new stack is watched, not the deleted one")
			return stackOut(types.StackStatusCreateComplete, ""), nil
		},
		"DescribeStackEvents": func(any) (any, error) { return &cloudformation.DescribeStackEventsOutput{}, nil },
		"DeleteStack": func(in any) (any, error) {
			assert.Equal(t, stackARN, *in.(*cloudformation.DeleteStackInput).StackName)
			phase = "deleting"
			return &cloudformation.DeleteStackOutput{}, nil
		},
		"CreateStack": func(any) (any, error) {
			assert.Equal(t, "deleted", phase, "created only once the failed stack is gone")
			phase = "created"
			return &cloudformation.CreateStackOutput{StackId: sdkaws.String(newARN)}, nil
		},
	})
	cfn := s.client(t)
	_, err := infra.ReadOutputs(context.Background(), cfn, "dev")
	require.EqualError(t, err, "environment dev's foundation is not usable: stack vmctl-dev is ROLLBACK_COMPLETE (its creation failed and was rolled back): The following resource(s) failed to create: [Database].: read why with vmctl infra status --env dev, fix the cause, then run vmctl infra apply --env dev: it deletes the failed stack and creates it again")
	cs, err := infra.CreateChangeSet(context.Background(), cfn, "dev", infra.ChangeSetOptions{Template: []byte(`{"Resources":{"Database":{"Type":"AWS::RDS::DBInstance"}}}`)})
	require.NoError(t, err)
	assert.True(t, cs.Create)
	assert.Equal(t, stackARN, cs.ReplacesFailed)
	assert.Zero(t, s.count("CreateChangeSet"), "a stack to be replaced takes no change set")
	res, err := infra.Execute(context.Background(), cfn, cs, infra.WatchOptions{Poll: time.Millisecond})
	require.NoError(t, err)
	assert.Equal(t, "CREATE_COMPLETE", res.Status)
	assert.Equal(t, 1, s.count("DeleteStack"))
	assert.Equal(t, 1, s.count("CreateStack"))
}

// Drift detection is bounded: one that finishes reports what it found; one that does not
// finish in time is UNKNOWN, with what the last finished check found.
func TestDriftIsBoundedAndFallsBackToTheLastCheck(t *testing.T) {
	checked := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name   string
		status types.StackDriftDetectionStatus
		want   infra.Drift
	}{
		{"finished", types.StackDriftDetectionStatusDetectionComplete, infra.Drift{Status: "DRIFTED", Drifted: 2, CheckedAt: &checked}},
		{"too slow", types.StackDriftDetectionStatusDetectionInProgress, infra.Drift{Status: "UNKNOWN", Detail: "detection took longer than 50ms: it goes on in CloudFormation; run vmctl infra status again; the last check, at 2026-12-01T09:00:00Z, found it IN_SYNC"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newStub(map[string]func(any) (any, error){
				"DescribeStacks": func(any) (any, error) {
					out := stackOut(types.StackStatusUpdateComplete, "")
					out.Stacks[0].DriftInformation = &types.StackDriftInformation{StackDriftStatus: types.StackDriftStatusInSync, LastCheckTimestamp: &checked}
					return out, nil
				},
				"DetectStackDrift": func(any) (any, error) {
					return &cloudformation.DetectStackDriftOutput{StackDriftDetectionId: sdkaws.String("d-1")}, nil
				},
				"DescribeStackDriftDetectionStatus": func(any) (any, error) {
					return &cloudformation.DescribeStackDriftDetectionStatusOutput{DetectionStatus: tt.status, StackDriftStatus: types.StackDriftStatusDrifted, DriftedStackResourceCount: sdkaws.Int32(2), Timestamp: &checked}, nil
				},
			})
			st, err := infra.Status(context.Background(), s.client(t), "dev", infra.StatusOptions{DriftTimeout: 50 * time.Millisecond, Poll: 10 * time.Millisecond})
			require.NoError(t, err)
			assert.Equal(t, &tt.want, st.Drift)
			assert.Equal(t, "healthy", st.Meaning)
			assert.Empty(t, st.Next)
		})
	}
}
