package awssim

import (
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
)

// Application Auto Scaling for ECS services' desired counts. Registering a
// scalable target moves the service's desired count into [min, max], as
// AWS does; policies and scheduled actions are stored and described, but
// nothing scales by metrics here (the simulator has none).

const ecsDesiredCount = "ecs:service:DesiredCount"

type scalableTarget struct {
	namespace, resource, dimension string
	min, max                       int
	role                           string
	suspended                      json.RawMessage
	created                        time.Time
	arn                            string
}

type scalingPolicy struct {
	arn, name, namespace, resource, dimension, kind string
	target, step                                    json.RawMessage
	alarms                                          []aasAlarm
	created                                         time.Time
}

type scheduledAction struct {
	arn, name, namespace, resource, dimension, schedule, timezone string
	start, end                                                    *float64
	action                                                        json.RawMessage
	created                                                       time.Time
}

type aasAlarm struct {
	AlarmName string `json:"AlarmName"`
	AlarmARN  string `json:"AlarmARN"`
}

func aasKey(parts ...string) string { return strings.Join(parts, "|") }

func aasValidation(format string, args ...any) *Error {
	return Errorf("ValidationException", format, args...)
}

func (s *Sim) appAutoScaling(r *http.Request, op string, body []byte) (any, error) {
	ops := map[string]func(arnHome, []byte) (any, error){
		"RegisterScalableTarget":   s.registerScalableTarget,
		"DescribeScalableTargets":  s.describeScalableTargets,
		"PutScalingPolicy":         s.putScalingPolicy,
		"DescribeScalingPolicies":  s.describeScalingPolicies,
		"PutScheduledAction":       s.putScheduledAction,
		"DescribeScheduledActions": s.describeScheduledActions,
	}
	f, ok := ops[op]
	if !ok {
		return nil, UnknownOperation(op)
	}
	h, err := s.computeCaller(r, false)
	if err != nil {
		return nil, err
	}
	return f(h, body)
}

// ecsServiceOf finds the ECS service a resource ID names; the caller holds
// the lock.
func (f *compute) ecsServiceOf(namespace, resource, dimension string) (*ecsService, error) {
	if namespace != "ecs" {
		return nil, aasValidation("awssim supports the ecs service namespace, not %s", namespace)
	}
	if dimension != ecsDesiredCount {
		return nil, aasValidation("Unsupported scalable dimension %s for service namespace ecs", dimension)
	}
	parts := strings.Split(resource, "/")
	if len(parts) != 3 || parts[0] != "service" {
		return nil, aasValidation("Unsupported resource type for service namespace ecs: %s", resource)
	}
	c := f.clusters[parts[1]]
	var svc *ecsService
	if c != nil {
		svc = c.services[parts[2]]
	}
	if svc == nil || svc.status != "ACTIVE" {
		return nil, aasValidation("ECS service doesn't exist: %s", resource)
	}
	return svc, nil
}

func (s *Sim) registerScalableTarget(h arnHome, body []byte) (any, error) {
	var in struct {
		ServiceNamespace  string            `json:"ServiceNamespace"`
		ResourceID        string            `json:"ResourceId"`
		ScalableDimension string            `json:"ScalableDimension"`
		MinCapacity       *int              `json:"MinCapacity"`
		MaxCapacity       *int              `json:"MaxCapacity"`
		RoleARN           string            `json:"RoleARN"`
		SuspendedState    json.RawMessage   `json:"SuspendedState"`
		Tags              map[string]string `json:"Tags"`
	}
	if err := computeDecode(body, &in); err != nil {
		return nil, err
	}
	f := s.compute
	f.mu.Lock()
	defer f.mu.Unlock()
	svc, err := f.ecsServiceOf(in.ServiceNamespace, in.ResourceID, in.ScalableDimension)
	if err != nil {
		return nil, err
	}
	key := aasKey(in.ServiceNamespace, in.ResourceID, in.ScalableDimension)
	st := f.scalables[key]
	if st == nil {
		if in.MinCapacity == nil || in.MaxCapacity == nil {
			return nil, aasValidation("MinCapacity and MaxCapacity are required for registering a new scalable target")
		}
		st = &scalableTarget{
			namespace: in.ServiceNamespace, resource: in.ResourceID, dimension: in.ScalableDimension, created: time.Now(),
			arn: h.arn("application-autoscaling", "scalable-target/0e"+computeHex(26)),
		}
	}
	lo, hi := st.min, st.max
	if in.MinCapacity != nil {
		lo = *in.MinCapacity
	}
	if in.MaxCapacity != nil {
		hi = *in.MaxCapacity
	}
	if lo < 0 || hi < 0 {
		return nil, aasValidation("Minimum and maximum capacity must not be negative")
	}
	if lo > hi {
		return nil, aasValidation("Minimum capacity cannot be greater than maximum capacity")
	}
	st.min, st.max = lo, hi
	if in.RoleARN != "" {
		st.role = in.RoleARN
	}
	if st.role == "" {
		st.role = "arn:aws:iam::" + h.account + ":role/aws-service-role/ecs.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_ECSService"
	}
	if in.SuspendedState != nil {
		st.suspended = in.SuspendedState
	}
	f.scalables[key] = st
	if d := min(max(svc.desired, lo), hi); d != svc.desired {
		svc.desired = d
		svc.primary().desired = d
	}
	return struct {
		ScalableTargetARN string `json:"ScalableTargetARN"`
	}{st.arn}, nil
}

func (s *Sim) describeScalableTargets(_ arnHome, body []byte) (any, error) {
	var in struct {
		ServiceNamespace  string   `json:"ServiceNamespace"`
		ResourceIDs       []string `json:"ResourceIds"`
		ScalableDimension string   `json:"ScalableDimension"`
	}
	if err := computeDecode(body, &in); err != nil {
		return nil, err
	}
	type out struct {
		ServiceNamespace  string          `json:"ServiceNamespace"`
		ResourceID        string          `json:"ResourceId"`
		ScalableDimension string          `json:"ScalableDimension"`
		MinCapacity       int             `json:"MinCapacity"`
		MaxCapacity       int             `json:"MaxCapacity"`
		RoleARN           string          `json:"RoleARN"`
		CreationTime      ecsEpoch        `json:"CreationTime"`
		SuspendedState    json.RawMessage `json:"SuspendedState"`
		ScalableTargetARN string          `json:"ScalableTargetARN"`
	}
	f := s.compute
	f.mu.Lock()
	defer f.mu.Unlock()
	res := struct {
		ScalableTargets []out `json:"ScalableTargets"`
	}{ScalableTargets: []out{}}
	for _, st := range f.scalables {
		if st.namespace != in.ServiceNamespace || in.ScalableDimension != "" && st.dimension != in.ScalableDimension ||
			len(in.ResourceIDs) > 0 && !slices.Contains(in.ResourceIDs, st.resource) {
			continue
		}
		susp := st.suspended
		if susp == nil {
			susp = json.RawMessage(`{"DynamicScalingInSuspended":false,"DynamicScalingOutSuspended":false,"ScheduledScalingSuspended":false}`)
		}
		res.ScalableTargets = append(res.ScalableTargets, out{
			ServiceNamespace: st.namespace, ResourceID: st.resource, ScalableDimension: st.dimension,
			MinCapacity: st.min, MaxCapacity: st.max, RoleARN: st.role, CreationTime: ecsEpoch(st.created),
			SuspendedState: susp, ScalableTargetARN: st.arn,
		})
	}
	sort.Slice(res.ScalableTargets, func(i, j int) bool { return res.ScalableTargets[i].ResourceID < res.ScalableTargets[j].ResourceID })
	return res, nil
}

func (s *Sim) registeredTarget(namespace, resource, dimension string) error {
	if s.compute.scalables[aasKey(namespace, resource, dimension)] == nil {
		return Errorf("ObjectNotFoundException", "No scalable target registered for service namespace: %s, resource ID: %s, scalable dimension: %s", namespace, resource, dimension)
	}
	return nil
}

func (s *Sim) putScalingPolicy(h arnHome, body []byte) (any, error) {
	var in struct {
		PolicyName                               string          `json:"PolicyName"`
		ServiceNamespace                         string          `json:"ServiceNamespace"`
		ResourceID                               string          `json:"ResourceId"`
		ScalableDimension                        string          `json:"ScalableDimension"`
		PolicyType                               string          `json:"PolicyType"`
		TargetTrackingScalingPolicyConfiguration json.RawMessage `json:"TargetTrackingScalingPolicyConfiguration"`
		StepScalingPolicyConfiguration           json.RawMessage `json:"StepScalingPolicyConfiguration"`
	}
	if err := computeDecode(body, &in); err != nil {
		return nil, err
	}
	if in.PolicyType == "" {
		in.PolicyType = "StepScaling"
	}
	switch in.PolicyType {
	case "TargetTrackingScaling":
		var tt struct {
			TargetValue                   *float64        `json:"TargetValue"`
			PredefinedMetricSpecification json.RawMessage `json:"PredefinedMetricSpecification"`
			CustomizedMetricSpecification json.RawMessage `json:"CustomizedMetricSpecification"`
		}
		if in.TargetTrackingScalingPolicyConfiguration == nil {
			return nil, aasValidation("TargetTrackingScalingPolicyConfiguration is required for a TargetTrackingScaling policy")
		}
		_ = json.Unmarshal(in.TargetTrackingScalingPolicyConfiguration, &tt)
		if tt.TargetValue == nil {
			return nil, aasValidation("TargetValue is required")
		}
		if (tt.PredefinedMetricSpecification == nil) == (tt.CustomizedMetricSpecification == nil) {
			return nil, aasValidation("Either PredefinedMetricSpecification or CustomizedMetricSpecification must be specified")
		}
	case "StepScaling":
		if in.StepScalingPolicyConfiguration == nil {
			return nil, aasValidation("StepScalingPolicyConfiguration is required for a StepScaling policy")
		}
	default:
		return nil, aasValidation("awssim supports TargetTrackingScaling and StepScaling policies, not %s", in.PolicyType)
	}
	f := s.compute
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := s.registeredTarget(in.ServiceNamespace, in.ResourceID, in.ScalableDimension); err != nil {
		return nil, err
	}
	key := aasKey(in.ServiceNamespace, in.ResourceID, in.ScalableDimension, in.PolicyName)
	p := f.policies[key]
	if p == nil {
		id := computeUUID()
		p = &scalingPolicy{
			arn:  h.arn("autoscaling", "scalingPolicy:"+id+":resource/"+in.ServiceNamespace+"/"+in.ResourceID+":policyName/"+in.PolicyName),
			name: in.PolicyName, namespace: in.ServiceNamespace, resource: in.ResourceID, dimension: in.ScalableDimension,
			created: time.Now(),
		}
		if in.PolicyType == "TargetTrackingScaling" {
			for _, side := range []string{"AlarmHigh", "AlarmLow"} {
				name := "TargetTracking-" + in.ResourceID + "-" + side + "-" + computeUUID()
				p.alarms = append(p.alarms, aasAlarm{AlarmName: name, AlarmARN: h.arn("cloudwatch", "alarm:"+name)})
			}
		}
		f.policies[key] = p
	}
	p.kind, p.target, p.step = in.PolicyType, in.TargetTrackingScalingPolicyConfiguration, in.StepScalingPolicyConfiguration
	alarms := p.alarms
	if alarms == nil {
		alarms = []aasAlarm{}
	}
	return struct {
		PolicyARN string     `json:"PolicyARN"`
		Alarms    []aasAlarm `json:"Alarms"`
	}{p.arn, alarms}, nil
}

func (s *Sim) describeScalingPolicies(_ arnHome, body []byte) (any, error) {
	var in struct {
		PolicyNames       []string `json:"PolicyNames"`
		ServiceNamespace  string   `json:"ServiceNamespace"`
		ResourceID        string   `json:"ResourceId"`
		ScalableDimension string   `json:"ScalableDimension"`
	}
	if err := computeDecode(body, &in); err != nil {
		return nil, err
	}
	type out struct {
		PolicyARN                                string          `json:"PolicyARN"`
		PolicyName                               string          `json:"PolicyName"`
		ServiceNamespace                         string          `json:"ServiceNamespace"`
		ResourceID                               string          `json:"ResourceId"`
		ScalableDimension                        string          `json:"ScalableDimension"`
		PolicyType                               string          `json:"PolicyType"`
		TargetTrackingScalingPolicyConfiguration json.RawMessage `json:"TargetTrackingScalingPolicyConfiguration,omitempty"`
		StepScalingPolicyConfiguration           json.RawMessage `json:"StepScalingPolicyConfiguration,omitempty"`
		Alarms                                   []aasAlarm      `json:"Alarms"`
		CreationTime                             ecsEpoch        `json:"CreationTime"`
	}
	f := s.compute
	f.mu.Lock()
	defer f.mu.Unlock()
	res := struct {
		ScalingPolicies []out `json:"ScalingPolicies"`
	}{ScalingPolicies: []out{}}
	for _, p := range f.policies {
		if p.namespace != in.ServiceNamespace || in.ResourceID != "" && p.resource != in.ResourceID ||
			in.ScalableDimension != "" && p.dimension != in.ScalableDimension ||
			len(in.PolicyNames) > 0 && !slices.Contains(in.PolicyNames, p.name) {
			continue
		}
		alarms := p.alarms
		if alarms == nil {
			alarms = []aasAlarm{}
		}
		res.ScalingPolicies = append(res.ScalingPolicies, out{
			PolicyARN: p.arn, PolicyName: p.name, ServiceNamespace: p.namespace, ResourceID: p.resource,
			ScalableDimension: p.dimension, PolicyType: p.kind, TargetTrackingScalingPolicyConfiguration: p.target,
			StepScalingPolicyConfiguration: p.step, Alarms: alarms, CreationTime: ecsEpoch(p.created),
		})
	}
	sort.Slice(res.ScalingPolicies, func(i, j int) bool { return res.ScalingPolicies[i].PolicyARN < res.ScalingPolicies[j].PolicyARN })
	return res, nil
}

func (s *Sim) putScheduledAction(h arnHome, body []byte) (any, error) {
	var in struct {
		ServiceNamespace     string          `json:"ServiceNamespace"`
		Schedule             string          `json:"Schedule"`
		Timezone             string          `json:"Timezone"`
		ScheduledActionName  string          `json:"ScheduledActionName"`
		ResourceID           string          `json:"ResourceId"`
		ScalableDimension    string          `json:"ScalableDimension"`
		StartTime            *float64        `json:"StartTime"`
		EndTime              *float64        `json:"EndTime"`
		ScalableTargetAction json.RawMessage `json:"ScalableTargetAction"`
	}
	if err := computeDecode(body, &in); err != nil {
		return nil, err
	}
	f := s.compute
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := s.registeredTarget(in.ServiceNamespace, in.ResourceID, in.ScalableDimension); err != nil {
		return nil, err
	}
	key := aasKey(in.ServiceNamespace, in.ResourceID, in.ScalableDimension, in.ScheduledActionName)
	a := f.schedules[key]
	if a == nil {
		if in.Schedule == "" {
			return nil, aasValidation("Schedule is required when creating a scheduled action")
		}
		a = &scheduledAction{
			arn:  h.arn("autoscaling", "scheduledAction:"+computeUUID()+":resource/"+in.ServiceNamespace+"/"+in.ResourceID+":scheduledActionName/"+in.ScheduledActionName),
			name: in.ScheduledActionName, namespace: in.ServiceNamespace, resource: in.ResourceID, dimension: in.ScalableDimension,
			created: time.Now(),
		}
		f.schedules[key] = a
	}
	if in.Schedule != "" {
		a.schedule = in.Schedule
	}
	if in.Timezone != "" {
		a.timezone = in.Timezone
	}
	if in.ScalableTargetAction != nil {
		a.action = in.ScalableTargetAction
	}
	a.start, a.end = in.StartTime, in.EndTime
	return struct{}{}, nil
}

func (s *Sim) describeScheduledActions(_ arnHome, body []byte) (any, error) {
	var in struct {
		ScheduledActionNames []string `json:"ScheduledActionNames"`
		ServiceNamespace     string   `json:"ServiceNamespace"`
		ResourceID           string   `json:"ResourceId"`
		ScalableDimension    string   `json:"ScalableDimension"`
	}
	if err := computeDecode(body, &in); err != nil {
		return nil, err
	}
	type out struct {
		ScheduledActionName  string          `json:"ScheduledActionName"`
		ScheduledActionARN   string          `json:"ScheduledActionARN"`
		ServiceNamespace     string          `json:"ServiceNamespace"`
		Schedule             string          `json:"Schedule"`
		Timezone             string          `json:"Timezone,omitempty"`
		ResourceID           string          `json:"ResourceId"`
		ScalableDimension    string          `json:"ScalableDimension"`
		StartTime            *float64        `json:"StartTime,omitempty"`
		EndTime              *float64        `json:"EndTime,omitempty"`
		ScalableTargetAction json.RawMessage `json:"ScalableTargetAction,omitempty"`
		CreationTime         ecsEpoch        `json:"CreationTime"`
	}
	f := s.compute
	f.mu.Lock()
	defer f.mu.Unlock()
	res := struct {
		ScheduledActions []out `json:"ScheduledActions"`
	}{ScheduledActions: []out{}}
	for _, a := range f.schedules {
		if a.namespace != in.ServiceNamespace || in.ResourceID != "" && a.resource != in.ResourceID ||
			in.ScalableDimension != "" && a.dimension != in.ScalableDimension ||
			len(in.ScheduledActionNames) > 0 && !slices.Contains(in.ScheduledActionNames, a.name) {
			continue
		}
		res.ScheduledActions = append(res.ScheduledActions, out{
			ScheduledActionName: a.name, ScheduledActionARN: a.arn, ServiceNamespace: a.namespace, Schedule: a.schedule,
			Timezone: a.timezone, ResourceID: a.resource, ScalableDimension: a.dimension, StartTime: a.start, EndTime: a.end,
			ScalableTargetAction: a.action, CreationTime: ecsEpoch(a.created),
		})
	}
	sort.Slice(res.ScheduledActions, func(i, j int) bool {
		return res.ScheduledActions[i].ScheduledActionName < res.ScheduledActions[j].ScheduledActionName
	})
	return res, nil
}
