package cli

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmctl/vmctl/internal/release"
	"github.com/vmctl/vmctl/internal/rollout"
)

type rollbackOptions struct {
	env             string
	to              string
	approval        approvalFlags
	allowVulnerable string
	output          string
	poll            time.Duration
}

func newRollbackCmd(f *Factory, g *globalOptions) *cobra.Command {
	o := &rollbackOptions{}
	cmd := &cobra.Command{
		Use:   "rollback --env E [--to R] [--yes]",
		Short: "Put an AWS environment back on an earlier release",
		Long: `Without --to, goes back to the release before the one running, as ECS recorded it: each
service returns to the newest earlier task definition revision of another release, as it is.
With --to R, deploys release R like vmctl deploy does (a revision that ran R is reused, not
registered again); R must be a release the environment ran, as its task definition history
shows. The rollout is watched as a deploy's is.

Approval is a deploy's: a protected environment always needs --yes --approve-prod or its
name typed on a terminal, and its scan gate applies (--allow-vulnerable, recorded).`,
		Example: `  vmctl rollback --env staging
  vmctl rollback --env prod --to r41 --yes --approve-prod`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRollback(cmd.Context(), f, g, o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.env, "env", "", "AWS environment (dev, staging, prod)")
	fl.StringVar(&o.to, "to", "", "release id to go back to (default: the one before the running one)")
	o.approval.register(fl)
	fl.StringVar(&o.allowVulnerable, "allow-vulnerable", "", "into a protected environment, roll back despite a missing, failed or CRITICAL scan, for this recorded reason")
	fl.StringVarP(&o.output, "output", "o", "table", "table or json")
	_ = cmd.MarkFlagRequired("env")
	return cmd
}

func runRollback(ctx context.Context, f *Factory, g *globalOptions, o *rollbackOptions) error {
	format, err := parseOutput(o.output)
	if err != nil {
		return err
	}
	rel := &release.Release{}
	if o.to != "" {
		if rel, err = releaseStore(g).Get(o.to); err != nil {
			return err
		}
	}
	tg, err := cloudTarget(ctx, f, g, o.env, *rel)
	if err != nil {
		return err
	}
	env, id, c, plan := tg.env, tg.id, tg.clients, tg.plan
	w := f.IO.ErrOut
	ap := f.approval(o.approval)
	var override *scanOverride
	// What was approved: the rollback stops, writing nothing, if it no longer holds.
	var approved []rollout.Change
	var target *rollout.RollbackTarget
	if o.to != "" {
		if plan.Unpinned {
			return fmt.Errorf("roll %s back to %s: the release has no digest for some images: push it first (vmctl push --env %s --release %s)", env.Name, o.to, env.Name, o.to)
		}
		// Only a release that ran here is a way back; anything else is a deploy.
		if err := rollout.CheckRanBefore(ctx, c, plan, o.to); err != nil {
			return err
		}
		changes, err := rollout.Changes(ctx, c, plan)
		if err != nil {
			return fmt.Errorf("roll %s back to %s: %w", env.Name, o.to, err)
		}
		fmt.Fprintf(w, "roll %s back to release %s (account %s as %s):\n", env.Name, o.to, id.Account, id.ARN)
		if !printChanges(w, changes) {
			fmt.Fprintf(w, "%s runs release %s already: nothing to change\n", env.Name, o.to)
		}
		action := fmt.Sprintf("roll %s back to release %s", env.Name, o.to)
		if override, err = gateScans(ctx, f, c, env, id, plan, rel, o.allowVulnerable, action); err != nil {
			return err
		}
		if err := ap.Require(env, action); err != nil {
			return err
		}
		approved = changes
	} else {
		t, err := rollout.PreviousRelease(ctx, c, plan)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "roll %s back from release %s to %s (account %s as %s):\n", env.Name, t.From, t.Release, id.Account, id.ARN)
		for _, svc := range slices.Sorted(maps.Keys(t.TaskDefinitions)) {
			fmt.Fprintf(w, "  %s → %s\n", svc, taskDefName(t.TaskDefinitions[svc]))
		}
		action := fmt.Sprintf("roll %s back from release %s to %s", env.Name, t.From, t.Release)
		if env.Protected {
			target, err := rollout.TargetRelease(ctx, c, t)
			if err != nil {
				return err
			}
			if override, err = gateScans(ctx, f, c, env, id, plan, target, o.allowVulnerable, action); err != nil {
				return err
			}
		}
		if err := ap.Require(env, action); err != nil {
			return err
		}
		target = t
	}
	if err := override.begin(g); err != nil {
		return err
	}
	pw, events, err := rolloutOutput(f, g)
	if err != nil {
		return err
	}
	res, err := rollout.Rollback(ctx, c, rollout.RollbackOptions{Plan: plan, To: o.to, Progress: pw, Events: events, Poll: o.poll, Approved: approved, ApprovedTarget: target})
	pw.Close()
	if err := previewChanged(f, err, fmt.Sprintf("roll %s back to %s", env.Name, o.to)); err != nil {
		return err
	}
	if rerr := override.record(ctx, c, plan); rerr != nil {
		err = errors.Join(err, rerr)
	}
	return finishRollout(f, format, res, err)
}
