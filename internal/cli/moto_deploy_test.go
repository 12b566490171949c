package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/smithy-go/middleware"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/mototest"
	"github.com/vmctl/vmctl/internal/release"
)

// motoWorld is dev's account on moto_server with its foundation applied by vmctl infra
// apply (the real rendered template, cut to what moto creates) and releases saved in a
// release directory of the test's own.
type motoWorld struct {
	srv        *mototest.Server
	envDir     string
	releaseDir string
	adapter    *motoAdapter
	calls      *callLog
	outputs    map[string]string
}

// callLog records every AWS operation vmctl calls and the inputs of the ones whose
// fields moto does not keep, so a test can check what was sent as well as what was kept.
type callLog struct {
	mu     sync.Mutex
	ops    []string // "ECS.CreateService"
	inputs map[string][]any
}

func (l *callLog) middleware(st *middleware.Stack) error {
	return st.Initialize.Add(middleware.InitializeMiddlewareFunc("motoCalls", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		op := awsmiddleware.GetServiceID(ctx) + "." + awsmiddleware.GetOperationName(ctx)
		l.mu.Lock()
		l.ops = append(l.ops, op)
		l.inputs[op] = append(l.inputs[op], in.Parameters)
		l.mu.Unlock()
		return next.HandleInitialize(ctx, in)
	}), middleware.Before)
}

// count is how often each of ops was called since the log was made.
func (l *callLog) count(ops ...string) map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for _, op := range ops {
		out[op] = 0
	}
	for _, op := range l.ops {
		if _, ok := out[op]; ok {
			out[op]++
		}
	}
	return out
}

// motoWrites are the calls by which a deploy changes an environment.
var motoWrites = []string{"ECS.RegisterTaskDefinition", "ECS.CreateService", "ECS.UpdateService",
	"Application Auto Scaling.RegisterScalableTarget", "Application Auto Scaling.PutScalingPolicy", "Application Auto Scaling.PutScheduledAction"}

// ownCache names dev's Redis endpoint in its file (bring your own): moto's CloudFormation
// creates no ElastiCache replication group, so the stack could not supply it.
func ownCache(dev string) string {
	const at = "    redis: # ElastiCache Redis, encrypted at rest and in transit\n"
	if !strings.Contains(dev, at) {
		panic("dev.yaml has no redis store to edit")
	}
	return strings.Replace(dev, at, at+"      endpoint: redis.dev.internal:6379\n", 1)
}

func newMotoWorld(t *testing.T) *motoWorld {
	t.Helper()
	w := &motoWorld{
		srv: mototest.Start(t, "111111111111"), envDir: infraEnvDir(t, t.TempDir(), ownCache), releaseDir: t.TempDir(),
		adapter: &motoAdapter{}, calls: &callLog{inputs: map[string][]any{}},
	}
	code, out, errOut := w.vmctl(t, "infra", "apply", "--env", "dev", "--yes", "-o", "json")
	require.Equal(t, ExitOK, code, errOut)
	var res applyResult
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	w.outputs = res.Outputs
	return w
}

// factory reaches moto through the adapter, recording the calls.
func (w *motoWorld) factory(t *testing.T, out, errOut *bytes.Buffer) *Factory {
	f := testFactory(nil, out, errOut)
	cfgFor := w.adapter.config(w.srv, t)
	f.AWSConfig = func(ctx context.Context, env *environment.Environment) (sdkaws.Config, error) {
		cfg, err := cfgFor(ctx, env)
		cfg.APIOptions = append(cfg.APIOptions, w.calls.middleware)
		return cfg, err
	}
	return f
}

// vmctl runs one command on the real stack against moto.
func (w *motoWorld) vmctl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	args = append([]string{"-f", "../../compose/compose.yaml", "--env-dir", w.envDir, "--release-dir", w.releaseDir, "--progress", "plain"}, args...)
	code := Run(context.Background(), w.factory(t, &out, &errOut), args)
	return code, out.String(), errOut.String()
}

// saveRelease writes release id of the stack's four images, each with a well-formed
// digest of its own (moto pulls nothing, so no image stands behind them).
func (w *motoWorld) saveRelease(t *testing.T, id string, created time.Time) *release.Release {
	t.Helper()
	rel := release.Release{ID: id, Revision: "0123456789abcdef0123456789abcdef01234567", Created: created, Images: map[string]release.Image{}}
	for i, svc := range []string{"frontend", "backend", "voicevox", "openvoice"} {
		rel.Images[svc] = release.Image{Digest: fmt.Sprintf("sha256:%064x", uint64(len(id))<<32|uint64(id[len(id)-1])<<8|uint64(i+1))}
	}
	require.NoError(t, release.Store{Dir: w.releaseDir}.Save(rel))
	return &rel
}

func TestDeployToMoto(t *testing.T) {
	w := newMotoWorld(t)
	w.saveRelease(t, "r1", time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	code, out, errOut := w.vmctl(t, "deploy", "--env", "dev", "--detach", "--release", "r1", "-o", "json")
	t.Logf("code %d\n%s\n%s", code, out, errOut)
	_ = strings.Contains
	_ = filepath.Join
	_ = awsecs.NewFromConfig
	_ = cloudformation.NewFromConfig
}
