package infra_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/infra"
	"github.com/vmctl/vmctl/internal/mototest"
	"github.com/vmctl/vmctl/internal/progress"
)

// miniTemplate is a small foundation of the test's own: a VPC whose CIDR the test varies,
// a subnet, and a video bucket that CloudFormation keeps when the stack goes.
func miniTemplate(t *testing.T, cidr, bucketID string) []byte {
	t.Helper()
	tpl := map[string]any{
		"AWSTemplateFormatVersion": "2010-09-09",
		"Resources": map[string]any{
			"Vpc":    map[string]any{"Type": "AWS::EC2::VPC", "Properties": map[string]any{"CidrBlock": cidr}},
			"Public": map[string]any{"Type": "AWS::EC2::Subnet", "Properties": map[string]any{"VpcId": map[string]any{"Ref": "Vpc"}, "CidrBlock": "10.0.1.0/24"}},
			// Properties, even a trivial one: moto sees a resource without them as modified on every change set.
			bucketID: map[string]any{"Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
				"Properties": map[string]any{"VersioningConfiguration": map[string]any{"Status": "Enabled"}}},
		},
		"Outputs": map[string]any{
			infra.OutVPC: map[string]any{"Value": map[string]any{"Ref": "Vpc"}},
		},
	}
	b, err := json.MarshalIndent(tpl, "", "  ")
	require.NoError(t, err)
	return b
}

// recorder keeps the progress events it is given.
type recorder struct{ events []progress.Event }

func (r *recorder) Event(e progress.Event) { r.events = append(r.events, e) }
func (r *recorder) Close()                 {}

func (r *recorder) lines() string {
	var b strings.Builder
	for _, e := range r.events {
		b.WriteString(e.Resource + " " + e.Text + "\n")
	}
	return b.String()
}

// The whole life of a stack against moto's CloudFormation: no foundation, create, an
// unchanged apply, one change, a refused removal of data, status, destroy.
func TestStackLifecycleAgainstMoto(t *testing.T) {
	srv := mototest.Start(t, "111111111111")
	cfg := srv.Config(t)
	cfn := cloudformation.NewFromConfig(cfg)
	ctx := context.Background()

	_, err := infra.ReadOutputs(ctx, cfn, "dev")
	require.EqualError(t, err, "environment dev has no foundation: stack vmctl-dev does not exist: run vmctl infra apply --env dev")

	opts := infra.ChangeSetOptions{Template: miniTemplate(t, "10.0.0.0/16", "VideoBucket"), Tags: map[string]string{"vmctl:environment": "dev"}}
	cs, err := infra.CreateChangeSet(ctx, cfn, "dev", opts)
	require.NoError(t, err)
	assert.True(t, cs.Create)
	assert.Equal(t, map[infra.Action]int{infra.ActionAdd: 3}, cs.Count())
	require.NoError(t, cs.RefuseStateful(nil), "adding a stateful resource is no replacement")

	rec := &recorder{}
	res, err := infra.Execute(ctx, cfn, cs, infra.WatchOptions{Progress: rec})
	require.NoError(t, err)
	assert.Equal(t, "CREATE_COMPLETE", res.Status)
	// moto writes the stack's own events only; resource events are shown in events_test.go.
	assert.Equal(t, "vmctl-dev CREATE_IN_PROGRESS\nvmctl-dev CREATE_COMPLETE\n", rec.lines())

	out, err := infra.ReadOutputs(ctx, cfn, "dev")
	require.NoError(t, err)
	vpcs, err := ec2.NewFromConfig(cfg).DescribeVpcs(ctx, &ec2.DescribeVpcsInput{VpcIds: []string{out[infra.OutVPC]}})
	require.NoError(t, err)
	require.Len(t, vpcs.Vpcs, 1)
	assert.Equal(t, "10.0.0.0/16", sdkaws.ToString(vpcs.Vpcs[0].CidrBlock))

	// The same template again: no change set is left behind, nothing changes.
	cs, err = infra.CreateChangeSet(ctx, cfn, "dev", opts)
	require.NoError(t, err)
	assert.True(t, cs.Empty())
	assert.Empty(t, changeSets(t, cfn))

	// One property changed: exactly that resource is modified.
	opts.Template = miniTemplate(t, "10.1.0.0/16", "VideoBucket")
	cs, err = infra.CreateChangeSet(ctx, cfn, "dev", opts)
	require.NoError(t, err)
	require.Len(t, cs.Changes, 1)
	assert.Equal(t, infra.Change{Action: infra.ActionModify, LogicalID: "Vpc", Type: "AWS::EC2::VPC"}, cs.Changes[0])
	require.NoError(t, cs.Delete(ctx, cfn))
	assert.Empty(t, changeSets(t, cfn))

	// Renaming the bucket removes the stateful one: refused unless named.
	opts.Template = miniTemplate(t, "10.0.0.0/16", "Videos")
	cs, err = infra.CreateChangeSet(ctx, cfn, "dev", opts)
	require.NoError(t, err)
	err = cs.RefuseStateful(nil)
	require.EqualError(t, err, "refused to change stack vmctl-dev: the change set would remove VideoBucket (AWS::S3::Bucket), and stateful resources are never replaced or removed silently: nothing was changed; if the data may go, run vmctl infra apply --env dev --allow-replace VideoBucket")
	require.NoError(t, cs.RefuseStateful([]string{"VideoBucket"}))
	require.NoError(t, cs.Delete(ctx, cfn))

	st, err := infra.Status(ctx, cfn, "dev", infra.StatusOptions{DriftTimeout: 5e9})
	require.NoError(t, err)
	assert.True(t, st.Exists)
	assert.Equal(t, "CREATE_COMPLETE", st.Status)
	assert.Equal(t, "healthy", st.Meaning)
	assert.Equal(t, out, st.Outputs)
	require.NotNil(t, st.Drift)
	assert.Equal(t, "UNKNOWN", st.Drift.Status, "moto 5.2 does not detect drift: %s", st.Drift.Detail)

	rec = &recorder{}
	res, err = infra.Destroy(ctx, cfn, "dev", infra.WatchOptions{Progress: rec})
	require.NoError(t, err)
	assert.Equal(t, "DELETE_COMPLETE", res.Status)
	require.Len(t, res.Retained, 1)
	assert.Equal(t, "VideoBucket", res.Retained[0].LogicalID)
	assert.Equal(t, "Retain", res.Retained[0].Policy)
	assert.NotEmpty(t, res.Retained[0].PhysicalID)
	_, err = infra.ReadOutputs(ctx, cfn, "dev")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "does not exist")
}

// The preview of a new stack creates nothing: not executed, it leaves no stack behind.
func TestPreviewOfANewStackCreatesNothing(t *testing.T) {
	srv := mototest.Start(t, "111111111111")
	cfn := cloudformation.NewFromConfig(srv.Config(t))
	ctx := context.Background()
	cs, err := infra.CreateChangeSet(ctx, cfn, "dev", infra.ChangeSetOptions{Template: miniTemplate(t, "10.0.0.0/16", "VideoBucket")})
	require.NoError(t, err)
	assert.Equal(t, []infra.Change{
		{Action: infra.ActionAdd, LogicalID: "Public", Type: "AWS::EC2::Subnet"},
		{Action: infra.ActionAdd, LogicalID: "VideoBucket", Type: "AWS::S3::Bucket", Stateful: true},
		{Action: infra.ActionAdd, LogicalID: "Vpc", Type: "AWS::EC2::VPC"},
	}, cs.Changes)
	require.NoError(t, cs.Delete(ctx, cfn))
	st, err := infra.DescribeStack(ctx, cfn, "dev")
	require.NoError(t, err)
	assert.Nil(t, st)
}

func changeSets(t *testing.T, cfn *cloudformation.Client) []string {
	t.Helper()
	out, err := cfn.ListChangeSets(context.Background(), &cloudformation.ListChangeSetsInput{StackName: sdkaws.String("vmctl-dev")})
	require.NoError(t, err)
	var names []string
	for _, s := range out.Summaries {
		names = append(names, sdkaws.ToString(s.ChangeSetName))
	}
	return names
}

// A template over the inline limit is staged in the account's template bucket (made private,
// expiring) and CloudFormation reads it from there, for a new stack and for a change set;
// a preview of a new stack stages nothing.
func TestLargeTemplatesAreStagedInS3(t *testing.T) {
	srv := mototest.Start(t, "111111111111")
	cfg := srv.Config(t)
	cfn := cloudformation.NewFromConfig(cfg)
	s3c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	ctx := context.Background()
	bucket := infra.TemplateBucket("111111111111", srv.Region)
	opts := infra.ChangeSetOptions{Template: miniTemplate(t, "10.0.0.0/16", "VideoBucket"), InlineLimit: 100, Stage: infra.S3Stager(s3c, "111111111111", srv.Region)}

	cs, err := infra.CreateChangeSet(ctx, cfn, "dev", opts)
	require.NoError(t, err)
	_, err = s3c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: sdkaws.String(bucket)})
	require.Error(t, err, "a preview of a new stack writes nothing")

	res, err := infra.Execute(ctx, cfn, cs, infra.WatchOptions{})
	require.NoError(t, err)
	assert.Equal(t, "CREATE_COMPLETE", res.Status)
	assert.NotEmpty(t, res.Outputs[infra.OutVPC])
	objs, err := s3c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: sdkaws.String(bucket)})
	require.NoError(t, err)
	require.Len(t, objs.Contents, 1)
	assert.Regexp(t, `^vmctl-dev/[0-9a-f]{64}\.json$`, sdkaws.ToString(objs.Contents[0].Key))
	pab, err := s3c.GetPublicAccessBlock(ctx, &s3.GetPublicAccessBlockInput{Bucket: sdkaws.String(bucket)})
	require.NoError(t, err)
	assert.True(t, sdkaws.ToBool(pab.PublicAccessBlockConfiguration.BlockPublicPolicy))
	lc, err := s3c.GetBucketLifecycleConfiguration(ctx, &s3.GetBucketLifecycleConfigurationInput{Bucket: sdkaws.String(bucket)})
	require.NoError(t, err)
	assert.Equal(t, int32(7), sdkaws.ToInt32(lc.Rules[0].Expiration.Days))

	opts.Template = miniTemplate(t, "10.1.0.0/16", "VideoBucket")
	cs, err = infra.CreateChangeSet(ctx, cfn, "dev", opts)
	require.NoError(t, err)
	require.Len(t, cs.Changes, 1, "CloudFormation read the staged template")
	assert.Equal(t, "Vpc", cs.Changes[0].LogicalID)
	require.NoError(t, cs.Delete(ctx, cfn))

	opts.Stage = nil
	_, err = infra.CreateChangeSet(ctx, cfn, "dev", opts)
	require.ErrorContains(t, err, "over CloudFormation's 100-byte limit for a template sent inline, and there is nowhere to stage it")
}
