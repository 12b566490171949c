package environment

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // schedules must validate the same on hosts without a zoneinfo database
)

// fargateMemory lists, per Fargate CPU size, the memory sizes (MiB) Fargate accepts.
var fargateMemory = map[int][]memRange{
	256:   {{512, 512, 1}, {1024, 2048, 1024}},
	512:   {{1024, 4096, 1024}},
	1024:  {{2048, 8192, 1024}},
	2048:  {{4096, 16384, 1024}},
	4096:  {{8192, 30720, 1024}},
	8192:  {{16384, 61440, 4096}},
	16384: {{32768, 122880, 8192}},
}

type memRange struct{ min, max, step int }

func (r memRange) String() string {
	if r.min == r.max {
		return strconv.Itoa(r.min)
	}
	return fmt.Sprintf("%d–%d in steps of %d", r.min, r.max, r.step)
}

// gpuInstance is what an EC2 GPU instance type offers; GPUMemoryMiB is what nvidia-smi
// reports as memory.total, which is what the GPU checks compare min_memory_mib with.
type gpuInstance struct {
	VCPUs, MemoryMiB, GPUs int
	GPUModel               string
	GPUMemoryMiB           int
}

var gpuInstances = map[string]gpuInstance{
	"g4dn.xlarge":   {4, 16384, 1, "NVIDIA T4", 15360},
	"g4dn.2xlarge":  {8, 32768, 1, "NVIDIA T4", 15360},
	"g4dn.4xlarge":  {16, 65536, 1, "NVIDIA T4", 15360},
	"g4dn.12xlarge": {48, 196608, 4, "NVIDIA T4", 15360},
	"g5.xlarge":     {4, 16384, 1, "NVIDIA A10G", 23028},
	"g5.2xlarge":    {8, 32768, 1, "NVIDIA A10G", 23028},
	"g5.4xlarge":    {16, 65536, 1, "NVIDIA A10G", 23028},
	"g5.12xlarge":   {48, 196608, 4, "NVIDIA A10G", 23028},
	"g6.xlarge":     {4, 16384, 1, "NVIDIA L4", 23034},
	"g6.2xlarge":    {8, 32768, 1, "NVIDIA L4", 23034},
}

// logRetentionDays are the retention periods CloudWatch Logs accepts.
var logRetentionDays = []int{1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}

var (
	accountID    = regexp.MustCompile(`^\d{12}$`)
	region       = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d+$`)
	clusterName  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)
	registryHost = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d+)?$`)
	domainName   = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$`)
	envName      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	secretARN    = regexp.MustCompile(`^arn:aws(-cn|-us-gov)?:(ssm:[a-z0-9-]+:\d{12}:parameter/|secretsmanager:[a-z0-9-]+:\d{12}:secret:).+$`)
	version      = regexp.MustCompile(`^\d+(\.\d+)*$`)
	weekdays     = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}
	extraSGRoles = []string{"alb", "rds", "redis", "efs"}
	hostedZoneID = regexp.MustCompile(`^Z[A-Z0-9]{1,31}$`)
	notifyTarget = regexp.MustCompile(`^([^@\s]+@[^@\s]+\.[^@\s]+|https://\S+)$`)
)

// awsID matches an AWS resource id: the prefix, then 8 or 17 lowercase hex digits.
func awsID(prefix string) *regexp.Regexp {
	return regexp.MustCompile(`^` + prefix + `-([0-9a-f]{8}|[0-9a-f]{17})$`)
}

var (
	vpcID         = awsID("vpc")
	subnetID      = awsID("subnet")
	sgID          = awsID("sg")
	fileSystemID  = awsID("fs")
	accessPointID = awsID("fsap")
)

// validator collects the problems with a decoded environment, locating each by the line of
// its field, or of the nearest enclosing field that is present.
type validator struct {
	file  string
	lines map[string]int
	errs  []*FieldError
}

func validate(file string, lines map[string]int, e *Environment) error {
	v := &validator{file: file, lines: lines}
	v.environment(e)
	return joinSorted(v.errs)
}

func (v *validator) fail(path, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{File: v.file, Line: v.line(path), Field: path, Reason: fmt.Sprintf(format, args...)})
}

// line is the line of the field at path or, when it is absent, of its nearest present parent.
func (v *validator) line(path string) int {
	for {
		if l, ok := v.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return v.lines[""]
		}
		path = path[:i]
	}
}

// present reports whether the field at path was given a non-null value.
func (v *validator) present(path string) bool {
	_, ok := v.lines[path]
	return ok
}

// required reports whether the field at path is present, and says so when it is not.
func (v *validator) required(path string) bool {
	if !v.present(path) {
		v.fail(path, "is required")
		return false
	}
	return true
}

// match checks a required string field against re; what names the expected form.
func (v *validator) match(path, value string, re *regexp.Regexp, what string) {
	if v.required(path) && !re.MatchString(value) {
		v.fail(path, "%q is not %s", value, what)
	}
}

// optional checks a string field against re when it is present: an id the file may leave
// to the foundation stack's outputs.
func (v *validator) optional(path, value string, re *regexp.Regexp, what string) bool {
	if !v.present(path) {
		return false
	}
	if !re.MatchString(value) {
		v.fail(path, "%q is not %s", value, what)
	}
	return true
}

// between checks an integer field, when present, against an inclusive range.
func (v *validator) between(path string, value, lo, hi int, why string) {
	if v.present(path) && (value < lo || value > hi) {
		v.fail(path, "%d is outside %d–%d%s", value, lo, hi, why)
	}
}

// atLeast checks a required integer field.
func (v *validator) atLeast(path string, value, least int) {
	if v.required(path) && value < least {
		v.fail(path, "%d is less than %d", value, least)
	}
}

func (v *validator) environment(e *Environment) {
	switch e.Kind {
	case KindLocal:
		v.required("app_source")
		if e.AWS != nil {
			v.fail("aws", "is only for kind aws")
		}
		if e.Protected {
			v.fail("protected", "is only for kind aws: a local stack is yours to change")
		}
		for name, s := range e.Services {
			v.localService("services."+name, s)
		}
	case KindAWS:
		if v.present("app_source") {
			v.fail("app_source", "is only for kind local")
		}
		if v.required("aws") {
			v.aws("aws", e.AWS, e.Services)
			if e.Protected && e.AWS.Deployment.Auto {
				v.fail("aws.deployment.auto", "cannot be true in a protected environment: every write into it waits for approval")
			}
		}
		if len(e.Services) == 0 {
			v.fail("services", "is required: at least one service")
		}
		v.services(e.Services)
		if e.AWS != nil {
			v.sameAccount(e.AWS, e.Services)
		}
	case "":
		v.fail("kind", "is required (local or aws)")
	default:
		v.fail("kind", "%q is not a kind (local, aws)", e.Kind)
	}
}

// localService allows only what a local run can use: the rest is rendered into AWS.
func (v *validator) localService(path string, s Service) {
	rv := reflect.ValueOf(s)
	for _, f := range reflect.VisibleFields(rv.Type()) {
		name := yamlName(f)
		if name != "" && name != "gpu" && name != "environment" && !rv.FieldByIndex(f.Index).IsZero() {
			v.fail(path+"."+name, "is only for kind aws")
		}
	}
	if s.GPU != nil {
		v.gpu(path+".gpu", *s.GPU)
	}
	v.variables(path+".environment", s.Environment)
}

func (v *validator) aws(path string, a *AWS, services map[string]Service) {
	v.match(path+".account_id", a.AccountID, accountID, "a 12-digit AWS account id")
	v.match(path+".region", a.Region, region, "an AWS region such as ap-northeast-1")
	v.match(path+".cluster", a.Cluster, clusterName, "an ECS cluster name (letters, digits, - and _)")
	v.match(path+".registry", a.Registry, registryHost, "a registry host[:port] without scheme or path")
	if a.Domain != "" && !domainName.MatchString(a.Domain) {
		v.fail(path+".domain", "%q is not a domain name (a host name such as app.example.com, without scheme, port or path)", a.Domain)
	}
	v.network(path+".network", a.Network, a.Region, services)

	d := path + ".deployment"
	switch a.Deployment.Strategy {
	case StrategyRolling, StrategyBlueGreen:
	case "":
		v.fail(d+".strategy", "is required (rolling or blue-green)")
	default:
		v.fail(d+".strategy", "%q is not a strategy (rolling, blue-green)", a.Deployment.Strategy)
	}
	if a.Deployment.Auto && a.Deployment.ApprovalRequired {
		v.fail(d+".auto", "cannot be true with approval_required: a deploy either waits for a person or not")
	}

	if a.Schedule != nil {
		v.schedule(path+".schedule", *a.Schedule)
	}
	for key, days := range map[string]int{"app_retention_days": a.Logs.AppRetentionDays, "audit_retention_days": a.Logs.AuditRetentionDays} {
		if p := path + ".logs." + key; v.required(p) && !slices.Contains(logRetentionDays, days) {
			v.fail(p, "%d is not a CloudWatch Logs retention period (%s)", days, joinInts(logRetentionDays))
		}
	}

	v.stores(path+".stores", a.Stores)
	v.optional(path+".certificate_arn", a.CertificateARN, regexp.MustCompile(`^arn:aws(-cn|-us-gov)?:acm:`+regexp.QuoteMeta(a.Region)+`:`+regexp.QuoteMeta(a.AccountID)+`:certificate/[0-9a-f-]+$`),
		"an ACM certificate ARN in the environment's own region and account (the ALB can use no other)")
	if v.optional(path+".hosted_zone_id", a.HostedZoneID, hostedZoneID, "a Route 53 hosted zone id (Z…)") && a.Domain == "" {
		v.fail(path+".hosted_zone_id", "needs aws.domain: the zone is where the domain's records go")
	}
	if a.CertificateARN != "" && a.Domain == "" {
		v.fail(path+".certificate_arn", "needs aws.domain: verify checks the certificate against that name")
	}
	for i, to := range a.Alarms.Notify {
		if !notifyTarget.MatchString(to) {
			v.fail(fmt.Sprintf("%s.alarms.notify[%d]", path, i), "%q is not an e-mail address or an https:// endpoint", to)
		}
	}
	if b := a.Budget; b != nil {
		if p := path + ".budget.monthly_usd"; v.required(p) && b.MonthlyUSD < 1 {
			v.fail(p, "%d is not a budget: AWS Budgets needs a positive amount", b.MonthlyUSD)
		}
		if p := path + ".budget.anomaly_percent"; v.required(p) {
			v.between(p, b.AnomalyPercent, 1, 1000, " (per cent above expected spend)")
		}
	}
}

// stores checks the data stores: an endpoint or id the file names is used as is; one it
// leaves out comes from the foundation stack, sized by the fields beside it.
func (v *validator) stores(s string, st Stores) {
	if v.present(s + ".postgres.endpoint") {
		v.endpoint(s+".postgres.endpoint", st.Postgres.Endpoint)
	}
	pg := s + ".postgres"
	v.optional(pg+".instance_class", st.Postgres.InstanceClass, regexp.MustCompile(`^db\.[a-z0-9]+\.[a-z0-9]+$`), "an RDS instance class such as db.t4g.medium")
	v.optional(pg+".engine_version", st.Postgres.EngineVersion, version, "a PostgreSQL version such as 16")
	v.between(pg+".storage_gib", st.Postgres.StorageGiB, 20, 65536, " GiB (RDS gp3 storage)")
	v.between(pg+".backup_retention_days", st.Postgres.BackupRetentionDays, 1, 35, " days (RDS keeps point-in-time recovery for at most 35; 0 would turn it off)")
	if v.present(s + ".redis.endpoint") {
		v.endpoint(s+".redis.endpoint", st.Redis.Endpoint)
	}
	v.optional(s+".redis.node_type", st.Redis.NodeType, regexp.MustCompile(`^cache\.[a-z0-9]+\.[a-z0-9]+$`), "an ElastiCache node type such as cache.t4g.small")
	v.between(s+".redis.replicas", st.Redis.Replicas, 0, 5, " (ElastiCache allows 5 replicas per shard)")
	if p := s + ".redis.voice_profile_ttl"; v.required(p) && st.Redis.VoiceProfileTTL.Duration <= 0 {
		v.fail(p, "%s is not a positive duration", st.Redis.VoiceProfileTTL)
	}
	fs := v.optional(s+".efs.file_system_id", st.EFS.FileSystemID, fileSystemID, "an EFS file system id (fs-…)")
	for _, name := range slices.Sorted(maps.Keys(st.EFS.Volumes)) {
		p := s + ".efs.volumes." + name + ".access_point_id"
		switch ap := v.optional(p, st.EFS.Volumes[name].AccessPointID, accessPointID, "an EFS access point id (fsap-…)"); {
		case fs && !ap:
			v.fail(p, "is required with efs.file_system_id: an access point of that file system")
		case !fs && ap:
			v.fail(p, "needs efs.file_system_id: an access point belongs to a file system; leave both out for the foundation's")
		}
	}
}

func (v *validator) network(path string, n Network, region string, services map[string]Service) {
	ownVPC := v.optional(path+".vpc_id", n.VPCID, vpcID, "a VPC id (vpc-…)")
	var vpc netip.Prefix
	if v.required(path + ".cidr") {
		var err error
		if vpc, err = netip.ParsePrefix(n.CIDR); err != nil {
			v.fail(path+".cidr", "%q is not a CIDR block", n.CIDR)
		}
	}
	for tier, subnets := range map[string][]Subnet{"public": n.Subnets.Public, "private": n.Subnets.Private, "database": n.Subnets.Database} {
		tp := path + ".subnets." + tier
		zones := map[string]bool{}
		for i, sn := range subnets {
			p := fmt.Sprintf("%s[%d]", tp, i)
			switch own := v.optional(p+".id", sn.ID, subnetID, "a subnet id (subnet-…)"); {
			case ownVPC && !own:
				v.fail(p+".id", "is required with vpc_id: in your own VPC every subnet is yours too")
			case !ownVPC && own:
				v.fail(p+".id", "needs network.vpc_id: name the VPC this subnet is in, or leave both out for the foundation's")
			}
			if v.required(p + ".cidr") {
				if c, err := netip.ParsePrefix(sn.CIDR); err != nil {
					v.fail(p+".cidr", "%q is not a CIDR block", sn.CIDR)
				} else if vpc.IsValid() && (!vpc.Contains(c.Addr()) || c.Bits() < vpc.Bits()) {
					v.fail(p+".cidr", "%s is not inside the VPC's %s", sn.CIDR, vpc)
				}
			}
			if v.required(p+".az") && (!strings.HasPrefix(sn.AZ, region) || len(sn.AZ) == len(region)) {
				v.fail(p+".az", "%q is not an availability zone of %s", sn.AZ, region)
			}
			zones[sn.AZ] = true
		}
		// The ALB, the private services and an RDS subnet group each need two zones.
		if len(zones) < 2 {
			v.fail(tp, "needs subnets in at least 2 availability zones, has %d", len(zones))
		}
	}

	sgs := path + ".security_groups"
	for role, id := range n.SecurityGroups {
		if _, svc := services[role]; !svc && !slices.Contains(extraSGRoles, role) {
			v.fail(sgs+"."+role, "is not a service or one of %s", strings.Join(extraSGRoles, ", "))
		}
		v.match(sgs+"."+role, id, sgID, "a security group id (sg-…)")
	}
	v.optional(path+".bastion_security_group", n.BastionSecurityGroup, sgID, "a security group id (sg-…)")
	if p := path + ".nat_gateways"; v.present(p) {
		zones := map[string]bool{}
		for _, sn := range n.Subnets.Public {
			zones[sn.AZ] = true
		}
		if n.NATGateways != 1 && n.NATGateways != len(zones) {
			v.fail(p, "%d: use 1 (one shared gateway) or %d (one per availability zone of the public subnets)", n.NATGateways, len(zones))
		}
	}
}

func (v *validator) schedule(path string, s Schedule) {
	if v.required(path + ".time_zone") {
		if _, err := time.LoadLocation(s.TimeZone); err != nil || s.TimeZone == "Local" {
			v.fail(path+".time_zone", "%q is not an IANA time zone such as Asia/Tokyo", s.TimeZone)
		}
	}
	if v.required(path + ".days") {
		for i, d := range s.Days {
			if !slices.Contains(weekdays, d) {
				v.fail(fmt.Sprintf("%s.days[%d]", path, i), "%q is not a day (%s)", d, strings.Join(weekdays, ", "))
			}
		}
	}
	start, okStart := v.timeOfDay(path+".start", s.Start)
	stop, okStop := v.timeOfDay(path+".stop", s.Stop)
	if okStart && okStop && start.Equal(stop) {
		v.fail(path+".stop", "equals start; leave schedule out to run all day")
	}
}

func (v *validator) timeOfDay(path, value string) (time.Time, bool) {
	if !v.required(path) {
		return time.Time{}, false
	}
	t, err := time.Parse("15:04", value)
	if err != nil {
		v.fail(path, "%q is not a time of day HH:MM", value)
		return time.Time{}, false
	}
	return t, true
}

func (v *validator) services(services map[string]Service) {
	routes := map[string]string{} // ALB path pattern → service, to catch two services on one route
	for name, s := range services {
		path := "services." + name
		switch s.Placement {
		case PlacementFargate:
			v.fargate(path, s)
		case PlacementEC2GPU:
			v.ec2GPU(path, s)
		case "":
			v.fail(path+".placement", "is required (fargate or ec2-gpu)")
		default:
			v.fail(path+".placement", "%q is not a placement (fargate, ec2-gpu)", s.Placement)
		}
		if s.GPU != nil {
			v.gpu(path+".gpu", *s.GPU)
		}

		v.atLeast(path+".max", s.Max, 1)
		if v.present(path+".min") && s.Min < 0 {
			v.fail(path+".min", "%d is negative", s.Min)
		} else if s.Min > s.Max && s.Max >= 1 {
			v.fail(path+".min", "%d is greater than max %d", s.Min, s.Max)
		}
		if v.present(path + ".on_demand_base") {
			switch {
			case !s.Spot:
				v.fail(path+".on_demand_base", "is only for spot: true")
			case s.OnDemandBase < 0 || s.OnDemandBase > s.Max:
				v.fail(path+".on_demand_base", "%d is not between 0 and max %d", s.OnDemandBase, s.Max)
			}
		}

		if v.required(path+".port") && (s.Port < 1 || s.Port > 65535) {
			v.fail(path+".port", "%d is not a TCP port (1–65535)", s.Port)
		}
		if p := path + ".health.path"; v.required(p) && !strings.HasPrefix(s.Health.Path, "/") {
			v.fail(p, "%q does not start with /", s.Health.Path)
		}
		if s.Health.GracePeriod.Duration < 0 {
			v.fail(path+".health.grace_period", "%s is negative", s.Health.GracePeriod)
		}
		if s.LoadBalancer != nil {
			lp := path + ".load_balancer.path_patterns"
			if len(s.LoadBalancer.PathPatterns) == 0 {
				v.fail(lp, "is required: at least one ALB path pattern such as /*")
			}
			for i, pat := range s.LoadBalancer.PathPatterns {
				p := fmt.Sprintf("%s[%d]", lp, i)
				if !strings.HasPrefix(pat, "/") {
					v.fail(p, "%q does not start with /", pat)
				} else if other, dup := routes[pat]; dup {
					v.fail(p, "%q is also routed to %s", pat, other)
				}
				routes[pat] = name
			}
		}

		v.variables(path+".environment", s.Environment)
		v.variables(path+".secrets", s.Secrets)
		for key, arn := range s.Secrets {
			p := path + ".secrets." + key
			if !secretARN.MatchString(arn) {
				v.fail(p, "is not an SSM parameter (arn:aws:ssm:…:parameter/…) or Secrets Manager (arn:aws:secretsmanager:…:secret:…) ARN; put references here, never values")
			}
			if _, plain := s.Environment[key]; plain {
				v.fail(p, "is also set in environment; a variable is either plain or secret")
			}
		}
	}
}

var (
	// arnPlace captures an ARN's region and account.
	arnPlace = regexp.MustCompile(`^arn:[a-z-]+:[a-z0-9-]+:([a-z0-9-]*):(\d{12}):`)
	// ecrHost captures an ECR registry's account and region; other registries have neither.
	ecrHost = regexp.MustCompile(`^(\d{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$`)
)

// sameAccount checks that the secrets and the registry are in the environment's own
// account and region: one copied from another environment's file would have dev's tasks
// read prod's secrets, or deploy prod's images.
func (v *validator) sameAccount(a *AWS, services map[string]Service) {
	if !accountID.MatchString(a.AccountID) || !region.MatchString(a.Region) {
		return // reported already
	}
	check := func(path, what, account, reg string) {
		if account != a.AccountID {
			v.fail(path, "%s is in account %s, not in aws.account_id %s: an environment uses only its own account", what, account, a.AccountID)
		}
		if reg != a.Region {
			v.fail(path, "%s is in region %s, not in aws.region %s: an environment uses only its own region", what, reg, a.Region)
		}
	}
	if m := ecrHost.FindStringSubmatch(a.Registry); m != nil {
		check("aws.registry", "the registry", m[1], m[2])
	}
	for name, s := range services {
		for key, arn := range s.Secrets {
			if m := arnPlace.FindStringSubmatch(arn); m != nil && secretARN.MatchString(arn) {
				check("services."+name+".secrets."+key, "the secret", m[2], m[1])
			}
		}
	}
}

func (v *validator) fargate(path string, s Service) {
	if v.required(path + ".cpu") {
		if ranges, ok := fargateMemory[s.CPU]; !ok {
			v.fail(path+".cpu", "%d is not a Fargate CPU size (%s)", s.CPU, joinInts(slices.Sorted(maps.Keys(fargateMemory))))
		} else if v.required(path+".memory") && !slices.ContainsFunc(ranges, func(r memRange) bool {
			return s.Memory >= r.min && s.Memory <= r.max && (s.Memory-r.min)%r.step == 0
		}) {
			v.fail(path+".memory", "%d MiB is not a Fargate memory size for cpu %d (%s)", s.Memory, s.CPU, joinStrings(ranges))
		}
	}
	if s.InstanceType != "" {
		v.fail(path+".instance_type", "is only for placement ec2-gpu")
	}
	if s.GPU != nil {
		v.fail(path+".gpu", "Fargate has no GPUs; use placement ec2-gpu")
	}
}

func (v *validator) ec2GPU(path string, s Service) {
	v.atLeast(path+".cpu", s.CPU, 1)
	v.atLeast(path+".memory", s.Memory, 1)
	if !v.required(path + ".gpu") {
		return
	}
	if !v.required(path + ".instance_type") {
		return
	}
	it, ok := gpuInstances[s.InstanceType]
	if !ok {
		v.fail(path+".instance_type", "%q is not a known GPU instance type (%s)", s.InstanceType, strings.Join(slices.Sorted(maps.Keys(gpuInstances)), ", "))
		return
	}
	if s.CPU > it.VCPUs*1024 {
		v.fail(path+".cpu", "%d exceeds the %d vCPUs (%d units) of %s", s.CPU, it.VCPUs, it.VCPUs*1024, s.InstanceType)
	}
	if s.Memory > it.MemoryMiB {
		v.fail(path+".memory", "%d MiB exceeds the %d MiB of %s", s.Memory, it.MemoryMiB, s.InstanceType)
	}
	if s.GPU.Count > it.GPUs {
		v.fail(path+".gpu.count", "%d exceeds the %d GPUs of %s", s.GPU.Count, it.GPUs, s.InstanceType)
	}
	if s.GPU.MinMemoryMiB > it.GPUMemoryMiB {
		v.fail(path+".gpu.min_memory_mib", "%d MiB exceeds the %d MiB of the %s in %s", s.GPU.MinMemoryMiB, it.GPUMemoryMiB, it.GPUModel, s.InstanceType)
	}
	if s.GPU.Model != "" && s.GPU.Model != it.GPUModel {
		v.fail(path+".gpu.model", "%q is not the GPU of %s (%s)", s.GPU.Model, s.InstanceType, it.GPUModel)
	}
}

func (v *validator) gpu(path string, g GPU) {
	v.atLeast(path+".count", g.Count, 1)
	v.atLeast(path+".min_memory_mib", g.MinMemoryMiB, 1)
	if g.CUDA != "" && !version.MatchString(g.CUDA) {
		v.fail(path+".cuda", "%q is not a version such as 11.8", g.CUDA)
	}
	if g.CuDNN != "" && !version.MatchString(g.CuDNN) {
		v.fail(path+".cudnn", "%q is not a version such as 8", g.CuDNN)
	}
}

func (v *validator) variables(path string, vars map[string]string) {
	for key := range vars {
		if !envName.MatchString(key) {
			v.fail(path+"."+key, "is not a variable name (letters, digits and _, not starting with a digit)")
		}
	}
}

func (v *validator) endpoint(path, hostPort string) {
	if !v.required(path) {
		return
	}
	host, port, err := net.SplitHostPort(hostPort)
	if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
		v.fail(path, "%q is not host:port", hostPort)
	}
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

func joinStrings[T fmt.Stringer](xs []T) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = x.String()
	}
	return strings.Join(s, ", ")
}
