package infra

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/tags"
	"github.com/awslabs/goformation/v7/intrinsics"

	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/environment"
)

// Logical ids of the template that other commands and tests name. They are part of the
// stack's identity: renaming one makes CloudFormation replace the resource.
const (
	LogicalVPC                      = "Vpc"
	LogicalLoadBalancer             = "LoadBalancer"
	LogicalHTTPSListener            = "HttpsListener"
	LogicalHTTPListener             = "HttpListener"
	LogicalCluster                  = "Cluster"
	LogicalClusterCapacityProviders = "ClusterCapacityProviders"
	LogicalGPULaunchTemplate        = "GpuLaunchTemplate"
	LogicalGPUAutoScalingGroup      = "GpuAutoScalingGroup"
	LogicalGPUCapacityProvider      = "GpuCapacityProvider"
	LogicalNamespace                = "Namespace"
	LogicalAppLogGroup              = "AppLogGroup"
	LogicalAuditLogGroup            = "AuditLogGroup"
	LogicalDatabase                 = "Database"
	LogicalFileSystem               = "FileSystem"
	LogicalVideoBucket              = "VideoBucket"
	LogicalDataKey                  = "DataKey"
	LogicalAlarmTopic               = "AlarmTopic"
	LogicalCache                    = "Cache"
	LogicalWebACL                   = "WebAcl"
	LogicalCDN                      = "Cdn"
)

// Stateful lists the logical ids of the resources that hold data: a change set that would
// replace or delete one of them is refused unless the operator names it. Read it, never
// change it.
var Stateful = []string{LogicalDatabase, LogicalFileSystem, LogicalVideoBucket, LogicalDataKey}

// Tiers of the VPC's subnets, as the environment file names them.
const (
	TierPublic   = "public"
	TierPrivate  = "private"
	TierDatabase = "database"
)

// LogicalSubnet is the logical id of the i-th (0-based) subnet of a tier: PublicSubnet1, ….
func LogicalSubnet(tier string, i int) string { return fmt.Sprintf("%sSubnet%d", camel(tier), i+1) }

// LogicalSecurityGroup is the logical id of a role's security group (alb, a service, rds,
// redis, efs, endpoints): SecurityGroupAlb, SecurityGroupBackend, ….
func LogicalSecurityGroup(role string) string { return "SecurityGroup" + camel(role) }

// LogicalTargetGroup is the logical id of a routed service's target group; alt is the
// blue/green alternate: TargetGroupBackend, TargetGroupBackendAlt.
func LogicalTargetGroup(service string, alt bool) string {
	if alt {
		return "TargetGroup" + camel(service) + "Alt"
	}
	return "TargetGroup" + camel(service)
}

// LogicalRule is the logical id of a routed service's HTTPS listener rule.
func LogicalRule(service string) string { return "Rule" + camel(service) }

// LogicalAccessPoint is the logical id of a named volume's EFS access point.
func LogicalAccessPoint(volume string) string { return "AccessPoint" + camel(volume) }

// TaskRoleName is the IAM role a service's tasks run as, <cluster>-task-<service>; the
// ECS renderer names it as the task definition's TaskRoleArn.
func TaskRoleName(cluster, service string) string { return cluster + "-task-" + service }

// Role names the ECS renderer refers to by convention (ecs.renderer.role).
func executionRoleName(cluster string) string      { return cluster + "-task-execution" }
func infrastructureRoleName(cluster string) string { return cluster + "-ecs-infrastructure" }

// TagEnvironment is the tag every taggable resource of the stack carries.
const TagEnvironment = "vmctl:environment"

// renderer holds one render's inputs, the template it builds and the problems it finds.
type renderer struct {
	env  *environment.Environment
	aws  *environment.AWS
	plan *ecs.Plan
	t    *cloudformation.Template

	lines    map[string]int // dotted field → line in the environment file
	problems []*environment.FieldError

	services map[string]*ecs.Service // the plan's services by name
	// https: the environment has a domain or a certificate, so the ALB serves HTTPS and
	// port 80 only redirects; without, port 80 serves (verify warns about it).
	https    bool
	listener string // logical id of the listener the rules are on

	// Ids the rest of the template uses: literals from the file or Refs to what the
	// template creates (goformation encodes both as strings).
	vpc     string
	subnets map[string][]string // tier → subnet ids
	groups  map[string]string   // security group role → id
	created map[string]bool     // security group roles this stack creates
}

// Render turns an AWS environment file and its deploy plan into the environment's
// foundation stack. env is the file as written: an id it names (vpc_id, subnet ids,
// security groups, store endpoints, file system) is used as it is and not created. plan
// is ecs.Render(stack, Offline(env), release): every name deploy looks up later (cluster,
// target groups, capacity provider, namespace, roles, log groups) comes from it. What the
// file leaves out or gets wrong for CloudFormation is one error listing every problem as
// "file:line: field: why".
func Render(env *environment.Environment, plan *ecs.Plan) (*cloudformation.Template, error) {
	if env == nil || plan == nil {
		return nil, errors.New("render infrastructure: no environment or plan: load the environment and render its plan first")
	}
	if env.Kind != environment.KindAWS || env.AWS == nil {
		return nil, fmt.Errorf("render infrastructure for %s: it is kind %s; only kind aws environments have a foundation stack", env.Name, env.Kind)
	}
	if plan.Environment != env.Name || plan.Cluster != env.AWS.Cluster {
		return nil, fmt.Errorf("render infrastructure for %s: the plan is of environment %s, cluster %s: render the plan from the same environment file", env.Name, plan.Environment, plan.Cluster)
	}
	r := &renderer{
		env: env, aws: env.AWS, plan: plan,
		t:        cloudformation.NewTemplate(),
		lines:    fieldLines(env.File),
		services: map[string]*ecs.Service{},
		subnets:  map[string][]string{},
		groups:   map[string]string{},
		created:  map[string]bool{},
	}
	r.https = env.AWS.Domain != "" || env.AWS.CertificateARN != ""
	for i := range plan.Services {
		r.services[plan.Services[i].Name] = &plan.Services[i]
	}
	r.t.Description = fmt.Sprintf("vmctl foundation of environment %s (%s): network, load balancer, cluster and GPU capacity, data stores, alarms and budget. Rendered by vmctl infra; edit the environment file, not this template.", env.Name, StackName(env.Name))

	r.check()
	if len(r.problems) > 0 { // what follows builds on what check found wrong
		return nil, r.err()
	}
	r.network()
	r.securityGroups()
	r.key()
	r.logs()
	r.topic()
	r.loadBalancer()
	r.compute()
	r.roles()
	r.database()
	r.cache()
	r.fileSystem()
	r.videos()
	r.alarms()
	r.budget()
	r.schedule()
	r.tagAll()

	if len(r.problems) > 0 {
		return nil, r.err()
	}
	return r.t, nil
}

// err joins the problems found, in the file's order, one a line.
func (r *renderer) err() error {
	slices.SortStableFunc(r.problems, func(a, b *environment.FieldError) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), strings.Compare(a.Field, b.Field), strings.Compare(a.Reason, b.Reason))
	})
	r.problems = slices.CompactFunc(r.problems, func(a, b *environment.FieldError) bool { return *a == *b })
	errs := make([]error, len(r.problems))
	for i, p := range r.problems {
		errs[i] = p
	}
	return fmt.Errorf("render infrastructure for %s: %w", r.env.Name, errors.Join(errs...))
}

// fail records a problem with the environment file's field at path.
func (r *renderer) fail(path, format string, args ...any) {
	r.problems = append(r.problems, &environment.FieldError{
		File: cmp.Or(r.env.File, r.env.Name+".yaml"), Line: lineOf(r.lines, path), Field: path, Reason: fmt.Sprintf(format, args...),
	})
}

// add puts a resource into the template under its logical id.
func (r *renderer) add(id string, res cloudformation.Resource) { r.t.Resources[id] = res }

// output records a stack output; outputs.go's keys are the contract.
func (r *renderer) output(key string, value interface{}) {
	r.t.Outputs[key] = cloudformation.Output{Value: value}
}

// name is a resource name unique to the environment, vmctl-<env>-<suffix>.
func (r *renderer) name(suffix string) string { return StackName(r.env.Name) + "-" + suffix }

// tagAll gives every taggable resource the environment tag (and a Name where the console
// shows one), so cost reports and the budget can be split by environment.
func (r *renderer) tagAll() {
	envTag := tags.Tag{Key: TagEnvironment, Value: r.env.Name}
	tagType := reflect.TypeFor[[]tags.Tag]()
	for _, id := range slices.Sorted(maps.Keys(r.t.Resources)) {
		v := reflect.ValueOf(r.t.Resources[id]).Elem()
		f := v.FieldByName("Tags")
		if !f.IsValid() || f.Type() != tagType {
			continue // the types with their own tag shapes tag themselves
		}
		ts := f.Interface().([]tags.Tag)
		if !slices.ContainsFunc(ts, func(t tags.Tag) bool { return t.Key == TagEnvironment }) {
			ts = append(ts, envTag)
		}
		f.Set(reflect.ValueOf(ts))
	}
}

// nameTag is the Name tag the EC2 console lists resources by.
func (r *renderer) nameTag(suffix string) []tags.Tag {
	return []tags.Tag{{Key: "Name", Value: r.name(suffix)}}
}

// TemplateJSON marshals a template as indented JSON with sorted keys, so the same
// environment renders byte for byte the same template.
func TemplateJSON(t *cloudformation.Template) ([]byte, error) {
	raw, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("marshal template: %w", err)
	}
	// goformation writes intrinsic functions as encoded strings; its processor decodes
	// them. Every handler keeps the function as written: the default handlers would try
	// to evaluate them (a Ref to a parameter becomes its default, a GetAtt nothing).
	keep := map[string]intrinsics.IntrinsicHandler{}
	for _, fn := range []string{"Ref", "Fn::Base64", "Fn::And", "Fn::Equals", "Fn::If", "Fn::Not", "Fn::Or", "Fn::FindInMap",
		"Fn::GetAtt", "Fn::GetAZs", "Fn::ImportValue", "Fn::Join", "Fn::Select", "Fn::Split", "Fn::Sub", "Fn::Cidr", "Fn::Transform"} {
		keep[fn] = func(name string, input interface{}, _ interface{}) interface{} {
			return map[string]interface{}{name: input}
		}
	}
	processed, err := intrinsics.ProcessJSON(raw, &intrinsics.ProcessorOptions{IntrinsicHandlerOverrides: keep})
	if err != nil {
		return nil, fmt.Errorf("marshal template: %w", err)
	}
	// Once more without HTML escaping, so the parameter type reads Value<AWS::EC2::Image::Id>
	// rather than Value\u003c…: the same JSON to CloudFormation, easier to review.
	var v interface{}
	dec := json.NewDecoder(bytes.NewReader(processed))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("marshal template: %w", err)
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("marshal template: %w", err)
	}
	return out.Bytes(), nil
}
