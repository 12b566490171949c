package awssim

import (
	"encoding/xml"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// CloudFormation over the query protocol (API version 2010-05-15): stacks
// made and changed through change sets (or CreateStack/UpdateStack, which
// make one behind the scenes), their events, resources and outputs, and
// their deletion. Resources are created in dependency order by the types
// the simulator models (cloudformation_resources.go): the ECS cluster and
// capacity providers, the GPU Auto Scaling group and its simulated
// instances, the load balancer with its listeners, rules and target groups,
// log groups and the Cloud Map namespace are real in the simulator; every
// other type the simulator knows is kept as a record with a physical id and
// the attributes templates read. A request field the simulator does not
// model is refused, so what vmctl sends is either modelled or rejected.

const (
	cfnVersion = "2010-05-15"
	cfnXMLNS   = "http://cloudformation.amazonaws.com/doc/2010-05-15/"
)

type cfnState struct {
	mu     sync.Mutex
	stacks []*cfnStack // every stack ever made, deleted ones too (by id they stay visible)
	step   time.Duration
	wg     sync.WaitGroup
}

type cfnStack struct {
	id, name    string
	home        arnHome
	status      string
	reason      string
	description string
	created     time.Time
	updated     time.Time
	deleted     time.Time

	body       string
	tmpl       *cfnTemplate
	params     []cfnParam
	resources  map[string]*cfnResource
	outputs    []cfnOutputOut
	events     []cfnEventOut
	changeSets []*cfnChangeSet

	capabilities    []string
	tags            []cfnTag
	disableRollback bool
	drift           *cfnDriftCheck
}

// cfnParam is a parameter as the stack holds it: the value given (or the
// default), and for SSM parameter types the value it resolved to.
type cfnParam struct {
	Key, Value, Resolved string
	NoEcho               bool
}

func (p cfnParam) effective() string {
	if p.Resolved != "" {
		return p.Resolved
	}
	return p.Value
}

type cfnTag struct{ Key, Value string }

// cfnResource is a resource of a stack as CloudFormation tracks it.
type cfnResource struct {
	logical, typ   string
	physical       string
	props          map[string]any // resolved, as last applied
	attrs          map[string]any
	status, reason string
	updated        time.Time
	deletionPolicy string
}

type cfnChangeSet struct {
	id, name     string
	stack        *cfnStack
	typ          string // CREATE | UPDATE
	status       string
	execStatus   string
	reason       string
	description  string
	created      time.Time
	body         string
	tmpl         *cfnTemplate
	params       []cfnParam
	changes      []cfnChange
	capabilities []string
	tags         []cfnTag
	onFailure    string
}

func (s *Sim) registerCloudFormation() {
	s.cfn = &cfnState{}
	s.RegisterQuery(cfnVersion, QueryService{Name: "CloudFormation", XMLNS: cfnXMLNS, Handler: s.serveCloudFormation})
	s.OnClose(s.cfn.wg.Wait)
}

// SetCloudFormationStep makes stack operations run in the background and
// take this long per resource, so that a watcher sees them in progress;
// 0 (the default) finishes each operation before ExecuteChangeSet,
// CreateStack, UpdateStack or DeleteStack answers.
func (s *Sim) SetCloudFormationStep(d time.Duration) {
	s.cfn.mu.Lock()
	defer s.cfn.mu.Unlock()
	s.cfn.step = d
}

// cfnFields are the request fields each operation models; any other is
// refused, naming it.
var cfnFields = map[string][]string{
	"CreateChangeSet":                   {"StackName", "ChangeSetName", "ChangeSetType", "TemplateBody", "TemplateURL", "UsePreviousTemplate", "Parameters", "Capabilities", "Tags", "Description", "OnStackFailure", "ClientToken"},
	"DescribeChangeSet":                 {"StackName", "ChangeSetName", "NextToken", "IncludePropertyValues"},
	"ExecuteChangeSet":                  {"StackName", "ChangeSetName", "DisableRollback", "ClientRequestToken"},
	"DeleteChangeSet":                   {"StackName", "ChangeSetName"},
	"ListChangeSets":                    {"StackName", "NextToken"},
	"CreateStack":                       {"StackName", "TemplateBody", "TemplateURL", "Parameters", "Capabilities", "Tags", "DisableRollback", "OnFailure", "ClientRequestToken"},
	"UpdateStack":                       {"StackName", "TemplateBody", "TemplateURL", "UsePreviousTemplate", "Parameters", "Capabilities", "Tags", "DisableRollback", "ClientRequestToken"},
	"DeleteStack":                       {"StackName", "RetainResources", "ClientRequestToken"},
	"DescribeStacks":                    {"StackName", "NextToken"},
	"DescribeStackEvents":               {"StackName", "NextToken"},
	"DescribeStackResources":            {"StackName", "LogicalResourceId", "PhysicalResourceId"},
	"DescribeStackResource":             {"StackName", "LogicalResourceId"},
	"ListStackResources":                {"StackName", "NextToken"},
	"ListStacks":                        {"NextToken", "StackStatusFilter"},
	"GetTemplate":                       {"StackName", "ChangeSetName", "TemplateStage"},
	"ValidateTemplate":                  {"TemplateBody", "TemplateURL"},
	"DetectStackDrift":                  {"StackName", "LogicalResourceIds"},
	"DescribeStackDriftDetectionStatus": {"StackDriftDetectionId"},
}

func (s *Sim) serveCloudFormation(r *http.Request, op string) (any, error) {
	p, ok := s.Caller(r)
	if !ok {
		return nil, &Error{Status: http.StatusForbidden, Code: "InvalidClientTokenId", Message: "The security token included in the request is invalid."}
	}
	fields, ok := cfnFields[op]
	if !ok {
		return nil, InvalidAction(op, cfnVersion)
	}
	form := r.PostForm
	for key := range form {
		if key == "Action" || key == "Version" {
			continue
		}
		top, _, _ := strings.Cut(key, ".")
		if !slices.Contains(fields, top) {
			return nil, Errorf("ValidationError", "awssim does not model the field %s of %s", top, op)
		}
	}
	h := arnHome{region: signingRegion(r), account: p.Account}
	var result any
	var err error
	switch op {
	case "CreateChangeSet":
		result, err = s.cfnCreateChangeSet(h, form)
	case "DescribeChangeSet":
		result, err = s.cfnDescribeChangeSet(h, form)
	case "ExecuteChangeSet":
		result, err = s.cfnExecuteChangeSet(h, form)
	case "DeleteChangeSet":
		result, err = s.cfnDeleteChangeSet(h, form)
	case "ListChangeSets":
		result, err = s.cfnListChangeSets(h, form)
	case "CreateStack", "UpdateStack":
		result, err = s.cfnCreateOrUpdateStack(h, op, form)
	case "DeleteStack":
		result, err = s.cfnDeleteStack(h, form)
	case "DescribeStacks":
		result, err = s.cfnDescribeStacks(h, form)
	case "DescribeStackEvents":
		result, err = s.cfnDescribeStackEvents(h, form)
	case "DescribeStackResources", "DescribeStackResource", "ListStackResources":
		result, err = s.cfnStackResources(h, op, form)
	case "ListStacks":
		result, err = s.cfnListStacks(h)
	case "GetTemplate":
		result, err = s.cfnGetTemplate(h, form)
	case "ValidateTemplate":
		result, err = s.cfnValidateTemplate(h, form)
	case "DetectStackDrift":
		result, err = s.cfnDetectDrift(h, form)
	case "DescribeStackDriftDetectionStatus":
		result, err = s.cfnDriftStatus(h, form)
	}
	if err != nil {
		return nil, err
	}
	return queryEnvelope{xmlns: cfnXMLNS, op: op, result: result, requestID: s.RequestID()}, nil
}

// queryEnvelope is <OpResponse xmlns=…><OpResult>…</OpResult><ResponseMetadata/>.
type queryEnvelope struct {
	xmlns, op string
	result    any
	requestID string
}

func (env queryEnvelope) MarshalXML(e *xml.Encoder, _ xml.StartElement) error {
	start := xml.StartElement{Name: xml.Name{Space: env.xmlns, Local: env.op + "Response"}}
	if err := e.EncodeToken(start); err != nil {
		return err
	}
	if env.result != nil {
		if err := e.EncodeElement(env.result, xml.StartElement{Name: xml.Name{Local: env.op + "Result"}}); err != nil {
			return err
		}
	}
	if err := e.EncodeElement(ResponseMetadata{RequestID: env.requestID}, xml.StartElement{Name: xml.Name{Local: "ResponseMetadata"}}); err != nil {
		return err
	}
	return e.EncodeToken(start.End())
}

// ---- lookups

// stackNameRe is what CloudFormation accepts as a stack or change set name.
var stackNameRe = regexp.MustCompile(`^[a-zA-Z][-a-zA-Z0-9]{0,127}$`)

func stackNotFound(ref string) *Error {
	return Errorf("ValidationError", "Stack with id %s does not exist", ref)
}

// findStack finds a stack that is not deleted by name or id; by id a
// deleted one is found too, as CloudFormation does. The caller holds the
// lock.
func (c *cfnState) findStack(h arnHome, ref string) *cfnStack {
	for i := len(c.stacks) - 1; i >= 0; i-- {
		st := c.stacks[i]
		if st.home != h {
			continue
		}
		if st.id == ref {
			return st
		}
		if st.name == ref && st.status != "DELETE_COMPLETE" {
			return st
		}
	}
	return nil
}

func (st *cfnStack) inProgress() bool {
	return strings.HasSuffix(st.status, "_IN_PROGRESS") && st.status != "REVIEW_IN_PROGRESS"
}

func (st *cfnStack) changeSet(ref string) *cfnChangeSet {
	for _, cs := range st.changeSets {
		if cs.name == ref || cs.id == ref {
			return cs
		}
	}
	return nil
}

// changeSetByRef finds a change set by ARN, or by name within a stack.
func (c *cfnState) changeSetByRef(h arnHome, stackRef, ref string) (*cfnChangeSet, error) {
	if strings.HasPrefix(ref, "arn:") {
		for _, st := range c.stacks {
			if st.home == h {
				if cs := st.changeSet(ref); cs != nil {
					return cs, nil
				}
			}
		}
		return nil, Errorf("ChangeSetNotFound", "ChangeSet [%s] does not exist", ref)
	}
	if stackRef == "" {
		return nil, Errorf("ValidationError", "StackName must be specified if ChangeSetName is not specified as an ARN.")
	}
	st := c.findStack(h, stackRef)
	if st == nil {
		return nil, Errorf("ChangeSetNotFound", "ChangeSet [%s] does not exist", ref)
	}
	cs := st.changeSet(ref)
	if cs == nil {
		return nil, Errorf("ChangeSetNotFound", "ChangeSet [%s] does not exist", ref)
	}
	return cs, nil
}

// ---- request fields

type cfnParamIn struct {
	Key, Value  string
	UsePrevious bool
}

func formParams(form url.Values) []cfnParamIn {
	var out []cfnParamIn
	for i := 1; ; i++ {
		p := "Parameters.member." + strconv.Itoa(i) + "."
		key, ok := form[p+"ParameterKey"]
		if !ok {
			return out
		}
		out = append(out, cfnParamIn{Key: key[0], Value: form.Get(p + "ParameterValue"), UsePrevious: form.Get(p+"UsePreviousValue") == "true"})
	}
}

func formTags(form url.Values) []cfnTag {
	var out []cfnTag
	for i := 1; ; i++ {
		p := "Tags.member." + strconv.Itoa(i) + "."
		key, ok := form[p+"Key"]
		if !ok {
			return out
		}
		out = append(out, cfnTag{Key: key[0], Value: form.Get(p + "Value")})
	}
}

// templateBody is the request's template: TemplateBody, or the S3 object
// TemplateURL names (read as the caller's account).
func (s *Sim) templateBody(h arnHome, form url.Values) (string, error) {
	body, ref := form.Get("TemplateBody"), form.Get("TemplateURL")
	switch {
	case body != "" && ref != "":
		return "", Errorf("ValidationError", "Specify exactly one of TemplateBody or TemplateUrl.")
	case ref == "":
		return body, nil
	}
	obj, ok := s.s3Object(h.account, ref)
	if !ok {
		return "", Errorf("ValidationError", "TemplateURL must reference a valid S3 object to which you have access.")
	}
	return string(obj), nil
}

// ---- parameters

const ssmImageType = "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>"

// resolveParams gives every declared parameter its value: the one passed,
// the previous one where asked, else the default; SSM parameter types are
// read from the simulator's parameter store.
func (s *Sim) resolveParams(t *cfnTemplate, in []cfnParamIn, prev []cfnParam) ([]cfnParam, error) {
	given := map[string]cfnParamIn{}
	var extra []string
	for _, p := range in {
		if t.params[p.Key] == nil {
			extra = append(extra, p.Key)
		}
		given[p.Key] = p
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return nil, Errorf("ValidationError", "Parameters: [%s] do not exist in the template", strings.Join(extra, ", "))
	}
	var out []cfnParam
	var missing, unfetched []string
	for _, name := range slices.Sorted(maps.Keys(t.params)) {
		decl := t.params[name]
		typ, _ := decl["Type"].(string)
		p := cfnParam{Key: name, NoEcho: decl["NoEcho"] == true || decl["NoEcho"] == "true"}
		g, ok := given[name]
		switch {
		case ok && g.UsePrevious:
			i := slices.IndexFunc(prev, func(pp cfnParam) bool { return pp.Key == name })
			if i < 0 {
				return nil, Errorf("ValidationError", "Invalid input for parameter key %s. Cannot specify usePreviousValue as true for a parameter key not in the previous template", name)
			}
			p.Value = prev[i].Value
		case ok:
			p.Value = g.Value
		default:
			def, has := decl["Default"]
			if !has {
				missing = append(missing, name)
				continue
			}
			p.Value, _ = scalarString(def)
		}
		if allowed, ok := decl["AllowedValues"].([]any); ok {
			okv := false
			for _, a := range allowed {
				if as, _ := scalarString(a); as == p.Value {
					okv = true
				}
			}
			if !okv {
				return nil, Errorf("ValidationError", "Parameter '%s' must be one of AllowedValues", name)
			}
		}
		switch {
		case typ == "Number":
			if _, err := strconv.ParseFloat(p.Value, 64); err != nil {
				return nil, Errorf("ValidationError", "Parameter '%s' must be a number.", name)
			}
		case strings.HasPrefix(typ, "AWS::SSM::Parameter::Value<"):
			if typ != ssmImageType && typ != "AWS::SSM::Parameter::Value<String>" {
				return nil, Errorf("ValidationError", "awssim does not model the parameter type %s", typ)
			}
			v, ok := s.ssmParameter(p.Value)
			if !ok {
				unfetched = append(unfetched, p.Value)
				continue
			}
			p.Resolved = v
		case typ == "String", typ == "CommaDelimitedList", strings.HasPrefix(typ, "AWS::EC2::"), strings.HasPrefix(typ, "List<"), typ == "AWS::SSM::Parameter::Name":
		default:
			return nil, Errorf("ValidationError", "Template format error: Unrecognized parameter type: %s", typ)
		}
		out = append(out, p)
	}
	if len(missing) > 0 {
		return nil, Errorf("ValidationError", "Parameters: [%s] must have values", strings.Join(missing, ", "))
	}
	if len(unfetched) > 0 {
		return nil, Errorf("ValidationError", "Unable to fetch parameters [%s] from parameter store for this account.", strings.Join(unfetched, ","))
	}
	return out, nil
}

// requiredCapabilities is what CloudFormation asks to be acknowledged:
// IAM resources need CAPABILITY_IAM, named ones CAPABILITY_NAMED_IAM.
func requiredCapabilities(t *cfnTemplate) string {
	need := ""
	for _, d := range t.resources {
		if !strings.HasPrefix(d.Type, "AWS::IAM::") {
			continue
		}
		if need == "" {
			need = "CAPABILITY_IAM"
		}
		for _, k := range []string{"RoleName", "UserName", "GroupName", "InstanceProfileName", "ManagedPolicyName"} {
			if d.Properties[k] != nil {
				need = "CAPABILITY_NAMED_IAM"
			}
		}
	}
	return need
}

func checkCapabilities(t *cfnTemplate, given []string) error {
	need := requiredCapabilities(t)
	switch {
	case need == "":
		return nil
	case slices.Contains(given, "CAPABILITY_NAMED_IAM"):
		return nil
	case need == "CAPABILITY_IAM" && slices.Contains(given, "CAPABILITY_IAM"):
		return nil
	}
	return Errorf("InsufficientCapabilitiesException", "Requires capabilities : [%s]", need)
}

// ---- operations

func (s *Sim) cfnCreateChangeSet(h arnHome, form url.Values) (any, error) {
	stackName, csName := form.Get("StackName"), form.Get("ChangeSetName")
	typ := form.Get("ChangeSetType")
	if typ == "" {
		typ = "UPDATE"
	}
	if typ != "CREATE" && typ != "UPDATE" {
		return nil, Errorf("ValidationError", "awssim does not model change sets of type %s", typ)
	}
	if !stackNameRe.MatchString(csName) {
		return nil, Errorf("ValidationError", "1 validation error detected: Value '%s' at 'changeSetName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z][-a-zA-Z0-9]*", csName)
	}
	onFailure := form.Get("OnStackFailure")
	c := s.cfn
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.findStack(h, stackName)
	switch {
	case typ == "CREATE" && st != nil && st.status != "REVIEW_IN_PROGRESS":
		return nil, Errorf("AlreadyExistsException", "Stack [%s] already exists and cannot be created again with the changeSet [%s].", stackName, csName)
	case typ == "UPDATE" && st == nil:
		return nil, stackNotFound(stackName)
	case typ == "UPDATE" && st.status == "REVIEW_IN_PROGRESS":
		return nil, Errorf("ValidationError", "Stack:%s is in REVIEW_IN_PROGRESS state and can not be updated.", st.id)
	case st != nil && st.inProgress():
		return nil, Errorf("ValidationError", "Stack:%s is in %s state and can not be updated.", st.id, st.status)
	case typ == "UPDATE" && st.status == "ROLLBACK_COMPLETE", typ == "UPDATE" && st.status == "ROLLBACK_FAILED", typ == "UPDATE" && st.status == "DELETE_FAILED", typ == "UPDATE" && st.status == "CREATE_FAILED":
		return nil, Errorf("ValidationError", "Stack:%s is in %s state and can not be updated.", st.id, st.status)
	}
	if st != nil && st.changeSet(csName) != nil {
		return nil, Errorf("AlreadyExistsException", "ChangeSet %s already exists", csName)
	}
	if st == nil && !stackNameRe.MatchString(stackName) {
		return nil, Errorf("ValidationError", "1 validation error detected: Value '%s' at 'stackName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z][-a-zA-Z0-9]*", stackName)
	}
	body, err := s.templateBody(h, form)
	if err != nil {
		return nil, err
	}
	if form.Get("UsePreviousTemplate") == "true" {
		if st == nil || st.body == "" {
			return nil, Errorf("ValidationError", "UsePreviousTemplate can only be used when updating a stack")
		}
		body = st.body
	}
	t, err := parseTemplate(body)
	if err != nil {
		return nil, err
	}
	var prev []cfnParam
	if st != nil {
		prev = st.params
	}
	params, err := s.resolveParams(t, formParams(form), prev)
	if err != nil {
		return nil, err
	}
	caps := formMembers(form, "Capabilities")
	if err := checkCapabilities(t, caps); err != nil {
		return nil, err
	}
	now := time.Now()
	if st == nil {
		st = &cfnStack{
			id: h.arn("cloudformation", "stack/"+stackName+"/"+uuid4()), name: stackName, home: h,
			status: "REVIEW_IN_PROGRESS", created: now, resources: map[string]*cfnResource{},
		}
		c.stacks = append(c.stacks, st)
		st.event(st.name, st.id, "AWS::CloudFormation::Stack", "REVIEW_IN_PROGRESS", "User Initiated")
	}
	cs := &cfnChangeSet{
		id: h.arn("cloudformation", "changeSet/"+csName+"/"+uuid4()), name: csName, stack: st, typ: typ,
		created: now, body: body, tmpl: t, params: params, capabilities: caps, tags: formTags(form),
		description: form.Get("Description"), onFailure: onFailure,
	}
	cs.changes, err = s.diff(st, t, params)
	switch {
	case err != nil:
		cs.status, cs.execStatus, cs.reason = "FAILED", "UNAVAILABLE", err.Error()
	case len(cs.changes) == 0 && st.status != "REVIEW_IN_PROGRESS" && body == st.body && sameParams(params, st.params):
		cs.status, cs.execStatus = "FAILED", "UNAVAILABLE"
		cs.reason = "The submitted information didn't contain changes. Submit different information to create a change set."
	default:
		cs.status, cs.execStatus = "CREATE_COMPLETE", "AVAILABLE"
	}
	st.changeSets = append(st.changeSets, cs)
	return struct {
		ID      string `xml:"Id"`
		StackID string `xml:"StackId"`
	}{cs.id, st.id}, nil
}

func sameParams(a, b []cfnParam) bool {
	return slices.EqualFunc(a, b, func(x, y cfnParam) bool { return x.Key == y.Key && x.Value == y.Value && x.Resolved == y.Resolved })
}

type cfnParamOut struct {
	ParameterKey   string
	ParameterValue string
	ResolvedValue  string `xml:",omitempty"`
}

func paramsOut(ps []cfnParam) elbList[cfnParamOut] {
	out := elbList[cfnParamOut]{}
	for _, p := range ps {
		v := p.Value
		if p.NoEcho {
			v = "****"
		}
		out = append(out, cfnParamOut{ParameterKey: p.Key, ParameterValue: v, ResolvedValue: p.Resolved})
	}
	return out
}

func tagsOut(ts []cfnTag) elbList[cfnTag] { return elbList[cfnTag](slices.Clone(ts)) }

type cfnChangeDetailOut struct {
	Target struct {
		Attribute          string
		Name               string `xml:",omitempty"`
		RequiresRecreation string `xml:",omitempty"`
	}
	Evaluation    string
	ChangeSource  string `xml:",omitempty"`
	CausingEntity string `xml:",omitempty"`
}

type cfnResourceChangeOut struct {
	Action             string
	LogicalResourceId  string
	PhysicalResourceId string `xml:",omitempty"`
	ResourceType       string
	Replacement        string `xml:",omitempty"`
	Scope              elbList[string]
	Details            elbList[cfnChangeDetailOut]
}

type cfnChangeOut struct {
	Type           string
	ResourceChange cfnResourceChangeOut
}

func (s *Sim) cfnDescribeChangeSet(h arnHome, form url.Values) (any, error) {
	c := s.cfn
	c.mu.Lock()
	defer c.mu.Unlock()
	cs, err := c.changeSetByRef(h, form.Get("StackName"), form.Get("ChangeSetName"))
	if err != nil {
		return nil, err
	}
	type out struct {
		ChangeSetName   string
		ChangeSetId     string
		StackId         string
		StackName       string
		Description     string `xml:",omitempty"`
		Parameters      elbList[cfnParamOut]
		CreationTime    string
		ExecutionStatus string
		Status          string
		StatusReason    string `xml:",omitempty"`
		Capabilities    elbList[string]
		Tags            elbList[cfnTag]
		Changes         elbList[cfnChangeOut]
		OnStackFailure  string `xml:",omitempty"`
	}
	o := out{
		ChangeSetName: cs.name, ChangeSetId: cs.id, StackId: cs.stack.id, StackName: cs.stack.name, Description: cs.description,
		Parameters: paramsOut(cs.params), CreationTime: isoMillis(cs.created), ExecutionStatus: cs.execStatus, Status: cs.status,
		StatusReason: cs.reason, Capabilities: elbList[string](slices.Clone(cs.capabilities)), Tags: tagsOut(cs.tags),
		Changes: elbList[cfnChangeOut]{}, OnStackFailure: cs.onFailure,
	}
	for _, ch := range cs.changes {
		o.Changes = append(o.Changes, ch.out())
	}
	return o, nil
}

func (s *Sim) cfnListChangeSets(h arnHome, form url.Values) (any, error) {
	c := s.cfn
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.findStack(h, form.Get("StackName"))
	if st == nil {
		return nil, stackNotFound(form.Get("StackName"))
	}
	type summary struct {
		StackId, StackName, ChangeSetId, ChangeSetName string
		ExecutionStatus, Status                        string
		StatusReason                                   string `xml:",omitempty"`
		CreationTime                                   string
	}
	out := struct{ Summaries elbList[summary] }{Summaries: elbList[summary]{}}
	for _, cs := range st.changeSets {
		out.Summaries = append(out.Summaries, summary{st.id, st.name, cs.id, cs.name, cs.execStatus, cs.status, cs.reason, isoMillis(cs.created)})
	}
	return out, nil
}

func (s *Sim) cfnDeleteChangeSet(h arnHome, form url.Values) (any, error) {
	c := s.cfn
	c.mu.Lock()
	defer c.mu.Unlock()
	cs, err := c.changeSetByRef(h, form.Get("StackName"), form.Get("ChangeSetName"))
	if err != nil {
		return nil, err
	}
	if cs.stack.inProgress() {
		return nil, Errorf("InvalidChangeSetStatus", "Cannot delete ChangeSet in status %s", cs.stack.status)
	}
	st := cs.stack
	st.changeSets = slices.DeleteFunc(st.changeSets, func(x *cfnChangeSet) bool { return x == cs })
	// A stack that only ever held change sets goes with its last one.
	if st.status == "REVIEW_IN_PROGRESS" && len(st.changeSets) == 0 {
		st.status, st.deleted = "DELETE_COMPLETE", time.Now()
	}
	return struct{}{}, nil
}

func (s *Sim) cfnExecuteChangeSet(h arnHome, form url.Values) (any, error) {
	c := s.cfn
	c.mu.Lock()
	cs, err := c.changeSetByRef(h, form.Get("StackName"), form.Get("ChangeSetName"))
	if err != nil {
		c.mu.Unlock()
		return nil, err
	}
	st := cs.stack
	if cs.execStatus != "AVAILABLE" {
		c.mu.Unlock()
		return nil, Errorf("InvalidChangeSetStatus", "ChangeSet [%s] cannot be executed in its current status of [%s]", cs.id, cs.status)
	}
	if st.inProgress() {
		c.mu.Unlock()
		return nil, Errorf("InvalidChangeSetStatus", "ChangeSet [%s] cannot be executed in its current execution status of [%s]", cs.id, st.status)
	}
	disable := form.Get("DisableRollback") == "true" || cs.onFailure == "DO_NOTHING"
	if cs.onFailure == "DELETE" && cs.typ == "CREATE" {
		disable = false
	}
	cs.execStatus = "EXECUTE_IN_PROGRESS"
	x := s.startOperation(st, cs.typ, cs.body, cs.tmpl, cs.params, cs.capabilities, cs.tags, disable, cs.onFailure == "DELETE")
	c.mu.Unlock()
	s.runOperation(x)
	return struct{}{}, nil
}

// cfnCreateOrUpdateStack is CreateStack and UpdateStack: a change set made
// and executed at once.
func (s *Sim) cfnCreateOrUpdateStack(h arnHome, op string, form url.Values) (any, error) {
	typ := "CREATE"
	if op == "UpdateStack" {
		typ = "UPDATE"
	}
	name := form.Get("StackName")
	c := s.cfn
	c.mu.Lock()
	st := c.findStack(h, name)
	switch {
	case typ == "CREATE" && st != nil:
		c.mu.Unlock()
		return nil, Errorf("AlreadyExistsException", "Stack [%s] already exists", name)
	case typ == "UPDATE" && st == nil:
		c.mu.Unlock()
		return nil, stackNotFound(name)
	case typ == "UPDATE" && st.inProgress():
		c.mu.Unlock()
		return nil, Errorf("ValidationError", "Stack:%s is in %s state and can not be updated.", st.id, st.status)
	case typ == "UPDATE" && !slices.Contains([]string{"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"}, st.status):
		c.mu.Unlock()
		return nil, Errorf("ValidationError", "Stack:%s is in %s state and can not be updated.", st.id, st.status)
	}
	if st == nil && !stackNameRe.MatchString(name) {
		c.mu.Unlock()
		return nil, Errorf("ValidationError", "1 validation error detected: Value '%s' at 'stackName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z][-a-zA-Z0-9]*", name)
	}
	body, err := s.templateBody(h, form)
	if err != nil {
		c.mu.Unlock()
		return nil, err
	}
	if form.Get("UsePreviousTemplate") == "true" && st != nil {
		body = st.body
	}
	t, err := parseTemplate(body)
	if err != nil {
		c.mu.Unlock()
		return nil, err
	}
	var prev []cfnParam
	if st != nil {
		prev = st.params
	}
	params, err := s.resolveParams(t, formParams(form), prev)
	if err == nil {
		err = checkCapabilities(t, formMembers(form, "Capabilities"))
	}
	if err != nil {
		c.mu.Unlock()
		return nil, err
	}
	if st != nil {
		changes, err := s.diff(st, t, params)
		if err != nil {
			c.mu.Unlock()
			return nil, err
		}
		if len(changes) == 0 && body == st.body && sameParams(params, st.params) {
			c.mu.Unlock()
			return nil, Errorf("ValidationError", "No updates are to be performed.")
		}
	} else {
		st = &cfnStack{id: h.arn("cloudformation", "stack/"+name+"/"+uuid4()), name: name, home: h, created: time.Now(), resources: map[string]*cfnResource{}}
		c.stacks = append(c.stacks, st)
	}
	disable := form.Get("DisableRollback") == "true" || form.Get("OnFailure") == "DO_NOTHING"
	x := s.startOperation(st, typ, body, t, params, formMembers(form, "Capabilities"), formTags(form), disable, form.Get("OnFailure") == "DELETE")
	c.mu.Unlock()
	s.runOperation(x)
	return struct {
		StackID string `xml:"StackId"`
	}{st.id}, nil
}

func (s *Sim) cfnDeleteStack(h arnHome, form url.Values) (any, error) {
	c := s.cfn
	c.mu.Lock()
	st := c.findStack(h, form.Get("StackName"))
	if st == nil || st.status == "DELETE_COMPLETE" {
		c.mu.Unlock()
		return struct{}{}, nil // deleting what is not there succeeds, as in AWS
	}
	if st.inProgress() {
		if st.status == "DELETE_IN_PROGRESS" {
			c.mu.Unlock()
			return struct{}{}, nil
		}
		c.mu.Unlock()
		return nil, Errorf("ValidationError", "Stack [%s] cannot be deleted while in status %s", st.name, st.status)
	}
	if st.status == "REVIEW_IN_PROGRESS" {
		st.status, st.deleted, st.changeSets = "DELETE_COMPLETE", time.Now(), nil
		c.mu.Unlock()
		return struct{}{}, nil
	}
	retain := formMembers(form, "RetainResources")
	if len(retain) > 0 && st.status != "DELETE_FAILED" {
		c.mu.Unlock()
		return nil, Errorf("ValidationError", "Invalid operation on stack [%s]. RetainResources can only be specified when the stack is in the DELETE_FAILED state.", st.id)
	}
	x := &cfnOp{s: s, st: st, kind: "DELETE", retain: retain}
	st.changeSets = nil
	st.setStatus("DELETE_IN_PROGRESS", "User Initiated")
	c.mu.Unlock()
	s.runOperation(x)
	return struct{}{}, nil
}

type cfnOutputOut struct {
	OutputKey   string
	OutputValue string
	Description string `xml:",omitempty"`
	ExportName  string `xml:",omitempty"`
}

type cfnStackOut struct {
	StackId                     string
	StackName                   string
	ChangeSetId                 string `xml:",omitempty"`
	Description                 string `xml:",omitempty"`
	Parameters                  elbList[cfnParamOut]
	CreationTime                string
	LastUpdatedTime             string `xml:",omitempty"`
	DeletionTime                string `xml:",omitempty"`
	StackStatus                 string
	StackStatusReason           string `xml:",omitempty"`
	DisableRollback             bool
	NotificationARNs            elbList[string]
	Capabilities                elbList[string]
	Outputs                     elbList[cfnOutputOut]
	Tags                        elbList[cfnTag]
	EnableTerminationProtection bool
	DriftInformation            struct {
		StackDriftStatus   string
		LastCheckTimestamp string `xml:",omitempty"`
	}
}

func (st *cfnStack) out() cfnStackOut {
	o := cfnStackOut{
		StackId: st.id, StackName: st.name, Description: st.description, Parameters: paramsOut(st.params),
		CreationTime: isoMillis(st.created), StackStatus: st.status, StackStatusReason: st.reason,
		DisableRollback: st.disableRollback, NotificationARNs: elbList[string]{}, Capabilities: elbList[string](slices.Clone(st.capabilities)),
		Outputs: elbList[cfnOutputOut](slices.Clone(st.outputs)), Tags: tagsOut(st.tags),
	}
	if !st.updated.IsZero() {
		o.LastUpdatedTime = isoMillis(st.updated)
	}
	if !st.deleted.IsZero() {
		o.DeletionTime = isoMillis(st.deleted)
	}
	o.DriftInformation.StackDriftStatus = "NOT_CHECKED"
	if st.drift != nil {
		o.DriftInformation.StackDriftStatus = st.drift.status
		o.DriftInformation.LastCheckTimestamp = isoMillis(st.drift.at)
	}
	return o
}

func (s *Sim) cfnDescribeStacks(h arnHome, form url.Values) (any, error) {
	c := s.cfn
	c.mu.Lock()
	defer c.mu.Unlock()
	out := struct{ Stacks elbList[cfnStackOut] }{Stacks: elbList[cfnStackOut]{}}
	if ref := form.Get("StackName"); ref != "" {
		st := c.findStack(h, ref)
		if st == nil {
			return nil, stackNotFound(ref)
		}
		out.Stacks = append(out.Stacks, st.out())
		return out, nil
	}
	for _, st := range c.stacks {
		if st.home == h && st.status != "DELETE_COMPLETE" {
			out.Stacks = append(out.Stacks, st.out())
		}
	}
	return out, nil
}

func (s *Sim) cfnListStacks(h arnHome) (any, error) {
	c := s.cfn
	c.mu.Lock()
	defer c.mu.Unlock()
	type summary struct {
		StackId, StackName, StackStatus string
		StackStatusReason               string `xml:",omitempty"`
		CreationTime                    string
		DeletionTime                    string `xml:",omitempty"`
	}
	out := struct{ StackSummaries elbList[summary] }{StackSummaries: elbList[summary]{}}
	for _, st := range c.stacks {
		if st.home != h {
			continue
		}
		sm := summary{StackId: st.id, StackName: st.name, StackStatus: st.status, StackStatusReason: st.reason, CreationTime: isoMillis(st.created)}
		if !st.deleted.IsZero() {
			sm.DeletionTime = isoMillis(st.deleted)
		}
		out.StackSummaries = append(out.StackSummaries, sm)
	}
	return out, nil
}

type cfnEventOut struct {
	StackId              string
	EventId              string
	StackName            string
	LogicalResourceId    string
	PhysicalResourceId   string
	ResourceType         string
	Timestamp            string
	ResourceStatus       string
	ResourceStatusReason string `xml:",omitempty"`
}

// event records a stack event; the caller holds the lock.
func (st *cfnStack) event(logical, physical, typ, status, reason string) {
	st.events = append(st.events, cfnEventOut{
		StackId: st.id, EventId: uuid4(), StackName: st.name, LogicalResourceId: logical, PhysicalResourceId: physical,
		ResourceType: typ, Timestamp: isoMillis(time.Now()), ResourceStatus: status, ResourceStatusReason: reason,
	})
}

// setStatus changes the stack's status and records it as an event; the
// caller holds the lock.
func (st *cfnStack) setStatus(status, reason string) {
	st.status, st.reason = status, reason
	if status == "DELETE_COMPLETE" {
		st.deleted = time.Now()
	}
	st.event(st.name, st.id, "AWS::CloudFormation::Stack", status, reason)
}

// cfnEventPage is how many events DescribeStackEvents returns at once.
const cfnEventPage = 100

func (s *Sim) cfnDescribeStackEvents(h arnHome, form url.Values) (any, error) {
	c := s.cfn
	c.mu.Lock()
	defer c.mu.Unlock()
	ref := form.Get("StackName")
	st := c.findStack(h, ref)
	if st == nil {
		return nil, stackNotFound(ref)
	}
	start := 0
	if tok := form.Get("NextToken"); tok != "" {
		n, err := strconv.Atoi(tok)
		if err != nil {
			return nil, Errorf("ValidationError", "Invalid NextToken")
		}
		start = n
	}
	out := struct {
		StackEvents elbList[cfnEventOut]
		NextToken   string `xml:",omitempty"`
	}{StackEvents: elbList[cfnEventOut]{}}
	// Newest first, as CloudFormation lists them.
	for i := len(st.events) - 1 - start; i >= 0; i-- {
		if len(out.StackEvents) == cfnEventPage {
			out.NextToken = strconv.Itoa(start + cfnEventPage)
			break
		}
		out.StackEvents = append(out.StackEvents, st.events[i])
	}
	return out, nil
}

func (s *Sim) cfnStackResources(h arnHome, op string, form url.Values) (any, error) {
	c := s.cfn
	c.mu.Lock()
	defer c.mu.Unlock()
	ref := form.Get("StackName")
	st := c.findStack(h, ref)
	if st == nil && op == "DescribeStackResources" && form.Get("PhysicalResourceId") != "" {
		for _, cand := range c.stacks {
			for _, r := range cand.resources {
				if cand.home == h && r.physical == form.Get("PhysicalResourceId") {
					st = cand
				}
			}
		}
	}
	if st == nil {
		return nil, stackNotFound(ref)
	}
	type drift struct{ StackResourceDriftStatus string }
	type res struct {
		StackName            string `xml:",omitempty"`
		StackId              string `xml:",omitempty"`
		LogicalResourceId    string
		PhysicalResourceId   string
		ResourceType         string
		Timestamp            string `xml:",omitempty"`
		LastUpdatedTimestamp string `xml:",omitempty"`
		ResourceStatus       string
		ResourceStatusReason string `xml:",omitempty"`
		DriftInformation     drift
	}
	var list []res
	for _, name := range slices.Sorted(maps.Keys(st.resources)) {
		r := st.resources[name]
		if lid := form.Get("LogicalResourceId"); lid != "" && lid != name {
			continue
		}
		if pid := form.Get("PhysicalResourceId"); pid != "" && pid != r.physical {
			continue
		}
		o := res{LogicalResourceId: name, PhysicalResourceId: r.physical, ResourceType: r.typ, ResourceStatus: r.status, ResourceStatusReason: r.reason, DriftInformation: drift{"NOT_CHECKED"}}
		if st.drift != nil {
			o.DriftInformation.StackResourceDriftStatus = st.drift.resources[name]
		}
		if op == "ListStackResources" {
			o.LastUpdatedTimestamp = isoMillis(r.updated)
		} else {
			o.StackName, o.StackId = st.name, st.id
			o.Timestamp = isoMillis(r.updated)
			if op == "DescribeStackResource" {
				o.LastUpdatedTimestamp, o.Timestamp = o.Timestamp, ""
			}
		}
		list = append(list, o)
	}
	switch op {
	case "ListStackResources":
		return struct{ StackResourceSummaries elbList[res] }{elbList[res](list)}, nil
	case "DescribeStackResource":
		if len(list) == 0 {
			return nil, Errorf("ValidationError", "Resource %s does not exist for stack %s", form.Get("LogicalResourceId"), ref)
		}
		return struct{ StackResourceDetail res }{list[0]}, nil
	}
	if list == nil {
		list = []res{}
	}
	return struct{ StackResources elbList[res] }{elbList[res](list)}, nil
}

func (s *Sim) cfnGetTemplate(h arnHome, form url.Values) (any, error) {
	c := s.cfn
	c.mu.Lock()
	defer c.mu.Unlock()
	if cs := form.Get("ChangeSetName"); cs != "" {
		x, err := c.changeSetByRef(h, form.Get("StackName"), cs)
		if err != nil {
			return nil, err
		}
		return struct{ TemplateBody string }{x.body}, nil
	}
	st := c.findStack(h, form.Get("StackName"))
	if st == nil {
		return nil, stackNotFound(form.Get("StackName"))
	}
	return struct{ TemplateBody string }{st.body}, nil
}

func (s *Sim) cfnValidateTemplate(h arnHome, form url.Values) (any, error) {
	body, err := s.templateBody(h, form)
	if err != nil {
		return nil, err
	}
	t, err := parseTemplate(body)
	if err != nil {
		return nil, err
	}
	type p struct {
		ParameterKey string
		DefaultValue string `xml:",omitempty"`
		NoEcho       bool
		Description  string `xml:",omitempty"`
	}
	out := struct {
		Parameters   elbList[p]
		Capabilities elbList[string]
		Description  string `xml:",omitempty"`
	}{Parameters: elbList[p]{}, Capabilities: elbList[string]{}}
	out.Description, _ = t.raw["Description"].(string)
	for _, name := range slices.Sorted(maps.Keys(t.params)) {
		decl := t.params[name]
		dv, _ := scalarString(decl["Default"])
		desc, _ := decl["Description"].(string)
		out.Parameters = append(out.Parameters, p{ParameterKey: name, DefaultValue: dv, NoEcho: decl["NoEcho"] == true, Description: desc})
	}
	if c := requiredCapabilities(t); c != "" {
		out.Capabilities = append(out.Capabilities, c)
	}
	return out, nil
}

// StackOutputs is a stack's outputs by key, for tests that read what a
// stack made; ok is false when no live stack has the name.
func (s *Sim) StackOutputs(account, name string) (map[string]string, bool) {
	c := s.cfn
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.stacks) - 1; i >= 0; i-- {
		st := c.stacks[i]
		if st.name == name && st.home.account == account && st.status != "DELETE_COMPLETE" {
			out := map[string]string{}
			for _, o := range st.outputs {
				out[o.OutputKey] = o.OutputValue
			}
			return out, true
		}
	}
	return nil, false
}

func (ch cfnChange) out() cfnChangeOut {
	o := cfnChangeOut{Type: "Resource", ResourceChange: cfnResourceChangeOut{
		Action: ch.action, LogicalResourceId: ch.logical, PhysicalResourceId: ch.physical, ResourceType: ch.typ,
		Replacement: ch.replacement, Scope: elbList[string]{}, Details: elbList[cfnChangeDetailOut]{},
	}}
	if ch.action == "Modify" {
		o.ResourceChange.Scope = append(o.ResourceChange.Scope, "Properties")
	}
	for _, d := range ch.details {
		var do cfnChangeDetailOut
		do.Target.Attribute, do.Target.Name, do.Target.RequiresRecreation = "Properties", d.name, d.recreation
		do.Evaluation, do.ChangeSource = d.evaluation, "DirectModification"
		if d.evaluation == "Dynamic" {
			do.ChangeSource, do.CausingEntity = "ResourceAttribute", d.cause
		}
		o.ResourceChange.Details = append(o.ResourceChange.Details, do)
	}
	return o
}
