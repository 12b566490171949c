package infra_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/infra"
)

// lintIgnored are the cfn-lint warnings the templates keep on purpose; each says why.
var lintIgnored = map[string]string{
	// The environment file places each subnet in a named zone (seed §2.1) and the loader
	// checks the zone against the region: the template is one region's by design.
	"W3010": "availability zones come from the environment file",
	// The file gives PostgreSQL's major version ("16"); RDS creates the current minor of
	// it. cfn-lint's list of deprecated versions holds the bare major string.
	"W3691": "a bare major engine version is resolved by RDS to its current minor",
}

// cfnLint runs cfn-lint on a rendered template and returns its findings, one per line
// (rule id first), failing the test on an error. Warnings are returned for the caller.
func cfnLint(t *testing.T, name string, body []byte) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name+".json")
	require.NoError(t, os.WriteFile(path, body, 0o644))
	cmd := exec.Command("cfn-lint", "--format", "parseable", "--regions", "ap-northeast-1", "--", path)
	out, err := cmd.Output()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run cfn-lint: %v", err)
	}
	code := 0
	if exit != nil {
		code = exit.ExitCode()
	}
	// cfn-lint's exit status is a bit set: 2 errors, 4 warnings, 8 informational.
	require.Zero(t, code&2, "cfn-lint finds errors in %s:\n%s", name, out)
	require.Zero(t, code&1, "cfn-lint failed on %s:\n%s", name, out)
	var findings []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line != "" {
			findings = append(findings, line)
		}
	}
	return findings
}

// requireCfnLint skips without cfn-lint on a developer's machine, never in CI.
func requireCfnLint(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("cfn-lint"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("cfn-lint is not on the PATH, and CI is set: install it with pip install cfn-lint (make tools)")
		}
		t.Skip("cfn-lint is not on the PATH: pip install cfn-lint (make tools)")
	}
}

// ruleID is the rule of a parseable cfn-lint line: path:line:col:line:col:RULE:message.
var ruleID = regexp.MustCompile(`:([EWI]\d{4}):`)

// lintVariants are the shipped environments plus the shapes they do not show: HTTPS with a
// requested certificate, and a network the file brings itself.
func lintVariants(t *testing.T) map[string]*environment.Environment {
	t.Helper()
	out := map[string]*environment.Environment{}
	for _, name := range envNames {
		out[name] = loadEnv(t, name)
	}
	https := loadEnv(t, "prod")
	https.AWS.Domain, https.AWS.HostedZoneID = "vmapp.example.com", "Z0123456789ABCDEFGHIJ"
	https.AWS.Network.BastionSecurityGroup = "sg-0123456789abcdef0"
	out["prod-https"] = https
	out["staging-byo"] = byoNetwork(t, loadEnv(t, "staging"))
	return out
}

func TestTemplatesPassCfnLint(t *testing.T) {
	requireCfnLint(t)
	st := loadStack(t)
	for name, env := range lintVariants(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			body, err := infra.TemplateJSON(render(t, st, env))
			require.NoError(t, err)
			for _, f := range cfnLint(t, name, body) {
				m := ruleID.FindStringSubmatch(f)
				require.NotNil(t, m, "unreadable cfn-lint line: %s", f)
				if _, ok := lintIgnored[m[1]]; !ok && !strings.HasPrefix(m[1], "I") {
					t.Errorf("cfn-lint warns about %s: fix it, or add %s to lintIgnored with the reason: %s", name, m[1], f)
				}
			}
		})
	}
}

// TestCfnLintCatchesAnError proves the lint test can fail: a bucket versioning status S3
// does not know is an error to cfn-lint.
func TestCfnLintCatchesAnError(t *testing.T) {
	requireCfnLint(t)
	body := []byte(`{"AWSTemplateFormatVersion":"2010-09-09","Resources":{"Bucket":{"Type":"AWS::S3::Bucket","Properties":{"VersioningConfiguration":{"Status":"Sometimes"}}}}}`)
	path := filepath.Join(t.TempDir(), "broken.json")
	require.NoError(t, os.WriteFile(path, body, 0o644))
	out, err := exec.Command("cfn-lint", "--format", "parseable", "--", path).Output()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "cfn-lint accepted a broken template:\n%s", out)
	require.NotZero(t, exit.ExitCode()&2)
	require.True(t, slices.ContainsFunc(strings.Split(string(out), "\n"), func(l string) bool { return strings.Contains(l, ":E") }))
}
