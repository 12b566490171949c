package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/vmctl/vmctl/internal/engine"
)

type downOptions struct {
	volumes bool
}

func newDownCmd(f *Factory, g *globalOptions) *cobra.Command {
	o := &downOptions{}
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Remove the stack's containers and network (and volumes with -v)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDown(cmd.Context(), f, g, o)
		},
	}
	cmd.Flags().BoolVarP(&o.volumes, "volumes", "v", false, "also remove the stack's named volumes (voice profiles, model cache, database)")
	return cmd
}

func runDown(ctx context.Context, f *Factory, g *globalOptions, o *downOptions) error {
	pw, err := g.progressWriter(f)
	if err != nil {
		return err
	}
	// With -p the project is known without reading a compose file, so a
	// broken or missing file never strands containers.
	project := g.projectName
	if project == "" {
		st, err := f.loadStack(ctx, g)
		if err != nil {
			return err
		}
		project = st.Name()
	}
	eng, err := f.Engine(ctx)
	if err != nil {
		return err
	}
	err = eng.Down(ctx, project, engine.DownOptions{Volumes: o.volumes, Progress: pw})
	pw.Close()
	return err
}
