package infra

import (
	"fmt"
	"maps"
	"slices"

	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/ec2"

	"github.com/vmctl/vmctl/internal/environment"
)

// network is seed §2.1: a VPC with public, private and database subnets in two zones, an
// internet gateway, NAT for the private tier and the VPC endpoints that keep image pulls and
// logs off NAT. A file that names its VPC brings the whole network: nothing is created.
func (r *renderer) network() {
	n := r.aws.Network
	tiers := []string{TierPublic, TierPrivate, TierDatabase}
	if n.VPCID != "" {
		r.vpc = n.VPCID
		for _, tier := range tiers {
			for _, s := range tierSubnets(n, tier) {
				r.subnets[tier] = append(r.subnets[tier], s.ID)
			}
		}
		r.networkOutputs()
		return
	}
	r.vpc = cloudformation.Ref(LogicalVPC)
	r.add(LogicalVPC, &ec2.VPC{
		CidrBlock:          cloudformation.String(n.CIDR),
		EnableDnsHostnames: cloudformation.Bool(true), // interface endpoints and EFS resolve by private DNS
		EnableDnsSupport:   cloudformation.Bool(true),
		Tags:               r.nameTag("vpc"),
	})
	r.add("InternetGateway", &ec2.InternetGateway{Tags: r.nameTag("igw")})
	r.add("InternetGatewayAttachment", &ec2.VPCGatewayAttachment{VpcId: r.vpc, InternetGatewayId: cloudformation.RefPtr("InternetGateway")})

	for _, tier := range tiers {
		for i, s := range tierSubnets(n, tier) {
			id := LogicalSubnet(tier, i)
			r.add(id, &ec2.Subnet{
				VpcId:               r.vpc,
				CidrBlock:           cloudformation.String(s.CIDR),
				AvailabilityZone:    cloudformation.String(s.AZ),
				MapPublicIpOnLaunch: cloudformation.Bool(false), // nothing but the ALB and NAT is public, and those bring their own addresses
				Tags:                r.nameTag(fmt.Sprintf("%s-%d", tier, i+1)),
			})
			r.subnets[tier] = append(r.subnets[tier], cloudformation.Ref(id))
		}
	}

	// Public: the default route to the internet.
	r.add("PublicRouteTable", &ec2.RouteTable{VpcId: r.vpc, Tags: r.nameTag("public")})
	r.add("PublicDefaultRoute", &ec2.Route{
		RouteTableId:               cloudformation.Ref("PublicRouteTable"),
		DestinationCidrBlock:       cloudformation.String("0.0.0.0/0"),
		GatewayId:                  cloudformation.RefPtr("InternetGateway"),
		AWSCloudFormationDependsOn: []string{"InternetGatewayAttachment"}, // the route fails until the gateway is attached
	})
	for i := range n.Subnets.Public {
		r.add(fmt.Sprintf("PublicSubnet%dRouteTableAssociation", i+1), &ec2.SubnetRouteTableAssociation{
			RouteTableId: cloudformation.Ref("PublicRouteTable"), SubnetId: r.subnets[TierPublic][i],
		})
	}

	// NAT: one shared gateway, or one per zone so a zone's outage keeps the other's egress.
	nats := max(1, min(n.NATGateways, len(n.Subnets.Public)))
	for i := range nats {
		eip, nat := fmt.Sprintf("NatAddress%d", i+1), fmt.Sprintf("NatGateway%d", i+1)
		r.add(eip, &ec2.EIP{Domain: cloudformation.String("vpc"), Tags: r.nameTag(fmt.Sprintf("nat-%d", i+1)), AWSCloudFormationDependsOn: []string{"InternetGatewayAttachment"}})
		r.add(nat, &ec2.NatGateway{
			AllocationId: cloudformation.GetAttPtr(eip, "AllocationId"),
			SubnetId:     r.subnets[TierPublic][i],
			Tags:         r.nameTag(fmt.Sprintf("nat-%d", i+1)),
		})
	}
	// Private: one route table per subnet, to the NAT gateway in its zone, else the first.
	var privateTables []string
	for i, sn := range n.Subnets.Private {
		nat := 0
		for j := range nats {
			if n.Subnets.Public[j].AZ == sn.AZ {
				nat = j
			}
		}
		rt := fmt.Sprintf("PrivateRouteTable%d", i+1)
		r.add(rt, &ec2.RouteTable{VpcId: r.vpc, Tags: r.nameTag(fmt.Sprintf("private-%d", i+1))})
		r.add(fmt.Sprintf("PrivateDefaultRoute%d", i+1), &ec2.Route{
			RouteTableId:         cloudformation.Ref(rt),
			DestinationCidrBlock: cloudformation.String("0.0.0.0/0"),
			NatGatewayId:         cloudformation.RefPtr(fmt.Sprintf("NatGateway%d", nat+1)),
		})
		r.add(fmt.Sprintf("PrivateSubnet%dRouteTableAssociation", i+1), &ec2.SubnetRouteTableAssociation{
			RouteTableId: cloudformation.Ref(rt), SubnetId: r.subnets[TierPrivate][i],
		})
		privateTables = append(privateTables, cloudformation.Ref(rt))
	}
	// Database: no route out of the VPC at all.
	r.add("DatabaseRouteTable", &ec2.RouteTable{VpcId: r.vpc, Tags: r.nameTag("database")})
	for i := range n.Subnets.Database {
		r.add(fmt.Sprintf("DatabaseSubnet%dRouteTableAssociation", i+1), &ec2.SubnetRouteTableAssociation{
			RouteTableId: cloudformation.Ref("DatabaseRouteTable"), SubnetId: r.subnets[TierDatabase][i],
		})
	}

	r.endpoints(privateTables)
	r.networkOutputs()
}

// interfaceEndpoints are the VPC endpoints that carry most of what would cross NAT: image
// layers' manifests and auth (ECR; the layers themselves come from S3 through the gateway
// endpoint) and every log line. SSM's endpoints carry a few requests a minute, less than
// their hourly price per zone, so SSM goes through NAT.
var interfaceEndpoints = []struct{ id, service string }{
	{"EcrApiEndpoint", "ecr.api"},
	{"EcrDkrEndpoint", "ecr.dkr"},
	{"LogsEndpoint", "logs"},
}

func (r *renderer) endpoints(privateTables []string) {
	sg := LogicalSecurityGroup(roleEndpoints)
	r.add(sg, &ec2.SecurityGroup{
		GroupDescription: "VPC interface endpoints: HTTPS from the private subnets only",
		VpcId:            cloudformation.String(r.vpc),
		Tags:             r.nameTag("endpoints"),
	})
	for i, s := range r.aws.Network.Subnets.Private {
		r.add(fmt.Sprintf("%sIngressPrivate%d", sg, i+1), &ec2.SecurityGroupIngress{
			GroupId: cloudformation.GetAttPtr(sg, "GroupId"), IpProtocol: "tcp",
			FromPort: cloudformation.Int(443), ToPort: cloudformation.Int(443),
			CidrIp: cloudformation.String(s.CIDR), Description: cloudformation.String(fmt.Sprintf("HTTPS from private subnet %d", i+1)),
		})
	}
	for _, e := range interfaceEndpoints {
		r.add(e.id, &ec2.VPCEndpoint{
			VpcId:             r.vpc,
			ServiceName:       cloudformation.Sub("com.amazonaws.${AWS::Region}." + e.service),
			VpcEndpointType:   cloudformation.String("Interface"),
			PrivateDnsEnabled: cloudformation.Bool(true),
			SubnetIds:         r.subnets[TierPrivate],
			SecurityGroupIds:  []string{cloudformation.GetAtt(sg, "GroupId")},
		})
	}
	r.add("S3Endpoint", &ec2.VPCEndpoint{
		VpcId:           r.vpc,
		ServiceName:     cloudformation.Sub("com.amazonaws.${AWS::Region}.s3"),
		VpcEndpointType: cloudformation.String("Gateway"),
		RouteTableIds:   privateTables,
	})
}

func (r *renderer) networkOutputs() {
	r.output(OutVPC, r.vpc)
	for tier, key := range map[string]string{TierPublic: OutPublicSubnets, TierPrivate: OutPrivateSubnets, TierDatabase: OutDatabaseSubnets} {
		r.output(key, cloudformation.Join(",", r.subnets[tier]))
	}
}

// Security group roles beside the services'.
const (
	roleALB       = "alb"
	roleRDS       = "rds"
	roleRedis     = "redis"
	roleEFS       = "efs"
	roleEndpoints = "endpoints"
)

// Ports of the managed stores.
const (
	portPostgres = 5432
	portRedis    = 6379
	portNFS      = 2049
	portSSH      = 22
)

// storeClients are the services that reach the database and the cache: seed §2.2 lets
// only the backend in. The plan cannot say (a compose dependency on a managed store orders
// nothing), so the rule is written down here.
var storeClients = []string{"backend"}

// securityGroups are seed §2.2 exactly: every ingress names its source group, and only the
// ALB takes traffic from the internet. Rules are separate resources so two groups can
// refer to each other without a cycle. A group the file names is used as it is, rules and
// all: it is the file's.
func (r *renderer) securityGroups() {
	roles := []string{roleALB}
	roles = append(roles, slices.Sorted(maps.Keys(r.env.Services))...)
	st := r.aws.Stores
	if st.Postgres.Endpoint == "" {
		roles = append(roles, roleRDS)
	}
	if st.Redis.Endpoint == "" {
		roles = append(roles, roleRedis)
	}
	if st.EFS.FileSystemID == "" && len(st.EFS.Volumes) > 0 {
		roles = append(roles, roleEFS)
	}
	for _, role := range roles {
		if id := r.aws.Network.SecurityGroups[role]; id != "" {
			r.groups[role] = id
			r.output(OutSecurityGroup(role), id)
			continue
		}
		lid := LogicalSecurityGroup(role)
		r.add(lid, &ec2.SecurityGroup{
			GroupDescription: fmt.Sprintf("%s: %s", r.name(role), groupPurpose(role)),
			VpcId:            cloudformation.String(r.vpc),
			Tags:             r.nameTag(role),
		})
		r.groups[role] = cloudformation.GetAtt(lid, "GroupId")
		r.created[role] = true
		r.output(OutSecurityGroup(role), r.groups[role])
	}

	r.ingressCIDR(roleALB, 80, "0.0.0.0/0", "internet")
	if r.https {
		r.ingressCIDR(roleALB, 443, "0.0.0.0/0", "internet")
	}
	for _, name := range slices.Sorted(maps.Keys(r.env.Services)) {
		s := r.env.Services[name]
		if s.LoadBalancer != nil {
			r.ingress(name, s.Port, roleALB)
			continue
		}
		// A service behind no load balancer is reached by the services that depend on it.
		for _, client := range r.dependents(name) {
			r.ingress(name, s.Port, client)
		}
		if s.Placement == environment.PlacementEC2GPU && r.aws.Network.BastionSecurityGroup != "" && r.created[name] {
			r.add(LogicalSecurityGroup(name)+"IngressBastion", &ec2.SecurityGroupIngress{
				GroupId: cloudformation.String(r.groups[name]), IpProtocol: "tcp",
				FromPort: cloudformation.Int(portSSH), ToPort: cloudformation.Int(portSSH),
				SourceSecurityGroupId: cloudformation.String(r.aws.Network.BastionSecurityGroup),
				Description:           cloudformation.String("SSH from the bastion only"),
			})
		}
	}
	for _, c := range storeClients {
		if _, ok := r.env.Services[c]; !ok {
			continue
		}
		if st.Postgres.Endpoint == "" {
			r.ingress(roleRDS, portPostgres, c)
		}
		if st.Redis.Endpoint == "" {
			r.ingress(roleRedis, portRedis, c)
		}
	}
	if r.groups[roleEFS] != "" {
		for _, c := range r.efsClients() {
			r.ingress(roleEFS, portNFS, c)
		}
	}
}

func groupPurpose(role string) string {
	switch role {
	case roleALB:
		return "the load balancer, from the internet"
	case roleRDS:
		return "PostgreSQL, from the backend"
	case roleRedis:
		return "Redis, from the backend"
	case roleEFS:
		return "NFS, from the tasks that mount EFS"
	}
	return "tasks of service " + role
}

// ingress lets role's group take port from the group of source; nothing when the stack
// does not own role's group.
func (r *renderer) ingress(role string, port int, source string) {
	if !r.created[role] || r.groups[source] == "" {
		return
	}
	r.add(fmt.Sprintf("%sIngress%s", LogicalSecurityGroup(role), camel(source)), &ec2.SecurityGroupIngress{
		GroupId: cloudformation.String(r.groups[role]), IpProtocol: "tcp",
		FromPort: cloudformation.Int(port), ToPort: cloudformation.Int(port),
		SourceSecurityGroupId: cloudformation.String(r.groups[source]),
		Description:           cloudformation.String(fmt.Sprintf("%d from %s", port, source)),
	})
}

func (r *renderer) ingressCIDR(role string, port int, cidr, what string) {
	if !r.created[role] {
		return
	}
	r.add(fmt.Sprintf("%sIngress%d", LogicalSecurityGroup(role), port), &ec2.SecurityGroupIngress{
		GroupId: cloudformation.String(r.groups[role]), IpProtocol: "tcp",
		FromPort: cloudformation.Int(port), ToPort: cloudformation.Int(port),
		CidrIp: cloudformation.String(cidr), Description: cloudformation.String(fmt.Sprintf("%d from the %s", port, what)),
	})
}

// dependents are the services whose tasks start after name's (compose depends_on).
func (r *renderer) dependents(name string) []string {
	var out []string
	for _, s := range r.plan.Services {
		if slices.Contains(s.StartAfter, name) {
			out = append(out, s.Name)
		}
	}
	slices.Sort(out)
	return out
}

// efsClients are the services whose tasks mount an EFS volume.
func (r *renderer) efsClients() []string {
	var out []string
	for _, s := range r.plan.Services {
		if slices.ContainsFunc(s.TaskDefinition.Volumes, func(v ecsVolume) bool { return v.EfsVolumeConfiguration != nil }) {
			out = append(out, s.Name)
		}
	}
	slices.Sort(out)
	return out
}
