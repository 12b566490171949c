package awssim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// SSM Run Command over JSON 1.1, on the simulated instances: the
// AWS-RunShellScript document runs its commands line by line, as one shell
// script would without `set -e` (the last line's status is the script's).
// nvidia-smi answers from the instance's GPU facts; every other command is
// not found. One plain command per line: no pipes, lists or redirections.

const (
	ssmTarget      = "AmazonSSM"
	ssmPluginName  = "aws:runShellScript"
	ssmDocument    = "AWS-RunShellScript"
	ssmOutputLimit = 24000 // GetCommandInvocation's StandardOutputContent
	ssmPluginLimit = 2500  // ListCommandInvocations' plugin Output
)

type ssmState struct {
	mu       sync.Mutex
	params   map[string]string // the parameter store: AWS's public parameters
	commands map[string]*ssmCommand
	order    []string
	latency  time.Duration
}

type ssmCommand struct {
	id, comment string
	params      map[string][]string
	instanceIDs []string
	requested   time.Time
	timeout     int
	invocations map[string]*ssmInvocation
}

type ssmInvocation struct {
	instanceID     string
	stdout, stderr string
	code           int
	start, end     time.Time // end is when the result shows
}

func (s *Sim) registerSSM() {
	s.ssm = &ssmState{commands: map[string]*ssmCommand{}, params: map[string]string{
		// AWS publishes the current ECS GPU-optimized AMI here; a launch
		// template's ImageId parameter resolves through it.
		ECSGPUAMIParameter: ECSGPUAMI,
	}}
	s.RegisterJSON(ssmTarget, JSONService{Name: "SSM", Handler: s.serveSSM})
}

// SetSSMLatency makes every command invocation stay InProgress this long
// after SendCommand (0, the default: done at once), so pollers get polled.
func (s *Sim) SetSSMLatency(d time.Duration) {
	s.ssm.mu.Lock()
	defer s.ssm.mu.Unlock()
	s.ssm.latency = d
}

// ECSGPUAMIParameter is the public SSM parameter naming the recommended
// Amazon ECS GPU-optimized AMI, and ECSGPUAMI the simulator's answer.
const (
	ECSGPUAMIParameter = "/aws/service/ecs/optimized-ami/amazon-linux-2/gpu/recommended/image_id"
	ECSGPUAMI          = "ami-0a5e7c2d9b1f4e6a3"
)

// ssmParameter reads the parameter store.
func (s *Sim) ssmParameter(name string) (string, bool) {
	s.ssm.mu.Lock()
	defer s.ssm.mu.Unlock()
	v, ok := s.ssm.params[name]
	return v, ok
}

type ssmParameterOut struct {
	Name     string `json:"Name"`
	Type     string `json:"Type"`
	Value    string `json:"Value"`
	Version  int    `json:"Version"`
	ARN      string `json:"ARN"`
	DataType string `json:"DataType"`
}

func (s *Sim) ssmGetParameters(names []string, region string) ([]ssmParameterOut, []string) {
	var found []ssmParameterOut
	var invalid []string
	for _, n := range names {
		v, ok := s.ssmParameter(n)
		if !ok {
			invalid = append(invalid, n)
			continue
		}
		found = append(found, ssmParameterOut{Name: n, Type: "String", Value: v, Version: 1, DataType: "text",
			ARN: "arn:aws:ssm:" + region + "::parameter" + n})
	}
	return found, invalid
}

type ssmRequest struct {
	Name           string              `json:"Name"`
	Names          []string            `json:"Names"`
	DocumentName   string              `json:"DocumentName"`
	InstanceIDs    []string            `json:"InstanceIds"`
	Targets        []json.RawMessage   `json:"Targets"`
	Parameters     map[string][]string `json:"Parameters"`
	Comment        string              `json:"Comment"`
	TimeoutSeconds int                 `json:"TimeoutSeconds"`
	CommandID      string              `json:"CommandId"`
	InstanceID     string              `json:"InstanceId"`
	PluginName     string              `json:"PluginName"`
	Details        bool                `json:"Details"`
}

func (s *Sim) serveSSM(r *http.Request, op string, body []byte) (any, error) {
	p, err := s.signedCaller(r)
	if err != nil {
		return nil, err
	}
	var in ssmRequest
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, Errorf("SerializationException", "%v", err)
	}
	switch op {
	case "SendCommand":
		return s.ssmSendCommand(p, in)
	case "GetCommandInvocation":
		return s.ssmGetCommandInvocation(in)
	case "ListCommandInvocations":
		return s.ssmListCommandInvocations(in)
	case "GetParameter":
		found, _ := s.ssmGetParameters([]string{in.Name}, signingRegion(r))
		if len(found) == 0 {
			return nil, Errorf("ParameterNotFound", "")
		}
		return map[string]any{"Parameter": found[0]}, nil
	case "GetParameters":
		found, invalid := s.ssmGetParameters(in.Names, signingRegion(r))
		return map[string]any{"Parameters": append([]ssmParameterOut{}, found...), "InvalidParameters": append([]string{}, invalid...)}, nil
	}
	return nil, UnknownOperation(op)
}

func (s *Sim) ssmSendCommand(p Principal, in ssmRequest) (any, error) {
	if in.DocumentName != ssmDocument {
		return nil, Errorf("InvalidDocument", "Document with name %s does not exist (awssim runs only %s)", in.DocumentName, ssmDocument)
	}
	if len(in.InstanceIDs) == 0 {
		return nil, Errorf("InvalidParameters", "awssim sends commands to InstanceIds only, not to Targets")
	}
	commands := in.Parameters["commands"]
	if len(commands) == 0 {
		return nil, Errorf("InvalidParameters", "Parameter \"commands\" is required by %s", ssmDocument)
	}
	var instances []Instance
	var bad []string
	for _, id := range in.InstanceIDs {
		inst, ok := s.Instance(id)
		if !ok || inst.Lifecycle != "InService" {
			bad = append(bad, id)
			continue
		}
		instances = append(instances, inst)
	}
	if len(bad) > 0 {
		return nil, Errorf("InvalidInstanceId", "Instances [[%s]] not in a valid state for account %s", strings.Join(bad, ", "), p.Account)
	}

	timeout := in.TimeoutSeconds
	if timeout == 0 {
		timeout = 3600
	}
	s.ssm.mu.Lock()
	defer s.ssm.mu.Unlock()
	now := time.Now()
	c := &ssmCommand{
		id: uuid4(), comment: in.Comment, params: in.Parameters, instanceIDs: in.InstanceIDs,
		requested: now, timeout: timeout, invocations: map[string]*ssmInvocation{},
	}
	for _, inst := range instances {
		stdout, stderr, code := runShellScript(inst, c.id, commands)
		c.invocations[inst.ID] = &ssmInvocation{instanceID: inst.ID, stdout: stdout, stderr: stderr, code: code, start: now, end: now.Add(s.ssm.latency)}
	}
	s.ssm.commands[c.id] = c
	s.ssm.order = append(s.ssm.order, c.id)

	return map[string]any{"Command": map[string]any{
		"CommandId":              c.id,
		"DocumentName":           ssmDocument,
		"DocumentVersion":        "$DEFAULT",
		"Comment":                c.comment,
		"ExpiresAfter":           jsonEpoch(now.Add(time.Duration(timeout)*time.Second + time.Hour)),
		"Parameters":             c.params,
		"InstanceIds":            c.instanceIDs,
		"Targets":                []any{},
		"RequestedDateTime":      jsonEpoch(now),
		"Status":                 "Pending",
		"StatusDetails":          "Pending",
		"MaxConcurrency":         "50",
		"MaxErrors":              "0",
		"TargetCount":            len(instances),
		"CompletedCount":         0,
		"ErrorCount":             0,
		"DeliveryTimedOutCount":  0,
		"TimeoutSeconds":         timeout,
		"CloudWatchOutputConfig": map[string]any{"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": false},
	}}, nil
}

// status is an invocation's status now, and whether it has finished.
func (inv *ssmInvocation) status(now time.Time) (string, bool) {
	switch {
	case now.Before(inv.end):
		return "InProgress", false
	case inv.code == 0:
		return "Success", true
	}
	return "Failed", true
}

func ssmTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func (s *Sim) ssmGetCommandInvocation(in ssmRequest) (any, error) {
	if in.PluginName != "" && in.PluginName != ssmPluginName {
		return nil, Errorf("InvalidPluginName", "The plugin name is not valid: %s", in.PluginName)
	}
	s.ssm.mu.Lock()
	defer s.ssm.mu.Unlock()
	c := s.ssm.commands[in.CommandID]
	if c == nil || c.invocations[in.InstanceID] == nil {
		return nil, Errorf("InvocationDoesNotExist", "")
	}
	inv := c.invocations[in.InstanceID]
	status, done := inv.status(time.Now())
	out := map[string]any{
		"CommandId":              c.id,
		"InstanceId":             inv.instanceID,
		"Comment":                c.comment,
		"DocumentName":           ssmDocument,
		"DocumentVersion":        "$DEFAULT",
		"PluginName":             ssmPluginName,
		"ResponseCode":           -1,
		"ExecutionStartDateTime": ssmTime(inv.start),
		"ExecutionElapsedTime":   "",
		"ExecutionEndDateTime":   "",
		"Status":                 status,
		"StatusDetails":          status,
		"StandardOutputContent":  "",
		"StandardOutputUrl":      "",
		"StandardErrorContent":   "",
		"StandardErrorUrl":       "",
		"CloudWatchOutputConfig": map[string]any{"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": false},
	}
	if done {
		out["ResponseCode"] = inv.code
		out["ExecutionElapsedTime"] = fmt.Sprintf("PT%.3fS", inv.end.Sub(inv.start).Seconds())
		out["ExecutionEndDateTime"] = ssmTime(inv.end)
		out["StandardOutputContent"] = clip(inv.stdout, ssmOutputLimit)
		out["StandardErrorContent"] = clip(inv.stderr, ssmOutputLimit)
	}
	return out, nil
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func (s *Sim) ssmListCommandInvocations(in ssmRequest) (any, error) {
	s.ssm.mu.Lock()
	defer s.ssm.mu.Unlock()
	now := time.Now()
	list := []map[string]any{}
	for i := len(s.ssm.order) - 1; i >= 0; i-- { // newest first
		c := s.ssm.commands[s.ssm.order[i]]
		if in.CommandID != "" && c.id != in.CommandID {
			continue
		}
		ids := make([]string, 0, len(c.invocations))
		for id := range c.invocations {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			if in.InstanceID != "" && id != in.InstanceID {
				continue
			}
			inv := c.invocations[id]
			status, done := inv.status(now)
			item := map[string]any{
				"CommandId":              c.id,
				"InstanceId":             id,
				"InstanceName":           "",
				"Comment":                c.comment,
				"DocumentName":           ssmDocument,
				"DocumentVersion":        "$DEFAULT",
				"RequestedDateTime":      jsonEpoch(c.requested),
				"Status":                 status,
				"StatusDetails":          status,
				"StandardOutputUrl":      "",
				"StandardErrorUrl":       "",
				"CommandPlugins":         []any{},
				"ServiceRole":            "",
				"CloudWatchOutputConfig": map[string]any{"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": false},
			}
			if in.Details {
				plugin := map[string]any{
					"Name": ssmPluginName, "Status": status, "StatusDetails": status, "ResponseCode": -1,
					"ResponseStartDateTime": jsonEpoch(inv.start), "Output": "",
					"StandardOutputUrl": "", "StandardErrorUrl": "", "OutputS3Region": "", "OutputS3BucketName": "", "OutputS3KeyPrefix": "",
				}
				if done {
					plugin["ResponseCode"] = inv.code
					plugin["ResponseFinishDateTime"] = jsonEpoch(inv.end)
					plugin["Output"] = pluginOutput(inv)
				}
				item["CommandPlugins"] = []any{plugin}
			}
			list = append(list, item)
		}
	}
	return map[string]any{"CommandInvocations": list}, nil
}

// pluginOutput is how Run Command folds both streams into a plugin's Output.
func pluginOutput(inv *ssmInvocation) string {
	out := inv.stdout
	if inv.stderr != "" {
		out += "\n----------ERROR-------\n" + inv.stderr
	}
	return clip(out, ssmPluginLimit)
}

// runShellScript runs AWS-RunShellScript's commands on a simulated instance.
func runShellScript(inst Instance, commandID string, commands []string) (stdout, stderr string, code int) {
	script := fmt.Sprintf("/var/lib/amazon/ssm/%s/document/orchestration/%s/awsrunShellScript/0.awsrunShellScript/_script.sh", inst.ID, commandID)
	var out, errOut strings.Builder
	lines := strings.Split(strings.Join(commands, "\n"), "\n")
	for n, line := range lines {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		args, err := shellWords(line)
		if err != nil {
			fmt.Fprintf(&errOut, "%s: line %d: syntax error: %v\n", script, n+1, err)
			code = 2
			continue
		}
		switch args[0] {
		case "nvidia-smi", "/usr/bin/nvidia-smi":
			o, e, c := nvidiaSMI(inst, args[1:])
			out.WriteString(o)
			errOut.WriteString(e)
			code = c
		default:
			fmt.Fprintf(&errOut, "%s: line %d: %s: command not found\n", script, n+1, args[0])
			code = 127
		}
	}
	if code != 0 {
		fmt.Fprintf(&errOut, "failed to run commands: exit status %d", code)
	}
	return out.String(), errOut.String(), code
}

// shellWords splits a command line into words, with shell quoting.
func shellWords(line string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unexpected EOF while looking for matching `%c'", quote)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

const nvidiaNoDriver = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.\n\n"

// nvidiaSMI answers nvidia-smi from an instance's GPU facts, in the real
// tool's formats: --query-gpu with --format=csv[,noheader][,nounits], -L,
// and the default table.
func nvidiaSMI(inst Instance, args []string) (stdout, stderr string, code int) {
	gpu := inst.GPU
	if gpu == nil {
		return nvidiaNoDriver, "", 9
	}
	var query, format string
	list := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		next := func() string {
			if i+1 < len(args) {
				i++
				return args[i]
			}
			return ""
		}
		switch {
		case strings.HasPrefix(a, "--query-gpu="):
			query = strings.TrimPrefix(a, "--query-gpu=")
		case a == "--query-gpu":
			query = next()
		case strings.HasPrefix(a, "--format="):
			format = strings.TrimPrefix(a, "--format=")
		case a == "--format":
			format = next()
		case a == "-L" || a == "--list-gpus":
			list = true
		default:
			return "Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.\n\n", "", 2
		}
	}
	switch {
	case list:
		var b strings.Builder
		for i := 0; i < gpu.Count; i++ {
			fmt.Fprintf(&b, "GPU %d: %s (UUID: %s)\n", i, gpu.Model, gpuUUID(inst.ID, i))
		}
		return b.String(), "", 0
	case query != "":
		return nvidiaQuery(inst, query, format)
	case format != "":
		return "Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.\n\n", "", 2
	}
	return nvidiaTable(gpu), "", 0
}

func gpuUUID(instanceID string, i int) string {
	h := manifestDigest([]byte(fmt.Sprintf("%s/%d", instanceID, i)))[len("sha256:"):]
	return fmt.Sprintf("GPU-%s-%s-%s-%s-%s", h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])
}

func nvidiaQuery(inst Instance, query, format string) (string, string, int) {
	if format == "" {
		return "Option --format must be specified with --query-gpu.\n", "", 2
	}
	header, units, csv := true, true, false
	for _, f := range strings.Split(format, ",") {
		switch strings.TrimSpace(f) {
		case "csv":
			csv = true
		case "noheader":
			header = false
		case "nounits":
			units = false
		default:
			return fmt.Sprintf("\"%s\" is not a valid format option.\n", format), "", 2
		}
	}
	if !csv {
		return "Option --format must include csv.\n", "", 2
	}
	gpu := inst.GPU
	type field struct {
		head string
		val  func(i int) string
	}
	withUnit := func(v, unit string) string {
		if units {
			return v + " " + unit
		}
		return v
	}
	fields := map[string]field{
		"driver_version": {"driver_version", func(int) string { return gpu.DriverVersion }},
		"name":           {"name", func(int) string { return gpu.Model }},
		"gpu_name":       {"name", func(int) string { return gpu.Model }},
		"count":          {"count", func(int) string { return fmt.Sprint(gpu.Count) }},
		"index":          {"index", func(i int) string { return fmt.Sprint(i) }},
		"uuid":           {"uuid", func(i int) string { return gpuUUID(inst.ID, i) }},
		"gpu_uuid":       {"uuid", func(i int) string { return gpuUUID(inst.ID, i) }},
		"compute_cap":    {"compute_cap", func(int) string { return gpu.ComputeCapability }},
		"memory.total":   {"memory.total [MiB]", func(int) string { return withUnit(fmt.Sprint(gpu.MemoryMiB), "MiB") }},
		"memory.used":    {"memory.used [MiB]", func(int) string { return withUnit("0", "MiB") }},
		"memory.free":    {"memory.free [MiB]", func(int) string { return withUnit(fmt.Sprint(gpu.MemoryMiB), "MiB") }},
		"utilization.gpu": {"utilization.gpu [%]", func(int) string {
			return withUnit("0", "%")
		}},
	}
	var cols []field
	for _, name := range strings.Split(query, ",") {
		f, ok := fields[strings.TrimSpace(name)]
		if !ok {
			return fmt.Sprintf("Field \"%s\" is not a valid field to query.\n\n", strings.TrimSpace(name)), "", 2
		}
		cols = append(cols, f)
	}
	var b strings.Builder
	if header {
		heads := make([]string, len(cols))
		for i, c := range cols {
			heads[i] = c.head
		}
		b.WriteString(strings.Join(heads, ", ") + "\n")
	}
	for i := 0; i < gpu.Count; i++ {
		vals := make([]string, len(cols))
		for j, c := range cols {
			vals[j] = c.val(i)
		}
		b.WriteString(strings.Join(vals, ", ") + "\n")
	}
	return b.String(), "", 0
}

// nvidiaTable is nvidia-smi's default view, idle GPUs.
func nvidiaTable(gpu *GPUFacts) string {
	var b strings.Builder
	rule := "+-----------------------------------------+----------------------+----------------------+\n"
	fmt.Fprintf(&b, "%s\n", time.Now().Format("Mon Jan  2 15:04:05 2006"))
	b.WriteString("+---------------------------------------------------------------------------------------+\n")
	fmt.Fprintf(&b, "| NVIDIA-SMI %-22s Driver Version: %-14s CUDA Version: %-8s|\n", gpu.DriverVersion, gpu.DriverVersion, gpu.CUDAVersion)
	b.WriteString("|-----------------------------------------+----------------------+----------------------+\n")
	b.WriteString("| GPU  Name                 Persistence-M | Bus-Id        Disp.A | Volatile Uncorr. ECC |\n")
	b.WriteString("| Fan  Temp   Perf          Pwr:Usage/Cap |         Memory-Usage | GPU-Util  Compute M. |\n")
	b.WriteString("|                                         |                      |               MIG M. |\n")
	b.WriteString("|=========================================+======================+======================|\n")
	for i := 0; i < gpu.Count; i++ {
		fmt.Fprintf(&b, "| %3d  %-30s On  | 00000000:00:%02X.0 Off |                    0 |\n", i, gpu.Model, 0x1E+i)
		fmt.Fprintf(&b, "| N/A   29C    P8              9W /  70W | %20s |      0%%      Default |\n", fmt.Sprintf("0MiB / %dMiB", gpu.MemoryMiB))
		b.WriteString("|                                         |                      |                  N/A |\n")
		b.WriteString(rule)
	}
	b.WriteString("\n")
	b.WriteString("+---------------------------------------------------------------------------------------+\n")
	b.WriteString("| Processes:                                                                            |\n")
	b.WriteString("|  GPU   GI   CI        PID   Type   Process name                            GPU Memory |\n")
	b.WriteString("|        ID   ID                                                             Usage      |\n")
	b.WriteString("|=======================================================================================|\n")
	b.WriteString("|  No running processes found                                                           |\n")
	b.WriteString("+---------------------------------------------------------------------------------------+\n")
	return b.String()
}
