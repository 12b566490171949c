package cli

import (
	"bytes"
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

type configOptions struct {
	services bool
	format   string
}

func newConfigCmd(f *Factory, g *globalOptions) *cobra.Command {
	o := &configOptions{}
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the resolved stack, as docker compose config does",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runConfig(cmd.Context(), f, g, o)
		},
	}
	cmd.Flags().BoolVar(&o.services, "services", false, "print the service names, one per line")
	cmd.Flags().StringVar(&o.format, "format", "yaml", "yaml or json")
	return cmd
}

func runConfig(ctx context.Context, f *Factory, g *globalOptions, o *configOptions) error {
	st, err := f.loadStack(ctx, g)
	if err != nil {
		return err
	}
	if o.services {
		for _, n := range st.Names() {
			fmt.Fprintln(f.IO.Out, n)
		}
		return nil
	}
	var b []byte
	switch o.format {
	case "yaml":
		b, err = st.Project.MarshalYAML()
	case "json":
		b, err = st.Project.MarshalJSON()
	default:
		return usageError{fmt.Errorf("invalid --format %q: use yaml or json", o.format)}
	}
	if err != nil {
		return fmt.Errorf("render the stack: %w", err)
	}
	_, err = f.IO.Out.Write(escapeDollars(b))
	return err
}

// escapeDollars writes every literal $ as $$, as docker compose config does:
// the values are already interpolated, so the output must load back to the
// same project instead of being interpolated a second time.
func escapeDollars(b []byte) []byte { return bytes.ReplaceAll(b, []byte("$"), []byte("$$")) }
