package cli

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/spf13/cobra"

	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/infra"
	"github.com/vmctl/vmctl/internal/registry"
)

type pushOptions struct {
	env      string
	release  string
	output   string
	approval approvalFlags
}

func newPushCmd(f *Factory, g *globalOptions) *cobra.Command {
	o := &pushOptions{}
	cmd := &cobra.Command{
		Use:   "push --env E [--release R]",
		Short: "Push a release's images to the environment's ECR, and prove they are the release's",
		Long: `Refuses credentials of another account than the environment's, creates or updates the
ECR repositories with the settings vmctl plan renders (scan on push, immutable tags, KMS,
lifecycle), pushes each image through the Docker Engine tagged with the release id (only the
layers ECR lacks travel), then reads each manifest back from ECR and checks that its config
digest is the image built locally. The digests are recorded in the release.

Pushing writes to the environment's account: a protected environment needs --yes
--approve-prod or a confirmation on a terminal, as every write there does.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPush(cmd.Context(), f, g, o)
		},
	}
	cmd.Flags().StringVar(&o.env, "env", "", "AWS environment (dev, staging, prod)")
	cmd.Flags().StringVar(&o.release, "release", "", "release id (default: the newest)")
	cmd.Flags().StringVarP(&o.output, "output", "o", "table", "table or json")
	o.approval.register(cmd.Flags())
	_ = cmd.MarkFlagRequired("env")
	return cmd
}

func runPush(ctx context.Context, f *Factory, g *globalOptions, o *pushOptions) error {
	format, err := parseOutput(o.output)
	if err != nil {
		return err
	}
	rel, err := pickRelease(g, o.release)
	if err != nil {
		return err
	}
	st, err := f.loadStack(ctx, g)
	if err != nil {
		return err
	}
	env, id, cfg, err := awsTarget(ctx, f, g, o.env)
	if err != nil {
		return err
	}
	// push needs the repositories only: it runs before the foundation exists, too.
	plan, err := ecs.Render(st, infra.Offline(env), *rel)
	if err != nil {
		return err
	}
	if err := f.approval(o.approval).Require(env, fmt.Sprintf("push release %s to %s's registry %s", rel.ID, env.Name, env.AWS.Registry)); err != nil {
		return err
	}
	docker, err := f.Docker(ctx)
	if err != nil {
		return err
	}
	pw, err := g.progressWriter(f)
	if err != nil {
		return err
	}
	fmt.Fprintf(f.IO.ErrOut, "pushing release %s to %s (account %s as %s)\n", rel.ID, o.env, id.Account, id.ARN)
	pushed, err := registry.Push(ctx, ecr.NewFromConfig(cfg), docker, plan, rel, pw)
	pw.Close()
	if len(pushed) > 0 {
		// Record what did land, even if a later image failed.
		if _, rerr := releaseStore(g).RecordDigests(rel.ID, registry.Digests(pushed)); rerr != nil && err == nil {
			err = rerr
		}
	}
	if err != nil {
		return err
	}
	if format == outputJSON {
		return writeJSON(f.IO.Out, pushed)
	}
	t := newTable(f.IO.Out, f.IO.OutIsTerminal, "SERVICE", "REPOSITORY", "DIGEST", "IMAGE ID")
	for _, p := range pushed {
		t.add(p.Service, p.Repository, p.Digest, p.ImageID)
	}
	return t.flush()
}
