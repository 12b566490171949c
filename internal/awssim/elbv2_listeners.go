package awssim

import (
	"cmp"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Listeners and their rules. A load balancer has the listeners its stack
// declares (the test API adds one HTTP listener on port 80 when it first
// attaches a target group); each has a default action and rules by
// priority. The load balancer's loopback proxy serves one listener: the
// HTTPS one (plain HTTP stands in for TLS), else the lowest port. Other
// listeners, such as port 80 redirecting to 443, are recorded and
// described as they are.

type lbListener struct {
	id        string
	lb        *loadBalancer
	port      int
	protocol  string // HTTP | HTTPS
	certs     []string
	sslPolicy string
	def       lbAction
	rules     []*lbRule // by priority, lowest first
}

type lbRule struct {
	id       string
	priority int              // 1 to 50000, lowest first
	texts    []string         // the path patterns as given
	patterns []*regexp.Regexp // compiled from texts
	action   lbAction
}

type weightedGroup struct {
	tg     *targetGroup
	weight int
}

// lbAction is a listener's or rule's terminal action.
type lbAction struct {
	typ string // forward | redirect | fixed-response; "" for none
	tgs []weightedGroup
	// redirect
	protocol, port, host, path, query, status string
	// fixed-response
	contentType, body string
}

func forwardAction(tg *targetGroup) lbAction {
	return lbAction{typ: "forward", tgs: []weightedGroup{{tg: tg, weight: 1}}}
}

// pickGroup chooses a forward's target group by weight.
func (a lbAction) pickGroup(n int) *targetGroup {
	total := 0
	for _, w := range a.tgs {
		total += w.weight
	}
	if total == 0 {
		return nil
	}
	n %= total
	for _, w := range a.tgs {
		if n < w.weight {
			return w.tg
		}
		n -= w.weight
	}
	return nil
}

func (a lbAction) redirectCode() int {
	if a.status == "HTTP_302" {
		return http.StatusFound
	}
	return http.StatusMovedPermanently
}

func (a lbAction) fixedCode() int {
	n, err := strconv.Atoi(a.status)
	if err != nil {
		return http.StatusServiceUnavailable
	}
	return n
}

// redirectURL fills ALB's #{protocol}, #{host}, #{port}, #{path}, #{query}.
func (a lbAction) redirectURL(r *http.Request) string {
	host, port, _ := strings.Cut(r.Host, ":")
	vars := map[string]string{"#{protocol}": "http", "#{host}": host, "#{port}": cmp.Or(port, "80"), "#{path}": r.URL.Path, "#{query}": r.URL.RawQuery}
	fill := func(v, def string) string {
		v = cmp.Or(v, def)
		for k, val := range vars {
			v = strings.ReplaceAll(v, k, val)
		}
		return v
	}
	proto := strings.ToLower(fill(a.protocol, "#{protocol}"))
	u := url.URL{Scheme: proto, Host: fill(a.host, "#{host}") + ":" + fill(a.port, "#{port}"), Path: fill(a.path, "/#{path}"), RawQuery: fill(a.query, "#{query}")}
	u.Path = "/" + strings.TrimLeft(u.Path, "/")
	return u.String()
}

// served is the listener the proxy answers as; the caller holds the lock.
func (lb *loadBalancer) served() *lbListener {
	var best *lbListener
	for _, l := range lb.listeners {
		switch {
		case best == nil:
			best = l
		case l.protocol == "HTTPS" && best.protocol != "HTTPS":
			best = l
		case l.protocol == best.protocol && l.port < best.port:
			best = l
		}
	}
	return best
}

// testListener is the HTTP:80 listener of the test API, made on first use
// with a fixed 503 as its default action; the caller holds the lock.
func (lb *loadBalancer) testListener() *lbListener {
	for _, l := range lb.listeners {
		if l.port == 80 {
			return l
		}
	}
	l := &lbListener{id: computeHex(16), lb: lb, port: 80, protocol: "HTTP", def: lbAction{typ: "fixed-response", status: "503", contentType: "text/html"}}
	lb.listeners = append(lb.listeners, l)
	return l
}

// addRule inserts a rule by priority; the caller holds the lock.
func (l *lbListener) addRule(r *lbRule) error {
	if r.priority < 1 || r.priority > 50000 {
		return Errorf("ValidationError", "Priority '%d' must be between 1 and 50000", r.priority)
	}
	if slices.ContainsFunc(l.rules, func(x *lbRule) bool { return x.priority == r.priority && x != r }) {
		return Errorf("PriorityInUse", "Priority '%d' is currently in use", r.priority)
	}
	r.patterns = nil
	for _, p := range r.texts {
		r.patterns = append(r.patterns, elbPathPattern(p))
	}
	l.rules = slices.DeleteFunc(l.rules, func(x *lbRule) bool { return x == r })
	i := slices.IndexFunc(l.rules, func(x *lbRule) bool { return x.priority > r.priority })
	if i < 0 {
		i = len(l.rules)
	}
	l.rules = slices.Insert(l.rules, i, r)
	return nil
}

// relink recomputes which load balancers each target group is behind;
// the caller holds the lock.
func (f *compute) relink() {
	for _, tg := range f.tgs {
		tg.lbs = nil
	}
	link := func(lb *loadBalancer, a lbAction) {
		for _, w := range a.tgs {
			if !slices.Contains(w.tg.lbs, lb) {
				w.tg.lbs = append(w.tg.lbs, lb)
			}
		}
	}
	for _, lb := range f.lbs {
		for _, l := range lb.listeners {
			link(lb, l.def)
			for _, r := range l.rules {
				link(lb, r.action)
			}
		}
	}
}

func (l *lbListener) arn(h arnHome) string {
	return h.arn("elasticloadbalancing", "listener/app/"+l.lb.name+"/"+l.lb.id+"/"+l.id)
}

func (l *lbListener) ruleARN(h arnHome, r *lbRule) string {
	id := "default-" + l.id[:8]
	if r != nil {
		id = r.id
	}
	return h.arn("elasticloadbalancing", "listener-rule/app/"+l.lb.name+"/"+l.lb.id+"/"+l.id+"/"+id)
}

// listenerByARN finds a listener; the caller holds the lock.
func (f *compute) listenerByARN(arn string) *lbListener {
	lb := f.lbOfARN(arn, "listener")
	if lb == nil {
		return nil
	}
	id := arn[strings.LastIndex(arn, "/")+1:]
	for _, l := range lb.listeners {
		if l.id == id {
			return l
		}
	}
	return nil
}

// ruleByARN finds a rule and its listener; the caller holds the lock.
func (f *compute) ruleByARN(arn string) (*lbListener, *lbRule) {
	lb := f.lbOfARN(arn, "listener-rule")
	if lb == nil {
		return nil, nil
	}
	parts := strings.Split(arn, "/")
	if len(parts) < 2 {
		return nil, nil
	}
	lid, rid := parts[len(parts)-2], parts[len(parts)-1]
	for _, l := range lb.listeners {
		if l.id != lid {
			continue
		}
		for _, r := range l.rules {
			if r.id == rid {
				return l, r
			}
		}
	}
	return nil, nil
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

// ---- the query API

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
	RedirectConfig *struct {
		Protocol   string
		Port       string
		Host       string
		Path       string
		Query      string
		StatusCode string
	} `xml:",omitempty"`
	FixedResponseConfig *struct {
		StatusCode  string
		ContentType string `xml:",omitempty"`
		MessageBody string `xml:",omitempty"`
	} `xml:",omitempty"`
}

func (a lbAction) out(h arnHome) elbActionOut {
	o := elbActionOut{Type: a.typ, Order: 1}
	switch a.typ {
	case "forward":
		o.ForwardConfig = &struct {
			TargetGroups elbList[elbTargetGroupTuple]
		}{TargetGroups: elbList[elbTargetGroupTuple]{}}
		for _, w := range a.tgs {
			o.ForwardConfig.TargetGroups = append(o.ForwardConfig.TargetGroups, elbTargetGroupTuple{TargetGroupArn: w.tg.arn(h), Weight: w.weight})
		}
		if len(a.tgs) == 1 {
			o.TargetGroupArn = a.tgs[0].tg.arn(h)
		}
	case "redirect":
		o.RedirectConfig = &struct {
			Protocol   string
			Port       string
			Host       string
			Path       string
			Query      string
			StatusCode string
		}{cmp.Or(a.protocol, "#{protocol}"), cmp.Or(a.port, "#{port}"), cmp.Or(a.host, "#{host}"), cmp.Or(a.path, "/#{path}"), cmp.Or(a.query, "#{query}"), cmp.Or(a.status, "HTTP_301")}
	case "fixed-response":
		o.FixedResponseConfig = &struct {
			StatusCode  string
			ContentType string `xml:",omitempty"`
			MessageBody string `xml:",omitempty"`
		}{a.status, a.contentType, a.body}
	}
	return o
}

type elbCertificate struct {
	CertificateArn string
}

type elbListenerOut struct {
	ListenerArn     string
	LoadBalancerArn string
	Port            int
	Protocol        string
	Certificates    elbList[elbCertificate]
	SslPolicy       string `xml:",omitempty"`
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

func (l *lbListener) out(h arnHome) elbListenerOut {
	o := elbListenerOut{ListenerArn: l.arn(h), LoadBalancerArn: l.lb.arn(h), Port: l.port, Protocol: l.protocol,
		Certificates: elbList[elbCertificate]{}, SslPolicy: l.sslPolicy, DefaultActions: elbList[elbActionOut]{l.def.out(h)}}
	for _, c := range l.certs {
		o.Certificates = append(o.Certificates, elbCertificate{CertificateArn: c})
	}
	return o
}

// rulesOf is a listener's rules as ELB describes them, the default last;
// the caller holds the lock.
func (l *lbListener) rulesOf(h arnHome) []elbRuleOut {
	var out []elbRuleOut
	for _, r := range l.rules {
		c := elbConditionOut{Field: "path-pattern", Values: elbList[string](slices.Clone(r.texts))}
		c.PathPatternConfig.Values = c.Values
		out = append(out, elbRuleOut{RuleArn: l.ruleARN(h, r), Priority: strconv.Itoa(r.priority),
			Conditions: elbList[elbConditionOut]{c}, Actions: elbList[elbActionOut]{r.action.out(h)}})
	}
	return append(out, elbRuleOut{RuleArn: l.ruleARN(h, nil), Priority: "default", IsDefault: true,
		Conditions: elbList[elbConditionOut]{}, Actions: elbList[elbActionOut]{l.def.out(h)}})
}

func (s *Sim) describeListeners(h arnHome, form url.Values) (any, error) {
	lbARN, arns := form.Get("LoadBalancerArn"), elbMembers(form, "ListenerArns")
	if lbARN == "" && len(arns) == 0 {
		return nil, Errorf("ValidationError", "You must specify either listener ARNs or a load balancer ARN")
	}
	f := s.compute
	f.mu.Lock()
	defer f.mu.Unlock()
	var ls []*lbListener
	if lbARN != "" {
		lb := f.lbs[arnName(lbARN)]
		if lb == nil {
			return nil, Errorf("LoadBalancerNotFound", "One or more load balancers not found")
		}
		ls = append(ls, lb.listeners...)
	}
	for _, a := range arns {
		l := f.listenerByARN(a)
		if l == nil {
			return nil, Errorf("ListenerNotFound", "One or more listeners not found")
		}
		ls = append(ls, l)
	}
	out := struct {
		Listeners elbList[elbListenerOut]
	}{Listeners: elbList[elbListenerOut]{}}
	for _, l := range ls {
		out.Listeners = append(out.Listeners, l.out(h))
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
		l := f.listenerByARN(listener)
		if l == nil {
			return nil, Errorf("ListenerNotFound", "One or more listeners not found")
		}
		out.Rules = append(out.Rules, l.rulesOf(h)...)
		return out, nil
	}
	for _, a := range arns {
		lb := f.lbOfARN(a, "listener-rule")
		var found *elbRuleOut
		if lb != nil {
			for _, l := range lb.listeners {
				for _, r := range l.rulesOf(h) {
					if r.RuleArn == a {
						found = &r
					}
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
