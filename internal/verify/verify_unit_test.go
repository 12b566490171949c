package verify

import (
	"testing"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/gpu"
)

func TestParseNvidiaSMI(t *testing.T) {
	ok := ssmtypes.CommandInvocationStatusSuccess
	failed := ssmtypes.CommandInvocationStatusFailed
	tests := []struct {
		name   string
		res    ssmResult
		fields int
		want   gpu.Inventory
		err    string
	}{
		{
			name: "a T4", fields: 4,
			res: ssmResult{status: ok, stdout: "535.104.05, Tesla T4, 15360 MiB, 7.5\n"},
			want: gpu.Inventory{Available: true, DriverVersion: "535.104.05", GPUs: []gpu.Device{
				{Index: 0, Name: "Tesla T4", MemoryTotalMiB: 15360, CCMajor: 7, CCMinor: 5},
			}},
		},
		{
			name: "two GPUs, nounits", fields: 4,
			res: ssmResult{status: ok, stdout: "550.54.15, NVIDIA A10G, 23028, 8.6\n550.54.15, NVIDIA A10G, 23028, 8.6\n"},
			want: gpu.Inventory{Available: true, DriverVersion: "550.54.15", GPUs: []gpu.Device{
				{Index: 0, Name: "NVIDIA A10G", MemoryTotalMiB: 23028, CCMajor: 8, CCMinor: 6},
				{Index: 1, Name: "NVIDIA A10G", MemoryTotalMiB: 23028, CCMajor: 8, CCMinor: 6},
			}},
		},
		{
			name: "no driver", fields: 4,
			res:  ssmResult{status: failed, code: 9, stdout: "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.\n"},
			want: gpu.Inventory{NoDriver: true, GPUs: []gpu.Device{}, Problem: "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running."},
		},
		{
			name: "no nvidia-smi", fields: 4,
			res:  ssmResult{status: failed, code: 127, stderr: "/var/lib/amazon/ssm/x/_script.sh: line 1: nvidia-smi: command not found"},
			want: gpu.Inventory{NoDriver: true, GPUs: []gpu.Device{}, Problem: "/var/lib/amazon/ssm/x/_script.sh: line 1: nvidia-smi: command not found"},
		},
		{
			name: "an nvidia-smi before compute_cap", fields: 4,
			res: ssmResult{status: failed, code: 2, stdout: "Field \"compute_cap\" is not a valid field to query.\n"},
			err: errNoComputeCap.Error(),
		},
		{
			name: "without compute_cap", fields: 3,
			res:  ssmResult{status: ok, stdout: "470.82.01, Tesla T4, 15109 MiB\n"},
			want: gpu.Inventory{Available: true, DriverVersion: "470.82.01", GPUs: []gpu.Device{{Index: 0, Name: "Tesla T4", MemoryTotalMiB: 15109}}},
		},
		{
			name: "not csv", fields: 4,
			res: ssmResult{status: ok, stdout: "Tesla T4\n"},
			err: `nvidia-smi printed "Tesla T4", not 4 comma-separated fields`,
		},
		{
			name: "nothing", fields: 4,
			res: ssmResult{status: ok, stdout: "\n"},
			err: "nvidia-smi printed no GPU",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv, err := parseNvidiaSMI(tt.res, tt.fields)
			if tt.err != "" {
				require.EqualError(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, inv)
		})
	}
}

// The inventories SSM gives are judged by vmctl gpu's own rules.
func TestHostsJudgedByTheCUDARules(t *testing.T) {
	req := gpu.Requirements{Count: 1, MinMemoryMiB: 8192}
	old, err := parseNvidiaSMI(ssmResult{status: ssmtypes.CommandInvocationStatusSuccess, stdout: "418.87.01, Tesla T4, 15360 MiB, 7.5\n"}, 4)
	require.NoError(t, err)
	rep := gpu.Evaluate(old, req)
	assert.Equal(t, Fail, verdictOf(rep.Host.Level))
	assert.Contains(t, rep.Host.Summary(), "driver 418.87.01 is older than 450.80.02")

	b200, err := parseNvidiaSMI(ssmResult{status: ssmtypes.CommandInvocationStatusSuccess, stdout: "570.124.06, NVIDIA B200, 183359 MiB, 10.0\n"}, 4)
	require.NoError(t, err)
	assert.Equal(t, Fail, verdictOf(gpu.Evaluate(b200, req).Host.Level), "CUDA 11.8 has no code for compute capability 10.0")

	compat, err := parseNvidiaSMI(ssmResult{status: ssmtypes.CommandInvocationStatusSuccess, stdout: "470.82.01, Tesla T4, 15360 MiB, 7.5\n"}, 4)
	require.NoError(t, err)
	assert.Equal(t, Pass, verdictOf(gpu.Evaluate(compat, req).Host.Level), "minor-version compatibility is ready, with a warning")
}

func TestPathMatches(t *testing.T) {
	assert.True(t, pathMatches([]string{"/*"}, "/"))
	assert.True(t, pathMatches([]string{"/api/*"}, "/api/health"))
	assert.False(t, pathMatches([]string{"/api/*"}, "/health"))
	assert.True(t, pathMatches([]string{"/a?c"}, "/abc"))
	assert.False(t, pathMatches(nil, "/"))
}

func TestLastJSON(t *testing.T) {
	assert.Equal(t, `{"ok":true}`, lastJSON([]string{"loading torch", `{"ok":false}`, "warning: x", `{"ok":true}`}))
	assert.Equal(t, `{"b":1}`, lastJSON([]string{"{not json", "a\n{\"b\":1}\n"}))
	assert.Empty(t, lastJSON([]string{"no json here"}))
}

func TestReportVerdict(t *testing.T) {
	r := &Report{Checks: []Check{{Verdict: Pass}, {Verdict: Unknown}}}
	assert.Equal(t, Unknown, r.worst())
	assert.False(t, r.Passed())
	r.Checks = append(r.Checks, Check{Check: CheckParity, Subject: "backend", Verdict: Fail, Detail: "x"})
	assert.Equal(t, Fail, r.worst(), "a failure outranks not knowing")
	assert.Len(t, r.Failed(), 2)
	r.Checks = []Check{{Verdict: Pass}}
	assert.True(t, r.Passed())
	assert.Equal(t, "all 1 checks passed", r.Summary())
}

// routeOf answers as an ALB listener would: by priority, not by list order;
// * and ? as ALB reads them; rules with conditions verify cannot meet
// passed over; the default action last.
func TestRouteOf(t *testing.T) {
	const web, api, v1, hdr = "arn:tg/web", "arn:tg/api", "arn:tg/v1", "arn:tg/hdr"
	rules := []listenerRule{
		{Default: true, Action: "forward", TargetGroups: []string{web}},
		{Priority: 20, PathPatterns: []string{"/api/*", "/health"}, Action: "forward", TargetGroups: []string{api}},
		{Priority: 10, PathPatterns: []string{"/api/v?/*"}, Action: "forward", TargetGroups: []string{v1}},
		{Priority: 5, PathPatterns: []string{"/*"}, Other: true, Action: "forward", TargetGroups: []string{hdr}},
		{Priority: 30, PathPatterns: []string{"/old/*"}, Action: "redirect"},
	}
	tests := []struct {
		path    string
		want    string // the target group reached; "" for none
		rule    string
		noMatch bool
	}{
		{path: "/api/v1/voices", want: v1, rule: "rule 10 (/api/v?/*)"},         // 10 outranks 20, listed after it
		{path: "/api/v12/voices", want: api, rule: "rule 20 (/api/*, /health)"}, // ? is one character
		{path: "/api/", want: api, rule: "rule 20 (/api/*, /health)"},           // * matches nothing too
		{path: "/health", want: api, rule: "rule 20 (/api/*, /health)"},         // a pattern with no wildcard is exact
		{path: "/health?probe=1", want: api, rule: "rule 20 (/api/*, /health)"}, // the query is not the path
		{path: "/healthz", want: web, rule: "the default action"},               // … and matches no longer path
		{path: "/API/voices", want: web, rule: "the default action"},            // case-sensitive
		{path: "/old/page", want: "", rule: "rule 30 (/old/*)"},                 // a redirect reaches no target group
		{path: "/", want: web, rule: "the default action"},                      // the header rule 5 is passed over
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			r, ok := routeOf(rules, tt.path)
			require.True(t, ok)
			assert.Equal(t, tt.rule, r.String())
			if tt.want == "" {
				assert.Empty(t, r.TargetGroups)
				return
			}
			assert.Equal(t, []string{tt.want}, r.TargetGroups)
			assert.True(t, r.forwardsTo("arn:tg/other", tt.want))
		})
	}
	_, ok := routeOf(rules[1:], "/elsewhere")
	assert.False(t, ok, "no rule matches and there is no default action")
}

func TestRulesFromELB(t *testing.T) {
	str := sdkaws.String
	got := rulesFromELB([]elbtypes.Rule{
		{Priority: str("3"), Conditions: []elbtypes.RuleCondition{{Field: str("path-pattern"), PathPatternConfig: &elbtypes.PathPatternConditionConfig{Values: []string{"/api/*"}}}},
			Actions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, Order: sdkaws.Int32(1), ForwardConfig: &elbtypes.ForwardActionConfig{TargetGroups: []elbtypes.TargetGroupTuple{
				{TargetGroupArn: str("blue"), Weight: sdkaws.Int32(100)}, {TargetGroupArn: str("green"), Weight: sdkaws.Int32(0)},
			}}}}},
		{Priority: str("4"), Conditions: []elbtypes.RuleCondition{{Field: str("host-header"), Values: []string{"x.example.com"}}, {Field: str("path-pattern"), Values: []string{"/x"}}},
			Actions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumFixedResponse}}},
		{Priority: str("default"), IsDefault: sdkaws.Bool(true), Actions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: str("web")}}},
	})
	assert.Equal(t, []listenerRule{
		{Priority: 3, PathPatterns: []string{"/api/*"}, Action: "forward", TargetGroups: []string{"blue"}}, // green carries no weight
		{Priority: 4, PathPatterns: []string{"/x"}, Other: true, Action: "fixed-response"},
		{Default: true, Action: "forward", TargetGroups: []string{"web"}},
	}, got)
}

func TestP95(t *testing.T) {
	var s []time.Duration
	for i := 20; i >= 1; i-- {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	assert.Equal(t, 19*time.Millisecond, p95(s), "nearest rank: the 19th of 20, so one outlier does not decide")
	assert.Equal(t, 5*time.Millisecond, p95([]time.Duration{5 * time.Millisecond}))
	assert.Zero(t, p95(nil))
	assert.Equal(t, 312.5, millis(312500*time.Microsecond))
}

// With HTTPS, port 80 only redirects: a request to an address that names
// neither port (the loopback proxy, verify --endpoint) is answered by the
// listener that forwards, not by the redirect.
func TestPickListener(t *testing.T) {
	https := elbtypes.Listener{ListenerArn: sdkaws.String("https"), Port: sdkaws.Int32(443), Protocol: elbtypes.ProtocolEnumHttps,
		DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumFixedResponse}}}
	redirect := elbtypes.Listener{ListenerArn: sdkaws.String("http"), Port: sdkaws.Int32(80), Protocol: elbtypes.ProtocolEnumHttp,
		DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumRedirect}}}
	plain := elbtypes.Listener{ListenerArn: sdkaws.String("plain"), Port: sdkaws.Int32(8080), Protocol: elbtypes.ProtocolEnumHttp,
		DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward}}}
	for _, tt := range []struct {
		name      string
		listeners []elbtypes.Listener
		base      string
		want      string
	}{
		{"the port decides", []elbtypes.Listener{https, redirect}, "http://vmapp.example.com", "http"},
		{"https on 443", []elbtypes.Listener{https, redirect}, "https://vmapp.example.com", "https"},
		{"no port named: the one that forwards, not the redirect", []elbtypes.Listener{redirect, https}, "http://127.0.0.1:40123", "https"},
		{"the only one", []elbtypes.Listener{redirect}, "http://127.0.0.1:40123", "http"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, err := pickListener(tt.listeners, "lb", tt.base)
			require.NoError(t, err)
			assert.Equal(t, tt.want, sdkaws.ToString(l.ListenerArn))
		})
	}
	other := plain
	other.Port = sdkaws.Int32(8081)
	_, err := pickListener([]elbtypes.Listener{plain, other}, "lb", "http://127.0.0.1:40123")
	assert.EqualError(t, err, "cannot tell which of the 2 listeners of lb answers http://127.0.0.1:40123")
}
