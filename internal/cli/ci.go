package cli

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/pipeline"
)

type ciGitHubOptions struct {
	dir        string
	force      bool
	roleARNs   []string
	branch     string
	version    string
	configRepo string
	configRef  string
	output     string
}

func newCICmd(f *Factory, g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ci",
		Short: "Write the release pipeline (seed §5.3) into a CI system's configuration",
		Args:  cobra.NoArgs,
		RunE:  func(c *cobra.Command, _ []string) error { return c.Help() },
	}
	cmd.AddCommand(newCIGitHubCmd(f, g))
	return cmd
}

func newCIGitHubCmd(f *Factory, g *globalOptions) *cobra.Command {
	o := &ciGitHubOptions{}
	cmd := &cobra.Command{
		Use:   "github [--dir APP_REPO] [--force] [--role-arn ENV=ARN]...",
		Short: "Write the release pipeline as a GitHub Actions workflow into the app's repository",
		Long: `Writes ` + pipeline.WorkflowPath + ` into the app's repository (--dir, default the
current directory), generated from the environment files (--env-dir):

  ship      on every push to --branch: vmctl ship builds a release from that commit,
            pushes it and deploys it to the environment with deployment.auto (dev),
            then vmctl verify; the release manifest is kept for the next jobs
  staging   after ship, behind GitHub's "staging" environment and its reviewers:
            vmctl promote dev staging (the same digests), then vmctl verify
  prod      after staging, behind GitHub's "prod" environment: vmctl promote
            staging prod (blue/green, as prod.yaml says), then vmctl verify

Each job takes AWS credentials by OIDC role assumption, one named profile per
account; no access key is stored anywhere. A role's ARN comes from the repository
variable VMCTL_<ENV>_ROLE_ARN, or from --role-arn ENV=ARN (checked against the
environment's account). Releases never run side by side (one concurrency group),
and every vmctl step fails its job when vmctl exits non-zero.

Each job checks out the app (app/) and, beside it, vmctl's own configuration
(compose/, environments/, images/) from --config-repo at --config-ref (vmctl/), and
installs vmctl at --vmctl-version. The release manifest travels between jobs as an
artifact, so the promotions move the digests the ship job built.

An existing workflow that differs is not replaced unless --force is given.`,
		Example: `  vmctl ci github --dir ../video-message-app
  vmctl ci github --role-arn prod=arn:aws:iam::333333333333:role/vmctl-release --force`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCIGitHub(f, g, o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.dir, "dir", ".", "the app's repository (its root, with .git)")
	fl.BoolVar(&o.force, "force", false, "replace an existing workflow that differs")
	fl.StringArrayVar(&o.roleARNs, "role-arn", nil, "ENV=ARN: the role to assume in ENV's account (repeatable; default: the variable VMCTL_<ENV>_ROLE_ARN)")
	fl.StringVar(&o.branch, "branch", "main", "the branch whose pushes start a release")
	fl.StringVar(&o.version, "vmctl-version", "", "vmctl version the jobs install (default: this vmctl's release, else main)")
	fl.StringVar(&o.configRepo, "config-repo", pipeline.DefaultConfigRepo, "GitHub repository (OWNER/NAME) with vmctl's compose/, environments/ and images/")
	fl.StringVar(&o.configRef, "config-ref", "", "its branch, tag or commit (default: the vmctl version)")
	fl.StringVarP(&o.output, "output", "o", "table", "table or json")
	return cmd
}

// ciResult is what vmctl ci github wrote, for -o json.
type ciResult struct {
	Path       string         `json:"path"`
	State      string         `json:"state"` // created, replaced or unchanged
	Version    string         `json:"vmctl_version"`
	ConfigRepo string         `json:"config_repo"`
	ConfigRef  string         `json:"config_ref"`
	Jobs       []pipeline.Job `json:"jobs"`
	Variables  []string       `json:"variables"` // repository variables to set
	Gates      []string       `json:"gates"`     // GitHub environments to protect with reviewers
}

var (
	releaseVersion = regexp.MustCompile(`^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$`)
	githubRepo     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+$`)
)

func runCIGitHub(f *Factory, g *globalOptions, o *ciGitHubOptions) error {
	format, err := parseOutput(o.output)
	if err != nil {
		return err
	}
	roles, err := parseRoleARNs(o.roleARNs)
	if err != nil {
		return err
	}
	if !githubRepo.MatchString(o.configRepo) {
		return usageError{fmt.Errorf("--config-repo %q: want a GitHub repository as OWNER/NAME", o.configRepo)}
	}
	dir, err := appRepository(o.dir)
	if err != nil {
		return err
	}
	p, err := loadPipeline(g.envDir)
	if err != nil {
		return err
	}
	for name, arn := range roles {
		if p.Environment(name) == nil {
			var have []string
			for _, e := range p.Environments() {
				have = append(have, e.Name)
			}
			return usageError{fmt.Errorf("--role-arn %s=%s: %s is not an environment of the pipeline: name one of %s", name, arn, name, strings.Join(have, ", "))}
		}
		if err := pipeline.CheckRoleARN(p.Environment(name), arn); err != nil {
			return usageError{fmt.Errorf("--role-arn: %w", err)}
		}
	}
	version := o.version
	if version == "" {
		version = Version
		if !releaseVersion.MatchString(version) {
			version = "main"
			fmt.Fprintf(f.IO.ErrOut, "vmctl: warning: this vmctl is a development build (%s): the workflow installs vmctl@main; pin a release with --vmctl-version\n", Version)
		}
	}
	wf, err := p.GitHub(pipeline.GitHubOptions{
		Branch: o.branch, Version: version, ConfigRepo: o.configRepo, ConfigRef: o.configRef, RoleARNs: roles,
	})
	if err != nil {
		return err
	}
	path := filepath.Join(dir, filepath.FromSlash(pipeline.WorkflowPath))
	state, err := writeWorkflow(path, wf.YAML, o.force)
	if err != nil {
		return err
	}
	res := ciResult{Path: path, State: state, Version: version, ConfigRepo: o.configRepo, ConfigRef: cmp.Or(o.configRef, version),
		Jobs: wf.Jobs, Variables: wf.Variables, Gates: wf.Gates}
	if format == outputJSON {
		return writeJSON(f.IO.Out, res)
	}
	return printCI(f, res)
}

// parseRoleARNs reads --role-arn ENV=ARN flags; which ENV exists is checked
// once the environments are loaded.
func parseRoleARNs(flags []string) (map[string]string, error) {
	roles := map[string]string{}
	for _, s := range flags {
		name, arn, ok := strings.Cut(s, "=")
		if !ok || name == "" || arn == "" {
			return nil, usageError{fmt.Errorf("--role-arn %q: want ENV=ARN, e.g. dev=arn:aws:iam::111111111111:role/vmctl-release", s)}
		}
		if _, dup := roles[name]; dup {
			return nil, usageError{fmt.Errorf("--role-arn %s given twice: give one role per environment", name)}
		}
		roles[name] = arn
	}
	return roles, nil
}

// appRepository is dir's absolute path, once it is known to be a git
// repository's root: the workflow only runs from there.
func appRepository(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("ci github: %w", err)
	}
	fi, err := os.Stat(abs)
	if err != nil || !fi.IsDir() {
		return "", fmt.Errorf("ci github: %s is not a directory: name the app's repository with --dir", abs)
	}
	// .git is a directory, or a file in a worktree or submodule.
	if _, err := os.Stat(filepath.Join(abs, ".git")); err != nil {
		return "", fmt.Errorf("ci github: %s is not a git repository's root (no .git): name the app's repository with --dir", abs)
	}
	return abs, nil
}

func loadPipeline(envDir string) (*pipeline.Pipeline, error) {
	names, err := environment.Names(envDir)
	if err != nil {
		return nil, fmt.Errorf("ci github: %w: run it where vmctl's environments are, or name them with --env-dir", err)
	}
	var envs []*environment.Environment
	for _, n := range names {
		e, err := environment.LoadNamed(envDir, n)
		if err != nil {
			return nil, err
		}
		envs = append(envs, e)
	}
	p, err := pipeline.New(envs)
	if err != nil {
		return nil, fmt.Errorf("ci github: %w", err)
	}
	return p, nil
}

// writeWorkflow writes data to path unless a different file is there and
// force is off; it says whether the file was created, replaced or unchanged.
func writeWorkflow(path string, data []byte, force bool) (string, error) {
	old, err := os.ReadFile(path)
	switch {
	case err == nil && bytes.Equal(old, data):
		return "unchanged", nil
	case err == nil && !force:
		return "", fmt.Errorf("ci github: %s exists and differs from the pipeline the environment files describe: nothing written; run again with --force to replace it", path)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("ci github: %w", err)
	}
	state := "created"
	if err == nil {
		state = "replaced"
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("ci github: %w", err)
	}
	// Written beside it and renamed, so a failure leaves no half workflow.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".vmctl.yml.*")
	if err != nil {
		return "", fmt.Errorf("ci github: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return "", fmt.Errorf("ci github: write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return "", fmt.Errorf("ci github: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("ci github: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("ci github: %w", err)
	}
	return state, nil
}

func printCI(f *Factory, res ciResult) error {
	w := f.IO.Out
	fmt.Fprintf(w, "%s: %s (vmctl %s, configuration %s@%s)\n", res.Path, res.State, res.Version, res.ConfigRepo, res.ConfigRef)
	t := newTable(w, f.IO.OutIsTerminal, "JOB", "GATE", "NEEDS", "RUNS")
	for _, j := range res.Jobs {
		for i, c := range j.Commands {
			if i == 0 {
				t.add(j.ID, dash(j.Environment), dash(j.Needs), c)
			} else {
				t.add("", "", "", c)
			}
		}
	}
	if err := t.flush(); err != nil {
		return err
	}
	if len(res.Variables) > 0 {
		fmt.Fprintf(w, "Set the repository variables %s to each account's OIDC role ARN.\n", strings.Join(res.Variables, ", "))
	}
	if len(res.Gates) > 0 {
		fmt.Fprintf(w, "Create the GitHub environments %s with required reviewers: they are the approvals.\n", strings.Join(res.Gates, ", "))
	}
	return nil
}
