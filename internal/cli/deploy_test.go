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

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/docker/docker/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	vmaws "github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/awssim"
	"github.com/vmctl/vmctl/internal/awssim/simtest"
	"github.com/vmctl/vmctl/internal/dockertest"
	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/infra"
	"github.com/vmctl/vmctl/internal/progress"
	"github.com/vmctl/vmctl/internal/registry"
	"github.com/vmctl/vmctl/internal/release"
	"github.com/vmctl/vmctl/internal/rollout"
	"github.com/vmctl/vmctl/internal/stack"
	"github.com/vmctl/vmctl/internal/status"
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
// releases r1, r2 and r3 of the demo image (the same image, three releases) pushed to it. Both
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
	// The account starts empty: staging's foundation comes from its stack (managed scaling
	// adds the GPU host a rolling deploy of openvoice, one task per host, needs).
	env, err = infra.Resolve(env, simtest.Foundation(t, w.sim, "AKIASTAGING", st, env))
	require.NoError(t, err)

	cfg, err := simConfigFor(ctx, w.sim, "AKIASTAGING")
	require.NoError(t, err)
	c := vmaws.NewClients(cfg)
	for i, id := range []string{"r1", "r2", "r3"} {
		rel := &release.Release{ID: id, Revision: "0123456789abcdef", Created: time.Now().UTC().Add(time.Duration(i) * time.Second), Images: map[string]release.Image{}}
		for _, svc := range []string{"frontend", "backend", "voicevox", "openvoice"} {
			rel.Images[svc] = release.Image{ImageID: inspect.ID, LocalRef: image}
		}
		unpinned, err := ecs.Render(st, env, *rel)
		require.NoError(t, err)
		pushed, err := registry.Push(ctx, c.ECR, api, unpinned, rel, progress.Discard{})
		require.NoError(t, err)
		for svc, d := range registry.Digests(pushed) {
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

	// Staging is protected: not on a terminal, and with --yes alone, nothing is written;
	// on a terminal a y is not enough.
	f, _, _ := w.factory("", false)
	err := runDeploy(ctx, f, w.g, &deployOptions{env: "staging", release: "r1", output: "table", poll: fast})
	require.Error(t, err)
	assert.Equal(t, "deploy release r1 to staging: not approved: staging is protected: pass --yes --approve-prod, or run it on a terminal to confirm; nothing was changed", err.Error())
	f, _, _ = w.factory("", false)
	err = runDeploy(ctx, f, w.g, &deployOptions{env: "staging", release: "r1", approval: approvalFlags{yes: true}, output: "table", poll: fast})
	assert.ErrorContains(t, err, "staging is protected: --yes needs --approve-prod as well")
	f, _, errOut := w.factory("y\n", true)
	err = runDeploy(ctx, f, w.g, &deployOptions{env: "staging", release: "r1", output: "table", poll: fast})
	assert.EqualError(t, err, `deploy release r1 to staging: not approved: the answer was not "staging"; nothing was changed in staging`)
	assert.Contains(t, errOut.String(), `Deploy release r1 to staging? staging is protected: type "staging" to confirm: `)
	assert.Contains(t, errOut.String(), "  backend    create  at sha256:", "the change list comes before the question")
	assert.Equal(t, none, w.writes())

	// Approved on the terminal: the services are created, events printed as they come.
	f, out, errOut := w.factory("staging\n", true)
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
	var res rollout.Result
	require.NoError(t, json.Unmarshal([]byte(out.String()), &res))
	assert.True(t, res.Unchanged)
	assert.Equal(t, before, w.writes())

	// Status: every service healthy on r1, with the release's digests.
	f, out, _ = w.factory("", false)
	require.NoError(t, runStatus(ctx, f, w.g, &statusOptions{env: "staging", output: "json"}))
	var rep status.StatusReport
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
	err = runDeploy(runCtx, f, w.g, &deployOptions{env: "staging", release: "r2", approval: approvalFlags{yes: true, approveProd: true}, output: "table", poll: fast})
	require.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, errOut.String(), "stopped watching; the deployment goes on in ECS: still rolling out: ")
	assert.Contains(t, errOut.String(), "not started: backend, frontend (deploy again to finish them): follow it with vmctl status --env staging")

	// Deploying r2 again finishes it.
	f, out, errOut = w.factory("", false)
	require.NoError(t, runDeploy(ctx, f, w.g, &deployOptions{env: "staging", release: "r2", approval: approvalFlags{yes: true, approveProd: true}, output: "table", poll: fast}), errOut.String())
	assert.Contains(t, out.String(), "backend\tvmctl-staging-backend:2\tyes\tCOMPLETED\t-")

	// Rollback goes to r1's revisions; nothing is registered.
	registered := w.sim.Calls("ECS.RegisterTaskDefinition")
	f, out, errOut = w.factory("", false)
	require.NoError(t, runRollback(ctx, f, w.g, &rollbackOptions{env: "staging", approval: approvalFlags{yes: true, approveProd: true}, output: "table", poll: fast}), errOut.String())
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

	// Staging is protected: a rollback without full approval writes nothing, and a
	// release that never ran there (r3) is no way back.
	before = w.writes()
	f, _, _ = w.factory("", false)
	err = runRollback(ctx, f, w.g, &rollbackOptions{env: "staging", to: "r2", approval: approvalFlags{yes: true}, output: "table", poll: fast})
	require.ErrorIs(t, err, vmaws.ErrNotApproved)
	assert.Contains(t, err.Error(), "roll staging back to release r2: not approved: staging is protected")
	f, _, _ = w.factory("", false)
	err = runRollback(ctx, f, w.g, &rollbackOptions{env: "staging", approval: approvalFlags{yes: true, approveProd: true}, output: "table", poll: fast})
	assert.ErrorContains(t, err, "service openvoice has no revision of a release before r1", "r1 is the first release staging ran")
	f, _, _ = w.factory("", false)
	err = runRollback(ctx, f, w.g, &rollbackOptions{env: "staging", to: "r3", approval: approvalFlags{yes: true, approveProd: true}, output: "table", poll: fast})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "never ran release r3 in staging (its last releases: r1, r2)")
	assert.Equal(t, before, w.writes())

	// The scan gate fails closed: an image ECR could not scan blocks a deploy into a
	// protected environment, and --allow-vulnerable lets it in, recorded in the release,
	// as a tag on the services (in any language) and in the audit log group.
	w.sim.PlantScanStatus("vmapp-demo/backend", w.rel["r2"].Images["backend"].Digest, "UNSUPPORTED_IMAGE", "The operating system and/or package manager are not supported.")
	f, _, _ = w.factory("", false)
	err = runDeploy(ctx, f, w.g, &deployOptions{env: "staging", release: "r2", approval: approvalFlags{yes: true, approveProd: true}, output: "table", poll: fast})
	require.ErrorIs(t, err, registry.ErrVulnerable)
	assert.Contains(t, err.Error(), "backend sha256:")
	assert.Contains(t, err.Error(), "scan UNSUPPORTED_IMAGE")
	assert.Equal(t, before, w.writes())

	reason := "ベースイメージの修正待ち APP-42"
	f, _, errOut = w.factory("", false)
	require.NoError(t, runDeploy(ctx, f, w.g, &deployOptions{env: "staging", release: "r2", allowVulnerable: reason, approval: approvalFlags{yes: true, approveProd: true}, output: "table", poll: fast}), errOut.String())
	assert.Contains(t, errOut.String(), "scan gate: backend sha256:")
	stored, err := releaseStore(w.g).Get("r2")
	require.NoError(t, err)
	require.Len(t, stored.Overrides, 1)
	assert.Equal(t, reason, stored.Overrides[0].Reason)
	assert.Equal(t, "staging", stored.Overrides[0].Environment)
	assert.Equal(t, "arn:aws:iam::222222222222:role/ci", stored.Overrides[0].By)

	cfg, err := simConfigFor(ctx, w.sim, "AKIASTAGING")
	require.NoError(t, err)
	svcs, err := awsecs.NewFromConfig(cfg).DescribeServices(ctx, &awsecs.DescribeServicesInput{Cluster: sdkaws.String("vmctl-staging"), Services: []string{"backend", "frontend"}, Include: []ecstypes.ServiceField{ecstypes.ServiceFieldTags}})
	require.NoError(t, err)
	require.Len(t, svcs.Services, 2)
	for _, svc := range svcs.Services {
		tags := map[string]string{}
		for _, tg := range svc.Tags {
			tags[sdkaws.ToString(tg.Key)] = sdkaws.ToString(tg.Value)
		}
		assert.Equal(t, "r2: "+reason, tags[rollout.TagAllowVulnerable], sdkaws.ToString(svc.ServiceName))
	}
	logs := cloudwatchlogs.NewFromConfig(cfg)
	groups, err := logs.DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{LogGroupNamePrefix: sdkaws.String("/vmctl/staging/audit")})
	require.NoError(t, err)
	require.Len(t, groups.LogGroups, 1)
	assert.Equal(t, int32(365), sdkaws.ToInt32(groups.LogGroups[0].RetentionInDays), "audit_retention_days")
	events, err := logs.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: sdkaws.String("/vmctl/staging/audit")})
	require.NoError(t, err)
	require.Len(t, events.Events, 1)
	var audit rollout.Override
	require.NoError(t, json.Unmarshal([]byte(sdkaws.ToString(events.Events[0].Message)), &audit))
	assert.Equal(t, "allow-vulnerable", audit.Event)
	assert.Equal(t, reason, audit.Reason)
	assert.Equal(t, "r2", audit.Release)
	require.Len(t, audit.Images, 1)
	assert.Equal(t, "UNSUPPORTED_IMAGE", audit.Images[0].Status)
}
