// Package infra is an environment's foundation: everything the services run on (network,
// security groups, load balancer, cluster and GPU capacity, data stores, alarms, budget),
// rendered from the environment file as one AWS CloudFormation stack, vmctl-<env>, with
// goformation's typed resources. CloudFormation creates, updates, rolls back and deletes;
// this package renders, previews (change sets), applies and watches (stack events), and
// reads the stack's outputs back into the environment for every other command.
package infra

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"

	"github.com/vmctl/vmctl/internal/environment"
)

// StackName is the foundation stack of an environment.
func StackName(env string) string { return "vmctl-" + env }

// Output keys: the stack's outputs, the contract between the template and every command
// that needs an id. Lists are comma-joined in the environment file's order.
const (
	OutVPC             = "VpcId"
	OutPublicSubnets   = "PublicSubnetIds"
	OutPrivateSubnets  = "PrivateSubnetIds"
	OutDatabaseSubnets = "DatabaseSubnetIds"
	OutCluster         = "ClusterName"
	OutLoadBalancer    = "LoadBalancerArn"
	OutLoadBalancerDNS = "LoadBalancerDnsName"
	OutHTTPSListener   = "HttpsListenerArn" // only with aws.domain or aws.certificate_arn
	// OutListener is the listener the services' rules are on: the HTTPS one, or without a
	// domain the plain HTTP one on port 80.
	OutListener       = "ListenerArn"
	OutFileSystem     = "FileSystemId"
	OutPostgres       = "PostgresEndpoint" // host:port
	OutPostgresSecret = "PostgresSecretArn"
	OutRedis          = "RedisEndpoint" // host:port
	OutVideoBucket    = "VideoBucketName"
	OutCDNDomain      = "CdnDomainName"
	OutKMSKey         = "KmsKeyArn"
	OutAlarmTopic     = "AlarmTopicArn"
	OutGPUGroup       = "GpuAutoScalingGroupName"
)

// OutSecurityGroup is the output naming a role's security group (alb, a service, rds,
// redis, efs).
func OutSecurityGroup(role string) string { return "SecurityGroup" + camel(role) }

// OutAccessPoint is the output naming a named volume's EFS access point.
func OutAccessPoint(volume string) string { return "AccessPoint" + camel(volume) }

// camel turns a compose or role name (voice_profiles, model-cache) into an output key part
// (VoiceProfiles, ModelCache): CloudFormation allows letters and digits only.
func camel(name string) string {
	var b strings.Builder
	up := true
	for _, r := range name {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			up = true
			continue
		}
		if up {
			r = unicode.ToUpper(r)
			up = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

// MissingOutputError says the stack lacks an output the environment needs.
type MissingOutputError struct {
	Stack, Output, Field string
}

func (e *MissingOutputError) Error() string {
	return fmt.Sprintf("%s is not set and stack %s has no output %s: run vmctl infra apply --env %s, or name it in the environment file",
		e.Field, e.Stack, e.Output, strings.TrimPrefix(e.Stack, "vmctl-"))
}

// Resolve returns a copy of env whose ids the file leaves out are taken from the stack's
// outputs; an id the file names wins (bring your own network). It fails, naming the first
// missing output, when the stack cannot supply one.
func Resolve(env *environment.Environment, outputs map[string]string) (*environment.Environment, error) {
	return fill(env, func(key, field string) (string, error) {
		v, ok := outputs[key]
		if !ok || v == "" {
			return "", &MissingOutputError{Stack: StackName(env.Name), Output: key, Field: field}
		}
		return v, nil
	})
}

// Placeholder marks an id that comes from the stack when vmctl renders offline, e.g.
// {vmctl-staging:VpcId}; Unresolved finds them, so nothing deploys one.
func Placeholder(env, output string) string { return "{" + StackName(env) + ":" + output + "}" }

// Offline returns a copy of env whose missing ids are placeholders naming their outputs:
// what plan shows without credentials.
func Offline(env *environment.Environment) *environment.Environment {
	out, _ := fill(env, func(key, _ string) (string, error) { return Placeholder(env.Name, key), nil })
	return out
}

// Needs says whether env leaves any id to the stack (so a command must read its outputs).
func Needs(env *environment.Environment) bool {
	need := false
	_, _ = fill(env, func(string, string) (string, error) { need = true; return "x", nil })
	return need
}

// fill copies env and sets each empty id from get(output, field).
func fill(env *environment.Environment, get func(key, field string) (string, error)) (*environment.Environment, error) {
	cp := *env
	if env.AWS == nil {
		return &cp, nil
	}
	a := *env.AWS
	cp.AWS = &a
	var firstErr error
	set := func(dst *string, key, field string) {
		if *dst != "" || firstErr != nil {
			return
		}
		v, err := get(key, field)
		if err != nil {
			firstErr = err
			return
		}
		*dst = v
	}
	n := &a.Network
	set(&n.VPCID, OutVPC, "aws.network.vpc_id")
	for _, tier := range []struct {
		name string
		list *[]environment.Subnet
		key  string
	}{{"public", &n.Subnets.Public, OutPublicSubnets}, {"private", &n.Subnets.Private, OutPrivateSubnets}, {"database", &n.Subnets.Database, OutDatabaseSubnets}} {
		subnets := append([]environment.Subnet(nil), (*tier.list)...)
		for i := range subnets {
			if subnets[i].ID != "" || firstErr != nil {
				continue
			}
			var joined string
			set(&joined, tier.key, fmt.Sprintf("aws.network.subnets.%s[%d].id", tier.name, i))
			if firstErr != nil {
				break
			}
			if ids := strings.Split(joined, ","); i < len(ids) {
				subnets[i].ID = strings.TrimSpace(ids[i])
			} else if strings.HasPrefix(joined, "{") { // a placeholder stands for the whole list
				subnets[i].ID = joined
			} else {
				firstErr = &MissingOutputError{Stack: StackName(env.Name), Output: tier.key, Field: fmt.Sprintf("aws.network.subnets.%s[%d].id", tier.name, i)}
			}
		}
		*tier.list = subnets
	}
	sgs := make(map[string]string, len(env.Services)+5)
	for role, id := range n.SecurityGroups {
		sgs[role] = id
	}
	// Sorted, so the first missing output named is the same every run.
	for _, role := range append([]string{"alb"}, slices.Sorted(maps.Keys(env.Services))...) {
		v := sgs[role]
		set(&v, OutSecurityGroup(role), "aws.network.security_groups."+role)
		sgs[role] = v
	}
	n.SecurityGroups = sgs

	st := &a.Stores
	set(&st.Postgres.Endpoint, OutPostgres, "aws.stores.postgres.endpoint")
	set(&st.Redis.Endpoint, OutRedis, "aws.stores.redis.endpoint")
	if len(st.EFS.Volumes) > 0 {
		set(&st.EFS.FileSystemID, OutFileSystem, "aws.stores.efs.file_system_id")
		vols := make(map[string]environment.Volume, len(st.EFS.Volumes))
		for _, name := range slices.Sorted(maps.Keys(st.EFS.Volumes)) {
			v := st.EFS.Volumes[name]
			set(&v.AccessPointID, OutAccessPoint(name), "aws.stores.efs.volumes."+name+".access_point_id")
			vols[name] = v
		}
		st.EFS.Volumes = vols
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return &cp, nil
}
