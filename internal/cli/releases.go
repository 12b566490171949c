package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
)

func newReleasesCmd(f *Factory, g *globalOptions) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "releases",
		Short: "List the recorded releases, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runReleases(cmd.Context(), f, g, output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

func runReleases(_ context.Context, f *Factory, g *globalOptions, output string) error {
	format, err := parseOutput(output)
	if err != nil {
		return err
	}
	all, err := releaseStore(g).List()
	if err != nil {
		return err
	}
	if format == outputJSON {
		if all == nil {
			return writeJSON(f.IO.Out, []any{})
		}
		return writeJSON(f.IO.Out, all)
	}
	t := newTable(f.IO.Out, f.IO.OutIsTerminal, "RELEASE", "REVISION", "CREATED", "BY", "IMAGES", "PUSHED")
	for _, r := range all {
		var names []string
		pushed := 0
		for n, img := range r.Images {
			names = append(names, n)
			if img.Digest != "" {
				pushed++
			}
		}
		sort.Strings(names)
		t.add(r.ID, r.Revision, r.Created.Format("2006-01-02 15:04:05Z"), r.By, strings.Join(names, ","), fmt.Sprintf("%d/%d", pushed, len(r.Images)))
	}
	return t.flush()
}
