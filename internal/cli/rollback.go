package cli

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmctl/vmctl/internal/deploy"
	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/release"
)

type rollbackOptions struct {
	env    string
	to     string
	yes    bool
	output string
	poll   time.Duration
}

func newRollbackCmd(f *Factory, g *globalOptions) *cobra.Command {
	o := &rollbackOptions{}
	cmd := &cobra.Command{
		Use:   "rollback --env E [--to R] [--yes]",
		Short: "Put an AWS environment back on an earlier release",
		Long: `Without --to, goes back to the release before the one running, as ECS recorded it: each
service returns to the newest earlier task definition revision of another release, as it is.
With --to R, deploys release R like vmctl deploy does (a revision that ran R is reused, not
registered again). The rollout is watched as a deploy's is. Environments that require
approval for deploys require it here too: --yes, or a confirmation on a terminal.`,
		Example: `  vmctl rollback --env staging
  vmctl rollback --env prod --to r41 --yes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRollback(cmd.Context(), f, g, o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.env, "env", "", "AWS environment (dev, staging, prod)")
	fl.StringVar(&o.to, "to", "", "release id to go back to (default: the one before the running one)")
	fl.BoolVarP(&o.yes, "yes", "y", false, "approve without asking (CI)")
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
	env, id, cfg, err := awsTarget(ctx, f, g, o.env)
	if err != nil {
		return err
	}
	st, err := loadRenderStack(ctx, f, g)
	if err != nil {
		return err
	}
	plan, err := ecs.Render(st, env, *rel)
	if err != nil {
		return err
	}
	c := deploy.NewClients(cfg)
	w := f.IO.ErrOut
	var action string
	if o.to != "" {
		if plan.Unpinned {
			return fmt.Errorf("roll %s back to %s: the release has no digest for some images: push it first (vmctl push --env %s --release %s)", env.Name, o.to, env.Name, o.to)
		}
		changes, err := deploy.Changes(ctx, c, plan)
		if err != nil {
			return fmt.Errorf("roll %s back to %s: %w", env.Name, o.to, err)
		}
		fmt.Fprintf(w, "roll %s back to release %s (account %s as %s):\n", env.Name, o.to, id.Account, id.ARN)
		if !printChanges(w, changes) {
			fmt.Fprintf(w, "%s runs release %s already: nothing to change\n", env.Name, o.to)
		}
		action = fmt.Sprintf("Roll %s back to release %s", env.Name, o.to)
	} else {
		t, err := deploy.PreviousRelease(ctx, c, plan)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "roll %s back from release %s to %s (account %s as %s):\n", env.Name, t.From, t.Release, id.Account, id.ARN)
		for _, svc := range slices.Sorted(maps.Keys(t.TaskDefinitions)) {
			fmt.Fprintf(w, "  %s → %s\n", svc, taskDefName(t.TaskDefinitions[svc]))
		}
		action = fmt.Sprintf("Roll %s back from release %s to %s", env.Name, t.From, t.Release)
	}
	// Going back is approved like going forward, but once: the release ran there before.
	if err := approve(f.IO, env, plan, o.yes, true, action); err != nil {
		return err
	}
	pw, events, err := rolloutOutput(f, g)
	if err != nil {
		return err
	}
	res, err := deploy.Rollback(ctx, c, deploy.RollbackOptions{Plan: plan, To: o.to, Progress: pw, Events: events, Poll: o.poll})
	pw.Close()
	return finishRollout(f, format, res, err)
}
