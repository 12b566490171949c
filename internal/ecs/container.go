package ecs

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/stack"
)

// readKeys are the compose service keys the renderer translates (or checks and then finds
// nothing to carry over, like profiles).
var readKeys = []string{
	"image", "command", "entrypoint", "working_dir", "user", "ports", "expose", "environment",
	"env_file", "healthcheck", "depends_on", "volumes", "deploy", "gpus", "privileged",
	"network_mode", "networks", "read_only", "init", "stop_grace_period", "labels", "platform",
	"profiles",
	"develop", // develop.watch drives vmctl watch locally; a task runs the release's image as built
}

// notedKeys mean nothing on ECS but are harmless; the plan notes that they are left behind.
var notedKeys = map[string]string{
	"build":          "ECS runs the release's image, built once and pushed by digest",
	"container_name": "ECS names the container after the service",
	"restart":        "the ECS service replaces tasks that stop",
	"pull_policy":    "ECS pulls the image by the release's digest",
	"scale":          "the task count comes from min and max in the environment",
	"logging":        "logs go to CloudWatch Logs (awslogs)",
	"log_driver":     "logs go to CloudWatch Logs (awslogs)",
	"log_opt":        "logs go to CloudWatch Logs (awslogs)",
	"hostname":       "a task in awsvpc mode takes its hostname from its network interface",
	"stdin_open":     "ECS tasks have no attached stdin",
	"tty":            "ECS tasks have no terminal",
	"attach":         "ECS sends output to CloudWatch Logs, not to a terminal",
}

// keyReasons explain the rejected keys that people reach for most.
var keyReasons = map[string]string{
	"secrets":     "compose secrets are files on this machine; reference SSM parameters or Secrets Manager secrets under services.{service}.secrets in the environment file instead",
	"configs":     "compose configs are files on this machine; bake the file into the image or pass it as an environment variable",
	"extra_hosts": "a task in awsvpc mode has no editable /etc/hosts; reach other services by their compose names (Service Connect)",
	"dns":         "a task in awsvpc mode uses the VPC's resolver",
	"devices":     "a task has no host devices; GPUs are reserved with deploy.resources.reservations.devices",
	"tmpfs":       "ECS offers tmpfs only on EC2 and with a fixed size; vmctl keeps tasks portable between placements",
}

// composeKey is one service key of the compose model and where its field is.
type composeKey struct {
	name  string
	index []int
}

// composeKeys lists the service keys once; the compose model does not change at run time.
var composeKeys = sync.OnceValue(func() []composeKey {
	var out []composeKey
	for _, f := range reflect.VisibleFields(reflect.TypeFor[types.ServiceConfig]()) {
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.Anonymous && key != "" && key != "-" && key != "name" && !strings.HasPrefix(key, "#") {
			out = append(out, composeKey{key, f.Index})
		}
	}
	return out
})

// checkKeys fails every compose key the renderer does not know, so a compose feature is
// never dropped silently, and notes the harmless ones.
func (r *renderer) checkKeys(name, task string, svc types.ServiceConfig) {
	v := reflect.ValueOf(svc)
	for _, f := range composeKeys() {
		key := f.name
		if slices.Contains(readKeys, key) || v.FieldByIndex(f.index).IsZero() {
			continue
		}
		if why, ok := notedKeys[key]; ok {
			r.note(name, key, "not used on ECS: %s", why)
			continue
		}
		why, ok := keyReasons[key]
		if !ok {
			why = "ECS has nothing vmctl renders it into; drop it, or set it in a compose file used only locally (vmctl -f compose.yaml -f local-only.yaml)"
		}
		r.fail(name, key, "%s", strings.ReplaceAll(why, "{service}", task))
	}
	if extra := slices.DeleteFunc(slices.Sorted(maps.Keys(svc.Networks)), func(n string) bool { return n == "default" }); len(extra) > 0 {
		r.note(name, "networks", "not used on ECS: every task runs in the VPC's private subnets, and security groups decide who reaches it (%s)", strings.Join(extra, ", "))
	}
}

// container translates one compose service into a container definition and the task
// volumes it mounts. main is the container the environment entry es sizes and exposes.
func (r *renderer) container(name, task string, es environment.Service, main bool) (ecstypes.ContainerDefinition, []ecstypes.Volume) {
	svc := r.st.Project.Services[name]
	r.checkKeys(name, task, svc)
	fargate := es.Placement == environment.PlacementFargate
	if !ecsName.MatchString(name) {
		r.fail(name, "", "ECS names services and containers with letters, digits, - and _ only; rename it in the stack")
	}

	switch mode := svc.NetworkMode; {
	case mode == "", mode == "bridge", mode == "default", strings.HasPrefix(mode, "service:"):
	case mode == "host":
		r.fail(name, "network_mode", "host: every task runs in awsvpc mode, with its own network interface and security group, so host networking cannot be expressed")
	default:
		r.fail(name, "network_mode", "%s: every task runs in awsvpc mode; only service:NAME (a container in NAME's task) carries over", mode)
	}
	if svc.Privileged && fargate {
		r.fail(name, "privileged", "Fargate runs no privileged containers; drop it, or place the service on ec2-gpu hosts")
	}

	image, pinned := r.image(name, svc)
	if !pinned {
		r.plan.Unpinned = true
	}
	def := ecstypes.ContainerDefinition{
		Name:             aws.String(name),
		Image:            aws.String(image),
		Essential:        aws.Bool(true),
		Command:          svc.Command,
		EntryPoint:       svc.Entrypoint,
		WorkingDirectory: optional(svc.WorkingDir),
		User:             optional(svc.User),
		PortMappings:     r.ports(name, svc, es, main),
		HealthCheck:      r.health(name, svc),
		DependsOn:        r.dependsOn(name, task),
		LogConfiguration: &ecstypes.LogConfiguration{
			LogDriver: ecstypes.LogDriverAwslogs,
			Options: map[string]string{
				"awslogs-group":         r.plan.LogGroup.Name,
				"awslogs-region":        r.aws.Region,
				"awslogs-stream-prefix": task,
			},
		},
		DockerLabels: svc.Labels,
	}
	def.Environment, def.Secrets = r.environ(name, task, svc, es, main)
	if w, ok := r.inClear(name, task, "command", es); ok {
		def.Command = w.Command
	}
	if w, ok := r.inClear(name, task, "entrypoint", es); ok {
		def.EntryPoint = w.Command
	}
	if w, ok := r.inClear(name, task, "healthcheck.test", es); ok && def.HealthCheck != nil {
		def.HealthCheck.Command = w.Test
	}
	if w, ok := r.inClear(name, task, "labels", es); ok {
		def.DockerLabels = w.Labels
	}
	r.checkDeploy(name, task, svc)
	def.ResourceRequirements = r.gpu(name, svc, es, main)
	if svc.Privileged && !fargate {
		def.Privileged = aws.Bool(true)
	}
	if svc.ReadOnly {
		def.ReadonlyRootFilesystem = aws.Bool(true)
	}
	if svc.Init != nil && *svc.Init {
		def.LinuxParameters = &ecstypes.LinuxParameters{InitProcessEnabled: aws.Bool(true)}
	}
	if g := svc.StopGracePeriod; g != nil {
		// ECS waits at most 120 s between SIGTERM and SIGKILL.
		if s := seconds(*g); s > 120 {
			r.fail(name, "stop_grace_period", "%s is longer than the 120 s ECS allows", time.Duration(*g))
		} else {
			def.StopTimeout = aws.Int32(s)
		}
	}
	var vols []ecstypes.Volume
	def.MountPoints, vols = r.mounts(name, svc)
	return def, vols
}

// image is the service's image in the environment's registry, pinned by the release's digest;
// without one it falls back to a tag (the release ID, else the compose image's tag).
func (r *renderer) image(name string, svc types.ServiceConfig) (string, bool) {
	img := r.rel.Images[name]
	repo := r.repository(name)
	if !repoName.MatchString(repo) {
		r.fail(name, "image", "%s is not an ECR repository name; set images.%s.repository in the release", repo, name)
	}
	base := r.aws.Registry + "/" + repo
	if img.Digest != "" {
		return base + "@" + img.Digest, true
	}
	tag := r.rel.ID
	if tag == "" {
		tag = "latest"
		if i := strings.LastIndexByte(svc.Image, ':'); i > strings.LastIndexByte(svc.Image, '/') && !strings.Contains(svc.Image, "@") {
			tag = svc.Image[i+1:]
		}
	}
	r.note(name, "image", "not pinned: the release has no digest for %s, so the plan uses the tag %q; run vmctl build to record one", name, tag)
	return base + ":" + tag, false
}

// repository is the service's ECR repository name: the release's, or project/service.
func (r *renderer) repository(name string) string {
	if repo := r.rel.Images[name].Repository; repo != "" {
		return repo
	}
	return strings.ToLower(r.st.Name() + "/" + name)
}

// ports maps compose ports and expose to awsvpc port mappings, where the host port is the
// container port; published host ports are local only.
func (r *renderer) ports(name string, svc types.ServiceConfig, es environment.Service, main bool) []ecstypes.PortMapping {
	type port struct {
		n     int
		proto string
	}
	var list []port
	seen := map[port]string{} // container port → how compose published it
	hosts := map[port]int{}   // published host port → its container port
	for _, p := range svc.Ports {
		proto := cmp.Or(p.Protocol, "tcp")
		k := port{int(p.Target), proto}
		pub := p.Published
		if first, dup := seen[k]; dup {
			r.fail(name, "ports", "container port %d/%s is published twice (%s and %s); an ECS task maps each container port once", k.n, proto, first, cmp.Or(pub, "unpublished"))
			continue
		}
		seen[k] = cmp.Or(pub, "unpublished")
		list = append(list, k)
		if pub == "" {
			continue
		}
		one := types.ServiceConfig{Name: name}
		one.Ports = []types.ServicePortConfig{p}
		hp, err := stack.HostPorts(one)
		if err != nil {
			r.fail(name, "ports", "%v", err)
			continue
		}
		for _, h := range hp {
			hk := port{h.Port, h.Protocol}
			if other, dup := hosts[hk]; dup {
				r.fail(name, "ports", "host port %d/%s is published twice (to %d and %d)", h.Port, h.Protocol, other, k.n)
			}
			hosts[hk] = k.n
		}
		if pub != strconv.Itoa(k.n) {
			r.note(name, "ports", "host port %s is local only: in awsvpc mode the task listens on %d", pub, k.n)
		}
	}
	for _, e := range svc.Expose {
		num, proto, _ := strings.Cut(e, "/")
		n, err := strconv.Atoi(num)
		if err != nil || n < 1 || n > 65535 {
			r.fail(name, "expose", "%q is not a port; ECS maps single ports", e)
			continue
		}
		if k := (port{n, cmp.Or(proto, "tcp")}); seen[k] == "" {
			seen[k] = "exposed"
			list = append(list, k)
		}
	}
	if main {
		k := port{es.Port, "tcp"}
		switch _, ok := seen[k]; {
		case ok:
		case len(list) == 0:
			list = append(list, k) // the environment declares the port the stack leaves implicit
		default:
			var have []string
			for _, p := range list {
				have = append(have, fmt.Sprintf("%d/%s", p.n, p.proto))
			}
			r.fail(name, r.envKey("services."+name+".port"), "%d is not a port the stack's %s listens on (%s)", es.Port, name, strings.Join(have, ", "))
		}
	}
	slices.SortFunc(list, func(a, b port) int { return cmp.Or(cmp.Compare(a.n, b.n), strings.Compare(a.proto, b.proto)) })
	var out []ecstypes.PortMapping
	for _, p := range list {
		pm := ecstypes.PortMapping{
			Name:          aws.String(portName(name, p.n, p.proto)),
			ContainerPort: aws.Int32(int32(p.n)),
			HostPort:      aws.Int32(int32(p.n)),
			Protocol:      ecstypes.TransportProtocol(p.proto),
		}
		if main && p.n == es.Port && p.proto == "tcp" {
			pm.AppProtocol = ecstypes.ApplicationProtocolHttp // it answers the HTTP health check
		}
		out = append(out, pm)
	}
	return out
}

func portName(service string, port int, proto string) string {
	if proto == "tcp" {
		return fmt.Sprintf("%s-%d", service, port)
	}
	return fmt.Sprintf("%s-%d-%s", service, port, proto)
}

var (
	ecsName  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)
	repoName = regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$`)
)

// secretName matches variable names that hold credentials by convention.
var secretName = regexp.MustCompile(`(^|_)(PASSWORD|PASSWD|SECRET|SECRETS|TOKEN|CREDENTIALS?|APIKEY|(API|ACCESS|PRIVATE|SECRET|SIGNING|ENCRYPTION)_KEY)(_|$)`)

// environ merges the compose environment with the environment file's overrides, turns
// declared secrets into references, and refuses plain values that look like credentials:
// a task definition is readable by anyone who can describe it.
func (r *renderer) environ(name, task string, svc types.ServiceConfig, es environment.Service, main bool) ([]ecstypes.KeyValuePair, []ecstypes.Secret) {
	vals := map[string]string{}
	for k, v := range svc.Environment {
		if v != nil { // a bare name with nothing to inherit is unset, as in docker compose
			vals[k] = *v
		}
	}
	// The environment entry belongs to the task: its main container takes all of it, a
	// container sharing the task only the variables it names itself.
	wants := func(k string) bool { _, ok := svc.Environment[k]; return main || ok }
	overrides := map[string]bool{}
	var secrets []ecstypes.Secret
	for k, v := range es.Environment {
		if wants(k) {
			vals[k] = v
			overrides[k] = true
		}
	}
	for _, k := range slices.Sorted(maps.Keys(es.Secrets)) {
		if wants(k) {
			delete(vals, k)
			secrets = append(secrets, ecstypes.Secret{Name: aws.String(k), ValueFrom: aws.String(es.Secrets[k])})
		}
	}
	var env []ecstypes.KeyValuePair
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		v := vals[k]
		key := "environment." + k
		if secretName.MatchString(strings.ToUpper(k)) {
			r.fail(name, key, "looks like a secret; reference it under services.%s.secrets in %s.yaml (an SSM parameter or Secrets Manager ARN), so its value never sits in the task definition", task, r.env.Name)
			continue
		}
		if u, err := url.Parse(v); err == nil && u.User != nil {
			if _, ok := u.User.Password(); ok {
				r.fail(name, key, "carries a password in its URL; reference it under services.%s.secrets in %s.yaml instead", task, r.env.Name)
				continue
			}
		}
		if !overrides[k] {
			if vars := r.variables(name, key); len(vars) > 0 {
				r.fail(name, key, "its value comes from %s (the operator's environment, a .env or an env_file), not the compose file, so it would sit in the task definition in plain text: declare it under services.%s.secrets in %s.yaml (an SSM parameter or Secrets Manager ARN), or set it in services.%s.environment there if it is not secret",
					refs(vars), task, r.env.Name, task)
				continue
			}
			v = r.rewriteStores(name, k, v)
		}
		env = append(env, ecstypes.KeyValuePair{Name: aws.String(k), Value: aws.String(v)})
	}
	return env, secrets
}

// variables names the variables service name's key was written with (see stack.Variables).
func (r *renderer) variables(name, key string) []string {
	vars, err := r.st.Variables(name, key)
	if err != nil {
		r.fail(name, key, "%v", err)
	}
	return vars
}

// inClear refuses a key the task definition carries in clear (command, entrypoint, health
// check, labels) when it was interpolated from the operator's environment: the value would
// be readable by anyone who can describe the task definition, and would depend on whoever
// ran vmctl. A variable the environment file declares plain is allowed, and ok says the key
// was interpolated again with the file's values, which the caller uses instead.
func (r *renderer) inClear(name, task, key string, es environment.Service) (stack.Written, bool) {
	vars := r.variables(name, key)
	if len(vars) == 0 {
		return stack.Written{}, false
	}
	var secret, undeclared []string
	for _, v := range vars {
		if _, ok := es.Secrets[v]; ok {
			secret = append(secret, v)
		} else if _, ok := es.Environment[v]; !ok {
			undeclared = append(undeclared, v)
		}
	}
	switch {
	case len(secret) > 0:
		r.fail(name, key, "reads the secret %s, which would sit in the task definition in clear: read it when the container runs instead ($$%s in a shell command)", refs(secret), secret[0])
	case len(undeclared) > 0:
		r.fail(name, key, "interpolates %s from the operator's environment or a .env file, which would sit in the task definition in clear: set it in services.%s.environment in %s.yaml if it is not secret, or declare it under services.%s.secrets and read it when the container runs ($$%s in a shell command)",
			refs(undeclared), task, r.env.Name, task, undeclared[0])
	default:
		w, err := r.st.Reinterpolate(name, key, es.Environment)
		if err != nil {
			r.fail(name, key, "%v", err)
			return stack.Written{}, false
		}
		return w, true
	}
	return stack.Written{}, false
}

// refs writes variable names as compose references: ${A}, ${B}.
func refs(vars []string) string {
	out := make([]string, len(vars))
	for i, v := range vars {
		out[i] = "${" + v + "}"
	}
	return strings.Join(out, ", ")
}

// rewriteStores points a value that names a local stand-in (redis://redis:6379/0) at the
// managed store that replaces it, which the environment file declares.
func (r *renderer) rewriteStores(name, key, v string) string {
	for _, store := range slices.Sorted(maps.Keys(r.managed)) {
		re, ok := r.storeRefs[store]
		if !ok {
			re = regexp.MustCompile(`(^|//|@)` + regexp.QuoteMeta(store) + `(:\d+)?([/?#]|$)`)
			r.storeRefs[store] = re
		}
		if re.MatchString(v) {
			m := r.managed[store]
			v = re.ReplaceAllString(v, "${1}"+strings.ReplaceAll(m.Endpoint, "$", "$$")+"${3}")
			if store == "redis" {
				// ElastiCache encrypts in transit (seed §3.1): the client must speak TLS.
				v = strings.Replace(v, "redis://", "rediss://", 1)
			}
			r.note(name, "environment."+key, "points at %s, the local stand-in for %s: rendered with stores.%s.endpoint", store, m.By, store)
		}
	}
	return v
}

// ECS's bounds for container health checks, in seconds.
const (
	minInterval, maxInterval = 5, 300
	minTimeout, maxTimeout   = 2, 120
	minRetries, maxRetries   = 1, 10
	maxStartPeriod           = 300
)

// health carries the compose health check over, failing what ECS cannot take.
func (r *renderer) health(name string, svc types.ServiceConfig) *ecstypes.HealthCheck {
	if svc.HealthCheck == nil {
		r.note(name, "healthcheck", "none in the stack: ECS ignores an image's HEALTHCHECK, so the task reports no health of its own")
		return nil
	}
	if svc.HealthCheck.StartInterval != nil {
		r.note(name, "healthcheck.start_interval", "not used on ECS: it probes at the interval during the start period too")
	}
	hc, problems := healthCheck(svc.HealthCheck)
	for _, p := range problems {
		r.fail(name, p.Key, "%s", p.Reason)
	}
	return hc
}

// healthCheck is a compose health check in ECS terms. Compose's defaults (30 s interval and
// timeout, 3 retries) are written out, because ECS's own defaults differ; the problems name
// the keys outside what ECS allows.
func healthCheck(hc *types.HealthCheckConfig) (*ecstypes.HealthCheck, []Problem) {
	if hc == nil || hc.Disable || len(hc.Test) == 0 || hc.Test[0] == "NONE" {
		return nil, nil
	}
	var problems []Problem
	if t := hc.Test[0]; t != "CMD" && t != "CMD-SHELL" {
		return nil, []Problem{{Key: "healthcheck.test", Reason: fmt.Sprintf("starts with %q; ECS takes CMD or CMD-SHELL", t)}}
	}
	check := func(key string, d *types.Duration, def time.Duration, lo, hi int32) *int32 {
		s := seconds(types.Duration(def))
		if d != nil {
			s = seconds(*d)
		}
		if s < lo || s > hi {
			problems = append(problems, Problem{Key: "healthcheck." + key, Reason: fmt.Sprintf("%d s is outside the %d–%d s ECS allows", s, lo, hi)})
		}
		return aws.Int32(s)
	}
	out := &ecstypes.HealthCheck{
		Command:  hc.Test,
		Interval: check("interval", hc.Interval, 30*time.Second, minInterval, maxInterval),
		Timeout:  check("timeout", hc.Timeout, 30*time.Second, minTimeout, maxTimeout),
	}
	if hc.StartPeriod != nil {
		out.StartPeriod = check("start_period", hc.StartPeriod, 0, 0, maxStartPeriod)
	}
	retries := uint64(3)
	if hc.Retries != nil {
		retries = *hc.Retries
	}
	if retries < minRetries || retries > maxRetries {
		problems = append(problems, Problem{Key: "healthcheck.retries", Reason: fmt.Sprintf("%d is outside the %d–%d ECS allows", retries, minRetries, maxRetries)})
	}
	out.Retries = aws.Int32(int32(min(retries, math.MaxInt32)))
	return out, problems
}

// dependsOn keeps the depends_on edges between containers of one task; edges to other
// services become the plan's start order instead.
func (r *renderer) dependsOn(name, task string) []ecstypes.ContainerDependency {
	deps := r.st.Dependencies(name)
	var out []ecstypes.ContainerDependency
	for _, dep := range slices.Sorted(maps.Keys(deps)) {
		if r.taskOf[dep] != task {
			continue
		}
		var cond ecstypes.ContainerCondition
		switch c := deps[dep].Condition; c {
		case types.ServiceConditionStarted:
			cond = ecstypes.ContainerConditionStart
		case types.ServiceConditionHealthy:
			cond = ecstypes.ContainerConditionHealthy
			if hc := r.st.Project.Services[dep].HealthCheck; hc == nil || hc.Disable || len(hc.Test) == 0 || hc.Test[0] == "NONE" {
				r.fail(name, "depends_on."+dep, "waits for %s to be healthy, but %s has no health check", dep, dep)
			}
		case types.ServiceConditionCompletedSuccessfully:
			cond = ecstypes.ContainerConditionSuccess
		default:
			r.fail(name, "depends_on."+dep, "condition %q has no ECS equivalent", c)
			continue
		}
		out = append(out, ecstypes.ContainerDependency{ContainerName: aws.String(dep), Condition: cond})
	}
	return out
}

// checkDeploy notes what the deploy section asks for beyond the GPU reservation: on ECS the
// environment file sizes, counts and places tasks. Devices other than GPUs cannot be handed out.
func (r *renderer) checkDeploy(name, task string, svc types.ServiceConfig) {
	d := svc.Deploy
	if d == nil {
		return
	}
	other := d.Mode != "" || d.Replicas != nil || len(d.Labels) > 0 || d.UpdateConfig != nil || d.RollbackConfig != nil ||
		d.RestartPolicy != nil || d.EndpointMode != "" || d.Resources.Limits != nil ||
		len(d.Placement.Constraints) > 0 || len(d.Placement.Preferences) > 0 || d.Placement.MaxReplicas > 0
	if res := d.Resources.Reservations; res != nil {
		other = other || res.NanoCPUs > 0 || res.MemoryBytes > 0 || res.Pids > 0 || len(res.GenericResources) > 0
		for i, dev := range res.Devices {
			if !slices.Contains(dev.Capabilities, "gpu") {
				r.fail(name, fmt.Sprintf("deploy.resources.reservations.devices[%d]", i), "reserves a %s device; ECS hands out only GPUs", strings.Join(dev.Capabilities, ","))
			}
		}
	}
	if other {
		r.note(name, "deploy", "only the GPU reservation is read: on ECS, services.%s in %s.yaml sizes, scales and places the task", task, r.env.Name)
	}
}

// gpu turns the compose GPU reservation into an ECS GPU requirement, which only EC2 hosts
// with GPUs can satisfy.
func (r *renderer) gpu(name string, svc types.ServiceConfig, es environment.Service, main bool) []ecstypes.ResourceRequirement {
	const key = "deploy.resources.reservations.devices"
	reqs := stack.GPURequests(svc)
	count := 0
	for _, d := range reqs {
		switch {
		case d.Count < 0 && es.GPU != nil: // "all": as many as the environment gives it
			count += es.GPU.Count
		case d.Count < 0:
			r.fail(name, key, "reserves all GPUs, which ECS cannot express without a count")
		default:
			count += int(d.Count)
		}
		if len(d.IDs) > 0 {
			r.note(name, key+".device_ids", "not used on ECS: it hands out whole GPUs by count")
		}
	}
	if len(reqs) > 0 && count == 0 {
		count = 1 // a reservation without count or ids asks for one device
	}
	switch {
	case count > 0 && es.Placement == environment.PlacementFargate:
		r.fail(name, key, "reserves %d GPU, but %s.yaml places it on Fargate, which has no GPUs: use placement: ec2-gpu", count, r.env.Name)
		return nil
	case main && es.Placement == environment.PlacementEC2GPU && count == 0:
		r.fail(name, r.envKey("services."+name+".placement"), "ec2-gpu puts it on GPU hosts, but the stack reserves no GPU for it (%s)", key)
		return nil
	case count == 0:
		return nil
	case main && es.GPU != nil && es.GPU.Count != count:
		r.fail(name, key, "reserves %d GPU, but services.%s.gpu.count in %s.yaml is %d", count, name, r.env.Name, es.GPU.Count)
	}
	return []ecstypes.ResourceRequirement{{Type: ecstypes.ResourceTypeGpu, Value: aws.String(strconv.Itoa(count))}}
}

// mounts maps named volumes to the EFS access points the environment gives them and
// anonymous volumes to task storage; host paths have no place in a task.
func (r *renderer) mounts(name string, svc types.ServiceConfig) ([]ecstypes.MountPoint, []ecstypes.Volume) {
	var mps []ecstypes.MountPoint
	var vols []ecstypes.Volume
	efs := r.aws.Stores.EFS
	for i, v := range svc.Volumes {
		key := fmt.Sprintf("volumes[%d]", i)
		switch v.Type {
		case types.VolumeTypeBind:
			r.fail(name, key, "bind mount of host path %s: a task has no host directory to mount; use a named volume that stores.efs.volumes maps to EFS", v.Source)
			continue
		case types.VolumeTypeVolume:
		default:
			r.fail(name, key, "a %s mount has no ECS equivalent vmctl renders; use a named volume", v.Type)
			continue
		}
		mp := ecstypes.MountPoint{ContainerPath: aws.String(v.Target), SourceVolume: aws.String(v.Source)}
		if v.ReadOnly {
			mp.ReadOnly = aws.Bool(true)
		}
		switch ap, mapped := efs.Volumes[v.Source]; {
		case v.Source == "": // anonymous: scratch space that lives as long as the task
			vname := fmt.Sprintf("%s-scratch-%d", name, i)
			mp.SourceVolume = aws.String(vname)
			vols = append(vols, ecstypes.Volume{Name: aws.String(vname)})
		case hostPath(r.st.Project.Volumes[v.Source]):
			r.fail(name, key, "volume %s binds a host path through its driver options; a task has no host directory to mount", v.Source)
			continue
		case !mapped:
			r.fail(name, key, "named volume %s is not mapped to EFS: add stores.efs.volumes.%s (an access point) to %s.yaml, since a task's own storage does not outlive it", v.Source, v.Source, r.env.Name)
			continue
		default:
			vols = append(vols, ecstypes.Volume{
				Name: aws.String(v.Source),
				EfsVolumeConfiguration: &ecstypes.EFSVolumeConfiguration{
					FileSystemId:      aws.String(efs.FileSystemID),
					TransitEncryption: ecstypes.EFSTransitEncryptionEnabled, // required with access points
					AuthorizationConfig: &ecstypes.EFSAuthorizationConfig{
						AccessPointId: aws.String(ap.AccessPointID),
					},
				},
			})
		}
		mps = append(mps, mp)
	}
	return mps, vols
}

// hostPath reports whether a named volume is really a bind mount (driver_opts o=bind).
func hostPath(v types.VolumeConfig) bool {
	return slices.Contains(strings.Split(v.DriverOpts["o"], ","), "bind")
}

// seconds rounds a duration up to whole seconds, which is what ECS counts in.
func seconds(d types.Duration) int32 {
	s := math.Ceil(time.Duration(d).Seconds())
	return int32(max(min(s, math.MaxInt32), math.MinInt32))
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}
