package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/vmctl/vmctl/internal/engine"
)

type buildOptions struct {
	services []string
	output   string
}

func newBuildCmd(f *Factory, g *globalOptions) *cobra.Command {
	o := &buildOptions{}
	cmd := &cobra.Command{
		Use:   "build [SERVICE...]",
		Short: "Build the stack's images",
		RunE: func(cmd *cobra.Command, args []string) error {
			o.services = args
			return runBuild(cmd.Context(), f, g, o)
		},
	}
	cmd.Flags().StringVarP(&o.output, "output", "o", "table", "table or json")
	return cmd
}

type builtImage struct {
	Service string `json:"service"`
	Image   string `json:"image"`
	ID      string `json:"id"`
}

func runBuild(ctx context.Context, f *Factory, g *globalOptions, o *buildOptions) error {
	format, err := parseOutput(o.output)
	if err != nil {
		return err
	}
	pw, err := g.progressWriter(f)
	if err != nil {
		return err
	}
	st, err := f.loadStack(ctx, g)
	if err != nil {
		return err
	}
	for _, n := range o.services {
		if _, err := st.Service(n); err != nil {
			return err
		}
	}
	eng, err := f.Engine(ctx)
	if err != nil {
		return err
	}
	ids, err := eng.Build(ctx, st, engine.BuildOptions{Services: o.services, Force: true, Progress: pw})
	pw.Close()
	if err != nil {
		return err
	}
	var rows []builtImage
	for _, n := range st.Names() {
		if id, ok := ids[n]; ok {
			rows = append(rows, builtImage{Service: n, Image: engine.ImageName(st.Name(), st.Project.Services[n]), ID: id})
		}
	}
	if format == outputJSON {
		return writeJSON(f.IO.Out, rows)
	}
	t := newTable(f.IO.Out, f.IO.OutIsTerminal, "SERVICE", "IMAGE", "ID")
	for _, r := range rows {
		t.add(r.Service, r.Image, r.ID)
	}
	return t.flush()
}
