package infra

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Summary is what a rendered template holds, for a person to read: how many resources of
// each type, and the settings that matter of those that have some (CIDRs, ports, sizes,
// thresholds, what protects the data).
type Summary struct {
	Resources int            `json:"resources"`
	ByType    map[string]int `json:"by_type"`
	Items     []Item         `json:"items"`
}

// Item is one resource worth a line in the summary.
type Item struct {
	LogicalID      string `json:"logical_id"`
	Type           string `json:"type"`
	Settings       string `json:"settings,omitempty"`
	Stateful       bool   `json:"stateful,omitempty"`
	DeletionPolicy string `json:"deletion_policy,omitempty"`
}

// Summarize reads a template (TemplateJSON's output) into a Summary. It reads the JSON, not
// the goformation structs, so that it shows what CloudFormation will be sent.
func Summarize(tpl []byte) (*Summary, error) {
	var t struct {
		Resources map[string]struct {
			Type           string
			DeletionPolicy string
			Properties     map[string]any
		}
	}
	if err := json.Unmarshal(tpl, &t); err != nil {
		return nil, fmt.Errorf("read the rendered template: %w: this is a bug in vmctl", err)
	}
	s := &Summary{Resources: len(t.Resources), ByType: map[string]int{}}
	for _, id := range slices.Sorted(maps.Keys(t.Resources)) {
		r := t.Resources[id]
		s.ByType[r.Type]++
		it := Item{LogicalID: id, Type: r.Type, Settings: settings(r.Type, props(r.Properties)), Stateful: IsStateful(id), DeletionPolicy: r.DeletionPolicy}
		if it.Settings != "" || it.Stateful {
			s.Items = append(s.Items, it)
		}
	}
	slices.SortStableFunc(s.Items, func(a, b Item) int { return strings.Compare(a.Type, b.Type) })
	return s, nil
}

// props reads a resource's properties as short strings.
type props map[string]any

func (p props) s(path ...string) string {
	var v any = map[string]any(p)
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[k]
	}
	return short(v)
}

func (p props) list(key string) []any {
	l, _ := p[key].([]any)
	return l
}

// short writes a template value in a few characters: a Ref or GetAtt by the name of what
// it points at.
func short(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return fmt.Sprint(x)
	case bool:
		return fmt.Sprint(x)
	case map[string]any:
		if r, ok := x["Ref"]; ok {
			return short(r)
		}
		if g, ok := x["Fn::GetAtt"].([]any); ok && len(g) > 0 {
			return short(g[0])
		}
	}
	return "…"
}

func settings(typ string, p props) string {
	var parts []string
	add := func(format string, args ...any) { parts = append(parts, fmt.Sprintf(format, args...)) }
	switch typ {
	case "AWS::EC2::VPC":
		add("CIDR %s", p.s("CidrBlock"))
	case "AWS::EC2::Subnet":
		add("%s", p.s("CidrBlock"))
		if az := p.s("AvailabilityZone"); az != "" && az != "…" {
			add("in %s", az)
		}
	case "AWS::EC2::NatGateway":
		add("in %s", p.s("SubnetId"))
	case "AWS::EC2::SecurityGroupIngress":
		ports := p.s("FromPort")
		if to := p.s("ToPort"); to != ports {
			ports += "-" + to
		}
		from := p.s("CidrIp")
		if g := p.s("SourceSecurityGroupId"); g != "" {
			from = g
		}
		add("%s: %s/%s from %s", p.s("GroupId"), ports, p.s("IpProtocol"), from)
	case "AWS::ElasticLoadBalancingV2::Listener":
		add("%s %s", p.s("Protocol"), p.s("Port"))
		if pol := p.s("SslPolicy"); pol != "" {
			add("policy %s", pol)
		}
		for _, c := range p.list("Certificates") {
			add("certificate %s", props(asMap(c)).s("CertificateArn"))
		}
		for _, a := range p.list("DefaultActions") {
			a := props(asMap(a))
			switch a.s("Type") {
			case "redirect":
				add("redirects to %s %s", a.s("RedirectConfig", "Protocol"), a.s("RedirectConfig", "Port"))
			case "forward":
				add("forwards to %s", a.s("TargetGroupArn"))
			default:
				add("%s", a.s("Type"))
			}
		}
	case "AWS::ElasticLoadBalancingV2::TargetGroup":
		add("%s %s, health %s", p.s("Protocol"), p.s("Port"), p.s("HealthCheckPath"))
	case "AWS::AutoScaling::AutoScalingGroup":
		add("min %s, max %s", p.s("MinSize"), p.s("MaxSize"))
		for _, o := range props(asMap(asMap(p["MixedInstancesPolicy"])["LaunchTemplate"])).list("Overrides") {
			add("%s", props(asMap(o)).s("InstanceType"))
		}
		if base := p.s("MixedInstancesPolicy", "InstancesDistribution", "OnDemandBaseCapacity"); base != "" {
			add("on-demand base %s, spot above %s %% on demand", base, p.s("MixedInstancesPolicy", "InstancesDistribution", "OnDemandPercentageAboveBaseCapacity"))
		}
	case "AWS::EC2::LaunchTemplate":
		add("%s, image %s", p.s("LaunchTemplateData", "InstanceType"), p.s("LaunchTemplateData", "ImageId"))
	case "AWS::RDS::DBInstance":
		add("%s %s, %s, %s GiB", p.s("Engine"), p.s("EngineVersion"), p.s("DBInstanceClass"), p.s("AllocatedStorage"))
		add("Multi-AZ %s", p.s("MultiAZ"))
		add("backups %s days", p.s("BackupRetentionPeriod"))
		add("encrypted %s", p.s("StorageEncrypted"))
		add("deletion protection %s", p.s("DeletionProtection"))
	case "AWS::ElastiCache::ReplicationGroup":
		add("%s %s × %s", p.s("Engine"), p.s("CacheNodeType"), p.s("NumCacheClusters"))
		add("in transit %s, at rest %s", p.s("TransitEncryptionEnabled"), p.s("AtRestEncryptionEnabled"))
	case "AWS::EFS::FileSystem":
		add("encrypted %s, %s throughput", p.s("Encrypted"), p.s("ThroughputMode"))
	case "AWS::S3::Bucket":
		if v := p.s("VersioningConfiguration", "Status"); v != "" {
			add("versioning %s", v)
		}
		for _, r := range props(asMap(p["LifecycleConfiguration"])).list("Rules") {
			for _, tr := range props(asMap(r)).list("Transitions") {
				tr := props(asMap(tr))
				add("%s at %s d", tr.s("StorageClass"), tr.s("TransitionInDays"))
			}
		}
	case "AWS::CloudWatch::Alarm":
		op := map[string]string{"GreaterThanThreshold": ">", "GreaterThanOrEqualToThreshold": "≥", "LessThanThreshold": "<", "LessThanOrEqualToThreshold": "≤"}[p.s("ComparisonOperator")]
		metric, period := p.s("MetricName"), p.s("Period")
		for _, m := range p.list("Metrics") { // metric math: the expression returned
			if m := props(asMap(m)); m.s("ReturnData") == "true" {
				metric = m.s("Label")
				if metric == "" {
					metric = m.s("Expression")
				}
				period = m.s("Period")
			}
		}
		if period == "" {
			add("%s %s %s for %s periods", metric, op, p.s("Threshold"), p.s("EvaluationPeriods"))
		} else {
			add("%s %s %s for %s × %s s", metric, op, p.s("Threshold"), p.s("EvaluationPeriods"), period)
		}
	case "AWS::Budgets::Budget":
		add("%s %s %s", p.s("Budget", "BudgetLimit", "Amount"), p.s("Budget", "BudgetLimit", "Unit"), strings.ToLower(p.s("Budget", "TimeUnit")))
	case "AWS::CE::AnomalySubscription":
		var expr struct {
			Dimensions struct {
				Key    string
				Values []string
			}
		}
		if json.Unmarshal([]byte(p.s("ThresholdExpression")), &expr) == nil && expr.Dimensions.Key == "ANOMALY_TOTAL_IMPACT_PERCENTAGE" && len(expr.Dimensions.Values) > 0 {
			add("alerts at %s %% above expected", expr.Dimensions.Values[0])
		}
	case "AWS::KMS::Key":
		add("rotation %s", p.s("EnableKeyRotation"))
	case "AWS::Logs::LogGroup":
		add("%s, kept %s days", p.s("LogGroupName"), p.s("RetentionInDays"))
	}
	return strings.Join(parts, ", ")
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}
