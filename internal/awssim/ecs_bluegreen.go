package awssim

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ECS-native blue/green (deploymentConfiguration.strategy BLUE_GREEN). A
// service's load balancer names, in advancedConfiguration, an alternate
// target group and the production listener rule. The first deployment of a
// service has nothing to replace and rolls out as a rolling one would, in
// the group the production rule forwards to. Every later one walks ECS's
// lifecycle stages, one scheduler pass at least each:
//
//	SCALE_UP          the green tasks start in the group the rule does not forward to
//	POST_SCALE_UP     they are all healthy there; blue serves all production traffic
//	TEST_TRAFFIC_SHIFT, POST_TEST_TRAFFIC_SHIFT
//	                  no test listener rule is modelled: nothing moves
//	PRODUCTION_TRAFFIC_SHIFT, POST_PRODUCTION_TRAFFIC_SHIFT
//	                  the production rule's weights move to green's group
//	BAKE_TIME         bakeTimeInMinutes on the simulated clock; blue keeps running
//	CLEAN_UP          blue's tasks drain and stop; green is COMPLETED
//
// Until CLEAN_UP, a failure — the circuit breaker's threshold of failed
// tasks, or a CloudWatch alarm named in deploymentConfiguration.alarms in
// the ALARM state (SetAlarmState) — moves the rule back to blue, stops the
// green tasks and makes blue's deployment PRIMARY again: the deployment is
// FAILED and its service deployment ROLLBACK_SUCCESSFUL. awssim rolls a
// failed blue/green deployment back even without the rollback option: the
// blue tasks are still there to take the traffic, and nothing else is.
// ListServiceDeployments and DescribeServiceDeployments report the stages.

// defaultBakeMinute is how long a simulated minute of bake time lasts:
// prod's 10-minute bake takes 2 s.
const defaultBakeMinute = 200 * time.Millisecond

// SetBakeMinute sets how long one minute of a blue/green deployment's
// bake time lasts in the simulation; 200 ms by default.
func (s *Sim) SetBakeMinute(d time.Duration) {
	s.compute.mu.Lock()
	defer s.compute.mu.Unlock()
	s.compute.bakeMinute = d
}

// SetAlarmState sets a CloudWatch alarm's state (OK, ALARM or
// INSUFFICIENT_DATA) as far as ECS deployments see it: awssim models no
// CloudWatch metrics, so a test fires a deployment alarm with this.
func (s *Sim) SetAlarmState(name, state string) {
	s.compute.mu.Lock()
	defer s.compute.mu.Unlock()
	if s.compute.alarms == nil {
		s.compute.alarms = map[string]string{}
	}
	s.compute.alarms[name] = state
}

// advancedConfiguration is a load balancer's blue/green settings.
type advancedConfiguration struct {
	AlternateTargetGroupArn string `json:"alternateTargetGroupArn"`
	ProductionListenerRule  string `json:"productionListenerRule"`
	TestListenerRule        string `json:"testListenerRule"`
	RoleArn                 string `json:"roleArn"`
}

func (lb ecsLoadBalancer) advanced() *advancedConfiguration {
	if len(lb.AdvancedConfiguration) == 0 || string(lb.AdvancedConfiguration) == "null" {
		return nil
	}
	var ac advancedConfiguration
	if json.Unmarshal(lb.AdvancedConfiguration, &ac) != nil {
		return nil
	}
	return &ac
}

// checkAdvanced validates a load balancer's blue/green settings as ECS
// does; the caller holds the lock.
func (f *compute) checkAdvanced(lb ecsLoadBalancer) error {
	if len(lb.AdvancedConfiguration) == 0 || string(lb.AdvancedConfiguration) == "null" {
		return nil
	}
	var ac advancedConfiguration
	if err := json.Unmarshal(lb.AdvancedConfiguration, &ac); err != nil {
		return Errorf("SerializationException", "%v", err)
	}
	if ac.AlternateTargetGroupArn == "" || ac.ProductionListenerRule == "" || ac.RoleArn == "" {
		return ecsInvalid("advancedConfiguration requires alternateTargetGroupArn, productionListenerRule and roleArn.")
	}
	if f.targetGroupByARN(ac.AlternateTargetGroupArn) == nil {
		return ecsInvalid("The alternate target group %s does not exist.", ac.AlternateTargetGroupArn)
	}
	if f.ruleAction(ac.ProductionListenerRule) == nil {
		return ecsInvalid("The production listener rule %s does not exist.", ac.ProductionListenerRule)
	}
	if ac.TestListenerRule != "" && f.ruleAction(ac.TestListenerRule) == nil {
		return ecsInvalid("The test listener rule %s does not exist.", ac.TestListenerRule)
	}
	return nil
}

// ruleAction is the action of a listener rule given by ARN, the default
// rule's too (its ARN ends in default-…); the caller holds the lock.
func (f *compute) ruleAction(arn string) *lbAction {
	if _, r := f.ruleByARN(arn); r != nil {
		return &r.action
	}
	lb := f.lbOfARN(arn, "listener-rule")
	if lb == nil {
		return nil
	}
	for _, l := range lb.listeners {
		if l.ruleARN(lb.home, nil) == arn || strings.HasSuffix(arn, "/"+l.id+"/default-"+l.id[:8]) {
			return &l.def
		}
	}
	return nil
}

// productionGroup is the group of a blue/green load balancer that its
// production rule forwards to (the heavier of the two); the caller holds
// the lock.
func (f *compute) productionGroup(lb ecsLoadBalancer, ac *advancedConfiguration) string {
	act := f.ruleAction(ac.ProductionListenerRule)
	main, alt := f.targetGroupByARN(lb.TargetGroupArn), f.targetGroupByARN(ac.AlternateTargetGroupArn)
	if act == nil || main == nil || alt == nil {
		return lb.TargetGroupArn
	}
	weight := func(tg *targetGroup) int {
		for _, w := range act.tgs {
			if w.tg == tg {
				return w.weight
			}
		}
		return -1
	}
	if weight(alt) > weight(main) {
		return ac.AlternateTargetGroupArn
	}
	return lb.TargetGroupArn
}

// groupOf is the target group that a deployment's tasks register in for
// the service's i-th load balancer; the caller holds the lock.
func (svc *ecsService) groupOf(d *ecsDeployment, i int) string {
	if d != nil && i < len(d.groups) && d.groups[i] != "" {
		return d.groups[i]
	}
	return svc.lbs[i].TargetGroupArn
}

// assignGroups decides, on a deployment's first scheduler pass, where its
// tasks register and whether it runs as blue/green: a BLUE_GREEN service's
// deployment with a blue set still running goes to the groups production
// traffic does not reach; the caller holds the lock.
func (f *compute) assignGroups(svc *ecsService, p *ecsDeployment) {
	p.groups = make([]string, len(svc.lbs))
	blue := len(svc.deployments) > 1 && slices.ContainsFunc(svc.deployments[1:], func(d *ecsDeployment) bool { return len(svc.tasks(d)) > 0 })
	for i, lb := range svc.lbs {
		p.groups[i] = lb.TargetGroupArn
		ac := lb.advanced()
		if svc.config.Strategy != "BLUE_GREEN" || ac == nil {
			continue
		}
		prod := f.productionGroup(lb, ac)
		p.groups[i] = prod
		if blue {
			p.bg = true
			p.groups[i] = lb.TargetGroupArn
			if prod == lb.TargetGroupArn {
				p.groups[i] = ac.AlternateTargetGroupArn
			}
		}
	}
	if p.bg {
		p.stage = "SCALE_UP"
		svc.event("(deployment %s) blue/green: starting the green tasks behind the target groups without production traffic.", p.id)
	}
}

// shiftProduction rewrites each production listener rule to forward all
// its traffic to the deployment's groups; the caller holds the lock.
func (f *compute) shiftProduction(svc *ecsService, d *ecsDeployment) {
	for i, lb := range svc.lbs {
		ac := lb.advanced()
		if ac == nil {
			continue
		}
		act := f.ruleAction(ac.ProductionListenerRule)
		to := f.targetGroupByARN(svc.groupOf(d, i))
		if act == nil || to == nil {
			continue
		}
		pair := []*targetGroup{f.targetGroupByARN(lb.TargetGroupArn), f.targetGroupByARN(ac.AlternateTargetGroupArn)}
		found := false
		for j := range act.tgs {
			switch {
			case act.tgs[j].tg == to:
				act.tgs[j].weight, found = 100, true
			case slices.Contains(pair, act.tgs[j].tg):
				act.tgs[j].weight = 0
			}
		}
		if !found {
			act.tgs = append(act.tgs, weightedGroup{tg: to, weight: 100})
		}
		act.typ = "forward"
		svc.event("(deployment %s) production listener rule forwards to (target-group %s).", d.id, to.arn(svc.home))
	}
	f.relink()
}

// blueGreenFailure says why a blue/green deployment fails now, or "";
// the caller holds the lock.
func (f *compute) blueGreenFailure(svc *ecsService, p *ecsDeployment) string {
	if cb := svc.config.DeploymentCircuitBreaker; cb != nil && cb.Enable && p.failed >= f.threshold(svc, p) {
		return "ECS deployment circuit breaker: tasks failed to start."
	}
	var al deploymentAlarms
	if len(svc.config.Alarms) > 0 && json.Unmarshal(svc.config.Alarms, &al) == nil && al.Enable {
		for _, name := range al.AlarmNames {
			if f.alarms[name] == "ALARM" {
				p.triggered = append(p.triggered, name)
			}
		}
		if len(p.triggered) > 0 {
			return fmt.Sprintf("ECS deployment alarm: %s in ALARM state.", strings.Join(p.triggered, ", "))
		}
	}
	return ""
}

// deploymentAlarms is deploymentConfiguration.alarms.
type deploymentAlarms struct {
	AlarmNames []string `json:"alarmNames"`
	Enable     bool     `json:"enable"`
	Rollback   bool     `json:"rollback"`
}

// scheduleBlueGreen is one scheduler pass over a blue/green deployment
// with a blue set; the caller holds the lock.
func (s *Sim) scheduleBlueGreen(svc *ecsService, p *ecsDeployment) {
	f := s.compute
	now := time.Now()
	if p.rollout != "IN_PROGRESS" {
		return
	}
	if why := f.blueGreenFailure(svc, p); why != "" && p.stage != "CLEAN_UP" {
		s.rollBackBlueGreen(svc, p, why)
		return
	}
	if p.stage != "CLEAN_UP" {
		// Green keeps its desired count: failed tasks are replaced, at ECS's throttled pace.
		if n := p.desired - len(svc.tasks(p)); n > 0 && !now.Before(p.holdUntil) {
			s.launchFor(svc, p, n)
		}
	}
	next := func(stage string) {
		p.stage, p.updated = stage, now
		p.reason = "ECS deployment " + p.id + " in progress: " + stage + "."
	}
	switch p.stage {
	case "SCALE_UP":
		healthy := 0
		for _, t := range svc.tasks(p) {
			if f.healthy(svc, t) {
				healthy++
			}
		}
		if healthy >= p.desired {
			next("POST_SCALE_UP")
		}
	case "POST_SCALE_UP":
		next("TEST_TRAFFIC_SHIFT")
	case "TEST_TRAFFIC_SHIFT":
		next("POST_TEST_TRAFFIC_SHIFT")
	case "POST_TEST_TRAFFIC_SHIFT":
		next("PRODUCTION_TRAFFIC_SHIFT")
		f.shiftProduction(svc, p)
		p.shifted = true
	case "PRODUCTION_TRAFFIC_SHIFT":
		next("POST_PRODUCTION_TRAFFIC_SHIFT")
	case "POST_PRODUCTION_TRAFFIC_SHIFT":
		next("BAKE_TIME")
		bake := 0
		if b := svc.config.BakeTimeInMinutes; b != nil {
			bake = *b
		}
		p.bakeUntil = now.Add(time.Duration(bake) * f.bakeMinute)
		svc.event("(deployment %s) baking for %d minutes: the blue tasks keep running to take the traffic back.", p.id, bake)
	case "BAKE_TIME":
		if now.Before(p.bakeUntil) {
			return
		}
		next("CLEAN_UP")
		var ids []string
		for _, d := range svc.deployments[1:] {
			for _, t := range svc.tasks(d) {
				f.beginStop(t, "ServiceSchedulerInitiated", "Scaling activity initiated by (deployment "+p.id+")")
				ids = append(ids, t.id)
			}
		}
		svc.stopped(ids)
	case "CLEAN_UP":
		var keep []*ecsDeployment
		for _, d := range svc.deployments[1:] {
			if svc.cluster.hasTask(func(t *ecsTask) bool { return t.deployment == d && t.last != "STOPPED" }) {
				keep = append(keep, d)
			}
		}
		svc.deployments = append([]*ecsDeployment{p}, keep...)
		if len(keep) == 0 {
			p.rollout, p.updated, p.finished = "COMPLETED", now, now
			p.reason = "ECS deployment " + p.id + " completed."
			svc.lastGood = p
			svc.event("(deployment %s) deployment completed.", p.id)
			svc.event("has reached a steady state.")
		}
	}
}

// rollBackBlueGreen undoes a failed blue/green deployment: production
// traffic back to blue, green stopped, blue PRIMARY again; the caller
// holds the lock.
func (s *Sim) rollBackBlueGreen(svc *ecsService, p *ecsDeployment, why string) {
	f := s.compute
	now := time.Now()
	var blue *ecsDeployment
	for _, d := range svc.deployments[1:] {
		if len(svc.tasks(d)) > 0 {
			blue = d
			break
		}
	}
	if blue == nil {
		p.rollout, p.updated, p.reason, p.finished = "FAILED", now, why, now
		return
	}
	if p.shifted {
		f.shiftProduction(svc, blue)
	}
	p.rollout, p.reason, p.status, p.updated, p.finished = "FAILED", why, "ACTIVE", now, now
	p.rolledBack, p.rollbackTo = now, blue
	svc.event("(deployment %s) deployment failed: %s", p.id, strings.TrimPrefix(why, "ECS deployment "))
	svc.event("rolling back to deployment %s: production traffic stays on its tasks.", blue.id)
	var ids []string
	for _, t := range svc.tasks(p) {
		f.beginStop(t, "ServiceSchedulerInitiated", "Scaling activity initiated by (deployment "+blue.id+")")
		ids = append(ids, t.id)
	}
	svc.stopped(ids)
	blue.status, blue.updated = "PRIMARY", now
	svc.def = blue.def
	rest := slices.DeleteFunc(slices.Clone(svc.deployments), func(d *ecsDeployment) bool { return d == blue })
	svc.deployments = append([]*ecsDeployment{blue}, rest...)
}

// ---- ListServiceDeployments, DescribeServiceDeployments

func (svc *ecsService) deploymentARN(d *ecsDeployment) string {
	return svc.home.arn("ecs", "service-deployment/"+svc.cluster.name+"/"+svc.name+"/"+strings.TrimPrefix(d.id, "ecs-svc/"))
}

func (svc *ecsService) revisionARN(d *ecsDeployment) string {
	return svc.home.arn("ecs", "service-revision/"+svc.cluster.name+"/"+svc.name+"/"+strings.TrimPrefix(d.id, "ecs-svc/"))
}

// deploymentStatus is a deployment's ServiceDeployment status.
func (d *ecsDeployment) deploymentStatus() string {
	switch {
	case d.rollout == "COMPLETED":
		return "SUCCESSFUL"
	case d.rollout == "FAILED" && d.rollbackTo != nil:
		return "ROLLBACK_SUCCESSFUL"
	case d.rollout == "FAILED":
		return "STOPPED"
	}
	return "IN_PROGRESS"
}

// lifecycleStage is the stage a deployment reports: its blue/green stage,
// else SCALE_UP while it rolls and CLEAN_UP once it is over.
func (d *ecsDeployment) lifecycleStage() string {
	switch {
	case d.stage != "":
		return d.stage
	case d.rollout == "IN_PROGRESS":
		return "SCALE_UP"
	}
	return "CLEAN_UP"
}

type serviceRevisionSummary struct {
	Arn                              string `json:"arn"`
	RequestedTaskCount               int    `json:"requestedTaskCount"`
	RunningTaskCount                 int    `json:"runningTaskCount"`
	PendingTaskCount                 int    `json:"pendingTaskCount"`
	RequestedProductionTrafficWeight *int   `json:"requestedProductionTrafficWeight,omitempty"`
}

func (svc *ecsService) revisionSummary(d *ecsDeployment, weight int) serviceRevisionSummary {
	r := serviceRevisionSummary{Arn: svc.revisionARN(d), RequestedTaskCount: d.desired}
	for _, t := range svc.tasks(d) {
		if t.last == "RUNNING" {
			r.RunningTaskCount++
		} else {
			r.PendingTaskCount++
		}
	}
	if d.bg {
		r.RequestedProductionTrafficWeight = &weight
	}
	return r
}

func (s *Sim) serviceDeploymentOut(svc *ecsService, d *ecsDeployment) map[string]any {
	f := s.compute
	green := 0
	if d.shifted && d.rolledBack.IsZero() {
		green = 100
	}
	m := map[string]any{
		"serviceDeploymentArn":    svc.deploymentARN(d),
		"serviceArn":              svc.arn(),
		"clusterArn":              svc.cluster.arn(svc.home),
		"createdAt":               epochOf(d.created),
		"startedAt":               epochOf(d.created),
		"status":                  d.deploymentStatus(),
		"statusReason":            d.reason,
		"lifecycleStage":          d.lifecycleStage(),
		"targetServiceRevision":   svc.revisionSummary(d, green),
		"deploymentConfiguration": svc.config,
	}
	switch {
	case d.deploymentStatus() == "STOPPED":
		m["stoppedAt"] = epochOf(d.finished)
	case !d.finished.IsZero():
		m["finishedAt"] = epochOf(d.finished)
	}
	var sources []serviceRevisionSummary
	for _, o := range svc.deployments {
		if o != d && o.created.Before(d.created) {
			sources = append(sources, svc.revisionSummary(o, 100-green))
		}
	}
	if d.rollbackTo != nil && !slices.ContainsFunc(sources, func(r serviceRevisionSummary) bool { return r.Arn == svc.revisionARN(d.rollbackTo) }) {
		sources = append(sources, svc.revisionSummary(d.rollbackTo, 100))
	}
	if sources == nil {
		sources = []serviceRevisionSummary{}
	}
	m["sourceServiceRevisions"] = sources
	if d.rollbackTo != nil {
		m["rollback"] = map[string]any{"reason": d.reason, "startedAt": epochOf(d.rolledBack), "serviceRevisionArn": svc.revisionARN(d.rollbackTo)}
	}
	if cb := svc.config.DeploymentCircuitBreaker; cb != nil {
		st := "DISABLED"
		switch {
		case cb.Enable && d.failed >= f.threshold(svc, d):
			st = "TRIGGERED"
		case cb.Enable && d.rollout == "IN_PROGRESS":
			st = "MONITORING"
		case cb.Enable:
			st = "MONITORING_COMPLETE"
		}
		m["deploymentCircuitBreaker"] = map[string]any{"status": st, "failureCount": d.failed, "threshold": f.threshold(svc, d)}
	}
	var al deploymentAlarms
	if len(svc.config.Alarms) > 0 && json.Unmarshal(svc.config.Alarms, &al) == nil {
		st := "DISABLED"
		switch {
		case !al.Enable:
		case len(d.triggered) > 0:
			st = "TRIGGERED"
		case d.rollout == "IN_PROGRESS":
			st = "MONITORING"
		default:
			st = "MONITORING_COMPLETE"
		}
		m["alarms"] = map[string]any{"status": st, "alarmNames": al.AlarmNames, "triggeredAlarmNames": append([]string{}, d.triggered...)}
	}
	return m
}

func (s *Sim) listServiceDeployments(_ arnHome, body []byte) (any, error) {
	var in struct {
		Cluster    string   `json:"cluster"`
		Service    string   `json:"service"`
		Status     []string `json:"status"`
		NextToken  string   `json:"nextToken"`
		MaxResults *int     `json:"maxResults"`
	}
	if err := computeDecode(body, &in); err != nil {
		return nil, err
	}
	if in.Service == "" {
		return nil, ecsInvalid("service must not be empty.")
	}
	f := s.compute
	f.mu.Lock()
	defer f.mu.Unlock()
	_, svc, err := f.findService(in.Cluster, in.Service)
	if err != nil {
		return nil, err
	}
	var arns []string
	byARN := map[string]*ecsDeployment{}
	for _, d := range svc.history { // newest first, as ECS lists them
		if len(in.Status) > 0 && !slices.Contains(in.Status, d.deploymentStatus()) {
			continue
		}
		arns = append(arns, svc.deploymentARN(d))
		byARN[svc.deploymentARN(d)] = d
	}
	page, next, err := ecsPage(arns, in.NextToken, in.MaxResults, 20)
	if err != nil {
		return nil, err
	}
	out := []map[string]any{}
	for _, a := range page {
		d := byARN[a]
		b := map[string]any{
			"serviceDeploymentArn": a, "serviceArn": svc.arn(), "clusterArn": svc.cluster.arn(svc.home),
			"createdAt": epochOf(d.created), "startedAt": epochOf(d.created), "status": d.deploymentStatus(),
			"statusReason": d.reason, "targetServiceRevisionArn": svc.revisionARN(d),
		}
		if !d.finished.IsZero() {
			b["finishedAt"] = epochOf(d.finished)
		}
		out = append(out, b)
	}
	return struct {
		ServiceDeployments []map[string]any `json:"serviceDeployments"`
		NextToken          string           `json:"nextToken,omitempty"`
	}{out, next}, nil
}

func (s *Sim) describeServiceDeployments(_ arnHome, body []byte) (any, error) {
	var in struct {
		ServiceDeploymentArns []string `json:"serviceDeploymentArns"`
	}
	if err := computeDecode(body, &in); err != nil {
		return nil, err
	}
	if len(in.ServiceDeploymentArns) == 0 || len(in.ServiceDeploymentArns) > 20 {
		return nil, ecsInvalid("serviceDeploymentArns must have between 1 and 20 items.")
	}
	f := s.compute
	f.mu.Lock()
	defer f.mu.Unlock()
	out := struct {
		ServiceDeployments []map[string]any `json:"serviceDeployments"`
		Failures           []ecsFailure     `json:"failures"`
	}{ServiceDeployments: []map[string]any{}, Failures: []ecsFailure{}}
	for _, a := range in.ServiceDeploymentArns {
		var found bool
		for _, c := range f.clusters {
			for _, svc := range c.services {
				for _, d := range svc.history {
					if svc.deploymentARN(d) == a {
						out.ServiceDeployments = append(out.ServiceDeployments, s.serviceDeploymentOut(svc, d))
						found = true
					}
				}
			}
		}
		if !found {
			out.Failures = append(out.Failures, ecsFailure{Arn: a, Reason: "MISSING"})
		}
	}
	return out, nil
}
