package awssim

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/vmctl/vmctl/internal/ecs"
)

// Provisioned is what Provision made for a plan.
type Provisioned struct {
	LoadBalancer LoadBalancer           // named after the cluster
	TargetGroups map[string]TargetGroup // by name, blue/green alternates included
	Instances    []Instance             // the GPU hosts, registered in the cluster
}

// Provision makes what an account holds around a plan's cluster, which
// vmctl creates none of: the cluster; one load balancer named after it;
// every target group the plan names (blue/green alternates too) with the
// plan's port and health check, routed by the plan's path patterns (a
// service whose only pattern is /* takes the default action); and the GPU
// Auto Scaling group of the plan's hosts with these instances (default:
// one g4dn.xlarge with a T4), registered as container instances of the
// cluster. Provisioning again adds nothing that exists.
func (s *Sim) Provision(plan *ecs.Plan, instances ...Instance) Provisioned {
	out := Provisioned{TargetGroups: map[string]TargetGroup{}}
	s.CreateCluster(plan.Cluster)
	out.LoadBalancer = s.CreateLoadBalancer(plan.Cluster)

	var routed []ecs.Service
	for _, svc := range plan.Services {
		if svc.LoadBalancer != nil {
			routed = append(routed, svc)
		}
	}
	// Longer patterns first, the catch-all last, as ALB rule priorities
	// would have them.
	slices.SortStableFunc(routed, func(a, b ecs.Service) int {
		return cmp.Compare(patternWeight(b.LoadBalancer.PathPatterns), patternWeight(a.LoadBalancer.PathPatterns))
	})
	for _, svc := range routed {
		lb := svc.LoadBalancer
		patterns := lb.PathPatterns
		if len(patterns) == 1 && patterns[0] == "/*" {
			patterns = nil
		}
		for _, name := range []string{lb.TargetGroup, lb.AlternateTargetGroup} {
			if name == "" {
				continue
			}
			spec := TargetGroupSpec{Name: name, HealthPath: lb.HealthPath}
			set := lb.TargetGroupSettings
			if set.Port != nil {
				spec.Port = int(*set.Port)
			}
			if set.HealthCheckPath != nil {
				spec.HealthPath = *set.HealthCheckPath
			}
			if set.Matcher != nil && set.Matcher.HttpCode != nil {
				spec.Matcher = *set.Matcher.HttpCode
			}
			tg := s.CreateTargetGroupWith(spec)
			out.TargetGroups[name] = tg
			if !s.attached(out.LoadBalancer.ARN, tg.ARN) {
				// An alternate's rule comes after its primary's and matches the same
				// paths, so it takes no traffic, as with weight 0 on the listener.
				_ = s.AttachTargetGroup(out.LoadBalancer.ARN, tg.ARN, patterns...)
			}
		}
	}

	groups := map[string]bool{}
	for _, svc := range plan.Services {
		h := svc.Hosts
		if h == nil || groups[h.AutoScalingGroup] {
			continue
		}
		groups[h.AutoScalingGroup] = true
		hosts := slices.Clone(instances)
		if len(hosts) == 0 {
			hosts = []Instance{{GPU: T4()}}
		}
		for i := range hosts {
			if hosts[i].InstanceType == "" {
				hosts[i].InstanceType = h.InstanceType
			}
		}
		lo := min(h.Min, len(hosts))
		out.Instances = append(out.Instances, s.AddAutoScalingGroup(h.AutoScalingGroup, lo, max(h.Max, len(hosts)), len(hosts), hosts...)...)
		s.RegisterContainerInstances(plan.Cluster, h.AutoScalingGroup)
	}
	return out
}

// patternWeight orders routes: the longest literal prefix first.
func patternWeight(patterns []string) int {
	w := 0
	for _, p := range patterns {
		lit, _, _ := strings.Cut(p, "*")
		w = max(w, len(lit))
	}
	return w
}

// attached says whether a target group is routed by a load balancer.
func (s *Sim) attached(lbARN, tgARN string) bool {
	f := s.compute
	f.mu.Lock()
	defer f.mu.Unlock()
	lb := f.lbs[arnName(lbARN)]
	tg := f.targetGroupByARN(tgARN)
	return lb != nil && tg != nil && slices.Contains(tg.lbs, lb)
}

// ---- listeners and rules: each load balancer has one HTTP listener on
// port 80 whose rules are its routes, in order, the default action last.
// ECS blue/green names the production rule, which vmctl finds this way.

func stableID(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:8])
}

func (lb *loadBalancer) listenerARN(h arnHome) string {
	return h.arn("elasticloadbalancing", "listener/app/"+lb.name+"/"+lb.id+"/"+stableID(lb.id, "listener"))
}

func (lb *loadBalancer) ruleARN(h arnHome, r lbRule) string {
	var pats []string
	for _, p := range r.patterns {
		pats = append(pats, p.String())
	}
	id := stableID(lb.id, r.tg.id, strings.Join(pats, ","))
	if len(r.patterns) == 0 {
		id = stableID(lb.id, "default")
	}
	return h.arn("elasticloadbalancing", "listener-rule/app/"+lb.name+"/"+lb.id+"/"+stableID(lb.id, "listener")+"/"+id)
}

type elbTargetGroupTuple struct {
	TargetGroupArn string
	Weight         int
}

type elbActionOut struct {
	Type           string
	TargetGroupArn string `xml:",omitempty"`
	Order          int
	ForwardConfig  *struct {
		TargetGroups elbList[elbTargetGroupTuple]
	} `xml:",omitempty"`
	FixedResponseConfig *struct {
		StatusCode  string
		ContentType string
	} `xml:",omitempty"`
}

type elbListenerOut struct {
	ListenerArn     string
	LoadBalancerArn string
	Port            int
	Protocol        string
	DefaultActions  elbList[elbActionOut]
}

type elbConditionOut struct {
	Field             string
	Values            elbList[string]
	PathPatternConfig struct {
		Values elbList[string]
	}
}

type elbRuleOut struct {
	RuleArn    string
	Priority   string
	Conditions elbList[elbConditionOut]
	Actions    elbList[elbActionOut]
	IsDefault  bool
}

func forwardTo(h arnHome, tg *targetGroup) elbActionOut {
	a := elbActionOut{Type: "forward", TargetGroupArn: tg.arn(h), Order: 1}
	a.ForwardConfig = &struct {
		TargetGroups elbList[elbTargetGroupTuple]
	}{TargetGroups: elbList[elbTargetGroupTuple]{{TargetGroupArn: tg.arn(h), Weight: 1}}}
	return a
}

func fixed503() elbActionOut {
	a := elbActionOut{Type: "fixed-response", Order: 1}
	a.FixedResponseConfig = &struct {
		StatusCode  string
		ContentType string
	}{"503", "text/html"}
	return a
}

// rulesOf is a load balancer's rules as ELB describes them; the caller
// holds the lock.
func (lb *loadBalancer) rulesOf(h arnHome) []elbRuleOut {
	var out []elbRuleOut
	var def *elbRuleOut
	for _, r := range lb.rules {
		ro := elbRuleOut{RuleArn: lb.ruleARN(h, r), Conditions: elbList[elbConditionOut]{}, Actions: elbList[elbActionOut]{forwardTo(h, r.tg)}}
		if len(r.patterns) == 0 {
			if def == nil {
				ro.Priority, ro.IsDefault = "default", true
				def = &ro
			}
			continue
		}
		ro.Priority = strconv.Itoa(r.priority)
		c := elbConditionOut{Field: "path-pattern", Values: elbList[string](slices.Clone(r.texts))}
		c.PathPatternConfig.Values = c.Values
		ro.Conditions = append(ro.Conditions, c)
		out = append(out, ro)
	}
	if def == nil {
		def = &elbRuleOut{RuleArn: lb.ruleARN(h, lbRule{}), Priority: "default", IsDefault: true, Conditions: elbList[elbConditionOut]{}, Actions: elbList[elbActionOut]{fixed503()}}
	}
	return append(out, *def)
}

// lbOfARN finds the load balancer a listener or rule ARN belongs to; the
// caller holds the lock.
func (f *compute) lbOfARN(arn, kind string) *loadBalancer {
	_, rest, ok := strings.Cut(arn, ":"+kind+"/app/")
	if !ok {
		return nil
	}
	parts := strings.Split(rest, "/") // name, lb id, listener id[, rule id]
	if len(parts) < 3 {
		return nil
	}
	return f.lbs[parts[1]]
}

func (s *Sim) describeListeners(h arnHome, form url.Values) (any, error) {
	lbARN, arns := form.Get("LoadBalancerArn"), elbMembers(form, "ListenerArns")
	if lbARN == "" && len(arns) == 0 {
		return nil, Errorf("ValidationError", "You must specify either listener ARNs or a load balancer ARN")
	}
	f := s.compute
	f.mu.Lock()
	defer f.mu.Unlock()
	var lbs []*loadBalancer
	if lbARN != "" {
		lb := f.lbs[arnName(lbARN)]
		if lb == nil {
			return nil, Errorf("LoadBalancerNotFound", "One or more load balancers not found")
		}
		lbs = append(lbs, lb)
	}
	for _, a := range arns {
		lb := f.lbOfARN(a, "listener")
		if lb == nil || lb.listenerARN(h) != a {
			return nil, Errorf("ListenerNotFound", "One or more listeners not found")
		}
		lbs = append(lbs, lb)
	}
	out := struct {
		Listeners elbList[elbListenerOut]
	}{Listeners: elbList[elbListenerOut]{}}
	for _, lb := range lbs {
		rules := lb.rulesOf(h)
		out.Listeners = append(out.Listeners, elbListenerOut{
			ListenerArn: lb.listenerARN(h), LoadBalancerArn: lb.arn(h), Port: 80, Protocol: "HTTP",
			DefaultActions: rules[len(rules)-1].Actions,
		})
	}
	return out, nil
}

func (s *Sim) describeRules(h arnHome, form url.Values) (any, error) {
	listener, arns := form.Get("ListenerArn"), elbMembers(form, "RuleArns")
	if listener == "" && len(arns) == 0 {
		return nil, Errorf("ValidationError", "You must specify either listener rule ARNs or a listener ARN")
	}
	f := s.compute
	f.mu.Lock()
	defer f.mu.Unlock()
	out := struct {
		Rules elbList[elbRuleOut]
	}{Rules: elbList[elbRuleOut]{}}
	if listener != "" {
		lb := f.lbOfARN(listener, "listener")
		if lb == nil || lb.listenerARN(h) != listener {
			return nil, Errorf("ListenerNotFound", "One or more listeners not found")
		}
		out.Rules = append(out.Rules, lb.rulesOf(h)...)
		return out, nil
	}
	for _, a := range arns {
		lb := f.lbOfARN(a, "listener-rule")
		var found *elbRuleOut
		if lb != nil {
			for _, r := range lb.rulesOf(h) {
				if r.RuleArn == a {
					found = &r
				}
			}
		}
		if found == nil {
			return nil, Errorf("RuleNotFound", "One or more rules not found")
		}
		out.Rules = append(out.Rules, *found)
	}
	return out, nil
}
