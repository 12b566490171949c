package cli

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/infra"
	"github.com/vmctl/vmctl/internal/release"
	"github.com/vmctl/vmctl/internal/stack"
)

type planOptions struct {
	env     string
	release string
	output  string
}

func newPlanCmd(f *Factory, g *globalOptions) *cobra.Command {
	o := &planOptions{}
	cmd := &cobra.Command{
		Use:   "plan --env ENV",
		Short: "Show what a deploy to an AWS environment would apply, from the files alone",
		Long: `plan renders the stack and one AWS environment file into the ECR repositories, ECS task
definitions and services, and scaling that a deploy would apply. It makes no AWS call.
Without --release the images fall back to tags and the plan says it is not pinned.`,
		Example: `  vmctl plan --env prod
  vmctl plan --env staging --release .vmctl/releases/r42.json --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPlan(cmd.Context(), f, g, o)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&o.env, "env", "e", "", "AWS environment to plan for (a file in --env-dir)")
	fl.StringVar(&o.release, "release", "", "release manifest whose digests to deploy")
	fl.StringVarP(&o.output, "output", "o", "table", "table or json (json: the full rendered objects)")
	_ = cmd.MarkFlagRequired("env")
	return cmd
}

func runPlan(ctx context.Context, f *Factory, g *globalOptions, o *planOptions) error {
	format, err := parseOutput(o.output)
	if err != nil {
		return err
	}
	env, err := environment.LoadNamed(g.envDir, o.env)
	if err != nil {
		return err
	}
	if env.Kind != environment.KindAWS {
		return fmt.Errorf("plan %s: it is kind %s: plan renders AWS environments; run the stack locally with vmctl up", env.Name, env.Kind)
	}
	rel, err := loadRelease(o.release)
	if err != nil {
		return err
	}
	st, err := loadRenderStack(ctx, f, g)
	if err != nil {
		return err
	}
	// Offline: an id the file leaves to the foundation shows as {vmctl-ENV:Output}.
	plan, err := ecs.Render(st, infra.Offline(env), rel)
	if err != nil {
		return err
	}
	if format == outputJSON {
		return writeJSON(f.IO.Out, plan)
	}
	return printPlan(f.IO, env, plan)
}

// loadRenderStack loads the stack for rendering. Build contexts mean nothing to ECS, so a
// missing app source is stood in for rather than required, and local.yaml is not read.
func loadRenderStack(ctx context.Context, f *Factory, g *globalOptions) (*stack.Stack, error) {
	rf := &Factory{IO: f.IO, LookupEnv: f.LookupEnv, DockerClient: f.DockerClient, Environ: func() []string {
		env := f.Environ()
		for _, kv := range env {
			if v, ok := strings.CutPrefix(kv, environment.AppSourceEnv+"="); ok && v != "" {
				return env
			}
		}
		return append(env, environment.AppSourceEnv+"="+os.TempDir())
	}}
	return rf.loadStack(ctx, g)
}

// loadRelease reads a manifest; none gives the empty release, whose images are tags.
func loadRelease(path string) (release.Release, error) {
	if path == "" {
		return release.Release{}, nil
	}
	rel, err := release.Load(path)
	if err != nil {
		return release.Release{}, err
	}
	return *rel, nil
}

func printPlan(ios *IOStreams, env *environment.Environment, p *ecs.Plan) error {
	w := ios.Out
	fmt.Fprintf(w, "Plan for %s: account %s, %s, cluster %s\n", p.Environment, p.Account, p.Region, p.Cluster)
	rel := "no release: images are tags, not digests (pass --release)"
	if p.Release.ID != "" {
		rel = "release " + p.Release.ID
		if r := p.Release.Revision; r != "" {
			rel += " (revision " + r[:min(len(r), 12)] + ")"
		}
	}
	approval := "deploys without approval"
	if p.Approval {
		approval = "each deploy needs approval"
	}
	fmt.Fprintf(w, "%s; %s deploys, %s\n", rel, p.Strategy, approval)
	fmt.Fprintf(w, "Logs: %s, kept %d days\n", p.LogGroup.Name, p.LogGroup.RetentionDays)
	if s := env.AWS.Schedule; s != nil {
		fmt.Fprintf(w, "Schedule: up %s %s–%s %s, scaled to 0 outside those hours\n", strings.Join(s.Days, ","), s.Start, s.Stop, s.TimeZone)
	}
	if p.Unpinned {
		fmt.Fprintln(w, "Not pinned: some images are tags; a deploy needs a release with digests")
	}
	if infra.Needs(env) {
		fmt.Fprintf(w, "Ids the file leaves out come from stack %s's outputs, shown as {%s:Output}; deploy reads them (vmctl infra apply --env %s creates the stack)\n",
			infra.StackName(env.Name), infra.StackName(env.Name), env.Name)
	}

	section := func(title string) { fmt.Fprintf(w, "\n%s\n", title) }
	section("Repositories (ECR)")
	t := newTable(w, ios.OutIsTerminal, "REPOSITORY", "SERVICES", "SCAN", "TAGS", "ENCRYPTION", "KEEP")
	for _, r := range p.Repositories {
		t.add(r.Name, strings.Join(r.Services, ","), "on push", string(r.Settings.ImageTagMutability),
			string(r.Settings.EncryptionConfiguration.EncryptionType), fmt.Sprintf("releases; untagged %dd", ecs.UntaggedExpiryDays))
	}
	if err := t.flush(); err != nil {
		return err
	}

	section("Task definitions")
	t = newTable(w, ios.OutIsTerminal, "FAMILY", "IMAGE", "LAUNCH", "CPU", "MEMORY", "PORTS", "HEALTH", "GPU")
	for _, s := range p.Services {
		td := s.TaskDefinition
		main := td.ContainerDefinitions[0]
		var ports []string
		for _, pm := range main.PortMappings {
			ports = append(ports, fmt.Sprintf("%d/%s", *pm.ContainerPort, pm.Protocol))
		}
		health := "-"
		if hc := main.HealthCheck; hc != nil {
			health = fmt.Sprintf("%s every %ds", hc.Command[0], *hc.Interval)
		}
		if s.LoadBalancer != nil {
			health = s.LoadBalancer.HealthPath + ", " + health
		} else if es, ok := env.Services[s.Name]; ok {
			health = es.Health.Path + ", " + health
		}
		gpu := "-"
		for _, rr := range main.ResourceRequirements {
			gpu = *rr.Value + " GPU"
		}
		t.add(*td.Family, shortImage(s.Image), string(td.RequiresCompatibilities[0]), *td.Cpu, *td.Memory,
			dash(strings.Join(ports, ",")), health, gpu)
	}
	if err := t.flush(); err != nil {
		return err
	}

	section("Services (ECS)")
	t = newTable(w, ios.OutIsTerminal, "SERVICE", "AFTER", "DESIRED", "MIN", "MAX", "CAPACITY", "DEPLOYMENT", "SECURITY GROUP", "LOAD BALANCER")
	for _, s := range p.Services {
		svc := s.Service
		var cps []string
		for _, c := range svc.CapacityProviderStrategy {
			cp := *c.CapacityProvider
			if c.Base > 0 {
				cp += fmt.Sprintf("(base %d)", c.Base)
			}
			cps = append(cps, cp)
		}
		lb := "-"
		if l := s.LoadBalancer; l != nil {
			lb = fmt.Sprintf("%s → %s", strings.Join(l.PathPatterns, ","), l.TargetGroup)
		}
		t.add(s.Name, dash(strings.Join(s.StartAfter, ",")), strconv.Itoa(int(*svc.DesiredCount)),
			strconv.Itoa(int(*s.Scaling.Target.MinCapacity)), strconv.Itoa(int(*s.Scaling.Target.MaxCapacity)),
			strings.Join(cps, "+"), deployment(s), strings.Join(svc.NetworkConfiguration.AwsvpcConfiguration.SecurityGroups, ","), lb)
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "Scaling: target tracking on average CPU at %g %% within min–max\n", ecs.CPUTarget)

	if hosts := gpuHosts(p); len(hosts) > 0 {
		section("GPU hosts (EC2 Auto Scaling)")
		t = newTable(w, ios.OutIsTerminal, "SERVICE", "GROUP", "INSTANCE", "GPU", "MIN", "MAX", "SPOT")
		for _, s := range hosts {
			h := s.Hosts
			spot := "no"
			if h.Spot {
				spot = fmt.Sprintf("yes, %d on demand", h.OnDemandBase)
			}
			t.add(s.Name, h.AutoScalingGroup, h.InstanceType, dash(h.GPU), strconv.Itoa(h.Min), strconv.Itoa(h.Max), spot)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}

	if len(p.Managed) > 0 {
		section("Managed by AWS (local stand-ins not deployed)")
		t = newTable(w, ios.OutIsTerminal, "SERVICE", "BY", "ENDPOINT", "DETAIL")
		for _, m := range p.Managed {
			t.add(m.Service, m.By, m.Endpoint, dash(m.Detail))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if len(p.Notes) > 0 {
		section("Notes")
		for _, n := range p.Notes {
			fmt.Fprintln(w, "  "+n.String())
		}
	}
	return nil
}

func deployment(s ecs.Service) string {
	dc := s.Service.DeploymentConfiguration
	out := strings.ToLower(strings.ReplaceAll(string(dc.Strategy), "_", "-"))
	if cb := dc.DeploymentCircuitBreaker; cb != nil && cb.Enable && cb.Rollback {
		out += ", rollback"
	}
	if dc.BakeTimeInMinutes != nil {
		out += fmt.Sprintf(", bake %dm", *dc.BakeTimeInMinutes)
	}
	return out
}

func gpuHosts(p *ecs.Plan) []ecs.Service {
	var out []ecs.Service
	for _, s := range p.Services {
		if s.Hosts != nil {
			out = append(out, s)
		}
	}
	return out
}

// shortImage drops the registry host and shortens a digest for the summary; --output json
// has the full reference.
func shortImage(ref string) string {
	if _, rest, ok := strings.Cut(ref, "/"); ok {
		ref = rest
	}
	if repo, digest, ok := strings.Cut(ref, "@sha256:"); ok {
		return repo + "@sha256:" + digest[:min(len(digest), 12)]
	}
	return ref
}
