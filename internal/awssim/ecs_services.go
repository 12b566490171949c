package awssim

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// The ECS service scheduler: every reconcileEvery it reads the tasks'
// containers from Docker, replaces tasks that stopped or failed their
// health checks, and moves deployments along. A deployment is
// IN_PROGRESS until its tasks run and are healthy (container health checks
// and target groups), then the older deployments' tasks drain and stop and
// it is COMPLETED. With the circuit breaker, a deployment whose tasks keep
// failing is FAILED after a threshold and, with rollback, a new deployment
// of the last completed task definition replaces it. A BLUE_GREEN service's
// deployments that replace running tasks go through ECS's blue/green
// lifecycle stages instead (ecs_bluegreen.go).

type ecsService struct {
	name      string
	cluster   *ecsCluster
	home      arnHome
	status    string // ACTIVE | DRAINING | INACTIVE
	desired   int
	def       *taskDef
	created   time.Time
	createdBy string

	launchType string
	strategy   []capacityItem
	config     deploymentConfig
	lbs        []ecsLoadBalancer
	grace      int // health check grace period, in (simulated) seconds

	constraints []placementRule
	deployments []*ecsDeployment // the PRIMARY first
	events      []serviceEvent   // newest first
	lastGood    *ecsDeployment   // the last COMPLETED deployment, for rollback
	history     []*ecsDeployment // every deployment, newest first: the service deployments
	tags        []ecsTag

	// echoed as sent
	network, strategyRaw, placementStrategy, registries, controller, serviceConnect json.RawMessage
	schedulingStrategy, propagateTags, platformVersion                              string
	managedTags, executeCommand                                                     bool
}

type deploymentConfig struct {
	DeploymentCircuitBreaker *struct {
		Enable                 bool `json:"enable"`
		Rollback               bool `json:"rollback"`
		ThresholdConfiguration *struct {
			Type  string `json:"type"`
			Value int    `json:"value"`
		} `json:"thresholdConfiguration,omitempty"`
	} `json:"deploymentCircuitBreaker,omitempty"`
	MaximumPercent        *int            `json:"maximumPercent,omitempty"`
	MinimumHealthyPercent *int            `json:"minimumHealthyPercent,omitempty"`
	Strategy              string          `json:"strategy,omitempty"`
	BakeTimeInMinutes     *int            `json:"bakeTimeInMinutes,omitempty"`
	Alarms                json.RawMessage `json:"alarms,omitempty"`
}

type ecsLoadBalancer struct {
	TargetGroupArn        string          `json:"targetGroupArn,omitempty"`
	LoadBalancerName      string          `json:"loadBalancerName,omitempty"`
	ContainerName         string          `json:"containerName"`
	ContainerPort         int             `json:"containerPort"`
	AdvancedConfiguration json.RawMessage `json:"advancedConfiguration,omitempty"`
}

type ecsDeployment struct {
	id         string
	status     string // PRIMARY | ACTIVE
	def        *taskDef
	desired    int
	failed     int
	created    time.Time
	updated    time.Time
	rollout    string // IN_PROGRESS | COMPLETED | FAILED
	reason     string
	launchType string
	strategy   json.RawMessage
	holdUntil  time.Time // after a failed task, the scheduler waits before the next launch
	finished   time.Time // when it completed or failed

	// blue/green (ecs_bluegreen.go)
	groups     []string       // per load balancer, the target group its tasks register in
	bg         bool           // it replaces a running blue set by the lifecycle stages
	stage      string         // its lifecycle stage
	bakeUntil  time.Time      // the end of BAKE_TIME
	shifted    bool           // production traffic was moved to its groups
	rolledBack time.Time      // when a failure sent traffic back
	rollbackTo *ecsDeployment // the blue deployment that took over
	triggered  []string       // deployment alarms found in ALARM
}

type serviceEvent struct {
	ID        string    `json:"id"`
	CreatedAt *ecsEpoch `json:"createdAt"`
	Message   string    `json:"message"`
}

func (svc *ecsService) arn() string {
	return svc.home.arn("ecs", "service/"+svc.cluster.name+"/"+svc.name)
}

// event adds a service event, newest first, skipping a repeat of the newest.
func (svc *ecsService) event(format string, args ...any) {
	msg := fmt.Sprintf("(service %s) ", svc.name) + fmt.Sprintf(format, args...)
	if len(svc.events) > 0 && svc.events[0].Message == msg {
		return
	}
	svc.events = append([]serviceEvent{{ID: computeUUID(), CreatedAt: epochOf(time.Now()), Message: msg}}, svc.events...)
	if len(svc.events) > maxServiceEvents {
		svc.events = svc.events[:maxServiceEvents]
	}
}

func (svc *ecsService) primary() *ecsDeployment { return svc.deployments[0] }

// deploy starts a deployment of the service's task definition; the caller
// holds the lock.
func (svc *ecsService) deploy(reason string) *ecsDeployment {
	now := time.Now()
	d := &ecsDeployment{
		id: "ecs-svc/" + computeDigits(19), status: "PRIMARY", def: svc.def, desired: svc.desired,
		created: now, updated: now, rollout: "IN_PROGRESS", launchType: svc.launchType, strategy: svc.strategyRaw,
	}
	d.reason = reason
	if d.reason == "" {
		d.reason = "ECS deployment " + d.id + " in progress."
	}
	for _, old := range svc.deployments {
		old.status, old.updated = "ACTIVE", now
	}
	svc.deployments = append([]*ecsDeployment{d}, svc.deployments...)
	svc.history = append([]*ecsDeployment{d}, svc.history...)
	if len(svc.history) > maxServiceEvents {
		svc.history = svc.history[:maxServiceEvents]
	}
	return d
}

// tasks are the service's tasks that are not stopped and not stopping.
func (svc *ecsService) tasks(d *ecsDeployment) []*ecsTask {
	var out []*ecsTask
	for _, t := range svc.cluster.tasks {
		if t.service == svc && (d == nil || t.deployment == d) && t.desired == "RUNNING" {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].created.Before(out[j].created) })
	return out
}

// ---- wire shapes

type ecsDeploymentOut struct {
	ID                          string          `json:"id"`
	Status                      string          `json:"status"`
	TaskDefinition              string          `json:"taskDefinition"`
	DesiredCount                int             `json:"desiredCount"`
	PendingCount                int             `json:"pendingCount"`
	RunningCount                int             `json:"runningCount"`
	FailedTasks                 int             `json:"failedTasks"`
	CreatedAt                   *ecsEpoch       `json:"createdAt"`
	UpdatedAt                   *ecsEpoch       `json:"updatedAt"`
	LaunchType                  string          `json:"launchType,omitempty"`
	CapacityProviderStrategy    json.RawMessage `json:"capacityProviderStrategy,omitempty"`
	PlatformVersion             string          `json:"platformVersion,omitempty"`
	NetworkConfiguration        json.RawMessage `json:"networkConfiguration,omitempty"`
	RolloutState                string          `json:"rolloutState"`
	RolloutStateReason          string          `json:"rolloutStateReason"`
	ServiceConnectConfiguration json.RawMessage `json:"serviceConnectConfiguration,omitempty"`
}

type ecsServiceOut struct {
	ServiceArn                    string             `json:"serviceArn"`
	ServiceName                   string             `json:"serviceName"`
	ClusterArn                    string             `json:"clusterArn"`
	LoadBalancers                 []ecsLoadBalancer  `json:"loadBalancers"`
	ServiceRegistries             json.RawMessage    `json:"serviceRegistries"`
	Status                        string             `json:"status"`
	DesiredCount                  int                `json:"desiredCount"`
	RunningCount                  int                `json:"runningCount"`
	PendingCount                  int                `json:"pendingCount"`
	LaunchType                    string             `json:"launchType,omitempty"`
	CapacityProviderStrategy      json.RawMessage    `json:"capacityProviderStrategy,omitempty"`
	PlatformVersion               string             `json:"platformVersion,omitempty"`
	PlatformFamily                string             `json:"platformFamily,omitempty"`
	TaskDefinition                string             `json:"taskDefinition"`
	DeploymentConfiguration       deploymentConfig   `json:"deploymentConfiguration"`
	Deployments                   []ecsDeploymentOut `json:"deployments"`
	Events                        []serviceEvent     `json:"events"`
	CreatedAt                     *ecsEpoch          `json:"createdAt"`
	CreatedBy                     string             `json:"createdBy"`
	PlacementConstraints          []placementRule    `json:"placementConstraints"`
	PlacementStrategy             json.RawMessage    `json:"placementStrategy"`
	NetworkConfiguration          json.RawMessage    `json:"networkConfiguration,omitempty"`
	HealthCheckGracePeriodSeconds *int               `json:"healthCheckGracePeriodSeconds,omitempty"`
	SchedulingStrategy            string             `json:"schedulingStrategy"`
	DeploymentController          json.RawMessage    `json:"deploymentController,omitempty"`
	EnableECSManagedTags          bool               `json:"enableECSManagedTags"`
	PropagateTags                 string             `json:"propagateTags"`
	EnableExecuteCommand          bool               `json:"enableExecuteCommand"`
	Tags                          []ecsTag           `json:"tags,omitempty"`
}

func ecsOrEmpty(m json.RawMessage) json.RawMessage {
	if len(m) == 0 {
		return json.RawMessage("[]")
	}
	return m
}

// out is the Service shape; the caller holds the lock.
func (svc *ecsService) out(tags bool) ecsServiceOut {
	o := ecsServiceOut{
		ServiceArn: svc.arn(), ServiceName: svc.name, ClusterArn: svc.cluster.arn(svc.home),
		LoadBalancers: svc.lbs, ServiceRegistries: ecsOrEmpty(svc.registries), Status: svc.status,
		DesiredCount: svc.desired, LaunchType: svc.launchType, CapacityProviderStrategy: svc.strategyRaw,
		TaskDefinition: svc.def.arn(), DeploymentConfiguration: svc.config,
		Deployments: []ecsDeploymentOut{}, Events: svc.events,
		CreatedAt: epochOf(svc.created), CreatedBy: svc.createdBy,
		PlacementConstraints: svc.constraints, PlacementStrategy: ecsOrEmpty(svc.placementStrategy),
		NetworkConfiguration: svc.network, SchedulingStrategy: svc.schedulingStrategy,
		DeploymentController: svc.controller, EnableECSManagedTags: svc.managedTags,
		PropagateTags: svc.propagateTags, EnableExecuteCommand: svc.executeCommand,
	}
	if o.LoadBalancers == nil {
		o.LoadBalancers = []ecsLoadBalancer{}
	}
	if o.PlacementConstraints == nil {
		o.PlacementConstraints = []placementRule{}
	}
	if o.Events == nil {
		o.Events = []serviceEvent{}
	}
	if svc.launchType == "FARGATE" {
		o.PlatformVersion, o.PlatformFamily = "LATEST", "Linux"
	}
	if svc.grace > 0 || len(svc.lbs) > 0 {
		g := svc.grace
		o.HealthCheckGracePeriodSeconds = &g
	}
	if tags {
		o.Tags = svc.tags
		if o.Tags == nil {
			o.Tags = []ecsTag{}
		}
	}
	for _, d := range svc.deployments {
		do := ecsDeploymentOut{
			ID: d.id, Status: d.status, TaskDefinition: d.def.arn(), DesiredCount: d.desired, FailedTasks: d.failed,
			CreatedAt: epochOf(d.created), UpdatedAt: epochOf(d.updated), LaunchType: d.launchType,
			CapacityProviderStrategy: d.strategy, NetworkConfiguration: svc.network,
			RolloutState: d.rollout, RolloutStateReason: d.reason, ServiceConnectConfiguration: svc.serviceConnect,
		}
		if d.launchType == "FARGATE" {
			do.PlatformVersion = "1.4.0"
		}
		for _, t := range svc.tasks(d) {
			if t.last == "RUNNING" {
				do.RunningCount++
			} else {
				do.PendingCount++
			}
		}
		o.RunningCount += do.RunningCount
		o.PendingCount += do.PendingCount
		o.Deployments = append(o.Deployments, do)
	}
	return o
}

// ---- operations

type serviceInput struct {
	Cluster                       string            `json:"cluster"`
	ServiceName                   string            `json:"serviceName"`
	Service                       string            `json:"service"`
	TaskDefinition                string            `json:"taskDefinition"`
	DesiredCount                  *int              `json:"desiredCount"`
	LaunchType                    string            `json:"launchType"`
	CapacityProviderStrategy      json.RawMessage   `json:"capacityProviderStrategy"`
	DeploymentConfiguration       *deploymentConfig `json:"deploymentConfiguration"`
	LoadBalancers                 []ecsLoadBalancer `json:"loadBalancers"`
	HealthCheckGracePeriodSeconds *int              `json:"healthCheckGracePeriodSeconds"`
	PlacementConstraints          []placementRule   `json:"placementConstraints"`
	PlacementStrategy             json.RawMessage   `json:"placementStrategy"`
	NetworkConfiguration          json.RawMessage   `json:"networkConfiguration"`
	ServiceRegistries             json.RawMessage   `json:"serviceRegistries"`
	DeploymentController          json.RawMessage   `json:"deploymentController"`
	ServiceConnectConfiguration   json.RawMessage   `json:"serviceConnectConfiguration"`
	SchedulingStrategy            string            `json:"schedulingStrategy"`
	PropagateTags                 string            `json:"propagateTags"`
	PlatformVersion               string            `json:"platformVersion"`
	EnableECSManagedTags          *bool             `json:"enableECSManagedTags"`
	EnableExecuteCommand          *bool             `json:"enableExecuteCommand"`
	ForceNewDeployment            bool              `json:"forceNewDeployment"`
	Tags                          []ecsTag          `json:"tags"`
}

func (in serviceInput) strategy() ([]capacityItem, error) {
	var items []capacityItem
	if len(in.CapacityProviderStrategy) > 0 {
		if err := json.Unmarshal(in.CapacityProviderStrategy, &items); err != nil {
			return nil, Errorf("SerializationException", "%v", err)
		}
	}
	return items, nil
}

// checkLoadBalancers validates a service's load balancers against the
// task definition and the target groups; the caller holds the lock.
func (f *compute) checkLoadBalancers(lbs []ecsLoadBalancer, d *taskDef) error {
	for _, lb := range lbs {
		if lb.TargetGroupArn == "" {
			return ecsInvalid("awssim supports load balancers given by targetGroupArn.")
		}
		tg := f.targetGroupByARN(lb.TargetGroupArn)
		if tg == nil {
			return ecsInvalid("Unable to assume role and validate the specified targetGroupArn. Please verify that the ECS service role being passed has the proper permissions.")
		}
		if len(tg.lbs) == 0 {
			return ecsInvalid("The target group with targetGroupArn %s does not have an associated load balancer.", lb.TargetGroupArn)
		}
		found := false
		for _, c := range d.spec.ContainerDefinitions {
			if c.Name != lb.ContainerName {
				continue
			}
			for _, pm := range c.PortMappings {
				found = found || pm.ContainerPort == lb.ContainerPort
			}
			if !found {
				return ecsInvalid("The container %s did not have a container port %d defined.", lb.ContainerName, lb.ContainerPort)
			}
		}
		if !found {
			return ecsInvalid("The container %s does not exist in the task definition.", lb.ContainerName)
		}
		if err := f.checkAdvanced(lb); err != nil {
			return err
		}
	}
	return nil
}

func (s *Sim) createService(h arnHome, body []byte) (any, error) {
	var in serviceInput
	if err := computeDecode(body, &in); err != nil {
		return nil, err
	}
	items, err := in.strategy()
	if err != nil {
		return nil, err
	}
	if in.ServiceName == "" {
		return nil, ecsInvalid("Service name must not be empty.")
	}
	if in.SchedulingStrategy == "DAEMON" {
		return nil, ecsInvalid("awssim supports the REPLICA scheduling strategy.")
	}
	if in.DeploymentController != nil {
		var dc struct{ Type string }
		_ = json.Unmarshal(in.DeploymentController, &dc)
		if dc.Type != "" && dc.Type != "ECS" {
			return nil, ecsInvalid("awssim supports the ECS deployment controller, not %s.", dc.Type)
		}
	}
	for _, p := range in.PlacementConstraints {
		switch p.Type {
		case "distinctInstance":
		case "memberOf":
			if _, err := parseECSExpression(p.Expression); err != nil {
				return nil, ecsInvalid("%s", err.(*Error).Message)
			}
		default:
			return nil, ecsInvalid("Invalid placement constraint type %q.", p.Type)
		}
	}
	f := s.compute
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.findCluster(in.Cluster)
	if err != nil {
		return nil, err
	}
	if old := c.services[in.ServiceName]; old != nil && old.status != "INACTIVE" {
		return nil, ecsInvalid("Creation of service was not idempotent.")
	}
	d := f.findTaskDef(in.TaskDefinition)
	if d == nil {
		return nil, ecsInvalid("TaskDefinition not found.")
	}
	if d.status != "ACTIVE" {
		return nil, ecsInvalid("TaskDefinition is inactive")
	}
	if d.spec.NetworkMode == "awsvpc" && len(in.NetworkConfiguration) == 0 {
		return nil, ecsInvalid("Network Configuration must be provided when networkMode 'awsvpc' is specified.")
	}
	if err := resolveLaunch(c, d, in.LaunchType, items); err != nil {
		return nil, err
	}
	if err := f.checkLoadBalancers(in.LoadBalancers, d); err != nil {
		return nil, err
	}
	desired := 0
	if in.DesiredCount != nil {
		desired = *in.DesiredCount
	}
	if desired < 0 {
		return nil, ecsInvalid("desiredCount must not be negative.")
	}
	svc := &ecsService{
		name: in.ServiceName, cluster: c, home: h, status: "ACTIVE", desired: desired, def: d,
		created: time.Now(), createdBy: "arn:aws:iam::" + h.account + ":root",
		launchType: in.LaunchType, strategy: items, strategyRaw: in.CapacityProviderStrategy,
		lbs: in.LoadBalancers, constraints: in.PlacementConstraints, tags: in.Tags,
		network: in.NetworkConfiguration, placementStrategy: in.PlacementStrategy, registries: in.ServiceRegistries,
		controller: in.DeploymentController, serviceConnect: in.ServiceConnectConfiguration,
		schedulingStrategy: "REPLICA", propagateTags: in.PropagateTags, platformVersion: in.PlatformVersion,
	}
	if svc.launchType == "" && len(items) == 0 {
		svc.launchType = "EC2"
	}
	if svc.propagateTags == "" {
		svc.propagateTags = "NONE"
	}
	if svc.controller == nil {
		svc.controller = json.RawMessage(`{"type":"ECS"}`)
	}
	if in.EnableECSManagedTags != nil {
		svc.managedTags = *in.EnableECSManagedTags
	}
	if in.EnableExecuteCommand != nil {
		svc.executeCommand = *in.EnableExecuteCommand
	}
	if in.HealthCheckGracePeriodSeconds != nil {
		svc.grace = *in.HealthCheckGracePeriodSeconds
	}
	svc.config = defaultDeploymentConfig()
	if in.DeploymentConfiguration != nil {
		svc.config.merge(*in.DeploymentConfiguration)
	}
	svc.deploy("")
	c.services[svc.name] = svc
	return struct {
		Service ecsServiceOut `json:"service"`
	}{svc.out(false)}, nil
}

func defaultDeploymentConfig() deploymentConfig {
	maxP, minP := 200, 100
	var c deploymentConfig
	c.MaximumPercent, c.MinimumHealthyPercent, c.Strategy = &maxP, &minP, "ROLLING"
	c.DeploymentCircuitBreaker = &struct {
		Enable                 bool `json:"enable"`
		Rollback               bool `json:"rollback"`
		ThresholdConfiguration *struct {
			Type  string `json:"type"`
			Value int    `json:"value"`
		} `json:"thresholdConfiguration,omitempty"`
	}{}
	return c
}

func (c *deploymentConfig) merge(in deploymentConfig) {
	if in.DeploymentCircuitBreaker != nil {
		c.DeploymentCircuitBreaker = in.DeploymentCircuitBreaker
	}
	if in.MaximumPercent != nil {
		c.MaximumPercent = in.MaximumPercent
	}
	if in.MinimumHealthyPercent != nil {
		c.MinimumHealthyPercent = in.MinimumHealthyPercent
	}
	if in.Strategy != "" {
		c.Strategy = in.Strategy
	}
	if in.BakeTimeInMinutes != nil {
		c.BakeTimeInMinutes = in.BakeTimeInMinutes
	}
	if in.Alarms != nil {
		c.Alarms = in.Alarms
	}
}

// findService resolves a service parameter; the caller holds the lock.
// findService finds a cluster's service, with AWS's error for whichever is missing; the
// caller holds the lock.
func (f *compute) findService(cluster, service string) (*ecsCluster, *ecsService, error) {
	c, err := f.findCluster(cluster)
	if err != nil {
		return nil, nil, err
	}
	svc, err := c.findService(service)
	return c, svc, err
}

func (c *ecsCluster) findService(ref string) (*ecsService, error) {
	svc := c.services[arnName(ref)]
	if svc == nil {
		return nil, Errorf("ServiceNotFoundException", "Service not found.")
	}
	return svc, nil
}

func (s *Sim) updateService(_ arnHome, body []byte) (any, error) {
	var in serviceInput
	if err := computeDecode(body, &in); err != nil {
		return nil, err
	}
	items, err := in.strategy()
	if err != nil {
		return nil, err
	}
	f := s.compute
	f.mu.Lock()
	defer f.mu.Unlock()
	c, svc, err := f.findService(in.Cluster, in.Service)
	if err != nil {
		return nil, err
	}
	if svc.status != "ACTIVE" {
		return nil, Errorf("ServiceNotActiveException", "Service was not ACTIVE.")
	}
	d := svc.def
	if in.TaskDefinition != "" {
		if d = f.findTaskDef(in.TaskDefinition); d == nil {
			return nil, ecsInvalid("TaskDefinition not found.")
		}
		if d.status != "ACTIVE" {
			return nil, ecsInvalid("TaskDefinition is inactive")
		}
	}
	launchType, strategy := svc.launchType, svc.strategy
	if len(items) > 0 {
		launchType, strategy = "", items
	}
	if err := resolveLaunch(c, d, launchType, strategy); err != nil {
		return nil, err
	}
	lbs := svc.lbs
	if in.LoadBalancers != nil {
		lbs = in.LoadBalancers
	}
	if err := f.checkLoadBalancers(lbs, d); err != nil {
		return nil, err
	}
	if in.DesiredCount != nil && *in.DesiredCount < 0 {
		return nil, ecsInvalid("desiredCount must not be negative.")
	}
	redeploy := in.ForceNewDeployment || d != svc.def || len(items) > 0 || in.LoadBalancers != nil ||
		in.NetworkConfiguration != nil || in.ServiceConnectConfiguration != nil || in.PlacementConstraints != nil
	svc.def, svc.launchType, svc.strategy, svc.lbs = d, launchType, strategy, lbs
	if len(items) > 0 {
		svc.strategyRaw = in.CapacityProviderStrategy
	}
	if in.DesiredCount != nil {
		svc.desired = *in.DesiredCount
		// A new desired count alone moves the current deployment, as in ECS.
		svc.primary().desired = svc.desired
	}
	if in.DeploymentConfiguration != nil {
		svc.config.merge(*in.DeploymentConfiguration)
	}
	if in.HealthCheckGracePeriodSeconds != nil {
		svc.grace = *in.HealthCheckGracePeriodSeconds
	}
	if in.NetworkConfiguration != nil {
		svc.network = in.NetworkConfiguration
	}
	if in.ServiceConnectConfiguration != nil {
		svc.serviceConnect = in.ServiceConnectConfiguration
	}
	if in.PlacementConstraints != nil {
		svc.constraints = in.PlacementConstraints
	}
	if in.PlacementStrategy != nil {
		svc.placementStrategy = in.PlacementStrategy
	}
	if in.PropagateTags != "" {
		svc.propagateTags = in.PropagateTags
	}
	if in.EnableExecuteCommand != nil {
		svc.executeCommand = *in.EnableExecuteCommand
	}
	if redeploy {
		svc.deploy("")
	}
	return struct {
		Service ecsServiceOut `json:"service"`
	}{svc.out(false)}, nil
}

func (s *Sim) deleteService(_ arnHome, body []byte) (any, error) {
	var in struct {
		Cluster string `json:"cluster"`
		Service string `json:"service"`
		Force   bool   `json:"force"`
	}
	if err := computeDecode(body, &in); err != nil {
		return nil, err
	}
	f := s.compute
	f.mu.Lock()
	defer f.mu.Unlock()
	_, svc, err := f.findService(in.Cluster, in.Service)
	if err != nil {
		return nil, err
	}
	if svc.status != "ACTIVE" {
		return nil, Errorf("ServiceNotActiveException", "Service was not ACTIVE.")
	}
	if svc.desired > 0 && !in.Force {
		return nil, ecsInvalid("The service cannot be stopped while it is scaled above 0.")
	}
	svc.status, svc.desired = "DRAINING", 0
	for _, t := range svc.tasks(nil) {
		f.beginStop(t, "ServiceSchedulerInitiated", "Service "+svc.name+" was deleted")
	}
	return struct {
		Service ecsServiceOut `json:"service"`
	}{svc.out(false)}, nil
}

func (s *Sim) describeServices(h arnHome, body []byte) (any, error) {
	var in struct {
		Cluster  string   `json:"cluster"`
		Services []string `json:"services"`
		Include  []string `json:"include"`
	}
	if err := computeDecode(body, &in); err != nil {
		return nil, err
	}
	if len(in.Services) == 0 {
		return nil, ecsInvalid("Services cannot be empty.")
	}
	if len(in.Services) > 10 {
		return nil, ecsInvalid("Services can have at most 10 items.")
	}
	f := s.compute
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.findCluster(in.Cluster)
	if err != nil {
		return nil, err
	}
	out := struct {
		Services []ecsServiceOut `json:"services"`
		Failures []ecsFailure    `json:"failures"`
	}{Services: []ecsServiceOut{}, Failures: []ecsFailure{}}
	for _, ref := range in.Services {
		svc := c.services[arnName(ref)]
		if svc == nil {
			arn := ref
			if !strings.HasPrefix(arn, "arn:") {
				arn = h.arn("ecs", "service/"+c.name+"/"+ref)
			}
			out.Failures = append(out.Failures, ecsFailure{Arn: arn, Reason: "MISSING"})
			continue
		}
		out.Services = append(out.Services, svc.out(slices.Contains(in.Include, "TAGS")))
	}
	return out, nil
}

func (s *Sim) listServices(_ arnHome, body []byte) (any, error) {
	var in struct {
		Cluster            string `json:"cluster"`
		LaunchType         string `json:"launchType"`
		SchedulingStrategy string `json:"schedulingStrategy"`
		NextToken          string `json:"nextToken"`
		MaxResults         *int   `json:"maxResults"`
	}
	if err := computeDecode(body, &in); err != nil {
		return nil, err
	}
	f := s.compute
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.findCluster(in.Cluster)
	if err != nil {
		return nil, err
	}
	var names []string
	for name, svc := range c.services {
		if svc.status == "INACTIVE" || in.LaunchType != "" && svc.launchType != in.LaunchType ||
			in.SchedulingStrategy != "" && in.SchedulingStrategy != svc.schedulingStrategy {
			continue
		}
		names = append(names, name)
	}
	sort.Strings(names)
	arns := []string{}
	for _, n := range names {
		arns = append(arns, c.services[n].arn())
	}
	arns, next, err := ecsPage(arns, in.NextToken, in.MaxResults, 10)
	if err != nil {
		return nil, err
	}
	return struct {
		ServiceArns []string `json:"serviceArns"`
		NextToken   string   `json:"nextToken,omitempty"`
	}{arns, next}, nil
}

// ---- the scheduler

func (s *Sim) runScheduler() {
	f := s.compute
	defer f.wg.Done()
	tick := time.NewTicker(reconcileEvery)
	defer tick.Stop()
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-tick.C:
		}
		s.syncInstances()
		s.observeTasks()
		f.mu.Lock()
		for _, c := range f.clusters {
			for _, svc := range c.services {
				s.scheduleService(svc)
			}
		}
		s.finishStops()
		f.drainTargets()
		f.mu.Unlock()
	}
}

// threshold is the circuit breaker's failed-task count for a deployment;
// the caller holds the lock.
func (f *compute) threshold(svc *ecsService, d *ecsDeployment) int {
	if f.breaker > 0 {
		return f.breaker
	}
	if tc := svc.config.DeploymentCircuitBreaker.ThresholdConfiguration; tc != nil && tc.Value > 0 {
		if tc.Type == "PERCENT" {
			return max(1, (d.desired*tc.Value+99)/100)
		}
		return tc.Value
	}
	return min(max(d.desired/2, 3), 200)
}

// healthy says whether a running task passes its container health checks
// and its target groups' checks; the caller holds the lock.
func (f *compute) healthy(svc *ecsService, t *ecsTask) bool {
	if t.last != "RUNNING" || t.health() == "UNHEALTHY" {
		return false
	}
	for _, c := range t.containers {
		if c.spec.essential() && hasHealthCheck(c.spec) && c.health != "HEALTHY" {
			return false
		}
	}
	for i := range svc.lbs {
		if f.targetState(svc.groupOf(t.deployment, i), t) != "healthy" {
			return false
		}
	}
	return true
}

// schedule is one pass of the service scheduler over a service; the caller
// holds the lock.
func (s *Sim) scheduleService(svc *ecsService) {
	f := s.compute
	now := time.Now()
	if svc.status == "INACTIVE" {
		return
	}
	if p := svc.primary(); p.groups == nil && svc.status == "ACTIVE" {
		f.assignGroups(svc, p)
	}
	// Tasks that failed count against their deployment; failing ones are replaced.
	var replaced []string
	for _, t := range svc.cluster.tasks {
		if t.service != svc {
			continue
		}
		if t.desired == "RUNNING" && t.last == "RUNNING" && now.Sub(t.started) >= time.Duration(svc.grace)*f.healthSecond {
			if t.health() == "UNHEALTHY" {
				svc.event("(task %s) failed container health checks.", t.id)
				f.beginStop(t, "ServiceSchedulerInitiated", "Task failed container health checks")
				replaced = append(replaced, t.id)
			} else {
				for i, lb := range svc.lbs {
					if group := svc.groupOf(t.deployment, i); f.targetState(group, t) == "unhealthy" {
						tg := f.targetGroupByARN(group)
						svc.event("(task %s) (port %d) is unhealthy in (target-group %s) due to (reason %s).", t.id, t.hostPort(lb.ContainerName, lb.ContainerPort), tg.arn(svc.home), tg.targetReason(t))
						f.beginStop(t, "ServiceSchedulerInitiated", "Task failed ELB health checks in (target-group "+tg.arn(svc.home)+")")
						replaced = append(replaced, t.id)
						break
					}
				}
			}
		}
		if t.desired == "STOPPED" && !t.counted && t.deployment != nil && taskFailed(t) {
			t.counted = true
			t.deployment.failed++
			t.deployment.updated = now
			// ECS throttles the launches of a service whose tasks keep failing.
			t.deployment.holdUntil = now.Add(min(reconcileEvery<<min(t.deployment.failed-1, 6), 5*time.Second))
		}
		if t.last == "RUNNING" && !t.registered() && t.desired == "RUNNING" {
			f.registerTask(svc, t)
		}
	}
	svc.stopped(replaced)
	if svc.status == "DRAINING" {
		if !svc.cluster.hasTask(func(t *ecsTask) bool { return t.service == svc && t.last != "STOPPED" }) {
			svc.status = "INACTIVE"
			svc.deployments = svc.deployments[:1]
		}
		return
	}
	p := svc.primary()
	if p.bg {
		s.scheduleBlueGreen(svc, p)
		return
	}
	cb := svc.config.DeploymentCircuitBreaker
	if cb != nil && cb.Enable && p.rollout == "IN_PROGRESS" && p.failed >= f.threshold(svc, p) {
		p.rollout, p.updated, p.finished = "FAILED", now, now
		p.reason = "ECS deployment circuit breaker: tasks failed to start."
		svc.event("(deployment %s) deployment failed: tasks failed to start.", p.id)
		if cb.Rollback && svc.lastGood != nil && svc.lastGood.def != p.def {
			svc.def = svc.lastGood.def
			svc.event("rolling back to deployment %s.", svc.lastGood.id)
			svc.deploy("ECS deployment circuit breaker: rolling back to deploymentId " + svc.lastGood.id + ".")
			p = svc.primary()
		}
	}
	if p.rollout == "FAILED" {
		return // a failed deployment launches no new tasks
	}
	running := svc.tasks(p)
	if n := p.desired - len(running); n > 0 && !now.Before(p.holdUntil) {
		s.launchFor(svc, p, n)
	} else if n < 0 {
		var ids []string
		for _, t := range running[:-n] {
			f.beginStop(t, "ServiceSchedulerInitiated", "Scaling activity initiated by (deployment "+p.id+")")
			ids = append(ids, t.id)
		}
		svc.stopped(ids)
	}
	healthy := 0
	for _, t := range svc.tasks(p) {
		if f.healthy(svc, t) {
			healthy++
		}
	}
	if healthy < p.desired {
		return
	}
	// The new tasks are healthy: the older deployments drain and go.
	var keep []*ecsDeployment
	var ids []string
	for _, d := range svc.deployments[1:] {
		for _, t := range svc.tasks(d) {
			f.beginStop(t, "ServiceSchedulerInitiated", "Scaling activity initiated by (deployment "+p.id+")")
			ids = append(ids, t.id)
		}
		if svc.cluster.hasTask(func(t *ecsTask) bool { return t.deployment == d && t.last != "STOPPED" }) {
			keep = append(keep, d)
		}
	}
	svc.stopped(ids)
	svc.deployments = append([]*ecsDeployment{p}, keep...)
	if len(keep) == 0 && p.rollout == "IN_PROGRESS" {
		p.rollout, p.updated, p.finished = "COMPLETED", now, now
		p.reason = "ECS deployment " + p.id + " completed."
		svc.lastGood = p
		svc.event("(deployment %s) deployment completed.", p.id)
		svc.event("has reached a steady state.")
	}
}

// hasTask says whether a task of the cluster is ok.
func (c *ecsCluster) hasTask(ok func(*ecsTask) bool) bool {
	for _, t := range c.tasks {
		if ok(t) {
			return true
		}
	}
	return false
}

// stopped tells that the scheduler stopped running tasks.
func (svc *ecsService) stopped(ids []string) {
	if len(ids) > 0 {
		svc.event("has stopped %d running tasks: %s.", len(ids), ecsTaskList(ids))
	}
}

// failed says whether a stopped task counts against its deployment.
func taskFailed(t *ecsTask) bool {
	switch t.stopCode {
	case "TaskFailedToStart", "EssentialContainerExited":
		return true
	case "ServiceSchedulerInitiated":
		return strings.HasPrefix(t.stopWhy, "Task failed")
	}
	return false
}

// launchFor places and starts n tasks of a deployment; the caller holds the lock.
func (s *Sim) launchFor(svc *ecsService, d *ecsDeployment, n int) {
	counts := map[string]int{}
	for _, t := range svc.tasks(d) {
		counts[t.provider]++
	}
	var started []string
	for range n {
		lt := pickLaunch(svc.launchType, svc.strategy, counts)
		var p ecsPlacement
		if lt.launchType == "EC2" {
			p = s.placeScaling(svc.cluster, d.def, lt.provider, svc, svc.constraints)
			if p.instance == nil {
				svc.event("was unable to place a task because no container instance met all of its requirements. %s For more information, see the Troubleshooting section of the Amazon ECS Developer Guide.", p.message)
				break
			}
		}
		counts[lt.provider]++
		t := s.newTask(svc.cluster, svc.home, d.def, lt, p, nil)
		t.service, t.deployment, t.group, t.startedBy = svc, d, "service:"+svc.name, d.id
		if svc.propagateTags == "SERVICE" {
			t.tags = svc.tags
		}
		started = append(started, t.id)
	}
	if len(started) > 0 {
		svc.event("has started %d tasks: %s.", len(started), ecsTaskList(started))
	}
}

func ecsTaskList(ids []string) string {
	var parts []string
	for _, id := range ids {
		parts = append(parts, "(task "+id+")")
	}
	return strings.Join(parts, " ")
}
