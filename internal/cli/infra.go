package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/spf13/cobra"

	vmaws "github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/infra"
	"github.com/vmctl/vmctl/internal/release"
)

// infraOptions are the flags of the infra subcommands; each reads the ones it registers.
type infraOptions struct {
	env          string
	all          bool
	output       string
	live         bool
	approval     approvalFlags
	allowReplace []string
	driftTimeout time.Duration
}

func newInfraCmd(f *Factory, g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "infra",
		Short: "The environment's foundation (network, load balancer, cluster, data stores, alarms) as CloudFormation",
		Long: `Each AWS environment's foundation is one CloudFormation stack, vmctl-<env>, rendered from
its environment file: VPC and subnets, security groups, load balancer with TLS and WAF, the
ECS cluster and GPU capacity, RDS, ElastiCache, EFS, the video bucket and CDN, KMS, roles,
log groups, alarms, budget and dev auto-stop. CloudFormation creates, updates, rolls back and
deletes it; vmctl renders, previews, applies and watches. The stack's outputs give every other
command the ids the environment file leaves out.`,
		Example: `  vmctl infra template --env staging > staging.json
  vmctl infra plan --env staging --live
  vmctl infra apply --env staging --yes --approve-prod
  vmctl infra status --all`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error { return c.Help() },
	}
	cmd.AddCommand(newInfraTemplateCmd(f, g), newInfraPlanCmd(f, g), newInfraApplyCmd(f, g), newInfraStatusCmd(f, g), newInfraDestroyCmd(f, g))
	return cmd
}

func newInfraTemplateCmd(f *Factory, g *globalOptions) *cobra.Command {
	o := &infraOptions{}
	cmd := &cobra.Command{
		Use:   "template --env E",
		Short: "Print the environment's CloudFormation template (JSON); no AWS call",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, body, err := renderFoundation(cmd.Context(), f, g, o.env)
			if err != nil {
				return err
			}
			_, err = f.IO.Out.Write(append(body, '\n'))
			return err
		},
	}
	cmd.Flags().StringVarP(&o.env, "env", "e", "", "AWS environment (a file in --env-dir)")
	_ = cmd.MarkFlagRequired("env")
	return cmd
}

// renderFoundation loads an AWS environment and the stack, renders the deploy plan
// offline (ids the file leaves out are placeholders) and from both the foundation's
// template, as JSON. No AWS call.
func renderFoundation(ctx context.Context, f *Factory, g *globalOptions, name string) (*environment.Environment, []byte, error) {
	env, err := environment.LoadNamed(g.envDir, name)
	if err != nil {
		return nil, nil, err
	}
	if env.Kind != environment.KindAWS {
		return nil, nil, usageError{fmt.Errorf("environment %s is %s, not an AWS environment: it has no foundation stack", name, env.Kind)}
	}
	return renderEnv(ctx, f, g, env)
}

func renderEnv(ctx context.Context, f *Factory, g *globalOptions, env *environment.Environment) (*environment.Environment, []byte, error) {
	st, err := loadRenderStack(ctx, f, g)
	if err != nil {
		return nil, nil, err
	}
	plan, err := ecs.Render(st, infra.Offline(env), release.Release{})
	if err != nil {
		return nil, nil, err
	}
	tpl, err := infra.Render(env, plan)
	if err != nil {
		return nil, nil, err
	}
	body, err := infra.TemplateJSON(tpl)
	if err != nil {
		return nil, nil, err
	}
	return env, body, nil
}

func newInfraPlanCmd(f *Factory, g *globalOptions) *cobra.Command {
	o := &infraOptions{}
	cmd := &cobra.Command{
		Use:   "plan --env E [--live]",
		Short: "Summarise the foundation stack; with --live, preview its change set against AWS",
		Long: `Without --live, plan reads only the files and says what the stack holds: resources by
type and the settings that matter (CIDRs, ports, sizes, thresholds, what keeps the data).

With --live, it checks the credentials are the environment's account, asks CloudFormation for
a change set against the live stack and lists it as add / modify / replace / remove, stateful
resources flagged; the change set is deleted afterwards. For a stack that does not exist yet
every resource is an add, and nothing is created. --live is a flag, not the default, so that
plan stays a read of the files that needs no credentials, as vmctl plan does.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInfraPlan(cmd.Context(), f, g, o)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&o.env, "env", "e", "", "AWS environment (a file in --env-dir)")
	fl.BoolVar(&o.live, "live", false, "compare with the live stack through a CloudFormation change set (needs credentials)")
	fl.StringVarP(&o.output, "output", "o", "table", "table or json")
	_ = cmd.MarkFlagRequired("env")
	return cmd
}

func runInfraPlan(ctx context.Context, f *Factory, g *globalOptions, o *infraOptions) error {
	format, err := parseOutput(o.output)
	if err != nil {
		return err
	}
	if !o.live {
		env, body, err := renderFoundation(ctx, f, g, o.env)
		if err != nil {
			return err
		}
		sum, err := infra.Summarize(body)
		if err != nil {
			return err
		}
		if format == outputJSON {
			return writeJSON(f.IO.Out, struct {
				Env   string `json:"environment"`
				Stack string `json:"stack"`
				*infra.Summary
			}{env.Name, infra.StackName(env.Name), sum})
		}
		return printSummary(f.IO, env, sum)
	}
	env, id, cfg, err := awsTarget(ctx, f, g, o.env)
	if err != nil {
		return err
	}
	_, body, err := renderEnv(ctx, f, g, env)
	if err != nil {
		return err
	}
	fmt.Fprintf(f.IO.ErrOut, "comparing with stack %s (account %s as %s)\n", infra.StackName(env.Name), id.Account, id.ARN)
	cs, err := infra.CreateChangeSet(ctx, cfnClient(cfg), env.Name, changeSetOptions(cfg, env, body))
	if err != nil {
		return err
	}
	// A preview is never executed.
	if err := cs.Delete(ctx, cfnClient(cfg)); err != nil {
		return err
	}
	if format == outputJSON {
		return writeJSON(f.IO.Out, cs)
	}
	return printChangeSet(f.IO.Out, f.IO.OutIsTerminal, cs)
}

// cfnClient is the CloudFormation client of one environment's configuration.
func cfnClient(cfg sdkaws.Config) vmaws.CloudFormation { return cloudformation.NewFromConfig(cfg) }

// changeSetOptions send the template with the stack's tags, staging it in the account's
// template bucket when it is too large to send inline.
func changeSetOptions(cfg sdkaws.Config, env *environment.Environment, body []byte) infra.ChangeSetOptions {
	bucket := s3.NewFromConfig(cfg, func(o *s3.Options) {
		// An endpoint override is a local emulator (moto, LocalStack): they serve buckets by path.
		o.UsePathStyle = cfg.BaseEndpoint != nil
	})
	return infra.ChangeSetOptions{Template: body, Tags: stackTags(env), Stage: infra.S3Stager(bucket, env.AWS.AccountID, env.AWS.Region)}
}

// stackTags go on the stack, and through CloudFormation on what it creates.
func stackTags(env *environment.Environment) map[string]string {
	return map[string]string{"vmctl:environment": env.Name, "vmctl:managed-by": "vmctl infra"}
}

func printSummary(ios *IOStreams, env *environment.Environment, s *infra.Summary) error {
	w := ios.Out
	fmt.Fprintf(w, "Foundation of %s: stack %s in account %s, %s: %d resources\n", env.Name, infra.StackName(env.Name), env.AWS.AccountID, env.AWS.Region, s.Resources)
	fmt.Fprintln(w, "\nResources by type")
	t := newTable(w, ios.OutIsTerminal, "TYPE", "COUNT")
	for _, typ := range slices.Sorted(maps.Keys(s.ByType)) {
		t.add(typ, strconv.Itoa(s.ByType[typ]))
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nSettings")
	t = newTable(w, ios.OutIsTerminal, "RESOURCE", "TYPE", "SETTINGS", "ON DELETE")
	for _, it := range s.Items {
		keep := dash(it.DeletionPolicy)
		if it.Stateful {
			keep += " (stateful)"
		}
		t.add(it.LogicalID, it.Type, dash(it.Settings), keep)
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nStateful resources (%s) are never replaced or removed without --allow-replace.\nCompare with the live stack: vmctl infra plan --env %s --live\n", strings.Join(infra.Stateful, ", "), env.Name)
	return nil
}

// printChangeSet lists a change set, replacements and removals first.
func printChangeSet(w io.Writer, terminal bool, cs *infra.ChangeSet) error {
	if cs.Empty() {
		fmt.Fprintf(w, "No changes: stack %s already matches environment %s.\n", cs.Stack, cs.Env)
		return nil
	}
	if cs.Create {
		// A new stack is all adds: by type says more than 100 lines of them.
		if cs.ReplacesFailed != "" {
			fmt.Fprintf(w, "Stack %s holds nothing (a failed creation, or a change set never executed): applying deletes it and creates %d resources\n", cs.Stack, len(cs.Changes))
		} else {
			fmt.Fprintf(w, "Stack %s does not exist yet: applying creates %d resources\n", cs.Stack, len(cs.Changes))
		}
		byType := map[string]int{}
		for _, c := range cs.Changes {
			byType[c.Type]++
		}
		t := newTable(w, terminal, "TYPE", "COUNT")
		for _, typ := range slices.Sorted(maps.Keys(byType)) {
			t.add(typ, strconv.Itoa(byType[typ]))
		}
		return t.flush()
	}
	n := cs.Count()
	fmt.Fprintf(w, "Stack %s would change: %d to add, %d to modify, %d to replace, %d to remove\n", cs.Stack, n[infra.ActionAdd], n[infra.ActionModify], n[infra.ActionReplace], n[infra.ActionRemove])
	t := newTable(w, terminal, "ACTION", "RESOURCE", "TYPE", "DETAIL")
	for _, c := range cs.Changes {
		action := string(c.Action)
		if c.Action == infra.ActionReplace && c.Replacement == "Conditional" {
			action = "replace?"
		}
		var detail []string
		if c.Stateful && (c.Action == infra.ActionReplace || c.Action == infra.ActionRemove) {
			detail = append(detail, "STATEFUL: holds data")
		}
		if len(c.Properties) > 0 {
			detail = append(detail, strings.Join(c.Properties, ","))
		}
		if c.Policy != "" {
			detail = append(detail, "old one: "+c.Policy)
		}
		t.add(action, c.LogicalID, c.Type, dash(strings.Join(detail, "; ")))
	}
	return t.flush()
}

func newInfraApplyCmd(f *Factory, g *globalOptions) *cobra.Command {
	o := &infraOptions{}
	cmd := &cobra.Command{
		Use:   "apply --env E [--yes] [--approve-prod] [--allow-replace ID]",
		Short: "Create or update the environment's foundation stack through a CloudFormation change set",
		Long: `apply checks the credentials belong to the environment's account, renders the template,
and previews it: a change set against the stack (or, for a stack that does not exist yet, the
list of what it will create). An environment already as its file says changes nothing and
says so. A change that would replace or remove a stateful resource (the database, the file
system, the video bucket, their key) is refused, and the change set deleted, unless
--allow-replace names it. Approval follows deploy's rules: a protected environment always
needs --yes --approve-prod or its name typed on a terminal.

The stack's events are shown while CloudFormation works (a live view on a terminal, plain
lines when piped, JSON with --progress json). On failure the first resource that failed is
named with CloudFormation's reason, and the stack rolls back. Ctrl-C stops watching, not the
update: follow it with vmctl infra status.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInfraApply(cmd.Context(), f, g, o)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&o.env, "env", "e", "", "AWS environment (a file in --env-dir)")
	fl.StringVarP(&o.output, "output", "o", "table", "table or json (the stack's outputs when done)")
	fl.StringArrayVar(&o.allowReplace, "allow-replace", nil, "let the change replace or remove this stateful resource (repeatable): "+strings.Join(infra.Stateful, ", "))
	o.approval.register(fl)
	_ = cmd.MarkFlagRequired("env")
	return cmd
}

func runInfraApply(ctx context.Context, f *Factory, g *globalOptions, o *infraOptions) error {
	format, err := parseOutput(o.output)
	if err != nil {
		return err
	}
	// The flag is checked against the file before any credentials are used.
	var shifted []string
	if file, err := environment.LoadNamed(g.envDir, o.env); err == nil {
		shifted = infra.ShiftedRules(file)
	}
	for _, id := range o.allowReplace {
		if !infra.IsStateful(id) && !slices.Contains(shifted, id) {
			allowed := strings.Join(append(slices.Clone(infra.Stateful), shifted...), ", ")
			return usageError{fmt.Errorf("--allow-replace %s: not a stateful resource or a blue/green production rule: name one of %s", id, allowed)}
		}
	}
	env, id, cfg, err := awsTarget(ctx, f, g, o.env)
	if err != nil {
		return err
	}
	_, body, err := renderEnv(ctx, f, g, env)
	if err != nil {
		return err
	}
	ap := f.approval(o.approval)
	action := fmt.Sprintf("apply the foundation stack %s to %s", infra.StackName(env.Name), env.Name)
	// With nobody to ask, the flags decide: refuse before anything is created.
	if ap.Prompt == nil {
		if err := ap.Require(env, action); err != nil {
			return err
		}
	}
	cfn := cfnClient(cfg)
	fmt.Fprintf(f.IO.ErrOut, "applying stack %s to %s (account %s as %s)\n", infra.StackName(env.Name), env.Name, id.Account, id.ARN)
	cs, err := infra.CreateChangeSet(ctx, cfn, env.Name, changeSetOptions(cfg, env, body))
	if err != nil {
		return err
	}
	if cs.Empty() {
		fmt.Fprintf(f.IO.ErrOut, "environment %s is unchanged: stack %s already matches its file\n", env.Name, cs.Stack)
		if format == outputJSON {
			return writeJSON(f.IO.Out, applyResult{Env: env.Name, Stack: cs.Stack})
		}
		return nil
	}
	if err := printChangeSet(f.IO.ErrOut, false, cs); err != nil {
		return cs.Abandon(ctx, cfn, err)
	}
	if err := cs.RefuseStateful(o.allowReplace); err != nil {
		return cs.Abandon(ctx, cfn, err)
	}
	if err := cs.RefuseRuleReset(shifted, o.allowReplace); err != nil {
		return cs.Abandon(ctx, cfn, err)
	}
	if ap.Prompt != nil {
		if err := ap.Require(env, action); err != nil {
			return cs.Abandon(ctx, cfn, err)
		}
	}
	pw, err := g.progressWriter(f)
	if err != nil {
		return cs.Abandon(ctx, cfn, err)
	}
	res, err := infra.Execute(ctx, cfn, cs, infra.WatchOptions{Progress: pw})
	pw.Close()
	if err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintf(f.IO.ErrOut, "stopped watching; CloudFormation carries on with stack %s: follow it with vmctl infra status --env %s\n", cs.Stack, env.Name)
		}
		return err
	}
	fmt.Fprintf(f.IO.ErrOut, "stack %s is %s: %d changes applied to %s\n", res.Stack, res.Status, len(cs.Changes), env.Name)
	if format == outputJSON {
		return writeJSON(f.IO.Out, applyResult{Env: env.Name, Stack: res.Stack, Changed: true, Status: res.Status, Changes: cs.Changes, Outputs: res.Outputs})
	}
	return printOutputs(f.IO, res.Outputs)
}

// applyResult is apply's JSON: what changed and the outputs now.
type applyResult struct {
	Env     string            `json:"environment"`
	Stack   string            `json:"stack"`
	Changed bool              `json:"changed"`
	Status  string            `json:"status,omitempty"`
	Changes []infra.Change    `json:"changes,omitempty"`
	Outputs map[string]string `json:"outputs,omitempty"`
}

func printOutputs(ios *IOStreams, outputs map[string]string) error {
	t := newTable(ios.Out, ios.OutIsTerminal, "OUTPUT", "VALUE")
	for _, k := range slices.Sorted(maps.Keys(outputs)) {
		t.add(k, outputs[k])
	}
	return t.flush()
}

func newInfraStatusCmd(f *Factory, g *globalOptions) *cobra.Command {
	o := &infraOptions{}
	cmd := &cobra.Command{
		Use:   "status --env E | --all",
		Short: "Show the foundation stack's status, drift and outputs",
		Long: `status reads the environment's foundation stack: its status and what it means (with the
command that recovers a failed one), when it last changed, whether its resources drifted from
the template (CloudFormation's drift detection, bounded by --drift-timeout; some resource types
cannot be checked, and then it says so), and its outputs. --all shows every AWS environment,
without drift unless --drift-timeout is given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.all == (o.env != "") {
				return usageError{errors.New("name one environment with --env, or all with --all")}
			}
			if o.all && !cmd.Flags().Changed("drift-timeout") {
				o.driftTimeout = 0
			}
			return runInfraStatus(cmd.Context(), f, g, o)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&o.env, "env", "e", "", "AWS environment (a file in --env-dir)")
	fl.BoolVar(&o.all, "all", false, "every AWS environment in --env-dir")
	fl.DurationVar(&o.driftTimeout, "drift-timeout", 30*time.Second, "how long drift detection may take (0: skip it)")
	fl.StringVarP(&o.output, "output", "o", "table", "table or json")
	return cmd
}

func runInfraStatus(ctx context.Context, f *Factory, g *globalOptions, o *infraOptions) error {
	format, err := parseOutput(o.output)
	if err != nil {
		return err
	}
	names := []string{o.env}
	if o.all {
		if names, err = awsEnvironments(g.envDir); err != nil {
			return err
		}
	}
	var states []*infra.State
	var failed []error
	for _, name := range names {
		st, err := infraState(ctx, f, g, name, o.driftTimeout)
		if err != nil {
			if !o.all {
				return err
			}
			// One environment's credentials failing does not hide the others.
			failed = append(failed, err)
			st = &infra.State{Env: name, Stack: infra.StackName(name), Meaning: "could not be read", Next: oneLine(err)}
		}
		states = append(states, st)
	}
	if format == outputJSON {
		var err error
		if o.all {
			err = writeJSON(f.IO.Out, states)
		} else {
			err = writeJSON(f.IO.Out, states[0])
		}
		if err != nil {
			return err
		}
	} else if o.all {
		t := newTable(f.IO.Out, f.IO.OutIsTerminal, "ENVIRONMENT", "STACK", "STATUS", "UPDATED", "DRIFT", "NEXT")
		for _, s := range states {
			t.add(s.Env, s.Stack, dash(s.Status), updated(s.LastUpdated), drift(s.Drift), dash(s.Next))
		}
		if err := t.flush(); err != nil {
			return err
		}
	} else if err := printState(f.IO, states[0]); err != nil {
		return err
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d environments could not be read: %w", len(failed), len(names), errors.Join(failed...))
	}
	return nil
}

// awsEnvironments lists the AWS environments in dir.
func awsEnvironments(dir string) ([]string, error) {
	all, err := environment.Names(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, n := range all {
		env, err := environment.LoadNamed(dir, n)
		if err != nil {
			return nil, err
		}
		if env.Kind == environment.KindAWS {
			names = append(names, n)
		}
	}
	return names, nil
}

func infraState(ctx context.Context, f *Factory, g *globalOptions, name string, driftTimeout time.Duration) (*infra.State, error) {
	env, _, cfg, err := awsTarget(ctx, f, g, name)
	if err != nil {
		return nil, err
	}
	return infra.Status(ctx, cfnClient(cfg), env.Name, infra.StatusOptions{DriftTimeout: driftTimeout})
}

func updated(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func drift(d *infra.Drift) string {
	switch {
	case d == nil:
		return "-"
	case d.Status == "DRIFTED":
		return fmt.Sprintf("DRIFTED (%d resources)", d.Drifted)
	}
	return d.Status
}

func printState(ios *IOStreams, s *infra.State) error {
	w := ios.Out
	if !s.Exists {
		fmt.Fprintf(w, "Stack %s does not exist: environment %s has no foundation.\nNext: %s\n", s.Stack, s.Env, s.Next)
		return nil
	}
	fmt.Fprintf(w, "Stack %s: %s (%s)\n", s.Stack, s.Status, s.Meaning)
	if s.Reason != "" {
		fmt.Fprintf(w, "Reason: %s\n", s.Reason)
	}
	fmt.Fprintf(w, "Last updated: %s\n", updated(s.LastUpdated))
	if d := s.Drift; d != nil {
		line := drift(d)
		if d.Detail != "" {
			line += ": " + d.Detail
		}
		fmt.Fprintf(w, "Drift: %s\n", line)
	}
	if s.Next != "" {
		fmt.Fprintf(w, "Next: %s\n", s.Next)
	}
	if len(s.Outputs) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	return printOutputs(ios, s.Outputs)
}

func newInfraDestroyCmd(f *Factory, g *globalOptions) *cobra.Command {
	o := &infraOptions{}
	cmd := &cobra.Command{
		Use:   "destroy --env E [--yes]",
		Short: "Delete an unprotected environment's foundation stack (dev); the data is kept",
		Long: `destroy deletes the environment's foundation stack and waits until CloudFormation is done.
A protected environment (prod, staging) is never destroyed by vmctl. The environment's name
must be typed to confirm, or --yes given. The resources whose DeletionPolicy keeps them (the
database's final snapshot, the file system, the video bucket, the key, the audit log) stay,
and are listed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInfraDestroy(cmd.Context(), f, g, o)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&o.env, "env", "e", "", "AWS environment (a file in --env-dir)")
	fl.BoolVarP(&o.approval.yes, "yes", "y", false, "do not ask for the environment's name")
	fl.StringVarP(&o.output, "output", "o", "table", "table or json")
	_ = cmd.MarkFlagRequired("env")
	return cmd
}

func runInfraDestroy(ctx context.Context, f *Factory, g *globalOptions, o *infraOptions) error {
	format, err := parseOutput(o.output)
	if err != nil {
		return err
	}
	// Refused from the file alone, before any credential is touched.
	env, err := environment.LoadNamed(g.envDir, o.env)
	if err != nil {
		return err
	}
	if env.Protected {
		return fmt.Errorf("destroy %s: refused: %s is protected, and vmctl never destroys a protected environment's foundation; nothing was changed", infra.StackName(env.Name), env.Name)
	}
	env, id, cfg, err := awsTarget(ctx, f, g, o.env)
	if err != nil {
		return err
	}
	if !o.approval.yes {
		ap := f.approval(approvalFlags{})
		if ap.Prompt == nil {
			return fmt.Errorf("destroy %s: not confirmed: pass --yes, or run it on a terminal and type %q; nothing was changed", infra.StackName(env.Name), env.Name)
		}
		answer, err := ap.Prompt.Ask(fmt.Sprintf("Destroy the foundation of %s (stack %s in account %s)? Everything in it goes but the data its policies keep. Type %q to confirm: ", env.Name, infra.StackName(env.Name), id.Account, env.Name))
		if err != nil || strings.TrimSpace(answer) != env.Name {
			return fmt.Errorf("destroy %s: not confirmed: the answer was not %q; nothing was changed", infra.StackName(env.Name), env.Name)
		}
	}
	pw, err := g.progressWriter(f)
	if err != nil {
		return err
	}
	res, err := infra.Destroy(ctx, cfnClient(cfg), env.Name, infra.WatchOptions{Progress: pw})
	pw.Close()
	if err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintf(f.IO.ErrOut, "stopped watching; CloudFormation carries on deleting stack %s: follow it with vmctl infra status --env %s\n", infra.StackName(env.Name), env.Name)
		}
		return err
	}
	if format == outputJSON {
		return writeJSON(f.IO.Out, res)
	}
	if res.Status == "" {
		fmt.Fprintf(f.IO.ErrOut, "stack %s does not exist: nothing to destroy in %s\n", res.Stack, env.Name)
		return nil
	}
	fmt.Fprintf(f.IO.ErrOut, "stack %s is deleted\n", res.Stack)
	if len(res.Retained) > 0 {
		fmt.Fprintf(f.IO.ErrOut, "kept, as their DeletionPolicy says (delete them by hand when the data may go):\n")
		t := newTable(f.IO.Out, f.IO.OutIsTerminal, "RESOURCE", "TYPE", "ID", "POLICY")
		for _, r := range res.Retained {
			t.add(r.LogicalID, r.Type, dash(r.PhysicalID), r.Policy)
		}
		return t.flush()
	}
	return nil
}
