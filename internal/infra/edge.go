package infra

import (
	"cmp"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/certificatemanager"
	elb "github.com/awslabs/goformation/v7/cloudformation/elasticloadbalancingv2"
	"github.com/awslabs/goformation/v7/cloudformation/route53"
	"github.com/awslabs/goformation/v7/cloudformation/wafv2"

	"github.com/vmctl/vmctl/internal/ecs"
)

const (
	// tlsPolicy offers TLS 1.3 and, for older clients, 1.2 only (seed §3.1).
	tlsPolicy = "ELBSecurityPolicy-TLS13-1-2-2021-06"
	// maxPathValues is how many values ALB allows in one path-pattern condition.
	maxPathValues = 5
	// rateLimit is the WAF rate rule: requests per client IP in 5 minutes before it is
	// blocked, well above what one person's browser and uploads make.
	rateLimit = 2000
	// idleTimeout leaves video generation (seed §7.1: P95 < 60 s) time to answer.
	idleTimeout = 120
)

// loadBalancer is the public edge: the ALB in the public subnets, HTTPS with the
// environment's certificate (TLS 1.3 policy), HTTP redirected to HTTPS, one rule and
// target group per routed service (two with blue/green), and the WAF. An environment
// without a domain or certificate has no HTTPS: its rules are on port 80.
func (r *renderer) loadBalancer() {
	cert := r.aws.CertificateARN
	if cert == "" && r.aws.Domain != "" {
		c := &certificatemanager.Certificate{
			DomainName:       r.aws.Domain,
			ValidationMethod: cloudformation.String("DNS"),
		}
		if r.aws.HostedZoneID != "" { // CloudFormation writes the validation record itself
			c.DomainValidationOptions = []certificatemanager.Certificate_DomainValidationOption{{DomainName: r.aws.Domain, HostedZoneId: cloudformation.String(r.aws.HostedZoneID)}}
		}
		r.add("Certificate", c)
		cert = cloudformation.Ref("Certificate")
	}

	attrs := []elb.LoadBalancer_LoadBalancerAttribute{
		{Key: cloudformation.String("routing.http.drop_invalid_header_fields.enabled"), Value: cloudformation.String("true")},
		{Key: cloudformation.String("idle_timeout.timeout_seconds"), Value: cloudformation.String(strconv.Itoa(idleTimeout))},
		{Key: cloudformation.String("deletion_protection.enabled"), Value: cloudformation.String(strconv.FormatBool(r.env.Protected))},
	}
	r.add(LogicalLoadBalancer, &elb.LoadBalancer{
		Type:                   cloudformation.String("application"),
		Scheme:                 cloudformation.String("internet-facing"),
		IpAddressType:          cloudformation.String("ipv4"),
		Subnets:                r.subnets[TierPublic],
		SecurityGroups:         []string{r.groups[roleALB]},
		LoadBalancerAttributes: attrs,
	})
	lbArn := cloudformation.Ref(LogicalLoadBalancer)
	// What no rule routes is nobody's: the services are reached through their rules only.
	notFound := []elb.Listener_Action{{Type: "fixed-response", FixedResponseConfig: &elb.Listener_FixedResponseConfig{
		StatusCode: "404", ContentType: cloudformation.String("text/plain"), MessageBody: cloudformation.String("not found"),
	}}}
	http := &elb.Listener{LoadBalancerArn: lbArn, Port: cloudformation.Int(80), Protocol: cloudformation.String("HTTP"), DefaultActions: notFound}
	r.listener = LogicalHTTPListener
	if r.https {
		http.DefaultActions = []elb.Listener_Action{{Type: "redirect", RedirectConfig: &elb.Listener_RedirectConfig{
			Protocol: cloudformation.String("HTTPS"), Port: cloudformation.String("443"), StatusCode: "HTTP_301",
		}}}
		r.add(LogicalHTTPSListener, &elb.Listener{
			LoadBalancerArn: lbArn, Port: cloudformation.Int(443), Protocol: cloudformation.String("HTTPS"),
			SslPolicy:      cloudformation.String(tlsPolicy),
			Certificates:   []elb.Listener_Certificate{{CertificateArn: cloudformation.String(cert)}},
			DefaultActions: notFound,
		})
		r.listener = LogicalHTTPSListener
		r.output(OutHTTPSListener, cloudformation.Ref(LogicalHTTPSListener))
	}
	r.add(LogicalHTTPListener, http)
	r.output(OutListener, cloudformation.Ref(r.listener))
	r.output(OutLoadBalancer, lbArn)
	r.output(OutLoadBalancerDNS, cloudformation.GetAtt(LogicalLoadBalancer, "DNSName"))

	if r.aws.Domain != "" && r.aws.HostedZoneID != "" {
		r.add("DomainRecord", &route53.RecordSet{
			HostedZoneId: cloudformation.String(r.aws.HostedZoneID), Name: r.aws.Domain, Type: "A",
			AliasTarget: &route53.RecordSet_AliasTarget{
				DNSName:      cloudformation.GetAtt(LogicalLoadBalancer, "DNSName"),
				HostedZoneId: cloudformation.GetAtt(LogicalLoadBalancer, "CanonicalHostedZoneID"),
			},
		})
	}

	r.routes()
	r.firewall()
}

// route is one routed service's listener rule before it has a priority.
type route struct {
	service *ecs.Service
	values  []string
	rank    int // longest literal prefix among its patterns: among rules in no conflict, the more specific first
}

// takes reports whether rule y matches a request meant for rule x: a path that only
// starts like one of x's patterns already matches one of y's. The ALB stops at the first
// rule that matches, so x must come before y.
func takes(x, y route) (string, string, bool) {
	for _, vx := range x.values {
		for _, vy := range y.values {
			if vx != vy && pathMatch(vy, literalPrefix(vx)) {
				return vx, vy, true
			}
		}
	}
	return "", "", false
}

// order puts the rules in evaluation order: a rule before every rule that would take its
// requests (the catch-all therefore last), the more specific first where none would. Two
// rules that would each take the other's requests cannot be ordered: that is a problem.
func (r *renderer) order(rs []route) []route {
	var out []route
	placed := make([]bool, len(rs))
	for len(out) < len(rs) {
		next := -1
		for i, x := range rs {
			if placed[i] {
				continue
			}
			// x may go now when no unplaced rule must precede it.
			free := true
			for j, y := range rs {
				if j != i && !placed[j] {
					if _, _, yx := takes(y, x); yx {
						if _, _, xy := takes(x, y); !xy {
							free = false
						}
					}
				}
			}
			if free && (next < 0 || x.rank > rs[next].rank || x.rank == rs[next].rank && x.service.Name < rs[next].service.Name) {
				next = i
			}
		}
		if next < 0 { // rules that block each other in a ring: reported below
			next = slices.Index(placed, false)
		}
		placed[next] = true
		out = append(out, rs[next])
	}
	for i, x := range out {
		for _, y := range out[i+1:] {
			if vy, vx, ok := takes(y, x); ok {
				r.fail("services."+y.service.Name+".load_balancer.path_patterns", "%s would be taken by %s's rule (%s), which cannot come later: its own paths would go to %s; split the patterns so one service's are all more specific", vy, x.service.Name, vx, y.service.Name)
			}
		}
	}
	return out
}

// routes gives each routed service one rule: its path patterns, plus its health path when
// they do not already match it (so the target group's probe path is reachable through the
// ALB, where it would otherwise fall to another service's catch-all). Longer literal
// prefixes come first; the catch-all service comes last, as an explicit rule rather than
// the default action, because ECS blue/green shifts traffic by a rule's ARN.
func (r *renderer) routes() {
	var rs []route
	for i := range r.plan.Services {
		s := &r.plan.Services[i]
		lb := s.LoadBalancer
		if lb == nil {
			continue
		}
		values := slices.Clone(lb.PathPatterns)
		if lb.HealthPath != "" && !slices.ContainsFunc(values, func(p string) bool { return pathMatch(p, lb.HealthPath) }) {
			values = append(values, lb.HealthPath)
		}
		if len(values) > maxPathValues {
			r.fail("services."+s.Name+".load_balancer.path_patterns", "%d path patterns with the health path; an ALB rule takes at most %d", len(values), maxPathValues)
			values = values[:maxPathValues]
		}
		rt := route{service: s, values: values}
		for _, v := range values {
			rt.rank = max(rt.rank, len(literalPrefix(v)))
		}
		rs = append(rs, rt)
		r.targetGroups(s)
	}
	rs = r.order(rs)
	for i, rt := range rs {
		name := rt.service.Name
		tg := cloudformation.Ref(LogicalTargetGroup(name, false))
		action := elb.ListenerRule_Action{Type: "forward", TargetGroupArn: cloudformation.String(tg)}
		if rt.service.LoadBalancer.AlternateTargetGroup != "" {
			// Blue/green: ECS moves the weights between the two groups during a deployment.
			action = elb.ListenerRule_Action{Type: "forward", ForwardConfig: &elb.ListenerRule_ForwardConfig{TargetGroups: []elb.ListenerRule_TargetGroupTuple{
				{TargetGroupArn: cloudformation.String(tg), Weight: cloudformation.Int(100)},
				{TargetGroupArn: cloudformation.RefPtr(LogicalTargetGroup(name, true)), Weight: cloudformation.Int(0)},
			}}}
		}
		r.add(LogicalRule(name), &elb.ListenerRule{
			ListenerArn: cloudformation.RefPtr(r.listener),
			Priority:    (i + 1) * 10, // gaps leave room for a rule added by hand in an emergency
			Conditions: []elb.ListenerRule_RuleCondition{{
				Field: cloudformation.String("path-pattern"), PathPatternConfig: &elb.ListenerRule_PathPatternConfig{Values: rt.values},
			}},
			Actions: []elb.ListenerRule_Action{action},
		})
	}
}

// targetGroups creates the service's target group, and the alternate for blue/green, named
// and shaped as the plan says.
func (r *renderer) targetGroups(s *ecs.Service) {
	lb := s.LoadBalancer
	set := lb.TargetGroupSettings
	for _, alt := range []bool{false, true} {
		name := lb.TargetGroup
		if alt {
			if lb.AlternateTargetGroup == "" {
				continue
			}
			name = lb.AlternateTargetGroup
		}
		tg := &elb.TargetGroup{
			Name:                       cloudformation.String(name),
			VpcId:                      cloudformation.String(r.vpc),
			TargetType:                 cloudformation.String(cmp.Or(string(set.TargetType), "ip")),
			Protocol:                   cloudformation.String(cmp.Or(string(set.Protocol), "HTTP")),
			HealthCheckEnabled:         cloudformation.Bool(true),
			HealthCheckProtocol:        cloudformation.String(cmp.Or(string(set.HealthCheckProtocol), "HTTP")),
			HealthCheckPath:            cloudformation.String(cmp.Or(deref(set.HealthCheckPath), lb.HealthPath)),
			HealthCheckIntervalSeconds: int32p(set.HealthCheckIntervalSeconds),
			HealthCheckTimeoutSeconds:  int32p(set.HealthCheckTimeoutSeconds),
			HealthyThresholdCount:      int32p(set.HealthyThresholdCount),
			UnhealthyThresholdCount:    int32p(set.UnhealthyThresholdCount),
			Tags:                       r.nameTag(strings.TrimPrefix(name, r.aws.Cluster+"-")),
		}
		if set.Port != nil {
			tg.Port = cloudformation.Int(int(*set.Port))
		}
		if set.Matcher != nil && set.Matcher.HttpCode != nil {
			tg.Matcher = &elb.TargetGroup_Matcher{HttpCode: set.Matcher.HttpCode}
		}
		r.add(LogicalTargetGroup(s.Name, alt), tg)
	}
}

// firewall is the WAF in front of the ALB: AWS's common rule set and a per-IP rate limit.
func (r *renderer) firewall() {
	visibility := func(metric string) *wafv2.WebACL_VisibilityConfig {
		return &wafv2.WebACL_VisibilityConfig{CloudWatchMetricsEnabled: true, SampledRequestsEnabled: true, MetricName: metric}
	}
	r.add(LogicalWebACL, &wafv2.WebACL{
		Name:             cloudformation.String(r.name("alb")),
		Scope:            "REGIONAL",
		DefaultAction:    &wafv2.WebACL_DefaultAction{Allow: &wafv2.WebACL_AllowAction{}},
		VisibilityConfig: visibility(r.name("alb")),
		Rules: []wafv2.WebACL_Rule{
			{
				Name: "aws-common", Priority: 1,
				OverrideAction: &wafv2.WebACL_OverrideAction{None: map[string]interface{}{}},
				Statement: &wafv2.WebACL_Statement{ManagedRuleGroupStatement: &wafv2.WebACL_ManagedRuleGroupStatement{
					VendorName: "AWS", Name: "AWSManagedRulesCommonRuleSet",
					// Voice samples for cloning are uploaded in request bodies far above
					// the set's 8 KB limit: count those, do not block them.
					RuleActionOverrides: []wafv2.WebACL_RuleActionOverride{{Name: "SizeRestrictions_BODY", ActionToUse: &wafv2.WebACL_RuleAction{Count: &wafv2.WebACL_CountAction{}}}},
				}},
				VisibilityConfig: visibility("aws-common"),
			},
			{
				Name: "rate-limit", Priority: 2,
				Action: &wafv2.WebACL_RuleAction{Block: &wafv2.WebACL_BlockAction{}},
				Statement: &wafv2.WebACL_Statement{RateBasedStatement: &wafv2.WebACL_RateBasedStatement{
					Limit: rateLimit, AggregateKeyType: "IP",
				}},
				VisibilityConfig: visibility("rate-limit"),
			},
		},
	})
	r.add("WebAclAssociation", &wafv2.WebACLAssociation{
		ResourceArn: cloudformation.Ref(LogicalLoadBalancer),
		WebACLArn:   cloudformation.GetAtt(LogicalWebACL, "Arn"),
	})
}

// literalPrefix is a path pattern up to its first wildcard.
func literalPrefix(pattern string) string {
	if i := strings.IndexAny(pattern, "*?"); i >= 0 {
		return pattern[:i]
	}
	return pattern
}

// pathMatch matches a path as an ALB path-pattern condition does: * is any run of
// characters (slashes included), ? is one character, everything else is literal.
func pathMatch(pattern, path string) bool {
	var b strings.Builder
	b.WriteString("^")
	for _, c := range pattern {
		switch c {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	return err == nil && re.MatchString(path)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func int32p(v *int32) *int {
	if v == nil {
		return nil
	}
	return cloudformation.Int(int(*v))
}
