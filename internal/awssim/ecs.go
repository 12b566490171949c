package awssim

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math/big"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/client"
)

// The ECS, ELBv2 and Application Auto Scaling simulations share one state,
// compute: services place tasks on container instances, register them in
// target groups and scale within scalable targets, so one lock guards all.
// Docker calls and HTTP probes are never made under it.
type compute struct {
	mu         sync.Mutex
	clusters   map[string]*ecsCluster
	families   map[string][]*taskDef // revisions in order: revision n is [n-1]
	lbs        map[string]*loadBalancer
	tgs        map[string]*targetGroup
	scalables  map[string]*scalableTarget // by namespace|resource|dimension
	policies   map[string]*scalingPolicy  // by namespace|resource|dimension|name
	schedules  map[string]*scheduledAction
	pulled     map[string]string            // image reference → digest, pulled once per simulator
	providers  map[string]*capacityProvider // ECS capacity providers over Auto Scaling groups
	namespaces map[string]string            // Cloud Map namespaces: name → ARN
	tgSecond   time.Duration                // a second of a stack's target group timings

	breaker      int               // circuit breaker threshold; 0: ECS's own rule
	healthSecond time.Duration     // how long a task definition's health-check second lasts
	bakeMinute   time.Duration     // how long a minute of blue/green bake time lasts
	alarms       map[string]string // CloudWatch alarm states that deployments watch (SetAlarmState)
	stopTimeout  time.Duration     // longest wait for a container to stop before it is killed

	ctx    context.Context // cancelled on Close: ends the reconciler, probes and Docker work
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Timings of the simulation, short so that tests run fast.
const (
	reconcileEvery      = 150 * time.Millisecond // the ECS service scheduler's period
	defaultHealthSecond = 100 * time.Millisecond // a 5 s health-check interval runs every 0.5 s
	defaultStopTimeout  = 2 * time.Second
	maxServiceEvents    = 100 // ECS keeps the last 100 events of a service
)

// defaultRegion is the region of the ARNs the test API returns (no request
// says which), and of requests signed without one. Requests otherwise see
// ARNs in their own signing region and account; objects are found by the
// name or ID at the end of an ARN, whatever region and account it names.
const defaultRegion = "ap-northeast-1"

// startCompute registers ECS, ELBv2 and Application Auto Scaling and starts
// the ECS service scheduler; Close stops it and removes every container the
// simulator started.
func (s *Sim) startCompute() {
	ctx, cancel := context.WithCancel(context.Background())
	s.compute = &compute{
		clusters:     map[string]*ecsCluster{},
		families:     map[string][]*taskDef{},
		lbs:          map[string]*loadBalancer{},
		tgs:          map[string]*targetGroup{},
		scalables:    map[string]*scalableTarget{},
		policies:     map[string]*scalingPolicy{},
		schedules:    map[string]*scheduledAction{},
		pulled:       map[string]string{},
		providers:    map[string]*capacityProvider{},
		namespaces:   map[string]string{},
		healthSecond: defaultHealthSecond,
		bakeMinute:   defaultBakeMinute,
		stopTimeout:  defaultStopTimeout,
		ctx:          ctx,
		cancel:       cancel,
	}
	s.RegisterJSON("AmazonEC2ContainerServiceV20141113", JSONService{Name: "ECS", Handler: s.ecs})
	s.RegisterJSON("AnyScaleFrontendService", JSONService{Name: "ApplicationAutoScaling", Handler: s.appAutoScaling})
	s.RegisterQuery(elbVersion, QueryService{Name: "ELBv2", XMLNS: elbXMLNS, Handler: s.elbv2})
	s.compute.wg.Add(1)
	go s.runScheduler()
	s.OnClose(s.closeCompute)
}

// SetCircuitBreakerThreshold makes a deployment with the circuit breaker
// fail after n failed tasks, instead of ECS's own rule (half the desired
// count, at least 3 and at most 200).
func (s *Sim) SetCircuitBreakerThreshold(n int) {
	s.compute.mu.Lock()
	defer s.compute.mu.Unlock()
	s.compute.breaker = n
}

// SetHealthCheckSecond sets how long one second of a task definition's
// health check (interval, start period) and of a service's health-check
// grace period lasts in the simulation; 100 ms by default. Timeouts are
// not scaled: they only bound a check that hangs.
func (s *Sim) SetHealthCheckSecond(d time.Duration) {
	s.compute.mu.Lock()
	defer s.compute.mu.Unlock()
	s.compute.healthSecond = d
}

// arnHome is where a request comes from: its signing region and the
// account of its signer. ARNs are written in it.
type arnHome struct{ region, account string }

func (h arnHome) arn(service, resource string) string {
	return "arn:aws:" + service + ":" + h.region + ":" + h.account + ":" + resource
}

// computeCaller authenticates a request as AWS does: an unknown access key
// is refused.
func (s *Sim) computeCaller(r *http.Request, query bool) (arnHome, error) {
	p, ok := s.Caller(r)
	if !ok {
		if query {
			return arnHome{}, &Error{Status: http.StatusForbidden, Code: "InvalidClientTokenId", Message: "The security token included in the request is invalid."}
		}
		return arnHome{}, Errorf("UnrecognizedClientException", "The security token included in the request is invalid.")
	}
	return arnHome{region: ecsSigningRegion(r), account: p.Account}, nil
}

var ecsScopeRe = regexp.MustCompile(`Credential=[^/]+/\d{8}/([^/]+)/`)

// ecsSigningRegion is the region of the request's SigV4 credential scope.
func ecsSigningRegion(r *http.Request) string {
	if m := ecsScopeRe.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
		return m[1]
	}
	return defaultRegion
}

// computeDocker is the engine UseDocker gave, or nil.
func (s *Sim) computeDocker() *client.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.docker
}

// defaultHome is the home of objects the test API makes: the first account
// that has a user, in the default region.
func (s *Sim) defaultHome() arnHome {
	s.mu.Lock()
	defer s.mu.Unlock()
	accounts := []string{}
	for _, p := range s.users {
		accounts = append(accounts, p.Account)
	}
	slices.Sort(accounts)
	h := arnHome{region: defaultRegion, account: "000000000000"}
	if len(accounts) > 0 {
		h.account = accounts[0]
	}
	return h
}

// ecsEpoch is a JSON 1.1 timestamp: seconds since the epoch, as a number.
type ecsEpoch time.Time

func (t ecsEpoch) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, float64(time.Time(t).UnixMilli())/1000, 'f', -1, 64), nil
}

// epochOf is nil for the zero time, so that omitempty leaves it out.
func epochOf(t time.Time) *ecsEpoch {
	if t.IsZero() {
		return nil
	}
	e := ecsEpoch(t)
	return &e
}

func computeDecode(body []byte, v any) error {
	if len(body) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return Errorf("SerializationException", "%v", err)
	}
	return nil
}

func computeHex(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

func computeUUID() string {
	h := computeHex(32)
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-" + h[16:20] + "-" + h[20:32]
}

func computeDigits(n int) string {
	var b strings.Builder
	for range n {
		d, _ := rand.Int(rand.Reader, big.NewInt(10))
		b.WriteString(d.String())
	}
	return b.String()
}

// arnName is the name or ID at the end of an ARN (or the string itself):
// the simulator finds objects by it, whatever account the ARN names.
func arnName(s string) string {
	if i := strings.LastIndexAny(s, "/:"); i >= 0 && strings.HasPrefix(s, "arn:") {
		return s[i+1:]
	}
	return s
}

// ---- the ECS dispatcher

type ecsOp func(h arnHome, body []byte) (any, error)

func (s *Sim) ecs(r *http.Request, op string, body []byte) (any, error) {
	ops := map[string]ecsOp{
		"RegisterTaskDefinition":     s.registerTaskDefinition,
		"DescribeTaskDefinition":     s.describeTaskDefinition,
		"DeregisterTaskDefinition":   s.deregisterTaskDefinition,
		"CreateService":              s.createService,
		"UpdateService":              s.updateService,
		"DeleteService":              s.deleteService,
		"DescribeServices":           s.describeServices,
		"ListServices":               s.listServices,
		"ListServiceDeployments":     s.listServiceDeployments,
		"DescribeServiceDeployments": s.describeServiceDeployments,
		"ListTasks":                  s.listTasks,
		"DescribeTasks":              s.describeTasks,
		"RunTask":                    s.runTask,
		"StopTask":                   s.stopTask,
		"DescribeClusters":           s.describeClusters,
		"ListContainerInstances":     s.listContainerInstances,
		"DescribeContainerInstances": s.describeContainerInstances,
		"TagResource":                s.tagResource,
		"ListTagsForResource":        s.listTagsForResource,
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

func ecsInvalid(format string, args ...any) *Error {
	return Errorf("InvalidParameterException", format, args...)
}

func ecsClient(format string, args ...any) *Error {
	return Errorf("ClientException", format, args...)
}

// ---- clusters

type ecsCluster struct {
	name      string
	services  map[string]*ecsService
	tasks     map[string]*ecsTask
	instances map[string]*containerInstance // by container instance ID
	groups    []string                      // Auto Scaling groups whose instances join the cluster
	providers map[string]string             // capacity provider → its Auto Scaling group
	fargate   []string                      // FARGATE, FARGATE_SPOT as associated
	insights  string                        // Container Insights: enabled | disabled
	namespace string                        // Service Connect's default namespace
}

// CreateCluster makes an ECS cluster for a unit test; everywhere else a
// stack makes them (the account starts empty). Creating one that exists
// does nothing.
func (s *Sim) CreateCluster(name string) {
	s.compute.mu.Lock()
	defer s.compute.mu.Unlock()
	s.compute.cluster(name)
}

// cluster finds or makes a cluster; the caller holds the lock.
func (f *compute) cluster(name string) *ecsCluster {
	c := f.clusters[name]
	if c == nil {
		c = &ecsCluster{name: name, services: map[string]*ecsService{}, tasks: map[string]*ecsTask{}, instances: map[string]*containerInstance{}, providers: map[string]string{}}
		f.clusters[name] = c
	}
	return c
}

// findCluster resolves a cluster parameter (name, ARN, or empty for
// "default"); the caller holds the lock.
func (f *compute) findCluster(param string) (*ecsCluster, error) {
	name := "default"
	if param != "" {
		name = arnName(param)
	}
	c := f.clusters[name]
	if c == nil {
		return nil, Errorf("ClusterNotFoundException", "Cluster not found.")
	}
	return c, nil
}

func (c *ecsCluster) arn(h arnHome) string { return h.arn("ecs", "cluster/"+c.name) }

type ecsFailure struct {
	Arn    string `json:"arn,omitempty"`
	Reason string `json:"reason,omitempty"`
	Detail string `json:"detail,omitempty"`
}

type ecsTag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type ecsKeyValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type ecsClusterOut struct {
	ClusterArn                        string        `json:"clusterArn"`
	ClusterName                       string        `json:"clusterName"`
	Status                            string        `json:"status"`
	RegisteredContainerInstancesCount int           `json:"registeredContainerInstancesCount"`
	RunningTasksCount                 int           `json:"runningTasksCount"`
	PendingTasksCount                 int           `json:"pendingTasksCount"`
	ActiveServicesCount               int           `json:"activeServicesCount"`
	CapacityProviders                 []string      `json:"capacityProviders"`
	Settings                          []ecsKeyValue `json:"settings"`
	Statistics                        []ecsKeyValue `json:"statistics"`
	Tags                              []ecsTag      `json:"tags"`
}

func (s *Sim) describeClusters(h arnHome, body []byte) (any, error) {
	var in struct {
		Clusters []string `json:"clusters"`
		Include  []string `json:"include"`
	}
	if err := computeDecode(body, &in); err != nil {
		return nil, err
	}
	if len(in.Clusters) == 0 {
		in.Clusters = []string{"default"}
	}
	if len(in.Clusters) > 100 {
		return nil, ecsInvalid("clusters can have at most 100 items.")
	}
	f := s.compute
	f.mu.Lock()
	defer f.mu.Unlock()
	out := struct {
		Clusters []ecsClusterOut `json:"clusters"`
		Failures []ecsFailure    `json:"failures"`
	}{Clusters: []ecsClusterOut{}, Failures: []ecsFailure{}}
	for _, p := range in.Clusters {
		c := f.clusters[arnName(p)]
		if c == nil {
			out.Failures = append(out.Failures, ecsFailure{Arn: h.arn("ecs", "cluster/"+arnName(p)), Reason: "MISSING"})
			continue
		}
		co := ecsClusterOut{
			ClusterArn: c.arn(h), ClusterName: c.name, Status: "ACTIVE",
			RegisteredContainerInstancesCount: len(c.activeInstances()),
			CapacityProviders:                 []string{"FARGATE", "FARGATE_SPOT"},
			Settings:                          []ecsKeyValue{{Name: "containerInsights", Value: cmp.Or(c.insights, "disabled")}},
			Statistics:                        []ecsKeyValue{},
			Tags:                              []ecsTag{},
		}
		if c.fargate != nil {
			co.CapacityProviders = slices.Clone(c.fargate)
		}
		co.CapacityProviders = append(co.CapacityProviders, slices.Sorted(maps.Keys(c.providers))...)
		for _, t := range c.tasks {
			switch {
			case t.last == "RUNNING":
				co.RunningTasksCount++
			case t.last != "STOPPED":
				co.PendingTasksCount++
			}
		}
		for _, svc := range c.services {
			if svc.status == "ACTIVE" {
				co.ActiveServicesCount++
			}
		}
		out.Clusters = append(out.Clusters, co)
	}
	return out, nil
}

// ---- task definitions

// taskDef is one revision. raw is the registration as sent, echoed back so
// that members the simulator does not act on still round-trip; spec holds
// what it acts on.
type taskDef struct {
	family       string
	revision     int
	home         arnHome
	status       string // ACTIVE | INACTIVE
	registeredAt time.Time
	deregistered time.Time
	registeredBy string
	raw          map[string]any
	tags         []ecsTag
	spec         taskDefSpec
}

func (d *taskDef) arn() string {
	return d.home.arn("ecs", fmt.Sprintf("task-definition/%s:%d", d.family, d.revision))
}

type taskDefSpec struct {
	Family                  string          `json:"family"`
	NetworkMode             string          `json:"networkMode"`
	Cpu                     string          `json:"cpu"`
	Memory                  string          `json:"memory"`
	RequiresCompatibilities []string        `json:"requiresCompatibilities"`
	PlacementConstraints    []placementRule `json:"placementConstraints"`
	ContainerDefinitions    []containerSpec `json:"containerDefinitions"`
	Tags                    []ecsTag        `json:"tags"`
}

type containerSpec struct {
	Name                 string                `json:"name"`
	Image                string                `json:"image"`
	Cpu                  int                   `json:"cpu"`
	Memory               *int                  `json:"memory"`
	MemoryReservation    *int                  `json:"memoryReservation"`
	Essential            *bool                 `json:"essential"`
	EntryPoint           []string              `json:"entryPoint"`
	Command              []string              `json:"command"`
	Environment          []ecsKeyValue         `json:"environment"`
	PortMappings         []portMapping         `json:"portMappings"`
	HealthCheck          *healthCheckSpec      `json:"healthCheck"`
	ResourceRequirements []resourceRequirement `json:"resourceRequirements"`
	LogConfiguration     *struct {
		LogDriver string            `json:"logDriver"`
		Options   map[string]string `json:"options"`
	} `json:"logConfiguration"`
	WorkingDirectory string            `json:"workingDirectory"`
	User             string            `json:"user"`
	DockerLabels     map[string]string `json:"dockerLabels"`
	StopTimeout      *int              `json:"stopTimeout"`
}

func (c containerSpec) essential() bool { return c.Essential == nil || *c.Essential }

func (c containerSpec) gpus() int {
	for _, r := range c.ResourceRequirements {
		if r.Type == "GPU" {
			n, _ := strconv.Atoi(r.Value)
			return n
		}
	}
	return 0
}

type portMapping struct {
	ContainerPort int    `json:"containerPort"`
	HostPort      int    `json:"hostPort,omitempty"`
	Protocol      string `json:"protocol,omitempty"`
	Name          string `json:"name,omitempty"`
	AppProtocol   string `json:"appProtocol,omitempty"`
}

type healthCheckSpec struct {
	Command     []string `json:"command"`
	Interval    *int     `json:"interval"`
	Timeout     *int     `json:"timeout"`
	Retries     *int     `json:"retries"`
	StartPeriod *int     `json:"startPeriod"`
}

type resourceRequirement struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

type placementRule struct {
	Type       string `json:"type"`
	Expression string `json:"expression,omitempty"`
}

// gpus is what the whole task asks for.
func (d *taskDef) gpus() int {
	n := 0
	for _, c := range d.spec.ContainerDefinitions {
		n += c.gpus()
	}
	return n
}

// cpuMemory is what the task reserves: task-level values, or else the sum
// of its containers'.
func (d *taskDef) cpuMemory() (cpu, mem int) {
	cpu, _ = strconv.Atoi(d.spec.Cpu)
	mem, _ = strconv.Atoi(d.spec.Memory)
	if cpu == 0 {
		for _, c := range d.spec.ContainerDefinitions {
			cpu += c.Cpu
		}
	}
	if mem == 0 {
		for _, c := range d.spec.ContainerDefinitions {
			switch {
			case c.Memory != nil:
				mem += *c.Memory
			case c.MemoryReservation != nil:
				mem += *c.MemoryReservation
			}
		}
	}
	return cpu, mem
}

func (d *taskDef) compatible(launchType string) bool {
	if launchType == "EC2" {
		return true
	}
	return slices.Contains(d.compatibilities(), launchType)
}

// compatibilities is what ECS computes: EC2 always, FARGATE when the
// definition meets Fargate's rules.
func (d *taskDef) compatibilities() []string {
	out := []string{"EC2"}
	if d.spec.NetworkMode == "awsvpc" && d.spec.Cpu != "" && d.spec.Memory != "" && d.gpus() == 0 {
		out = append(out, "FARGATE")
	}
	return out
}

// fargateSizes are Fargate's task sizes: CPU units → allowed memory (MiB).
var fargateSizes = map[int][]int{
	256:   {512, 1024, 2048},
	512:   {1024, 2048, 3072, 4096},
	1024:  {2048, 3072, 4096, 5120, 6144, 7168, 8192},
	2048:  fargateSteps(4096, 16384, 1024),
	4096:  fargateSteps(8192, 30720, 1024),
	8192:  fargateSteps(16384, 61440, 4096),
	16384: fargateSteps(32768, 122880, 8192),
}

func fargateSteps(from, to, by int) []int {
	var out []int
	for m := from; m <= to; m += by {
		out = append(out, m)
	}
	return out
}

// checkTaskDef applies the registration rules ECS enforces that matter to
// vmctl; the caller holds no lock.
func checkTaskDef(spec taskDefSpec) error {
	if len(spec.ContainerDefinitions) == 0 {
		return ecsClient("Container list cannot be empty.")
	}
	if len(spec.ContainerDefinitions) > 10 {
		return ecsClient("Too many containers. Maximum allowed is 10.")
	}
	names := map[string]bool{}
	essential := false
	for _, c := range spec.ContainerDefinitions {
		if c.Name == "" {
			return ecsClient("Container.name should not be null or empty.")
		}
		if names[c.Name] {
			return ecsClient("Duplicate container name: %s.", c.Name)
		}
		names[c.Name] = true
		if c.Image == "" {
			return ecsClient("Container.image should not be null or empty.")
		}
		essential = essential || c.essential()
		for _, p := range c.PortMappings {
			if p.ContainerPort <= 0 || p.ContainerPort > 65535 {
				return ecsClient("Invalid 'containerPort' setting for container '%s'.", c.Name)
			}
			if spec.NetworkMode == "awsvpc" && p.HostPort != 0 && p.HostPort != p.ContainerPort {
				return ecsClient("When networkMode=awsvpc, the host ports and container ports in port mappings must match.")
			}
		}
		if hc := c.HealthCheck; hc != nil {
			if len(hc.Command) == 0 || !slices.Contains([]string{"CMD", "CMD-SHELL", "NONE"}, hc.Command[0]) {
				return ecsClient("The healthCheck command for container '%s' must start with CMD, CMD-SHELL or NONE.", c.Name)
			}
			if err := hcBetween(c.Name, "interval", hc.Interval, 5, 300); err != nil {
				return err
			}
			if err := hcBetween(c.Name, "timeout", hc.Timeout, 2, 120); err != nil {
				return err
			}
			if err := hcBetween(c.Name, "retries", hc.Retries, 1, 10); err != nil {
				return err
			}
			if err := hcBetween(c.Name, "startPeriod", hc.StartPeriod, 0, 300); err != nil {
				return err
			}
		}
		for _, r := range c.ResourceRequirements {
			if r.Type != "GPU" && r.Type != "InferenceAccelerator" {
				return ecsClient("Invalid resource requirement type %q for container '%s'.", r.Type, c.Name)
			}
			if n, err := strconv.Atoi(r.Value); r.Type == "GPU" && (err != nil || n < 1) {
				return ecsClient("The GPU resource requirement for container '%s' must be a positive integer.", c.Name)
			}
		}
	}
	if !essential {
		return ecsClient("A task definition must have at least one essential container.")
	}
	for _, p := range spec.PlacementConstraints {
		if p.Type != "memberOf" {
			return ecsClient("Invalid placement constraint type %q: a task definition allows memberOf.", p.Type)
		}
		if _, err := parseECSExpression(p.Expression); err != nil {
			return err
		}
	}
	d := &taskDef{spec: spec}
	for _, c := range spec.RequiresCompatibilities {
		switch c {
		case "EC2", "EXTERNAL", "MANAGED_INSTANCES":
		case "FARGATE":
			if spec.NetworkMode != "awsvpc" {
				return ecsClient("Fargate only supports network mode 'awsvpc'.")
			}
			if spec.Cpu == "" {
				return ecsClient("Fargate requires that 'cpu' be defined at the task level.")
			}
			if spec.Memory == "" {
				return ecsClient("Fargate requires that 'memory' be defined at the task level.")
			}
			if d.gpus() > 0 {
				return ecsClient("Tasks using the Fargate launch type do not support GPU resource requirements.")
			}
			cpu, mem := d.cpuMemory()
			if !slices.Contains(fargateSizes[cpu], mem) {
				return ecsClient("No Fargate configuration exists for given values: %s CPU, %s memory. See the Amazon ECS documentation for the valid values.", spec.Cpu, spec.Memory)
			}
		default:
			return ecsClient("Invalid compatibility %q.", c)
		}
	}
	return nil
}

func hcBetween(container, field string, v *int, lo, hi int) error {
	if v != nil && (*v < lo || *v > hi) {
		return ecsClient("Invalid healthCheck %s for container '%s': it must be between %d and %d.", field, container, lo, hi)
	}
	return nil
}

var ecsFamilyRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)

func (s *Sim) registerTaskDefinition(h arnHome, body []byte) (any, error) {
	var spec taskDefSpec
	if err := computeDecode(body, &spec); err != nil {
		return nil, err
	}
	var raw map[string]any
	if err := computeDecode(body, &raw); err != nil {
		return nil, err
	}
	if spec.Family == "" {
		return nil, ecsClient("Family must not be empty.")
	}
	if !ecsFamilyRe.MatchString(spec.Family) {
		return nil, ecsClient("Family contains invalid characters: up to 255 letters, numbers, hyphens and underscores are allowed.")
	}
	if spec.NetworkMode == "" {
		spec.NetworkMode = "bridge"
	}
	if err := checkTaskDef(spec); err != nil {
		return nil, err
	}
	delete(raw, "tags")
	raw["networkMode"] = spec.NetworkMode
	// ECS fills in what a container definition leaves to its defaults.
	if defs, ok := raw["containerDefinitions"].([]any); ok {
		for _, d := range defs {
			cd, _ := d.(map[string]any)
			if cd == nil {
				continue
			}
			if _, ok := cd["essential"]; !ok {
				cd["essential"] = true
			}
			if _, ok := cd["cpu"]; !ok {
				cd["cpu"] = 0
			}
			for _, k := range []string{"environment", "mountPoints", "volumesFrom", "portMappings"} {
				if _, ok := cd[k]; !ok {
					cd[k] = []any{}
				}
			}
			pms, _ := cd["portMappings"].([]any)
			for _, p := range pms {
				pm, _ := p.(map[string]any)
				if pm == nil {
					continue
				}
				if _, ok := pm["protocol"]; !ok {
					pm["protocol"] = "tcp"
				}
				if _, ok := pm["hostPort"]; !ok && spec.NetworkMode == "awsvpc" {
					pm["hostPort"] = pm["containerPort"]
				}
			}
		}
	}
	f := s.compute
	f.mu.Lock()
	defer f.mu.Unlock()
	d := &taskDef{
		family: spec.Family, revision: len(f.families[spec.Family]) + 1, home: h, status: "ACTIVE",
		registeredAt: time.Now(), registeredBy: "arn:aws:iam::" + h.account + ":root",
		raw: raw, tags: spec.Tags, spec: spec,
	}
	f.families[spec.Family] = append(f.families[spec.Family], d)
	return struct {
		TaskDefinition map[string]any `json:"taskDefinition"`
		Tags           []ecsTag       `json:"tags"`
	}{d.out(), d.tagsOut()}, nil
}

func (d *taskDef) tagsOut() []ecsTag {
	if d.tags == nil {
		return []ecsTag{}
	}
	return d.tags
}

// out is the TaskDefinition shape: the registration plus what ECS adds.
func (d *taskDef) out() map[string]any {
	m := maps.Clone(d.raw)
	m["taskDefinitionArn"] = d.arn()
	m["revision"] = d.revision
	m["status"] = d.status
	m["compatibilities"] = d.compatibilities()
	m["registeredAt"] = ecsEpoch(d.registeredAt)
	m["registeredBy"] = d.registeredBy
	if !d.deregistered.IsZero() {
		m["deregisteredAt"] = ecsEpoch(d.deregistered)
	}
	var requires []map[string]string
	if d.spec.NetworkMode == "awsvpc" {
		requires = append(requires, map[string]string{"name": "ecs.capability.task-eni"})
	}
	for _, c := range d.spec.ContainerDefinitions {
		if c.HealthCheck != nil {
			requires = append(requires, map[string]string{"name": "ecs.capability.container-health-check"})
			break
		}
	}
	if requires != nil {
		m["requiresAttributes"] = requires
	}
	return m
}

// findTaskDef resolves "family", "family:revision" or an ARN; a bare family
// is its latest ACTIVE revision. The caller holds the lock.
func (f *compute) findTaskDef(ref string) *taskDef {
	name := ref
	if strings.HasPrefix(ref, "arn:") {
		_, name, _ = strings.Cut(ref, "task-definition/")
	}
	family, rev, hasRev := strings.Cut(name, ":")
	revs := f.families[family]
	if !hasRev {
		for i := len(revs) - 1; i >= 0; i-- {
			if revs[i].status == "ACTIVE" {
				return revs[i]
			}
		}
		return nil
	}
	n, err := strconv.Atoi(rev)
	if err != nil || n < 1 || n > len(revs) {
		return nil
	}
	return revs[n-1]
}

func (s *Sim) describeTaskDefinition(_ arnHome, body []byte) (any, error) {
	var in struct {
		TaskDefinition string   `json:"taskDefinition"`
		Include        []string `json:"include"`
	}
	if err := computeDecode(body, &in); err != nil {
		return nil, err
	}
	f := s.compute
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.findTaskDef(in.TaskDefinition)
	if d == nil {
		return nil, ecsClient("Unable to describe task definition.")
	}
	out := struct {
		TaskDefinition map[string]any `json:"taskDefinition"`
		Tags           []ecsTag       `json:"tags,omitempty"`
	}{TaskDefinition: d.out()}
	if slices.Contains(in.Include, "TAGS") {
		out.Tags = d.tagsOut()
	}
	return out, nil
}

func (s *Sim) deregisterTaskDefinition(_ arnHome, body []byte) (any, error) {
	var in struct {
		TaskDefinition string `json:"taskDefinition"`
	}
	if err := computeDecode(body, &in); err != nil {
		return nil, err
	}
	if !strings.Contains(strings.TrimPrefix(arnName(in.TaskDefinition), "task-definition/"), ":") && !strings.HasPrefix(in.TaskDefinition, "arn:") {
		return nil, ecsClient("Invalid revision number. Number: %s", in.TaskDefinition)
	}
	f := s.compute
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.findTaskDef(in.TaskDefinition)
	if d == nil {
		return nil, ecsClient("The specified task definition does not exist.")
	}
	if d.status == "ACTIVE" {
		d.status = "INACTIVE"
		d.deregistered = time.Now()
	}
	return struct {
		TaskDefinition map[string]any `json:"taskDefinition"`
	}{d.out()}, nil
}

// ---- cluster query language, as far as vmctl uses it

type ecsExpression struct {
	attr   string
	op     string // == | != | in
	values []string
}

var expressionRe = regexp.MustCompile(`^\s*attribute:([A-Za-z0-9_.\-/]+)\s*(==|!=|in|not_in)\s*(.+?)\s*$`)

// parseECSExpression reads "attribute:NAME == v", "!= v" and "in [a, b]"; the
// rest of the cluster query language is refused loudly.
func parseECSExpression(e string) (ecsExpression, error) {
	m := expressionRe.FindStringSubmatch(e)
	if m == nil {
		return ecsExpression{}, ecsClient("awssim supports placement expressions of the form 'attribute:NAME == VALUE', '!=' or 'in [A, B]', not %q.", e)
	}
	x := ecsExpression{attr: m[1], op: m[2]}
	v := m[3]
	if x.op == "in" || x.op == "not_in" {
		v = strings.TrimSuffix(strings.TrimPrefix(v, "["), "]")
		for _, p := range strings.Split(v, ",") {
			x.values = append(x.values, strings.TrimSpace(p))
		}
	} else {
		x.values = []string{v}
	}
	return x, nil
}

func (x ecsExpression) matches(attrs map[string]string) bool {
	v, ok := attrs[x.attr]
	switch x.op {
	case "==", "in":
		return ok && slices.Contains(x.values, v)
	default:
		return !ok || !slices.Contains(x.values, v)
	}
}
