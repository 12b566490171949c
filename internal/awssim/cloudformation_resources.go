package awssim

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// What each resource type does when CloudFormation creates, updates or
// deletes it. The types vmctl's services run on are real in the simulator;
// the rest of the foundation (network, data stores, alarms, IAM…) is kept
// as records: a plausible physical id and the attributes templates read.
// A type in neither list fails to create, naming itself.

type cfnHandler struct {
	create func(x *cfnOp, r *cfnResource) error
	// update changes r in place to r.props from old; nil: every change
	// replaces the resource.
	update func(x *cfnOp, r *cfnResource, old map[string]any) error
	delete func(x *cfnOp, r *cfnResource) error
	// replaceOn are the properties (dotted paths for nested ones) whose
	// change replaces the resource.
	replaceOn []string
	// drift compares the live resource with its properties: IN_SYNC,
	// MODIFIED or DELETED.
	drift func(x *cfnOp, r *cfnResource) string
}

// replaces says whether a change to key replaces the resource.
func (h *cfnHandler) replaces(key string) bool {
	return slices.ContainsFunc(h.replaceOn, func(p string) bool { top, _, _ := strings.Cut(p, "."); return top == key })
}

func cfnHandlerFor(typ string) *cfnHandler {
	if h, ok := cfnModelled[typ]; ok {
		return h
	}
	if rec, ok := cfnRecords[typ]; ok {
		return rec.handler()
	}
	fail := func(*cfnOp, *cfnResource) error {
		return fmt.Errorf("awssim does not model resource type %s", typ)
	}
	return &cfnHandler{create: fail, delete: func(*cfnOp, *cfnResource) error { return nil }}
}

// ---- property helpers

func propString(p map[string]any, key string) string {
	s, _ := scalarString(p[key])
	return s
}

func propInt(p map[string]any, key string, def int) (int, error) {
	v, ok := p[key]
	if !ok {
		return def, nil
	}
	s, _ := scalarString(v)
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("Property %s: %q is not an integer", key, s)
	}
	return n, nil
}

func propStrings(p map[string]any, key string) []string {
	var out []string
	list, _ := p[key].([]any)
	for _, v := range list {
		if s, ok := scalarString(v); ok {
			out = append(out, s)
		}
	}
	return out
}

func propMap(p map[string]any, key string) map[string]any {
	m, _ := p[key].(map[string]any)
	return m
}

func propMaps(p map[string]any, key string) []map[string]any {
	var out []map[string]any
	list, _ := p[key].([]any)
	for _, v := range list {
		if m, ok := v.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// refuseUnknown fails on a property the simulator does not model, so a
// template that asks for something the simulator would silently drop
// fails where a test can see it.
func refuseUnknown(r *cfnResource, known ...string) error {
	for k := range r.props {
		if !slices.Contains(known, k) {
			return fmt.Errorf("awssim does not model property %s of %s", k, r.typ)
		}
	}
	return nil
}

// physicalName is the name CloudFormation makes up for an unnamed
// resource: stack-logical-RANDOM, shortened to fit.
func physicalName(x *cfnOp, r *cfnResource, limit int) string {
	suffix := strings.ToUpper(computeHex(6))
	stack, logical := x.st.name, r.logical
	for len(stack)+len(logical)+len(suffix)+2 > limit && (len(stack) > 1 || len(logical) > 1) {
		if len(stack) >= len(logical) {
			stack = stack[:len(stack)-1]
		} else {
			logical = logical[:len(logical)-1]
		}
	}
	return strings.TrimRight(stack, "-") + "-" + logical + "-" + suffix
}

func alreadyExists(typ, id string) error {
	return fmt.Errorf("Resource of type '%s' with identifier '%s' already exists.", typ, id)
}

// ---- modelled types

var cfnModelled map[string]*cfnHandler

func init() {
	cfnModelled = map[string]*cfnHandler{
		"AWS::ECS::Cluster":                             ecsClusterHandler(),
		"AWS::ECS::CapacityProvider":                    capacityProviderHandler(),
		"AWS::ECS::ClusterCapacityProviderAssociations": associationsHandler(),
		"AWS::AutoScaling::AutoScalingGroup":            asGroupHandler(),
		"AWS::EC2::LaunchTemplate":                      launchTemplateHandler(),
		"AWS::ElasticLoadBalancingV2::LoadBalancer":     loadBalancerHandler(),
		"AWS::ElasticLoadBalancingV2::TargetGroup":      targetGroupHandler(),
		"AWS::ElasticLoadBalancingV2::Listener":         listenerHandler(),
		"AWS::ElasticLoadBalancingV2::ListenerRule":     listenerRuleHandler(),
		"AWS::Logs::LogGroup":                           logGroupHandler(),
		"AWS::ServiceDiscovery::HttpNamespace":          namespaceHandler(),
	}
}

// ECS cluster: a cluster of the simulator, with Container Insights as set.
func ecsClusterHandler() *cfnHandler {
	known := []string{"ClusterName", "ClusterSettings", "Configuration", "ServiceConnectDefaults", "Tags", "CapacityProviders", "DefaultCapacityProviderStrategy"}
	apply := func(x *cfnOp, r *cfnResource) error {
		if err := refuseUnknown(r, known...); err != nil {
			return err
		}
		if len(propStrings(r.props, "CapacityProviders")) > 0 {
			return fmt.Errorf("awssim models capacity providers through AWS::ECS::ClusterCapacityProviderAssociations only")
		}
		insights := "disabled"
		for _, st := range propMaps(r.props, "ClusterSettings") {
			if propString(st, "Name") == "containerInsights" {
				insights = propString(st, "Value")
			}
		}
		f := x.s.compute
		f.mu.Lock()
		defer f.mu.Unlock()
		c := f.clusters[r.physical]
		if c == nil {
			return fmt.Errorf("cluster %s is gone", r.physical)
		}
		c.insights = insights
		c.namespace = propString(propMap(r.props, "ServiceConnectDefaults"), "Namespace")
		return nil
	}
	return &cfnHandler{
		create: func(x *cfnOp, r *cfnResource) error {
			if err := refuseUnknown(r, known...); err != nil {
				return err
			}
			name := cmp.Or(propString(r.props, "ClusterName"), physicalName(x, r, 255))
			f := x.s.compute
			f.mu.Lock()
			if f.clusters[name] != nil {
				f.mu.Unlock()
				return alreadyExists(r.typ, name)
			}
			f.cluster(name)
			f.mu.Unlock()
			r.physical = name
			r.attrs = map[string]any{"Arn": x.st.home.arn("ecs", "cluster/"+name)}
			return apply(x, r)
		},
		update:    func(x *cfnOp, r *cfnResource, _ map[string]any) error { return apply(x, r) },
		replaceOn: []string{"ClusterName"},
		delete: func(x *cfnOp, r *cfnResource) error {
			f := x.s.compute
			f.mu.Lock()
			defer f.mu.Unlock()
			c := f.clusters[r.physical]
			if c == nil {
				return nil
			}
			for _, svc := range c.services {
				if svc.status == "ACTIVE" {
					return fmt.Errorf("The Cluster cannot be deleted while Services are active. (Service: AmazonECS; Status Code: 400; Error Code: ClusterContainsServicesException)")
				}
			}
			for _, t := range c.tasks {
				if t.last != "STOPPED" {
					return fmt.Errorf("The Cluster cannot be deleted while Tasks are active. (Service: AmazonECS; Status Code: 400; Error Code: ClusterContainsTasksException)")
				}
			}
			delete(f.clusters, r.physical)
			return nil
		},
	}
}

// capacityProvider is an ECS capacity provider over an Auto Scaling group.
type capacityProvider struct {
	name, group string
	managed     bool // managed scaling: ECS grows the group when tasks do not fit
	maxStep     int
}

func capacityProviderHandler() *cfnHandler {
	read := func(r *cfnResource) (*capacityProvider, error) {
		if err := refuseUnknown(r, "Name", "AutoScalingGroupProvider", "Tags"); err != nil {
			return nil, err
		}
		asp := propMap(r.props, "AutoScalingGroupProvider")
		group := propString(asp, "AutoScalingGroupArn")
		if i := strings.Index(group, ":autoScalingGroupName/"); i >= 0 {
			group = group[i+len(":autoScalingGroupName/"):]
		}
		if group == "" {
			return nil, fmt.Errorf("Property AutoScalingGroupProvider.AutoScalingGroupArn is required")
		}
		cp := &capacityProvider{group: group, maxStep: 10000}
		ms := propMap(asp, "ManagedScaling")
		cp.managed = ms != nil && cmp.Or(propString(ms, "Status"), "ENABLED") == "ENABLED"
		if n, err := propInt(ms, "MaximumScalingStepSize", 10000); err == nil {
			cp.maxStep = n
		}
		return cp, nil
	}
	return &cfnHandler{
		create: func(x *cfnOp, r *cfnResource) error {
			cp, err := read(r)
			if err != nil {
				return err
			}
			cp.name = cmp.Or(propString(r.props, "Name"), physicalName(x, r, 255))
			for _, p := range []string{"aws", "ecs", "fargate"} {
				if strings.HasPrefix(strings.ToLower(cp.name), p) {
					return fmt.Errorf("The capacity provider name cannot start with %q", p)
				}
			}
			if _, ok := x.s.groupExists(cp.group); !ok {
				return fmt.Errorf("The specified Auto Scaling group %s does not exist", cp.group)
			}
			f := x.s.compute
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.providers[cp.name] != nil {
				return alreadyExists(r.typ, cp.name)
			}
			f.providers[cp.name] = cp
			r.physical = cp.name
			r.attrs = map[string]any{}
			return nil
		},
		update: func(x *cfnOp, r *cfnResource, _ map[string]any) error {
			cp, err := read(r)
			if err != nil {
				return err
			}
			f := x.s.compute
			f.mu.Lock()
			defer f.mu.Unlock()
			cp.name = r.physical
			f.providers[cp.name] = cp
			return nil
		},
		replaceOn: []string{"Name", "AutoScalingGroupProvider.AutoScalingGroupArn"},
		delete: func(x *cfnOp, r *cfnResource) error {
			f := x.s.compute
			f.mu.Lock()
			defer f.mu.Unlock()
			for _, c := range f.clusters {
				if _, ok := c.providers[r.physical]; ok {
					return fmt.Errorf("The specified capacity provider is in use and cannot be removed. (cluster %s)", c.name)
				}
			}
			delete(f.providers, r.physical)
			return nil
		},
	}
}

// The association links capacity providers to a cluster: from then on the
// providers' Auto Scaling group instances are the cluster's container
// instances.
func associationsHandler() *cfnHandler {
	apply := func(x *cfnOp, r *cfnResource, old map[string]any) error {
		if err := refuseUnknown(r, "Cluster", "CapacityProviders", "DefaultCapacityProviderStrategy"); err != nil {
			return err
		}
		f := x.s.compute
		f.mu.Lock()
		name := arnName(propString(r.props, "Cluster"))
		c := f.clusters[name]
		if c == nil {
			f.mu.Unlock()
			return fmt.Errorf("Cluster not found: %s", name)
		}
		providers := map[string]string{}
		var fargate []string
		for _, p := range propStrings(r.props, "CapacityProviders") {
			switch {
			case p == "FARGATE" || p == "FARGATE_SPOT":
				fargate = append(fargate, p)
			case f.providers[p] != nil:
				providers[p] = f.providers[p].group
			default:
				f.mu.Unlock()
				return fmt.Errorf("The specified capacity provider %s was not found", p)
			}
		}
		for _, it := range propMaps(r.props, "DefaultCapacityProviderStrategy") {
			p := propString(it, "CapacityProvider")
			if _, ok := providers[p]; !ok && !slices.Contains(fargate, p) {
				f.mu.Unlock()
				return fmt.Errorf("The default capacity provider strategy names %s, which is not associated with the cluster", p)
			}
		}
		// Groups no longer linked stop being the cluster's capacity.
		for p, g := range c.providers {
			if _, keep := providers[p]; !keep {
				c.unlinkGroup(f, g)
			}
		}
		c.providers, c.fargate = providers, fargate
		c.groups = slices.Sorted(maps.Values(providers))
		f.mu.Unlock()
		x.s.syncInstances()
		r.physical = name
		r.attrs = map[string]any{}
		return nil
	}
	return &cfnHandler{
		create:    func(x *cfnOp, r *cfnResource) error { return apply(x, r, nil) },
		update:    apply,
		replaceOn: []string{"Cluster"},
		delete: func(x *cfnOp, r *cfnResource) error {
			f := x.s.compute
			f.mu.Lock()
			defer f.mu.Unlock()
			c := f.clusters[r.physical]
			if c == nil {
				return nil
			}
			for _, g := range c.providers {
				c.unlinkGroup(f, g)
			}
			c.providers, c.fargate, c.groups = map[string]string{}, nil, nil
			return nil
		},
	}
}

// launch templates by id and name, for the Auto Scaling groups that use them.
func (c *cfnState) launchTemplate(ref string) map[string]any {
	for _, st := range c.stacks {
		for _, r := range st.resources {
			if r.typ == "AWS::EC2::LaunchTemplate" && (r.physical == ref || propString(r.props, "LaunchTemplateName") == ref) {
				return propMap(r.props, "LaunchTemplateData")
			}
		}
	}
	return nil
}

func launchTemplateHandler() *cfnHandler {
	return &cfnHandler{
		create: func(x *cfnOp, r *cfnResource) error {
			if err := refuseUnknown(r, "LaunchTemplateName", "LaunchTemplateData", "TagSpecifications", "VersionDescription"); err != nil {
				return err
			}
			data := propMap(r.props, "LaunchTemplateData")
			if img := propString(data, "ImageId"); img != "" && !strings.HasPrefix(img, "ami-") {
				return fmt.Errorf("The image id '[%s]' does not exist", img)
			}
			r.physical = "lt-" + computeHex(17)
			r.attrs = map[string]any{"LaunchTemplateId": r.physical, "LatestVersionNumber": "1", "DefaultVersionNumber": "1"}
			return nil
		},
		update: func(x *cfnOp, r *cfnResource, _ map[string]any) error {
			n, _ := strconv.Atoi(propString(r.attrs, "LatestVersionNumber"))
			r.attrs["LatestVersionNumber"] = strconv.Itoa(n + 1)
			return nil
		},
		replaceOn: []string{"LaunchTemplateName"},
		delete:    func(*cfnOp, *cfnResource) error { return nil },
	}
}

// gpuOf is the GPU an instance type comes with, as the simulator knows
// instance types: a T4 per g4dn GPU, an A10G for g5, an L4 for g6.
func gpuOf(instanceType string) *GPUFacts {
	family, size, _ := strings.Cut(instanceType, ".")
	count := 1
	switch size {
	case "12xlarge":
		count = 4
	case "metal", "48xlarge":
		count = 8
	}
	var g *GPUFacts
	switch family {
	case "g4dn":
		g = T4()
	case "g5":
		g = &GPUFacts{Model: "NVIDIA A10G", DriverVersion: "535.104.05", CUDAVersion: "12.2", MemoryMiB: 23028, ComputeCapability: "8.6"}
	case "g6":
		g = &GPUFacts{Model: "NVIDIA L4", DriverVersion: "535.104.05", CUDAVersion: "12.2", MemoryMiB: 23034, ComputeCapability: "8.9"}
	default:
		return nil
	}
	g.Count = count
	return g
}

// groupExists says whether an Auto Scaling group exists.
func (s *Sim) groupExists(name string) (*asGroup, bool) {
	s.fleet.mu.Lock()
	defer s.fleet.mu.Unlock()
	g := s.fleet.groups[name]
	return g, g != nil
}

// Auto Scaling group: simulated instances of the launch template's type.
func asGroupHandler() *cfnHandler {
	known := []string{"AutoScalingGroupName", "MinSize", "MaxSize", "DesiredCapacity", "LaunchTemplate", "MixedInstancesPolicy",
		"VPCZoneIdentifier", "AvailabilityZones", "HealthCheckType", "HealthCheckGracePeriod", "Tags", "NewInstancesProtectedFromScaleIn",
		"CapacityRebalance", "DefaultInstanceWarmup", "TerminationPolicies", "MetricsCollection", "Cooldown"}
	read := func(x *cfnOp, r *cfnResource) (lo, hi, want int, tmpl Instance, err error) {
		if err = refuseUnknown(r, known...); err != nil {
			return
		}
		if lo, err = propInt(r.props, "MinSize", -1); err == nil && lo < 0 {
			err = fmt.Errorf("Property MinSize is required")
		}
		if err != nil {
			return
		}
		if hi, err = propInt(r.props, "MaxSize", -1); err == nil && hi < 0 {
			err = fmt.Errorf("Property MaxSize is required")
		}
		if err != nil {
			return
		}
		if want, err = propInt(r.props, "DesiredCapacity", lo); err != nil {
			return
		}
		if lo > hi {
			err = fmt.Errorf("Max bound, %d, must be greater than or equal to min bound, %d", hi, lo)
			return
		}
		if want < lo || want > hi {
			err = fmt.Errorf("Desired capacity:%d must be between the specified min size:%d and max size:%d", want, lo, hi)
			return
		}
		spec := propMap(r.props, "LaunchTemplate")
		var overrides []map[string]any
		if mip := propMap(r.props, "MixedInstancesPolicy"); mip != nil {
			lt := propMap(mip, "LaunchTemplate")
			spec = propMap(lt, "LaunchTemplateSpecification")
			overrides = propMaps(lt, "Overrides")
		}
		if spec == nil {
			err = fmt.Errorf("awssim models Auto Scaling groups with a launch template only")
			return
		}
		ref := cmp.Or(propString(spec, "LaunchTemplateId"), propString(spec, "LaunchTemplateName"))
		x.s.cfn.mu.Lock()
		data := x.s.cfn.launchTemplate(ref)
		x.s.cfn.mu.Unlock()
		if data == nil {
			err = fmt.Errorf("The specified launch template, with template ID %s, does not exist.", ref)
			return
		}
		tmpl.InstanceType = propString(data, "InstanceType")
		if len(overrides) > 0 {
			tmpl.InstanceType = cmp.Or(propString(overrides[0], "InstanceType"), tmpl.InstanceType)
		}
		if tmpl.InstanceType == "" {
			err = fmt.Errorf("The launch template %s names no instance type", ref)
			return
		}
		tmpl.ImageID = propString(data, "ImageId")
		tmpl.GPU = gpuOf(tmpl.InstanceType)
		return
	}
	return &cfnHandler{
		create: func(x *cfnOp, r *cfnResource) error {
			lo, hi, want, tmpl, err := read(x, r)
			if err != nil {
				return err
			}
			name := cmp.Or(propString(r.props, "AutoScalingGroupName"), physicalName(x, r, 255))
			if _, ok := x.s.groupExists(name); ok {
				return fmt.Errorf("AutoScalingGroup by this name already exists - A group with the name %s already exists", name)
			}
			x.s.putAutoScalingGroup(name, lo, hi, want, tmpl)
			x.s.syncInstances()
			r.physical = name
			r.attrs = map[string]any{}
			return nil
		},
		update: func(x *cfnOp, r *cfnResource, _ map[string]any) error {
			lo, hi, want, tmpl, err := read(x, r)
			if err != nil {
				return err
			}
			x.s.putAutoScalingGroup(r.physical, lo, hi, want, tmpl)
			x.s.syncInstances()
			return nil
		},
		replaceOn: []string{"AutoScalingGroupName"},
		delete: func(x *cfnOp, r *cfnResource) error {
			x.s.removeAutoScalingGroup(r.physical)
			x.s.syncInstances()
			return nil
		},
		drift: func(x *cfnOp, r *cfnResource) string {
			g, ok := x.s.groupExists(r.physical)
			if !ok {
				return "DELETED"
			}
			x.s.fleet.mu.Lock()
			defer x.s.fleet.mu.Unlock()
			lo, _ := propInt(r.props, "MinSize", 0)
			hi, _ := propInt(r.props, "MaxSize", 0)
			if g.min != lo || g.max != hi {
				return "MODIFIED"
			}
			return "IN_SYNC"
		},
	}
}

// putAutoScalingGroup creates or reconfigures a group whose instances are
// like tmpl, launching or terminating to the desired count.
func (s *Sim) putAutoScalingGroup(name string, lo, hi, want int, tmpl Instance) {
	f := s.fleet
	f.mu.Lock()
	defer f.mu.Unlock()
	g := f.groups[name]
	if g == nil {
		g = &asGroup{name: name, uuid: uuid4(), created: time.Now()}
		f.groups[name] = g
	}
	tmpl.Group = name
	g.min, g.max, g.want, g.template = lo, hi, want, tmpl
	f.reconcile(g)
}

// removeAutoScalingGroup deletes a group and terminates its instances.
func (s *Sim) removeAutoScalingGroup(name string) {
	f := s.fleet
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, in := range f.members(name) {
		f.terminate(in.ID)
	}
	delete(f.groups, name)
}

// unlinkGroup takes a group's instances out of the cluster; the caller
// holds the compute lock.
func (c *ecsCluster) unlinkGroup(f *compute, group string) {
	for _, ci := range c.instances {
		if ci.group != group || ci.status != "ACTIVE" {
			continue
		}
		ci.status = "INACTIVE"
		for _, t := range c.tasks {
			if t.instance == ci && t.desired != "STOPPED" {
				f.beginStop(t, "TerminationNotice", fmt.Sprintf("Container instance %s was deregistered.", ci.id))
			}
		}
	}
}

// ---- load balancing

func loadBalancerHandler() *cfnHandler {
	known := []string{"Name", "Scheme", "Type", "Subnets", "SubnetMappings", "SecurityGroups", "IpAddressType", "LoadBalancerAttributes", "Tags"}
	return &cfnHandler{
		create: func(x *cfnOp, r *cfnResource) error {
			if err := refuseUnknown(r, known...); err != nil {
				return err
			}
			if t := cmp.Or(propString(r.props, "Type"), "application"); t != "application" {
				return fmt.Errorf("awssim models application load balancers only, not %s", t)
			}
			name := cmp.Or(propString(r.props, "Name"), physicalName(x, r, 32))
			f := x.s.compute
			f.mu.Lock()
			for _, lb := range f.lbs {
				if lb.name == name {
					f.mu.Unlock()
					return fmt.Errorf("A load balancer with the same name '%s' exists, but with different settings", name)
				}
			}
			f.mu.Unlock()
			lbx := x.s.CreateLoadBalancer(name)
			f.mu.Lock()
			lb := f.lbs[arnName(lbx.ARN)]
			lb.scheme, lb.subnets, lb.sgs = propString(r.props, "Scheme"), propStrings(r.props, "Subnets"), propStrings(r.props, "SecurityGroups")
			lb.home = x.st.home
			arn := lb.arn(x.st.home)
			f.mu.Unlock()
			r.physical = arn
			sgs := []any{}
			for _, sg := range propStrings(r.props, "SecurityGroups") {
				sgs = append(sgs, sg)
			}
			r.attrs = map[string]any{
				"DNSName": lbx.DNSName, "CanonicalHostedZoneID": "Z14GRHDCWA56QT", "LoadBalancerArn": arn,
				"LoadBalancerFullName": "app/" + name + "/" + arnName(arn), "LoadBalancerName": name, "SecurityGroups": sgs,
			}
			return nil
		},
		update: func(x *cfnOp, r *cfnResource, _ map[string]any) error {
			if err := refuseUnknown(r, known...); err != nil {
				return err
			}
			f := x.s.compute
			f.mu.Lock()
			defer f.mu.Unlock()
			if lb := f.lbs[arnName(r.physical)]; lb != nil {
				lb.subnets, lb.sgs = propStrings(r.props, "Subnets"), propStrings(r.props, "SecurityGroups")
			}
			return nil
		},
		replaceOn: []string{"Name", "Scheme", "Type"},
		delete: func(x *cfnOp, r *cfnResource) error {
			f := x.s.compute
			f.mu.Lock()
			lb := f.lbs[arnName(r.physical)]
			if lb == nil {
				f.mu.Unlock()
				return nil
			}
			delete(f.lbs, lb.id)
			f.relink()
			f.mu.Unlock()
			lb.srv.Close()
			return nil
		},
	}
}

// tgSecondDefault is how long one second of a target group's health check
// lasts in the simulation: a 30 s interval probes every 300 ms.
const tgSecondDefault = 10 * time.Millisecond

// SetTargetGroupSecond sets how long one second of a stack's target
// group health checks (interval, deregistration delay) lasts; timeouts
// are not scaled. Set it before the stack is made.
func (s *Sim) SetTargetGroupSecond(d time.Duration) {
	s.compute.mu.Lock()
	defer s.compute.mu.Unlock()
	s.compute.tgSecond = d
}

func targetGroupHandler() *cfnHandler {
	known := []string{"Name", "Port", "Protocol", "ProtocolVersion", "TargetType", "VpcId", "HealthCheckEnabled", "HealthCheckPath",
		"HealthCheckPort", "HealthCheckProtocol", "HealthCheckIntervalSeconds", "HealthCheckTimeoutSeconds", "HealthyThresholdCount",
		"UnhealthyThresholdCount", "Matcher", "TargetGroupAttributes", "Tags", "IpAddressType"}
	// read is the spec as the template gives it; shown keeps the seconds.
	read := func(x *cfnOp, r *cfnResource) (TargetGroupSpec, tgSeconds, error) {
		var spec TargetGroupSpec
		var shown tgSeconds
		if err := refuseUnknown(r, known...); err != nil {
			return spec, shown, err
		}
		p := r.props
		if proto := cmp.Or(propString(p, "Protocol"), "HTTP"); proto != "HTTP" && proto != "HTTPS" {
			return spec, shown, fmt.Errorf("awssim models HTTP target groups, not %s", proto)
		}
		if hp := cmp.Or(propString(p, "HealthCheckProtocol"), "HTTP"); hp != "HTTP" {
			return spec, shown, fmt.Errorf("awssim models HTTP health checks, not %s", hp)
		}
		if port := cmp.Or(propString(p, "HealthCheckPort"), "traffic-port"); port != "traffic-port" {
			return spec, shown, fmt.Errorf("awssim models health checks on the traffic port, not %s", port)
		}
		if propString(p, "HealthCheckEnabled") == "false" {
			return spec, shown, fmt.Errorf("awssim models target groups with health checks enabled")
		}
		var err error
		ints := map[string]*int{"Port": &spec.Port, "HealthyThresholdCount": &spec.HealthyThreshold, "UnhealthyThresholdCount": &spec.UnhealthyThreshold,
			"HealthCheckIntervalSeconds": &shown.interval, "HealthCheckTimeoutSeconds": &shown.timeout}
		defs := map[string]int{"Port": 0, "HealthyThresholdCount": 5, "UnhealthyThresholdCount": 2, "HealthCheckIntervalSeconds": 30, "HealthCheckTimeoutSeconds": 5}
		for k, dst := range ints {
			if *dst, err = propInt(p, k, defs[k]); err != nil {
				return spec, shown, err
			}
		}
		if spec.Port < 1 || spec.Port > 65535 {
			return spec, shown, fmt.Errorf("A port must be specified for target groups with target type 'ip' (1-65535)")
		}
		if shown.timeout >= shown.interval {
			return spec, shown, fmt.Errorf("Health check interval must be greater than the timeout.")
		}
		spec.HealthPath = cmp.Or(propString(p, "HealthCheckPath"), "/")
		if !strings.HasPrefix(spec.HealthPath, "/") {
			return spec, shown, fmt.Errorf("Health check path must begin with '/'")
		}
		spec.Matcher = cmp.Or(propString(propMap(p, "Matcher"), "HttpCode"), "200")
		shown.delay = 300
		for _, a := range propMaps(p, "TargetGroupAttributes") {
			switch k := propString(a, "Key"); k {
			case "deregistration_delay.timeout_seconds":
				if shown.delay, err = strconv.Atoi(propString(a, "Value")); err != nil {
					return spec, shown, fmt.Errorf("deregistration_delay.timeout_seconds must be an integer")
				}
			case "stickiness.enabled", "load_balancing.algorithm.type", "slow_start.duration_seconds":
			default:
				return spec, shown, fmt.Errorf("awssim does not model the target group attribute %s", k)
			}
		}
		x.s.compute.mu.Lock()
		sec := cmp.Or(x.s.compute.tgSecond, tgSecondDefault)
		x.s.compute.mu.Unlock()
		spec.Interval = time.Duration(shown.interval) * sec
		spec.Timeout = time.Duration(shown.timeout) * time.Second
		spec.DeregistrationDelay = max(time.Duration(shown.delay)*sec, time.Millisecond)
		return spec, shown, nil
	}
	return &cfnHandler{
		create: func(x *cfnOp, r *cfnResource) error {
			spec, shown, err := read(x, r)
			if err != nil {
				return err
			}
			spec.Name = cmp.Or(propString(r.props, "Name"), physicalName(x, r, 32))
			if len(spec.Name) > 32 {
				return fmt.Errorf("Target group name '%s' cannot be longer than '32' characters", spec.Name)
			}
			f := x.s.compute
			f.mu.Lock()
			for _, tg := range f.tgs {
				if tg.spec.Name == spec.Name {
					f.mu.Unlock()
					return fmt.Errorf("A target group with the same name '%s' exists, but with different settings", spec.Name)
				}
			}
			f.mu.Unlock()
			made := x.s.CreateTargetGroupWith(spec)
			f.mu.Lock()
			tg := f.tgs[arnName(made.ARN)]
			tg.shown, tg.vpc, tg.home = shown, propString(r.props, "VpcId"), x.st.home
			arn := tg.arn(x.st.home)
			f.mu.Unlock()
			r.physical = arn
			r.attrs = map[string]any{"TargetGroupArn": arn, "TargetGroupName": spec.Name, "TargetGroupFullName": "targetgroup/" + spec.Name + "/" + tg.id, "LoadBalancerArns": []any{}}
			return nil
		},
		update: func(x *cfnOp, r *cfnResource, _ map[string]any) error {
			spec, shown, err := read(x, r)
			if err != nil {
				return err
			}
			f := x.s.compute
			f.mu.Lock()
			defer f.mu.Unlock()
			tg := f.tgs[arnName(r.physical)]
			if tg == nil {
				return fmt.Errorf("Target group %s not found", r.physical)
			}
			spec.Name = tg.spec.Name
			spec.Interval, spec.Timeout = tg.spec.Interval, tg.spec.Timeout // the prober keeps its period and client
			tg.spec, tg.shown = spec, shown
			return nil
		},
		replaceOn: []string{"Name", "Port", "Protocol", "ProtocolVersion", "TargetType", "VpcId"},
		delete: func(x *cfnOp, r *cfnResource) error {
			f := x.s.compute
			f.mu.Lock()
			defer f.mu.Unlock()
			tg := f.tgs[arnName(r.physical)]
			if tg == nil {
				return nil
			}
			if len(tg.lbs) > 0 {
				return fmt.Errorf("Target group '%s' is currently in use by a listener or a rule", r.physical)
			}
			tg.gone = true
			delete(f.tgs, tg.id)
			return nil
		},
		drift: func(x *cfnOp, r *cfnResource) string {
			f := x.s.compute
			f.mu.Lock()
			defer f.mu.Unlock()
			tg := f.tgs[arnName(r.physical)]
			if tg == nil {
				return "DELETED"
			}
			if tg.spec.HealthPath != cmp.Or(propString(r.props, "HealthCheckPath"), "/") {
				return "MODIFIED"
			}
			return "IN_SYNC"
		},
	}
}

// readActions reads a listener's or rule's actions: exactly one of
// forward, redirect or fixed-response; the caller holds the lock.
func readActions(f *compute, list []map[string]any) (lbAction, error) {
	if len(list) != 1 {
		return lbAction{}, fmt.Errorf("awssim models exactly one action per listener or rule, not %d", len(list))
	}
	a := list[0]
	var out lbAction
	out.typ = propString(a, "Type")
	for k := range a {
		switch k {
		case "Type", "Order", "TargetGroupArn", "ForwardConfig", "RedirectConfig", "FixedResponseConfig":
		default:
			return out, fmt.Errorf("awssim does not model the action field %s", k)
		}
	}
	switch out.typ {
	case "forward":
		add := func(arn string, weight int) error {
			tg := f.targetGroupByARN(arn)
			if tg == nil || !strings.HasPrefix(arn, "arn:") {
				return fmt.Errorf("Target group '%s' not found", arn)
			}
			out.tgs = append(out.tgs, weightedGroup{tg: tg, weight: weight})
			return nil
		}
		if arn := propString(a, "TargetGroupArn"); arn != "" {
			if err := add(arn, 1); err != nil {
				return out, err
			}
		}
		for _, t := range propMaps(propMap(a, "ForwardConfig"), "TargetGroups") {
			w, err := propInt(t, "Weight", 1)
			if err != nil {
				return out, err
			}
			arn := propString(t, "TargetGroupArn")
			if slices.ContainsFunc(out.tgs, func(g weightedGroup) bool { return g.tg.id == arnName(arn) }) {
				continue // the same group named twice, as TargetGroupArn and in ForwardConfig
			}
			if err := add(arn, w); err != nil {
				return out, err
			}
		}
		if len(out.tgs) == 0 {
			return out, fmt.Errorf("A forward action must name a target group")
		}
	case "redirect":
		rc := propMap(a, "RedirectConfig")
		if rc == nil || propString(rc, "StatusCode") == "" {
			return out, fmt.Errorf("A redirect action requires RedirectConfig with a StatusCode")
		}
		out.protocol, out.port, out.host = propString(rc, "Protocol"), propString(rc, "Port"), propString(rc, "Host")
		out.path, out.query, out.status = propString(rc, "Path"), propString(rc, "Query"), propString(rc, "StatusCode")
	case "fixed-response":
		fc := propMap(a, "FixedResponseConfig")
		if fc == nil || propString(fc, "StatusCode") == "" {
			return out, fmt.Errorf("A fixed-response action requires FixedResponseConfig with a StatusCode")
		}
		out.status, out.contentType, out.body = propString(fc, "StatusCode"), propString(fc, "ContentType"), propString(fc, "MessageBody")
	default:
		return out, fmt.Errorf("awssim does not model the action type %q", out.typ)
	}
	return out, nil
}

func listenerHandler() *cfnHandler {
	known := []string{"LoadBalancerArn", "Port", "Protocol", "Certificates", "SslPolicy", "DefaultActions", "AlpnPolicy"}
	apply := func(x *cfnOp, r *cfnResource, l *lbListener) error {
		if err := refuseUnknown(r, known...); err != nil {
			return err
		}
		port, err := propInt(r.props, "Port", 0)
		if err != nil {
			return err
		}
		proto := propString(r.props, "Protocol")
		if proto != "HTTP" && proto != "HTTPS" {
			return fmt.Errorf("awssim models HTTP and HTTPS listeners, not %q", proto)
		}
		var certs []string
		for _, c := range propMaps(r.props, "Certificates") {
			certs = append(certs, propString(c, "CertificateArn"))
		}
		if proto == "HTTPS" && len(certs) == 0 {
			return fmt.Errorf("A certificate must be specified for HTTPS listeners")
		}
		f := x.s.compute
		f.mu.Lock()
		defer f.mu.Unlock()
		act, err := readActions(f, propMaps(r.props, "DefaultActions"))
		if err != nil {
			return err
		}
		for _, other := range l.lb.listeners {
			if other != l && other.port == port {
				return fmt.Errorf("A listener already exists on this port for this load balancer '%s'", l.lb.arn(x.st.home))
			}
		}
		l.port, l.protocol, l.certs, l.sslPolicy, l.def = port, proto, certs, propString(r.props, "SslPolicy"), act
		if !slices.Contains(l.lb.listeners, l) {
			l.lb.listeners = append(l.lb.listeners, l)
		}
		f.relink()
		return nil
	}
	return &cfnHandler{
		create: func(x *cfnOp, r *cfnResource) error {
			f := x.s.compute
			f.mu.Lock()
			lb := f.lbs[arnName(propString(r.props, "LoadBalancerArn"))]
			f.mu.Unlock()
			if lb == nil {
				return fmt.Errorf("Load balancer '%s' not found", propString(r.props, "LoadBalancerArn"))
			}
			l := &lbListener{id: computeHex(16), lb: lb}
			if err := apply(x, r, l); err != nil {
				return err
			}
			r.physical = l.arn(x.st.home)
			r.attrs = map[string]any{"ListenerArn": r.physical}
			return nil
		},
		update: func(x *cfnOp, r *cfnResource, _ map[string]any) error {
			x.s.compute.mu.Lock()
			l := x.s.compute.listenerByARN(r.physical)
			x.s.compute.mu.Unlock()
			if l == nil {
				return fmt.Errorf("Listener '%s' not found", r.physical)
			}
			return apply(x, r, l)
		},
		replaceOn: []string{"LoadBalancerArn"},
		delete: func(x *cfnOp, r *cfnResource) error {
			f := x.s.compute
			f.mu.Lock()
			defer f.mu.Unlock()
			if l := f.listenerByARN(r.physical); l != nil {
				l.lb.listeners = slices.DeleteFunc(l.lb.listeners, func(o *lbListener) bool { return o == l })
				f.relink()
			}
			return nil
		},
	}
}

func listenerRuleHandler() *cfnHandler {
	apply := func(x *cfnOp, r *cfnResource, l *lbListener, rule *lbRule) error {
		if err := refuseUnknown(r, "ListenerArn", "Priority", "Conditions", "Actions"); err != nil {
			return err
		}
		prio, err := propInt(r.props, "Priority", 0)
		if err != nil {
			return err
		}
		var texts []string
		for _, c := range propMaps(r.props, "Conditions") {
			if field := propString(c, "Field"); field != "path-pattern" {
				return fmt.Errorf("awssim models path-pattern conditions only, not %q", field)
			}
			vals := propStrings(c, "Values")
			if pc := propMap(c, "PathPatternConfig"); pc != nil {
				vals = append(vals, propStrings(pc, "Values")...)
			}
			texts = append(texts, vals...)
		}
		if len(texts) == 0 {
			return fmt.Errorf("A rule must have at least one condition")
		}
		f := x.s.compute
		f.mu.Lock()
		defer f.mu.Unlock()
		act, err := readActions(f, propMaps(r.props, "Actions"))
		if err != nil {
			return err
		}
		was := *rule
		rule.priority, rule.texts, rule.action = prio, texts, act
		if err := l.addRule(rule); err != nil {
			*rule = was
			return fmt.Errorf("%s", asError(err).Message)
		}
		f.relink()
		return nil
	}
	return &cfnHandler{
		create: func(x *cfnOp, r *cfnResource) error {
			x.s.compute.mu.Lock()
			l := x.s.compute.listenerByARN(propString(r.props, "ListenerArn"))
			x.s.compute.mu.Unlock()
			if l == nil {
				return fmt.Errorf("Listener '%s' not found", propString(r.props, "ListenerArn"))
			}
			rule := &lbRule{id: computeHex(16)}
			if err := apply(x, r, l, rule); err != nil {
				return err
			}
			r.physical = l.ruleARN(x.st.home, rule)
			r.attrs = map[string]any{"RuleArn": r.physical, "IsDefault": "false"}
			return nil
		},
		update: func(x *cfnOp, r *cfnResource, _ map[string]any) error {
			x.s.compute.mu.Lock()
			l, rule := x.s.compute.ruleByARN(r.physical)
			x.s.compute.mu.Unlock()
			if rule == nil {
				return fmt.Errorf("Rule '%s' not found", r.physical)
			}
			return apply(x, r, l, rule)
		},
		replaceOn: []string{"ListenerArn"},
		delete: func(x *cfnOp, r *cfnResource) error {
			f := x.s.compute
			f.mu.Lock()
			defer f.mu.Unlock()
			if l, rule := f.ruleByARN(r.physical); rule != nil {
				l.rules = slices.DeleteFunc(l.rules, func(o *lbRule) bool { return o == rule })
				f.relink()
			}
			return nil
		},
	}
}

// ---- logs and Cloud Map

func logGroupHandler() *cfnHandler {
	apply := func(x *cfnOp, r *cfnResource) error {
		if err := refuseUnknown(r, "LogGroupName", "RetentionInDays", "KmsKeyId", "Tags", "LogGroupClass", "DataProtectionPolicy"); err != nil {
			return err
		}
		days, err := propInt(r.props, "RetentionInDays", 0)
		if err != nil {
			return err
		}
		if days != 0 && !slices.Contains(logRetentionDaysAccepted, days) {
			return fmt.Errorf("Invalid retention value %d: must be one of %v", days, logRetentionDaysAccepted)
		}
		s := x.s
		s.logs.mu.Lock()
		defer s.logs.mu.Unlock()
		if g := s.logs.groups[r.physical]; g != nil {
			g.retention = days
		}
		return nil
	}
	return &cfnHandler{
		create: func(x *cfnOp, r *cfnResource) error {
			name := cmp.Or(propString(r.props, "LogGroupName"), physicalName(x, r, 512))
			s := x.s
			s.logs.mu.Lock()
			if s.logs.groups == nil {
				s.logs.groups = map[string]*logGroupInfo{}
			}
			if s.logs.groups[name] != nil {
				s.logs.mu.Unlock()
				return alreadyExists(r.typ, name)
			}
			s.logs.groups[name] = &logGroupInfo{created: time.Now()}
			s.logs.mu.Unlock()
			r.physical = name
			r.attrs = map[string]any{"Arn": x.st.home.arn("logs", "log-group:"+name+":*")}
			if err := apply(x, r); err != nil {
				s.logs.mu.Lock()
				delete(s.logs.groups, name)
				s.logs.mu.Unlock()
				return err
			}
			return nil
		},
		update:    func(x *cfnOp, r *cfnResource, _ map[string]any) error { return apply(x, r) },
		replaceOn: []string{"LogGroupName"},
		delete: func(x *cfnOp, r *cfnResource) error {
			x.s.logs.mu.Lock()
			defer x.s.logs.mu.Unlock()
			delete(x.s.logs.groups, r.physical)
			return nil
		},
	}
}

func namespaceHandler() *cfnHandler {
	return &cfnHandler{
		create: func(x *cfnOp, r *cfnResource) error {
			if err := refuseUnknown(r, "Name", "Description", "Tags"); err != nil {
				return err
			}
			name := propString(r.props, "Name")
			if name == "" {
				return fmt.Errorf("Property Name is required")
			}
			f := x.s.compute
			f.mu.Lock()
			defer f.mu.Unlock()
			if _, ok := f.namespaces[name]; ok {
				return fmt.Errorf("Namespace %s already exists (ConflictingDomainExists)", name)
			}
			id := "ns-" + computeHex(16)
			arn := x.st.home.arn("servicediscovery", "namespace/"+id)
			f.namespaces[name] = arn
			r.physical = id
			r.attrs = map[string]any{"Id": id, "Arn": arn}
			return nil
		},
		update:    func(*cfnOp, *cfnResource, map[string]any) error { return nil },
		replaceOn: []string{"Name"},
		delete: func(x *cfnOp, r *cfnResource) error {
			f := x.s.compute
			f.mu.Lock()
			defer f.mu.Unlock()
			delete(f.namespaces, propString(r.props, "Name"))
			return nil
		},
	}
}
