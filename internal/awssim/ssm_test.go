package awssim_test

import (
	"context"
	"testing"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/awssim"
	"github.com/vmctl/vmctl/internal/awssim/simtest"
)

const gpuQuery = "nvidia-smi --query-gpu=driver_version,name,memory.total,compute_cap --format=csv,noheader"

// runOn sends one AWS-RunShellScript to an instance and returns its
// invocation once done.
func runOn(t *testing.T, c *ssm.Client, instanceID string, commands ...string) *ssm.GetCommandInvocationOutput {
	t.Helper()
	ctx := context.Background()
	sent, err := c.SendCommand(ctx, &ssm.SendCommandInput{
		DocumentName: sdkaws.String("AWS-RunShellScript"),
		InstanceIds:  []string{instanceID},
		Parameters:   map[string][]string{"commands": commands},
	})
	require.NoError(t, err)
	out, err := c.GetCommandInvocation(ctx, &ssm.GetCommandInvocationInput{CommandId: sent.Command.CommandId, InstanceId: sdkaws.String(instanceID)})
	require.NoError(t, err)
	return out
}

func ssmFleet(t *testing.T) (*awssim.Sim, *ssm.Client, awssim.Instance, awssim.Instance) {
	t.Helper()
	sim := userSim(t)
	insts := sim.AddAutoScalingGroup("openvoice-gpu", 1, 5, 2, awssim.Instance{GPU: awssim.T4()}, awssim.Instance{InstanceType: "m5.large"})
	return sim, ssm.NewFromConfig(simtest.Config(t, sim, simKey)), insts[0], insts[1]
}

func TestSSMNvidiaSMIAnswersFromGPUFacts(t *testing.T) {
	_, c, gpu, _ := ssmFleet(t)

	out := runOn(t, c, gpu.ID, gpuQuery)
	assert.Equal(t, ssmtypes.CommandInvocationStatusSuccess, out.Status)
	assert.Equal(t, int32(0), out.ResponseCode)
	assert.Equal(t, "535.104.05, Tesla T4, 15360 MiB, 7.5\n", sdkaws.ToString(out.StandardOutputContent))
	assert.Empty(t, sdkaws.ToString(out.StandardErrorContent))
	assert.Equal(t, "aws:runShellScript", sdkaws.ToString(out.PluginName))
	assert.Equal(t, gpu.ID, sdkaws.ToString(out.InstanceId))
	_, err := time.Parse("2006-01-02T15:04:05.000Z", sdkaws.ToString(out.ExecutionEndDateTime))
	assert.NoError(t, err)

	out = runOn(t, c, gpu.ID, "nvidia-smi --query-gpu=driver_version,name,memory.total,compute_cap --format=csv,noheader,nounits")
	assert.Equal(t, "535.104.05, Tesla T4, 15360, 7.5\n", sdkaws.ToString(out.StandardOutputContent))

	out = runOn(t, c, gpu.ID, "nvidia-smi --query-gpu=name,memory.total --format=csv")
	assert.Equal(t, "name, memory.total [MiB]\nTesla T4, 15360 MiB\n", sdkaws.ToString(out.StandardOutputContent))

	out = runOn(t, c, gpu.ID, "nvidia-smi")
	assert.Contains(t, sdkaws.ToString(out.StandardOutputContent), "Driver Version: 535.104.05")
	assert.Contains(t, sdkaws.ToString(out.StandardOutputContent), "CUDA Version: 12.2")

	out = runOn(t, c, gpu.ID, "nvidia-smi --query-gpu=bogus --format=csv")
	assert.Equal(t, ssmtypes.CommandInvocationStatusFailed, out.Status)
	assert.Equal(t, int32(2), out.ResponseCode)
	assert.Contains(t, sdkaws.ToString(out.StandardOutputContent), `Field "bogus" is not a valid field to query.`)
}

func TestSSMMultiGPUAndOldDriver(t *testing.T) {
	sim := userSim(t)
	four := &awssim.GPUFacts{Model: "NVIDIA A10G", DriverVersion: "470.57.02", CUDAVersion: "11.4", MemoryMiB: 23028, ComputeCapability: "8.6", Count: 4}
	insts := sim.AddAutoScalingGroup("g5", 1, 1, 1, awssim.Instance{InstanceType: "g5.12xlarge", GPU: four})
	c := ssm.NewFromConfig(simtest.Config(t, sim, simKey))
	out := runOn(t, c, insts[0].ID, gpuQuery)
	line := "470.57.02, NVIDIA A10G, 23028 MiB, 8.6\n"
	assert.Equal(t, line+line+line+line, sdkaws.ToString(out.StandardOutputContent), "one line per GPU")

	require.True(t, sim.SetInstanceGPU(insts[0].ID, awssim.T4()))
	out = runOn(t, c, insts[0].ID, gpuQuery)
	assert.Equal(t, "535.104.05, Tesla T4, 15360 MiB, 7.5\n", sdkaws.ToString(out.StandardOutputContent))
}

func TestSSMFailures(t *testing.T) {
	_, c, gpu, cpu := ssmFleet(t)
	ctx := context.Background()

	out := runOn(t, c, cpu.ID, gpuQuery)
	assert.Equal(t, ssmtypes.CommandInvocationStatusFailed, out.Status)
	assert.Equal(t, int32(9), out.ResponseCode, "nvidia-smi without a GPU")
	assert.Contains(t, sdkaws.ToString(out.StandardOutputContent), "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver")
	assert.Contains(t, sdkaws.ToString(out.StandardErrorContent), "failed to run commands: exit status 9")

	out = runOn(t, c, gpu.ID, "python3 -c 'import torch'")
	assert.Equal(t, ssmtypes.CommandInvocationStatusFailed, out.Status)
	assert.Equal(t, int32(127), out.ResponseCode)
	assert.Regexp(t, `_script\.sh: line 1: python3: command not found\n`, sdkaws.ToString(out.StandardErrorContent))

	out = runOn(t, c, gpu.ID, "unknown-tool", gpuQuery)
	assert.Equal(t, ssmtypes.CommandInvocationStatusSuccess, out.Status, "the last line decides, as in a script without set -e")
	assert.Contains(t, sdkaws.ToString(out.StandardErrorContent), "line 1: unknown-tool: command not found")

	_, err := c.SendCommand(ctx, &ssm.SendCommandInput{DocumentName: sdkaws.String("AWS-RunShellScript"), InstanceIds: []string{"i-00000000000000000"}, Parameters: map[string][]string{"commands": {gpuQuery}}})
	assert.Equal(t, "InvalidInstanceId", awsErrorCode(err))
	_, err = c.SendCommand(ctx, &ssm.SendCommandInput{DocumentName: sdkaws.String("AWS-RunPowerShellScript"), InstanceIds: []string{gpu.ID}, Parameters: map[string][]string{"commands": {"dir"}}})
	assert.Equal(t, "InvalidDocument", awsErrorCode(err))
	_, err = c.SendCommand(ctx, &ssm.SendCommandInput{DocumentName: sdkaws.String("AWS-RunShellScript"), InstanceIds: []string{gpu.ID}})
	assert.Equal(t, "InvalidParameters", awsErrorCode(err))
	_, err = c.GetCommandInvocation(ctx, &ssm.GetCommandInvocationInput{CommandId: sdkaws.String("00000000-0000-0000-0000-000000000000"), InstanceId: sdkaws.String(gpu.ID)})
	assert.Equal(t, "InvocationDoesNotExist", awsErrorCode(err))
	_, err = ssm.NewFromConfig(simtest.Config(t, userSim(t), "AKIASTRANGER")).ListCommandInvocations(ctx, &ssm.ListCommandInvocationsInput{})
	assert.Equal(t, "UnrecognizedClientException", awsErrorCode(err))
}

func TestSSMListCommandInvocations(t *testing.T) {
	sim, c, gpu, cpu := ssmFleet(t)
	ctx := context.Background()
	sent, err := c.SendCommand(ctx, &ssm.SendCommandInput{
		DocumentName: sdkaws.String("AWS-RunShellScript"),
		InstanceIds:  []string{gpu.ID, cpu.ID},
		Comment:      sdkaws.String("vmctl doctor"),
		Parameters:   map[string][]string{"commands": {gpuQuery}},
	})
	require.NoError(t, err)
	cmd := sent.Command
	assert.Len(t, sdkaws.ToString(cmd.CommandId), 36)
	assert.Equal(t, "AWS-RunShellScript", sdkaws.ToString(cmd.DocumentName))
	assert.Equal(t, []string{gpu.ID, cpu.ID}, cmd.InstanceIds)
	assert.Equal(t, map[string][]string{"commands": {gpuQuery}}, cmd.Parameters)
	assert.Equal(t, int32(2), cmd.TargetCount)
	assert.False(t, sdkaws.ToTime(cmd.RequestedDateTime).IsZero())

	list, err := c.ListCommandInvocations(ctx, &ssm.ListCommandInvocationsInput{CommandId: cmd.CommandId, Details: true})
	require.NoError(t, err)
	require.Len(t, list.CommandInvocations, 2)
	byID := map[string]ssmtypes.CommandInvocation{}
	for _, inv := range list.CommandInvocations {
		byID[sdkaws.ToString(inv.InstanceId)] = inv
		assert.Equal(t, "vmctl doctor", sdkaws.ToString(inv.Comment))
	}
	ok := byID[gpu.ID]
	assert.Equal(t, ssmtypes.CommandInvocationStatusSuccess, ok.Status)
	require.Len(t, ok.CommandPlugins, 1)
	assert.Equal(t, "aws:runShellScript", sdkaws.ToString(ok.CommandPlugins[0].Name))
	assert.Equal(t, "535.104.05, Tesla T4, 15360 MiB, 7.5\n", sdkaws.ToString(ok.CommandPlugins[0].Output))
	assert.Equal(t, int32(0), ok.CommandPlugins[0].ResponseCode)
	bad := byID[cpu.ID]
	assert.Equal(t, ssmtypes.CommandInvocationStatusFailed, bad.Status)
	assert.Equal(t, int32(9), bad.CommandPlugins[0].ResponseCode)
	assert.Contains(t, sdkaws.ToString(bad.CommandPlugins[0].Output), "----------ERROR-------")

	brief, err := c.ListCommandInvocations(ctx, &ssm.ListCommandInvocationsInput{InstanceId: sdkaws.String(gpu.ID)})
	require.NoError(t, err)
	require.Len(t, brief.CommandInvocations, 1)
	assert.Empty(t, brief.CommandInvocations[0].CommandPlugins, "no details unless asked")

	// With latency the invocation is InProgress first; the SDK's waiter polls it out.
	sim.SetSSMLatency(300 * time.Millisecond)
	sent, err = c.SendCommand(ctx, &ssm.SendCommandInput{DocumentName: sdkaws.String("AWS-RunShellScript"), InstanceIds: []string{gpu.ID}, Parameters: map[string][]string{"commands": {gpuQuery}}})
	require.NoError(t, err)
	in := &ssm.GetCommandInvocationInput{CommandId: sent.Command.CommandId, InstanceId: sdkaws.String(gpu.ID)}
	early, err := c.GetCommandInvocation(ctx, in)
	require.NoError(t, err)
	assert.Equal(t, ssmtypes.CommandInvocationStatusInProgress, early.Status)
	assert.Equal(t, int32(-1), early.ResponseCode)
	assert.Empty(t, sdkaws.ToString(early.StandardOutputContent))
	done, err := ssm.NewCommandExecutedWaiter(c, func(o *ssm.CommandExecutedWaiterOptions) {
		o.MinDelay, o.MaxDelay = 50*time.Millisecond, 100*time.Millisecond
	}).WaitForOutput(ctx, in, 30*time.Second)
	require.NoError(t, err)
	assert.Equal(t, ssmtypes.CommandInvocationStatusSuccess, done.Status)
}
