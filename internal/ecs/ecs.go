// Package ecs renders the compose stack plus one AWS environment file and a release into
// exactly what a deploy applies: ECR repositories, ECS task definitions and services,
// Application Auto Scaling targets and policies, in the AWS SDK's own input types.
//
// Rendering is pure: no AWS call, no Docker, no clock. ARNs that exist only inside the
// account (target groups, listener rules) are named in the plan and resolved at deploy; what
// ECS cannot express fails the render with a *Problem naming the service, the key and why.
package ecs

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/applicationautoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"

	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/release"
	"github.com/vmctl/vmctl/internal/stack"
)

// Tuning that the seed leaves open; each is a constant so the plan and its tests agree.
const (
	// KeepReleases is how many task definition revisions back deploy and rollback look for
	// a release that ran before (ECR keeps every release image; see repositories).
	KeepReleases = 10
	// UntaggedExpiryDays is how long ECR keeps an image no release tags (a failed push's).
	UntaggedExpiryDays = 14
	// CPUTarget is the target-tracking CPU utilisation, below the 80 % alarm of seed §7.3 so
	// scaling acts before anyone is paged.
	CPUTarget = 70.0
	// BakeMinutes is how long blue/green keeps the old tasks ready to take traffic back.
	BakeMinutes = 10
	// logGroupFormat names the one CloudWatch Logs group per environment; each service writes
	// its own streams into it.
	logGroupFormat = "/vmctl/%s/app"
	// auditLogGroupFormat names the environment's audit log group (seed §7.2: kept a year).
	auditLogGroupFormat = "/vmctl/%s/audit"
)

// Plan is what a deploy of one release to one AWS environment applies.
type Plan struct {
	Environment string               `json:"environment"`
	Account     string               `json:"account"`
	Region      string               `json:"region"`
	Cluster     string               `json:"cluster"`
	Release     ReleaseRef           `json:"release"`
	Unpinned    bool                 `json:"unpinned,omitempty"` // some image is a tag, not a digest
	Strategy    environment.Strategy `json:"strategy"`
	Approval    bool                 `json:"approvalRequired,omitempty"` // a write asks first
	Protected   bool                 `json:"protected,omitempty"`        // and always explicitly
	LogGroup    LogGroup             `json:"logGroup"`
	// AuditLogGroup keeps vmctl's record of decisions such as a scan override.
	AuditLogGroup LogGroup `json:"auditLogGroup"`
	// Order lists the services in start order: each level after everything it depends on.
	Order        [][]string   `json:"order"`
	Repositories []Repository `json:"repositories"`
	Services     []Service    `json:"services"` // in start order
	Managed      []Managed    `json:"managed,omitempty"`
	Notes        []Note       `json:"notes,omitempty"`
}

// ReleaseRef names the release a plan deploys.
type ReleaseRef struct {
	ID       string `json:"id,omitempty"`
	Revision string `json:"revision,omitempty"`
}

// LogGroup is the environment's CloudWatch Logs group for every service.
type LogGroup struct {
	Name          string `json:"name"`
	RetentionDays int    `json:"retentionDays"`
}

// Repository is one ECR repository and its settings.
type Repository struct {
	Name      string                      `json:"name"`
	Services  []string                    `json:"services"`
	Settings  ecr.CreateRepositoryInput   `json:"settings"`
	Lifecycle ecr.PutLifecyclePolicyInput `json:"lifecycle"`
}

// Service is one ECS service: a task definition of one or more compose services, and how it
// is run, reached and scaled.
type Service struct {
	Name      string                `json:"name"`
	Placement environment.Placement `json:"placement"`
	Image     string                `json:"image"`
	Pinned    bool                  `json:"pinned"`
	// Containers are the compose services in the task: the service itself, then the ones
	// that share its network (network_mode: service:NAME).
	Containers     []string                           `json:"containers"`
	StartAfter     []string                           `json:"startAfter,omitempty"`
	TaskDefinition awsecs.RegisterTaskDefinitionInput `json:"taskDefinition"`
	Service        awsecs.CreateServiceInput          `json:"service"`
	LoadBalancer   *LoadBalancer                      `json:"loadBalancer,omitempty"`
	Scaling        Scaling                            `json:"scaling"`
	Hosts          *Hosts                             `json:"hosts,omitempty"` // ec2-gpu only
}

// LoadBalancer is a public service's place behind the ALB. The target groups exist in the
// account; deploy resolves their names to the ARNs that Service.LoadBalancers needs.
type LoadBalancer struct {
	TargetGroup          string   `json:"targetGroup"`
	AlternateTargetGroup string   `json:"alternateTargetGroup,omitempty"` // blue/green only
	PathPatterns         []string `json:"pathPatterns"`
	HealthPath           string   `json:"healthPath"`
	// TargetGroupSettings is what the target group must be: port, VPC, health check.
	TargetGroupSettings elasticloadbalancingv2.CreateTargetGroupInput `json:"targetGroupSettings"`
}

// Scaling is the service's Application Auto Scaling setup.
type Scaling struct {
	Target   applicationautoscaling.RegisterScalableTargetInput `json:"target"`
	Policy   applicationautoscaling.PutScalingPolicyInput       `json:"policy"`
	Schedule []applicationautoscaling.PutScheduledActionInput   `json:"schedule,omitempty"`
}

// Hosts is the EC2 Auto Scaling group of GPU instances behind an ec2-gpu service, one task
// per instance.
type Hosts struct {
	CapacityProvider string `json:"capacityProvider"`
	AutoScalingGroup string `json:"autoScalingGroup"`
	InstanceType     string `json:"instanceType"`
	GPU              string `json:"gpu"`
	Min              int    `json:"min"`
	Max              int    `json:"max"`
	Spot             bool   `json:"spot,omitempty"`
	OnDemandBase     int    `json:"onDemandBase,omitempty"`
}

// Managed is a stack service that runs locally as a stand-in for a managed AWS service.
type Managed struct {
	Service  string `json:"service"`
	By       string `json:"by"`
	Endpoint string `json:"endpoint"`
	Detail   string `json:"detail,omitempty"`
}

// Note is something harmless that does not carry over to ECS as it is.
type Note struct {
	Service string `json:"service,omitempty"`
	Key     string `json:"key"`
	Text    string `json:"text"`
}

func (n Note) String() string { return prefix(n.Service, n.Key) + n.Text }

// Problem is one thing that ECS cannot express; Render joins every one it finds.
type Problem struct {
	Service string
	Key     string // compose key, or the environment file's field
	Reason  string
}

func (p *Problem) Error() string { return prefix(p.Service, p.Key) + p.Reason }

func prefix(service, key string) string {
	var b strings.Builder
	if service != "" {
		b.WriteString("service " + service + ": ")
	}
	if key != "" {
		b.WriteString(key + ": ")
	}
	return b.String()
}

// renderer holds one render's inputs and what it has found so far.
type renderer struct {
	st   *stack.Stack
	env  *environment.Environment
	aws  *environment.AWS
	rel  release.Release
	plan *Plan

	tasks    []string            // the ECS services, sorted
	taskOf   map[string]string   // compose service → the ECS service whose task runs it
	sidecars map[string][]string // ECS service → compose services sharing its network
	managed  map[string]Managed
	// storeRefs match a managed store's local host name in a variable's value.
	storeRefs map[string]*regexp.Regexp
	problems  []*Problem
}

func (r *renderer) fail(service, key, format string, args ...any) {
	r.problems = append(r.problems, &Problem{Service: service, Key: key, Reason: fmt.Sprintf(format, args...)})
}

func (r *renderer) note(service, key, format string, args ...any) {
	r.plan.Notes = append(r.plan.Notes, Note{Service: service, Key: key, Text: fmt.Sprintf(format, args...)})
}

// envKey names a field of the environment file, for problems found there.
func (r *renderer) envKey(field string) string { return r.env.Name + ".yaml " + field }

// Render turns the stack, an AWS environment and a release into a Plan. Stack services the
// environment does not place are skipped only when the environment names the managed store
// that replaces them (stores.postgres, stores.redis); any other gap is a Problem.
func Render(st *stack.Stack, env *environment.Environment, rel release.Release) (*Plan, error) {
	if env.Kind != environment.KindAWS || env.AWS == nil {
		return nil, fmt.Errorf("render %s: it is kind %s; only kind aws environments render to ECS", env.Name, env.Kind)
	}
	if err := rel.Validate(); err != nil {
		return nil, fmt.Errorf("render %s: release: %w", env.Name, err)
	}
	if err := st.Written(); err != nil {
		return nil, fmt.Errorf("render %s: %w", env.Name, err)
	}
	a := env.AWS
	r := &renderer{
		st: st, env: env, aws: a, rel: rel,
		plan: &Plan{
			Environment: env.Name, Account: a.AccountID, Region: a.Region, Cluster: a.Cluster,
			Release:  ReleaseRef{ID: rel.ID, Revision: rel.Revision},
			Strategy: a.Deployment.Strategy, Approval: a.Deployment.ApprovalRequired || env.Protected, Protected: env.Protected,
			LogGroup:      LogGroup{Name: fmt.Sprintf(logGroupFormat, env.Name), RetentionDays: a.Logs.AppRetentionDays},
			AuditLogGroup: LogGroup{Name: fmt.Sprintf(auditLogGroupFormat, env.Name), RetentionDays: a.Logs.AuditRetentionDays},
		},
		taskOf: map[string]string{}, sidecars: map[string][]string{}, managed: map[string]Managed{},
		storeRefs: map[string]*regexp.Regexp{},
	}
	r.classify()
	rendered := map[string]Service{}
	for _, name := range r.tasks {
		if s, ok := r.service(name); ok {
			rendered[name] = s
		}
	}
	r.order(rendered)
	for _, name := range slices.Sorted(maps.Keys(r.managed)) {
		r.plan.Managed = append(r.plan.Managed, r.managed[name])
	}
	if len(r.problems) > 0 {
		slices.SortStableFunc(r.problems, func(a, b *Problem) int {
			return cmp.Or(strings.Compare(a.Service, b.Service), strings.Compare(a.Key, b.Key))
		})
		errs := make([]error, len(r.problems))
		for i, p := range r.problems {
			errs[i] = p
		}
		return nil, fmt.Errorf("render %s: %w", env.Name, errors.Join(errs...))
	}
	slices.SortStableFunc(r.plan.Notes, func(a, b Note) int {
		return cmp.Or(strings.Compare(a.Service, b.Service), strings.Compare(a.Key, b.Key))
	})
	r.plan.Repositories = r.repositories()
	return r.plan, nil
}

// classify decides, for every stack service, whether it becomes an ECS service, a container
// in another service's task, or is replaced by a managed store; and checks the environment
// names no service the stack lacks.
func (r *renderer) classify() {
	names := r.st.Names()
	for _, name := range slices.Sorted(maps.Keys(r.env.Services)) {
		if !slices.Contains(names, name) {
			r.fail(name, r.envKey("services."+name), "no such service in the stack (services: %s)", strings.Join(names, ", "))
		}
	}
	stores := map[string]Managed{}
	if s := r.aws.Stores.Postgres; s.Endpoint != "" {
		detail := "single-AZ"
		if s.MultiAZ {
			detail = "Multi-AZ"
		}
		stores["postgres"] = Managed{Service: "postgres", By: "RDS PostgreSQL", Endpoint: s.Endpoint, Detail: detail}
	}
	if s := r.aws.Stores.Redis; s.Endpoint != "" {
		stores["redis"] = Managed{Service: "redis", By: "ElastiCache Redis", Endpoint: s.Endpoint, Detail: "voice-profile TTL " + shortDuration(s.VoiceProfileTTL.Duration)}
	}
	for _, name := range names {
		svc := r.st.Project.Services[name]
		_, placed := r.env.Services[name]
		if parent, ok := strings.CutPrefix(svc.NetworkMode, "service:"); ok {
			switch _, parentPlaced := r.env.Services[parent]; {
			case placed:
				r.fail(name, r.envKey("services."+name), "it shares %s's network (network_mode: service:%s), so it runs in %s's task: size it under services.%s instead", parent, parent, parent, parent)
			case !parentPlaced:
				r.fail(name, "network_mode", "service:%s: %s is not an ECS service in %s.yaml, so there is no task to run %s in", parent, parent, r.env.Name, name)
			default:
				r.taskOf[name] = parent
				r.sidecars[parent] = append(r.sidecars[parent], name)
			}
			continue
		}
		switch m, store := stores[name]; {
		case placed:
			r.taskOf[name] = name
			r.tasks = append(r.tasks, name)
		case store:
			r.managed[name] = m
		default:
			r.fail(name, r.envKey("services"), "the stack runs %s but %s.yaml does not place it: add services.%s (placement, cpu, memory, min, max, port, health)", name, r.env.Name, name)
		}
	}
}

// order sorts the services into start levels from depends_on across tasks; dependencies on
// managed stores do not order anything, since those are always up.
func (r *renderer) order(rendered map[string]Service) {
	names := r.tasks
	after := map[string][]string{}
	for _, task := range names {
		for _, c := range append([]string{task}, r.sidecars[task]...) {
			for dep := range r.st.Dependencies(c) {
				if t, ok := r.taskOf[dep]; ok && t != task && !slices.Contains(after[task], t) {
					after[task] = append(after[task], t)
				}
			}
		}
		slices.Sort(after[task])
	}
	done := map[string]bool{}
	for len(done) < len(names) {
		var level []string
		for _, n := range names {
			if !done[n] && !slices.ContainsFunc(after[n], func(d string) bool { return !done[d] }) {
				level = append(level, n)
			}
		}
		if len(level) == 0 {
			var left []string
			for _, n := range names {
				if !done[n] {
					left = append(left, n)
				}
			}
			r.fail("", "depends_on", "the tasks of %s depend on each other in a cycle once containers that share a network run in one task", strings.Join(left, ", "))
			return
		}
		for _, n := range level {
			done[n] = true
			if s, ok := rendered[n]; ok {
				s.StartAfter = after[n]
				r.plan.Services = append(r.plan.Services, s)
			}
		}
		r.plan.Order = append(r.plan.Order, level)
	}
}
