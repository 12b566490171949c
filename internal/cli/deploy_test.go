package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/awssim"
	"github.com/vmctl/vmctl/internal/deploy"
	"github.com/vmctl/vmctl/internal/dockertest"
	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/progress"
	"github.com/vmctl/vmctl/internal/release"
	"github.com/vmctl/vmctl/internal/stack"
)

// lockedBuffer is a stream a command writes while the test reads it.
type lockedBuffer struct {
	mu    sync.Mutex
	b     bytes.Buffer
	watch func(string) // sees every write
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	n, err := l.b.Write(p)
	watch := l.watch
	l.mu.Unlock()
	if watch != nil {
		watch(string(p))
	}
	return n, err
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// deployWorld is the simulator holding staging (provisioned for the demo stack) and
// releases r1 and r2 of the demo image (the same image, two releases) pushed to it. Both
// are pushed before anything is deployed: awssim runs tasks on this engine, and a push's
// cleanup untags the by-digest reference awssim pulled.
type deployWorld struct {
	sim *awssim.Sim
	api *client.Client
	g   *globalOptions
	rel map[string]*release.Release
}

func newDeployWorld(t *testing.T) *deployWorld {
	t.Helper()
	api := dockertest.Client(t)
	image := dockertest.FixtureImageBuilt(t, api)
	ctx := context.Background()
	inspect, err := api.ImageInspect(ctx, image)
	require.NoError(t, err)
	root := dockertest.RepoRoot()
	w := &deployWorld{
		sim: awssim.New(), api: api, rel: map[string]*release.Release{},
		g: &globalOptions{
			files: []string{filepath.Join(root, "compose", "demo.yaml")}, envDir: filepath.Join(root, "environments"),
			releaseDir: t.TempDir(), progress: "plain",
		},
	}
	t.Cleanup(w.sim.Close)
	w.sim.UseDocker(api)
	w.sim.SetCircuitBreakerThreshold(2)
	w.sim.AddUser("AKIASTAGING", awssim.Principal{Account: "222222222222", ARN: "arn:aws:iam::222222222222:role/ci"})
	env, err := environment.LoadNamed(w.g.envDir, "staging")
	require.NoError(t, err)
	st, err := stack.Load(ctx, stack.LoadOptions{Files: w.g.files})
	require.NoError(t, err)
	plan, err := ecs.Render(st, env, release.Release{})
	require.NoError(t, err)
	// Two GPU hosts, so a rolling deploy of openvoice (one task per host) has room.
	w.sim.Provision(plan, awssim.Instance{GPU: awssim.T4()}, awssim.Instance{GPU: awssim.T4()})

	cfg, err := simConfigFor(ctx, w.sim, "AKIASTAGING")
	require.NoError(t, err)
	c := deploy.NewClients(cfg)
	for i, id := range []string{"r1", "r2"} {
		rel := &release.Release{ID: id, Revision: "0123456789abcdef", Created: time.Now().UTC().Add(time.Duration(i) * time.Second), Images: map[string]release.Image{}}
		for _, svc := range []string{"frontend", "backend", "voicevox", "openvoice"} {
			rel.Images[svc] = release.Image{ImageID: inspect.ID, LocalRef: image}
		}
		unpinned, err := ecs.Render(st, env, *rel)
		require.NoError(t, err)
		pushed, err := deploy.Push(ctx, c.ECR, api, unpinned, rel, progress.Discard{})
		require.NoError(t, err)
		for svc, d := range deploy.Digests(pushed) {
			img := rel.Images[svc]
			img.Digest = d
			rel.Images[svc] = img
		}
		require.NoError(t, releaseStore(w.g).Save(*rel))
		w.rel[id] = rel
	}
	return w
}

// factory gives a command the simulator's staging credentials and these streams; in is
// what a person types, on a terminal when terminal is set.
func (w *deployWorld) factory(in string, terminal bool) (*Factory, *lockedBuffer, *lockedBuffer) {
	out, errOut := &lockedBuffer{}, &lockedBuffer{}
	f := NewFactory(&IOStreams{In: strings.NewReader(in), Out: out, ErrOut: errOut, ErrIsTerminal: terminal})
	f.AWSConfig = simAWS(w.sim, "AKIASTAGING")
	return f, out, errOut
}

var deployWrites = []string{"ECS.RegisterTaskDefinition", "ECS.CreateService", "ECS.UpdateService", "ApplicationAutoScaling.RegisterScalableTarget"}

func (w *deployWorld) writes() map[string]int {
	out := map[string]int{}
	for _, op := range deployWrites {
		out[op] = w.sim.Calls(op)
	}
	return out
}

// deploy, status, logs and rollback through their commands on staging: approval asked and
// refused, then given; the events and the final table; a redeploy that changes nothing;
// Ctrl-C that stops watching; rollback to the release before; the parity view.
func TestDeployStatusLogsRollbackCommands(t *testing.T) {
	w := newDeployWorld(t)
	ctx := context.Background()
	none := w.writes()
	fast := 100 * time.Millisecond

	// Staging requires approval: not on a terminal and without --yes, nothing is written.
	f, _, _ := w.factory("", false)
	err := runDeploy(ctx, f, w.g, &deployOptions{env: "staging", release: "r1", output: "table", poll: fast})
	require.Error(t, err)
	assert.Equal(t, "deploy release r1 to staging: staging requires approval: pass --yes (CI), or run it on a terminal to confirm", err.Error())
	f, _, errOut := w.factory("n\n", true)
	err = runDeploy(ctx, f, w.g, &deployOptions{env: "staging", release: "r1", output: "table", poll: fast})
	assert.EqualError(t, err, "not approved: nothing was changed in staging")
	assert.Contains(t, errOut.String(), "Deploy release r1 to staging? [y/N] ")
	assert.Contains(t, errOut.String(), "  backend    create  at sha256:", "the change list comes before the question")
	assert.Equal(t, none, w.writes())

	// Approved on the terminal: the services are created, events printed as they come.
	f, out, errOut := w.factory("y\n", true)
	require.NoError(t, runDeploy(ctx, f, w.g, &deployOptions{env: "staging", release: "r1", output: "table", poll: fast}), errOut.String())
	assert.Contains(t, errOut.String(), "(service backend) has reached a steady state.")
	assert.Contains(t, errOut.String(), "frontend Completed: vmctl-staging-frontend:1, 1/1 running")
	assert.Equal(t, "SERVICE\tTASK DEFINITION\tNEW REVISION\tROLLOUT\tROLLED BACK TO\n"+
		"openvoice\tvmctl-staging-openvoice:1\tyes\tCOMPLETED\t-\n"+
		"voicevox\tvmctl-staging-voicevox:1\tyes\tCOMPLETED\t-\n"+
		"backend\tvmctl-staging-backend:1\tyes\tCOMPLETED\t-\n"+
		"frontend\tvmctl-staging-frontend:1\tyes\tCOMPLETED\t-\n", out.String())

	// The same release again: nothing to approve, nothing written.
	before := w.writes()
	f, out, errOut = w.factory("", false)
	require.NoError(t, runDeploy(ctx, f, w.g, &deployOptions{env: "staging", release: "r1", output: "json", poll: fast}))
	assert.Contains(t, errOut.String(), "staging runs release r1 already: nothing to change")
	var res deploy.Result
	require.NoError(t, json.Unmarshal([]byte(out.String()), &res))
	assert.True(t, res.Unchanged)
	assert.Equal(t, before, w.writes())

	// Status: every service healthy on r1, with the release's digests.
	f, out, _ = w.factory("", false)
	require.NoError(t, runStatus(ctx, f, w.g, &statusOptions{env: "staging", output: "json"}))
	var rep deploy.StatusReport
	require.NoError(t, json.Unmarshal([]byte(out.String()), &rep))
	assert.Equal(t, "r1", rep.Release)
	require.Len(t, rep.Services, 4)
	for _, s := range rep.Services {
		assert.Equal(t, "healthy", s.Health, s.Service)
		assert.Equal(t, w.rel["r1"].Images[s.Service].Digest, s.Digest)
	}
	f, out, _ = w.factory("", false)
	require.NoError(t, runStatus(ctx, f, w.g, &statusOptions{env: "staging", output: "table"}))
	assert.Regexp(t, `(?m)^backend\tACTIVE\t2\t2\t0\tCOMPLETED\tr1\tsha256:[0-9a-f]{12}\thealthy\ttasks 2/2 healthy; targets 2/2 healthy$`, out.String())
	f, _, _ = w.factory("", false)
	err = runStatus(ctx, f, w.g, &statusOptions{output: "table"})
	assert.ErrorContains(t, err, "give --env E for one environment, or --all")

	// CloudWatch Logs of one service.
	f, out, _ = w.factory("", false)
	require.NoError(t, runCloudLogs(ctx, f, w.g, &logsOptions{env: "staging", services: []string{"voicevox"}}))
	assert.Regexp(t, `(?m)^voicevox/[0-9a-f]{8} \| .* voicevox: listening on :50021`, out.String())

	// r2 (the same images, another release): Ctrl-C as soon as the first level rolls out.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	f, _, errOut = w.factory("", false)
	errOut.watch = func(s string) {
		if strings.Contains(s, "has started") {
			cancel()
		}
	}
	err = runDeploy(runCtx, f, w.g, &deployOptions{env: "staging", release: "r2", yes: true, output: "table", poll: fast})
	require.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, errOut.String(), "stopped watching; the deployment goes on in ECS: still rolling out: ")
	assert.Contains(t, errOut.String(), "not started: backend, frontend (deploy again to finish them): follow it with vmctl status --env staging")

	// Deploying r2 again finishes it.
	f, out, errOut = w.factory("", false)
	require.NoError(t, runDeploy(ctx, f, w.g, &deployOptions{env: "staging", release: "r2", yes: true, output: "table", poll: fast}), errOut.String())
	assert.Contains(t, out.String(), "backend\tvmctl-staging-backend:2\tyes\tCOMPLETED\t-")

	// Rollback goes to r1's revisions; nothing is registered.
	registered := w.sim.Calls("ECS.RegisterTaskDefinition")
	f, out, errOut = w.factory("", false)
	require.NoError(t, runRollback(ctx, f, w.g, &rollbackOptions{env: "staging", yes: true, output: "table", poll: fast}), errOut.String())
	assert.Contains(t, errOut.String(), "roll staging back from release r2 to r1")
	assert.Contains(t, errOut.String(), "  backend → vmctl-staging-backend:1")
	assert.Contains(t, out.String(), "backend\tvmctl-staging-backend:1\tno\tCOMPLETED\t-")
	assert.Equal(t, registered, w.sim.Calls("ECS.RegisterTaskDefinition"))

	// The parity view: staging runs r1; dev and prod belong to other accounts than these
	// credentials, and say so in a word; nothing runs locally.
	f, out, errOut = w.factory("", false)
	require.NoError(t, runStatus(ctx, f, w.g, &statusOptions{all: true, output: "json"}))
	var par parityReport
	require.NoError(t, json.Unmarshal([]byte(out.String()), &par))
	byName := map[string]parityEnv{}
	var names []string
	for _, e := range par.Environments {
		byName[e.Name] = e
		names = append(names, e.Name)
	}
	assert.Equal(t, []string{"local", "dev", "staging", "prod"}, names)
	assert.Equal(t, "other-account", byName["dev"].Reason)
	assert.Equal(t, "other-account", byName["prod"].Reason)
	assert.Equal(t, "r1", byName["staging"].Release)
	assert.Equal(t, w.rel["r1"].Images["openvoice"].Digest, byName["staging"].Services["openvoice"].Digest)
	assert.Empty(t, par.Differ)
	f, out, errOut = w.factory("", false)
	require.NoError(t, runStatus(ctx, f, w.g, &statusOptions{all: true, output: "table"}))
	assert.Regexp(t, `(?m)^backend\t\S+\tother-account\tr1 sha256:[0-9a-f]{12}\tother-account$`, out.String())
	assert.Contains(t, errOut.String(), "dev: other-account: the credentials are for account 222222222222, dev is account 111111111111")
}

// Prod asks twice: --yes alone is refused before anything is read from AWS but the
// account; on a terminal the environment's name must be typed.
func TestApproval(t *testing.T) {
	staging := &environment.Environment{Name: "staging"}
	prod := &environment.Environment{Name: "prod"}
	dev := &environment.Environment{Name: "dev"}
	gated, open := &ecs.Plan{Approval: true}, &ecs.Plan{}
	tests := []struct {
		name        string
		env         *environment.Environment
		plan        *ecs.Plan
		yes, ap     bool
		in          string
		terminal    bool
		want, asked string
	}{
		{name: "dev needs none", env: dev, plan: open},
		{name: "staging --yes", env: staging, plan: gated, yes: true},
		{name: "staging in CI without --yes", env: staging, plan: gated, want: "deploy r: staging requires approval: pass --yes (CI), or run it on a terminal to confirm"},
		{name: "staging on a terminal", env: staging, plan: gated, in: "yes\n", terminal: true, asked: "Deploy r? [y/N] "},
		{name: "staging refused", env: staging, plan: gated, in: "\n", terminal: true, want: "not approved: nothing was changed in staging"},
		{name: "prod --yes alone", env: prod, plan: gated, yes: true, want: "deploy r: prod is production: --yes needs --approve-prod as well, or confirm on a terminal"},
		{name: "prod --yes --approve-prod", env: prod, plan: gated, yes: true, ap: true},
		{name: "prod typed", env: prod, plan: gated, in: "prod\n", terminal: true, asked: `This is production: type "prod" to confirm: `},
		{name: "prod y is not enough", env: prod, plan: gated, in: "y\n", terminal: true, want: "not confirmed: nothing was changed in prod"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var errOut bytes.Buffer
			ios := &IOStreams{In: strings.NewReader(tt.in), ErrOut: &errOut, ErrIsTerminal: tt.terminal}
			err := approve(ios, tt.env, tt.plan, tt.yes, tt.ap, "Deploy r")
			if tt.want != "" {
				assert.EqualError(t, err, tt.want)
			} else {
				assert.NoError(t, err)
			}
			assert.Contains(t, errOut.String(), tt.asked)
		})
	}
}
