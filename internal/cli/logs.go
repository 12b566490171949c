package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/vmctl/vmctl/internal/engine"
)

type logsOptions struct {
	services   []string
	follow     bool
	tail       string
	timestamps bool
	noColor    bool
}

func newLogsCmd(f *Factory, g *globalOptions) *cobra.Command {
	o := &logsOptions{}
	cmd := &cobra.Command{
		Use:   "logs [SERVICE...]",
		Short: "Show the output of the stack's containers",
		RunE: func(cmd *cobra.Command, args []string) error {
			o.services = args
			return runLogs(cmd.Context(), f, g, o)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&o.follow, "follow", "f", false, "follow the output")
	fl.StringVarP(&o.tail, "tail", "n", "all", "lines from the end of each log, or all")
	fl.BoolVarP(&o.timestamps, "timestamps", "t", false, "show timestamps")
	fl.BoolVar(&o.noColor, "no-color", false, "no colours in the prefixes")
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
		Color:      f.IO.OutIsTerminal && !o.noColor,
	})
	if o.follow && ctx.Err() != nil {
		return nil // Ctrl-C ends a follow; that is not an error
	}
	return err
}
