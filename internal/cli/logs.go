package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vmctl/vmctl/internal/engine"
	"github.com/vmctl/vmctl/internal/release"
	"github.com/vmctl/vmctl/internal/status"
)

type logsOptions struct {
	services   []string
	follow     bool
	tail       string
	timestamps bool
	env        string
}

func newLogsCmd(f *Factory, g *globalOptions) *cobra.Command {
	o := &logsOptions{}
	cmd := &cobra.Command{
		Use:   "logs [SERVICE...] | logs --env E SERVICE",
		Short: "Show the output of the stack's containers, or of a service in AWS",
		Long: `Without --env, the output of the stack's containers on this Docker Engine.
With --env, one service's lines from the environment's CloudWatch Logs group, every task
of it, oldest first (--tail, --timestamps and --no-color apply to local logs only).`,
		Example: `  vmctl logs -f backend
  vmctl logs --env staging backend -f`,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.services = args
			if o.env != "" {
				return runCloudLogs(cmd.Context(), f, g, o)
			}
			return runLogs(cmd.Context(), f, g, o)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&o.follow, "follow", "f", false, "follow the output")
	fl.StringVarP(&o.tail, "tail", "n", "all", "lines from the end of each log, or all")
	fl.BoolVarP(&o.timestamps, "timestamps", "t", false, "show timestamps")
	fl.StringVar(&o.env, "env", "", "read SERVICE's CloudWatch Logs in this AWS environment")
	return cmd
}

func runLogs(ctx context.Context, f *Factory, g *globalOptions, o *logsOptions) error {
	st, err := f.loadStack(ctx, g)
	if err != nil {
		return err
	}
	eng, err := f.Engine(ctx)
	if err != nil {
		return err
	}
	err = eng.Logs(ctx, st, f.IO.Out, engine.LogsOptions{
		Services:   o.services,
		Follow:     o.follow,
		Tail:       o.tail,
		Timestamps: o.timestamps,
		Color:      f.IO.OutIsTerminal && g.color(f),
		Terminal:   f.IO.OutIsTerminal,
	})
	if o.follow && ctx.Err() != nil {
		return nil // Ctrl-C ends a follow; that is not an error
	}
	return err
}

func runCloudLogs(ctx context.Context, f *Factory, g *globalOptions, o *logsOptions) error {
	if len(o.services) != 1 {
		return usageError{fmt.Errorf("logs --env %s takes one SERVICE, not %d", o.env, len(o.services))}
	}
	t, err := cloudTarget(ctx, f, g, o.env, release.Release{})
	if err != nil {
		return err
	}
	return status.FollowLogs(ctx, t.clients, t.plan, o.services[0], f.IO.Out, status.LogsOptions{Follow: o.follow, Terminal: f.IO.OutIsTerminal})
}
