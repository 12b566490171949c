package awssim

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Container instances are the simulated EC2 instances of Auto Scaling
// groups (instances.go) registered to a cluster; tasks that are not on
// Fargate are placed on them by CPU, memory, GPUs and attributes.

type containerInstance struct {
	id           string
	ec2          string
	group        string
	provider     string // the capacity provider it counts for
	instanceType string
	az           string
	cpu, mem     int
	gpuIDs       []string
	status       string // ACTIVE | INACTIVE
	registeredAt time.Time
	attrs        map[string]string
}

func (ci *containerInstance) arn(h arnHome, cluster string) string {
	return h.arn("ecs", "container-instance/"+cluster+"/"+ci.id)
}

// ecsInstanceSizes are vCPUs and GiB of the instance types tests use; ECS
// registers 1024 CPU units per vCPU and a little less memory than the type
// has (the agent sees what the kernel leaves), here 96 %.
var ecsInstanceSizes = map[string][2]int{
	"g4dn.xlarge": {4, 16}, "g4dn.2xlarge": {8, 32}, "g4dn.4xlarge": {16, 64}, "g4dn.8xlarge": {32, 128},
	"g4dn.12xlarge": {48, 192}, "g4dn.16xlarge": {64, 256}, "g5.xlarge": {4, 16}, "g5.2xlarge": {8, 32},
	"g6.xlarge": {4, 16}, "p3.2xlarge": {8, 61}, "t3.medium": {2, 4}, "t3.large": {2, 8},
	"m5.large": {2, 8}, "m5.xlarge": {4, 16}, "c5.xlarge": {4, 8},
}

func ecsRegisteredSize(instanceType string) (cpu, mem int) {
	sz, ok := ecsInstanceSizes[instanceType]
	if !ok {
		sz = [2]int{4, 16}
	}
	return sz[0] * 1024, sz[1] * 1024 * 96 / 100
}

// gpuID is a stable NVIDIA-style GPU ID for a simulated instance's GPU.
func ecsGPUID(instance string, i int) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", instance, i)))
	h := hex.EncodeToString(sum[:16])
	return "GPU-" + h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// RegisterContainerInstances joins the Auto Scaling group's instances to
// the cluster, as the ECS agent does when an instance boots with
// ECS_CLUSTER set, and keeps doing so: instances the group gains later
// join, and those it loses leave (their tasks stop). For unit tests: here
// the group's instances belong to a capacity provider of the group's name;
// a stack links them through AWS::ECS::ClusterCapacityProviderAssociations
// instead. The cluster is made if it does not exist.
func (s *Sim) RegisterContainerInstances(cluster, group string) {
	s.compute.mu.Lock()
	c := s.compute.cluster(cluster)
	if !slices.Contains(c.groups, group) {
		c.groups = append(c.groups, group)
	}
	c.providers[group] = group
	s.compute.mu.Unlock()
	s.syncInstances()
}

// syncInstances brings each cluster's container instances in line with
// its groups' instances. It calls into the Auto Scaling side without the
// compute lock.
func (s *Sim) syncInstances() {
	f := s.compute
	f.mu.Lock()
	bound := map[string][]string{}
	for name, c := range f.clusters {
		bound[name] = slices.Clone(c.groups)
	}
	f.mu.Unlock()
	members := map[string][]Instance{}
	for _, groups := range bound {
		for _, g := range groups {
			if _, ok := members[g]; !ok {
				members[g] = s.GroupInstances(g)
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for name, groups := range bound {
		c := f.clusters[name]
		for _, g := range groups {
			present := map[string]bool{}
			for _, in := range members[g] {
				present[in.ID] = true
				if c.instanceByEC2(in.ID) == nil {
					c.addInstance(in)
				}
			}
			for _, ci := range c.instances {
				if ci.group == g && ci.status == "ACTIVE" && !present[ci.ec2] {
					ci.status = "INACTIVE"
					for _, t := range c.tasks {
						if t.instance == ci && t.desired != "STOPPED" {
							f.beginStop(t, "TerminationNotice", fmt.Sprintf("Host EC2 (instance %s) terminated.", ci.ec2))
						}
					}
				}
			}
		}
	}
}

func (c *ecsCluster) instanceByEC2(id string) *containerInstance {
	for _, ci := range c.instances {
		if ci.ec2 == id && ci.status == "ACTIVE" {
			return ci
		}
	}
	return nil
}

func (c *ecsCluster) addInstance(in Instance) {
	cpu, mem := ecsRegisteredSize(in.InstanceType)
	ci := &containerInstance{
		id: computeHex(32), ec2: in.ID, group: in.Group, instanceType: in.InstanceType, az: in.AZ,
		cpu: cpu, mem: mem, status: "ACTIVE", registeredAt: time.Now(),
		attrs: map[string]string{
			"ecs.instance-type":     in.InstanceType,
			"ecs.availability-zone": in.AZ,
			"ecs.os-type":           "linux",
			"ecs.cpu-architecture":  "x86_64",
			"ecs.ami-id":            cmp.Or(in.ImageID, "ami-0awssim0000000000"),
		},
	}
	for p, g := range c.providers {
		if g == in.Group {
			ci.provider = p
		}
	}
	if in.GPU != nil {
		for i := range in.GPU.Count {
			ci.gpuIDs = append(ci.gpuIDs, ecsGPUID(in.ID, i))
		}
		if in.GPU.Count > 0 {
			ci.attrs["ecs.capability.nvidia-driver-version."+in.GPU.DriverVersion] = ""
		}
	}
	c.instances[ci.id] = ci
}

func (c *ecsCluster) activeInstances() []*containerInstance {
	var out []*containerInstance
	for _, ci := range c.instances {
		if ci.status == "ACTIVE" {
			out = append(out, ci)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ec2 < out[j].ec2 })
	return out
}

// used is what the tasks on an instance reserve.
func (c *ecsCluster) used(ci *containerInstance) (cpu, mem int, gpus []string, tasks []*ecsTask) {
	for _, t := range c.tasks {
		if t.instance == ci && t.last != "STOPPED" {
			cpu += t.cpu
			mem += t.mem
			gpus = append(gpus, t.gpuIDs...)
			tasks = append(tasks, t)
		}
	}
	return cpu, mem, gpus, tasks
}

// ecsPlacement is where a task goes, or why it goes nowhere: reason is
// RunTask's failure reason, message the service event's explanation.
type ecsPlacement struct {
	instance        *containerInstance
	gpuIDs          []string
	reason, message string
}

// place finds an EC2 container instance for a task; the caller holds the lock.
func (f *compute) place(c *ecsCluster, d *taskDef, provider string, svc *ecsService, extra []placementRule) ecsPlacement {
	var candidates []*containerInstance
	for _, ci := range c.activeInstances() {
		if provider == "" || ci.provider == provider {
			candidates = append(candidates, ci)
		}
	}
	if len(candidates) == 0 {
		where := "cluster"
		if provider != "" {
			where = "capacity provider"
		}
		return ecsPlacement{reason: "RESOURCE:CONTAINER_INSTANCE", message: "No Container Instances were found in your " + where + "."}
	}
	var exprs []ecsExpression
	distinct := false
	for _, r := range append(slices.Clone(d.spec.PlacementConstraints), extra...) {
		switch r.Type {
		case "distinctInstance":
			distinct = true
		case "memberOf":
			x, _ := parseECSExpression(r.Expression)
			exprs = append(exprs, x)
		}
	}
	cpu, mem := d.cpuMemory()
	gpus := d.gpus()
	var closest ecsPlacement
	for _, ci := range candidates {
		usedCPU, usedMem, usedGPUs, tasks := c.used(ci)
		var p ecsPlacement
		switch {
		case !matchesAll(exprs, ci.attrs):
			p = ecsPlacement{reason: "MemberOf", message: "is missing an attribute required by your task"}
		case distinct && svc != nil && slices.ContainsFunc(tasks, func(t *ecsTask) bool { return t.service == svc }):
			p = ecsPlacement{reason: "DistinctInstance", message: "is already running a task of this service"}
		case cpu > ci.cpu-usedCPU:
			p = ecsPlacement{reason: "RESOURCE:CPU", message: "has insufficient CPU units available"}
		case mem > ci.mem-usedMem:
			p = ecsPlacement{reason: "RESOURCE:MEMORY", message: "has insufficient memory available"}
		case gpus > len(ci.gpuIDs)-len(usedGPUs):
			p = ecsPlacement{reason: "RESOURCE:GPU", message: "has insufficient GPU available"}
		default:
			var free []string
			for _, g := range ci.gpuIDs {
				if !slices.Contains(usedGPUs, g) {
					free = append(free, g)
				}
			}
			return ecsPlacement{instance: ci, gpuIDs: free[:gpus]}
		}
		if closest.reason == "" {
			p.message = fmt.Sprintf("The closest matching (container-instance %s) %s.", ci.id, p.message)
			closest = p
		}
	}
	return closest
}

// placeScaling places a task, and when it fits nowhere on a capacity
// provider with managed scaling, grows the provider's Auto Scaling group
// (one step at a time, up to its maximum) and places it on the new
// instance, as ECS does once the instance has joined; the caller holds the
// compute lock (the fleet's is taken inside it, never the other way round).
func (s *Sim) placeScaling(c *ecsCluster, d *taskDef, provider string, svc *ecsService, extra []placementRule) ecsPlacement {
	f := s.compute
	for {
		p := f.place(c, d, provider, svc, extra)
		if p.instance != nil || !s.scaleOut(c, provider) {
			return p
		}
	}
}

// scaleOut launches one more instance in a managed provider's group and
// joins it to the cluster; it says whether it did.
func (s *Sim) scaleOut(c *ecsCluster, provider string) bool {
	cp := s.compute.providers[provider]
	if cp == nil || !cp.managed || c.providers[provider] != cp.group {
		return false
	}
	fl := s.fleet
	fl.mu.Lock()
	g := fl.groups[cp.group]
	if g == nil || g.want >= g.max {
		fl.mu.Unlock()
		return false
	}
	g.want++
	fl.reconcile(g)
	members := fl.members(g.name)
	fl.mu.Unlock()
	for _, in := range members {
		if c.instanceByEC2(in.ID) == nil {
			c.addInstance(in)
		}
	}
	return true
}

func matchesAll(exprs []ecsExpression, attrs map[string]string) bool {
	for _, x := range exprs {
		if !x.matches(attrs) {
			return false
		}
	}
	return true
}

type capacityItem struct {
	CapacityProvider string `json:"capacityProvider"`
	Weight           int    `json:"weight"`
	Base             int    `json:"base"`
}

// launchTarget is a launch type and capacity provider resolved for a task.
type launchTarget struct{ launchType, provider string }

// resolveLaunch checks a launch type or capacity provider strategy against
// the cluster and the task definition; the caller holds the lock.
func resolveLaunch(c *ecsCluster, d *taskDef, launchType string, strategy []capacityItem) error {
	if launchType != "" && len(strategy) > 0 {
		return ecsInvalid("Specifying both a launch type and capacity provider strategy is not supported. Remove one and try again.")
	}
	if len(strategy) > 0 {
		weighted := false
		for _, it := range strategy {
			p := it.CapacityProvider
			if _, ok := c.providers[p]; p != "FARGATE" && p != "FARGATE_SPOT" && !ok {
				return ecsInvalid("The specified capacity provider strategy cannot contain a capacity provider that is not associated with the cluster. Associate the capacity provider with the cluster or specify a valid capacity provider and try again.")
			}
			lt := "EC2"
			if strings.HasPrefix(p, "FARGATE") {
				lt = "FARGATE"
			}
			if !d.compatible(lt) {
				return ecsInvalid("Task definition does not support launch_type %s.", lt)
			}
			weighted = weighted || it.Weight > 0
		}
		if !weighted {
			return ecsInvalid("The specified capacity provider strategy must contain at least one capacity provider with a weight greater than zero.")
		}
		return nil
	}
	switch launchType {
	case "", "EC2", "FARGATE":
	default:
		return ecsInvalid("awssim supports the EC2 and FARGATE launch types, not %s.", launchType)
	}
	if launchType == "" {
		launchType = "EC2"
	}
	if !d.compatible(launchType) {
		return ecsInvalid("Task definition does not support launch_type %s.", launchType)
	}
	return nil
}

// pickLaunch chooses where the next task goes: a launch type, or the
// capacity provider whose base is not yet met, else the one furthest
// below its weight.
func pickLaunch(launchType string, strategy []capacityItem, counts map[string]int) launchTarget {
	if len(strategy) == 0 {
		if launchType == "" {
			launchType = "EC2"
		}
		return launchTarget{launchType: launchType}
	}
	pick := ""
	for _, it := range strategy {
		if counts[it.CapacityProvider] < it.Base {
			pick = it.CapacityProvider
			break
		}
	}
	if pick == "" {
		best := -1.0
		for _, it := range strategy {
			if it.Weight <= 0 {
				continue
			}
			share := float64(counts[it.CapacityProvider]) / float64(it.Weight)
			if best < 0 || share < best {
				best, pick = share, it.CapacityProvider
			}
		}
	}
	if strings.HasPrefix(pick, "FARGATE") {
		return launchTarget{launchType: "FARGATE", provider: pick}
	}
	return launchTarget{launchType: "EC2", provider: pick}
}

// ---- container instance operations

type ecsResource struct {
	Name           string   `json:"name"`
	Type           string   `json:"type"`
	IntegerValue   int      `json:"integerValue"`
	LongValue      int64    `json:"longValue"`
	DoubleValue    float64  `json:"doubleValue"`
	StringSetValue []string `json:"stringSetValue,omitempty"`
}

type ecsAttribute struct {
	Name  string  `json:"name"`
	Value *string `json:"value,omitempty"`
}

type ecsContainerInstanceOut struct {
	ContainerInstanceArn string            `json:"containerInstanceArn"`
	Ec2InstanceID        string            `json:"ec2InstanceId"`
	CapacityProviderName string            `json:"capacityProviderName,omitempty"`
	Version              int               `json:"version"`
	VersionInfo          map[string]string `json:"versionInfo"`
	RemainingResources   []ecsResource     `json:"remainingResources"`
	RegisteredResources  []ecsResource     `json:"registeredResources"`
	Status               string            `json:"status"`
	AgentConnected       bool              `json:"agentConnected"`
	RunningTasksCount    int               `json:"runningTasksCount"`
	PendingTasksCount    int               `json:"pendingTasksCount"`
	Attributes           []ecsAttribute    `json:"attributes"`
	RegisteredAt         *ecsEpoch         `json:"registeredAt"`
	Tags                 []ecsTag          `json:"tags,omitempty"`
}

// resources is ECS's list of an instance's resources: CPU, MEMORY, PORTS,
// PORTS_UDP and, with GPUs, GPU as the set of GPU IDs.
func ecsResources(cpu, mem int, gpus []string, withGPU bool) []ecsResource {
	out := []ecsResource{
		{Name: "CPU", Type: "INTEGER", IntegerValue: cpu},
		{Name: "MEMORY", Type: "INTEGER", IntegerValue: mem},
		{Name: "PORTS", Type: "STRINGSET", StringSetValue: []string{"22", "2375", "2376", "51678", "51679"}},
		{Name: "PORTS_UDP", Type: "STRINGSET", StringSetValue: []string{}},
	}
	if withGPU {
		if gpus == nil {
			gpus = []string{}
		}
		out = append(out, ecsResource{Name: "GPU", Type: "STRINGSET", StringSetValue: gpus})
	}
	return out
}

// out is the ContainerInstance shape; the caller holds the lock.
func (ci *containerInstance) out(h arnHome, c *ecsCluster) ecsContainerInstanceOut {
	usedCPU, usedMem, usedGPUs, tasks := c.used(ci)
	var free []string
	for _, g := range ci.gpuIDs {
		if !slices.Contains(usedGPUs, g) {
			free = append(free, g)
		}
	}
	o := ecsContainerInstanceOut{
		ContainerInstanceArn: ci.arn(h, c.name), Ec2InstanceID: ci.ec2, CapacityProviderName: ci.provider,
		Version: 1, VersionInfo: map[string]string{"agentVersion": "1.89.0", "agentHash": "awssim", "dockerVersion": "DockerVersion: 20.10.25"},
		RegisteredResources: ecsResources(ci.cpu, ci.mem, ci.gpuIDs, len(ci.gpuIDs) > 0),
		RemainingResources:  ecsResources(ci.cpu-usedCPU, ci.mem-usedMem, free, len(ci.gpuIDs) > 0),
		Status:              ci.status, AgentConnected: ci.status == "ACTIVE",
		RegisteredAt: epochOf(ci.registeredAt), Attributes: []ecsAttribute{},
	}
	for _, t := range tasks {
		if t.last == "RUNNING" {
			o.RunningTasksCount++
		} else {
			o.PendingTasksCount++
		}
	}
	names := make([]string, 0, len(ci.attrs))
	for k := range ci.attrs {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		a := ecsAttribute{Name: k}
		if v := ci.attrs[k]; v != "" {
			a.Value = &v
		}
		o.Attributes = append(o.Attributes, a)
	}
	return o
}

func (s *Sim) listContainerInstances(h arnHome, body []byte) (any, error) {
	var in struct {
		Cluster    string `json:"cluster"`
		Filter     string `json:"filter"`
		Status     string `json:"status"`
		NextToken  string `json:"nextToken"`
		MaxResults *int   `json:"maxResults"`
	}
	if err := computeDecode(body, &in); err != nil {
		return nil, err
	}
	var filter *ecsExpression
	if in.Filter != "" {
		x, err := parseECSExpression(in.Filter)
		if err != nil {
			return nil, ecsInvalid("%s", err.(*Error).Message)
		}
		filter = &x
	}
	f := s.compute
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.findCluster(in.Cluster)
	if err != nil {
		return nil, err
	}
	status := in.Status
	if status == "" {
		status = "ACTIVE"
	}
	var cis []*containerInstance
	for _, ci := range c.instances {
		if ci.status == status && (filter == nil || filter.matches(ci.attrs)) {
			cis = append(cis, ci)
		}
	}
	sort.Slice(cis, func(i, j int) bool {
		return cis[i].registeredAt.Before(cis[j].registeredAt) || cis[i].registeredAt.Equal(cis[j].registeredAt) && cis[i].ec2 < cis[j].ec2
	})
	arns := []string{}
	for _, ci := range cis {
		arns = append(arns, ci.arn(h, c.name))
	}
	arns, next, err := ecsPage(arns, in.NextToken, in.MaxResults, 100)
	if err != nil {
		return nil, err
	}
	return struct {
		ContainerInstanceArns []string `json:"containerInstanceArns"`
		NextToken             string   `json:"nextToken,omitempty"`
	}{arns, next}, nil
}

func (s *Sim) describeContainerInstances(h arnHome, body []byte) (any, error) {
	var in struct {
		Cluster            string   `json:"cluster"`
		ContainerInstances []string `json:"containerInstances"`
		Include            []string `json:"include"`
	}
	if err := computeDecode(body, &in); err != nil {
		return nil, err
	}
	if len(in.ContainerInstances) > 100 {
		return nil, ecsInvalid("containerInstances can have at most 100 items.")
	}
	f := s.compute
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.findCluster(in.Cluster)
	if err != nil {
		return nil, err
	}
	out := struct {
		ContainerInstances []ecsContainerInstanceOut `json:"containerInstances"`
		Failures           []ecsFailure              `json:"failures"`
	}{ContainerInstances: []ecsContainerInstanceOut{}, Failures: []ecsFailure{}}
	for _, ref := range in.ContainerInstances {
		ci := c.instances[arnName(ref)]
		if ci == nil {
			out.Failures = append(out.Failures, ecsFailure{Arn: ref, Reason: "MISSING"})
			continue
		}
		o := ci.out(h, c)
		if slices.Contains(in.Include, "TAGS") {
			o.Tags = []ecsTag{}
		}
		out.ContainerInstances = append(out.ContainerInstances, o)
	}
	return out, nil
}
