package cli

import (
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vmctl/vmctl/internal/environment"
)

// serviceCommands take SERVICE arguments; watch joins them where it exists.
var serviceCommands = []string{"up", "logs", "build", "watch"}

// envArgCommands take environment names as their positional arguments.
var envArgCommands = map[string]int{"promote": 2, "diff": 2}

// addCompletions teaches cobra's `vmctl completion` scripts vmctl's nouns:
// service names from the loaded stack, environment names from --env-dir.
// Completion must never fail loudly, so a stack or directory that cannot be
// read completes nothing.
func addCompletions(root *cobra.Command, f *Factory, g *globalOptions) {
	for _, c := range root.Commands() {
		if slices.Contains(serviceCommands, c.Name()) {
			c.ValidArgsFunction = completeServices(f, g)
		}
		if n, ok := envArgCommands[c.Name()]; ok {
			c.ValidArgsFunction = func(_ *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
				if len(args) >= n {
					return nil, cobra.ShellCompDirectiveNoFileComp
				}
				return without(envNames(g), args, prefix), cobra.ShellCompDirectiveNoFileComp
			}
		}
		if c.Flags().Lookup("env") != nil {
			_ = c.RegisterFlagCompletionFunc("env", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
				return envNames(g), cobra.ShellCompDirectiveNoFileComp
			})
		}
	}
}

func completeServices(f *Factory, g *globalOptions) cobra.CompletionFunc {
	return func(c *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
		st, err := f.loadStackTo(c.Context(), g, io.Discard)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return without(st.Names(), args, prefix), cobra.ShellCompDirectiveNoFileComp
	}
}

func envNames(g *globalOptions) []string {
	names, err := environment.Names(g.envDir)
	if err != nil {
		return nil
	}
	return names
}

// without drops the names already given and those not starting with prefix.
func without(names, given []string, prefix string) []string {
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix) && !slices.Contains(given, n) {
			out = append(out, n)
		}
	}
	return out
}
