package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vmctl/vmctl/internal/environment"
)

type shipOptions struct {
	revision string
	detach   bool
}

func newShipCmd(f *Factory, g *globalOptions) *cobra.Command {
	o := &shipOptions{}
	cmd := &cobra.Command{
		Use:   "ship",
		Short: "Build a release, push it and deploy it to every environment marked deployment.auto",
		Long: `ship is what a CI job runs on every merge (seed §5.3: dev deploys on its own): it builds
the stack's images and records a release, then pushes it to and deploys it into each
environment whose file says deployment.auto: true (dev, as shipped), one after the other.
Auto environments need no approval (a protected one can never be auto). Staging and prod are
reached by promoting this release, never by shipping.`,
		Example: `  vmctl ship
  vmctl ship --detach && vmctl status --env dev --wait`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runShip(cmd.Context(), f, g, o)
		},
	}
	cmd.Flags().StringVar(&o.revision, "revision", "", "source revision to record (default: git HEAD of the build context, or VMCTL_REVISION)")
	cmd.Flags().BoolVar(&o.detach, "detach", false, "return once ECS has accepted each deployment")
	return cmd
}

func runShip(ctx context.Context, f *Factory, g *globalOptions, o *shipOptions) error {
	auto, err := autoEnvironments(g.envDir)
	if err != nil {
		return err
	}
	if err := runBuild(ctx, f, g, &buildOptions{output: "table", revision: o.revision}); err != nil {
		return fmt.Errorf("ship: %w", err)
	}
	rel, err := releaseStore(g).Latest()
	if err != nil {
		return fmt.Errorf("ship: %w", err)
	}
	for _, env := range auto {
		fmt.Fprintf(f.IO.ErrOut, "ship: release %s to %s\n", rel.ID, env)
		if err := runPush(ctx, f, g, &pushOptions{env: env, release: rel.ID, output: "table"}); err != nil {
			return fmt.Errorf("ship release %s to %s: %w", rel.ID, env, err)
		}
		if err := runDeploy(ctx, f, g, &deployOptions{env: env, release: rel.ID, output: "table", detach: o.detach}); err != nil {
			return fmt.Errorf("ship release %s to %s: %w", rel.ID, env, err)
		}
	}
	return nil
}

// autoEnvironments are the AWS environments whose file says deployment.auto, in name order;
// none is an error, since ship would only build.
func autoEnvironments(dir string) ([]string, error) {
	names, err := environment.Names(dir)
	if err != nil {
		return nil, err
	}
	var auto, aws []string
	for _, name := range names {
		env, err := environment.LoadNamed(dir, name)
		if err != nil {
			return nil, err
		}
		if env.Kind != environment.KindAWS {
			continue
		}
		aws = append(aws, name)
		if env.AWS.Deployment.Auto {
			auto = append(auto, name)
		}
	}
	if len(auto) == 0 {
		return nil, errors.New("ship: no environment in " + dir + " says deployment.auto: true (" + strings.Join(aws, ", ") + " wait for approval): set it on dev, or build, push and deploy by hand")
	}
	return auto, nil
}
