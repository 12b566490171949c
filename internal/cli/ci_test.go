package cli

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/vmctl/vmctl/internal/environment"
)

// The workflow as GitHub reads it; only what the tests look at.
type ghWorkflow struct {
	On          map[string]any    `yaml:"on"`
	Permissions map[string]string `yaml:"permissions"`
	Concurrency struct {
		Group            string `yaml:"group"`
		CancelInProgress *bool  `yaml:"cancel-in-progress"`
	} `yaml:"concurrency"`
	Env      map[string]string `yaml:"env"`
	Defaults struct {
		Run map[string]string `yaml:"run"`
	} `yaml:"defaults"`
	Jobs map[string]ghJob `yaml:"jobs"`
}

type ghJob struct {
	Needs           any               `yaml:"needs"`
	Environment     any               `yaml:"environment"`
	Permissions     any               `yaml:"permissions"`
	ContinueOnError any               `yaml:"continue-on-error"`
	If              string            `yaml:"if"`
	Steps           []ghStep          `yaml:"steps"`
	Env             map[string]string `yaml:"env"`
}

type ghStep struct {
	Name            string            `yaml:"name"`
	Uses            string            `yaml:"uses"`
	With            map[string]string `yaml:"with"`
	Env             map[string]string `yaml:"env"`
	Run             string            `yaml:"run"`
	If              string            `yaml:"if"`
	ContinueOnError any               `yaml:"continue-on-error"`
}

// vmctlCommands are the job's vmctl command lines, in order.
func (j ghJob) vmctlCommands() []string {
	var out []string
	for _, s := range j.Steps {
		if strings.HasPrefix(s.Run, "vmctl ") {
			out = append(out, s.Run)
		}
	}
	return out
}

// index is the position of the first step using an action with this prefix, or running this command.
func (j ghJob) index(t *testing.T, usesOrRun string) int {
	t.Helper()
	for i, s := range j.Steps {
		if (s.Uses != "" && strings.HasPrefix(s.Uses, usesOrRun)) || (s.Run != "" && strings.HasPrefix(s.Run, usesOrRun)) {
			return i
		}
	}
	t.Fatalf("no step %q", usesOrRun)
	return -1
}

// credentials are the job's configure-aws-credentials steps, by profile.
func (j ghJob) credentials() map[string]ghStep {
	out := map[string]ghStep{}
	for _, s := range j.Steps {
		if strings.HasPrefix(s.Uses, "aws-actions/configure-aws-credentials@") {
			out[s.With["aws-profile"]] = s
		}
	}
	return out
}

// newAppRepo is an empty git repository's root.
func newAppRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, ".git"), 0o755))
	return dir
}

const shippedEnvs = "../../environments"

func writtenWorkflow(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	path := filepath.Join(dir, ".github", "workflows", "vmctl.yml")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return path, data
}

// lint runs actionlint, as a library, on a workflow file.
func lint(t *testing.T, path string, data []byte) []*actionlint.Error {
	t.Helper()
	l, err := actionlint.NewLinter(io.Discard, &actionlint.LinterOptions{WorkingDir: filepath.Dir(path)})
	require.NoError(t, err)
	errs, err := l.Lint(path, data, nil)
	require.NoError(t, err)
	return errs
}

func TestCIGitHubWritesTheReleasePipeline(t *testing.T) {
	app := newAppRepo(t)
	code, out, errOut := run(t, nil, "--env-dir", shippedEnvs, "ci", "github", "--dir", app, "--vmctl-version", "v1.4.0")
	require.Equal(t, ExitOK, code, errOut)
	path, data := writtenWorkflow(t, app)
	assert.Contains(t, out, path+": created")

	var wf ghWorkflow
	require.NoError(t, yaml.Unmarshal(data, &wf))

	// Triggers, OIDC, one release at a time.
	require.Contains(t, wf.On, "push")
	assert.Equal(t, map[string]any{"branches": []any{"main"}}, wf.On["push"])
	assert.Contains(t, wf.On, "workflow_dispatch")
	assert.Equal(t, map[string]string{"id-token": "write", "contents": "read"}, wf.Permissions)
	assert.NotEmpty(t, wf.Concurrency.Group)
	require.NotNil(t, wf.Concurrency.CancelInProgress)
	assert.False(t, *wf.Concurrency.CancelInProgress, "a release in flight is never cancelled half way")

	// Jobs, their order and their gates.
	require.Len(t, wf.Jobs, 3)
	ship, staging, prod := wf.Jobs["ship"], wf.Jobs["staging"], wf.Jobs["prod"]
	assert.Nil(t, ship.Needs)
	assert.Nil(t, ship.Environment, "dev deploys without a person")
	assert.Equal(t, "ship", staging.Needs)
	assert.Equal(t, "staging", staging.Environment)
	assert.Equal(t, "staging", prod.Needs)
	assert.Equal(t, "prod", prod.Environment)

	// The commands, in order.
	assert.Equal(t, []string{"vmctl ship", "vmctl verify --env dev"}, ship.vmctlCommands())
	assert.Equal(t, []string{
		"vmctl promote dev staging --from-profile vmctl-dev --to-profile vmctl-staging --yes --approve-prod",
		"vmctl verify --env staging --yes --approve-prod",
	}, staging.vmctlCommands())
	assert.Equal(t, []string{
		"vmctl promote staging prod --from-profile vmctl-staging --to-profile vmctl-prod --yes --approve-prod",
		"vmctl verify --env prod --yes --approve-prod",
	}, prod.vmctlCommands())

	// The manifest goes from ship to the promotions, where vmctl reads it.
	assert.Less(t, ship.index(t, "vmctl verify"), ship.index(t, "actions/upload-artifact@"))
	up := ship.Steps[ship.index(t, "actions/upload-artifact@")]
	assert.Equal(t, "vmctl/.vmctl/releases", up.With["path"])
	assert.Equal(t, "true", up.With["include-hidden-files"], "upload-artifact leaves out .vmctl otherwise")
	assert.Equal(t, "vmctl", wf.Defaults.Run["working-directory"])
	for name, j := range map[string]ghJob{"staging": staging, "prod": prod} {
		down := j.Steps[j.index(t, "actions/download-artifact@")]
		assert.Equal(t, up.With["name"], down.With["name"], name)
		assert.Equal(t, up.With["path"], down.With["path"], name)
		assert.Less(t, j.index(t, "actions/download-artifact@"), j.index(t, "vmctl promote"), name)
	}

	// vmctl is installed at the version asked, with the configuration of that version.
	assert.Equal(t, "v1.4.0", wf.Env["VMCTL_VERSION"])
	for name, j := range wf.Jobs {
		install := j.Steps[j.index(t, "go install ")]
		assert.Contains(t, install.Run, "github.com/vmctl/vmctl/cmd/vmctl@\"$VMCTL_VERSION\"", name)
		assert.Less(t, j.index(t, "go install "), j.index(t, "vmctl "), name)
	}

	// Credentials: each account the job touches, by OIDC, into the profile its command uses.
	envs := map[string]*environment.Environment{}
	for _, n := range []string{"dev", "staging", "prod"} {
		e, err := environment.LoadNamed(shippedEnvs, n)
		require.NoError(t, err)
		envs[n] = e
	}
	for job, want := range map[string][]string{"ship": {"dev"}, "staging": {"dev", "staging"}, "prod": {"staging", "prod"}} {
		j := wf.Jobs[job]
		creds := j.credentials()
		require.Len(t, creds, len(want), job)
		for _, env := range want {
			c, ok := creds["vmctl-"+env]
			require.True(t, ok, "%s: no credentials for %s", job, env)
			assert.Equal(t, "${{ vars.VMCTL_"+strings.ToUpper(env)+"_ROLE_ARN }}", c.With["role-to-assume"], job)
			assert.Equal(t, envs[env].AWS.Region, c.With["aws-region"], job)
			assert.Equal(t, envs[env].AWS.AccountID, c.With["allowed-account-ids"], job)
			for _, key := range []string{"aws-access-key-id", "aws-secret-access-key", "aws-session-token"} {
				assert.NotContains(t, c.With, key, job)
			}
			assert.Less(t, j.index(t, c.Uses), j.index(t, "vmctl "), "%s: credentials before vmctl", job)
		}
	}
	// Single-environment commands run as that environment's profile.
	assert.Equal(t, "vmctl-dev", ship.Steps[ship.index(t, "vmctl ship")].Env["AWS_PROFILE"])
	assert.Equal(t, "vmctl-prod", prod.Steps[prod.index(t, "vmctl verify")].Env["AWS_PROFILE"])

	// No stored keys anywhere, and every vmctl step gates its job.
	text := string(data)
	for _, banned := range []string{"secrets.", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "aws-access-key-id", "aws-secret-access-key", "|| true", "continue-on-error"} {
		assert.NotContains(t, text, banned)
	}
	for name, j := range wf.Jobs {
		assert.Nil(t, j.Permissions, "%s widens no permission", name)
		assert.Empty(t, j.If, name)
		for _, s := range j.Steps {
			assert.Empty(t, s.If, "%s: %s", name, s.Name)
		}
	}

	// GitHub's own linter finds nothing.
	for _, e := range lint(t, path, data) {
		t.Errorf("actionlint: %s", e.Error())
	}
}

func TestActionlintCatchesABrokenWorkflow(t *testing.T) {
	// The lint above can fail: the same file with a job needing one that is not there.
	app := newAppRepo(t)
	code, _, errOut := run(t, nil, "--env-dir", shippedEnvs, "ci", "github", "--dir", app)
	require.Equal(t, ExitOK, code, errOut)
	path, data := writtenWorkflow(t, app)
	broken := strings.Replace(string(data), "needs: staging", "needs: stagin", 1)
	require.NotEqual(t, string(data), broken)
	assert.NotEmpty(t, lint(t, path, []byte(broken)))
}

func TestCIGitHubRoleARNFlag(t *testing.T) {
	app := newAppRepo(t)
	arn := "arn:aws:iam::333333333333:role/vmctl-release"
	code, out, errOut := run(t, nil, "--env-dir", shippedEnvs, "ci", "github", "--dir", app, "--role-arn", "prod="+arn, "-o", "json")
	require.Equal(t, ExitOK, code, errOut)
	var res ciResult
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	assert.Equal(t, []string{"VMCTL_DEV_ROLE_ARN", "VMCTL_STAGING_ROLE_ARN"}, res.Variables)
	assert.Equal(t, []string{"staging", "prod"}, res.Gates)
	assert.Equal(t, "created", res.State)

	_, data := writtenWorkflow(t, app)
	var wf ghWorkflow
	require.NoError(t, yaml.Unmarshal(data, &wf))
	assert.Equal(t, arn, wf.Jobs["prod"].credentials()["vmctl-prod"].With["role-to-assume"])
	assert.NotContains(t, string(data), "VMCTL_PROD_ROLE_ARN")
}

func TestCIGitHubNeverOverwritesSilently(t *testing.T) {
	app := newAppRepo(t)
	args := []string{"--env-dir", shippedEnvs, "ci", "github", "--dir", app}
	code, _, errOut := run(t, nil, args...)
	require.Equal(t, ExitOK, code, errOut)
	path, generated := writtenWorkflow(t, app)

	code, out, _ := run(t, nil, args...)
	require.Equal(t, ExitOK, code)
	assert.Contains(t, out, ": unchanged", "the same file again is no overwrite")

	edited := append([]byte("# edited by hand\n"), generated...)
	require.NoError(t, os.WriteFile(path, edited, 0o644))
	code, _, errOut = run(t, nil, args...)
	assert.Equal(t, ExitError, code)
	assert.Regexp(t, `^vmctl: ci github: .*vmctl\.yml exists .*nothing written; run again with --force .*\n$`, lastLine(errOut))
	_, now := writtenWorkflow(t, app)
	assert.Equal(t, edited, now, "refused means untouched")

	code, out, errOut = run(t, nil, append(args, "--force")...)
	require.Equal(t, ExitOK, code, errOut)
	assert.Contains(t, out, ": replaced")
	_, now = writtenWorkflow(t, app)
	assert.Equal(t, generated, now)
}

// lastLine is the error stream's last line, the error (a warning may come before it).
func lastLine(s string) string {
	lines := strings.SplitAfter(strings.TrimSuffix(s, "\n"), "\n")
	return strings.TrimSuffix(lines[len(lines)-1], "\n") + "\n"
}

func TestCIGitHubBadInput(t *testing.T) {
	noAuto := t.TempDir()
	for _, n := range []string{"dev", "staging", "prod"} {
		data, err := os.ReadFile(filepath.Join(shippedEnvs, n+".yaml"))
		require.NoError(t, err)
		data = []byte(strings.Replace(string(data), "auto: true", "auto: false", 1))
		require.NoError(t, os.WriteFile(filepath.Join(noAuto, n+".yaml"), data, 0o644))
	}
	notGit := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"missing directory", []string{"--dir", filepath.Join(notGit, "nope")}, ExitError, "is not a directory: name the app's repository with --dir"},
		{"no .git", []string{"--dir", notGit}, ExitError, "is not a git repository's root (no .git)"},
		{"unknown environment in --role-arn", []string{"--role-arn", "qa=arn:aws:iam::111111111111:role/r"}, ExitUsage, "qa is not an environment of the pipeline: name one of dev, staging, prod"},
		{"local is no stage", []string{"--role-arn", "local=arn:aws:iam::111111111111:role/r"}, ExitUsage, "local is not an environment of the pipeline"},
		{"role in another account", []string{"--role-arn", "prod=arn:aws:iam::111111111111:role/r"}, ExitUsage, "is in account 111111111111, but prod is account 333333333333"},
		{"not ENV=ARN", []string{"--role-arn", "arn:aws:iam::111111111111:role/r"}, ExitUsage, "want ENV=ARN"},
		{"same environment twice", []string{"--role-arn", "dev=arn:aws:iam::111111111111:role/a", "--role-arn", "dev=arn:aws:iam::111111111111:role/b"}, ExitUsage, "given twice"},
		{"no auto environment", []string{"--env-dir", noAuto}, ExitError, "no environment has deployment.auto: true"},
		{"no environments", []string{"--env-dir", filepath.Join(notGit, "none")}, ExitError, "name them with --env-dir"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := newAppRepo(t)
			args := append([]string{"--env-dir", shippedEnvs, "ci", "github", "--dir", app}, tc.args...)
			code, _, errOut := run(t, nil, args...)
			assert.Equal(t, tc.code, code)
			first := strings.SplitN(errOut, "\n", 2)[0]
			if strings.HasPrefix(first, "vmctl: warning:") {
				first = strings.SplitN(errOut, "\n", 3)[1]
			}
			assert.True(t, strings.HasPrefix(first, "vmctl: "), errOut)
			assert.Contains(t, first, tc.want)
			assert.NoFileExists(t, filepath.Join(app, ".github", "workflows", "vmctl.yml"))
		})
	}
}
