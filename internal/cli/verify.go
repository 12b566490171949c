package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	vmaws "github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/doctor"
	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/release"
	"github.com/vmctl/vmctl/internal/rollout"
	"github.com/vmctl/vmctl/internal/verify"
)

type verifyOptions struct {
	env      string
	release  string
	output   string
	burst    int
	endpoint string
	noProbe  bool
	approval approvalFlags
	// tune is the base of the checks' options: tests shorten the polls and
	// run the demo image's check instead of OpenVoice's.
	tune verify.Options
}

func newVerifyCmd(f *Factory, g *globalOptions) *cobra.Command {
	o := &verifyOptions{}
	cmd := &cobra.Command{
		Use:   "verify --env E [--release R]",
		Short: "Check that an AWS environment runs a release, healthy, on CUDA 11.8-ready GPU hosts",
		Long: `A verdict table, one exit code. The checks:
  parity      every running task's image digest is the release's
  targets     every target in the services' target groups is healthy
  https       the public endpoint (https://<aws.domain>, or --endpoint) is HTTPS with a
              valid certificate, and plain HTTP only redirects to it
  endpoint    each public service's health path answers through the load balancer, on
              a listener rule that routes it to that service, with the P95 of a short
              burst (--burst) against the 200 ms API target; where no rule routes it
              there, ELB's target health stands in and the check says so
  gpu-host    every instance of the GPU Auto Scaling group passes vmctl gpu's CUDA 11.8
              rules, read with SSM (nvidia-smi)
  cuda-probe  OpenVoice's own CUDA check, run as a one-off task on the GPU capacity
              provider, its output read from CloudWatch Logs

The release is the one the environment runs unless --release names another; its
digests come from the local release manifest when there is one (the digests built and
tested here), else from what ECS runs.

The CUDA probe starts a task, so in a protected environment it needs approval like any
write (--yes --approve-prod, or a confirmation on a terminal); --no-probe skips it and
the table says so.

Exit codes: 0 every check passed (warnings and skipped checks are printed, not failed),
3 a check failed, 4 a check could not tell.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVerify(cmd.Context(), f, g, o)
		},
	}
	cmd.Flags().StringVar(&o.env, "env", "", "AWS environment (dev, staging, prod)")
	cmd.Flags().StringVar(&o.release, "release", "", "release id (default: the one the environment runs)")
	cmd.Flags().StringVarP(&o.output, "output", "o", "table", "table or json")
	cmd.Flags().BoolVar(&o.noProbe, "no-probe", false, "skip the one-off CUDA probe task (the only check that starts a task; the gpu-host rows run nvidia-smi through SSM)")
	cmd.Flags().StringVar(&o.endpoint, "endpoint", "", "base URL of the public endpoint (default https://<aws.domain>, else the load balancer over HTTP)")
	o.approval.register(cmd.Flags())
	cmd.Flags().IntVar(&o.burst, "burst", 0, "requests timed per health path reached through the load balancer (default 20, -1 for none)")
	_ = cmd.MarkFlagRequired("env")
	return cmd
}

func runVerify(ctx context.Context, f *Factory, g *globalOptions, o *verifyOptions) error {
	format, err := parseOutput(o.output)
	if err != nil {
		return err
	}
	if o.release != "" {
		// Before AWS is asked anything: a path is no release.
		if err := release.ValidateID(o.release); err != nil {
			return err
		}
	}
	// The empty release's plan first: it is what runningRelease reads.
	t, err := cloudTarget(ctx, f, g, o.env, release.Release{})
	if err != nil {
		return err
	}
	env, clients := t.env, t.clients
	var rel *release.Release
	if o.release != "" {
		rel, err = releaseStore(g).Get(o.release)
	} else {
		rel, err = runningRelease(ctx, f, g, t)
	}
	if err != nil {
		return err
	}
	if err := t.render(*rel); err != nil {
		return err
	}
	plan := t.plan
	pw, err := g.progressWriter(f)
	if err != nil {
		return err
	}
	opts := o.tune
	if o.burst != 0 {
		opts.Burst = o.burst
	}
	opts.GPU = doctor.Requirements(env)
	opts.Domain = env.AWS.Domain
	if o.endpoint != "" {
		opts.Endpoint = o.endpoint
	}
	opts.Progress = pw
	opts.NoProbe = opts.NoProbe || o.noProbe
	if err := approveProbe(f.approval(o.approval), env, plan, opts.NoProbe); err != nil {
		pw.Close()
		return err
	}
	rep, err := verify.Verify(ctx, clients, plan, rel, opts)
	pw.Close()
	if err != nil {
		return err
	}
	if format == outputJSON {
		if err := writeJSON(f.IO.Out, rep); err != nil {
			return err
		}
	} else if err := printVerify(f, rep); err != nil {
		return err
	}
	return verifyExit(rep)
}

// verifyExit maps a report to verify's exit codes.
func verifyExit(rep *verify.Report) error {
	switch rep.Verdict {
	case verify.Pass, verify.Warn:
		return nil
	case verify.Fail:
		return &exitError{code: ExitNotReady, err: fmt.Errorf("%s does not pass verify for release %s: %s", rep.Environment, rep.Release, rep.Summary())}
	}
	return &exitError{code: ExitUnknown, err: fmt.Errorf("verify could not tell whether %s runs release %s well: %s", rep.Environment, rep.Release, rep.Summary())}
}

// runningRelease is the release an environment runs: its manifest from the
// local store when it has one, else one made of the digests ECS runs.
// t's plan is the empty release's.
func runningRelease(ctx context.Context, f *Factory, g *globalOptions, t *target) (*release.Release, error) {
	env := t.env
	id, digests, err := rollout.CurrentRelease(ctx, t.clients, t.plan)
	if err != nil {
		return nil, fmt.Errorf("find the release %s runs: %w", env.Name, err)
	}
	if id == "" {
		return nil, fmt.Errorf("%s runs no vmctl release: deploy one (vmctl deploy --env %s) or name one with --release", env.Name, env.Name)
	}
	return storedOrRunning(f, g, env.Name, id, digests)
}

// storedOrRunning prefers the local manifest of a release, which carries
// what was built here; without one, the digests ECS runs stand for it.
func storedOrRunning(f *Factory, g *globalOptions, envName, id string, digests map[string]string) (*release.Release, error) {
	rel, err := releaseStore(g).Get(id)
	if err == nil {
		return rel, nil
	}
	if !errors.Is(err, release.ErrNotFound) {
		return nil, err
	}
	fmt.Fprintf(f.IO.ErrOut, "release %s is not in %s: using the digests %s runs\n", id, g.releaseDir, envName)
	rel = &release.Release{ID: id, Images: map[string]release.Image{}}
	for svc, d := range digests {
		rel.Images[svc] = release.Image{Digest: d}
	}
	return rel, rel.Validate()
}

func printVerify(f *Factory, rep *verify.Report) error {
	w := f.IO.Out
	fmt.Fprintf(w, "Verify %s (cluster %s), release %s\n", rep.Environment, rep.Cluster, rep.Release)
	t := newTable(w, f.IO.OutIsTerminal, "CHECK", "SUBJECT", "VERDICT", "DETAIL")
	for _, c := range rep.Checks {
		t.add(c.Check, c.Subject, string(c.Verdict), c.Detail)
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "Verdict: %s\n", rep.Verdict)
	var fixes []string
	for _, c := range rep.Failed() {
		if c.Fix != "" && !slices.Contains(fixes, c.Fix) {
			fixes = append(fixes, c.Fix)
		}
	}
	for _, fix := range fixes {
		fmt.Fprintf(w, "  next: %s\n", strings.TrimSpace(fix))
	}
	return nil
}

// approveProbe asks the environment's approval for the one-off CUDA probe task, the
// only write verify makes, when the plan has a GPU service to probe.
func approveProbe(ap vmaws.Approval, env *environment.Environment, plan *ecs.Plan, skip bool) error {
	if skip || !slices.ContainsFunc(plan.Services, func(s ecs.Service) bool { return s.Hosts != nil }) {
		return nil
	}
	if err := ap.Require(env, fmt.Sprintf("run the one-off CUDA probe task in %s (verify)", env.Name)); err != nil {
		return fmt.Errorf("%w; or pass --no-probe to verify without it", err)
	}
	return nil
}
