package awssim

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	goformation "github.com/awslabs/goformation/v7/cloudformation"
)

// CloudFormation templates: parsing, validation as CreateChangeSet does it,
// the dependency order, and the intrinsic functions. Templates are JSON
// (what vmctl sends); a function the simulator does not implement fails the
// resource that uses it, with the reason in its event.

// cfnTemplate is a parsed template.
type cfnTemplate struct {
	raw        map[string]any
	params     map[string]map[string]any
	conditions map[string]any
	mappings   map[string]any
	resources  map[string]*cfnResourceDecl
	outputs    map[string]map[string]any
	order      []string // resources, dependencies first
}

// cfnResourceDecl is one resource as the template declares it.
type cfnResourceDecl struct {
	Logical        string
	Type           string
	Properties     map[string]any
	DependsOn      []string
	Condition      string
	DeletionPolicy string
	deps           []string // every resource it refers to or depends on
}

// knownResourceType says whether AWS has the type: goformation's generated
// registry holds every type of the CloudFormation resource specification.
var knownResourceTypes = func() map[string]bool {
	out := map[string]bool{}
	for _, r := range goformation.AllResources() {
		out[r.AWSCloudFormationType()] = true
	}
	return out
}()

func templateError(format string, args ...any) *Error {
	return Errorf("ValidationError", "Template format error: "+format, args...)
}

// parseTemplate reads and validates a template body as CloudFormation does
// before it makes a change set.
func parseTemplate(body string) (*cfnTemplate, error) {
	if strings.TrimSpace(body) == "" {
		return nil, Errorf("ValidationError", "Template body can not be empty")
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		if !strings.HasPrefix(strings.TrimSpace(body), "{") {
			return nil, templateError("awssim reads JSON templates only")
		}
		return nil, templateError("JSON not well-formed. (%v)", err)
	}
	t := &cfnTemplate{raw: raw, params: map[string]map[string]any{}, resources: map[string]*cfnResourceDecl{}, outputs: map[string]map[string]any{}}
	for key := range raw {
		switch key {
		case "AWSTemplateFormatVersion", "Description", "Metadata", "Parameters", "Mappings", "Conditions", "Transform", "Resources", "Outputs", "Rules":
		default:
			return nil, templateError("Invalid template property or properties [%s]", key)
		}
	}
	if _, ok := raw["Transform"]; ok {
		return nil, templateError("awssim does not run transforms")
	}
	if p, ok := raw["Parameters"].(map[string]any); ok {
		for name, v := range p {
			decl, ok := v.(map[string]any)
			if !ok || decl["Type"] == nil {
				return nil, templateError("Every Parameters object must contain a Type member.")
			}
			t.params[name] = decl
		}
	}
	t.conditions, _ = raw["Conditions"].(map[string]any)
	t.mappings, _ = raw["Mappings"].(map[string]any)
	res, _ := raw["Resources"].(map[string]any)
	if len(res) == 0 {
		return nil, templateError("At least one Resources member must be defined.")
	}
	var unknown []string
	for name, v := range res {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, templateError("[/Resources/%s] resource definition is malformed", name)
		}
		typ, _ := m["Type"].(string)
		if typ == "" {
			return nil, templateError("[/Resources/%s] Every Resources object must contain a Type member.", name)
		}
		if !knownResourceTypes[typ] && !strings.HasPrefix(typ, "Custom::") {
			unknown = append(unknown, typ)
		}
		d := &cfnResourceDecl{Logical: name, Type: typ}
		d.Properties, _ = m["Properties"].(map[string]any)
		switch dep := m["DependsOn"].(type) {
		case string:
			d.DependsOn = []string{dep}
		case []any:
			for _, x := range dep {
				if s, ok := x.(string); ok {
					d.DependsOn = append(d.DependsOn, s)
				}
			}
		}
		d.Condition, _ = m["Condition"].(string)
		d.DeletionPolicy, _ = m["DeletionPolicy"].(string)
		t.resources[name] = d
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return nil, templateError("Unrecognized resource types: [%s]", strings.Join(slices.Compact(unknown), ", "))
	}
	if o, ok := raw["Outputs"].(map[string]any); ok {
		for name, v := range o {
			m, ok := v.(map[string]any)
			if !ok || m["Value"] == nil {
				return nil, templateError("Every Outputs member must contain a Value object")
			}
			t.outputs[name] = m
		}
	}
	// Dependencies: what each resource refers to, checked as CloudFormation
	// does, then ordered.
	var unresolved []string
	for _, d := range t.resources {
		refs := map[string]bool{}
		collectRefs(d.Properties, refs)
		for _, x := range d.DependsOn {
			refs[x] = true
		}
		for name := range refs {
			if t.resources[name] != nil {
				d.deps = append(d.deps, name)
			} else if t.params[name] == nil && !isPseudo(name) {
				unresolved = append(unresolved, name)
			}
		}
		sort.Strings(d.deps)
	}
	for _, o := range t.outputs {
		refs := map[string]bool{}
		collectRefs(o["Value"], refs)
		for name := range refs {
			if t.resources[name] == nil && t.params[name] == nil && !isPseudo(name) {
				unresolved = append(unresolved, name)
			}
		}
	}
	if len(unresolved) > 0 {
		slices.Sort(unresolved)
		return nil, templateError("Unresolved resource dependencies [%s] in the Resources block of the template", strings.Join(slices.Compact(unresolved), ", "))
	}
	order, cycle := topoOrder(t.resources)
	if cycle != nil {
		return nil, Errorf("ValidationError", "Circular dependency between resources: [%s]", strings.Join(cycle, ", "))
	}
	t.order = order
	return t, nil
}

func isPseudo(name string) bool { return strings.HasPrefix(name, "AWS::") }

// collectRefs finds the names a value refers to: Ref, Fn::GetAtt and the
// variables of Fn::Sub that its own map does not define.
func collectRefs(v any, into map[string]bool) {
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			collectRefs(e, into)
		}
	case map[string]any:
		if len(x) == 1 {
			for k, arg := range x {
				switch k {
				case "Ref":
					if s, ok := arg.(string); ok {
						into[s] = true
					}
					return
				case "Fn::GetAtt":
					if name, _, ok := getAttArgs(arg); ok {
						into[name] = true
					}
					return
				case "Fn::Sub":
					str, vars := subArgs(arg)
					for _, name := range subVariables(str) {
						base, _, _ := strings.Cut(name, ".")
						if _, ok := vars[name]; !ok {
							into[base] = true
						}
					}
					for _, val := range vars {
						collectRefs(val, into)
					}
					return
				}
			}
		}
		for _, e := range x {
			collectRefs(e, into)
		}
	}
}

func getAttArgs(arg any) (name, attr string, ok bool) {
	switch a := arg.(type) {
	case string:
		name, attr, ok = strings.Cut(a, ".")
	case []any:
		if len(a) == 2 {
			name, _ = a[0].(string)
			attr, ok = a[1].(string)
		}
	}
	return name, attr, ok && name != "" && attr != ""
}

func subArgs(arg any) (string, map[string]any) {
	switch a := arg.(type) {
	case string:
		return a, nil
	case []any:
		if len(a) == 2 {
			s, _ := a[0].(string)
			m, _ := a[1].(map[string]any)
			return s, m
		}
	}
	return "", nil
}

var subVarRe = regexp.MustCompile(`\$\{([^!}][^}]*)\}`)

func subVariables(s string) []string {
	var out []string
	for _, m := range subVarRe.FindAllStringSubmatch(s, -1) {
		out = append(out, strings.TrimSpace(m[1]))
	}
	return out
}

// topoOrder orders resources so each comes after what it depends on, by
// name among equals so the order is the same every time; on a cycle it
// returns the resources in it.
func topoOrder(res map[string]*cfnResourceDecl) ([]string, []string) {
	indeg := map[string]int{}
	users := map[string][]string{}
	for name, d := range res {
		indeg[name] += 0
		for _, dep := range d.deps {
			indeg[name]++
			users[dep] = append(users[dep], name)
		}
	}
	var ready, order []string
	for name, n := range indeg {
		if n == 0 {
			ready = append(ready, name)
		}
	}
	for len(ready) > 0 {
		sort.Strings(ready)
		name := ready[0]
		ready = ready[1:]
		order = append(order, name)
		for _, u := range users[name] {
			if indeg[u]--; indeg[u] == 0 {
				ready = append(ready, u)
			}
		}
	}
	if len(order) < len(res) {
		var cycle []string
		for name, n := range indeg {
			if n > 0 {
				cycle = append(cycle, name)
			}
		}
		sort.Strings(cycle)
		return nil, cycle
	}
	return order, nil
}

// ---- evaluation

// unknownValue stands for a value CloudFormation cannot know before it
// acts (the attribute of a resource to be created or replaced); a change
// set shows properties that hold one as conditional.
type unknownValue struct{ ref string }

// evalScope is what intrinsic functions resolve against.
type evalScope struct {
	t      *cfnTemplate
	params map[string]string
	pseudo map[string]string
	conds  map[string]bool
	// resource returns a resource's physical id (attr "") or attribute, an
	// unknownValue when it is yet to be made, or an error.
	resource func(name, attr string) (any, error)
}

// noValue is AWS::NoValue: the property it stands in is removed.
type noValue struct{}

// evalErr is a template error found while resolving a value; the
// resource that holds it fails with this reason.
type evalErr struct{ msg string }

func (e *evalErr) Error() string { return e.msg }

func evalFail(format string, args ...any) error { return &evalErr{fmt.Sprintf(format, args...)} }

// eval resolves a value's intrinsic functions.
func (sc *evalScope) eval(v any) (any, error) {
	switch x := v.(type) {
	case []any:
		out := make([]any, 0, len(x))
		for _, e := range x {
			r, err := sc.eval(e)
			if err != nil {
				return nil, err
			}
			if _, drop := r.(noValue); drop {
				continue
			}
			out = append(out, r)
		}
		return out, nil
	case map[string]any:
		if len(x) == 1 {
			for k, arg := range x {
				if k == "Ref" || k == "Condition" || strings.HasPrefix(k, "Fn::") {
					return sc.fn(k, arg)
				}
			}
		}
		out := make(map[string]any, len(x))
		for _, k := range slices.Sorted(maps.Keys(x)) {
			r, err := sc.eval(x[k])
			if err != nil {
				return nil, err
			}
			if _, drop := r.(noValue); drop {
				continue
			}
			out[k] = r
		}
		return out, nil
	}
	return v, nil
}

func (sc *evalScope) fn(name string, arg any) (any, error) {
	switch name {
	case "Ref":
		s, ok := arg.(string)
		if !ok {
			return nil, evalFail("Template error: Ref takes a name, not %T", arg)
		}
		if s == "AWS::NoValue" {
			return noValue{}, nil
		}
		if v, ok := sc.pseudo[s]; ok {
			return v, nil
		}
		if isPseudo(s) {
			return nil, evalFail("Template error: awssim does not implement the pseudo parameter %s", s)
		}
		if v, ok := sc.params[s]; ok {
			if typ, _ := sc.t.params[s]["Type"].(string); strings.HasPrefix(typ, "List<") || strings.HasPrefix(typ, "CommaDelimitedList") {
				var list []any
				for _, e := range strings.Split(v, ",") {
					list = append(list, strings.TrimSpace(e))
				}
				return list, nil
			}
			return v, nil
		}
		return sc.resource(s, "")
	case "Fn::GetAtt":
		res, attr, ok := getAttArgs(arg)
		if !ok {
			return nil, evalFail("Template error: every Fn::GetAtt object requires two non-empty parameters")
		}
		return sc.resource(res, attr)
	case "Fn::Join":
		a, ok := arg.([]any)
		if !ok || len(a) != 2 {
			return nil, evalFail("Template error: every Fn::Join object requires two parameters")
		}
		sep, _ := a[0].(string)
		list, err := sc.eval(a[1])
		if err != nil {
			return nil, err
		}
		items, ok := list.([]any)
		if !ok {
			return nil, evalFail("Template error: Fn::Join requires a list of values to join")
		}
		var parts []string
		for _, it := range items {
			if u, ok := it.(unknownValue); ok {
				return u, nil
			}
			s, ok := scalarString(it)
			if !ok {
				return nil, evalFail("Template error: every Fn::Join value must be a string")
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, sep), nil
	case "Fn::Select":
		a, ok := arg.([]any)
		if !ok || len(a) != 2 {
			return nil, evalFail("Template error: Fn::Select requires an index and a list")
		}
		idx, err := sc.eval(a[0])
		if err != nil {
			return nil, err
		}
		list, err := sc.eval(a[1])
		if err != nil {
			return nil, err
		}
		if u, ok := list.(unknownValue); ok {
			return u, nil
		}
		items, ok := list.([]any)
		is, _ := scalarString(idx)
		i, convErr := strconv.Atoi(is)
		if !ok || convErr != nil {
			return nil, evalFail("Template error: Fn::Select requires an integer index and a list")
		}
		if i < 0 || i >= len(items) {
			return nil, evalFail("Template error: Fn::Select cannot select nonexistent value at index %d", i)
		}
		return items[i], nil
	case "Fn::Split":
		a, ok := arg.([]any)
		if !ok || len(a) != 2 {
			return nil, evalFail("Template error: Fn::Split requires a delimiter and a string")
		}
		sep, _ := a[0].(string)
		src, err := sc.eval(a[1])
		if err != nil {
			return nil, err
		}
		if u, ok := src.(unknownValue); ok {
			return u, nil
		}
		s, ok := scalarString(src)
		if !ok || sep == "" {
			return nil, evalFail("Template error: Fn::Split requires a delimiter and a string")
		}
		var out []any
		for _, p := range strings.Split(s, sep) {
			out = append(out, p)
		}
		return out, nil
	case "Fn::Sub":
		str, vars := subArgs(arg)
		if str == "" && vars == nil {
			return nil, evalFail("Template error: Fn::Sub requires a string, or a string and a map")
		}
		local := map[string]any{}
		for k, v := range vars {
			r, err := sc.eval(v)
			if err != nil {
				return nil, err
			}
			local[k] = r
		}
		var firstErr error
		var unknown *unknownValue
		out := subVarRe.ReplaceAllStringFunc(str, func(m string) string {
			name := strings.TrimSpace(m[2 : len(m)-1])
			var v any
			var err error
			if lv, ok := local[name]; ok {
				v = lv
			} else if base, attr, dotted := strings.Cut(name, "."); dotted && sc.t.resources[base] != nil {
				v, err = sc.resource(base, attr)
			} else {
				v, err = sc.fn("Ref", name)
			}
			if err != nil {
				firstErr = cmpErr(firstErr, err)
				return ""
			}
			if u, ok := v.(unknownValue); ok {
				unknown = &u
				return ""
			}
			s, ok := scalarString(v)
			if !ok {
				firstErr = cmpErr(firstErr, evalFail("Template error: variable %s in Fn::Sub is not a string", name))
			}
			return s
		})
		if firstErr != nil {
			return nil, firstErr
		}
		if unknown != nil {
			return *unknown, nil
		}
		return strings.ReplaceAll(out, "${!", "${"), nil
	case "Fn::Base64":
		v, err := sc.eval(arg)
		if err != nil {
			return nil, err
		}
		if u, ok := v.(unknownValue); ok {
			return u, nil
		}
		s, ok := scalarString(v)
		if !ok {
			return nil, evalFail("Template error: Fn::Base64 requires a string")
		}
		return base64.StdEncoding.EncodeToString([]byte(s)), nil
	case "Fn::GetAZs":
		region := sc.pseudo["AWS::Region"]
		return []any{region + "a", region + "c", region + "d"}, nil
	case "Fn::FindInMap":
		a, ok := arg.([]any)
		if !ok || len(a) != 3 {
			return nil, evalFail("Template error: Fn::FindInMap requires a map name and two keys")
		}
		var keys [3]string
		for i, k := range a {
			v, err := sc.eval(k)
			if err != nil {
				return nil, err
			}
			keys[i], _ = scalarString(v)
		}
		m1, _ := sc.t.mappings[keys[0]].(map[string]any)
		m2, _ := m1[keys[1]].(map[string]any)
		v, ok := m2[keys[2]]
		if !ok {
			return nil, evalFail("Template error: Unable to get mapping for %s::%s::%s", keys[0], keys[1], keys[2])
		}
		return v, nil
	case "Fn::If":
		a, ok := arg.([]any)
		if !ok || len(a) != 3 {
			return nil, evalFail("Template error: Fn::If requires a condition name and two values")
		}
		cond, _ := a[0].(string)
		v, known := sc.conds[cond]
		if !known {
			return nil, evalFail("Template error: unresolved condition dependency %s in Fn::If", cond)
		}
		if v {
			return sc.eval(a[1])
		}
		return sc.eval(a[2])
	case "Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Condition":
		return sc.condition(map[string]any{name: arg})
	}
	return nil, evalFail("Template error: awssim does not implement the intrinsic function %s", name)
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// condition evaluates a condition expression.
func (sc *evalScope) condition(v any) (bool, error) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return false, evalFail("Template error: a condition must be one condition function")
	}
	for k, arg := range m {
		switch k {
		case "Condition":
			name, _ := arg.(string)
			c, ok := sc.conds[name]
			if !ok {
				return false, evalFail("Template error: unresolved condition dependency %s", name)
			}
			return c, nil
		case "Fn::Equals":
			a, ok := arg.([]any)
			if !ok || len(a) != 2 {
				return false, evalFail("Template error: Fn::Equals requires two values")
			}
			x, err := sc.eval(a[0])
			if err != nil {
				return false, err
			}
			y, err := sc.eval(a[1])
			if err != nil {
				return false, err
			}
			xs, _ := scalarString(x)
			ys, _ := scalarString(y)
			return xs == ys, nil
		case "Fn::Not", "Fn::And", "Fn::Or":
			a, ok := arg.([]any)
			if !ok || len(a) == 0 {
				return false, evalFail("Template error: %s requires a list of conditions", k)
			}
			var vals []bool
			for _, e := range a {
				b, err := sc.condition(e)
				if err != nil {
					return false, err
				}
				vals = append(vals, b)
			}
			switch k {
			case "Fn::Not":
				return !vals[0], nil
			case "Fn::And":
				return !slices.Contains(vals, false), nil
			default:
				return slices.Contains(vals, true), nil
			}
		}
		return false, evalFail("Template error: awssim does not implement the condition function %s", k)
	}
	return false, nil
}

// evalConditions resolves the template's Conditions section.
func (sc *evalScope) evalConditions() error {
	sc.conds = map[string]bool{}
	pending := maps.Clone(sc.t.conditions)
	for len(pending) > 0 {
		progress := false
		var lastErr error
		for _, name := range slices.Sorted(maps.Keys(pending)) {
			b, err := sc.condition(pending[name])
			if err != nil {
				lastErr = err
				continue
			}
			sc.conds[name] = b
			delete(pending, name)
			progress = true
		}
		if !progress {
			return Errorf("ValidationError", "%v", lastErr)
		}
	}
	return nil
}

// scalarString is a string, number or boolean as a template carries it.
func scalarString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	case json.Number:
		return x.String(), true
	}
	return "", false
}

// hasUnknown says whether a resolved value still holds an unknownValue.
func hasUnknown(v any) bool {
	switch x := v.(type) {
	case unknownValue:
		return true
	case []any:
		return slices.ContainsFunc(x, hasUnknown)
	case map[string]any:
		for _, e := range x {
			if hasUnknown(e) {
				return true
			}
		}
	}
	return false
}
