package pipeline

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/vmctl/vmctl/internal/environment"
)

// Where the workflow lives in the app's repository, and the names it uses.
const (
	WorkflowPath = ".github/workflows/vmctl.yml"
	ShipJob      = "ship"
	// ReleaseArtifact carries the release manifest from the ship job to the
	// promotions, so they promote the digests built and verified there.
	ReleaseArtifact = "vmctl-release"
	// ReleaseDir is vmctl's default --release-dir inside its checkout.
	ReleaseDir = "vmctl/.vmctl/releases"
	// Module is the vmctl module the jobs go-install.
	Module = "github.com/vmctl/vmctl"
	// DefaultConfigRepo holds compose/, environments/ and images/: what vmctl
	// reads besides the app's source.
	DefaultConfigRepo = "vmctl/vmctl"
)

// The actions the workflow uses. configure-aws-credentials writes named
// profiles (aws-profile) from v6.1.0 on; it is pinned by commit, as GitHub
// advises for actions that receive credentials.
const (
	actionCheckout     = "actions/checkout@v5"
	actionSetupGo      = "actions/setup-go@v6"
	actionUpload       = "actions/upload-artifact@v4"
	actionDownload     = "actions/download-artifact@v4"
	actionAWS          = "aws-actions/configure-aws-credentials@e6de054238d6b7531b4efff3b6587d9aade6a06c"
	actionAWSVersion   = "v6.2.3"
	jobTimeoutMinutes  = "60"
	concurrencyGroupID = "vmctl-release"
)

// GitHubOptions are the choices the environment files do not make.
type GitHubOptions struct {
	Branch     string            // pushes to it start a release
	Version    string            // vmctl's module version the jobs install
	ConfigRepo string            // owner/name of the repository with vmctl's environments
	ConfigRef  string            // its ref; empty: Version
	RoleARNs   map[string]string // env name → role ARN; the rest come from RoleVariable
}

// Workflow is a rendered GitHub Actions workflow and what it asks of the repository.
type Workflow struct {
	YAML      []byte
	Jobs      []Job    // in run order
	Variables []string // repository variables the file reads (role ARNs)
	Gates     []string // GitHub environments that need required reviewers
}

// Job is one job of the workflow, for a summary.
type Job struct {
	ID          string   `json:"id"`
	Environment string   `json:"environment,omitempty"` // the GitHub environment gating it
	Needs       string   `json:"needs,omitempty"`
	Commands    []string `json:"commands"` // the vmctl command lines, in order
}

// GitHub renders the pipeline as a GitHub Actions workflow.
func (p *Pipeline) GitHub(o GitHubOptions) (*Workflow, error) {
	if o.Branch == "" || o.Version == "" {
		return nil, fmt.Errorf("render workflow: branch and vmctl version are required")
	}
	if o.ConfigRepo == "" {
		o.ConfigRepo = DefaultConfigRepo
	}
	if o.ConfigRef == "" {
		o.ConfigRef = o.Version
	}
	for name, arn := range o.RoleARNs {
		e := p.Environment(name)
		if e == nil {
			return nil, fmt.Errorf("--role-arn %s: no environment %s in the pipeline", name, name)
		}
		if err := CheckRoleARN(e, arn); err != nil {
			return nil, err
		}
	}
	r := &renderer{o: o}
	wf := &Workflow{}
	jobs := jobsMapping()

	ship := r.job(ShipJob, "ship to "+p.Ship.Name, "", "", []*environment.Environment{p.Ship})
	j := Job{ID: ShipJob, Commands: []string{"vmctl ship", verifyCommand(p.Ship)}}
	ship.steps = append(ship.steps,
		step("vmctl ship: build the release, push it, deploy it to "+p.Ship.Name,
			"Builds once from this commit; every later job moves these digests, never rebuilds.",
			run(j.Commands[0], Profile(p.Ship))),
		step("vmctl verify "+p.Ship.Name, "", run(j.Commands[1], Profile(p.Ship))),
		step("Keep the release manifest for the promotions", "", mapping(
			"uses", str(actionUpload),
			"with", mapping(
				"name", str(ReleaseArtifact),
				"path", str(ReleaseDir),
				"include-hidden-files", boolean(true), // the store is under .vmctl
				"if-no-files-found", str("error"),
			))))
	jobs.add(ShipJob, ship.node())
	wf.Jobs = append(wf.Jobs, j)

	needs := ShipJob
	for _, pr := range p.Promotions {
		from, to := pr.From, pr.To
		id := to.Name
		j := Job{ID: id, Environment: to.Name, Needs: needs, Commands: []string{
			fmt.Sprintf("vmctl promote %s %s --from-profile %s --to-profile %s --yes --approve-prod", from.Name, to.Name, Profile(from), Profile(to)),
			verifyCommand(to),
		}}
		jb := r.job(id, fmt.Sprintf("promote %s to %s", from.Name, to.Name), to.Name, needs, []*environment.Environment{from, to})
		how := string(to.AWS.Deployment.Strategy)
		jb.steps = append(jb.steps,
			step("vmctl promote "+from.Name+" "+to.Name+" ("+how+")",
				fmt.Sprintf("This job starts once a reviewer of GitHub's %q environment approves: that is the\n"+
					"person's approval vmctl asks for, and --yes --approve-prod passes it on.\n"+
					"The images move by digest from account %s to %s and deploy %s.",
					to.Name, from.AWS.AccountID, to.AWS.AccountID, how),
				run(j.Commands[0], "")),
			step("vmctl verify "+to.Name, verifyComment(to), run(j.Commands[1], Profile(to))))
		jobs.add(id, jb.node())
		wf.Jobs = append(wf.Jobs, j)
		wf.Gates = append(wf.Gates, to.Name)
		needs = id
	}

	for _, e := range p.Environments() {
		if _, ok := o.RoleARNs[e.Name]; !ok {
			wf.Variables = append(wf.Variables, RoleVariable(e.Name))
		}
	}

	root := mapping(
		"name", str("vmctl release"),
		"on", mapping(
			"push", mapping("branches", seq(str(o.Branch))),
			"workflow_dispatch", &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle},
		),
		"permissions", mapping(
			"id-token", str("write"), // OIDC: each job assumes its roles, no stored keys
			"contents", str("read"),
		),
		"concurrency", mapping(
			"group", str(concurrencyGroupID),
			// A release in flight (or waiting for approval) finishes before the next
			// starts: a promotion reads what the previous environment runs.
			"cancel-in-progress", boolean(false),
		),
		"env", mapping(
			"VMCTL_VERSION", str(o.Version),
			"VMCTL_APP_SOURCE", str("${{ github.workspace }}/app"),
		),
		"defaults", mapping("run", mapping("working-directory", str("vmctl"))),
		"jobs", jobs.node,
	)
	root.HeadComment = r.header(p, wf)
	doc := &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{root}}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("render workflow: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("render workflow: %w", err)
	}
	wf.YAML = buf.Bytes()
	return wf, nil
}

func verifyCommand(e *environment.Environment) string {
	if e.Protected {
		return "vmctl verify --env " + e.Name + " --yes --approve-prod"
	}
	return "vmctl verify --env " + e.Name
}

func verifyComment(e *environment.Environment) string {
	if e.Protected {
		return "verify's CUDA probe starts a task: a write into a protected environment, approved above."
	}
	return ""
}

type renderer struct{ o GitHubOptions }

// header is the file's opening comment: where it came from and what the
// repository needs before the first run.
func (r *renderer) header(p *Pipeline, wf *Workflow) string {
	var b strings.Builder
	order := make([]string, 0, len(p.Promotions)+1)
	for _, e := range p.Environments() {
		order = append(order, e.Name)
	}
	fmt.Fprintf(&b, "Written by vmctl ci github from vmctl's environment files: the release pipeline of\n")
	fmt.Fprintf(&b, "seed §5.3, %s. Edit the environment files and run it again\n", strings.Join(order, " -> "))
	fmt.Fprintf(&b, "(with --force) rather than editing this file.\n\n")
	fmt.Fprintf(&b, "Before the first run:\n")
	for _, e := range p.Environments() {
		src := "repository variable " + RoleVariable(e.Name)
		if arn, ok := r.o.RoleARNs[e.Name]; ok {
			src = arn
		}
		fmt.Fprintf(&b, "- %s: an IAM role in account %s that trusts GitHub's OIDC provider\n  (token.actions.githubusercontent.com) for this repository: %s\n", e.Name, e.AWS.AccountID, src)
	}
	if len(wf.Gates) > 0 {
		fmt.Fprintf(&b, "- GitHub environments %s, each with required reviewers: they are the\n  approval gates. A job in an environment presents the OIDC subject\n  repo:OWNER/REPO:environment:NAME, also to the role of the environment it promotes from.\n", strings.Join(wf.Gates, ", "))
	}
	fmt.Fprintf(&b, "- vmctl's configuration (compose/, environments/, images/) comes from %s@%s.", r.o.ConfigRepo, r.o.ConfigRef)
	return b.String()
}

type jobBuilder struct {
	id, name, environment, needs string
	steps                        []*yaml.Node
}

// job starts a job with the steps every job shares: both checkouts, Go,
// vmctl, the release manifest (after ship) and each account's credentials.
func (r *renderer) job(id, name, env, needs string, accounts []*environment.Environment) *jobBuilder {
	j := &jobBuilder{id: id, name: name, environment: env, needs: needs}
	j.steps = append(j.steps,
		step("Check out the app", "", mapping("uses", str(actionCheckout), "with", mapping(
			"path", str("app"),
			"persist-credentials", boolean(false)))),
		step("Check out vmctl's configuration", "", mapping("uses", str(actionCheckout), "with", mapping(
			"repository", str(r.o.ConfigRepo),
			"ref", str(r.o.ConfigRef),
			"path", str("vmctl"),
			"persist-credentials", boolean(false)))),
		step("Set up Go", "", mapping("uses", str(actionSetupGo), "with", mapping(
			"go-version", str("stable"),
			"cache", boolean(false)))),
		step("Install vmctl", "", mapping("run", str("go install "+Module+"/cmd/vmctl@\"$VMCTL_VERSION\""))),
	)
	if id != ShipJob {
		j.steps = append(j.steps, step("Fetch the release manifest from the ship job", "", mapping(
			"uses", str(actionDownload),
			"with", mapping("name", str(ReleaseArtifact), "path", str(ReleaseDir)))))
	}
	for _, e := range accounts {
		role := "${{ vars." + RoleVariable(e.Name) + " }}"
		if arn, ok := r.o.RoleARNs[e.Name]; ok {
			role = arn
		}
		uses := str(actionAWS)
		uses.LineComment = actionAWSVersion
		j.steps = append(j.steps, step(
			fmt.Sprintf("AWS credentials for %s (account %s, OIDC)", e.Name, e.AWS.AccountID), "",
			mapping("uses", uses, "with", mapping(
				"role-to-assume", str(role),
				"aws-region", str(e.AWS.Region),
				"aws-profile", str(Profile(e)), // one profile per account, no environment variables
				"allowed-account-ids", str(e.AWS.AccountID),
				"role-session-name", str("vmctl-"+id+"-${{ github.run_id }}"),
			))))
	}
	return j
}

func (j *jobBuilder) node() *yaml.Node {
	m := mapping("name", str(j.name))
	if j.needs != "" {
		m.Content = append(m.Content, str("needs"), str(j.needs))
	}
	if j.environment != "" {
		m.Content = append(m.Content, str("environment"), str(j.environment))
	}
	m.Content = append(m.Content,
		str("runs-on"), str("ubuntu-latest"),
		str("timeout-minutes"), &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: jobTimeoutMinutes},
		str("steps"), seq(j.steps...))
	return m
}

// run is a step running one vmctl command line as profile (none: the
// command names its profiles itself). A failing command fails the job.
func run(cmd, profile string) *yaml.Node {
	m := mapping()
	if profile != "" {
		m.Content = append(m.Content, str("env"), mapping("AWS_PROFILE", str(profile)))
	}
	m.Content = append(m.Content, str("run"), str(cmd))
	return m
}

// step names body. A comment goes above its run or uses key, next to what it
// explains (yaml.v3 drops comments on a sequence item itself).
func step(name, comment string, body *yaml.Node) *yaml.Node {
	for i := 0; i < len(body.Content); i += 2 {
		if k := body.Content[i]; k.Value == "run" || k.Value == "uses" {
			k.HeadComment = comment
		}
	}
	body.Content = append([]*yaml.Node{str("name"), str(name)}, body.Content...)
	return body
}

type mapNode struct{ node *yaml.Node }

func (m mapNode) add(k string, v *yaml.Node) { m.node.Content = append(m.node.Content, str(k), v) }

// mapping builds a block mapping from key, value pairs, in order.
func mapping(kv ...any) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	for i := 0; i+1 < len(kv); i += 2 {
		n.Content = append(n.Content, str(kv[i].(string)), kv[i+1].(*yaml.Node))
	}
	return n
}

func jobsMapping() mapNode { return mapNode{mapping()} }

func seq(items ...*yaml.Node) *yaml.Node {
	return &yaml.Node{Kind: yaml.SequenceNode, Content: slices.Clone(items)}
}

// str is always a string: the encoder quotes what YAML would read otherwise
// (an account id as a number, say).
func str(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

func boolean(b bool) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: fmt.Sprint(b)}
}
