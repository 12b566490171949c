package cli

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/system"
	"github.com/spf13/cobra"

	vmaws "github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/doctor"
	"github.com/vmctl/vmctl/internal/engine"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/stack"
)

type doctorOptions struct {
	env    string
	output string
}

func newDoctorCmd(f *Factory, g *globalOptions) *cobra.Command {
	o := &doctorOptions{}
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check this machine for running the stack (and, with --env, for reaching AWS)",
		Long: `A checklist for a new developer machine or GPU host: the Docker Engine, the compose
and environment files, GPU readiness for OpenVoice (CUDA 11.8), the stack's host ports,
disk space for the images, and for an AWS environment whether credentials resolve to
its account. Each line is ✓, ! or ✗ with the next step.

Exit codes: 0 nothing failed, 3 a check failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDoctor(cmd.Context(), f, g, o)
		},
	}
	cmd.Flags().StringVar(&o.env, "env", "local", "environment to check")
	cmd.Flags().StringVarP(&o.output, "output", "o", "table", "table or json")
	return cmd
}

func runDoctor(ctx context.Context, f *Factory, g *globalOptions, o *doctorOptions) error {
	format, err := parseOutput(o.output)
	if err != nil {
		return err
	}
	var eng *engine.Engine
	report := doctor.Run(ctx, doctor.Deps{
		EnvDir: g.envDir,
		Env:    o.env,
		DockerInfo: func(ctx context.Context) (system.Info, string, error) {
			c, err := f.Docker(ctx)
			if err != nil {
				return system.Info{}, "", err
			}
			eng = engine.New(c)
			info, err := c.Info(ctx)
			return info, c.ClientVersion(), err
		},
		Stack: func(ctx context.Context) (*stack.Stack, error) { return f.loadStack(ctx, g) },
		GPU:   f.GPU,
		Ports: func(ctx context.Context, st *stack.Stack) ([]engine.PortConflict, error) {
			// The stack's own running containers hold its ports legitimately.
			return eng.PortConflicts(ctx, st, st.Names(), func(c container.Summary) bool {
				return c.Labels[engine.LabelProject] == st.Name()
			})
		},
		DiskFree: doctor.DiskFree,
		Identity: func(ctx context.Context, env *environment.Environment) (vmaws.Identity, error) {
			cfg, err := f.AWSConfig(ctx, env)
			if err != nil {
				return vmaws.Identity{}, err
			}
			return vmaws.CallerIdentity(ctx, sts.NewFromConfig(cfg))
		},
		Foundation: func(ctx context.Context, env *environment.Environment) (string, error) {
			cfg, err := f.AWSConfig(ctx, env)
			if err != nil {
				return "", err
			}
			return foundationState(ctx, cfg, env)
		},
	})
	if format == outputJSON {
		if err := writeJSON(f.IO.Out, report); err != nil {
			return err
		}
	} else {
		for _, c := range report.Checks {
			fmt.Fprintf(f.IO.Out, "%s %-22s %s\n", c.Status.Mark(), c.Name, c.Detail)
			if c.Fix != "" && (c.Status == doctor.Fail || c.Status == doctor.Warn) {
				fmt.Fprintf(f.IO.Out, "  %-22s next: %s\n", "", c.Fix)
			}
		}
	}
	if report.Failed() {
		return &exitError{code: ExitNotReady, err: fmt.Errorf("doctor: some checks failed (✗ above)")}
	}
	return nil
}
