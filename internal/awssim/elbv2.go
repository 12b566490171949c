package awssim

import (
	"cmp"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Elastic Load Balancing v2, as far as vmctl reads it: load balancers,
// target groups, listeners and rules are made by a CloudFormation stack
// (cloudformation_resources.go; a unit test may use the test API below);
// ECS services register their tasks' published ports as targets; each
// target group probes its targets over real HTTP; and each load balancer is
// a local reverse proxy (its DNSName is 127.0.0.1:PORT) that routes a
// request as its served listener does (elbv2_listeners.go): by its rules'
// path patterns, the lowest priority number first, else by the default
// action, and within a target group round robin over the healthy targets —
// or over all of them when none is healthy, as an ALB fails open.

const (
	elbVersion = "2015-12-01"
	elbXMLNS   = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"
)

// LoadBalancer is an application load balancer made by the test API.
type LoadBalancer struct {
	Name    string
	ARN     string
	DNSName string // 127.0.0.1:PORT of its reverse proxy
}

// TargetGroup is a target group made by the test API.
type TargetGroup struct {
	Name string
	ARN  string
}

// TargetGroupSpec says how a target group checks its targets. Probing
// runs at these simulated timings; DescribeTargetGroups reports them in
// whole seconds, at least 1.
type TargetGroupSpec struct {
	Name                string
	Port                int
	HealthPath          string        // "/" by default
	Matcher             string        // HTTP codes: "200" (default), "200-299", "200,204"
	HealthyThreshold    int           // consecutive successes to turn healthy; 2 by default
	UnhealthyThreshold  int           // consecutive failures to turn unhealthy; 2 by default
	Interval            time.Duration // between probes; 200 ms by default
	Timeout             time.Duration // of one probe; 1 s by default
	DeregistrationDelay time.Duration // how long a deregistered target drains; 300 ms by default
}

type loadBalancer struct {
	id, name  string
	created   time.Time
	srv       *httptest.Server
	listeners []*lbListener // elbv2_listeners.go
	next      int           // round robin
	home      arnHome       // its account: a listing shows the caller's own
	scheme    string        // internet-facing unless the template says otherwise
	subnets   []string
	sgs       []string
}

type targetGroup struct {
	id      string
	spec    TargetGroupSpec
	created time.Time
	lbs     []*loadBalancer // those whose listeners refer to it (relink)
	targets []*elbTarget
	gone    bool    // deleted: its prober stops
	home    arnHome // its account: a listing shows the caller's own
	vpc     string
	shown   tgSeconds // the health check as the template gave it, in seconds
}

// tgSeconds is a target group's health check as configured: what
// DescribeTargetGroups reports, while probes run on the simulator's clock.
type tgSeconds struct{ interval, timeout, delay int }

type elbTarget struct {
	port                int
	task                *ecsTask
	state, reason, desc string
	ok, bad             int // consecutive probe results
	drainUntil          time.Time
}

func (lb *loadBalancer) arn(h arnHome) string {
	return h.arn("elasticloadbalancing", "loadbalancer/app/"+lb.name+"/"+lb.id)
}

func (tg *targetGroup) arn(h arnHome) string {
	return h.arn("elasticloadbalancing", "targetgroup/"+tg.spec.Name+"/"+tg.id)
}

// CreateLoadBalancer starts an application load balancer: a reverse proxy
// on 127.0.0.1. Creating one that exists returns it.
func (s *Sim) CreateLoadBalancer(name string) LoadBalancer {
	f := s.compute
	h := s.defaultHome()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, lb := range f.lbs {
		if lb.name == name {
			return LoadBalancer{Name: name, ARN: lb.arn(h), DNSName: lb.srv.Listener.Addr().String()}
		}
	}
	lb := &loadBalancer{id: computeHex(16), name: name, created: time.Now(), home: h}
	lb.srv = httptest.NewServer(s.lbProxy(lb))
	f.lbs[lb.id] = lb
	return LoadBalancer{Name: name, ARN: lb.arn(h), DNSName: lb.srv.Listener.Addr().String()}
}

// CreateTargetGroup makes a target group with the simulator's default
// health check timings. Creating one that exists returns it.
func (s *Sim) CreateTargetGroup(name, healthPath string, port int) TargetGroup {
	return s.CreateTargetGroupWith(TargetGroupSpec{Name: name, HealthPath: healthPath, Port: port})
}

// CreateTargetGroupWith makes a target group as the spec says and starts
// probing its targets.
func (s *Sim) CreateTargetGroupWith(spec TargetGroupSpec) TargetGroup {
	f := s.compute
	h := s.defaultHome()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, tg := range f.tgs {
		if tg.spec.Name == spec.Name {
			return TargetGroup{Name: spec.Name, ARN: tg.arn(h)}
		}
	}
	if spec.HealthPath == "" {
		spec.HealthPath = "/"
	}
	if spec.Matcher == "" {
		spec.Matcher = "200"
	}
	if spec.HealthyThreshold == 0 {
		spec.HealthyThreshold = 2
	}
	if spec.UnhealthyThreshold == 0 {
		spec.UnhealthyThreshold = 2
	}
	if spec.Interval == 0 {
		spec.Interval = 200 * time.Millisecond
	}
	if spec.Timeout == 0 {
		spec.Timeout = time.Second
	}
	if spec.DeregistrationDelay == 0 {
		spec.DeregistrationDelay = 300 * time.Millisecond
	}
	tg := &targetGroup{id: computeHex(16), spec: spec, created: time.Now(), home: h}
	f.tgs[tg.id] = tg
	f.wg.Add(1)
	go s.probeTargets(tg)
	return TargetGroup{Name: spec.Name, ARN: tg.arn(h)}
}

// AttachTargetGroup routes a load balancer's requests to a target group:
// those whose path matches one of the patterns (ALB path patterns, * and
// ?), by a rule whose priority follows every existing one, or with no
// pattern every request no rule took (the default action).
func (s *Sim) AttachTargetGroup(lbARN, tgARN string, pathPatterns ...string) error {
	return s.AttachTargetGroupAt(lbARN, tgARN, 0, pathPatterns...)
}

// AttachTargetGroupAt is AttachTargetGroup with the rule's priority (1 to
// 50000, unique per listener; 0 for the next after the highest), so a test
// can add a rule that outranks ones made before it, as ALB allows.
func (s *Sim) AttachTargetGroupAt(lbARN, tgARN string, priority int, pathPatterns ...string) error {
	f := s.compute
	f.mu.Lock()
	defer f.mu.Unlock()
	lb := f.lbs[arnName(lbARN)]
	if lb == nil {
		return fmt.Errorf("no load balancer %s", lbARN)
	}
	tg := f.targetGroupByARN(tgARN)
	if tg == nil {
		return fmt.Errorf("no target group %s", tgARN)
	}
	l := lb.testListener()
	if len(pathPatterns) == 0 {
		if l.def.typ != "forward" { // the first group attached without patterns takes the default action
			l.def = forwardAction(tg)
		}
		f.relink()
		return nil
	}
	top := 0
	for _, r := range l.rules {
		if r.priority == priority && priority != 0 {
			return fmt.Errorf("priority %d is in use on the listener of %s", priority, lb.name)
		}
		top = max(top, r.priority)
	}
	if priority < 0 || priority > 50000 {
		return fmt.Errorf("priority %d is outside 1 to 50000", priority)
	}
	if err := l.addRule(&lbRule{id: computeHex(16), priority: cmp.Or(priority, top+1), texts: slices.Clone(pathPatterns), action: forwardAction(tg)}); err != nil {
		return err
	}
	f.relink()
	return nil
}

func elbPathPattern(p string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("(?s)^") // * and ? match any character, newline too
	for _, r := range p {
		switch r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

// RegisterTarget registers 127.0.0.1:PORT in a target group, as a target
// outside ECS (an instance, say) would be.
func (s *Sim) RegisterTarget(tgARN string, port int) error {
	f := s.compute
	f.mu.Lock()
	defer f.mu.Unlock()
	tg := f.targetGroupByARN(tgARN)
	if tg == nil {
		return fmt.Errorf("no target group %s", tgARN)
	}
	tg.targets = append(tg.targets, &elbTarget{port: port, state: "initial", reason: "Elb.RegistrationInProgress", desc: "Target registration is in progress"})
	return nil
}

// DeregisterTarget starts draining a target that RegisterTarget registered.
func (s *Sim) DeregisterTarget(tgARN string, port int) error {
	f := s.compute
	f.mu.Lock()
	defer f.mu.Unlock()
	tg := f.targetGroupByARN(tgARN)
	if tg == nil {
		return fmt.Errorf("no target group %s", tgARN)
	}
	for _, tt := range tg.targets {
		if tt.task == nil && tt.port == port && tt.state != "draining" {
			tt.state, tt.reason, tt.desc = "draining", "Target.DeregistrationInProgress", "Target deregistration is in progress"
			tt.drainUntil = time.Now().Add(tg.spec.DeregistrationDelay)
			return nil
		}
	}
	return fmt.Errorf("target 127.0.0.1:%d is not registered in %s", port, tgARN)
}

// targetGroupByARN finds a target group by its ARN's ID, or by name; the
// caller holds the lock.
func (f *compute) targetGroupByARN(ref string) *targetGroup {
	if tg := f.tgs[arnName(ref)]; tg != nil {
		return tg
	}
	for _, tg := range f.tgs {
		if tg.spec.Name == ref {
			return tg
		}
	}
	return nil
}

// ---- targets and ECS

func (t *ecsTask) registered() bool { return len(t.targets) > 0 }

// registerTask registers a running service task's published ports in the
// service's target groups; the caller holds the lock.
func (f *compute) registerTask(svc *ecsService, t *ecsTask) {
	for i, lb := range svc.lbs {
		tg := f.targetGroupByARN(svc.groupOf(t.deployment, i))
		port := t.hostPort(lb.ContainerName, lb.ContainerPort)
		if tg == nil || port == 0 {
			continue
		}
		tt := &elbTarget{port: port, task: t, state: "initial", reason: "Elb.RegistrationInProgress", desc: "Target registration is in progress"}
		tg.targets = append(tg.targets, tt)
		t.targets = append(t.targets, tt)
		svc.event("registered 1 targets in (target-group %s)", tg.arn(svc.home))
	}
}

// deregisterTask starts draining a task's targets and says when they are
// drained; the caller holds the lock.
func (f *compute) deregisterTask(t *ecsTask) time.Time {
	until := time.Now()
	for _, tg := range f.tgs {
		for _, tt := range tg.targets {
			if tt.task != t || tt.state == "draining" {
				continue
			}
			tt.state, tt.reason, tt.desc = "draining", "Target.DeregistrationInProgress", "Target deregistration is in progress"
			tt.drainUntil = time.Now().Add(tg.spec.DeregistrationDelay)
			until = tt.drainUntil
			if t.service != nil {
				t.service.event("has begun draining connections on 1 tasks.")
				t.service.event("deregistered 1 targets in (target-group %s)", tg.arn(t.service.home))
			}
		}
	}
	return until
}

// drainTargets removes targets that have drained; the caller holds the lock.
func (f *compute) drainTargets() {
	now := time.Now()
	for _, tg := range f.tgs {
		tg.targets = slices.DeleteFunc(tg.targets, func(tt *elbTarget) bool {
			return tt.state == "draining" && now.After(tt.drainUntil)
		})
	}
}

// targetState is the state of a task's target in a target group; the
// caller holds the lock.
func (f *compute) targetState(tgARN string, t *ecsTask) string {
	if tt := f.targetOf(tgARN, t); tt != nil {
		return tt.state
	}
	return ""
}

func (f *compute) targetOf(tgARN string, t *ecsTask) *elbTarget {
	tg := f.targetGroupByARN(tgARN)
	if tg == nil {
		return nil
	}
	for _, tt := range tg.targets {
		if tt.task == t {
			return tt
		}
	}
	return nil
}

func (tg *targetGroup) targetReason(t *ecsTask) string {
	for _, tt := range tg.targets {
		if tt.task == t {
			return tt.desc
		}
	}
	return ""
}

// ---- probes

// probe checks a target group's targets every interval until Close.
func (s *Sim) probeTargets(tg *targetGroup) {
	f := s.compute
	defer f.wg.Done()
	// A stack update may change the spec while this runs: read it locked.
	f.mu.Lock()
	timeout, interval := tg.spec.Timeout, tg.spec.Interval
	f.mu.Unlock()
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-tick.C:
		}
		f.mu.Lock()
		if tg.gone {
			f.mu.Unlock()
			return
		}
		var targets []*elbTarget
		for _, tt := range tg.targets {
			if tt.state != "draining" {
				targets = append(targets, tt)
			}
		}
		spec := tg.spec
		f.mu.Unlock()
		type result struct {
			reason, desc string // empty: passed
		}
		results := make([]result, len(targets))
		var wg sync.WaitGroup
		for i, tt := range targets {
			wg.Go(func() {
				results[i].reason, results[i].desc = elbCheck(client, tt.port, spec)
			})
		}
		wg.Wait()
		f.mu.Lock()
		for i, tt := range targets {
			if tt.state == "draining" {
				continue
			}
			r := results[i]
			if r.reason == "" {
				tt.ok, tt.bad = tt.ok+1, 0
				if tt.ok >= spec.HealthyThreshold {
					tt.state, tt.reason, tt.desc = "healthy", "", ""
				} else if tt.state == "initial" {
					tt.reason, tt.desc = "Elb.InitialHealthChecking", "Initial health checks in progress"
				}
				continue
			}
			tt.ok, tt.bad = 0, tt.bad+1
			if tt.bad >= spec.UnhealthyThreshold {
				tt.state, tt.reason, tt.desc = "unhealthy", r.reason, r.desc
			} else if tt.state == "initial" {
				tt.reason, tt.desc = "Elb.InitialHealthChecking", "Initial health checks in progress"
			}
		}
		f.mu.Unlock()
	}
}

// check is one health check, with ELB's reason when it fails.
func elbCheck(client *http.Client, port int, spec TargetGroupSpec) (reason, desc string) {
	resp, err := client.Get("http://127.0.0.1:" + strconv.Itoa(port) + spec.HealthPath)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return "Target.Timeout", "Request timed out"
		}
		return "Target.FailedHealthChecks", "Health checks failed"
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if !elbCodeMatches(spec.Matcher, resp.StatusCode) {
		return "Target.ResponseCodeMismatch", fmt.Sprintf("Health checks failed with these codes: [%d]", resp.StatusCode)
	}
	return "", ""
}

// codeMatches reads an ELB matcher: codes and ranges separated by commas.
func elbCodeMatches(matcher string, code int) bool {
	for _, part := range strings.Split(matcher, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		l, err1 := strconv.Atoi(lo)
		h := l
		var err2 error
		if isRange {
			h, err2 = strconv.Atoi(hi)
		}
		if err1 == nil && err2 == nil && code >= l && code <= h {
			return true
		}
	}
	return false
}

// ---- the load balancer's proxy

func (s *Sim) lbProxy(lb *loadBalancer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := s.compute
		f.mu.Lock()
		act, port := lb.route(r.URL.Path)
		f.mu.Unlock()
		switch {
		case act.typ == "redirect":
			http.Redirect(w, r, act.redirectURL(r), act.redirectCode())
			return
		case act.typ == "fixed-response":
			w.Header().Set("Content-Type", cmp.Or(act.contentType, "text/plain"))
			w.WriteHeader(act.fixedCode())
			_, _ = io.WriteString(w, act.body)
			return
		case port == 0:
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n</body>\r\n</html>\r\n")
			return
		}
		u := &url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(port)}
		p := &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(u); pr.SetXForwarded() },
			ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(http.StatusBadGateway)
				_, _ = io.WriteString(w, "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n")
			},
		}
		p.ServeHTTP(w, r)
	})
}

// route decides what the served listener does with a path: the rules in
// priority order, the first that matches, else the default action; for a
// forward, the target port (0 for none) round robin over the healthy
// targets, or over all of them when none is healthy, as an ALB fails open.
// The caller holds the lock.
func (lb *loadBalancer) route(path string) (lbAction, int) {
	l := lb.served()
	if l == nil {
		return lbAction{}, 0
	}
	act := l.def
	for _, rule := range l.rules {
		if slices.ContainsFunc(rule.patterns, func(p *regexp.Regexp) bool { return p.MatchString(path) }) {
			act = rule.action
			break
		}
	}
	if act.typ != "forward" {
		return act, 0
	}
	tg := act.pickGroup(lb.next)
	if tg == nil {
		return act, 0
	}
	var healthy, others []*elbTarget
	for _, tt := range tg.targets {
		switch tt.state {
		case "healthy":
			healthy = append(healthy, tt)
		case "unhealthy", "initial":
			others = append(others, tt)
		}
	}
	pool := healthy
	if len(pool) == 0 {
		pool = others
	}
	if len(pool) == 0 {
		return act, 0
	}
	lb.next++
	return act, pool[lb.next%len(pool)].port
}

// ---- the query API

// elbList is a query-protocol list: <Name><member>…</member></Name>, the
// element present even when empty.
type elbList[T any] []T

func (l elbList[T]) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	if err := e.EncodeToken(start); err != nil {
		return err
	}
	for _, v := range l {
		if err := e.EncodeElement(v, xml.StartElement{Name: xml.Name{Local: "member"}}); err != nil {
			return err
		}
	}
	return e.EncodeToken(start.End())
}

// elbEnvelope is <OpResponse xmlns=…><OpResult>…</OpResult><ResponseMetadata/>.
type elbEnvelope struct {
	op        string
	result    any
	requestID string
}

func (env elbEnvelope) MarshalXML(e *xml.Encoder, _ xml.StartElement) error {
	start := xml.StartElement{Name: xml.Name{Space: elbXMLNS, Local: env.op + "Response"}}
	if err := e.EncodeToken(start); err != nil {
		return err
	}
	if err := e.EncodeElement(env.result, xml.StartElement{Name: xml.Name{Local: env.op + "Result"}}); err != nil {
		return err
	}
	if err := e.EncodeElement(ResponseMetadata{RequestID: env.requestID}, xml.StartElement{Name: xml.Name{Local: "ResponseMetadata"}}); err != nil {
		return err
	}
	return e.EncodeToken(start.End())
}

// elbMembers reads a query list: Name.member.1, Name.member.2, …
func elbMembers(form url.Values, name string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := form[name+".member."+strconv.Itoa(i)]
		if !ok {
			return out
		}
		out = append(out, v[0])
	}
}

func elbTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

type elbLoadBalancerOut struct {
	LoadBalancerArn       string
	DNSName               string
	CanonicalHostedZoneId string
	CreatedTime           string
	LoadBalancerName      string
	Scheme                string
	VpcId                 string
	State                 struct{ Code string }
	Type                  string
	AvailabilityZones     elbList[elbZone]
	SecurityGroups        elbList[string]
	IpAddressType         string
}

type elbZone struct {
	ZoneName string
	SubnetId string
}

type elbTargetGroupOut struct {
	TargetGroupArn             string
	TargetGroupName            string
	Protocol                   string
	Port                       int
	VpcId                      string
	HealthCheckProtocol        string
	HealthCheckPort            string
	HealthCheckEnabled         bool
	HealthCheckIntervalSeconds int
	HealthCheckTimeoutSeconds  int
	HealthyThresholdCount      int
	UnhealthyThresholdCount    int
	HealthCheckPath            string
	Matcher                    struct{ HttpCode string }
	LoadBalancerArns           elbList[string]
	TargetType                 string
	ProtocolVersion            string
	IpAddressType              string
}

type elbTargetHealthOut struct {
	Target struct {
		Id               string
		Port             int
		AvailabilityZone string
	}
	HealthCheckPort string
	TargetHealth    struct {
		State       string
		Reason      string `xml:",omitempty"`
		Description string `xml:",omitempty"`
	}
}

func elbNotFound(code, kind string, missing []string) *Error {
	return Errorf(code, "%s '[%s]' not found", kind, strings.Join(missing, ", "))
}

func (s *Sim) elbv2(r *http.Request, op string) (any, error) {
	h, err := s.computeCaller(r, true)
	if err != nil {
		return nil, err
	}
	var result any
	switch op {
	case "DescribeLoadBalancers":
		result, err = s.describeLoadBalancers(h, r.PostForm)
	case "DescribeTargetGroups":
		result, err = s.describeTargetGroups(h, r.PostForm)
	case "DescribeTargetHealth":
		result, err = s.describeTargetHealth(h, r.PostForm)
	case "DescribeListeners": // elbv2_listeners.go
		result, err = s.describeListeners(h, r.PostForm)
	case "DescribeRules":
		result, err = s.describeRules(h, r.PostForm)
	default:
		return nil, InvalidAction(op, elbVersion)
	}
	if err != nil {
		return nil, err
	}
	return elbEnvelope{op: op, result: result, requestID: s.RequestID()}, nil
}

func elbSeconds(d time.Duration) int { return max(1, int((d+time.Second-1)/time.Second)) }

func (s *Sim) describeLoadBalancers(h arnHome, form url.Values) (any, error) {
	arns, names := elbMembers(form, "LoadBalancerArns"), elbMembers(form, "Names")
	if len(arns) > 0 && len(names) > 0 {
		return nil, Errorf("ValidationError", "Load balancer names and load balancer ARNs cannot be specified at the same time")
	}
	f := s.compute
	f.mu.Lock()
	defer f.mu.Unlock()
	var lbs []*loadBalancer
	var missing []string
	switch {
	case len(arns) > 0:
		for _, a := range arns {
			if lb := f.lbs[arnName(a)]; lb != nil {
				lbs = append(lbs, lb)
			} else {
				missing = append(missing, a)
			}
		}
		if missing != nil {
			return nil, Errorf("LoadBalancerNotFound", "One or more load balancers not found")
		}
	case len(names) > 0:
		all := slices.Collect(maps.Values(f.lbs))
		for _, n := range names {
			i := slices.IndexFunc(all, func(lb *loadBalancer) bool { return lb.name == n })
			if i < 0 {
				missing = append(missing, n)
				continue
			}
			lbs = append(lbs, all[i])
		}
		if missing != nil {
			return nil, elbNotFound("LoadBalancerNotFound", "Load balancers", missing)
		}
	default:
		for _, lb := range f.lbs {
			if lb.home.account == h.account {
				lbs = append(lbs, lb)
			}
		}
		sort.Slice(lbs, func(i, j int) bool { return lbs[i].name < lbs[j].name })
	}
	out := struct {
		LoadBalancers elbList[elbLoadBalancerOut]
	}{LoadBalancers: elbList[elbLoadBalancerOut]{}}
	for _, lb := range lbs {
		o := elbLoadBalancerOut{
			LoadBalancerArn: lb.arn(h), DNSName: lb.srv.Listener.Addr().String(), CanonicalHostedZoneId: "Z14GRHDCWA56QT",
			CreatedTime: elbTime(lb.created), LoadBalancerName: lb.name, Scheme: cmp.Or(lb.scheme, "internet-facing"), VpcId: "vpc-awssim",
			Type: "application", IpAddressType: "ipv4",
			AvailabilityZones: elbList[elbZone]{{ZoneName: h.region + "a", SubnetId: "subnet-awssima"}, {ZoneName: h.region + "c", SubnetId: "subnet-awssimc"}},
			SecurityGroups:    elbList[string]{"sg-awssim"},
		}
		if len(lb.subnets) > 0 {
			o.AvailabilityZones = elbList[elbZone]{}
			for i, sn := range lb.subnets {
				o.AvailabilityZones = append(o.AvailabilityZones, elbZone{ZoneName: h.region + string("acd"[i%3]), SubnetId: sn})
			}
		}
		if len(lb.sgs) > 0 {
			o.SecurityGroups = elbList[string](slices.Clone(lb.sgs))
		}
		o.State.Code = "active"
		out.LoadBalancers = append(out.LoadBalancers, o)
	}
	return out, nil
}

func (s *Sim) describeTargetGroups(h arnHome, form url.Values) (any, error) {
	lbARN := form.Get("LoadBalancerArn")
	arns, names := elbMembers(form, "TargetGroupArns"), elbMembers(form, "Names")
	if (lbARN != "") && (len(arns) > 0 || len(names) > 0) || len(arns) > 0 && len(names) > 0 {
		return nil, Errorf("ValidationError", "Load balancer ARN, target group ARNs and target group names cannot be specified at the same time")
	}
	f := s.compute
	f.mu.Lock()
	defer f.mu.Unlock()
	var tgs []*targetGroup
	var missing []string
	switch {
	case lbARN != "":
		lb := f.lbs[arnName(lbARN)]
		if lb == nil {
			return nil, Errorf("LoadBalancerNotFound", "One or more load balancers not found")
		}
		for _, tg := range f.tgs {
			if slices.Contains(tg.lbs, lb) {
				tgs = append(tgs, tg)
			}
		}
	case len(arns) > 0:
		for _, a := range arns {
			if tg := f.tgs[arnName(a)]; tg != nil {
				tgs = append(tgs, tg)
			} else {
				missing = append(missing, a)
			}
		}
		if missing != nil {
			return nil, elbNotFound("TargetGroupNotFound", "Target groups", missing)
		}
	case len(names) > 0:
		all := slices.Collect(maps.Values(f.tgs))
		for _, n := range names {
			i := slices.IndexFunc(all, func(tg *targetGroup) bool { return tg.spec.Name == n })
			if i < 0 {
				missing = append(missing, n)
				continue
			}
			tgs = append(tgs, all[i])
		}
		if missing != nil {
			return nil, elbNotFound("TargetGroupNotFound", "Target groups", missing)
		}
	default:
		for _, tg := range f.tgs {
			if tg.home.account == h.account {
				tgs = append(tgs, tg)
			}
		}
	}
	if len(names) == 0 && len(arns) == 0 {
		sort.Slice(tgs, func(i, j int) bool { return tgs[i].spec.Name < tgs[j].spec.Name })
	}
	out := struct {
		TargetGroups elbList[elbTargetGroupOut]
	}{TargetGroups: elbList[elbTargetGroupOut]{}}
	for _, tg := range tgs {
		o := elbTargetGroupOut{
			TargetGroupArn: tg.arn(h), TargetGroupName: tg.spec.Name, Protocol: "HTTP", Port: tg.spec.Port, VpcId: cmp.Or(tg.vpc, "vpc-awssim"),
			HealthCheckProtocol: "HTTP", HealthCheckPort: "traffic-port", HealthCheckEnabled: true,
			HealthCheckIntervalSeconds: cmp.Or(tg.shown.interval, elbSeconds(tg.spec.Interval)), HealthCheckTimeoutSeconds: cmp.Or(tg.shown.timeout, elbSeconds(tg.spec.Timeout)),
			HealthyThresholdCount: tg.spec.HealthyThreshold, UnhealthyThresholdCount: tg.spec.UnhealthyThreshold,
			HealthCheckPath: tg.spec.HealthPath, LoadBalancerArns: elbList[string]{},
			TargetType: "ip", ProtocolVersion: "HTTP1", IpAddressType: "ipv4",
		}
		o.Matcher.HttpCode = tg.spec.Matcher
		for _, lb := range tg.lbs {
			o.LoadBalancerArns = append(o.LoadBalancerArns, lb.arn(h))
		}
		out.TargetGroups = append(out.TargetGroups, o)
	}
	return out, nil
}

func (s *Sim) describeTargetHealth(h arnHome, form url.Values) (any, error) {
	ref := form.Get("TargetGroupArn")
	f := s.compute
	f.mu.Lock()
	defer f.mu.Unlock()
	tg := f.tgs[arnName(ref)]
	if tg == nil {
		return nil, elbNotFound("TargetGroupNotFound", "Target groups", []string{ref})
	}
	out := struct {
		TargetHealthDescriptions elbList[elbTargetHealthOut]
	}{TargetHealthDescriptions: elbList[elbTargetHealthOut]{}}
	describe := func(tt *elbTarget) elbTargetHealthOut {
		var o elbTargetHealthOut
		o.Target.Id, o.Target.Port, o.HealthCheckPort = "127.0.0.1", tt.port, strconv.Itoa(tt.port)
		o.Target.AvailabilityZone = h.region + "a"
		o.TargetHealth.State, o.TargetHealth.Reason, o.TargetHealth.Description = tt.state, tt.reason, tt.desc
		if len(tg.lbs) == 0 {
			o.TargetHealth.State, o.TargetHealth.Reason, o.TargetHealth.Description = "unused", "Target.NotInUse", "Target group is not configured to receive traffic from the load balancer"
		}
		return o
	}
	asked := false
	for i := 1; ; i++ {
		id, ok := form[fmt.Sprintf("Targets.member.%d.Id", i)]
		if !ok {
			break
		}
		asked = true
		port, _ := strconv.Atoi(form.Get(fmt.Sprintf("Targets.member.%d.Port", i)))
		var found *elbTarget
		for _, tt := range tg.targets {
			if tt.port == port && (id[0] == "127.0.0.1" || id[0] == "") {
				found = tt
			}
		}
		if found == nil {
			var o elbTargetHealthOut
			o.Target.Id, o.Target.Port, o.HealthCheckPort = id[0], port, strconv.Itoa(port)
			o.TargetHealth.State, o.TargetHealth.Reason, o.TargetHealth.Description = "unused", "Target.NotRegistered", "Target is not registered to the target group"
			out.TargetHealthDescriptions = append(out.TargetHealthDescriptions, o)
			continue
		}
		out.TargetHealthDescriptions = append(out.TargetHealthDescriptions, describe(found))
	}
	if !asked {
		for _, tt := range tg.targets {
			out.TargetHealthDescriptions = append(out.TargetHealthDescriptions, describe(tt))
		}
	}
	return out, nil
}
