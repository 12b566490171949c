package infra

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/vmctl/vmctl/internal/environment"
)

// fargateMemory lists, per Fargate CPU size, the memory sizes (MiB) ECS accepts: min, max,
// step. The loader checks the same; a template must not depend on how it was loaded.
var fargateMemory = map[int][3]int{
	256: {512, 2048, 512}, 512: {1024, 4096, 1024}, 1024: {2048, 8192, 1024}, 2048: {4096, 16384, 1024},
	4096: {8192, 30720, 1024}, 8192: {16384, 61440, 4096}, 16384: {32768, 122880, 8192},
}

// maxRoleName is IAM's limit on a role's name.
const maxRoleName = 64

// check finds what CloudFormation would reject, or what the template cannot be built
// without, before anything is rendered: one error lists all of it.
func (r *renderer) check() {
	a := r.aws
	if a.CertificateARN != "" && !strings.HasPrefix(a.CertificateARN, "arn:") {
		r.fail("aws.certificate_arn", "%q is not an ACM certificate ARN (arn:aws:acm:…)", a.CertificateARN)
	}
	switch b := a.Budget; {
	case b == nil:
		r.fail("aws.budget", "is required: monthly_usd (seed §6.3: 500) and anomaly_percent (seed: 20) give the environment its AWS Budget and cost anomaly alert")
	default:
		if b.MonthlyUSD <= 0 {
			r.fail("aws.budget.monthly_usd", "%d is not a positive amount of US dollars (seed §6.3: 500)", b.MonthlyUSD)
		}
		if b.AnomalyPercent <= 0 {
			r.fail("aws.budget.anomaly_percent", "%d is not a positive percentage (seed §6.3: 20)", b.AnomalyPercent)
		}
	}
	for i, n := range a.Alarms.Notify {
		if !strings.HasPrefix(n, "https://") && !isEmail(n) {
			r.fail(fmt.Sprintf("aws.alarms.notify[%d]", i), "%q is neither an e-mail address nor an https:// endpoint", n)
		}
	}
	r.checkNetwork()
	r.checkStores()
	for _, name := range slices.Sorted(maps.Keys(r.env.Services)) {
		s := r.env.Services[name]
		if s.Placement != environment.PlacementFargate {
			continue
		}
		if m, ok := fargateMemory[s.CPU]; !ok {
			r.fail("services."+name+".cpu", "%d is not a Fargate CPU size (256, 512, 1024, 2048, 4096, 8192, 16384)", s.CPU)
		} else if s.Memory < m[0] || s.Memory > m[1] || (s.Memory-m[0])%m[2] != 0 {
			r.fail("services."+name+".memory", "%d MiB is not a Fargate memory size for cpu %d (%d–%d in steps of %d)", s.Memory, s.CPU, m[0], m[1], m[2])
		}
	}
	// IAM role names are at most 64 characters; the longest the stack makes is a task role.
	for _, name := range slices.Sorted(maps.Keys(r.env.Services)) {
		if role := TaskRoleName(a.Cluster, name); len(role) > maxRoleName {
			r.fail("aws.cluster", "%q makes the IAM role name %s, longer than the %d characters IAM allows: use a shorter cluster name", a.Cluster, role, maxRoleName)
		}
	}
	// ECS reserves capacity provider names that start with these.
	if lc := strings.ToLower(a.Cluster); strings.HasPrefix(lc, "aws") || strings.HasPrefix(lc, "ecs") || strings.HasPrefix(lc, "fargate") {
		r.fail("aws.cluster", "%q starts with aws, ecs or fargate, which ECS reserves for capacity providers (the GPU one is named %s-gpu)", a.Cluster, a.Cluster)
	}
}

func isEmail(s string) bool {
	local, domain, ok := strings.Cut(s, "@")
	return ok && local != "" && strings.Contains(domain, ".") && !strings.ContainsAny(s, " /:")
}

// checkNetwork: either the stack builds the whole network or the file names all of it.
func (r *renderer) checkNetwork() {
	n := r.aws.Network
	vpc, err := netip.ParsePrefix(n.CIDR)
	if err != nil {
		r.fail("aws.network.cidr", "%q is not a CIDR block", n.CIDR)
	}
	var seen []netip.Prefix
	var seenAt []string
	for _, tier := range []string{TierPublic, TierPrivate, TierDatabase} {
		subnets := tierSubnets(n, tier)
		if len(subnets) < 2 {
			r.fail("aws.network.subnets."+tier, "needs subnets in 2 availability zones, has %d", len(subnets))
		}
		for i, s := range subnets {
			p := fmt.Sprintf("aws.network.subnets.%s[%d]", tier, i)
			if n.VPCID != "" && s.ID == "" {
				r.fail(p+".id", "is required: aws.network.vpc_id names an existing VPC, so its subnets must be named too")
			}
			if n.VPCID == "" && s.ID != "" {
				r.fail(p+".id", "names an existing subnet, but the VPC is the stack's (no aws.network.vpc_id): name the VPC too, or leave the id out")
			}
			c, err := netip.ParsePrefix(s.CIDR)
			if err != nil {
				r.fail(p+".cidr", "%q is not a CIDR block", s.CIDR)
				continue
			}
			if vpc.IsValid() && (!vpc.Contains(c.Addr()) || c.Bits() < vpc.Bits()) {
				r.fail(p+".cidr", "%s is outside the VPC's %s", s.CIDR, vpc)
			}
			for j, o := range seen {
				if o.Overlaps(c) {
					r.fail(p+".cidr", "%s overlaps %s (%s)", s.CIDR, seenAt[j], o)
				}
			}
			seen, seenAt = append(seen, c), append(seenAt, p)
		}
	}
	if n.VPCID == "" {
		zones := map[string]bool{}
		for _, s := range n.Subnets.Public {
			zones[s.AZ] = true
		}
		switch {
		case n.NATGateways == 0:
			r.fail("aws.network.nat_gateways", "is required with the stack's own VPC: 1 (one shared NAT gateway) or %d (one per availability zone)", len(zones))
		case n.NATGateways != 1 && n.NATGateways != len(zones):
			r.fail("aws.network.nat_gateways", "%d is neither 1 (one shared NAT gateway) nor %d (one per availability zone)", n.NATGateways, len(zones))
		}
		// A group that exists already belongs to another VPC than the one the stack creates.
		for _, role := range slices.Sorted(maps.Keys(n.SecurityGroups)) {
			r.fail("aws.network.security_groups."+role, "names an existing group, but the VPC is the stack's (no aws.network.vpc_id): a group cannot move into a new VPC; leave it out, or name the VPC")
		}
	}
	if b := n.BastionSecurityGroup; b != "" && !strings.HasPrefix(b, "sg-") {
		r.fail("aws.network.bastion_security_group", "%q is not a security group id (sg-…)", b)
	}
}

// checkStores: the sizes of every store the stack creates.
func (r *renderer) checkStores() {
	st := r.aws.Stores
	if st.Postgres.Endpoint == "" {
		p := "aws.stores.postgres"
		if st.Postgres.InstanceClass == "" || !strings.HasPrefix(st.Postgres.InstanceClass, "db.") {
			r.fail(p+".instance_class", "%q is not an RDS instance class such as db.t4g.medium: the stack creates the database", st.Postgres.InstanceClass)
		}
		if st.Postgres.StorageGiB < 20 || st.Postgres.StorageGiB > 65536 {
			r.fail(p+".storage_gib", "%d is not between 20 and 65536, what RDS allows for gp3 storage", st.Postgres.StorageGiB)
		}
		if st.Postgres.EngineVersion == "" {
			r.fail(p+".engine_version", "is required: the PostgreSQL version the stack creates, such as \"16\"")
		}
		if d := st.Postgres.BackupRetentionDays; d < 1 || d > 35 {
			r.fail(p+".backup_retention_days", "%d is not between 1 and 35: point-in-time recovery (seed §1.2) needs backups", d)
		}
	}
	if st.Redis.Endpoint == "" {
		p := "aws.stores.redis"
		if !strings.HasPrefix(st.Redis.NodeType, "cache.") {
			r.fail(p+".node_type", "%q is not an ElastiCache node type such as cache.t4g.small: the stack creates the cache", st.Redis.NodeType)
		}
		if st.Redis.Replicas < 0 || st.Redis.Replicas > 5 {
			r.fail(p+".replicas", "%d is not between 0 and 5 read replicas", st.Redis.Replicas)
		}
	}
	if st.EFS.FileSystemID == "" {
		for _, name := range slices.Sorted(maps.Keys(st.EFS.Volumes)) {
			if st.EFS.Volumes[name].AccessPointID != "" {
				r.fail("aws.stores.efs.volumes."+name+".access_point_id", "names an access point, but the file system is the stack's (no file_system_id): leave it out, the stack creates it")
			}
		}
	}
}

func tierSubnets(n environment.Network, tier string) []environment.Subnet {
	switch tier {
	case TierPublic:
		return n.Subnets.Public
	case TierPrivate:
		return n.Subnets.Private
	}
	return n.Subnets.Database
}
