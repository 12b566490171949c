package ecs

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/stack"
)

// EnvironmentFacts is the pseudo-service that holds an environment's own settings in a View.
const EnvironmentFacts = "(environment)"

// View is one environment as the parity report sees it: for each compose service, facts
// that a local run and an ECS task both have. Values never hold an environment variable's
// value: variables are compared by name and kind only.
type View struct {
	Environment string
	Services    map[string][]Fact
	Managed     map[string]bool // replaced by a managed AWS service: only "runs" is compared
}

// Fact is one comparable property of a service.
type Fact struct {
	Field    string
	Value    string
	Declared bool // the environment file sets it
	Unknown  bool // not knowable offline (a local image's digest): never a difference
}

// Class sorts a difference.
type Class string

// Classes.
const (
	Declared Class = "declared" // an environment file asks for it
	Drift    Class = "drift"    // nothing declares it
)

// Report is the parity report between two environments.
type Report struct {
	A           string       `json:"a"`
	B           string       `json:"b"`
	Drift       int          `json:"drift"`
	Declared    int          `json:"declared"`
	Differences []Difference `json:"differences"`
}

// Difference is one field that differs for one service.
type Difference struct {
	Service string `json:"service"`
	Field   string `json:"field"`
	A       string `json:"a"` // "-" when the side lacks it
	B       string `json:"b"`
	Class   Class  `json:"class"`
}

type facts []Fact

func (f *facts) add(field, value string, declared bool) {
	*f = append(*f, Fact{Field: field, Value: value, Declared: declared})
}

// LocalView is the stack as it runs locally: its image references, ports, variable names,
// health checks, volumes, resources and GPU. local is the kind local environment, or nil.
func LocalView(st *stack.Stack, local *environment.Environment) View {
	v := View{Environment: "local", Services: map[string][]Fact{}, Managed: map[string]bool{}}
	if local != nil {
		v.Environment = local.Name
	}
	for _, name := range st.Names() {
		svc := st.Project.Services[name]
		var es environment.Service
		if local != nil {
			es = local.Services[name]
		}
		var f facts
		f.add("runs", "docker container", false)
		ref := svc.Image
		if ref == "" {
			ref = st.Name() + "-" + name
		}
		repo, digest := splitImage(ref)
		f.add("image", repo, false)
		f = append(f, Fact{Field: "digest", Value: digest, Unknown: digest == ""})
		command, entrypoint := svc.Command, svc.Entrypoint
		if w, ok := asWritten(st, name, "command"); ok {
			command = w.Command
		}
		if w, ok := asWritten(st, name, "entrypoint"); ok {
			entrypoint = w.Command
		}
		addCommand(&f, command, entrypoint, svc.WorkingDir, svc.User)
		var ports []string
		for _, p := range svc.Ports {
			ports = append(ports, fmt.Sprintf("%d/%s", p.Target, cmp.Or(p.Protocol, "tcp")))
		}
		for _, e := range svc.Expose {
			num, proto, _ := strings.Cut(e, "/")
			ports = append(ports, num+"/"+cmp.Or(proto, "tcp"))
		}
		f.add("ports", list(ports), false)
		names := map[string]Fact{}
		for k, val := range svc.Environment {
			if val != nil {
				names[k] = Fact{Field: "env " + k, Value: "set"}
			}
		}
		for k := range es.Environment {
			names[k] = Fact{Field: "env " + k, Value: "set", Declared: true}
		}
		for _, k := range slices.Sorted(maps.Keys(names)) {
			f = append(f, names[k])
		}
		hc, _ := healthCheck(svc.HealthCheck)
		if w, ok := asWritten(st, name, "healthcheck.test"); ok && hc != nil {
			hc.Command = w.Test
		}
		f.add("health", describeHealth(hc), false)
		f.add("health path", st.Extension(name).HealthPath, false)
		for _, vol := range svc.Volumes {
			what := vol.Type + " " + vol.Source
			if vol.Source == "" {
				what = "scratch"
			}
			f.add("volume "+vol.Target, what, false)
		}
		cpu, mem := "host's", "host's"
		if d := svc.Deploy; d != nil && d.Resources.Limits != nil {
			if c := d.Resources.Limits.NanoCPUs; c > 0 {
				cpu = vCPU(float64(c))
			}
			if m := d.Resources.Limits.MemoryBytes; m > 0 {
				mem = strconv.FormatInt(int64(m)>>20, 10) + " MiB"
			}
		}
		if svc.CPUS > 0 {
			cpu = vCPU(float64(svc.CPUS))
		}
		if svc.MemLimit > 0 {
			mem = strconv.FormatInt(int64(svc.MemLimit)>>20, 10) + " MiB"
		}
		f.add("cpu", cpu, false)
		f.add("memory", mem, false)
		f.add("gpu", gpuCount(svc), es.GPU != nil)
		if es.GPU != nil && es.GPU.Model != "" {
			f.add("gpu model", es.GPU.Model, true)
		}
		v.Services[name] = f
	}
	return v
}

// AWSView is what the plan, rendered from st and env, runs, in the same terms as LocalView.
func AWSView(st *stack.Stack, p *Plan, env *environment.Environment) View {
	v := View{Environment: p.Environment, Services: map[string][]Fact{}, Managed: map[string]bool{}}
	var e facts
	e.add("strategy", string(p.Strategy), true)
	e.add("approval", strconv.FormatBool(p.Approval), true)
	e.add("protected", strconv.FormatBool(p.Protected), true)
	v.Services[EnvironmentFacts] = e
	for _, m := range p.Managed {
		v.Services[m.Service] = []Fact{{Field: "runs", Value: fmt.Sprintf("%s (%s) at %s", m.By, m.Detail, m.Endpoint), Declared: true}}
		v.Managed[m.Service] = true
	}
	for _, s := range p.Services {
		es := env.Services[s.Name]
		where := "ECS on Fargate"
		if s.Hosts != nil {
			where = "ECS on EC2 " + s.Hosts.InstanceType
		}
		for i, def := range s.TaskDefinition.ContainerDefinitions {
			name, main := *def.Name, i == 0
			var f facts
			if main {
				f.add("runs", where, true)
			} else {
				f.add("runs", "in "+s.Name+"'s task, "+where, true)
			}
			repo, digest := splitImage(*def.Image)
			f.add("image", repo, true)
			f = append(f, Fact{Field: "digest", Value: digest, Unknown: digest == ""})
			addCommand(&f, def.Command, def.EntryPoint, deref(def.WorkingDirectory), deref(def.User))
			var ports []string
			for _, pm := range def.PortMappings {
				ports = append(ports, fmt.Sprintf("%d/%s", *pm.ContainerPort, pm.Protocol))
			}
			// The environment's port stands in for ports the stack leaves implicit.
			svc := st.Project.Services[name]
			f.add("ports", list(ports), main && len(svc.Ports) == 0 && len(svc.Expose) == 0)
			names := map[string]Fact{}
			for _, kv := range def.Environment {
				_, override := es.Environment[*kv.Name]
				names[*kv.Name] = Fact{Field: "env " + *kv.Name, Value: "set", Declared: override}
			}
			for _, sec := range def.Secrets {
				names[*sec.Name] = Fact{Field: "env " + *sec.Name, Value: "secret", Declared: true}
			}
			for _, k := range slices.Sorted(maps.Keys(names)) {
				f = append(f, names[k])
			}
			f.add("health", describeHealth(def.HealthCheck), false)
			if main {
				f.add("health path", es.Health.Path, true)
				if g := es.Health.GracePeriod.Duration; g > 0 {
					f.add("health grace", shortDuration(g), true)
				}
			}
			vols := map[string]ecstypes.Volume{}
			for _, vol := range s.TaskDefinition.Volumes {
				vols[*vol.Name] = vol
			}
			for _, mp := range def.MountPoints {
				what := "scratch"
				if efs := vols[*mp.SourceVolume].EfsVolumeConfiguration; efs != nil {
					what = fmt.Sprintf("efs %s %s", *efs.FileSystemId, *efs.AuthorizationConfig.AccessPointId)
				}
				f.add("volume "+*mp.ContainerPath, what, what != "scratch")
			}
			if main {
				f.add("cpu", vCPU(float64(es.CPU)/1024), true)
				f.add("memory", strconv.Itoa(es.Memory)+" MiB", true)
			}
			gpu := "none"
			for _, rr := range def.ResourceRequirements {
				if rr.Type == ecstypes.ResourceTypeGpu {
					gpu = *rr.Value
				}
			}
			f.add("gpu", gpu, main && es.GPU != nil)
			if main && es.GPU != nil {
				f.add("gpu model", cmp.Or(es.GPU.Model, "any")+" on "+es.InstanceType, true)
			}
			if main {
				f.add("scaling", fmt.Sprintf("%d–%d tasks", es.Min, es.Max), true)
				var cps []string
				for _, c := range s.Service.CapacityProviderStrategy {
					cps = append(cps, *c.CapacityProvider)
				}
				capacity := strings.Join(cps, ", ")
				if h := s.Hosts; h != nil && h.Spot {
					capacity += fmt.Sprintf(" (Spot instances above %d on demand)", h.OnDemandBase)
				}
				f.add("capacity", capacity, true)
				if lb := s.LoadBalancer; lb != nil {
					f.add("load balancer", "ALB "+strings.Join(lb.PathPatterns, ", "), true)
				}
			}
			v.Services[name] = f
		}
	}
	return v
}

// Compare sorts every difference between a and b into declared or drift.
func Compare(a, b View) Report {
	rep := Report{A: a.Environment, B: b.Environment, Differences: []Difference{}}
	services := slices.Sorted(maps.Keys(a.Services))
	for s := range b.Services {
		if !slices.Contains(services, s) {
			services = append(services, s)
		}
	}
	slices.Sort(services)
	for _, s := range services {
		fa, fb := a.Services[s], b.Services[s]
		if a.Managed[s] || b.Managed[s] {
			fa, fb = only(fa, "runs"), only(fb, "runs")
		}
		fields := []string{}
		for _, f := range slices.Concat(fa, fb) {
			if !slices.Contains(fields, f.Field) {
				fields = append(fields, f.Field)
			}
		}
		for _, field := range fields {
			x, okA := find(fa, field)
			y, okB := find(fb, field)
			if x.Unknown || y.Unknown || okA && okB && x.Value == y.Value {
				continue
			}
			d := Difference{Service: s, Field: field, A: "-", B: "-", Class: Drift}
			if okA {
				d.A = cmp.Or(x.Value, "-")
			}
			if okB {
				d.B = cmp.Or(y.Value, "-")
			}
			if d.A == d.B {
				continue
			}
			if x.Declared || y.Declared {
				d.Class = Declared
				rep.Declared++
			} else {
				rep.Drift++
			}
			rep.Differences = append(rep.Differences, d)
		}
	}
	return rep
}

// asWritten is a local key with its variables as references (${NAME}) when it reads any:
// locally they are interpolated from the operator's shell and could hold a secret, which
// diff must not print. ok is false when the key reads none.
func asWritten(st *stack.Stack, name, key string) (stack.Written, bool) {
	vars, err := st.Variables(name, key)
	if err != nil {
		return stack.Written{Command: []string{"(not shown)"}, Test: []string{"(not shown)"}}, true
	}
	if len(vars) == 0 {
		return stack.Written{}, false
	}
	refs := map[string]string{}
	for _, v := range vars {
		refs[v] = "${" + v + "}"
	}
	w, err := st.Reinterpolate(name, key, refs)
	if err != nil {
		return stack.Written{Command: []string{"(not shown)"}, Test: []string{"(not shown)"}}, true
	}
	return w, true
}

func only(fs []Fact, field string) []Fact {
	if f, ok := find(fs, field); ok {
		return []Fact{f}
	}
	return nil
}

func find(fs []Fact, field string) (Fact, bool) {
	for _, f := range fs {
		if f.Field == field {
			return f, true
		}
	}
	return Fact{}, false
}

func addCommand(f *facts, command, entrypoint []string, workdir, user string) {
	f.add("command", quoteArgs(command, "image's CMD"), false)
	f.add("entrypoint", quoteArgs(entrypoint, "image's ENTRYPOINT"), false)
	f.add("working dir", cmp.Or(workdir, "image's"), false)
	f.add("user", cmp.Or(user, "image's"), false)
}

func quoteArgs(args []string, none string) string {
	if args == nil {
		return none
	}
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = strconv.Quote(a)
	}
	return "[" + strings.Join(q, " ") + "]"
}

func describeHealth(hc *ecstypes.HealthCheck) string {
	if hc == nil {
		return "none"
	}
	s := fmt.Sprintf("%s · every %ds, timeout %ds, %d retries", quoteArgs(hc.Command, ""), deref(hc.Interval), deref(hc.Timeout), deref(hc.Retries))
	if hc.StartPeriod != nil {
		s += fmt.Sprintf(", start period %ds", *hc.StartPeriod)
	}
	return s
}

// splitImage splits a reference into its repository and, when pinned, its digest.
func splitImage(ref string) (repo, digest string) {
	if r, d, ok := strings.Cut(ref, "@"); ok {
		return r, d
	}
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		return ref[:i], ""
	}
	return ref, ""
}

func gpuCount(svc types.ServiceConfig) string {
	n := 0
	reqs := stack.GPURequests(svc)
	for _, d := range reqs {
		n += max(int(d.Count), 0)
	}
	if len(reqs) == 0 {
		return "none"
	}
	if n == 0 {
		return "all"
	}
	return strconv.Itoa(n)
}

// vCPU formats at float32 precision: compose keeps CPUs as float32.
func vCPU(v float64) string { return strconv.FormatFloat(v, 'f', -1, 32) + " vCPU" }

func list(items []string) string {
	if len(items) == 0 {
		return "none"
	}
	slices.Sort(items)
	return strings.Join(items, ", ")
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
