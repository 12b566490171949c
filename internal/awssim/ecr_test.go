package awssim_test

import (
	"context"
	"net/http"
	"testing"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/awssim"
	"github.com/vmctl/vmctl/internal/awssim/simtest"
)

func TestECRRepositories(t *testing.T) {
	sim := userSim(t)
	sim.AddUser("AKIAOTHER", awssim.Principal{Account: "222222222222", ARN: "arn:aws:iam::222222222222:user/other"})
	ctx := context.Background()
	c := ecr.NewFromConfig(simtest.Config(t, sim, simKey))

	created, err := c.CreateRepository(ctx, &ecr.CreateRepositoryInput{
		RepositoryName:             sdkaws.String("vmctl/openvoice"),
		ImageTagMutability:         ecrtypes.ImageTagMutabilityImmutable,
		ImageScanningConfiguration: &ecrtypes.ImageScanningConfiguration{ScanOnPush: true},
		EncryptionConfiguration:    &ecrtypes.EncryptionConfiguration{EncryptionType: ecrtypes.EncryptionTypeKms},
	})
	require.NoError(t, err)
	r := created.Repository
	assert.Equal(t, "arn:aws:ecr:ap-northeast-1:111111111111:repository/vmctl/openvoice", sdkaws.ToString(r.RepositoryArn))
	assert.Equal(t, simAccount, sdkaws.ToString(r.RegistryId))
	assert.Equal(t, sim.RegistryHost()+"/vmctl/openvoice", sdkaws.ToString(r.RepositoryUri))
	assert.Equal(t, ecrtypes.ImageTagMutabilityImmutable, r.ImageTagMutability)
	assert.True(t, r.ImageScanningConfiguration.ScanOnPush)
	assert.Equal(t, ecrtypes.EncryptionTypeKms, r.EncryptionConfiguration.EncryptionType)
	assert.Equal(t, "arn:aws:kms:ap-northeast-1:111111111111:alias/aws/ecr", sdkaws.ToString(r.EncryptionConfiguration.KmsKey))
	assert.False(t, sdkaws.ToTime(r.CreatedAt).IsZero())

	_, err = c.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: sdkaws.String("vmctl/openvoice")})
	assert.Equal(t, "RepositoryAlreadyExistsException", awsErrorCode(err))
	_, err = c.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: sdkaws.String("Bad_Name")})
	assert.Equal(t, "InvalidParameterException", awsErrorCode(err))
	plain, err := c.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: sdkaws.String("vmctl/backend")})
	require.NoError(t, err)
	assert.Equal(t, ecrtypes.ImageTagMutabilityMutable, plain.Repository.ImageTagMutability, "MUTABLE by default")
	assert.Equal(t, ecrtypes.EncryptionTypeAes256, plain.Repository.EncryptionConfiguration.EncryptionType, "AES256 by default")

	all, err := c.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{})
	require.NoError(t, err)
	require.Len(t, all.Repositories, 2)
	assert.Equal(t, "vmctl/backend", sdkaws.ToString(all.Repositories[0].RepositoryName))
	one, err := c.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{RepositoryNames: []string{"vmctl/openvoice"}})
	require.NoError(t, err)
	require.Len(t, one.Repositories, 1)
	_, err = c.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{RepositoryNames: []string{"vmctl/nope"}})
	assert.Equal(t, "RepositoryNotFoundException", awsErrorCode(err))

	// Repositories live in the caller's account.
	other := ecr.NewFromConfig(simtest.Config(t, sim, "AKIAOTHER"))
	_, err = other.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{RepositoryNames: []string{"vmctl/openvoice"}})
	assert.Equal(t, "RepositoryNotFoundException", awsErrorCode(err))
	_, err = other.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: sdkaws.String("vmctl/openvoice")})
	require.NoError(t, err)

	scan, err := c.PutImageScanningConfiguration(ctx, &ecr.PutImageScanningConfigurationInput{
		RepositoryName: sdkaws.String("vmctl/backend"), ImageScanningConfiguration: &ecrtypes.ImageScanningConfiguration{ScanOnPush: true},
	})
	require.NoError(t, err)
	assert.True(t, scan.ImageScanningConfiguration.ScanOnPush)
	_, err = c.PutImageScanningConfiguration(ctx, &ecr.PutImageScanningConfigurationInput{
		RepositoryName: sdkaws.String("vmctl/nope"), ImageScanningConfiguration: &ecrtypes.ImageScanningConfiguration{},
	})
	assert.Equal(t, "RepositoryNotFoundException", awsErrorCode(err))

	mut, err := c.PutImageTagMutability(ctx, &ecr.PutImageTagMutabilityInput{RepositoryName: sdkaws.String("vmctl/backend"), ImageTagMutability: ecrtypes.ImageTagMutabilityImmutable})
	require.NoError(t, err)
	assert.Equal(t, ecrtypes.ImageTagMutabilityImmutable, mut.ImageTagMutability)
	_, err = c.PutImageTagMutability(ctx, &ecr.PutImageTagMutabilityInput{RepositoryName: sdkaws.String("vmctl/backend"), ImageTagMutability: "SOMETIMES"})
	assert.Equal(t, "InvalidParameterException", awsErrorCode(err))

	_, err = c.GetLifecyclePolicy(ctx, &ecr.GetLifecyclePolicyInput{RepositoryName: sdkaws.String("vmctl/backend")})
	assert.Equal(t, "LifecyclePolicyNotFoundException", awsErrorCode(err))
	policy := `{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":14},"action":{"type":"expire"}}]}`
	lp, err := c.PutLifecyclePolicy(ctx, &ecr.PutLifecyclePolicyInput{RepositoryName: sdkaws.String("vmctl/backend"), LifecyclePolicyText: sdkaws.String(policy)})
	require.NoError(t, err)
	assert.Equal(t, policy, sdkaws.ToString(lp.LifecyclePolicyText))
	got, err := c.GetLifecyclePolicy(ctx, &ecr.GetLifecyclePolicyInput{RepositoryName: sdkaws.String("vmctl/backend")})
	require.NoError(t, err)
	assert.Equal(t, policy, sdkaws.ToString(got.LifecyclePolicyText))
	_, err = c.PutLifecyclePolicy(ctx, &ecr.PutLifecyclePolicyInput{RepositoryName: sdkaws.String("vmctl/backend"), LifecyclePolicyText: sdkaws.String(`{"rules":`)})
	assert.Equal(t, "InvalidParameterException", awsErrorCode(err))
	_, err = c.PutLifecyclePolicy(ctx, &ecr.PutLifecyclePolicyInput{RepositoryName: sdkaws.String("vmctl/nope"), LifecyclePolicyText: sdkaws.String(policy)})
	assert.Equal(t, "RepositoryNotFoundException", awsErrorCode(err))
}

func TestECRRefusesStrangers(t *testing.T) {
	sim := userSim(t)
	_, err := ecr.NewFromConfig(simtest.Config(t, sim, "AKIASTRANGER")).DescribeRepositories(context.Background(), &ecr.DescribeRepositoriesInput{})
	assert.Equal(t, "UnrecognizedClientException", awsErrorCode(err))
}

func TestECRThrottlingIsRetried(t *testing.T) {
	sim := userSim(t)
	sim.InjectFault("ECR.DescribeRepositories", awssim.Fault{Throttle: true, Times: 1})
	_, err := ecr.NewFromConfig(simtest.Config(t, sim, simKey)).DescribeRepositories(context.Background(), &ecr.DescribeRepositoriesInput{})
	require.NoError(t, err)
	assert.Equal(t, 2, sim.Calls("ECR.DescribeRepositories"))
}

// imageRepo makes a repository and pushes two images to it over the
// registry API: a as "v1", b by digest only.
func imageRepo(t *testing.T, sim *awssim.Sim, c *ecr.Client, name string) (a, b rawImage) {
	t.Helper()
	_, err := c.CreateRepository(context.Background(), &ecr.CreateRepositoryInput{RepositoryName: sdkaws.String(name)})
	require.NoError(t, err)
	user, password, _ := registryLogin(t, c)
	a, b = newRawImage("a"), newRawImage("b")
	resp := pushRaw(t, sim.RegistryHost(), user, password, name, "v1", a)
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	require.Equal(t, a.digest, resp.Header.Get("Docker-Content-Digest"))
	resp = pushRaw(t, sim.RegistryHost(), user, password, name, b.digest, b)
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	return a, b
}

func TestECRImages(t *testing.T) {
	sim := userSim(t)
	ctx := context.Background()
	c := ecr.NewFromConfig(simtest.Config(t, sim, simKey))
	repo := sdkaws.String("vmctl/frontend")
	a, b := imageRepo(t, sim, c, "vmctl/frontend")

	out, err := c.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: repo})
	require.NoError(t, err)
	require.Len(t, out.ImageDetails, 2)
	byDigest := map[string]ecrtypes.ImageDetail{}
	for _, d := range out.ImageDetails {
		byDigest[sdkaws.ToString(d.ImageDigest)] = d
	}
	da := byDigest[a.digest]
	assert.Equal(t, []string{"v1"}, da.ImageTags)
	assert.Equal(t, int64(len(a.layer)), sdkaws.ToInt64(da.ImageSizeInBytes), "the layers' size")
	assert.Equal(t, simAccount, sdkaws.ToString(da.RegistryId))
	assert.Equal(t, "application/vnd.docker.container.image.v1+json", sdkaws.ToString(da.ArtifactMediaType))
	assert.False(t, sdkaws.ToTime(da.ImagePushedAt).IsZero())
	assert.Nil(t, da.ImageScanStatus, "no scan without scanOnPush")
	assert.Empty(t, byDigest[b.digest].ImageTags)

	untagged, err := c.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: repo, Filter: &ecrtypes.DescribeImagesFilter{TagStatus: ecrtypes.TagStatusUntagged}})
	require.NoError(t, err)
	require.Len(t, untagged.ImageDetails, 1)
	assert.Equal(t, b.digest, sdkaws.ToString(untagged.ImageDetails[0].ImageDigest))
	_, err = c.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: repo, ImageIds: []ecrtypes.ImageIdentifier{{ImageTag: sdkaws.String("nope")}}})
	assert.Equal(t, "ImageNotFoundException", awsErrorCode(err))
	_, err = c.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: sdkaws.String("vmctl/nope")})
	assert.Equal(t, "RepositoryNotFoundException", awsErrorCode(err))

	got, err := c.BatchGetImage(ctx, &ecr.BatchGetImageInput{RepositoryName: repo, ImageIds: []ecrtypes.ImageIdentifier{
		{ImageTag: sdkaws.String("v1")},
		{ImageDigest: sdkaws.String(b.digest)},
		{ImageTag: sdkaws.String("missing")},
		{ImageDigest: sdkaws.String(b.digest), ImageTag: sdkaws.String("v1")},
	}})
	require.NoError(t, err)
	require.Len(t, got.Images, 2)
	assert.Equal(t, string(a.manifest), sdkaws.ToString(got.Images[0].ImageManifest))
	assert.Equal(t, "application/vnd.docker.distribution.manifest.v2+json", sdkaws.ToString(got.Images[0].ImageManifestMediaType))
	assert.Equal(t, a.digest, sdkaws.ToString(got.Images[0].ImageId.ImageDigest))
	assert.Equal(t, "v1", sdkaws.ToString(got.Images[0].ImageId.ImageTag))
	assert.Equal(t, string(b.manifest), sdkaws.ToString(got.Images[1].ImageManifest))
	require.Len(t, got.Failures, 2)
	assert.Equal(t, ecrtypes.ImageFailureCodeImageNotFound, got.Failures[0].FailureCode)
	assert.Equal(t, "missing", sdkaws.ToString(got.Failures[0].ImageId.ImageTag))
	assert.Equal(t, ecrtypes.ImageFailureCodeImageTagDoesNotMatchDigest, got.Failures[1].FailureCode)

	// PutImage retags by manifest; the same tag twice is refused.
	put, err := c.PutImage(ctx, &ecr.PutImageInput{RepositoryName: repo, ImageManifest: sdkaws.String(string(b.manifest)), ImageTag: sdkaws.String("v2")})
	require.NoError(t, err)
	assert.Equal(t, b.digest, sdkaws.ToString(put.Image.ImageId.ImageDigest))
	assert.Equal(t, "v2", sdkaws.ToString(put.Image.ImageId.ImageTag))
	assert.Equal(t, "application/vnd.docker.distribution.manifest.v2+json", sdkaws.ToString(put.Image.ImageManifestMediaType))
	_, err = c.PutImage(ctx, &ecr.PutImageInput{RepositoryName: repo, ImageManifest: sdkaws.String(string(b.manifest)), ImageTag: sdkaws.String("v2")})
	assert.Equal(t, "ImageAlreadyExistsException", awsErrorCode(err))
	_, err = c.PutImage(ctx, &ecr.PutImageInput{RepositoryName: repo, ImageManifest: sdkaws.String(string(b.manifest)), ImageDigest: sdkaws.String(a.digest)})
	assert.Equal(t, "ImageDigestDoesNotMatchException", awsErrorCode(err))
	orphan := newRawImage("never pushed")
	_, err = c.PutImage(ctx, &ecr.PutImageInput{RepositoryName: repo, ImageManifest: sdkaws.String(string(orphan.manifest)), ImageTag: sdkaws.String("orphan")})
	assert.Equal(t, "LayersNotFoundException", awsErrorCode(err))
	_, err = c.PutImage(ctx, &ecr.PutImageInput{RepositoryName: repo, ImageManifest: sdkaws.String("not json"), ImageTag: sdkaws.String("x")})
	assert.Equal(t, "InvalidParameterException", awsErrorCode(err))

	// MUTABLE: a tag moves.
	_, err = c.PutImage(ctx, &ecr.PutImageInput{RepositoryName: repo, ImageManifest: sdkaws.String(string(a.manifest)), ImageTag: sdkaws.String("v2")})
	require.NoError(t, err)
	moved, err := c.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: repo, ImageIds: []ecrtypes.ImageIdentifier{{ImageTag: sdkaws.String("v2")}}})
	require.NoError(t, err)
	assert.Equal(t, a.digest, sdkaws.ToString(moved.ImageDetails[0].ImageDigest))
	assert.ElementsMatch(t, []string{"v1", "v2"}, moved.ImageDetails[0].ImageTags)
}

func TestECRImmutableTags(t *testing.T) {
	sim := userSim(t)
	ctx := context.Background()
	c := ecr.NewFromConfig(simtest.Config(t, sim, simKey))
	repo := sdkaws.String("vmctl/voicevox")
	a, b := imageRepo(t, sim, c, "vmctl/voicevox")
	_, err := c.PutImageTagMutability(ctx, &ecr.PutImageTagMutabilityInput{RepositoryName: repo, ImageTagMutability: ecrtypes.ImageTagMutabilityImmutable})
	require.NoError(t, err)

	_, err = c.PutImage(ctx, &ecr.PutImageInput{RepositoryName: repo, ImageManifest: sdkaws.String(string(b.manifest)), ImageTag: sdkaws.String("v1")})
	assert.Equal(t, "ImageTagAlreadyExistsException", awsErrorCode(err))
	_, err = c.PutImage(ctx, &ecr.PutImageInput{RepositoryName: repo, ImageManifest: sdkaws.String(string(a.manifest)), ImageTag: sdkaws.String("v1")})
	assert.Equal(t, "ImageAlreadyExistsException", awsErrorCode(err))
	_, err = c.PutImage(ctx, &ecr.PutImageInput{RepositoryName: repo, ImageManifest: sdkaws.String(string(b.manifest)), ImageTag: sdkaws.String("v2")})
	require.NoError(t, err, "a new tag is fine")

	// A push straight to the registry is held to the same rule.
	user, password, _ := registryLogin(t, c)
	resp := registryRequest(t, user, password, http.MethodPut, "http://"+sim.RegistryHost()+"/v2/vmctl/voicevox/manifests/v1",
		"application/vnd.docker.distribution.manifest.v2+json", b.manifest)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	var body struct{ Errors []struct{ Code string } }
	require.NoError(t, decodeJSON(resp, &body))
	require.Len(t, body.Errors, 1)
	assert.Equal(t, "TAG_INVALID", body.Errors[0].Code)
	resp = registryRequest(t, user, password, http.MethodPut, "http://"+sim.RegistryHost()+"/v2/vmctl/voicevox/manifests/v1",
		"application/vnd.docker.distribution.manifest.v2+json", a.manifest)
	assert.Equal(t, http.StatusCreated, resp.StatusCode, "pushing the same image again is fine")

	still, err := c.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: repo, ImageIds: []ecrtypes.ImageIdentifier{{ImageTag: sdkaws.String("v1")}}})
	require.NoError(t, err)
	assert.Equal(t, a.digest, sdkaws.ToString(still.ImageDetails[0].ImageDigest))
}

func TestECRScanFindings(t *testing.T) {
	sim := userSim(t)
	ctx := context.Background()
	c := ecr.NewFromConfig(simtest.Config(t, sim, simKey))
	repo := sdkaws.String("vmctl/openvoice")
	a, b := imageRepo(t, sim, c, "vmctl/openvoice")

	_, err := c.DescribeImageScanFindings(ctx, &ecr.DescribeImageScanFindingsInput{RepositoryName: repo, ImageId: &ecrtypes.ImageIdentifier{ImageTag: sdkaws.String("v1")}})
	assert.Equal(t, "ScanNotFoundException", awsErrorCode(err))
	_, err = c.DescribeImageScanFindings(ctx, &ecr.DescribeImageScanFindingsInput{RepositoryName: repo, ImageId: &ecrtypes.ImageIdentifier{ImageTag: sdkaws.String("nope")}})
	assert.Equal(t, "ImageNotFoundException", awsErrorCode(err))

	sim.PlantScanFindings("vmctl/openvoice", a.digest, []awssim.ScanFinding{
		{Name: "CVE-2023-4911", Severity: "CRITICAL", URI: "https://nvd.nist.gov/vuln/detail/CVE-2023-4911", Attributes: map[string]string{"package_name": "glibc", "package_version": "2.35"}},
		{Name: "CVE-2024-0001", Severity: "HIGH"},
		{Name: "CVE-2024-0002", Severity: "HIGH"},
		{Name: "CVE-2024-0003", Severity: "LOW"},
	})
	f, err := c.DescribeImageScanFindings(ctx, &ecr.DescribeImageScanFindingsInput{RepositoryName: repo, ImageId: &ecrtypes.ImageIdentifier{ImageTag: sdkaws.String("v1")}})
	require.NoError(t, err)
	assert.Equal(t, ecrtypes.ScanStatusComplete, f.ImageScanStatus.Status)
	assert.Equal(t, a.digest, sdkaws.ToString(f.ImageId.ImageDigest))
	counts := f.ImageScanFindings.FindingSeverityCounts
	assert.Equal(t, int32(1), counts["CRITICAL"])
	assert.Equal(t, int32(2), counts["HIGH"])
	assert.Equal(t, int32(1), counts["LOW"])
	require.Len(t, f.ImageScanFindings.Findings, 4)
	first := f.ImageScanFindings.Findings[0]
	assert.Equal(t, "CVE-2023-4911", sdkaws.ToString(first.Name))
	assert.Equal(t, ecrtypes.FindingSeverityCritical, first.Severity)
	assert.Equal(t, []ecrtypes.Attribute{{Key: sdkaws.String("package_name"), Value: sdkaws.String("glibc")}, {Key: sdkaws.String("package_version"), Value: sdkaws.String("2.35")}}, first.Attributes)

	// DescribeImages carries the summary.
	d, err := c.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: repo, ImageIds: []ecrtypes.ImageIdentifier{{ImageDigest: sdkaws.String(a.digest)}}})
	require.NoError(t, err)
	require.NotNil(t, d.ImageDetails[0].ImageScanFindingsSummary)
	assert.Equal(t, int32(1), d.ImageDetails[0].ImageScanFindingsSummary.FindingSeverityCounts["CRITICAL"])

	// With scanOnPush every image has a (clean, unless planted) scan.
	_, err = c.PutImageScanningConfiguration(ctx, &ecr.PutImageScanningConfigurationInput{RepositoryName: repo, ImageScanningConfiguration: &ecrtypes.ImageScanningConfiguration{ScanOnPush: true}})
	require.NoError(t, err)
	clean, err := c.DescribeImageScanFindings(ctx, &ecr.DescribeImageScanFindingsInput{RepositoryName: repo, ImageId: &ecrtypes.ImageIdentifier{ImageDigest: sdkaws.String(b.digest)}})
	require.NoError(t, err)
	assert.Equal(t, ecrtypes.ScanStatusComplete, clean.ImageScanStatus.Status)
	assert.Empty(t, clean.ImageScanFindings.Findings)
	assert.Empty(t, clean.ImageScanFindings.FindingSeverityCounts)
}

func TestECRUnknownOperationIsLoud(t *testing.T) {
	sim := userSim(t)
	_, err := ecr.NewFromConfig(simtest.Config(t, sim, simKey)).DeleteRepository(context.Background(), &ecr.DeleteRepositoryInput{RepositoryName: sdkaws.String("x")})
	assert.Equal(t, "UnknownOperationException", awsErrorCode(err))
}
