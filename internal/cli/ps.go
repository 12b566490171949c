package cli

import (
	"context"

	"github.com/vmctl/vmctl/internal/engine"

	"github.com/spf13/cobra"
)

type psOptions struct {
	output string
}

func newPsCmd(f *Factory, g *globalOptions) *cobra.Command {
	o := &psOptions{}
	cmd := &cobra.Command{
		Use:   "ps",
		Short: "List the stack's containers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPs(cmd.Context(), f, g, o)
		},
	}
	cmd.Flags().StringVarP(&o.output, "output", "o", "table", "table or json")
	return cmd
}

func runPs(ctx context.Context, f *Factory, g *globalOptions, o *psOptions) error {
	format, err := parseOutput(o.output)
	if err != nil {
		return err
	}
	st, err := f.loadStack(ctx, g)
	if err != nil {
		return err
	}
	eng, err := f.Engine(ctx)
	if err != nil {
		return err
	}
	rows, err := eng.PSObserved(ctx, st, engine.LoadObservations(engine.ObservationsPath(f.stateDir(), st.Name())))
	if err != nil {
		return err
	}
	if format == outputJSON {
		return writeJSON(f.IO.Out, rows)
	}
	t := newTable(f.IO.Out, f.IO.OutIsTerminal, "SERVICE", "CONTAINER", "STATE", "HEALTH", "GPU", "PORTS")
	for _, r := range rows {
		t.add(r.Service, r.Container, r.State, dash(r.Health), dash(r.GPU), dash(r.Ports))
	}
	return t.flush()
}
