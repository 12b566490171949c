package verify

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
)

// listenerRule is one ALB listener rule as far as routing a health request
// goes.
type listenerRule struct {
	Priority int  // lower numbers are evaluated first
	Default  bool // the listener's default action: evaluated last, matches every path
	// PathPatterns are the rule's path-pattern values, any of which may match;
	// none with no path condition.
	PathPatterns []string
	// Other is a condition besides the path (host, header, method, query,
	// source IP): verify's plain GET is taken not to meet it, so such a rule
	// never routes a health request.
	Other        bool
	Action       string   // the terminal action: forward, redirect, fixed-response
	TargetGroups []string // forward's target group ARNs with a weight above 0
}

// String names a rule the way a user finds it in the console.
func (r listenerRule) String() string {
	if r.Default {
		return "the default action"
	}
	return fmt.Sprintf("rule %d (%s)", r.Priority, strings.Join(r.PathPatterns, ", "))
}

// routeOf is the rule that answers a request for path: the matching rule
// with the lowest priority number, else the default action. ok is false
// only for a listener without a default action, which ALB does not allow.
// An ALB matches path patterns against the path alone (no query string),
// case-sensitively, with * for any run of characters and ? for one.
func routeOf(rules []listenerRule, path string) (listenerRule, bool) {
	if p, _, found := strings.Cut(path, "?"); found {
		path = p
	}
	ordered := slices.Clone(rules)
	slices.SortStableFunc(ordered, func(a, b listenerRule) int {
		switch {
		case a.Default != b.Default:
			if a.Default {
				return 1
			}
			return -1
		}
		return a.Priority - b.Priority
	})
	for _, r := range ordered {
		switch {
		case r.Default:
			return r, true
		case r.Other || len(r.PathPatterns) == 0:
			continue
		case pathMatches(r.PathPatterns, path):
			return r, true
		}
	}
	return listenerRule{}, false
}

// forwardsTo says whether a rule sends requests to one of the target groups.
func (r listenerRule) forwardsTo(arns ...string) bool {
	return slices.ContainsFunc(r.TargetGroups, func(a string) bool { return a != "" && slices.Contains(arns, a) })
}

// rulesFromELB reads DescribeRules' answer.
func rulesFromELB(in []elbtypes.Rule) []listenerRule {
	var out []listenerRule
	for _, r := range in {
		lr := listenerRule{Default: sdkaws.ToBool(r.IsDefault) || sdkaws.ToString(r.Priority) == "default"}
		if !lr.Default {
			lr.Priority, _ = strconv.Atoi(sdkaws.ToString(r.Priority))
		}
		for _, c := range r.Conditions {
			if sdkaws.ToString(c.Field) != "path-pattern" {
				lr.Other = true
				continue
			}
			values := c.Values
			if c.PathPatternConfig != nil && len(c.PathPatternConfig.Values) > 0 {
				values = c.PathPatternConfig.Values
			}
			lr.PathPatterns = append(lr.PathPatterns, values...)
		}
		actions := slices.Clone(r.Actions)
		slices.SortStableFunc(actions, func(a, b elbtypes.Action) int { return int(sdkaws.ToInt32(a.Order) - sdkaws.ToInt32(b.Order)) })
		for _, a := range actions {
			switch a.Type {
			case elbtypes.ActionTypeEnumForward:
				lr.Action = string(a.Type)
				if a.ForwardConfig != nil && len(a.ForwardConfig.TargetGroups) > 0 {
					for _, t := range a.ForwardConfig.TargetGroups {
						if t.Weight == nil || *t.Weight > 0 {
							lr.TargetGroups = append(lr.TargetGroups, sdkaws.ToString(t.TargetGroupArn))
						}
					}
				} else if a.TargetGroupArn != nil {
					lr.TargetGroups = append(lr.TargetGroups, sdkaws.ToString(a.TargetGroupArn))
				}
			case elbtypes.ActionTypeEnumRedirect, elbtypes.ActionTypeEnumFixedResponse:
				lr.Action = string(a.Type)
			}
		}
		out = append(out, lr)
	}
	return out
}

// listenerRules reads the rules of the load balancer's listener that a
// request to base arrives on (pickListener).
func (v *verifier) listenerRules(ctx context.Context, lbARN, base string) (string, []listenerRule, error) {
	ls, err := v.c.ELB.DescribeListeners(ctx, &elbv2.DescribeListenersInput{LoadBalancerArn: sdkaws.String(lbARN)})
	if err != nil {
		return "", nil, fmt.Errorf("describe the listeners of %s: %w", lbARN, err)
	}
	l, err := pickListener(ls.Listeners, lbARN, base)
	if err != nil {
		return "", nil, err
	}
	name := fmt.Sprintf("listener %s:%d", l.Protocol, sdkaws.ToInt32(l.Port))
	var rules []elbtypes.Rule
	in := &elbv2.DescribeRulesInput{ListenerArn: l.ListenerArn}
	for {
		out, err := v.c.ELB.DescribeRules(ctx, in)
		if err != nil {
			return name, nil, fmt.Errorf("describe the rules of %s: %w", name, err)
		}
		rules = append(rules, out.Rules...)
		if out.NextMarker == nil {
			break
		}
		in.Marker = out.NextMarker
	}
	return name, rulesFromELB(rules), nil
}

// pickListener is the listener a request to base arrives on: the one on
// base's port, else the only one, else the only one that does more than
// redirect (an HTTPS listener beside port 80 redirecting to it, reached
// at an address that names neither port, as verify --endpoint or a test's
// loopback proxy does), else the only one of base's protocol.
func pickListener(ls []elbtypes.Listener, lbARN, base string) (elbtypes.Listener, error) {
	u, err := url.Parse(base)
	if err != nil {
		return elbtypes.Listener{}, fmt.Errorf("read endpoint %s: %w", base, err)
	}
	port, _ := strconv.Atoi(u.Port())
	proto, defPort := elbtypes.ProtocolEnumHttp, 80
	if u.Scheme == "https" {
		proto, defPort = elbtypes.ProtocolEnumHttps, 443
	}
	if u.Port() == "" {
		port = defPort
	}
	redirects := func(l elbtypes.Listener) bool {
		return len(l.DefaultActions) > 0 && !slices.ContainsFunc(l.DefaultActions, func(a elbtypes.Action) bool { return a.Type != elbtypes.ActionTypeEnumRedirect })
	}
	for _, by := range []func(elbtypes.Listener) bool{
		func(l elbtypes.Listener) bool { return int(sdkaws.ToInt32(l.Port)) == port },
		func(elbtypes.Listener) bool { return true },
		func(l elbtypes.Listener) bool { return !redirects(l) },
		func(l elbtypes.Listener) bool { return l.Protocol == proto },
	} {
		var m []elbtypes.Listener
		for _, l := range ls {
			if by(l) {
				m = append(m, l)
			}
		}
		if len(m) == 1 {
			return m[0], nil
		}
	}
	return elbtypes.Listener{}, fmt.Errorf("cannot tell which of the %d listeners of %s answers %s", len(ls), lbARN, base)
}

// tgName is the name inside a target group ARN (targetgroup/NAME/ID).
func tgName(arn string) string {
	if _, rest, ok := strings.Cut(arn, ":targetgroup/"); ok {
		name, _, _ := strings.Cut(rest, "/")
		return name
	}
	return arn
}

// Latency is the short burst verify sends to a health path it reached
// through the load balancer, judged against the API's latency target.
type Latency struct {
	Requests int     `json:"requests"`
	Failed   int     `json:"failed,omitempty"`
	P95MS    float64 `json:"p95_ms"`
	TargetMS float64 `json:"target_ms"`
}

// p95 is the nearest-rank 95th percentile: with 20 samples the 19th
// slowest, so one outlier does not decide it.
func p95(samples []time.Duration) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	return s[int(math.Ceil(0.95*float64(len(s))))-1]
}

func millis(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Millisecond)*10) / 10 }
