package cli

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	vmaws "github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/awssim"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/promote"
	"github.com/vmctl/vmctl/internal/registry"
)

func (w *cloudWorld) promoteOptions() *promoteOptions {
	return &promoteOptions{
		output: "table",
		awsConfig: map[string]func(ctx context.Context, env *environment.Environment) (sdkaws.Config, error){
			"staging": w.awsConfig("staging"), "prod": w.awsConfig("prod"),
		},
		verifyFrom: quickVerify(), verifyTo: quickVerify(),
		poll: 100 * time.Millisecond,
	}
}

// prodWrites counts the calls that would change prod (or any account).
func prodWrites(sim *awssim.Sim) int {
	n := 0
	for _, op := range []string{"ECR.CreateRepository", "ECR.PutImage", "ECS.RegisterTaskDefinition", "ECS.CreateService", "ECS.UpdateService"} {
		n += sim.Calls(op)
	}
	return n
}

func TestPromoteCommand(t *testing.T) {
	w := newCloudWorld(t)
	w.provisionAndDeploy(t, "prod")
	ctx := context.Background()

	// Each side's credentials are checked against its own account first.
	before := prodWrites(w.sim)
	o := w.promoteOptions()
	o.awsConfig["prod"] = w.awsConfig("staging")
	f, _, _ := w.factory("")
	err := runPromote(ctx, f, w.g, o, "staging", "prod")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "credentials are for account 222222222222")
	assert.Contains(t, err.Error(), "environment prod is account 333333333333")
	assert.Zero(t, w.sim.Calls("ECS.RunTask"), "not even verify ran")

	// prod needs approval: --yes alone is not enough, and without a terminal nothing is asked.
	o = w.promoteOptions()
	o.approval = approvalFlags{yes: true}
	f, _, _ = w.factory("")
	err = runPromote(ctx, f, w.g, o, "staging", "prod")
	require.Error(t, err)
	assert.ErrorIs(t, err, vmaws.ErrNotApproved)
	assert.Contains(t, err.Error(), "run the one-off CUDA probe task in staging (verify): not approved: staging is protected: --yes needs --approve-prod as well")
	assert.Zero(t, w.sim.Calls("ECS.RunTask"), "staging's probe task needs the approval too")
	o.verifyFrom.NoProbe = true
	f, _, _ = w.factory("")
	err = runPromote(ctx, f, w.g, o, "staging", "prod")
	require.Error(t, err)
	assert.ErrorIs(t, err, vmaws.ErrNotApproved)
	assert.Contains(t, err.Error(), "promote release r1 to prod: not approved: prod is protected: --yes needs --approve-prod as well")
	assert.Equal(t, before, prodWrites(w.sim), "nothing written")

	// A CRITICAL finding blocks it.
	backend := w.rel.Images["backend"].Digest
	w.sim.PlantScanFindings("vmapp-demo/backend", backend, []awssim.ScanFinding{{Name: "CVE-2024-0001", Severity: "CRITICAL"}})
	o = w.promoteOptions()
	o.approval = approvalFlags{yes: true, approveProd: true}
	f, _, _ = w.factory("")
	err = runPromote(ctx, f, w.g, o, "staging", "prod")
	require.ErrorIs(t, err, registry.ErrVulnerable)
	assert.Equal(t, ExitError, exitCode(err))
	assert.Equal(t, before, prodWrites(w.sim))

	// --allow-vulnerable lets it through, recorded; nothing but manifests moves.
	o.allowVulnerable = "accepted until APP-42 ships"
	f, out, errOut := w.factory("")
	err = runPromote(ctx, f, w.g, o, "staging", "prod")
	require.NoError(t, err, errOut.String())
	assert.Contains(t, errOut.String(), "release r1: 4 images from staging to prod, retagged by manifest within one registry (no layer moves)")
	assert.Contains(t, out.String(), "CRITICAL findings allowed (recorded as vmctl:allow-vulnerable): accepted until APP-42 ships\n")
	assert.Contains(t, out.String(), "Layer bytes moved: 0\n")
	assert.Contains(t, out.String(), "verify prod: warning (https load balancer warning: the environment names no domain")

	// Again, as JSON: prod runs r1 already, so nothing moves and nothing is registered.
	registered := w.sim.Calls("ECS.RegisterTaskDefinition")
	o.output = "json"
	f, out, errOut = w.factory("")
	err = runPromote(ctx, f, w.g, o, "staging", "prod")
	require.NoError(t, err, errOut.String())
	var res promote.Result
	require.NoError(t, json.Unmarshal(out.Bytes(), &res))
	assert.Zero(t, res.BytesMoved)
	for _, c := range res.Copies {
		assert.Equal(t, "present", c.Method)
	}
	require.NotNil(t, res.Deploy)
	assert.True(t, res.Deploy.Unchanged)
	assert.Equal(t, registered, w.sim.Calls("ECS.RegisterTaskDefinition"))
}
