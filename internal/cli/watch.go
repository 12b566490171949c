package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmctl/vmctl/internal/stack"
	"github.com/vmctl/vmctl/internal/watch"
)

type watchOptions struct {
	services    []string
	waitTimeout time.Duration
}

func newWatchCmd(f *Factory, g *globalOptions) *cobra.Command {
	o := &watchOptions{}
	cmd := &cobra.Command{
		Use:   "watch [SERVICE...]",
		Short: "Apply file changes to the running stack as compose's develop.watch rules say",
		Long: `watch follows the paths in the services' develop.watch rules and applies each
burst of changes: sync copies the files into the container, sync+restart
then restarts it, rebuild builds the image and recreates that service only.
Services that are not running are started first, as up would. Ctrl-C stops
watching and leaves the stack up.`,
		Example: `  vmctl watch                    # every service with develop.watch rules
  vmctl watch backend            # backend's rules only
  vmctl up --watch               # up, then watch`,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.services = args
			return runWatch(cmd.Context(), f, g, o)
		},
	}
	cmd.Flags().DurationVar(&o.waitTimeout, "wait-timeout", 3*time.Minute, "how long to wait for a rebuilt service to become healthy")
	return cmd
}

// watchRules compiles the rules before anything runs, so a bad rule fails
// fast.
func watchRules(st *stack.Stack, services []string) ([]watch.Rule, error) {
	rules, err := watch.Rules(st, services)
	if err != nil {
		return nil, fmt.Errorf("cannot watch: %w", err)
	}
	return rules, nil
}

func runWatch(ctx context.Context, f *Factory, g *globalOptions, o *watchOptions) error {
	st, err := f.loadStack(ctx, g)
	if err != nil {
		return err
	}
	rules, err := watchRules(st, o.services)
	if err != nil {
		return err
	}
	eng, err := f.Engine(ctx)
	if err != nil {
		return err
	}
	rows, err := eng.PS(ctx, st)
	if err != nil {
		return err
	}
	running := map[string]bool{}
	for _, r := range rows {
		running[r.Service] = r.State == "running"
	}
	var stopped []string
	for _, s := range watch.Services(rules) {
		if !running[s] {
			stopped = append(stopped, s)
		}
	}
	if len(stopped) > 0 {
		fmt.Fprintf(f.IO.ErrOut, "%s not running: starting it first\n", strings.Join(stopped, ", "))
		up := &upOptions{services: watch.Services(rules), gpu: "auto", waitTimeout: o.waitTimeout, output: "table"}
		if err := runUp(ctx, f, g, up); err != nil {
			return err
		}
	}
	return watchStack(ctx, f, st, rules, o)
}

// runUpWatch is `up --watch`: the rules are checked first, then up, then
// watch over the services up brought up that declare rules.
func runUpWatch(ctx context.Context, f *Factory, g *globalOptions, o *upOptions) error {
	st, err := f.loadStack(ctx, g)
	if err != nil {
		return err
	}
	names, err := st.Select(o.services)
	if err != nil {
		return err
	}
	var watched []string
	for _, n := range names {
		if svc := st.Project.Services[n]; svc.Develop != nil && len(svc.Develop.Watch) > 0 {
			watched = append(watched, n)
		}
	}
	if len(watched) == 0 {
		return usageError{errors.New("--watch: no selected service declares develop.watch rules: add some, or drop --watch")}
	}
	rules, err := watchRules(st, watched)
	if err != nil {
		return err
	}
	if err := runUp(ctx, f, g, o); err != nil {
		return err
	}
	return watchStack(ctx, f, st, rules, &watchOptions{waitTimeout: o.waitTimeout})
}

func watchStack(ctx context.Context, f *Factory, st *stack.Stack, rules []watch.Rule, o *watchOptions) error {
	api, err := f.Docker(ctx)
	if err != nil {
		return err
	}
	eng, err := f.Engine(ctx)
	if err != nil {
		return err
	}
	ready := func() {
		fmt.Fprintf(f.IO.ErrOut, "watching %s (%d %s); Ctrl-C stops watching and leaves the stack up\n",
			strings.Join(watch.Services(rules), ", "), len(rules), map[bool]string{true: "rule", false: "rules"}[len(rules) == 1])
	}
	err = watch.Run(ctx, st, api, eng, rules, watch.Options{WaitTimeout: o.waitTimeout, Out: f.IO.Out, Ready: ready})
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(f.IO.ErrOut, "stopped watching; the stack is still up (vmctl down stops it)")
	}
	return err
}
