package ecs

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	aas "github.com/aws/aws-sdk-go-v2/service/applicationautoscaling"
	aastypes "github.com/aws/aws-sdk-go-v2/service/applicationautoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbv2types "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/vmctl/vmctl/internal/environment"
)

// Names of what the account provides around the cluster. vmctl creates none of them; these
// conventions are how a plan refers to them before their ARNs are known.
func (r *renderer) family(service string) string      { return r.aws.Cluster + "-" + service }
func (r *renderer) gpuProvider() string               { return r.aws.Cluster + "-gpu" }
func (r *renderer) targetGroup(service string) string { return r.aws.Cluster + "-" + service }
func (r *renderer) role(name string) string {
	return fmt.Sprintf("arn:%s:iam::%s:role/%s-%s", partition(r.aws.Region), r.aws.AccountID, r.aws.Cluster, name)
}

func partition(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	}
	return "aws"
}

// maxTargetGroupName is ELBv2's limit on a target group's name.
const maxTargetGroupName = 32

// service renders one ECS service and its task; ok is false when it found problems.
func (r *renderer) service(name string) (Service, bool) {
	before := len(r.problems)
	es := r.env.Services[name]
	containers := append([]string{name}, r.sidecars[name]...)
	var defs []ecstypes.ContainerDefinition
	vols := map[string]ecstypes.Volume{}
	for i, c := range containers {
		def, cv := r.container(c, name, es, i == 0)
		defs = append(defs, def)
		for _, v := range cv {
			vols[*v.Name] = v
		}
	}
	// A container that others wait on to finish (an init step) must be allowed to exit.
	for _, d := range defs {
		for _, dep := range d.DependsOn {
			if dep.Condition == ecstypes.ContainerConditionSuccess || dep.Condition == ecstypes.ContainerConditionComplete {
				defs[slices.Index(containers, *dep.ContainerName)].Essential = aws.Bool(false)
			}
		}
	}

	fargate := es.Placement == environment.PlacementFargate
	platform := r.platform(name, fargate)
	td := awsecs.RegisterTaskDefinitionInput{
		Family:                  aws.String(r.family(name)),
		ContainerDefinitions:    defs,
		Cpu:                     aws.String(strconv.Itoa(es.CPU)),
		Memory:                  aws.String(strconv.Itoa(es.Memory)),
		NetworkMode:             ecstypes.NetworkModeAwsvpc,
		RequiresCompatibilities: []ecstypes.Compatibility{ecstypes.CompatibilityFargate},
		ExecutionRoleArn:        aws.String(r.role("task-execution")), // pulls from ECR, reads secrets, writes logs
		TaskRoleArn:             aws.String(r.role("task-" + name)),   // what the service's own code may call (the foundation's)
		RuntimePlatform:         &ecstypes.RuntimePlatform{OperatingSystemFamily: ecstypes.OSFamilyLinux, CpuArchitecture: platform},
		Tags:                    r.tags(name),
	}
	for _, v := range slices.Sorted(maps.Keys(vols)) {
		td.Volumes = append(td.Volumes, vols[v])
	}
	if !fargate {
		td.RequiresCompatibilities = []ecstypes.Compatibility{ecstypes.CompatibilityEc2}
		td.PlacementConstraints = []ecstypes.TaskDefinitionPlacementConstraint{{
			Type:       ecstypes.TaskDefinitionPlacementConstraintTypeMemberOf,
			Expression: aws.String("attribute:ecs.instance-type == " + es.InstanceType),
		}}
	}

	s := Service{
		Name:           name,
		Placement:      es.Placement,
		Image:          *defs[0].Image,
		Pinned:         r.rel.Images[name].Digest != "",
		Containers:     containers,
		TaskDefinition: td,
		Service:        r.definition(name, es, defs[0]),
		Scaling:        r.scaling(name, es),
	}
	if es.LoadBalancer != nil {
		s.LoadBalancer = r.loadBalancer(name, es)
	}
	if !fargate {
		s.Hosts = &Hosts{
			CapacityProvider: r.gpuProvider(), AutoScalingGroup: r.gpuProvider(),
			InstanceType: es.InstanceType, Min: es.Min, Max: es.Max, Spot: es.Spot, OnDemandBase: es.OnDemandBase,
		}
		if es.GPU != nil {
			s.Hosts.GPU = fmt.Sprintf("%d × %s", es.GPU.Count, cmp.Or(es.GPU.Model, "GPU"))
		}
	}
	return s, len(r.problems) == before
}

// platform is the task's CPU architecture, from the compose platform.
func (r *renderer) platform(name string, fargate bool) ecstypes.CPUArchitecture {
	p := r.st.Project.Services[name].Platform
	switch p {
	case "", "linux/amd64", "linux/x86_64":
		return ecstypes.CPUArchitectureX8664
	case "linux/arm64", "linux/arm64/v8":
		if !fargate {
			r.fail(name, "platform", "%s: the GPU instance types vmctl knows are x86_64", p)
		}
		return ecstypes.CPUArchitectureArm64
	}
	r.fail(name, "platform", "%s: ECS runs linux/amd64 and linux/arm64", p)
	return ecstypes.CPUArchitectureX8664
}

func (r *renderer) tags(name string) []ecstypes.Tag {
	tags := []ecstypes.Tag{
		{Key: aws.String("vmctl:environment"), Value: aws.String(r.env.Name)},
		{Key: aws.String("vmctl:service"), Value: aws.String(name)},
	}
	if r.rel.ID != "" {
		tags = append(tags, ecstypes.Tag{Key: aws.String("vmctl:release"), Value: aws.String(r.rel.ID)})
	}
	if r.rel.Revision != "" {
		tags = append(tags, ecstypes.Tag{Key: aws.String("vmctl:revision"), Value: aws.String(r.rel.Revision)})
	}
	return tags
}

// definition is the CreateService input. The task definition is named by family; deploy
// pins the revision it registers.
func (r *renderer) definition(name string, es environment.Service, main ecstypes.ContainerDefinition) awsecs.CreateServiceInput {
	var subnets []string
	for _, s := range r.aws.Network.Subnets.Private {
		subnets = append(subnets, s.ID)
	}
	in := awsecs.CreateServiceInput{
		Cluster:                  aws.String(r.aws.Cluster),
		ServiceName:              aws.String(name),
		TaskDefinition:           aws.String(r.family(name)),
		DesiredCount:             aws.Int32(int32(es.Min)), // autoscaling moves it within min–max
		CapacityProviderStrategy: r.capacity(es),
		SchedulingStrategy:       ecstypes.SchedulingStrategyReplica,
		NetworkConfiguration: &ecstypes.NetworkConfiguration{AwsvpcConfiguration: &ecstypes.AwsVpcConfiguration{
			Subnets:        subnets,
			SecurityGroups: []string{r.aws.Network.SecurityGroups[name]},
			AssignPublicIp: ecstypes.AssignPublicIpDisabled,
		}},
		DeploymentController:        &ecstypes.DeploymentController{Type: ecstypes.DeploymentControllerTypeEcs},
		DeploymentConfiguration:     r.deployment(),
		ServiceConnectConfiguration: r.serviceConnect(name, main),
		EnableECSManagedTags:        true,
		PropagateTags:               ecstypes.PropagateTagsService,
		Tags:                        r.tags(name),
	}
	if g := es.Health.GracePeriod.Duration; g > 0 {
		in.HealthCheckGracePeriodSeconds = aws.Int32(int32(min(g.Seconds(), 1<<31-1)))
	}
	if es.Placement == environment.PlacementEC2GPU {
		// One GPU task per instance: the Auto Scaling group's size is the task count.
		in.PlacementConstraints = []ecstypes.PlacementConstraint{{Type: ecstypes.PlacementConstraintTypeDistinctInstance}}
	}
	if es.LoadBalancer != nil {
		lb := ecstypes.LoadBalancer{ContainerName: aws.String(name), ContainerPort: aws.Int32(int32(es.Port))}
		if r.aws.Deployment.Strategy == environment.StrategyBlueGreen {
			// Target groups and listener rules are resolved by name at deploy; the role that
			// lets ECS shift the listener between them is known by convention.
			lb.AdvancedConfiguration = &ecstypes.AdvancedConfiguration{RoleArn: aws.String(r.role("ecs-infrastructure"))}
		}
		in.LoadBalancers = []ecstypes.LoadBalancer{lb}
	}
	return in
}

// capacity places Fargate tasks on FARGATE, or FARGATE_SPOT above an on-demand base where
// the environment allows Spot; GPU tasks go to the capacity provider of the GPU hosts, whose
// Auto Scaling group carries their own Spot mix.
func (r *renderer) capacity(es environment.Service) []ecstypes.CapacityProviderStrategyItem {
	switch {
	case es.Placement == environment.PlacementEC2GPU:
		return []ecstypes.CapacityProviderStrategyItem{{CapacityProvider: aws.String(r.gpuProvider()), Weight: 1}}
	case !es.Spot:
		return []ecstypes.CapacityProviderStrategyItem{{CapacityProvider: aws.String("FARGATE"), Weight: 1}}
	case es.OnDemandBase > 0:
		return []ecstypes.CapacityProviderStrategyItem{
			{CapacityProvider: aws.String("FARGATE"), Base: int32(es.OnDemandBase)},
			{CapacityProvider: aws.String("FARGATE_SPOT"), Weight: 1},
		}
	}
	return []ecstypes.CapacityProviderStrategyItem{{CapacityProvider: aws.String("FARGATE_SPOT"), Weight: 1}}
}

// deployment is rolling, or ECS's own blue/green. ECS-native blue/green (ecs SDK ≥ v1.60,
// here v1.105) keeps the ECS deployment controller, so deploy, the circuit breaker and
// rollback work the same for both strategies and no CodeDeploy application is needed.
func (r *renderer) deployment() *ecstypes.DeploymentConfiguration {
	dc := &ecstypes.DeploymentConfiguration{
		Strategy:                 ecstypes.DeploymentStrategyRolling,
		DeploymentCircuitBreaker: &ecstypes.DeploymentCircuitBreaker{Enable: true, Rollback: true},
		MinimumHealthyPercent:    aws.Int32(100),
		MaximumPercent:           aws.Int32(200),
	}
	if r.aws.Deployment.Strategy == environment.StrategyBlueGreen {
		dc.Strategy = ecstypes.DeploymentStrategyBlueGreen
		dc.BakeTimeInMinutes = aws.Int32(BakeMinutes)
	}
	return dc
}

// serviceConnect keeps the compose names working: the backend reaches http://voicevox:50021
// on ECS exactly as it does locally. The namespace is the cluster's.
func (r *renderer) serviceConnect(name string, main ecstypes.ContainerDefinition) *ecstypes.ServiceConnectConfiguration {
	sc := &ecstypes.ServiceConnectConfiguration{Enabled: true, Namespace: aws.String(r.aws.Cluster)}
	for _, pm := range main.PortMappings {
		if pm.Protocol != ecstypes.TransportProtocolTcp {
			continue
		}
		sc.Services = append(sc.Services, ecstypes.ServiceConnectService{
			PortName:      pm.Name,
			DiscoveryName: pm.Name,
			ClientAliases: []ecstypes.ServiceConnectClientAlias{{DnsName: aws.String(name), Port: pm.ContainerPort}},
		})
	}
	return sc
}

func (r *renderer) loadBalancer(name string, es environment.Service) *LoadBalancer {
	path := es.Health.Path
	if sp := r.st.Extension(name).HealthPath; sp != "" {
		if sp != path {
			r.fail(name, r.envKey("services."+name+".health.path"), "%s differs from the stack's x-vmctl.health_path %s: the load balancer would probe a path the container does not serve", path, sp)
		}
		path = sp
	}
	lb := &LoadBalancer{
		TargetGroup:  r.targetGroup(name),
		PathPatterns: es.LoadBalancer.PathPatterns,
		HealthPath:   path,
		TargetGroupSettings: elbv2.CreateTargetGroupInput{
			Name:                aws.String(r.targetGroup(name)),
			Protocol:            elbv2types.ProtocolEnumHttp,
			Port:                aws.Int32(int32(es.Port)),
			VpcId:               aws.String(r.aws.Network.VPCID),
			TargetType:          elbv2types.TargetTypeEnumIp, // awsvpc tasks register by IP
			HealthCheckProtocol: elbv2types.ProtocolEnumHttp,
			HealthCheckPath:     aws.String(path),
			Matcher:             &elbv2types.Matcher{HttpCode: aws.String("200")},
		},
	}
	if r.aws.Deployment.Strategy == environment.StrategyBlueGreen {
		lb.AlternateTargetGroup = lb.TargetGroup + "-alt"
	}
	for _, tg := range []string{lb.TargetGroup, lb.AlternateTargetGroup} {
		if len(tg) > maxTargetGroupName {
			r.fail(name, r.envKey("aws.cluster"), "target group name %s is longer than the %d characters ELB allows; use a shorter cluster name", tg, maxTargetGroupName)
		}
	}
	return lb
}

// scaling tracks average CPU within the environment's min–max and, for an environment with
// working hours, scales to zero outside them.
func (r *renderer) scaling(name string, es environment.Service) Scaling {
	id := aws.String("service/" + r.aws.Cluster + "/" + name)
	tags := map[string]string{"vmctl:environment": r.env.Name, "vmctl:service": name}
	sc := Scaling{
		Target: aas.RegisterScalableTargetInput{
			ServiceNamespace:  aastypes.ServiceNamespaceEcs,
			ScalableDimension: aastypes.ScalableDimensionECSServiceDesiredCount,
			ResourceId:        id,
			MinCapacity:       aws.Int32(int32(es.Min)),
			MaxCapacity:       aws.Int32(int32(es.Max)),
			Tags:              tags,
		},
		Policy: aas.PutScalingPolicyInput{
			PolicyName:        aws.String(name + "-cpu"),
			ServiceNamespace:  aastypes.ServiceNamespaceEcs,
			ScalableDimension: aastypes.ScalableDimensionECSServiceDesiredCount,
			ResourceId:        id,
			PolicyType:        aastypes.PolicyTypeTargetTrackingScaling,
			TargetTrackingScalingPolicyConfiguration: &aastypes.TargetTrackingScalingPolicyConfiguration{
				TargetValue:                   aws.Float64(CPUTarget),
				PredefinedMetricSpecification: &aastypes.PredefinedMetricSpecification{PredefinedMetricType: aastypes.MetricTypeECSServiceAverageCPUUtilization},
				ScaleOutCooldown:              aws.Int32(60),
				ScaleInCooldown:               aws.Int32(300),
			},
		},
	}
	if s := r.aws.Schedule; s != nil {
		days := strings.ToUpper(strings.Join(s.Days, ","))
		action := func(suffix, at string, lo, hi int) aas.PutScheduledActionInput {
			hh, mm, _ := strings.Cut(at, ":")
			return aas.PutScheduledActionInput{
				ScheduledActionName:  aws.String(name + "-" + suffix),
				ServiceNamespace:     aastypes.ServiceNamespaceEcs,
				ScalableDimension:    aastypes.ScalableDimensionECSServiceDesiredCount,
				ResourceId:           id,
				Schedule:             aws.String(fmt.Sprintf("cron(%s %s ? * %s *)", trimZero(mm), trimZero(hh), days)),
				Timezone:             aws.String(s.TimeZone),
				ScalableTargetAction: &aastypes.ScalableTargetAction{MinCapacity: aws.Int32(int32(lo)), MaxCapacity: aws.Int32(int32(hi))},
			}
		}
		sc.Schedule = []aas.PutScheduledActionInput{action("start", s.Start, es.Min, es.Max), action("stop", s.Stop, 0, 0)}
	}
	return sc
}

func trimZero(s string) string {
	if t := strings.TrimLeft(s, "0"); t != "" {
		return t
	}
	return "0"
}

// repositories are one ECR repository per image: scanned on push, tags immutable (a release
// ID names one image for good), encrypted with KMS. The lifecycle expires untagged images
// only: every release image carries its release id as a tag, and a rule counting images
// ("keep the last N") would expire the one prod still runs, or the one rollback returns
// to, once N newer ones were pushed. ECR cannot see what runs, so it never picks releases.
func (r *renderer) repositories() []Repository {
	users := map[string][]string{}
	for _, s := range r.plan.Services {
		for _, c := range s.Containers {
			repo := r.repository(c)
			users[repo] = append(users[repo], c)
		}
	}
	policy, _ := json.Marshal(map[string]any{"rules": []any{map[string]any{
		"rulePriority": 1,
		"description":  fmt.Sprintf("expire untagged images after %d days; release images are kept for rollback and promotion", UntaggedExpiryDays),
		"selection":    map[string]any{"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": UntaggedExpiryDays},
		"action":       map[string]any{"type": "expire"},
	}}})
	var out []Repository
	for _, name := range slices.Sorted(maps.Keys(users)) {
		slices.Sort(users[name])
		out = append(out, Repository{
			Name:     name,
			Services: users[name],
			Settings: ecr.CreateRepositoryInput{
				RepositoryName:             aws.String(name),
				RegistryId:                 aws.String(r.aws.AccountID),
				ImageScanningConfiguration: &ecrtypes.ImageScanningConfiguration{ScanOnPush: true},
				ImageTagMutability:         ecrtypes.ImageTagMutabilityImmutable,
				// AWS's managed key for ECR; the seed asks for KMS, not for a key of our own.
				EncryptionConfiguration: &ecrtypes.EncryptionConfiguration{EncryptionType: ecrtypes.EncryptionTypeKms},
				Tags:                    []ecrtypes.Tag{{Key: aws.String("vmctl:environment"), Value: aws.String(r.env.Name)}},
			},
			Lifecycle: ecr.PutLifecyclePolicyInput{
				RepositoryName:      aws.String(name),
				RegistryId:          aws.String(r.aws.AccountID),
				LifecyclePolicyText: aws.String(string(policy)),
			},
		})
	}
	return out
}
