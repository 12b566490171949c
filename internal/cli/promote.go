package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/spf13/cobra"

	vmaws "github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/doctor"
	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/promote"
	"github.com/vmctl/vmctl/internal/registry"
	"github.com/vmctl/vmctl/internal/release"
	"github.com/vmctl/vmctl/internal/rollout"
	"github.com/vmctl/vmctl/internal/verify"
)

type promoteOptions struct {
	approval        approvalFlags
	allowVulnerable string
	fromProfile     string
	toProfile       string
	output          string

	// Test hooks: each side's AWS configuration by environment name, and
	// the base of each side's verify options.
	awsConfig            map[string]func(ctx context.Context, env *environment.Environment) (sdkaws.Config, error)
	verifyFrom, verifyTo verify.Options
	noProbe              bool // --no-probe: both sides' verify skips the CUDA probe task
	poll                 time.Duration
}

func newPromoteCmd(f *Factory, g *globalOptions) *cobra.Command {
	o := &promoteOptions{}
	cmd := &cobra.Command{
		Use:   "promote A B [--yes] [--approve-prod] [--allow-vulnerable REASON]",
		Short: "Move the release running in A to B: the same digests, copied, never rebuilt",
		Long: `Takes the release environment A runs, requires vmctl verify A to pass, and refuses
it when ECR's scan of any of its images found a CRITICAL vulnerability or is missing,
failed or unsupported (unless --allow-vulnerable gives a reason, which is recorded in
the release manifest, on B's services and in B's audit log group). Then copies the images to B's registry by digest: within one registry a
manifest-only retag (no layer moves); across accounts or regions a registry-to-registry
copy that sends only the blobs B lacks and mounts what it can. Nothing is rebuilt and
nothing passes through this machine's Docker Engine. Finally deploys the release to B
and verifies B, and prints how many layer bytes moved.

Credentials of each side are checked against its environment's account before
anything is written. When A and B are different accounts, give each its profile with
--from-profile and --to-profile.

B's approval rule applies: a protected B (prod) needs --yes --approve-prod or its name
typed on a terminal; another B with approval_required needs --yes or a y. A protected A
approves verify's CUDA probe task there the same way.

Exit codes: 0 promoted and verified, 3 verify did not pass in A (nothing written) or
in B (deployed, not verified), 1 anything else.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPromote(cmd.Context(), f, g, o, args[0], args[1])
		},
	}
	fl := cmd.Flags()
	o.approval.register(fl)
	fl.StringVar(&o.allowVulnerable, "allow-vulnerable", "", "ship despite CRITICAL findings or a missing, failed or unsupported scan, for this recorded reason")
	fl.StringVar(&o.fromProfile, "from-profile", "", "AWS profile for A (default: the ambient credentials)")
	fl.StringVar(&o.toProfile, "to-profile", "", "AWS profile for B (default: the ambient credentials)")
	fl.StringVarP(&o.output, "output", "o", "table", "table or json")
	fl.BoolVar(&o.noProbe, "no-probe", false, "verify both sides without OpenVoice's CUDA probe task (the tables say it was skipped)")
	return cmd
}

// sideFactory is a factory whose AWS credentials are one side's: the test
// hook's, a named profile's, or f's own.
func (o *promoteOptions) sideFactory(f *Factory, env, profile string) *Factory {
	side := &Factory{IO: f.IO, LookupEnv: f.LookupEnv, Environ: f.Environ, AWSConfig: f.AWSConfig}
	switch {
	case o.awsConfig[env] != nil:
		side.AWSConfig = o.awsConfig[env]
	case profile != "":
		side.AWSConfig = func(ctx context.Context, env *environment.Environment) (sdkaws.Config, error) {
			return vmaws.LoadConfig(ctx, env.AWS.Region, config.WithSharedConfigProfile(profile))
		}
	}
	return side
}

func runPromote(ctx context.Context, f *Factory, g *globalOptions, o *promoteOptions, from, to string) error {
	if o.noProbe {
		o.verifyFrom.NoProbe, o.verifyTo.NoProbe = true, true
	}
	format, err := parseOutput(o.output)
	if err != nil {
		return err
	}
	if from == to {
		return usageError{fmt.Errorf("promote %s to itself: name two environments", from)}
	}
	st, err := f.loadStack(ctx, g)
	if err != nil {
		return err
	}
	// Both accounts are checked before anything is written anywhere.
	fa, fb := o.sideFactory(f, from, o.fromProfile), o.sideFactory(f, to, o.toProfile)
	envA, idA, cfgA, err := awsTarget(ctx, fa, g, from)
	if err != nil {
		return err
	}
	envB, idB, cfgB, err := awsTarget(ctx, fb, g, to)
	if err != nil {
		return err
	}
	if envA, err = withFoundation(ctx, cfgA, envA); err != nil {
		return err
	}
	if envB, err = withFoundation(ctx, cfgB, envB); err != nil {
		return err
	}
	envs := map[string]*environment.Environment{from: envA, to: envB}
	pw, err := g.progressWriter(f)
	if err != nil {
		return err
	}
	fmt.Fprintf(f.IO.ErrOut, "promoting from %s (account %s as %s) to %s (account %s as %s)\n", from, idA.Account, idA.ARN, to, idB.Account, idB.ARN)
	ap := f.approval(o.approval)
	// Verify A starts the CUDA probe task there: a write like any other.
	planA, err := ecs.Render(st, envA, release.Release{})
	if err != nil {
		return err
	}
	if err := approveProbe(ap, envA, planA, o.verifyFrom.NoProbe); err != nil {
		return err
	}
	opts := promote.Options{
		From: from, To: to,
		Render: func(name string, rel release.Release) (*ecs.Plan, error) { return ecs.Render(st, envs[name], rel) },
		Resolve: func(id string, digests map[string]string) (*release.Release, error) {
			return storedOrRunning(f, g, from, id, digests)
		},
		Approve: func(ctx context.Context, p promote.Plan) error {
			if err := approvePromotion(f, ap, envB, p); err != nil {
				return err
			}
			if len(p.Vulnerable) == 0 {
				return nil
			}
			// The manifest records the override before anything is written to B.
			return recordInRelease(g, rollout.Override{Environment: to, Release: p.Release, Action: "promote " + from + " " + to,
				Reason: p.AllowVulnerable, By: idB.ARN, At: time.Now().UTC(), Images: p.Vulnerable})
		},
		Actor:           idB.ARN,
		AllowVulnerable: o.allowVulnerable,
		VerifyFrom:      o.verifyFrom,
		VerifyTo:        o.verifyTo,
		Progress:        pw,
		Poll:            o.poll,
	}
	opts.VerifyFrom.GPU = doctor.Requirements(envA)
	opts.VerifyTo.GPU = doctor.Requirements(envB)
	opts.VerifyFrom.Domain, opts.VerifyTo.Domain = envA.AWS.Domain, envB.AWS.Domain
	if format == outputTable {
		opts.Events = f.IO.ErrOut
	}
	res, err := promote.Promote(ctx, vmaws.NewClients(cfgA), vmaws.NewClients(cfgB), opts)
	pw.Close()
	// A refusal before any copy is all in the error; JSON readers get the
	// result either way.
	var perr error
	switch {
	case res == nil:
	case format == outputJSON:
		perr = writeJSON(f.IO.Out, res)
	case err == nil || len(res.Copies) > 0:
		perr = printPromote(f, res)
	}
	if err == nil {
		err = perr
	}
	if errors.Is(err, promote.ErrVerifyFailed) {
		return &exitError{code: ExitNotReady, err: err}
	}
	return err
}

// approvePromotion shows what the promotion writes into B and asks B's approval.
func approvePromotion(f *Factory, ap vmaws.Approval, env *environment.Environment, p promote.Plan) error {
	w := f.IO.ErrOut
	how := "copied registry to registry (only missing blobs)"
	if p.SameRegistry {
		how = "retagged by manifest within one registry (no layer moves)"
	}
	fmt.Fprintf(w, "release %s: %d images from %s to %s, %s\n", p.Release, len(p.Images), p.From, p.To, how)
	for _, img := range p.Images {
		fmt.Fprintf(w, "  %s  %s/%s -> %s/%s  %s\n", strings.Join(img.Services, ","), p.FromRegistry, img.From, p.ToRegistry, img.To, img.Digest)
	}
	if len(p.Vulnerable) > 0 {
		fmt.Fprintf(w, "scan gate overridden (recorded as %s): %s: %s\n", rollout.TagAllowVulnerable, registry.DescribeBlocked(p.Vulnerable), p.AllowVulnerable)
	}
	return ap.Require(env, fmt.Sprintf("promote release %s to %s", p.Release, env.Name))
}

func printPromote(f *Factory, res *promote.Result) error {
	w := f.IO.Out
	p := res.Plan
	fmt.Fprintf(w, "Promote release %s from %s to %s\n", p.Release, p.From, p.To)
	if v := res.FromVerify; v != nil {
		fmt.Fprintf(w, "verify %s: %s (%s)\n", p.From, v.Verdict, v.Summary())
	}
	if res.AllowVulnerable != "" {
		fmt.Fprintf(w, "CRITICAL findings allowed (recorded as %s): %s\n", rollout.TagAllowVulnerable, res.AllowVulnerable)
	}
	t := newTable(w, f.IO.OutIsTerminal, "SERVICES", "FROM", "TO", "DIGEST", "METHOD", "MOUNTED", "SENT", "BYTES")
	for _, c := range res.Copies {
		t.add(strings.Join(c.Services, ","), p.FromRegistry+"/"+c.From, p.ToRegistry+"/"+c.To, c.Digest, c.Method,
			fmt.Sprint(c.Stats.BlobsMounted), fmt.Sprint(c.Stats.BlobsCopied), fmt.Sprint(c.Stats.BytesMoved))
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "Layer bytes moved: %d\n", res.BytesMoved)
	if v := res.ToVerify; v != nil {
		fmt.Fprintf(w, "verify %s: %s (%s)\n", p.To, v.Verdict, v.Summary())
	}
	return nil
}
