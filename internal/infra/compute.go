package infra

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/autoscaling"
	"github.com/awslabs/goformation/v7/cloudformation/ec2"
	ecscfn "github.com/awslabs/goformation/v7/cloudformation/ecs"
	"github.com/awslabs/goformation/v7/cloudformation/iam"
	"github.com/awslabs/goformation/v7/cloudformation/servicediscovery"
	"github.com/awslabs/goformation/v7/cloudformation/tags"

	"github.com/vmctl/vmctl/internal/ecs"
)

type ecsVolume = ecstypes.Volume

const (
	// ParamGPUImage is the template parameter holding the GPU hosts' AMI: AWS's public SSM
	// parameter for the current ECS GPU-optimized image, resolved at each stack update.
	ParamGPUImage = "GpuImageId"
	gpuImagePath  = "/aws/service/ecs/optimized-ami/amazon-linux-2/gpu/recommended/image_id"
	// gpuRootGiB holds the CUDA base image OpenVoice is built on with room for a second
	// release during a deploy; models live on EFS.
	gpuRootGiB = 100
)

// gpuHosts is the plan's GPU service and its hosts, or nil.
func (r *renderer) gpuHosts() (*ecs.Service, *ecs.Hosts) {
	for i := range r.plan.Services {
		if h := r.plan.Services[i].Hosts; h != nil {
			return &r.plan.Services[i], h
		}
	}
	return nil, nil
}

// compute is the ECS cluster (Container Insights on), its capacity: Fargate, Fargate Spot
// and the GPU hosts' Auto Scaling group behind a capacity provider with managed scaling,
// and the Cloud Map namespace Service Connect uses, all named as the plan names them.
func (r *renderer) compute() {
	cluster := r.plan.Cluster
	r.add(LogicalNamespace, &servicediscovery.HttpNamespace{
		Name:        cluster,
		Description: cloudformation.String("Service Connect names of " + cluster + ": the compose service names"),
	})
	r.add(LogicalCluster, &ecscfn.Cluster{
		ClusterName:     cloudformation.String(cluster),
		ClusterSettings: []ecscfn.Cluster_ClusterSettings{{Name: cloudformation.String("containerInsights"), Value: cloudformation.String("enabled")}},
		// No ServiceConnectDefaults: every service names the namespace itself (by the
		// cluster's name), so the cluster need not wait for it.
	})
	r.output(OutCluster, cloudformation.Ref(LogicalCluster))

	providers := []string{"FARGATE", "FARGATE_SPOT"}
	if svc, h := r.gpuHosts(); h != nil {
		r.gpu(svc, h)
		providers = append(providers, cloudformation.Ref(LogicalGPUCapacityProvider))
	}
	r.add(LogicalClusterCapacityProviders, &ecscfn.ClusterCapacityProviderAssociations{
		Cluster:           cloudformation.Ref(LogicalCluster),
		CapacityProviders: providers,
		// Every service names its own strategy; this only catches a task run without one.
		DefaultCapacityProviderStrategy: []ecscfn.ClusterCapacityProviderAssociations_CapacityProviderStrategy{{CapacityProvider: "FARGATE", Weight: cloudformation.Int(1)}},
	})
}

// gpu is the GPU hosts: a launch template on the ECS GPU-optimized AMI that joins the
// cluster with GPU support, an Auto Scaling group in the private subnets (Spot above an
// on-demand base where the file says so), and the capacity provider ECS scales it by.
func (r *renderer) gpu(svc *ecs.Service, h *ecs.Hosts) {
	r.t.Parameters[ParamGPUImage] = cloudformation.Parameter{
		Type:        "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
		Default:     gpuImagePath,
		Description: cloudformation.String("ECS GPU-optimized AMI (NVIDIA driver, CUDA 11.8 capable) for the GPU hosts, from AWS's public SSM parameter"),
	}

	r.add("GpuInstanceRole", &iam.Role{
		Description:              cloudformation.String("GPU hosts of " + r.plan.Cluster + ": join the cluster; SSM runs vmctl verify's CUDA checks"),
		AssumeRolePolicyDocument: assumeRole("ec2.amazonaws.com"),
		ManagedPolicyArns: []string{
			managedPolicy("service-role/AmazonEC2ContainerServiceforEC2Role"),
			managedPolicy("AmazonSSMManagedInstanceCore"),
		},
	})
	r.add("GpuInstanceProfile", &iam.InstanceProfile{Roles: []string{cloudformation.Ref("GpuInstanceRole")}})

	userData := strings.Join([]string{
		"#!/bin/bash",
		"cat >> /etc/ecs/ecs.config <<EOF",
		"ECS_CLUSTER=${" + LogicalCluster + "}",
		"ECS_ENABLE_GPU_SUPPORT=true",
		// Tasks get their own role credentials; the host's are not theirs to read.
		"ECS_AWSVPC_BLOCK_IMDS=true",
		"ECS_ENABLE_SPOT_INSTANCE_DRAINING=true",
		"EOF",
		"",
	}, "\n")
	r.add(LogicalGPULaunchTemplate, &ec2.LaunchTemplate{
		LaunchTemplateData: &ec2.LaunchTemplate_LaunchTemplateData{
			ImageId:            cloudformation.RefPtr(ParamGPUImage),
			InstanceType:       cloudformation.String(h.InstanceType),
			IamInstanceProfile: &ec2.LaunchTemplate_IamInstanceProfile{Arn: cloudformation.GetAttPtr("GpuInstanceProfile", "Arn")},
			SecurityGroupIds:   []string{r.groups[svc.Name]},
			UserData:           cloudformation.Base64Ptr(cloudformation.Sub(userData)),
			MetadataOptions: &ec2.LaunchTemplate_MetadataOptions{
				HttpTokens: cloudformation.String("required"), HttpEndpoint: cloudformation.String("enabled"), HttpPutResponseHopLimit: cloudformation.Int(2),
			},
			BlockDeviceMappings: []ec2.LaunchTemplate_BlockDeviceMapping{{
				DeviceName: cloudformation.String("/dev/xvda"),
				Ebs: &ec2.LaunchTemplate_Ebs{
					VolumeSize: cloudformation.Int(gpuRootGiB), VolumeType: cloudformation.String("gp3"),
					Encrypted: cloudformation.Bool(true), DeleteOnTermination: cloudformation.Bool(true),
				},
			}},
			Monitoring: &ec2.LaunchTemplate_Monitoring{Enabled: cloudformation.Bool(true)},
		},
		TagSpecifications: []ec2.LaunchTemplate_LaunchTemplateTagSpecification{{
			ResourceType: cloudformation.String("launch-template"),
			Tags:         r.envTags(),
		}},
	})

	lt := &autoscaling.AutoScalingGroup_LaunchTemplateSpecification{
		LaunchTemplateId: cloudformation.RefPtr(LogicalGPULaunchTemplate),
		Version:          cloudformation.GetAtt(LogicalGPULaunchTemplate, "LatestVersionNumber"),
	}
	asg := &autoscaling.AutoScalingGroup{
		AutoScalingGroupName: cloudformation.String(h.AutoScalingGroup),
		MinSize:              strconv.Itoa(h.Min),
		MaxSize:              strconv.Itoa(h.Max),
		VPCZoneIdentifier:    r.subnets[TierPrivate],
		// ECS's managed termination protection decides which host may go: only empty ones.
		NewInstancesProtectedFromScaleIn: cloudformation.Bool(true),
		HealthCheckType:                  cloudformation.String("EC2"),
		Tags: []autoscaling.AutoScalingGroup_TagProperty{
			{Key: "Name", Value: r.name("gpu"), PropagateAtLaunch: true},
			{Key: TagEnvironment, Value: r.env.Name, PropagateAtLaunch: true},
			// ECS tags a group it scales; naming the tag here keeps stack updates from removing it.
			{Key: "AmazonECSManaged", Value: "", PropagateAtLaunch: true},
		},
	}
	if h.Spot {
		asg.CapacityRebalance = cloudformation.Bool(true) // replace a Spot host before it is reclaimed
		asg.MixedInstancesPolicy = &autoscaling.AutoScalingGroup_MixedInstancesPolicy{
			InstancesDistribution: &autoscaling.AutoScalingGroup_InstancesDistribution{
				OnDemandBaseCapacity:                cloudformation.Int(h.OnDemandBase),
				OnDemandPercentageAboveBaseCapacity: cloudformation.Int(0),
				SpotAllocationStrategy:              cloudformation.String("price-capacity-optimized"),
			},
			LaunchTemplate: &autoscaling.AutoScalingGroup_LaunchTemplate{
				LaunchTemplateSpecification: lt,
				Overrides:                   []autoscaling.AutoScalingGroup_LaunchTemplateOverrides{{InstanceType: cloudformation.String(h.InstanceType)}},
			},
		}
	} else {
		asg.LaunchTemplate = lt
	}
	r.add(LogicalGPUAutoScalingGroup, asg)
	r.output(OutGPUGroup, cloudformation.Ref(LogicalGPUAutoScalingGroup))

	r.add(LogicalGPUCapacityProvider, &ecscfn.CapacityProvider{
		Name: cloudformation.String(h.CapacityProvider),
		AutoScalingGroupProvider: &ecscfn.CapacityProvider_AutoScalingGroupProvider{
			AutoScalingGroupArn:          cloudformation.Ref(LogicalGPUAutoScalingGroup),
			ManagedScaling:               &ecscfn.CapacityProvider_ManagedScaling{Status: cloudformation.String("ENABLED"), TargetCapacity: cloudformation.Int(100)},
			ManagedTerminationProtection: cloudformation.String("ENABLED"),
			ManagedDraining:              cloudformation.String("ENABLED"),
		},
	})
}

// roles are the IAM roles the plan refers to by name: the task execution role, ECS's
// infrastructure role for blue/green, and one task role per service.
func (r *renderer) roles() {
	cluster := r.plan.Cluster
	exec := &iam.Role{
		RoleName:                 cloudformation.String(executionRoleName(cluster)),
		Description:              cloudformation.String("ECS task execution for " + cluster + ": pull images, write logs, read the secrets the task definitions name"),
		AssumeRolePolicyDocument: assumeRole("ecs-tasks.amazonaws.com"),
		ManagedPolicyArns:        []string{managedPolicy("service-role/AmazonECSTaskExecutionRolePolicy")},
	}
	if st := r.secretStatements(); len(st) > 0 {
		exec.Policies = []iam.Role_Policy{{PolicyName: "secrets", PolicyDocument: policy(st...)}}
	}
	r.add("TaskExecutionRole", exec)

	if r.plan.Strategy == "blue-green" {
		r.add("EcsInfrastructureRole", &iam.Role{
			RoleName:                 cloudformation.String(infrastructureRoleName(cluster)),
			Description:              cloudformation.String("ECS blue/green deployments of " + cluster + ": shift listener rules between target groups"),
			AssumeRolePolicyDocument: assumeRole("ecs.amazonaws.com"),
			ManagedPolicyArns:        []string{managedPolicy("AmazonECSInfrastructureRolePolicyForLoadBalancers")},
		})
	}

	for _, name := range slices.Sorted(maps.Keys(r.services)) {
		role := &iam.Role{
			RoleName:                 cloudformation.String(TaskRoleName(cluster, name)),
			Description:              cloudformation.String("Tasks of service " + name + " in " + cluster),
			AssumeRolePolicyDocument: assumeRole("ecs-tasks.amazonaws.com"),
		}
		// The backend stores the videos it generates (seed §1.2); no other service touches
		// the bucket. Secrets reach every task as variables through the execution role, so
		// no task role reads Secrets Manager itself.
		if slices.Contains(videoWriters, name) {
			role.Policies = []iam.Role_Policy{{PolicyName: "videos", PolicyDocument: policy(
				statement([]string{"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}, cloudformation.Sub("${"+LogicalVideoBucket+".Arn}/*")),
				statement([]string{"s3:ListBucket"}, cloudformation.GetAtt(LogicalVideoBucket, "Arn")),
				statement([]string{"kms:Decrypt", "kms:GenerateDataKey"}, cloudformation.GetAtt(LogicalDataKey, "Arn")),
			)}}
		}
		r.add("TaskRole"+camel(name), role)
	}
}

// videoWriters are the services that write the generated videos (seed §1.2).
var videoWriters = []string{"backend"}

// secretStatements let the execution role read exactly the secrets the plan's task
// definitions reference, and decrypt them with the environment's key.
func (r *renderer) secretStatements() []map[string]interface{} {
	var sm, ssm []string
	for _, s := range r.plan.Services {
		for _, c := range s.TaskDefinition.ContainerDefinitions {
			for _, sec := range c.Secrets {
				if sec.ValueFrom == nil {
					continue
				}
				arn := *sec.ValueFrom
				switch parts := strings.SplitN(arn, ":", 8); {
				case len(parts) >= 7 && parts[2] == "secretsmanager":
					// ECS may name a JSON key after the ARN; the policy wants the secret.
					// Secrets Manager appends six random characters to the name in the
					// full ARN, which IAM matches against.
					base := strings.Join(parts[:7], ":")
					sm = append(sm, base, base+"-??????")
				case len(parts) >= 6 && parts[2] == "ssm":
					ssm = append(ssm, arn)
				}
			}
		}
	}
	slices.Sort(sm)
	slices.Sort(ssm)
	sm, ssm = slices.Compact(sm), slices.Compact(ssm)
	var out []map[string]interface{}
	if len(sm) > 0 {
		out = append(out, statement([]string{"secretsmanager:GetSecretValue"}, sm...))
	}
	if len(ssm) > 0 {
		out = append(out, statement([]string{"ssm:GetParameters"}, ssm...))
	}
	if len(out) > 0 {
		out = append(out, statement([]string{"kms:Decrypt"}, cloudformation.GetAtt(LogicalDataKey, "Arn")))
	}
	return out
}

// policy is an IAM policy document.
func policy(statements ...map[string]interface{}) map[string]interface{} {
	st := make([]interface{}, len(statements))
	for i, s := range statements {
		st[i] = s
	}
	return map[string]interface{}{"Version": "2012-10-17", "Statement": st}
}

// statement allows actions on resources.
func statement(actions []string, resources ...string) map[string]interface{} {
	return map[string]interface{}{"Effect": "Allow", "Action": actions, "Resource": resources}
}

// assumeRole is the trust policy that lets an AWS service take a role.
func assumeRole(service string) map[string]interface{} {
	return policy(map[string]interface{}{
		"Effect": "Allow", "Principal": map[string]interface{}{"Service": service}, "Action": "sts:AssumeRole",
	})
}

// managedPolicy is the ARN of an AWS managed policy, in the stack's partition.
func managedPolicy(name string) string {
	return cloudformation.Sub("arn:${AWS::Partition}:iam::aws:policy/" + name)
}

// envTags are the tags for the types that take a plain tag list outside Tags.
func (r *renderer) envTags() []tags.Tag { return []tags.Tag{{Key: TagEnvironment, Value: r.env.Name}} }
