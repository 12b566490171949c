package awssim

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"sort"
	"strconv"
	"time"
)

// ECS tasks: placed (ecs_instances.go), run on Docker (ecs_docker.go),
// described and stopped here.

type ecsTask struct {
	id         string
	cluster    *ecsCluster
	home       arnHome
	def        *taskDef
	service    *ecsService // nil for RunTask
	deployment *ecsDeployment
	group      string
	startedBy  string
	launchType string
	provider   string // capacity provider
	instance   *containerInstance
	gpuIDs     []string
	cpu, mem   int
	overrides  map[string]containerOverride
	tags       []ecsTag

	created, pullStarted, pullStopped, started, stopping, stopped time.Time

	desired, last     string
	stopCode, stopWhy string
	containers        []*taskContainer
	busy              bool      // a Docker goroutine is starting or stopping it
	drainUntil        time.Time // targets drain until then before the task stops
	counted           bool      // counted as a failed task of its deployment
	targets           []*elbTarget
}

type taskContainer struct {
	spec     containerSpec
	id       string // the container ARN's ID
	dockerID string
	digest   string
	last     string
	exitCode *int
	reason   string
	health   string      // HEALTHY | UNHEALTHY | UNKNOWN
	ports    map[int]int // container port → host port, on the task's first container
}

type containerOverride struct {
	Name        string        `json:"name"`
	Command     []string      `json:"command,omitempty"`
	Environment []ecsKeyValue `json:"environment,omitempty"`
}

func (t *ecsTask) arn() string { return t.home.arn("ecs", "task/"+t.cluster.name+"/"+t.id) }

// health is the task's: UNHEALTHY when an essential container is, HEALTHY
// when every essential container with a health check is, else UNKNOWN.
func (t *ecsTask) health() string {
	checked, unknown := false, false
	for _, c := range t.containers {
		if !c.spec.essential() || !hasHealthCheck(c.spec) {
			continue
		}
		checked = true
		switch c.health {
		case "UNHEALTHY":
			return "UNHEALTHY"
		case "HEALTHY":
		default:
			unknown = true
		}
	}
	if !checked || unknown {
		return "UNKNOWN"
	}
	return "HEALTHY"
}

func hasHealthCheck(c containerSpec) bool {
	return c.HealthCheck != nil && len(c.HealthCheck.Command) > 0 && c.HealthCheck.Command[0] != "NONE"
}

// hostPort is where a container port of the task is published.
func (t *ecsTask) hostPort(containerName string, port int) int {
	first := t.containers[0]
	for _, c := range t.containers {
		if c.spec.Name == containerName {
			if hp := first.ports[port]; hp != 0 {
				return hp
			}
		}
	}
	return 0
}

// newTask makes a task in PROVISIONING and starts it on Docker; the caller
// holds the lock.
func (s *Sim) newTask(c *ecsCluster, h arnHome, d *taskDef, lt launchTarget, p ecsPlacement, overrides []containerOverride) *ecsTask {
	cpu, mem := d.cpuMemory()
	t := &ecsTask{
		id: computeHex(32), cluster: c, home: h, def: d, launchType: lt.launchType, provider: lt.provider,
		instance: p.instance, gpuIDs: p.gpuIDs, cpu: cpu, mem: mem, group: "family:" + d.family,
		created: time.Now(), desired: "RUNNING", last: "PROVISIONING", overrides: map[string]containerOverride{},
	}
	for _, o := range overrides {
		t.overrides[o.Name] = o
	}
	for _, cs := range d.spec.ContainerDefinitions {
		t.containers = append(t.containers, &taskContainer{spec: cs, id: computeUUID(), last: "PENDING", health: "UNKNOWN", ports: map[int]int{}})
	}
	c.tasks[t.id] = t
	s.startTask(t)
	return t
}

// ---- the task operations

type ecsNetworkBinding struct {
	BindIP        string `json:"bindIP"`
	ContainerPort int    `json:"containerPort"`
	HostPort      int    `json:"hostPort"`
	Protocol      string `json:"protocol"`
}

type ecsContainerOut struct {
	ContainerArn      string              `json:"containerArn"`
	TaskArn           string              `json:"taskArn"`
	Name              string              `json:"name"`
	Image             string              `json:"image"`
	ImageDigest       string              `json:"imageDigest,omitempty"`
	RuntimeID         string              `json:"runtimeId,omitempty"`
	LastStatus        string              `json:"lastStatus"`
	ExitCode          *int                `json:"exitCode,omitempty"`
	Reason            string              `json:"reason,omitempty"`
	HealthStatus      string              `json:"healthStatus"`
	NetworkBindings   []ecsNetworkBinding `json:"networkBindings"`
	NetworkInterfaces []map[string]string `json:"networkInterfaces"`
	Cpu               string              `json:"cpu"`
	Memory            string              `json:"memory,omitempty"`
	MemoryReservation string              `json:"memoryReservation,omitempty"`
	GpuIds            []string            `json:"gpuIds,omitempty"`
}

type ecsTaskOut struct {
	TaskArn              string            `json:"taskArn"`
	ClusterArn           string            `json:"clusterArn"`
	TaskDefinitionArn    string            `json:"taskDefinitionArn"`
	ContainerInstanceArn string            `json:"containerInstanceArn,omitempty"`
	Containers           []ecsContainerOut `json:"containers"`
	LastStatus           string            `json:"lastStatus"`
	DesiredStatus        string            `json:"desiredStatus"`
	HealthStatus         string            `json:"healthStatus"`
	Cpu                  string            `json:"cpu,omitempty"`
	Memory               string            `json:"memory,omitempty"`
	CreatedAt            *ecsEpoch         `json:"createdAt,omitempty"`
	PullStartedAt        *ecsEpoch         `json:"pullStartedAt,omitempty"`
	PullStoppedAt        *ecsEpoch         `json:"pullStoppedAt,omitempty"`
	StartedAt            *ecsEpoch         `json:"startedAt,omitempty"`
	StoppingAt           *ecsEpoch         `json:"stoppingAt,omitempty"`
	StoppedAt            *ecsEpoch         `json:"stoppedAt,omitempty"`
	ExecutionStoppedAt   *ecsEpoch         `json:"executionStoppedAt,omitempty"`
	Connectivity         string            `json:"connectivity,omitempty"`
	ConnectivityAt       *ecsEpoch         `json:"connectivityAt,omitempty"`
	StartedBy            string            `json:"startedBy,omitempty"`
	Group                string            `json:"group"`
	LaunchType           string            `json:"launchType"`
	CapacityProviderName string            `json:"capacityProviderName,omitempty"`
	PlatformVersion      string            `json:"platformVersion,omitempty"`
	PlatformFamily       string            `json:"platformFamily,omitempty"`
	AvailabilityZone     string            `json:"availabilityZone,omitempty"`
	StopCode             string            `json:"stopCode,omitempty"`
	StoppedReason        string            `json:"stoppedReason,omitempty"`
	Version              int               `json:"version"`
	Overrides            map[string]any    `json:"overrides"`
	Tags                 []ecsTag          `json:"tags,omitempty"`
}

// out is the Task shape; the caller holds the lock.
func (t *ecsTask) out(tags bool) ecsTaskOut {
	overrides := []containerOverride{}
	for _, c := range t.containers {
		if o, ok := t.overrides[c.spec.Name]; ok {
			overrides = append(overrides, o)
		}
	}
	o := ecsTaskOut{
		TaskArn: t.arn(), ClusterArn: t.cluster.arn(t.home), TaskDefinitionArn: t.def.arn(),
		LastStatus: t.last, DesiredStatus: t.desired, HealthStatus: t.health(),
		CreatedAt: epochOf(t.created), PullStartedAt: epochOf(t.pullStarted), PullStoppedAt: epochOf(t.pullStopped),
		StartedAt: epochOf(t.started), StoppingAt: epochOf(t.stopping), StoppedAt: epochOf(t.stopped),
		StartedBy: t.startedBy, Group: t.group, LaunchType: t.launchType, CapacityProviderName: t.provider,
		StopCode: t.stopCode, StoppedReason: t.stopWhy, Version: 1,
		Overrides: map[string]any{"containerOverrides": overrides},
	}
	if t.last == "STOPPED" {
		o.ExecutionStoppedAt = o.StoppedAt
	}
	if t.cpu > 0 {
		o.Cpu = strconv.Itoa(t.cpu)
	}
	if t.mem > 0 {
		o.Memory = strconv.Itoa(t.mem)
	}
	if !t.started.IsZero() {
		o.Connectivity, o.ConnectivityAt = "CONNECTED", epochOf(t.started)
	}
	if t.launchType == "FARGATE" {
		o.PlatformVersion, o.PlatformFamily = "1.4.0", "Linux"
		o.AvailabilityZone = t.home.region + "a"
	}
	if t.instance != nil {
		o.ContainerInstanceArn = t.instance.arn(t.home, t.cluster.name)
		o.AvailabilityZone = t.instance.az
	}
	if tags {
		o.Tags = t.tags
		if o.Tags == nil {
			o.Tags = []ecsTag{}
		}
	}
	for _, c := range t.containers {
		co := ecsContainerOut{
			ContainerArn: t.home.arn("ecs", "container/"+t.cluster.name+"/"+t.id+"/"+c.id), TaskArn: t.arn(),
			Name: c.spec.Name, Image: c.spec.Image, ImageDigest: c.digest, RuntimeID: c.dockerID,
			LastStatus: c.last, ExitCode: c.exitCode, Reason: c.reason, HealthStatus: c.health,
			NetworkBindings: []ecsNetworkBinding{}, NetworkInterfaces: []map[string]string{},
			Cpu: strconv.Itoa(c.spec.Cpu),
		}
		if c.spec.Memory != nil {
			co.Memory = strconv.Itoa(*c.spec.Memory)
		}
		if c.spec.MemoryReservation != nil {
			co.MemoryReservation = strconv.Itoa(*c.spec.MemoryReservation)
		}
		if c.spec.gpus() > 0 {
			co.GpuIds = t.gpuIDs
		}
		if c.last == "RUNNING" {
			for _, pm := range c.spec.PortMappings {
				if hp := t.hostPort(c.spec.Name, pm.ContainerPort); hp != 0 {
					co.NetworkBindings = append(co.NetworkBindings, ecsNetworkBinding{BindIP: "127.0.0.1", ContainerPort: pm.ContainerPort, HostPort: hp, Protocol: "tcp"})
				}
			}
			if t.def.spec.NetworkMode == "awsvpc" {
				co.NetworkInterfaces = append(co.NetworkInterfaces, map[string]string{"attachmentId": t.id, "privateIpv4Address": "127.0.0.1"})
			}
		}
		o.Containers = append(o.Containers, co)
	}
	return o
}

// findTask resolves a task ID or ARN in a cluster; the caller holds the lock.
func (c *ecsCluster) findTask(ref string) *ecsTask { return c.tasks[arnName(ref)] }

func (s *Sim) runTask(h arnHome, body []byte) (any, error) {
	var in struct {
		Cluster                  string          `json:"cluster"`
		TaskDefinition           string          `json:"taskDefinition"`
		Count                    *int            `json:"count"`
		LaunchType               string          `json:"launchType"`
		CapacityProviderStrategy []capacityItem  `json:"capacityProviderStrategy"`
		StartedBy                string          `json:"startedBy"`
		Group                    string          `json:"group"`
		NetworkConfiguration     json.RawMessage `json:"networkConfiguration"`
		PlacementConstraints     []placementRule `json:"placementConstraints"`
		Tags                     []ecsTag        `json:"tags"`
		Overrides                *struct {
			ContainerOverrides []containerOverride `json:"containerOverrides"`
		} `json:"overrides"`
	}
	if err := computeDecode(body, &in); err != nil {
		return nil, err
	}
	count := 1
	if in.Count != nil {
		count = *in.Count
	}
	if count < 1 || count > 10 {
		return nil, ecsInvalid("count must be between 1 and 10.")
	}
	for _, p := range in.PlacementConstraints {
		if p.Type == "memberOf" {
			if _, err := parseECSExpression(p.Expression); err != nil {
				return nil, ecsInvalid("%s", err.(*Error).Message)
			}
		}
	}
	f := s.compute
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.findCluster(in.Cluster)
	if err != nil {
		return nil, err
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
	if err := resolveLaunch(c, d, in.LaunchType, in.CapacityProviderStrategy); err != nil {
		return nil, err
	}
	var overrides []containerOverride
	if in.Overrides != nil {
		overrides = in.Overrides.ContainerOverrides
		for _, o := range overrides {
			if !slices.ContainsFunc(d.spec.ContainerDefinitions, func(cs containerSpec) bool { return cs.Name == o.Name }) {
				return nil, ecsInvalid("Override for container named %s is not a container in the TaskDefinition.", o.Name)
			}
		}
	}
	out := struct {
		Tasks    []ecsTaskOut `json:"tasks"`
		Failures []ecsFailure `json:"failures"`
	}{Tasks: []ecsTaskOut{}, Failures: []ecsFailure{}}
	counts := map[string]int{}
	for range count {
		lt := pickLaunch(in.LaunchType, in.CapacityProviderStrategy, counts)
		var p ecsPlacement
		if lt.launchType == "EC2" {
			p = s.placeScaling(c, d, lt.provider, nil, in.PlacementConstraints)
			if p.instance == nil {
				if p.reason == "RESOURCE:CONTAINER_INSTANCE" {
					return nil, ecsInvalid("%s", p.message)
				}
				out.Failures = append(out.Failures, ecsFailure{Arn: "", Reason: p.reason, Detail: p.message})
				continue
			}
		}
		counts[lt.provider]++
		t := s.newTask(c, h, d, lt, p, overrides)
		t.startedBy, t.tags = in.StartedBy, in.Tags
		if in.Group != "" {
			t.group = in.Group
		}
		out.Tasks = append(out.Tasks, t.out(false))
	}
	return out, nil
}

func (s *Sim) stopTask(_ arnHome, body []byte) (any, error) {
	var in struct {
		Cluster string `json:"cluster"`
		Task    string `json:"task"`
		Reason  string `json:"reason"`
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
	t := c.findTask(in.Task)
	if t == nil {
		return nil, ecsInvalid("The referenced task was not found.")
	}
	why := in.Reason
	if why == "" {
		why = "Task stopped by user"
	}
	f.beginStop(t, "UserInitiated", why)
	return struct {
		Task ecsTaskOut `json:"task"`
	}{t.out(false)}, nil
}

// page cuts a sorted list of ARNs at a nextToken (an offset).
func ecsPage(arns []string, token string, max *int, def int) ([]string, string, error) {
	start := 0
	if token != "" {
		b, err := base64.RawURLEncoding.DecodeString(token)
		if err == nil {
			start, err = strconv.Atoi(string(b))
		}
		if err != nil || start < 0 || start > len(arns) {
			return nil, "", ecsInvalid("Invalid nextToken.")
		}
	}
	n := def
	if max != nil {
		if *max < 1 || *max > 100 {
			return nil, "", ecsInvalid("maxResults must be between 1 and 100.")
		}
		n = *max
	}
	end := min(start+n, len(arns))
	next := ""
	if end < len(arns) {
		next = base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(end)))
	}
	return arns[start:end], next, nil
}

func (s *Sim) listTasks(_ arnHome, body []byte) (any, error) {
	var in struct {
		Cluster           string `json:"cluster"`
		ServiceName       string `json:"serviceName"`
		Family            string `json:"family"`
		StartedBy         string `json:"startedBy"`
		DesiredStatus     string `json:"desiredStatus"`
		LaunchType        string `json:"launchType"`
		ContainerInstance string `json:"containerInstance"`
		NextToken         string `json:"nextToken"`
		MaxResults        *int   `json:"maxResults"`
	}
	if err := computeDecode(body, &in); err != nil {
		return nil, err
	}
	if in.DesiredStatus == "" {
		in.DesiredStatus = "RUNNING"
	}
	f := s.compute
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.findCluster(in.Cluster)
	if err != nil {
		return nil, err
	}
	if in.ServiceName != "" && c.services[arnName(in.ServiceName)] == nil {
		return nil, Errorf("ServiceNotFoundException", "Service not found.")
	}
	var tasks []*ecsTask
	for _, t := range c.tasks {
		switch {
		case in.DesiredStatus == "STOPPED" && t.desired != "STOPPED",
			in.DesiredStatus != "STOPPED" && t.desired == "STOPPED",
			in.ServiceName != "" && (t.service == nil || t.service.name != arnName(in.ServiceName)),
			in.Family != "" && t.def.family != in.Family,
			in.StartedBy != "" && t.startedBy != in.StartedBy,
			in.LaunchType != "" && t.launchType != in.LaunchType,
			in.ContainerInstance != "" && (t.instance == nil || t.instance.id != arnName(in.ContainerInstance)):
			continue
		}
		tasks = append(tasks, t)
	}
	sort.Slice(tasks, func(i, j int) bool { return tasks[i].created.Before(tasks[j].created) })
	arns := []string{}
	for _, t := range tasks {
		arns = append(arns, t.arn())
	}
	arns, next, err := ecsPage(arns, in.NextToken, in.MaxResults, 100)
	if err != nil {
		return nil, err
	}
	return struct {
		TaskArns  []string `json:"taskArns"`
		NextToken string   `json:"nextToken,omitempty"`
	}{arns, next}, nil
}

func (s *Sim) describeTasks(_ arnHome, body []byte) (any, error) {
	var in struct {
		Cluster string   `json:"cluster"`
		Tasks   []string `json:"tasks"`
		Include []string `json:"include"`
	}
	if err := computeDecode(body, &in); err != nil {
		return nil, err
	}
	if len(in.Tasks) == 0 {
		return nil, ecsInvalid("Tasks cannot be empty.")
	}
	if len(in.Tasks) > 100 {
		return nil, ecsInvalid("Tasks can have at most 100 items.")
	}
	f := s.compute
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.findCluster(in.Cluster)
	if err != nil {
		return nil, err
	}
	out := struct {
		Tasks    []ecsTaskOut `json:"tasks"`
		Failures []ecsFailure `json:"failures"`
	}{Tasks: []ecsTaskOut{}, Failures: []ecsFailure{}}
	for _, ref := range in.Tasks {
		t := c.findTask(ref)
		if t == nil {
			out.Failures = append(out.Failures, ecsFailure{Arn: ref, Reason: "MISSING"})
			continue
		}
		out.Tasks = append(out.Tasks, t.out(slices.Contains(in.Include, "TAGS")))
	}
	return out, nil
}
