package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/spf13/cobra"

	vmaws "github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/release"
	"github.com/vmctl/vmctl/internal/rollout"
	"github.com/vmctl/vmctl/internal/stack"
	"github.com/vmctl/vmctl/internal/status"
)

// parityTimeout bounds how long --all waits for one environment, so that one unreachable
// account costs a word in its column, not the whole view.
const parityTimeout = 45 * time.Second

type statusOptions struct {
	env    string
	all    bool
	wait   bool
	output string
	poll   time.Duration // between looks while waiting; tests shorten it
}

func newStatusCmd(f *Factory, g *globalOptions) *cobra.Command {
	o := &statusOptions{}
	cmd := &cobra.Command{
		Use:   "status --env E | --all",
		Short: "Show what an AWS environment runs, or every environment side by side",
		Long: `With --env, per ECS service: desired, running and pending tasks, the rollout state of its
deployment, the release and image digest it runs, and its health (the tasks' container
health checks, and its targets behind the load balancer).

With --all, the parity view: the release and digest of every service in each environment,
local (the containers on this Docker Engine, matched to the releases built here) first, then
every AWS environment file. An environment that cannot be read says why in one word
(no-credentials, other-account, no-foundation, no-cluster, unreachable) instead of failing the view.

With --wait, status first follows every rollout in progress (a deploy --detach's) with the
deploy's own watcher — service events, the circuit breaker's rollback — and exits non-zero
when one failed; Ctrl-C stops waiting, not the rollout.`,
		Example: `  vmctl status --env prod
  vmctl deploy --env dev --detach && vmctl status --env dev --wait
  vmctl status --all --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runStatus(cmd.Context(), f, g, o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.env, "env", "", "AWS environment (dev, staging, prod)")
	fl.BoolVar(&o.all, "all", false, "every environment side by side: release and digest per service")
	fl.BoolVar(&o.wait, "wait", false, "first follow every rollout in progress to its end, as deploy does (after deploy --detach); a failed one exits non-zero")
	fl.StringVarP(&o.output, "output", "o", "table", "table or json")
	return cmd
}

func runStatus(ctx context.Context, f *Factory, g *globalOptions, o *statusOptions) error {
	format, err := parseOutput(o.output)
	if err != nil {
		return err
	}
	if o.all == (o.env != "") {
		return usageError{errors.New("give --env E for one environment, or --all for every one side by side")}
	}
	if o.all {
		if o.wait {
			return usageError{errors.New("--wait follows one environment's rollouts: give --env E")}
		}
		return runParity(ctx, f, g, format)
	}
	tg, err := cloudTarget(ctx, f, g, o.env, release.Release{})
	if err != nil {
		return err
	}
	if o.wait {
		pw, events, err := rolloutOutput(f, g)
		if err != nil {
			return err
		}
		_, err = rollout.Wait(ctx, tg.clients, tg.plan, rollout.WaitOptions{Progress: pw, Events: events, Poll: o.poll})
		pw.Close()
		var sr *rollout.StillRolling
		if errors.As(err, &sr) {
			fmt.Fprintln(f.IO.ErrOut, sr.Error())
		}
		if err != nil {
			return err
		}
	}
	rep, err := status.Status(ctx, tg.clients, tg.plan)
	if err != nil {
		return err
	}
	if format == outputJSON {
		return writeJSON(f.IO.Out, rep)
	}
	fmt.Fprintf(f.IO.ErrOut, "%s: cluster %s, release %s\n", rep.Environment, rep.Cluster, cmp.Or(rep.Release, "mixed"))
	t := newTable(f.IO.Out, f.IO.OutIsTerminal, "SERVICE", "STATE", "DESIRED", "RUNNING", "PENDING", "ROLLOUT", "RELEASE", "DIGEST", "HEALTH", "DETAIL")
	for _, s := range rep.Services {
		t.add(s.Service, s.State, strconv.Itoa(int(s.Desired)), strconv.Itoa(int(s.Running)), strconv.Itoa(int(s.Pending)),
			dash(s.Rollout), dash(s.Release), shortDigest(s.Digest), s.Health, s.HealthLine())
	}
	return t.flush()
}

// parityReport is every environment's release and digest per service.
type parityReport struct {
	Environments []parityEnv `json:"environments"`
	Services     []string    `json:"services"`
	// Differ are the services whose digest is not the same everywhere they run.
	Differ []string `json:"differ"`
}

type parityEnv struct {
	Name     string                `json:"name"`
	Kind     string                `json:"kind"`
	Reason   string                `json:"reason,omitempty"` // one word, when it could not be read
	Detail   string                `json:"detail,omitempty"` // the error behind the reason
	Release  string                `json:"release,omitempty"`
	Services map[string]parityCell `json:"services,omitempty"`
}

type parityCell struct {
	Release string `json:"release,omitempty"`
	Digest  string `json:"digest,omitempty"`
	State   string `json:"state"` // the service's health, or missing, or unreleased (local)
}

func runParity(ctx context.Context, f *Factory, g *globalOptions, format outputFormat) error {
	st, err := loadRenderStack(ctx, f, g)
	if err != nil {
		return err
	}
	names, err := environment.Names(g.envDir)
	if err != nil {
		return err
	}
	rank := map[string]int{"local": 0, "dev": 1, "staging": 2, "prod": 3}
	slices.SortStableFunc(names, func(a, b string) int {
		ra, oka := rank[a]
		rb, okb := rank[b]
		switch {
		case oka && okb:
			return cmp.Compare(ra, rb)
		case oka:
			return -1
		case okb:
			return 1
		}
		return strings.Compare(a, b)
	})
	if !slices.Contains(names, "local") {
		names = append([]string{"local"}, names...)
	}
	envs := make([]parityEnv, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			ectx, cancel := context.WithTimeout(ctx, parityTimeout)
			defer cancel()
			envs[i] = envParity(ectx, f, g, st, name)
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	rep := parityReport{Environments: envs, Services: []string{}, Differ: []string{}}
	services := map[string]bool{}
	for _, e := range envs {
		for s := range e.Services {
			services[s] = true
		}
	}
	rep.Services = slices.Sorted(maps.Keys(services))
	for _, s := range rep.Services {
		digests := map[string]bool{}
		for _, e := range envs {
			if c, ok := e.Services[s]; ok && c.Digest != "" {
				digests[c.Digest] = true
			}
		}
		if len(digests) > 1 {
			rep.Differ = append(rep.Differ, s)
		}
	}
	if format == outputJSON {
		return writeJSON(f.IO.Out, rep)
	}
	header := []string{"SERVICE"}
	for _, e := range envs {
		header = append(header, strings.ToUpper(e.Name))
	}
	t := newTable(f.IO.Out, f.IO.OutIsTerminal, header...)
	for _, s := range rep.Services {
		row := []string{s}
		for _, e := range envs {
			row = append(row, e.cell(s))
		}
		t.add(row...)
	}
	if err := t.flush(); err != nil {
		return err
	}
	for _, e := range envs {
		if e.Reason != "" {
			fmt.Fprintf(f.IO.ErrOut, "%s: %s: %s\n", e.Name, e.Reason, e.Detail)
		}
	}
	if len(rep.Differ) > 0 {
		fmt.Fprintf(f.IO.Out, "\ndigests differ: %s\n", strings.Join(rep.Differ, ", "))
	} else {
		fmt.Fprintln(f.IO.Out, "\nthe same digest everywhere each service runs")
	}
	return nil
}

func (e parityEnv) cell(service string) string {
	if e.Reason != "" {
		return e.Reason
	}
	c, ok := e.Services[service]
	switch {
	case !ok:
		return "-"
	case c.Digest == "" && c.Release != "":
		return c.Release + " (not pushed)"
	case c.Digest == "":
		return c.State
	}
	return strings.TrimSpace(c.Release + " " + shortDigest(c.Digest))
}

// envParity reads one environment for the parity view; it never fails, it says why.
func envParity(ctx context.Context, f *Factory, g *globalOptions, st *stack.Stack, name string) parityEnv {
	pe := parityEnv{Name: name, Kind: string(environment.KindAWS), Services: map[string]parityCell{}}
	fail := func(reason string, err error) parityEnv {
		pe.Reason, pe.Services = reason, nil
		if err != nil {
			pe.Detail = oneLine(err)
		}
		return pe
	}
	env, err := environment.LoadNamed(g.envDir, name)
	switch {
	case name == "local" && (err == nil && env.Kind == environment.KindLocal || errors.Is(err, environment.ErrUnknownEnvironment)):
		return localParity(ctx, f, g, st)
	case err != nil:
		return fail("invalid", err)
	case env.Kind != environment.KindAWS:
		pe.Kind = string(env.Kind)
		return fail("not-aws", nil)
	}
	cfg, err := f.AWSConfig(ctx, env)
	if err != nil {
		return fail("no-credentials", err)
	}
	id, err := vmaws.CallerIdentity(ctx, sts.NewFromConfig(cfg))
	if err != nil {
		return fail("no-credentials", err)
	}
	if id.Account != env.AWS.AccountID {
		return fail("other-account", fmt.Errorf("the credentials are for account %s, %s is account %s: set AWS_PROFILE to its profile", id.Account, name, env.AWS.AccountID))
	}
	if env, err = withFoundation(ctx, cfg, env); err != nil {
		return fail("no-foundation", err)
	}
	plan, err := ecs.Render(st, env, release.Release{})
	if err != nil {
		return fail("invalid", err)
	}
	rep, err := status.Status(ctx, vmaws.NewClients(cfg), plan)
	switch {
	case errors.Is(err, rollout.ErrNoCluster):
		return fail("no-cluster", err)
	case err != nil:
		return fail("unreachable", err)
	}
	pe.Release = rep.Release
	for _, s := range rep.Services {
		pe.Services[s.Service] = parityCell{Release: s.Release, Digest: s.Digest, State: s.Health}
	}
	return pe
}

// localParity reads the stack's containers on this engine and ties each image to the
// release built here that recorded it, whose digest is what the registry got.
func localParity(ctx context.Context, f *Factory, g *globalOptions, st *stack.Stack) parityEnv {
	pe := parityEnv{Name: "local", Kind: string(environment.KindLocal), Services: map[string]parityCell{}}
	fail := func(reason string, err error) parityEnv {
		pe.Reason, pe.Services = reason, nil
		if err != nil {
			pe.Detail = oneLine(err)
		}
		return pe
	}
	eng, err := f.Engine(ctx)
	if err != nil {
		return fail("no-engine", err)
	}
	rows, err := eng.PS(ctx, st)
	if err != nil {
		return fail("no-engine", err)
	}
	if len(rows) == 0 {
		return fail("down", errors.New("no container of the stack on this engine: vmctl up"))
	}
	docker, err := f.Docker(ctx)
	if err != nil {
		return fail("no-engine", err)
	}
	releases, err := releaseStore(g).List() // newest first
	if err != nil {
		return fail("invalid", err)
	}
	seen := map[string]bool{}
	for _, r := range rows {
		cell := parityCell{State: cmp.Or(r.Health, r.State)}
		info, err := docker.ContainerInspect(ctx, r.ID)
		if err != nil {
			continue
		}
		i := slices.IndexFunc(releases, func(rel release.Release) bool { return rel.Images[r.Service].ImageID == info.Image })
		if i < 0 {
			cell.State = "unreleased"
		} else {
			cell.Release, cell.Digest = releases[i].ID, releases[i].Images[r.Service].Digest
			seen[cell.Release] = true
		}
		pe.Services[r.Service] = cell
	}
	if len(seen) == 1 {
		for id := range seen {
			pe.Release = id
		}
	}
	return pe
}
