package awssim

import (
	"crypto/rand"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Auto Scaling over the query protocol, for the simulated instances in
// instances.go. Groups are the simulator's, whoever signs; scaling launches
// and terminates instances, and an instance refresh moves one step per
// DescribeInstanceRefreshes (Pending, InProgress, Successful) and replaces
// every instance of the group with a new one alike.

const (
	asVersion = "2011-01-01"
	asXMLNS   = "http://autoscaling.amazonaws.com/doc/2011-01-01/"
)

type asGroup struct {
	name           string
	uuid           string
	created        time.Time
	min, max, want int
	template       Instance // what scaling out launches
	refreshes      []*instanceRefresh
}

type instanceRefresh struct {
	id, group, status string
	start, end        time.Time
	percent, toUpdate int
	minHealthy        string
	warmup            string
}

func (s *Sim) registerAutoScaling() {
	s.fleet = newFleet()
	s.RegisterQuery(asVersion, QueryService{Name: "AutoScaling", XMLNS: asXMLNS, Handler: s.serveAutoScaling})
}

func uuid4() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// AddAutoScalingGroup creates (or reconfigures) a group with these
// instances; when they are fewer than desired, more like the first one are
// launched. It returns the group's instances, IDs filled in.
func (s *Sim) AddAutoScalingGroup(name string, min, max, desired int, instances ...Instance) []Instance {
	out := s.addAutoScalingGroup(name, min, max, desired, instances...)
	// Clusters see the change at once, as the next test step expects.
	s.syncInstances()
	return out
}

func (s *Sim) addAutoScalingGroup(name string, min, max, desired int, instances ...Instance) []Instance {
	f := s.fleet
	f.mu.Lock()
	defer f.mu.Unlock()
	g := f.groups[name]
	if g == nil {
		g = &asGroup{name: name, uuid: uuid4(), created: time.Now()}
		f.groups[name] = g
	}
	g.min, g.max, g.want = min, max, desired
	for i, in := range instances {
		in.Group = name
		in = f.launch(in)
		if i == 0 {
			g.template = in
		}
	}
	if len(instances) == 0 && g.template.InstanceType == "" {
		g.template = Instance{Group: name}
	}
	f.reconcile(g)
	return f.members(name)
}

// reconcile launches or terminates instances until the group has as many
// as it wants (newest terminated first); f.mu held.
func (f *fleet) reconcile(g *asGroup) {
	have := f.members(g.name)
	for n := len(have); n < g.want; n++ {
		t := g.template.clone()
		t.ID, t.AZ, t.Group, t.Lifecycle = "", "", g.name, ""
		f.launch(t)
	}
	for i := len(have) - 1; i >= g.want; i-- {
		f.terminate(have[i].ID)
	}
}

func asGroupNotFound(name string) *Error {
	return Errorf("ValidationError", "AutoScalingGroup name not found - AutoScalingGroup '%s' not found", name)
}

// formMembers reads a query-protocol list: Name.member.1, Name.member.2, …
func formMembers(form url.Values, name string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := form[name+".member."+strconv.Itoa(i)]
		if !ok {
			return out
		}
		out = append(out, v[0])
	}
}

func formInt(form url.Values, name string) (int, bool, error) {
	v := form.Get(name)
	if v == "" {
		return 0, false, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, false, Errorf("ValidationError", "Value '%s' at '%s' failed to satisfy constraint: Member must be an integer", v, name)
	}
	return n, true, nil
}

func isoMillis(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// Response shapes, with Auto Scaling's member names.
type (
	asInstanceXML struct {
		InstanceID           string `xml:"InstanceId"`
		InstanceType         string `xml:"InstanceType"`
		AvailabilityZone     string `xml:"AvailabilityZone"`
		LifecycleState       string `xml:"LifecycleState"`
		HealthStatus         string `xml:"HealthStatus"`
		ProtectedFromScaleIn bool   `xml:"ProtectedFromScaleIn"`
	}
	asGroupXML struct {
		AutoScalingGroupName             string          `xml:"AutoScalingGroupName"`
		AutoScalingGroupARN              string          `xml:"AutoScalingGroupARN"`
		MinSize                          int             `xml:"MinSize"`
		MaxSize                          int             `xml:"MaxSize"`
		DesiredCapacity                  int             `xml:"DesiredCapacity"`
		DefaultCooldown                  int             `xml:"DefaultCooldown"`
		AvailabilityZones                []string        `xml:"AvailabilityZones>member"`
		HealthCheckType                  string          `xml:"HealthCheckType"`
		HealthCheckGracePeriod           int             `xml:"HealthCheckGracePeriod"`
		Instances                        []asInstanceXML `xml:"Instances>member"`
		CreatedTime                      string          `xml:"CreatedTime"`
		TerminationPolicies              []string        `xml:"TerminationPolicies>member"`
		NewInstancesProtectedFromScaleIn bool            `xml:"NewInstancesProtectedFromScaleIn"`
		ServiceLinkedRoleARN             string          `xml:"ServiceLinkedRoleARN"`
	}
	asPreferencesXML struct {
		MinHealthyPercentage string `xml:"MinHealthyPercentage,omitempty"`
		InstanceWarmup       string `xml:"InstanceWarmup,omitempty"`
		SkipMatching         bool   `xml:"SkipMatching"`
	}
	asRefreshXML struct {
		InstanceRefreshID    string           `xml:"InstanceRefreshId"`
		AutoScalingGroupName string           `xml:"AutoScalingGroupName"`
		Status               string           `xml:"Status"`
		StatusReason         string           `xml:"StatusReason,omitempty"`
		StartTime            string           `xml:"StartTime"`
		EndTime              string           `xml:"EndTime,omitempty"`
		PercentageComplete   int              `xml:"PercentageComplete"`
		InstancesToUpdate    int              `xml:"InstancesToUpdate"`
		Preferences          asPreferencesXML `xml:"Preferences"`
		Strategy             string           `xml:"Strategy"`
	}
)

func (s *Sim) serveAutoScaling(r *http.Request, op string) (any, error) {
	p, ok := s.Caller(r)
	if !ok {
		return nil, &Error{Status: http.StatusForbidden, Code: "InvalidClientTokenId", Message: "The security token included in the request is invalid."}
	}
	form := r.PostForm
	meta := ResponseMetadata{RequestID: s.RequestID()}
	f := s.fleet
	f.mu.Lock()
	defer f.mu.Unlock()

	switch op {
	case "DescribeAutoScalingGroups":
		names := formMembers(form, "AutoScalingGroupNames")
		if len(names) == 0 {
			for name := range f.groups {
				names = append(names, name)
			}
			sort.Strings(names)
		}
		out := []asGroupXML{}
		for _, name := range names {
			if g := f.groups[name]; g != nil {
				out = append(out, f.groupXML(g, p.Account, signingRegion(r)))
			}
		}
		type result struct {
			Groups []asGroupXML `xml:"AutoScalingGroups>member"`
		}
		return struct {
			XMLName  xml.Name         `xml:"http://autoscaling.amazonaws.com/doc/2011-01-01/ DescribeAutoScalingGroupsResponse"`
			Result   result           `xml:"DescribeAutoScalingGroupsResult"`
			Metadata ResponseMetadata `xml:"ResponseMetadata"`
		}{Result: result{Groups: out}, Metadata: meta}, nil

	case "UpdateAutoScalingGroup":
		name := form.Get("AutoScalingGroupName")
		g := f.groups[name]
		if g == nil {
			return nil, asGroupNotFound(name)
		}
		lo, hasMin, err := formInt(form, "MinSize")
		if err != nil {
			return nil, err
		}
		hi, hasMax, err := formInt(form, "MaxSize")
		if err != nil {
			return nil, err
		}
		want, hasWant, err := formInt(form, "DesiredCapacity")
		if err != nil {
			return nil, err
		}
		if !hasMin {
			lo = g.min
		}
		if !hasMax {
			hi = g.max
		}
		if lo > hi {
			return nil, Errorf("ValidationError", "Max bound, %d, must be greater than or equal to min bound, %d", hi, lo)
		}
		if hasWant {
			if want < lo || want > hi {
				return nil, Errorf("ValidationError", "Desired capacity:%d must be between the specified min size:%d and max size:%d", want, lo, hi)
			}
		} else {
			want = min(max(g.want, lo), hi)
		}
		g.min, g.max, g.want = lo, hi, want
		f.reconcile(g)
		return struct {
			XMLName  xml.Name         `xml:"http://autoscaling.amazonaws.com/doc/2011-01-01/ UpdateAutoScalingGroupResponse"`
			Metadata ResponseMetadata `xml:"ResponseMetadata"`
		}{Metadata: meta}, nil

	case "StartInstanceRefresh":
		name := form.Get("AutoScalingGroupName")
		g := f.groups[name]
		if g == nil {
			return nil, asGroupNotFound(name)
		}
		strategy := form.Get("Strategy")
		if strategy == "" {
			strategy = "Rolling"
		}
		if strategy != "Rolling" {
			return nil, Errorf("ValidationError", "awssim refreshes instances only with the Rolling strategy, not %q", strategy)
		}
		for _, ir := range g.refreshes {
			if ir.status == "Pending" || ir.status == "InProgress" {
				return nil, Errorf("InstanceRefreshInProgress", "An Instance Refresh is already in progress and blocks the execution of this Instance Refresh.")
			}
		}
		ir := &instanceRefresh{
			id: uuid4(), group: name, status: "Pending", start: time.Now(),
			toUpdate:   len(f.members(name)),
			minHealthy: form.Get("Preferences.MinHealthyPercentage"),
			warmup:     form.Get("Preferences.InstanceWarmup"),
		}
		g.refreshes = append(g.refreshes, ir)
		type result struct {
			ID string `xml:"InstanceRefreshId"`
		}
		return struct {
			XMLName  xml.Name         `xml:"http://autoscaling.amazonaws.com/doc/2011-01-01/ StartInstanceRefreshResponse"`
			Result   result           `xml:"StartInstanceRefreshResult"`
			Metadata ResponseMetadata `xml:"ResponseMetadata"`
		}{Result: result{ID: ir.id}, Metadata: meta}, nil

	case "DescribeInstanceRefreshes":
		name := form.Get("AutoScalingGroupName")
		if name == "" {
			return nil, Errorf("ValidationError", "1 validation error detected: Value null at 'autoScalingGroupName' failed to satisfy constraint: Member must not be null")
		}
		ids := map[string]bool{}
		for _, id := range formMembers(form, "InstanceRefreshIds") {
			ids[id] = true
		}
		out := []asRefreshXML{}
		if g := f.groups[name]; g != nil {
			for i := len(g.refreshes) - 1; i >= 0; i-- { // newest first, as AWS lists them
				ir := g.refreshes[i]
				if len(ids) > 0 && !ids[ir.id] {
					continue
				}
				f.advance(g, ir)
				out = append(out, ir.xml())
			}
		}
		type result struct {
			Refreshes []asRefreshXML `xml:"InstanceRefreshes>member"`
		}
		return struct {
			XMLName  xml.Name         `xml:"http://autoscaling.amazonaws.com/doc/2011-01-01/ DescribeInstanceRefreshesResponse"`
			Result   result           `xml:"DescribeInstanceRefreshesResult"`
			Metadata ResponseMetadata `xml:"ResponseMetadata"`
		}{Result: result{Refreshes: out}, Metadata: meta}, nil
	}
	return nil, InvalidAction(op, asVersion)
}

// advance moves a refresh one step; the last replaces the group's
// instances; f.mu held.
func (f *fleet) advance(g *asGroup, ir *instanceRefresh) {
	switch ir.status {
	case "Pending":
		ir.status, ir.percent = "InProgress", 50
	case "InProgress":
		for _, old := range f.members(g.name) {
			f.terminate(old.ID)
			old.ID, old.Lifecycle = "", ""
			f.launch(old)
		}
		ir.status, ir.percent, ir.toUpdate, ir.end = "Successful", 100, 0, time.Now()
	}
}

func (ir *instanceRefresh) xml() asRefreshXML {
	x := asRefreshXML{
		InstanceRefreshID: ir.id, AutoScalingGroupName: ir.group, Status: ir.status,
		StartTime: isoMillis(ir.start), PercentageComplete: ir.percent, InstancesToUpdate: ir.toUpdate,
		Preferences: asPreferencesXML{MinHealthyPercentage: ir.minHealthy, InstanceWarmup: ir.warmup},
		Strategy:    "Rolling",
	}
	if !ir.end.IsZero() {
		x.EndTime = isoMillis(ir.end)
	}
	return x
}

// groupXML is a group as DescribeAutoScalingGroups shows it; f.mu held.
func (f *fleet) groupXML(g *asGroup, account, region string) asGroupXML {
	x := asGroupXML{
		AutoScalingGroupName:   g.name,
		AutoScalingGroupARN:    fmt.Sprintf("arn:aws:autoscaling:%s:%s:autoScalingGroup:%s:autoScalingGroupName/%s", region, account, g.uuid, g.name),
		MinSize:                g.min,
		MaxSize:                g.max,
		DesiredCapacity:        g.want,
		DefaultCooldown:        300,
		HealthCheckType:        "EC2",
		HealthCheckGracePeriod: 300,
		Instances:              []asInstanceXML{},
		CreatedTime:            isoMillis(g.created),
		TerminationPolicies:    []string{"Default"},
		ServiceLinkedRoleARN:   fmt.Sprintf("arn:aws:iam::%s:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling", account),
	}
	zones := map[string]bool{}
	for _, in := range f.members(g.name) {
		x.Instances = append(x.Instances, asInstanceXML{
			InstanceID: in.ID, InstanceType: in.InstanceType, AvailabilityZone: in.AZ,
			LifecycleState: in.Lifecycle, HealthStatus: "Healthy",
		})
		zones[in.AZ] = true
	}
	for z := range zones {
		x.AvailabilityZones = append(x.AvailabilityZones, z)
	}
	sort.Strings(x.AvailabilityZones)
	if len(x.AvailabilityZones) == 0 {
		x.AvailabilityZones = []string{strings.TrimSpace(region) + "a"}
	}
	return x
}
