package mototest

import (
	"encoding/json"
	"maps"
	"regexp"
	"slices"
)

// CloudFormationTypes are the resource types moto 5.2's CloudFormation creates
// (moto.cloudformation.parsing.get_model_map()). Any other type is skipped with a warning,
// and a Fn::GetAtt on one fails the whole request with a 500.
var CloudFormationTypes = []string{
	"AWS::AutoScaling::AutoScalingGroup", "AWS::AutoScaling::LaunchConfiguration", "AWS::AutoScaling::ScheduledAction",
	"AWS::CloudWatch::Dashboard",
	"AWS::EC2::EIP", "AWS::EC2::FlowLog", "AWS::EC2::Instance", "AWS::EC2::InternetGateway", "AWS::EC2::LaunchTemplate",
	"AWS::EC2::NatGateway", "AWS::EC2::NetworkInterface", "AWS::EC2::Route", "AWS::EC2::RouteTable", "AWS::EC2::SecurityGroup",
	"AWS::EC2::SecurityGroupIngress", "AWS::EC2::Subnet", "AWS::EC2::SubnetRouteTableAssociation", "AWS::EC2::VPC",
	"AWS::EC2::VPCEndpoint", "AWS::EC2::VPCGatewayAttachment", "AWS::EC2::Volume",
	"AWS::ECR::Repository", "AWS::ECS::Cluster", "AWS::ECS::Service", "AWS::ECS::TaskDefinition",
	"AWS::EFS::AccessPoint", "AWS::EFS::FileSystem", "AWS::EFS::MountTarget",
	"AWS::ElasticLoadBalancingV2::Listener", "AWS::ElasticLoadBalancingV2::ListenerRule",
	"AWS::ElasticLoadBalancingV2::LoadBalancer", "AWS::ElasticLoadBalancingV2::TargetGroup",
	"AWS::Events::Rule", "AWS::IAM::InstanceProfile", "AWS::IAM::ManagedPolicy", "AWS::IAM::Policy", "AWS::IAM::Role",
	"AWS::KMS::Alias", "AWS::KMS::Key", "AWS::Lambda::Function", "AWS::Logs::LogGroup",
	"AWS::RDS::DBInstance", "AWS::RDS::DBParameterGroup", "AWS::RDS::DBSubnetGroup",
	"AWS::Route53::HostedZone", "AWS::Route53::RecordSet", "AWS::S3::Bucket", "AWS::SNS::Topic", "AWS::SQS::Queue",
	"AWS::SSM::Parameter",
}

// CloudFormationSubset returns the part of a template that moto can create: the resources of
// CloudFormationTypes. A reference (Ref, Fn::GetAtt, Fn::Sub) to a resource left out, or to
// an attribute that unsupported names as "LogicalId.Attribute" (one moto does not model),
// becomes the literal "moto-left-out:NAME", a DependsOn on it goes, and an output that
// references one is left out: so a cluster that names a Cloud Map namespace is still created.
// It returns the logical ids and output keys it left out, sorted, so a test can say what it
// could not check.
func CloudFormationSubset(tpl []byte, unsupported ...string) ([]byte, []string, error) {
	var t map[string]any
	if err := json.Unmarshal(tpl, &t); err != nil {
		return nil, nil, err
	}
	res, _ := t["Resources"].(map[string]any)
	gone := map[string]bool{}
	for _, a := range unsupported {
		gone[a] = true
	}
	var left []string
	for id, r := range res {
		if typ, _ := r.(map[string]any)["Type"].(string); !slices.Contains(CloudFormationTypes, typ) {
			gone[id] = true
			delete(res, id)
			left = append(left, id)
		}
	}
	outs, _ := t["Outputs"].(map[string]any)
	for key, o := range outs {
		if _, hit := replaceRefs(o, gone); hit {
			delete(outs, key)
			left = append(left, "Outputs."+key)
		}
	}
	for id, r := range res {
		res[id], _ = replaceRefs(r, gone)
		quirks(res[id].(map[string]any))
	}
	out, err := json.Marshal(t)
	slices.Sort(left)
	return out, left, err
}

// quirks works around moto 5.2's bugs in resources it does model, each of which would fail
// the whole stack.
func quirks(r map[string]any) {
	p, _ := r["Properties"].(map[string]any)
	switch r["Type"] {
	case "AWS::KMS::Key":
		delete(p, "Tags") // moto reads a key's tags as TagKey/TagValue, CloudFormation writes Key/Value
	}
}

var subRef = regexp.MustCompile(`\$\{([A-Za-z0-9]+)(\.[A-Za-z0-9.]+)?\}`)

// replaceRefs returns v with every reference to gone made a literal, and whether there was one.
func replaceRefs(v any, gone map[string]bool) (any, bool) {
	hit := false
	placeholder := func(name string) string { hit = true; return "moto-left-out:" + name }
	switch x := v.(type) {
	case map[string]any:
		if s, ok := x["Ref"].(string); ok && gone[s] {
			return placeholder(s), true
		}
		if l, ok := x["Fn::GetAtt"].([]any); ok && len(l) == 2 {
			id, _ := l[0].(string)
			attr, _ := l[1].(string)
			if gone[id] || gone[id+"."+attr] {
				return placeholder(id + "." + attr), true
			}
		}
		for _, k := range slices.Sorted(maps.Keys(x)) {
			switch e := x[k].(type) {
			case string:
				if k == "Fn::Sub" {
					x[k] = subRef.ReplaceAllStringFunc(e, func(m string) string {
						sm := subRef.FindStringSubmatch(m)
						if gone[sm[1]] || gone[sm[1]+sm[2]] {
							return placeholder(sm[1] + sm[2])
						}
						return m
					})
				}
			default:
				if k == "DependsOn" {
					if l, ok := e.([]any); ok {
						x[k] = slices.DeleteFunc(l, func(d any) bool { s, _ := d.(string); return gone[s] })
						continue
					}
				}
				var h bool
				x[k], h = replaceRefs(e, gone)
				hit = hit || h
			}
			if k == "DependsOn" {
				if s, ok := x[k].(string); ok && gone[s] {
					delete(x, k)
				}
			}
		}
		return x, hit
	case []any:
		for i := range x {
			var h bool
			x[i], h = replaceRefs(x[i], gone)
			hit = hit || h
		}
		return x, hit
	}
	return v, false
}
