package awssim

import (
	"fmt"
	"maps"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"
)

// The stack operations: what a change set would do (diff), and doing it —
// create, update, roll back, delete — one resource at a time in dependency
// order, with an event for every step.

type cfnChange struct {
	action, logical, physical, typ string
	replacement                    string // True | Conditional | False, for Modify
	details                        []cfnDetail
}

type cfnDetail struct {
	name, recreation, evaluation, cause string
}

// scope is the evaluation scope of a template against a stack; resource
// answers from the stack's resources, or for unknown names per the caller.
func (s *Sim) scope(st *cfnStack, t *cfnTemplate, params []cfnParam, resource func(name, attr string) (any, error)) (*evalScope, error) {
	sc := &evalScope{t: t, params: map[string]string{}, resource: resource, pseudo: map[string]string{
		"AWS::Region": st.home.region, "AWS::AccountId": st.home.account, "AWS::StackName": st.name, "AWS::StackId": st.id,
		"AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com", "AWS::NotificationARNs": "",
	}}
	for _, p := range params {
		sc.params[p.Key] = p.effective()
	}
	if err := sc.evalConditions(); err != nil {
		return nil, err
	}
	return sc, nil
}

// existing resolves Ref and Fn::GetAtt against a live resource.
func existing(r *cfnResource, name, attr string) (any, error) {
	if r == nil || r.physical == "" {
		return nil, evalFail("Template error: instance of Fn::GetAtt references undefined resource %s", name)
	}
	if attr == "" {
		return r.physical, nil
	}
	v, ok := r.attrs[attr]
	if !ok {
		return nil, evalFail("Template error: resource %s does not support attribute type %s in Fn::GetAtt", name, attr)
	}
	return v, nil
}

func (sc *evalScope) active(d *cfnResourceDecl) bool {
	return d.Condition == "" || sc.conds[d.Condition]
}

// diff is what a change set shows: each resource added, modified (and
// whether that replaces it) or removed. The caller holds the lock.
func (s *Sim) diff(st *cfnStack, t *cfnTemplate, params []cfnParam) ([]cfnChange, error) {
	pending := map[string]bool{} // added or replaced: attributes unknown until made
	sc, err := s.scope(st, t, params, func(name, attr string) (any, error) {
		if pending[name] {
			return unknownValue{ref: name}, nil
		}
		v, err := existing(st.resources[name], name, attr)
		if err != nil {
			return unknownValue{ref: name}, nil
		}
		return v, nil
	})
	if err != nil {
		return nil, err
	}
	var changes []cfnChange
	for _, name := range t.order {
		d := t.resources[name]
		if !sc.active(d) {
			continue
		}
		old := st.resources[name]
		if old == nil {
			pending[name] = true
			changes = append(changes, cfnChange{action: "Add", logical: name, typ: d.Type})
			continue
		}
		ch := cfnChange{action: "Modify", logical: name, physical: old.physical, typ: d.Type, replacement: "False"}
		if old.typ != d.Type {
			ch.replacement = "True"
			ch.details = append(ch.details, cfnDetail{name: "Type", recreation: "Always", evaluation: "Static"})
		} else {
			h := cfnHandlerFor(d.Type)
			newProps, evErr := sc.eval(orEmpty(d.Properties))
			np, _ := newProps.(map[string]any)
			for _, key := range changedKeys(old.props, np) {
				det := cfnDetail{name: key, recreation: "Never", evaluation: "Static"}
				if evErr != nil || hasUnknown(np[key]) {
					det.evaluation = "Dynamic"
					det.cause = causeOf(np[key])
				}
				if h.replaces(key) {
					det.recreation = "Always"
				}
				ch.details = append(ch.details, det)
			}
			if evErr != nil && len(ch.details) == 0 {
				ch.details = append(ch.details, cfnDetail{name: "Properties", recreation: "Conditionally", evaluation: "Dynamic"})
			}
			for _, det := range ch.details {
				switch {
				case det.recreation == "Always" && det.evaluation == "Static":
					ch.replacement = "True"
				case det.recreation != "Never" && ch.replacement == "False":
					ch.replacement = "Conditional"
				}
			}
		}
		if len(ch.details) == 0 {
			continue
		}
		if ch.replacement != "False" {
			pending[name] = true
		}
		changes = append(changes, ch)
	}
	var removed []string
	for name := range st.resources {
		if d := t.resources[name]; d == nil || !sc.active(d) {
			removed = append(removed, name)
		}
	}
	sort.Strings(removed)
	for _, name := range removed {
		r := st.resources[name]
		changes = append(changes, cfnChange{action: "Remove", logical: name, physical: r.physical, typ: r.typ})
	}
	return changes, nil
}

func causeOf(v any) string {
	switch x := v.(type) {
	case unknownValue:
		return x.ref
	case []any:
		for _, e := range x {
			if c := causeOf(e); c != "" {
				return c
			}
		}
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(x)) {
			if c := causeOf(x[k]); c != "" {
				return c
			}
		}
	}
	return ""
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// changedKeys are the top-level properties that differ.
func changedKeys(old, new map[string]any) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(union(old, new))) {
		if !reflect.DeepEqual(normalize(old[k]), normalize(new[k])) {
			out = append(out, k)
		}
	}
	return out
}

func union(a, b map[string]any) map[string]any {
	out := maps.Clone(a)
	if out == nil {
		out = map[string]any{}
	}
	maps.Copy(out, b)
	return out
}

// normalize makes numbers and their string forms compare equal, as
// CloudFormation compares property values.
func normalize(v any) any {
	switch x := v.(type) {
	case float64, bool:
		s, _ := scalarString(x)
		return s
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	}
	return v
}

// ---- operations

// cfnOp is one stack operation under way.
type cfnOp struct {
	s      *Sim
	st     *cfnStack
	kind   string // CREATE | UPDATE | DELETE
	body   string
	tmpl   *cfnTemplate
	params []cfnParam
	caps   []string
	tags   []cfnTag

	disableRollback, deleteOnFailure bool
	retain                           []string
	step                             time.Duration
}

// startOperation marks the stack busy; the caller holds the lock.
func (s *Sim) startOperation(st *cfnStack, kind, body string, t *cfnTemplate, params []cfnParam, caps []string, tags []cfnTag, disableRollback, deleteOnFailure bool) *cfnOp {
	x := &cfnOp{s: s, st: st, kind: kind, body: body, tmpl: t, params: params, caps: caps, tags: tags,
		disableRollback: disableRollback, deleteOnFailure: deleteOnFailure, step: s.cfn.step}
	st.changeSets = nil // executing one change set discards the stack's others
	st.setStatus(kind+"_IN_PROGRESS", "User Initiated")
	if kind == "CREATE" {
		st.disableRollback = disableRollback
	}
	return x
}

// runOperation does the operation, in the background when the simulator
// has a step time.
func (s *Sim) runOperation(x *cfnOp) {
	s.cfn.mu.Lock()
	x.step = s.cfn.step
	s.cfn.mu.Unlock()
	if x.step == 0 {
		x.run()
		return
	}
	s.cfn.wg.Add(1)
	go func() {
		defer s.cfn.wg.Done()
		x.run()
	}()
}

func (x *cfnOp) locked(f func()) {
	x.s.cfn.mu.Lock()
	defer x.s.cfn.mu.Unlock()
	f()
}

func (x *cfnOp) pause() {
	if x.step > 0 {
		time.Sleep(x.step)
	}
}

func (x *cfnOp) event(r *cfnResource, status, reason string) {
	x.locked(func() {
		r.status, r.reason, r.updated = status, reason, time.Now()
		x.st.event(r.logical, r.physical, r.typ, status, reason)
	})
}

func (x *cfnOp) run() {
	if x.kind == "DELETE" {
		x.deleteStack()
		return
	}
	x.apply()
}

// undo is one step of an update, as rollback reverses it.
type undo struct {
	kind     string // created | modified | replaced
	logical  string
	old, new *cfnResource
}

// apply creates or updates the stack's resources to match the template.
func (x *cfnOp) apply() {
	st := x.st
	var sc *evalScope
	var err error
	x.locked(func() {
		sc, err = x.s.scope(st, x.tmpl, x.params, func(name, attr string) (any, error) {
			return existing(st.resources[name], name, attr)
		})
	})
	var undos []undo
	var failed []string
	var retire []*cfnResource
	fail := func(logical string) { failed = append(failed, logical) }
	if err != nil {
		x.finishFailed(nil, err.Error(), undos)
		return
	}
	for _, name := range x.tmpl.order {
		d := x.tmpl.resources[name]
		if !sc.active(d) {
			continue
		}
		x.pause()
		var old *cfnResource
		var props any
		x.locked(func() {
			old = st.resources[name]
			props, err = sc.eval(orEmpty(d.Properties))
		})
		h := cfnHandlerFor(d.Type)
		r := &cfnResource{logical: name, typ: d.Type, deletionPolicy: d.DeletionPolicy}
		if m, ok := props.(map[string]any); ok {
			r.props = m
		}
		if old == nil {
			x.event(r, "CREATE_IN_PROGRESS", "")
			if err == nil {
				err = h.create(x, r)
			}
			if err != nil {
				x.event(r, "CREATE_FAILED", err.Error())
				fail(name)
				break
			}
			x.event(r, "CREATE_COMPLETE", "")
			x.locked(func() { st.resources[name] = r })
			undos = append(undos, undo{kind: "created", logical: name, new: r})
			continue
		}
		if err != nil {
			x.event(old, "UPDATE_FAILED", err.Error())
			fail(name)
			break
		}
		keys := changedKeys(old.props, r.props)
		if len(keys) == 0 && old.typ == d.Type {
			continue
		}
		replace := old.typ != d.Type || h.update == nil || slices.ContainsFunc(keys, h.replaces)
		if !replace {
			x.event(old, "UPDATE_IN_PROGRESS", "")
			prev := old.props
			old.props = r.props
			if err := h.update(x, old, prev); err != nil {
				old.props = prev
				x.event(old, "UPDATE_FAILED", err.Error())
				fail(name)
				break
			}
			x.event(old, "UPDATE_COMPLETE", "")
			undos = append(undos, undo{kind: "modified", logical: name, old: &cfnResource{props: prev}, new: old})
			continue
		}
		x.event(old, "UPDATE_IN_PROGRESS", "Requested update requires the creation of a new physical resource; hence creating one.")
		if err := h.create(x, r); err != nil {
			r.physical = old.physical
			x.event(r, "UPDATE_FAILED", err.Error())
			fail(name)
			break
		}
		x.event(r, "UPDATE_IN_PROGRESS", "Resource creation Initiated")
		x.event(r, "UPDATE_COMPLETE", "")
		x.locked(func() { st.resources[name] = r })
		undos = append(undos, undo{kind: "replaced", logical: name, old: old, new: r})
		retire = append(retire, old)
	}
	var outputs []cfnOutputOut
	if len(failed) == 0 {
		outputs, err = x.outputs(sc)
		if err != nil {
			x.finishFailed(nil, err.Error(), undos)
			return
		}
	}
	if len(failed) > 0 {
		x.finishFailed(failed, "", undos)
		return
	}
	x.locked(func() {
		st.body, st.tmpl, st.params, st.outputs = x.body, x.tmpl, x.params, outputs
		st.capabilities, st.tags = x.caps, x.tags
		st.description, _ = x.tmpl.raw["Description"].(string)
		if x.kind == "CREATE" {
			st.setStatus("CREATE_COMPLETE", "")
			return
		}
		st.updated = time.Now()
		st.setStatus("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "")
	})
	if x.kind == "UPDATE" {
		// Old physical resources of replaced ones, then the removed ones,
		// dependents first.
		for _, old := range x.reverseOrder(retire) {
			x.pause()
			x.deleteResource(old, old.updateReplaceRetains(x.tmpl))
		}
		var removed []*cfnResource
		x.locked(func() {
			for name, r := range st.resources {
				if d := x.tmpl.resources[name]; d == nil || !sc.active(d) {
					removed = append(removed, r)
				}
			}
		})
		for _, r := range x.reverseOrder(removed) {
			x.pause()
			x.deleteResource(r, r.retained(false))
			x.locked(func() { delete(st.resources, r.logical) })
		}
		x.locked(func() { st.setStatus("UPDATE_COMPLETE", "") })
	}
}

// retained says whether the resource's DeletionPolicy keeps it when
// CloudFormation deletes it: Retain always, RetainExceptOnCreate unless a
// failed creation is rolling back. Snapshot deletes it after the snapshot,
// which the simulator does not model beyond the record.
func (r *cfnResource) retained(createRollback bool) bool {
	switch r.deletionPolicy {
	case "Retain":
		return true
	case "RetainExceptOnCreate":
		return !createRollback
	}
	return false
}

// updateReplaceRetains reads the resource's UpdateReplacePolicy from the
// template that replaced it.
func (r *cfnResource) updateReplaceRetains(t *cfnTemplate) bool {
	if m, ok := t.raw["Resources"].(map[string]any)[r.logical].(map[string]any); ok {
		return m["UpdateReplacePolicy"] == "Retain"
	}
	return false
}

// reverseOrder sorts resources dependents first, by the stack's template
// (or the new one), names breaking ties.
func (x *cfnOp) reverseOrder(rs []*cfnResource) []*cfnResource {
	rank := map[string]int{}
	for _, t := range []*cfnTemplate{x.st.tmpl, x.tmpl} {
		if t == nil {
			continue
		}
		for i, name := range t.order {
			if _, ok := rank[name]; !ok {
				rank[name] = i
			}
		}
	}
	out := slices.Clone(rs)
	sort.SliceStable(out, func(i, j int) bool {
		if rank[out[i].logical] != rank[out[j].logical] {
			return rank[out[i].logical] > rank[out[j].logical]
		}
		return out[i].logical > out[j].logical
	})
	return out
}

func (x *cfnOp) outputs(sc *evalScope) ([]cfnOutputOut, error) {
	var out []cfnOutputOut
	var err error
	x.locked(func() {
		for _, key := range slices.Sorted(maps.Keys(x.tmpl.outputs)) {
			o := x.tmpl.outputs[key]
			if c, _ := o["Condition"].(string); c != "" && !sc.conds[c] {
				continue
			}
			var v any
			v, err = sc.eval(o["Value"])
			if err != nil {
				err = fmt.Errorf("%v (output %s)", err, key)
				return
			}
			s, ok := scalarString(v)
			if !ok {
				err = fmt.Errorf("Template error: output %s must resolve to a string", key)
				return
			}
			oo := cfnOutputOut{OutputKey: key, OutputValue: s}
			oo.Description, _ = o["Description"].(string)
			if ex, ok := o["Export"].(map[string]any); ok {
				if n, e := sc.eval(ex["Name"]); e == nil {
					oo.ExportName, _ = scalarString(n)
				}
			}
			out = append(out, oo)
		}
	})
	return out, err
}

// finishFailed rolls back what the operation did (unless rollback is
// off) and leaves the stack in the status CloudFormation would.
func (x *cfnOp) finishFailed(failed []string, reason string, undos []undo) {
	st := x.st
	what := "create"
	if x.kind == "UPDATE" {
		what = "update"
	}
	if len(failed) > 0 {
		reason = fmt.Sprintf("The following resource(s) failed to %s: [%s]. ", what, strings.Join(failed, ", "))
	}
	if x.disableRollback {
		x.locked(func() { st.setStatus(strings.ToUpper(what)+"_FAILED", reason) })
		if x.kind == "CREATE" {
			x.locked(func() { st.body, st.tmpl, st.params = x.body, x.tmpl, x.params })
		}
		return
	}
	if x.kind == "CREATE" {
		x.locked(func() {
			st.body, st.tmpl, st.params = x.body, x.tmpl, x.params
			st.setStatus("ROLLBACK_IN_PROGRESS", reason+"Rollback requested by user.")
		})
		var made []*cfnResource
		for _, u := range undos {
			made = append(made, u.new)
		}
		for i := len(made) - 1; i >= 0; i-- {
			x.pause()
			x.deleteResource(made[i], made[i].retained(true))
			x.locked(func() { delete(st.resources, made[i].logical) })
		}
		x.locked(func() { st.setStatus("ROLLBACK_COMPLETE", "") })
		if x.deleteOnFailure {
			x.locked(func() { st.setStatus("DELETE_IN_PROGRESS", "") })
			x.locked(func() { st.setStatus("DELETE_COMPLETE", "") })
		}
		return
	}
	x.locked(func() { st.setStatus("UPDATE_ROLLBACK_IN_PROGRESS", reason) })
	var discard []*cfnResource
	for i := len(undos) - 1; i >= 0; i-- {
		u := undos[i]
		x.pause()
		switch u.kind {
		case "created":
			x.deleteResource(u.new, false)
			x.locked(func() { delete(st.resources, u.logical) })
		case "modified":
			h := cfnHandlerFor(u.new.typ)
			x.event(u.new, "UPDATE_IN_PROGRESS", "")
			prev := u.new.props
			u.new.props = u.old.props
			if err := h.update(x, u.new, prev); err != nil {
				x.event(u.new, "UPDATE_FAILED", err.Error())
				continue
			}
			x.event(u.new, "UPDATE_COMPLETE", "")
		case "replaced":
			x.locked(func() { st.resources[u.logical] = u.old })
			x.event(u.old, "UPDATE_COMPLETE", "")
			discard = append(discard, u.new)
		}
	}
	x.locked(func() { st.setStatus("UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", "") })
	for _, r := range discard {
		x.pause()
		x.deleteResource(r, false)
	}
	x.locked(func() { st.setStatus("UPDATE_ROLLBACK_COMPLETE", "") })
}

// deleteResource deletes one physical resource, or skips it when it is
// retained; it says whether it is gone.
func (x *cfnOp) deleteResource(r *cfnResource, retain bool) bool {
	if retain {
		x.event(r, "DELETE_SKIPPED", "")
		return true
	}
	x.event(r, "DELETE_IN_PROGRESS", "")
	if err := cfnHandlerFor(r.typ).delete(x, r); err != nil {
		x.event(r, "DELETE_FAILED", err.Error())
		return false
	}
	x.event(r, "DELETE_COMPLETE", "")
	return true
}

// deleteStack deletes every resource, dependents first; DeletionPolicy
// Retain (or RetainResources) keeps one.
func (x *cfnOp) deleteStack() {
	st := x.st
	var all []*cfnResource
	x.locked(func() {
		for _, r := range st.resources {
			all = append(all, r)
		}
	})
	var failed []string
	for _, r := range x.reverseOrder(all) {
		x.pause()
		retain := r.retained(false) || slices.Contains(x.retain, r.logical)
		if x.deleteResource(r, retain) {
			x.locked(func() { delete(st.resources, r.logical) })
			continue
		}
		failed = append(failed, r.logical)
	}
	x.locked(func() {
		if len(failed) > 0 {
			sort.Strings(failed)
			st.setStatus("DELETE_FAILED", fmt.Sprintf("The following resource(s) failed to delete: [%s]. ", strings.Join(failed, ", ")))
			return
		}
		st.setStatus("DELETE_COMPLETE", "")
	})
}

// ---- drift

type cfnDriftCheck struct {
	id, status string
	at         time.Time
	resources  map[string]string
	drifted    int
}

func (s *Sim) cfnDetectDrift(h arnHome, form url.Values) (any, error) {
	c := s.cfn
	c.mu.Lock()
	st := c.findStack(h, form.Get("StackName"))
	if st == nil {
		c.mu.Unlock()
		return nil, stackNotFound(form.Get("StackName"))
	}
	if st.inProgress() || st.status == "REVIEW_IN_PROGRESS" {
		c.mu.Unlock()
		return nil, Errorf("ValidationError", "Drift detection is not supported for stack %s in status %s", st.name, st.status)
	}
	rs := maps.Clone(st.resources)
	c.mu.Unlock()
	check := &cfnDriftCheck{id: uuid4(), status: "IN_SYNC", at: time.Now(), resources: map[string]string{}}
	x := &cfnOp{s: s, st: st}
	for name, r := range rs {
		h := cfnHandlerFor(r.typ)
		if h.drift == nil {
			check.resources[name] = "NOT_CHECKED"
			continue
		}
		check.resources[name] = h.drift(x, r)
		if check.resources[name] != "IN_SYNC" {
			check.drifted++
			check.status = "DRIFTED"
		}
	}
	c.mu.Lock()
	st.drift = check
	c.mu.Unlock()
	return struct{ StackDriftDetectionId string }{check.id}, nil
}

func (s *Sim) cfnDriftStatus(h arnHome, form url.Values) (any, error) {
	c := s.cfn
	c.mu.Lock()
	defer c.mu.Unlock()
	id := form.Get("StackDriftDetectionId")
	for _, st := range c.stacks {
		if st.home == h && st.drift != nil && st.drift.id == id {
			return struct {
				StackId                   string
				StackDriftDetectionId     string
				StackDriftStatus          string
				DetectionStatus           string
				DriftedStackResourceCount int
				Timestamp                 string
			}{st.id, id, st.drift.status, "DETECTION_COMPLETE", st.drift.drifted, isoMillis(st.drift.at)}, nil
		}
	}
	return nil, Errorf("ValidationError", "Drift detection %s does not exist", id)
}
