package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/vmctl/vmctl/internal/progress"
	"github.com/vmctl/vmctl/internal/rollout"
)

type deployOptions struct {
	env             string
	release         string
	approval        approvalFlags
	allowVulnerable string
	output          string
	detach          bool
	poll            time.Duration // between looks at the rollout; tests shorten it
}

func newDeployCmd(f *Factory, g *globalOptions) *cobra.Command {
	o := &deployOptions{}
	cmd := &cobra.Command{
		Use:   "deploy --env E [--release R] [--yes] [--approve-prod]",
		Short: "Deploy a pushed release to an AWS environment and watch it roll out",
		Long: `Refuses credentials of another account than the environment's, shows what the release
changes against what runs (task definitions to register, services to create or update), asks
for approval where the environment requires it, then registers task definitions pinned by
digest, creates or updates the services and their scaling level by level, and prints each
service's events as they arrive until ECS reports the rollout done.

Deploying the release that runs already registers nothing and changes nothing. A failed
rollout is rolled back by the ECS circuit breaker and exits non-zero. Ctrl-C stops watching,
not the deployment. --detach returns as soon as ECS has accepted every service's deployment
(for CI jobs that follow it elsewhere, with vmctl status --env E --wait).

A protected environment (protected: true in its file: prod, and staging as shipped) always
needs explicit approval: --yes --approve-prod, or its name typed on a terminal; its images
must have a finished ECR scan without CRITICAL findings, unless --allow-vulnerable gives a
reason, which is recorded. Other environments with approval_required need --yes or a y on a
terminal. If what runs changes between the preview and the approval, nothing is written and
the new preview is shown.`,
		Example: `  vmctl deploy --env dev
  vmctl deploy --env staging --release r42 --yes
  vmctl deploy --env prod --release r42 --yes --approve-prod`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDeploy(cmd.Context(), f, g, o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.env, "env", "", "AWS environment (dev, staging, prod)")
	fl.StringVar(&o.release, "release", "", "release id (default: the newest)")
	o.approval.register(fl)
	fl.StringVar(&o.allowVulnerable, "allow-vulnerable", "", "into a protected environment, deploy despite a missing, failed or CRITICAL scan, for this recorded reason")
	fl.StringVarP(&o.output, "output", "o", "table", "table or json")
	fl.BoolVar(&o.detach, "detach", false, "return once ECS has accepted the deployment, without watching it (follow it with vmctl status --env E --wait)")
	_ = cmd.MarkFlagRequired("env")
	return cmd
}

func runDeploy(ctx context.Context, f *Factory, g *globalOptions, o *deployOptions) error {
	format, err := parseOutput(o.output)
	if err != nil {
		return err
	}
	rel, err := pickRelease(g, o.release)
	if err != nil {
		return err
	}
	t, err := cloudTarget(ctx, f, g, o.env, *rel)
	if err != nil {
		return err
	}
	env, id, c, plan := t.env, t.id, t.clients, t.plan
	if plan.Unpinned {
		return fmt.Errorf("deploy %s to %s: the release has no digest for some images, and vmctl deploys by digest only: push it first (vmctl push --env %s --release %s)", rel.ID, env.Name, env.Name, rel.ID)
	}
	changes, err := rollout.Changes(ctx, c, plan)
	if err != nil {
		return fmt.Errorf("deploy %s to %s: %w", rel.ID, env.Name, err)
	}
	fmt.Fprintf(f.IO.ErrOut, "deploy release %s to %s (account %s as %s, %s):\n", rel.ID, env.Name, id.Account, id.ARN, plan.Strategy)
	var override *scanOverride
	if printChanges(f.IO.ErrOut, changes) {
		action := fmt.Sprintf("deploy release %s to %s", rel.ID, env.Name)
		if override, err = gateScans(ctx, f, c, env, id, plan, rel, o.allowVulnerable, action); err != nil {
			return err
		}
		if err := f.approval(o.approval).Require(env, action); err != nil {
			return err
		}
		if err := override.begin(g); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(f.IO.ErrOut, "%s runs release %s already: nothing to change\n", env.Name, rel.ID)
	}
	pw, events, err := rolloutOutput(f, g)
	if err != nil {
		return err
	}
	// Approved: the write stops if what runs is no longer what the preview showed.
	res, err := rollout.Deploy(ctx, c, rollout.Options{Plan: plan, Release: rel, Progress: pw, Events: events, Poll: o.poll, Approved: changes, Detach: o.detach})
	pw.Close()
	if err := previewChanged(f, err, fmt.Sprintf("deploy release %s to %s", rel.ID, env.Name)); err != nil {
		return err
	}
	if rerr := override.record(ctx, c, plan); rerr != nil {
		err = errors.Join(err, rerr)
	}
	if err == nil && res != nil && res.Detached && !res.Unchanged {
		fmt.Fprintf(f.IO.ErrOut, "ECS accepted the deployment of %s to %s; follow it with: vmctl status --env %s --wait\n", rel.ID, env.Name, env.Name)
	}
	return finishRollout(f, format, res, err)
}

// finishRollout prints a deploy's or rollback's result, says what still rolls out when
// watching stopped, and passes the error on for the exit code.
func finishRollout(f *Factory, format outputFormat, res *rollout.Result, err error) error {
	var sr *rollout.StillRolling
	if errors.As(err, &sr) {
		fmt.Fprintln(f.IO.ErrOut, sr.Error())
	}
	if res != nil && len(res.Services) > 0 {
		var perr error
		if format == outputJSON {
			perr = writeJSON(f.IO.Out, res)
		} else {
			perr = printRollout(f.IO, res)
		}
		if err == nil {
			err = perr
		}
	}
	return err
}

func printRollout(ios *IOStreams, res *rollout.Result) error {
	t := newTable(ios.Out, ios.OutIsTerminal, "SERVICE", "TASK DEFINITION", "NEW REVISION", "ROLLOUT", "ROLLED BACK TO")
	for _, s := range res.Services {
		registered := "no"
		if s.Registered {
			registered = "yes"
		}
		t.add(s.Service, dash(taskDefName(s.TaskDefinition)), registered, dash(s.Rollout), dash(taskDefName(s.RolledBackTo)))
	}
	return t.flush()
}

// printChanges shows what a deploy changes, one line per service, and says whether
// anything does.
func printChanges(w io.Writer, changes []rollout.Change) bool {
	width := 0
	for _, ch := range changes {
		width = max(width, len(ch.Service))
	}
	changed := false
	for _, ch := range changes {
		var parts []string
		switch ch.Action {
		case "unchanged":
			parts = append(parts, "unchanged")
		case "create":
			changed = true
			parts = append(parts, "create", "at "+shortDigest(ch.ToDigest))
		default:
			changed = true
			parts = append(parts, "update")
			if ch.FromRelease != ch.ToRelease {
				parts = append(parts, dash(ch.FromRelease)+" → "+ch.ToRelease)
			}
			if ch.FromDigest != ch.ToDigest {
				parts = append(parts, shortDigest(ch.FromDigest)+" → "+shortDigest(ch.ToDigest))
			}
			if len(ch.Settings) > 0 {
				parts = append(parts, "settings: "+strings.Join(ch.Settings, ", "))
			}
		}
		switch {
		case ch.Action != "unchanged" && ch.Register:
			parts = append(parts, "(registers a new task definition revision)")
		case ch.Action != "unchanged" && ch.TaskDefinition != "":
			parts = append(parts, "(runs "+taskDefName(ch.TaskDefinition)+", registered before)")
		}
		fmt.Fprintf(w, "  %-*s  %s\n", width, ch.Service, strings.Join(parts, "  "))
	}
	return changed
}

func shortDigest(d string) string {
	if d == "" {
		return "-"
	}
	if h, ok := strings.CutPrefix(d, "sha256:"); ok {
		return "sha256:" + h[:min(len(h), 12)]
	}
	return d
}

// taskDefName is family:revision from a task definition ARN.
func taskDefName(arn string) string {
	if _, after, ok := strings.Cut(arn, ":task-definition/"); ok {
		return after
	}
	return arn
}

// previewChanged shows the new preview when a write stopped because what runs changed
// after the approval, and returns the refusal; any other error is left to the caller.
func previewChanged(f *Factory, err error, action string) error {
	var pc *rollout.PreviewChanged
	if !errors.As(err, &pc) {
		return nil
	}
	fmt.Fprintf(f.IO.ErrOut, "what runs in %s changed since the preview; now it would change:\n", pc.Environment)
	printChanges(f.IO.ErrOut, pc.Now)
	return fmt.Errorf("%s: %w", action, err)
}

// interactive: a person can answer, on a terminal. A reader that is not a file (a test's)
// counts as the terminal that ErrIsTerminal says there is.
func interactive(ios *IOStreams) bool {
	if ios.In == nil || !ios.ErrIsTerminal {
		return false
	}
	if fd, ok := ios.In.(*os.File); ok {
		return term.IsTerminal(int(fd.Fd()))
	}
	return true
}

// rolloutOutput picks the progress writer and where service events go. ECS events are the
// main view of a rollout, so they print as lines; a live terminal view would redraw over
// them, so plain lines stand in for it. With JSON progress the events travel as progress
// events instead, so every line parses.
func rolloutOutput(f *Factory, g *globalOptions) (progress.Writer, io.Writer, error) {
	mode, err := progress.ParseMode(g.progress)
	if err != nil {
		return nil, nil, usageError{err}
	}
	switch mode {
	case progress.ModeJSON:
		return progress.NewWith(mode, f.IO.ErrOut, g.progressOptions(f)), nil, nil
	case progress.ModeQuiet:
		return progress.Discard{}, io.Discard, nil
	}
	return progress.New(progress.ModePlain, f.IO.ErrOut, false, nil), f.IO.ErrOut, nil
}
