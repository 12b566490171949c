package awssim_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/awssim"
)

// tmpl is a template under construction: resources and outputs by name.
type tmpl struct {
	Parameters map[string]any `json:",omitempty"`
	Resources  map[string]any
	Outputs    map[string]any `json:",omitempty"`
}

func (x tmpl) body(t *testing.T) string {
	b, err := json.Marshal(x)
	require.NoError(t, err)
	return string(b)
}

func res(typ string, props map[string]any, extra ...any) map[string]any {
	r := map[string]any{"Type": typ, "Properties": props}
	for i := 0; i+1 < len(extra); i += 2 {
		r[extra[i].(string)] = extra[i+1]
	}
	return r
}

func ref(name string) map[string]any { return map[string]any{"Ref": name} }
func getAtt(name, attr string) map[string]any {
	return map[string]any{"Fn::GetAtt": []any{name, attr}}
}

// webStack is a small load-balanced service's foundation: a target group, a load balancer
// with a listener and a rule, a log group, and a record (a security group).
func webStack(healthPath string, port int) tmpl {
	return tmpl{
		Resources: map[string]any{
			"Sg": res("AWS::EC2::SecurityGroup", map[string]any{"GroupDescription": "alb", "VpcId": "vpc-0123"}),
			"Lb": res("AWS::ElasticLoadBalancingV2::LoadBalancer", map[string]any{"Name": "web", "SecurityGroups": []any{getAtt("Sg", "GroupId")}}),
			"Tg": res("AWS::ElasticLoadBalancingV2::TargetGroup", map[string]any{
				"Name": "web-app", "Port": port, "Protocol": "HTTP", "TargetType": "ip", "VpcId": "vpc-0123",
				"HealthCheckPath": healthPath, "HealthCheckIntervalSeconds": 10, "HealthyThresholdCount": 2, "Matcher": map[string]any{"HttpCode": "200"},
			}),
			"Listener": res("AWS::ElasticLoadBalancingV2::Listener", map[string]any{
				"LoadBalancerArn": ref("Lb"), "Port": 80, "Protocol": "HTTP",
				"DefaultActions": []any{map[string]any{"Type": "fixed-response", "FixedResponseConfig": map[string]any{"StatusCode": "404"}}},
			}),
			"Rule": res("AWS::ElasticLoadBalancingV2::ListenerRule", map[string]any{
				"ListenerArn": ref("Listener"), "Priority": 10,
				"Conditions": []any{map[string]any{"Field": "path-pattern", "Values": []any{"/app/*"}}},
				"Actions":    []any{map[string]any{"Type": "forward", "TargetGroupArn": ref("Tg")}},
			}),
			"Logs": res("AWS::Logs::LogGroup", map[string]any{"LogGroupName": "/web/app", "RetentionInDays": 30}, "DeletionPolicy", "Retain"),
		},
		Outputs: map[string]any{
			"Url":   map[string]any{"Value": map[string]any{"Fn::Sub": "http://${Lb.DNSName}/app/"}},
			"Group": map[string]any{"Value": map[string]any{"Fn::Select": []any{1, map[string]any{"Fn::Split": []any{"/", getAtt("Tg", "TargetGroupFullName")}}}}},
			"Both":  map[string]any{"Value": map[string]any{"Fn::Join": []any{",", []any{ref("Sg"), ref("AWS::Region")}}}},
		},
	}
}

func outputsOf(st cfntypes.Stack) map[string]string {
	out := map[string]string{}
	for _, o := range st.Outputs {
		out[sdkaws.ToString(o.OutputKey)] = sdkaws.ToString(o.OutputValue)
	}
	return out
}

func stackOf(t *testing.T, c *cloudformation.Client, name string) cfntypes.Stack {
	t.Helper()
	out, err := c.DescribeStacks(context.Background(), &cloudformation.DescribeStacksInput{StackName: sdkaws.String(name)})
	require.NoError(t, err)
	return out.Stacks[0]
}

// events are a stack's events oldest first, as "Logical STATUS".
func events(t *testing.T, c *cloudformation.Client, name string) []string {
	t.Helper()
	out, err := c.DescribeStackEvents(context.Background(), &cloudformation.DescribeStackEventsInput{StackName: sdkaws.String(name)})
	require.NoError(t, err)
	var list []string
	for i := len(out.StackEvents) - 1; i >= 0; i-- {
		e := out.StackEvents[i]
		list = append(list, sdkaws.ToString(e.LogicalResourceId)+" "+string(e.ResourceStatus))
	}
	return list
}

// failures are the reasons of a stack's failed events.
func failures(t *testing.T, c *cloudformation.Client, name string) []string {
	t.Helper()
	out, err := c.DescribeStackEvents(context.Background(), &cloudformation.DescribeStackEventsInput{StackName: sdkaws.String(name)})
	require.NoError(t, err)
	var list []string
	for _, e := range out.StackEvents {
		if strings.HasSuffix(string(e.ResourceStatus), "FAILED") || e.ResourceStatus == cfntypes.ResourceStatusRollbackInProgress || e.ResourceStatus == cfntypes.ResourceStatusUpdateRollbackInProgress {
			list = append(list, sdkaws.ToString(e.LogicalResourceId)+": "+sdkaws.ToString(e.ResourceStatusReason))
		}
	}
	return list
}

func changeSet(t *testing.T, c *cloudformation.Client, stack, name, typ, body string) *cloudformation.DescribeChangeSetOutput {
	t.Helper()
	ctx := context.Background()
	_, err := c.CreateChangeSet(ctx, &cloudformation.CreateChangeSetInput{
		StackName: sdkaws.String(stack), ChangeSetName: sdkaws.String(name), ChangeSetType: cfntypes.ChangeSetType(typ), TemplateBody: sdkaws.String(body),
	})
	require.NoError(t, err)
	out, err := c.DescribeChangeSet(ctx, &cloudformation.DescribeChangeSetInput{StackName: sdkaws.String(stack), ChangeSetName: sdkaws.String(name)})
	require.NoError(t, err)
	return out
}

func execute(t *testing.T, c *cloudformation.Client, stack, name string) {
	t.Helper()
	_, err := c.ExecuteChangeSet(context.Background(), &cloudformation.ExecuteChangeSetInput{StackName: sdkaws.String(stack), ChangeSetName: sdkaws.String(name)})
	require.NoError(t, err)
}

// A stack from nothing: resources in dependency order, each with its events; outputs
// through Fn::Sub, Fn::GetAtt, Fn::Select, Fn::Split and Fn::Join; the listener, rule and
// target group as the template says them; then an update by diff, and deletion.
func TestCloudFormationLifecycle(t *testing.T) {
	sim := computeSim(t)
	c := newCFN(t, sim)
	ctx := context.Background()

	_, err := c.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: sdkaws.String("web")})
	require.Error(t, err)
	assert.Equal(t, "ValidationError", computeErrCode(err))
	assert.Contains(t, err.Error(), "Stack with id web does not exist")

	cs := changeSet(t, c, "web", "first", "CREATE", webStack("/health", 8080).body(t))
	assert.Equal(t, cfntypes.ChangeSetStatusCreateComplete, cs.Status)
	assert.Len(t, cs.Changes, 6)
	for _, ch := range cs.Changes {
		assert.Equal(t, cfntypes.ChangeActionAdd, ch.ResourceChange.Action)
	}
	assert.Equal(t, cfntypes.StackStatusReviewInProgress, stackOf(t, c, "web").StackStatus)
	execute(t, c, "web", "first")

	st := stackOf(t, c, "web")
	require.Equal(t, cfntypes.StackStatusCreateComplete, st.StackStatus, "%v", failures(t, c, "web"))
	ev := events(t, c, "web")
	assert.Less(t, slices.Index(ev, "Lb CREATE_COMPLETE"), slices.Index(ev, "Listener CREATE_IN_PROGRESS"), "the listener after its load balancer")
	assert.Less(t, slices.Index(ev, "Tg CREATE_COMPLETE"), slices.Index(ev, "Rule CREATE_IN_PROGRESS"), "the rule after its target group")
	assert.Equal(t, "web CREATE_COMPLETE", ev[len(ev)-1])

	out := outputsOf(st)
	assert.Regexp(t, `^http://127\.0\.0\.1:\d+/app/$`, out["Url"])
	assert.Equal(t, "web-app", out["Group"])
	assert.Regexp(t, `^sg-[0-9a-f]{17},ap-northeast-1$`, out["Both"])

	elb := newELB(t, sim)
	tgs, err := elb.DescribeTargetGroups(ctx, &elbv2.DescribeTargetGroupsInput{Names: []string{"web-app"}})
	require.NoError(t, err)
	tg := tgs.TargetGroups[0]
	assert.Equal(t, "/health", sdkaws.ToString(tg.HealthCheckPath))
	assert.Equal(t, int32(8080), sdkaws.ToInt32(tg.Port))
	assert.Equal(t, int32(10), sdkaws.ToInt32(tg.HealthCheckIntervalSeconds), "as the template says it")
	lbs, err := elb.DescribeLoadBalancers(ctx, &elbv2.DescribeLoadBalancersInput{Names: []string{"web"}})
	require.NoError(t, err)
	ls, err := elb.DescribeListeners(ctx, &elbv2.DescribeListenersInput{LoadBalancerArn: lbs.LoadBalancers[0].LoadBalancerArn})
	require.NoError(t, err)
	require.Len(t, ls.Listeners, 1)
	rules, err := elb.DescribeRules(ctx, &elbv2.DescribeRulesInput{ListenerArn: ls.Listeners[0].ListenerArn})
	require.NoError(t, err)
	require.Len(t, rules.Rules, 2)
	assert.Equal(t, "10", sdkaws.ToString(rules.Rules[0].Priority))
	assert.Equal(t, []string{"/app/*"}, rules.Rules[0].Conditions[0].PathPatternConfig.Values)
	assert.Equal(t, sdkaws.ToString(tg.TargetGroupArn), sdkaws.ToString(rules.Rules[0].Actions[0].TargetGroupArn))
	assert.Equal(t, elbtypes.ActionTypeEnumFixedResponse, rules.Rules[1].Actions[0].Type)
	resp, err := http.Get("http://" + sdkaws.ToString(lbs.LoadBalancers[0].DNSName) + "/elsewhere")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "the listener's default action answers what no rule routes")

	// The same template again: no changes.
	same := changeSet(t, c, "web", "same", "UPDATE", webStack("/health", 8080).body(t))
	assert.Equal(t, cfntypes.ChangeSetStatusFailed, same.Status)
	assert.Contains(t, sdkaws.ToString(same.StatusReason), "didn't contain changes")

	// A new health path modifies the group in place; a new port replaces it, and with it
	// (conditionally) the rule that forwards to it; the log group goes.
	next := webStack("/ready", 8080)
	delete(next.Resources, "Logs")
	mod := changeSet(t, c, "web", "modify", "UPDATE", next.body(t))
	byID := map[string]cfntypes.ResourceChange{}
	for _, ch := range mod.Changes {
		byID[sdkaws.ToString(ch.ResourceChange.LogicalResourceId)] = *ch.ResourceChange
	}
	assert.Equal(t, cfntypes.ChangeActionModify, byID["Tg"].Action)
	assert.Equal(t, cfntypes.ReplacementFalse, byID["Tg"].Replacement)
	assert.Equal(t, "HealthCheckPath", sdkaws.ToString(byID["Tg"].Details[0].Target.Name))
	assert.Equal(t, cfntypes.ChangeActionRemove, byID["Logs"].Action)
	assert.Len(t, byID, 2)

	replace := webStack("/health", 9090)
	rep := changeSet(t, c, "web", "replace", "UPDATE", replace.body(t))
	byID = map[string]cfntypes.ResourceChange{}
	for _, ch := range rep.Changes {
		byID[sdkaws.ToString(ch.ResourceChange.LogicalResourceId)] = *ch.ResourceChange
	}
	assert.Equal(t, cfntypes.ReplacementTrue, byID["Tg"].Replacement)
	assert.Equal(t, cfntypes.RequiresRecreationAlways, byID["Tg"].Details[0].Target.RequiresRecreation)
	assert.Equal(t, cfntypes.ChangeActionModify, byID["Rule"].Action, "its target group's ARN changes")
	assert.Equal(t, cfntypes.EvaluationTypeDynamic, byID["Rule"].Details[0].Evaluation)
	assert.Equal(t, cfntypes.ReplacementFalse, byID["Rule"].Replacement)

	// A new load balancer name replaces it; its listener, which names it, may be replaced:
	// whether depends on a value known only once the new one exists.
	renamed := webStack("/health", 8080)
	renamed.Resources["Lb"].(map[string]any)["Properties"].(map[string]any)["Name"] = "web2"
	ren := changeSet(t, c, "web", "rename", "UPDATE", renamed.body(t))
	byID = map[string]cfntypes.ResourceChange{}
	for _, ch := range ren.Changes {
		byID[sdkaws.ToString(ch.ResourceChange.LogicalResourceId)] = *ch.ResourceChange
	}
	assert.Equal(t, cfntypes.ReplacementTrue, byID["Lb"].Replacement)
	assert.Equal(t, cfntypes.ReplacementConditional, byID["Listener"].Replacement)
	assert.Equal(t, "Lb", sdkaws.ToString(byID["Listener"].Details[0].CausingEntity))

	// Executing one change set discards the others.
	execute(t, c, "web", "modify")
	assert.Equal(t, cfntypes.StackStatusUpdateComplete, stackOf(t, c, "web").StackStatus)
	_, err = c.DescribeChangeSet(ctx, &cloudformation.DescribeChangeSetInput{StackName: sdkaws.String("web"), ChangeSetName: sdkaws.String("replace")})
	assert.Equal(t, "ChangeSetNotFound", computeErrCode(err))
	tgs, err = elb.DescribeTargetGroups(ctx, &elbv2.DescribeTargetGroupsInput{Names: []string{"web-app"}})
	require.NoError(t, err)
	assert.Equal(t, "/ready", sdkaws.ToString(tgs.TargetGroups[0].HealthCheckPath))
	assert.Equal(t, sdkaws.ToString(tg.TargetGroupArn), sdkaws.ToString(tgs.TargetGroups[0].TargetGroupArn), "modified in place")
	assert.Contains(t, events(t, c, "web"), "Logs DELETE_SKIPPED", "DeletionPolicy Retain")

	// Replacing: the new load balancer first, its listener and rule anew, the old ones
	// deleted after.
	renamed = webStack("/ready", 8080)
	delete(renamed.Resources, "Logs")
	renamed.Resources["Lb"].(map[string]any)["Properties"].(map[string]any)["Name"] = "web2"
	changeSet(t, c, "web", "rename2", "UPDATE", renamed.body(t))
	execute(t, c, "web", "rename2")
	require.Equal(t, cfntypes.StackStatusUpdateComplete, stackOf(t, c, "web").StackStatus, "%v", failures(t, c, "web"))
	_, err = elb.DescribeLoadBalancers(ctx, &elbv2.DescribeLoadBalancersInput{Names: []string{"web"}})
	assert.Equal(t, "LoadBalancerNotFound", computeErrCode(err), "the old one is gone")
	lbs, err = elb.DescribeLoadBalancers(ctx, &elbv2.DescribeLoadBalancersInput{Names: []string{"web2"}})
	require.NoError(t, err)
	ls, err = elb.DescribeListeners(ctx, &elbv2.DescribeListenersInput{LoadBalancerArn: lbs.LoadBalancers[0].LoadBalancerArn})
	require.NoError(t, err)
	require.Len(t, ls.Listeners, 1, "the listener moved with it")
	tgs, err = elb.DescribeTargetGroups(ctx, &elbv2.DescribeTargetGroupsInput{Names: []string{"web-app"}})
	require.NoError(t, err)
	assert.Equal(t, []string{sdkaws.ToString(lbs.LoadBalancers[0].LoadBalancerArn)}, tgs.TargetGroups[0].LoadBalancerArns)
	assert.Regexp(t, `^http://127\.0\.0\.1:\d+/app/$`, outputsOf(stackOf(t, c, "web"))["Url"])

	// Deleted: the load balancer and its groups are gone; by id the stack is DELETE_COMPLETE.
	id := sdkaws.ToString(stackOf(t, c, "web").StackId)
	_, err = c.DeleteStack(ctx, &cloudformation.DeleteStackInput{StackName: sdkaws.String("web")})
	require.NoError(t, err)
	_, err = c.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: sdkaws.String("web")})
	assert.Contains(t, err.Error(), "Stack with id web does not exist")
	assert.Equal(t, cfntypes.StackStatusDeleteComplete, stackOf(t, c, id).StackStatus)
	_, err = elb.DescribeLoadBalancers(ctx, &elbv2.DescribeLoadBalancersInput{Names: []string{"web2"}})
	assert.Equal(t, "LoadBalancerNotFound", computeErrCode(err))
	_, err = elb.DescribeTargetGroups(ctx, &elbv2.DescribeTargetGroupsInput{Names: []string{"web-app"}})
	assert.Equal(t, "TargetGroupNotFound", computeErrCode(err))
}

// What the simulator does not model fails where a test sees it: an intrinsic function it
// does not implement and a property it does not model fail their resource with the reason,
// and the stack rolls back what it made; a type AWS does not have, and a request field the
// simulator does not model, are refused at once.
func TestCloudFormationRefusesWhatItDoesNotModel(t *testing.T) {
	sim := computeSim(t)
	c := newCFN(t, sim)
	ctx := context.Background()

	bad := webStack("/health", 8080)
	bad.Resources["Tg"].(map[string]any)["Properties"].(map[string]any)["Name"] = map[string]any{"Fn::Cidr": []any{"10.0.0.0/16", 2, 8}}
	_, err := c.CreateStack(ctx, &cloudformation.CreateStackInput{StackName: sdkaws.String("bad"), TemplateBody: sdkaws.String(bad.body(t))})
	require.NoError(t, err)
	st := stackOf(t, c, "bad")
	assert.Equal(t, cfntypes.StackStatusRollbackComplete, st.StackStatus)
	assert.Contains(t, failures(t, c, "bad"), "bad: The following resource(s) failed to create: [Tg]. Rollback requested by user.")
	out, err := c.DescribeStackEvents(ctx, &cloudformation.DescribeStackEventsInput{StackName: sdkaws.String("bad")})
	require.NoError(t, err)
	var reason string
	for _, e := range out.StackEvents {
		if e.ResourceStatus == cfntypes.ResourceStatusCreateFailed {
			reason = sdkaws.ToString(e.ResourceStatusReason)
		}
	}
	assert.Equal(t, "Template error: awssim does not implement the intrinsic function Fn::Cidr", reason)
	assert.Contains(t, events(t, c, "bad"), "Sg DELETE_COMPLETE", "what was made is rolled back")
	assert.Contains(t, events(t, c, "bad"), "Logs DELETE_SKIPPED", "but DeletionPolicy Retain keeps its resource even then")
	_, err = newELB(t, sim).DescribeLoadBalancers(ctx, &elbv2.DescribeLoadBalancersInput{Names: []string{"web"}})
	assert.Equal(t, "LoadBalancerNotFound", computeErrCode(err), "rolled back")

	prop := webStack("/health", 8080)
	delete(prop.Resources, "Logs") // kept from the first attempt
	prop.Resources["Tg"].(map[string]any)["Properties"].(map[string]any)["HealthCheckProtocol"] = "TCP"
	_, err = c.CreateStack(ctx, &cloudformation.CreateStackInput{StackName: sdkaws.String("tcp"), TemplateBody: sdkaws.String(prop.body(t))})
	require.NoError(t, err)
	assert.Equal(t, cfntypes.StackStatusRollbackComplete, stackOf(t, c, "tcp").StackStatus)

	typo := webStack("/health", 8080)
	delete(typo.Resources, "Logs") // kept from the first attempt
	typo.Resources["Queue"] = res("AWS::SQS::Qeueu", map[string]any{})
	_, err = c.CreateStack(ctx, &cloudformation.CreateStackInput{StackName: sdkaws.String("typo"), TemplateBody: sdkaws.String(typo.body(t))})
	assert.Equal(t, "ValidationError", computeErrCode(err))
	assert.Contains(t, err.Error(), "Template format error: Unrecognized resource types: [AWS::SQS::Qeueu]")

	unmodelled := webStack("/health", 8080)
	delete(unmodelled.Resources, "Logs") // kept from the first attempt
	unmodelled.Resources["Queue"] = res("AWS::SQS::Queue", map[string]any{})
	_, err = c.CreateStack(ctx, &cloudformation.CreateStackInput{StackName: sdkaws.String("sqs"), TemplateBody: sdkaws.String(unmodelled.body(t))})
	require.NoError(t, err)
	assert.Contains(t, failures(t, c, "sqs"), "Queue: awssim does not model resource type AWS::SQS::Queue")

	_, err = c.CreateStack(ctx, &cloudformation.CreateStackInput{StackName: sdkaws.String("x"), TemplateBody: sdkaws.String(webStack("/", 80).body(t)), TimeoutInMinutes: sdkaws.Int32(5)})
	assert.Equal(t, "ValidationError", computeErrCode(err))
	assert.Contains(t, err.Error(), "awssim does not model the field TimeoutInMinutes of CreateStack")

	iam := tmpl{Resources: map[string]any{"Role": res("AWS::IAM::Role", map[string]any{"RoleName": "r", "AssumeRolePolicyDocument": map[string]any{}})}}
	_, err = c.CreateStack(ctx, &cloudformation.CreateStackInput{StackName: sdkaws.String("iam"), TemplateBody: sdkaws.String(iam.body(t))})
	assert.Equal(t, "InsufficientCapabilitiesException", computeErrCode(err))
	assert.Contains(t, err.Error(), "Requires capabilities : [CAPABILITY_NAMED_IAM]")
}

// A failed update rolls back: what it added goes, what it modified is restored.
func TestCloudFormationUpdateRollback(t *testing.T) {
	sim := computeSim(t)
	c := newCFN(t, sim)
	ctx := context.Background()
	_, err := c.CreateStack(ctx, &cloudformation.CreateStackInput{StackName: sdkaws.String("web"), TemplateBody: sdkaws.String(webStack("/health", 8080).body(t))})
	require.NoError(t, err)

	next := webStack("/ready", 8080)
	next.Resources["Extra"] = res("AWS::Logs::LogGroup", map[string]any{"LogGroupName": "/web/extra"})
	// Taken already: the second group fails after the first and the modification are done.
	next.Resources["Clash"] = res("AWS::Logs::LogGroup", map[string]any{"LogGroupName": "/web/app"}, "DependsOn", []any{"Extra", "Tg"})
	_, err = c.UpdateStack(ctx, &cloudformation.UpdateStackInput{StackName: sdkaws.String("web"), TemplateBody: sdkaws.String(next.body(t))})
	require.NoError(t, err)
	st := stackOf(t, c, "web")
	assert.Equal(t, cfntypes.StackStatusUpdateRollbackComplete, st.StackStatus)
	ev := events(t, c, "web")
	assert.Contains(t, ev, "Clash CREATE_FAILED")
	assert.Contains(t, ev, "Extra DELETE_COMPLETE")
	tgs, err := newELB(t, sim).DescribeTargetGroups(ctx, &elbv2.DescribeTargetGroupsInput{Names: []string{"web-app"}})
	require.NoError(t, err)
	assert.Equal(t, "/health", sdkaws.ToString(tgs.TargetGroups[0].HealthCheckPath), "restored")
	res, err := c.ListStackResources(ctx, &cloudformation.ListStackResourcesInput{StackName: sdkaws.String("web")})
	require.NoError(t, err)
	var names []string
	for _, r := range res.StackResourceSummaries {
		names = append(names, sdkaws.ToString(r.LogicalResourceId))
	}
	assert.Equal(t, []string{"Lb", "Listener", "Logs", "Rule", "Sg", "Tg"}, names)
}

// A GPU capacity stack: the launch template's image from the public SSM parameter, an Auto
// Scaling group of g4dn instances with a T4 each, the capacity provider over it, linked to
// the cluster, whose container instances they become.
func TestCloudFormationGPUCapacity(t *testing.T) {
	sim := computeSim(t)
	c := newCFN(t, sim)
	ctx := context.Background()
	gpu := tmpl{
		Parameters: map[string]any{"GpuAmi": map[string]any{"Type": "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>", "Default": awssim.ECSGPUAMIParameter}},
		Resources: map[string]any{
			"Cluster": res("AWS::ECS::Cluster", map[string]any{"ClusterName": "gpu", "ClusterSettings": []any{map[string]any{"Name": "containerInsights", "Value": "enabled"}}}),
			"Lt":      res("AWS::EC2::LaunchTemplate", map[string]any{"LaunchTemplateData": map[string]any{"ImageId": ref("GpuAmi"), "InstanceType": "g4dn.xlarge"}}),
			"Asg": res("AWS::AutoScaling::AutoScalingGroup", map[string]any{"AutoScalingGroupName": "gpu-hosts", "MinSize": "1", "MaxSize": "2",
				"LaunchTemplate": map[string]any{"LaunchTemplateId": ref("Lt"), "Version": getAtt("Lt", "LatestVersionNumber")}}),
			"Cp": res("AWS::ECS::CapacityProvider", map[string]any{"Name": "gpu-cp", "AutoScalingGroupProvider": map[string]any{
				"AutoScalingGroupArn": ref("Asg"), "ManagedScaling": map[string]any{"Status": "ENABLED", "TargetCapacity": 100}}}),
			"Assoc": res("AWS::ECS::ClusterCapacityProviderAssociations", map[string]any{"Cluster": ref("Cluster"),
				"CapacityProviders": []any{"FARGATE", ref("Cp")}, "DefaultCapacityProviderStrategy": []any{map[string]any{"CapacityProvider": "FARGATE", "Weight": 1}}}),
		},
	}
	_, err := c.CreateStack(ctx, &cloudformation.CreateStackInput{StackName: sdkaws.String("gpu"), TemplateBody: sdkaws.String(gpu.body(t))})
	require.NoError(t, err)
	st := stackOf(t, c, "gpu")
	require.Equal(t, cfntypes.StackStatusCreateComplete, st.StackStatus, sdkaws.ToString(st.StackStatusReason))
	assert.Equal(t, awssim.ECSGPUAMIParameter, sdkaws.ToString(st.Parameters[0].ParameterValue))
	assert.Equal(t, awssim.ECSGPUAMI, sdkaws.ToString(st.Parameters[0].ResolvedValue))

	hosts := sim.GroupInstances("gpu-hosts")
	require.Len(t, hosts, 1)
	assert.Equal(t, "g4dn.xlarge", hosts[0].InstanceType)
	assert.Equal(t, "Tesla T4", hosts[0].GPU.Model)
	e := newECS(t, sim)
	cl, err := e.DescribeClusters(ctx, &awsecs.DescribeClustersInput{Clusters: []string{"gpu"}})
	require.NoError(t, err)
	assert.Equal(t, []string{"FARGATE", "gpu-cp"}, cl.Clusters[0].CapacityProviders)
	assert.Equal(t, "enabled", sdkaws.ToString(cl.Clusters[0].Settings[0].Value))
	assert.Equal(t, int32(1), cl.Clusters[0].RegisteredContainerInstancesCount)

	// Without the parameter the stack cannot be made, as in an account without it.
	gpu.Parameters["GpuAmi"].(map[string]any)["Default"] = "/aws/service/ecs/optimized-ami/amazon-linux-2/nope"
	_, err = c.CreateStack(ctx, &cloudformation.CreateStackInput{StackName: sdkaws.String("nope"), TemplateBody: sdkaws.String(gpu.body(t))})
	assert.Equal(t, "ValidationError", computeErrCode(err))
	assert.Contains(t, err.Error(), "Unable to fetch parameters [/aws/service/ecs/optimized-ami/amazon-linux-2/nope]")

	// Deleting the stack deregisters the hosts and removes the group.
	_, err = c.DeleteStack(ctx, &cloudformation.DeleteStackInput{StackName: sdkaws.String("gpu")})
	require.NoError(t, err)
	assert.Empty(t, sim.GroupInstances("gpu-hosts"))
	cl, err = e.DescribeClusters(ctx, &awsecs.DescribeClustersInput{Clusters: []string{"gpu"}})
	require.NoError(t, err)
	assert.Empty(t, cl.Clusters)
	assert.True(t, strings.HasPrefix(sdkaws.ToString(cl.Failures[0].Reason), "MISSING"))
}

// With a step time a stack operation runs in the background, as CloudFormation's does:
// the call returns with the stack in progress, and its events arrive one by one.
func TestCloudFormationInBackground(t *testing.T) {
	sim := computeSim(t)
	sim.SetCloudFormationStep(20 * time.Millisecond)
	c := newCFN(t, sim)
	ctx := context.Background()
	_, err := c.CreateStack(ctx, &cloudformation.CreateStackInput{StackName: sdkaws.String("web"), TemplateBody: sdkaws.String(webStack("/health", 8080).body(t))})
	require.NoError(t, err)
	early := events(t, c, "web")
	assert.Equal(t, cfntypes.StackStatusCreateInProgress, stackOf(t, c, "web").StackStatus)
	require.Eventually(t, func() bool {
		return stackOf(t, c, "web").StackStatus == cfntypes.StackStatusCreateComplete
	}, 10*time.Second, 5*time.Millisecond)
	assert.Less(t, len(early), len(events(t, c, "web")), "events arrive while it works")
	_, err = c.DeleteStack(ctx, &cloudformation.DeleteStackInput{StackName: sdkaws.String("web")})
	require.NoError(t, err)
	_, err = c.UpdateStack(ctx, &cloudformation.UpdateStackInput{StackName: sdkaws.String("web"), TemplateBody: sdkaws.String(webStack("/", 8080).body(t))})
	assert.Contains(t, err.Error(), "DELETE_IN_PROGRESS state and can not be updated", "busy while it is deleted")
}
