package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/infra"
	"github.com/vmctl/vmctl/internal/stack"
)

type diffOptions struct {
	releases []string
	output   string
}

func newDiffCmd(f *Factory, g *globalOptions) *cobra.Command {
	o := &diffOptions{}
	cmd := &cobra.Command{
		Use:   "diff A B",
		Short: "Compare two environments service by service: declared differences and drift",
		Long: `diff compares what two environments run (local, dev, staging, prod): per service the
image, command, ports, environment variable names (never values), health check, volumes,
resources and GPU. Each difference is declared (an environment file asks for it) or drift
(nothing does). It exits 0 without drift and 3 with drift, so CI can gate on it.`,
		Example: `  vmctl diff local prod
  vmctl diff staging prod --release r41.json --release r42.json   # staging on r41, prod on r42`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDiff(cmd.Context(), f, g, args[0], args[1], o)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&o.releases, "release", nil, "release manifest for the AWS sides: once for both, or twice (A's, then B's)")
	fl.StringVarP(&o.output, "output", "o", "table", "table or json")
	return cmd
}

func runDiff(ctx context.Context, f *Factory, g *globalOptions, a, b string, o *diffOptions) error {
	format, err := parseOutput(o.output)
	if err != nil {
		return err
	}
	if len(o.releases) > 2 {
		return usageError{fmt.Errorf("--release given %d times: give it once for both sides, or twice (A's, then B's)", len(o.releases))}
	}
	st, err := loadRenderStack(ctx, f, g)
	if err != nil {
		return err
	}
	var views [2]ecs.View
	for i, name := range []string{a, b} {
		rel := ""
		switch len(o.releases) {
		case 1:
			rel = o.releases[0]
		case 2:
			rel = o.releases[i]
		}
		if views[i], err = view(st, g.envDir, name, rel, len(o.releases) == 2); err != nil {
			return err
		}
	}
	rep := ecs.Compare(views[0], views[1])
	if format == outputJSON {
		err = writeJSON(f.IO.Out, rep)
	} else {
		err = printReport(f.IO, rep)
	}
	if err != nil {
		return err
	}
	if rep.Drift > 0 {
		return &exitError{code: ExitNotReady, err: fmt.Errorf("drift between %s and %s: %d difference(s) that no environment file declares", a, b, rep.Drift)}
	}
	return nil
}

// view is one side of the report. "local" works without a local.yaml: it is then the stack
// alone. A release given for this side alone cannot apply to a local one, which runs what it
// built.
func view(st *stack.Stack, dir, name, relPath string, perSide bool) (ecs.View, error) {
	env, err := environment.LoadNamed(dir, name)
	switch {
	case errors.Is(err, environment.ErrUnknownEnvironment) && name == "local":
		env = nil
	case err != nil:
		return ecs.View{}, err
	}
	if env == nil || env.Kind == environment.KindLocal {
		if perSide && relPath != "" {
			return ecs.View{}, usageError{fmt.Errorf("--release for %s: a local environment runs the images it built; give --release once, for the AWS side", name)}
		}
		return ecs.LocalView(st, env), nil
	}
	rel, err := loadRelease(relPath)
	if err != nil {
		return ecs.View{}, err
	}
	// Declared, offline: ids left to the foundation compare as {vmctl-ENV:Output}.
	plan, err := ecs.Render(st, infra.Offline(env), rel)
	if err != nil {
		return ecs.View{}, err
	}
	return ecs.AWSView(st, plan, env), nil
}

func printReport(ios *IOStreams, rep ecs.Report) error {
	w := ios.Out
	if len(rep.Differences) == 0 {
		fmt.Fprintf(w, "%s and %s run the same stack the same way\n", rep.A, rep.B)
		return nil
	}
	t := newTable(w, ios.OutIsTerminal, "SERVICE", "FIELD", strings.ToUpper(rep.A), strings.ToUpper(rep.B), "CLASS")
	for _, d := range rep.Differences {
		t.add(d.Service, d.Field, d.A, d.B, string(d.Class))
	}
	if err := t.flush(); err != nil {
		return err
	}
	drift := "no drift"
	if rep.Drift > 0 {
		drift = fmt.Sprintf("%d drift", rep.Drift)
	}
	fmt.Fprintf(w, "\n%s; %d declared difference(s)\n", drift, rep.Declared)
	return nil
}
