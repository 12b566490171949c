package awssim_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/smithy-go"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/awssim"
	"github.com/vmctl/vmctl/internal/awssim/simtest"
	"github.com/vmctl/vmctl/internal/dockertest"
)

const (
	simKey     = "AKIAEXAMPLE"
	simAccount = "111111111111"
)

// userSim is a simulator with one user (simKey in simAccount), closed
// when the test ends.
func userSim(t *testing.T) *awssim.Sim {
	t.Helper()
	sim := awssim.New()
	t.Cleanup(sim.Close)
	sim.AddUser(simKey, awssim.Principal{Account: simAccount, ARN: "arn:aws:iam::" + simAccount + ":user/ci"})
	return sim
}

// awsErrorCode is the AWS error code the SDK surfaced, or "".
func awsErrorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// registryLogin is what `aws ecr get-login-password` hands docker login:
// GetAuthorizationToken's token, decoded into user and password.
func registryLogin(t *testing.T, c *ecr.Client) (user, password, endpoint string) {
	t.Helper()
	out, err := c.GetAuthorizationToken(context.Background(), &ecr.GetAuthorizationTokenInput{})
	require.NoError(t, err)
	require.Len(t, out.AuthorizationData, 1)
	raw, err := base64.StdEncoding.DecodeString(sdkaws.ToString(out.AuthorizationData[0].AuthorizationToken))
	require.NoError(t, err)
	user, password, ok := strings.Cut(string(raw), ":")
	require.True(t, ok)
	return user, password, sdkaws.ToString(out.AuthorizationData[0].ProxyEndpoint)
}

func sha256Of(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// rawImage is a tiny image made of bytes, pushed over the registry API
// without a Docker Engine, so ECR's image operations run everywhere.
type rawImage struct {
	config, layer, manifest []byte
	digest                  string
}

func newRawImage(seed string) rawImage {
	layer := []byte("layer " + seed)
	config := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","config":{"Labels":{"seed":%q}},"rootfs":{"type":"layers","diff_ids":[%q]}}`, seed, sha256Of(layer)))
	manifest := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",`+
		`"config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":%d,"digest":%q},`+
		`"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":%d,"digest":%q}]}`,
		len(config), sha256Of(config), len(layer), sha256Of(layer)))
	return rawImage{config: config, layer: layer, manifest: manifest, digest: sha256Of(manifest)}
}

// registryRequest sends one authenticated request to the registry.
func registryRequest(t *testing.T, user, password, method, url, contentType string, body []byte) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	require.NoError(t, err)
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// pushBlobs uploads an image's config and layer (monolithic uploads).
func pushBlobs(t *testing.T, host, user, password, repo string, img rawImage) {
	t.Helper()
	for _, blob := range [][]byte{img.config, img.layer} {
		resp := registryRequest(t, user, password, http.MethodPost, "http://"+host+"/v2/"+repo+"/blobs/uploads/", "", nil)
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
		loc := resp.Header.Get("Location")
		if strings.HasPrefix(loc, "/") {
			loc = "http://" + host + loc
		}
		sep := "?"
		if strings.Contains(loc, "?") {
			sep = "&"
		}
		resp = registryRequest(t, user, password, http.MethodPut, loc+sep+"digest="+sha256Of(blob), "application/octet-stream", blob)
		require.Equal(t, http.StatusCreated, resp.StatusCode)
	}
}

// pushRaw pushes img to repo:tag as docker push would, and returns the
// registry's response.
func pushRaw(t *testing.T, host, user, password, repo, tag string, img rawImage) *http.Response {
	t.Helper()
	pushBlobs(t, host, user, password, repo, img)
	return registryRequest(t, user, password, http.MethodPut, "http://"+host+"/v2/"+repo+"/manifests/"+tag,
		"application/vnd.docker.distribution.manifest.v2+json", img.manifest)
}

func TestRegistryWantsECRCredentials(t *testing.T) {
	sim := userSim(t)
	c := ecr.NewFromConfig(simtest.Config(t, sim, simKey))
	user, password, endpoint := registryLogin(t, c)
	assert.Equal(t, "AWS", user)
	assert.Equal(t, "http://"+sim.RegistryHost(), endpoint)

	resp := registryRequest(t, "", "", http.MethodGet, endpoint+"/v2/", "", nil)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, `Basic realm="awssim"`, resp.Header.Get("WWW-Authenticate"))
	resp = registryRequest(t, "AWS", "not-a-token", http.MethodGet, endpoint+"/v2/", "", nil)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp = registryRequest(t, user, password, http.MethodGet, endpoint+"/v2/", "", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	// RegistryAuth is Docker's X-Registry-Auth for the same registry.
	raw, err := base64.URLEncoding.DecodeString(sim.RegistryAuth())
	require.NoError(t, err)
	var ac registry.AuthConfig
	require.NoError(t, json.Unmarshal(raw, &ac))
	resp = registryRequest(t, ac.Username, ac.Password, http.MethodGet, endpoint+"/v2/", "", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, sim.RegistryHost(), ac.ServerAddress)
}

// Two simulators, two registries: nothing is shared.
func TestRegistryPerSimulator(t *testing.T) {
	a, b := userSim(t), userSim(t)
	assert.NotEqual(t, a.RegistryHost(), b.RegistryHost())
	host := a.RegistryHost()
	a.Close()
	_, err := http.Get("http://" + host + "/v2/")
	assert.Error(t, err, "the registry stops with its simulator")
}

// pushWithDocker pushes ref through the engine and returns the digest the
// push reported, or the error the stream carried.
func pushWithDocker(t *testing.T, api *client.Client, ref, auth string) (string, error) {
	t.Helper()
	rc, err := api.ImagePush(context.Background(), ref, image.PushOptions{RegistryAuth: auth})
	require.NoError(t, err)
	defer rc.Close()
	dec := json.NewDecoder(rc)
	digest := ""
	for {
		var m jsonmessage.JSONMessage
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return "", err
		}
		if m.Error != nil {
			return "", m.Error
		}
		if m.Aux != nil {
			var aux struct{ Digest string }
			if json.Unmarshal(*m.Aux, &aux) == nil && aux.Digest != "" {
				digest = aux.Digest
			}
		}
	}
	return digest, nil
}

// tagImage tags src as ref and removes the tag when the test ends.
func tagImage(t *testing.T, api *client.Client, src, ref string) {
	t.Helper()
	require.NoError(t, api.ImageTag(context.Background(), src, ref))
	t.Cleanup(func() { _, _ = api.ImageRemove(context.Background(), ref, image.RemoveOptions{}) })
}

// buildVariant builds an image FROM the fixture with one more label: the
// same layers, another digest.
func buildVariant(t *testing.T, api *client.Client, from, label, ref string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	df := []byte(fmt.Sprintf("FROM %s\nLABEL awssim.test.variant=%q\n", from, label))
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(df))}))
	_, _ = tw.Write(df)
	require.NoError(t, tw.Close())
	resp, err := api.ImageBuild(context.Background(), &buf, build.ImageBuildOptions{Tags: []string{ref}, Remove: true, Version: build.BuilderV1})
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = api.ImageRemove(context.Background(), ref, image.RemoveOptions{Force: true, PruneChildren: true})
	})
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NotContains(t, string(out), `"errorDetail"`)
}

func TestRegistryDockerPushLandsInECR(t *testing.T) {
	api := dockertest.Client(t)
	fixture := dockertest.FixtureImageBuilt(t, api)
	sim := userSim(t)
	ctx := context.Background()
	c := ecr.NewFromConfig(simtest.Config(t, sim, simKey))
	_, err := c.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: sdkaws.String("vmctl/backend")})
	require.NoError(t, err)

	user, password, _ := registryLogin(t, c)
	auth, err := registry.EncodeAuthConfig(registry.AuthConfig{Username: user, Password: password, ServerAddress: sim.RegistryHost()})
	require.NoError(t, err)
	ref := sim.RegistryHost() + "/vmctl/backend:v1"
	tagImage(t, api, fixture, ref)

	_, err = pushWithDocker(t, api, ref, "")
	require.Error(t, err, "the registry wants ECR's credentials")

	pushed, err := pushWithDocker(t, api, ref, auth)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(pushed, "sha256:"), pushed)

	out, err := c.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: sdkaws.String("vmctl/backend")})
	require.NoError(t, err)
	require.Len(t, out.ImageDetails, 1)
	d := out.ImageDetails[0]
	assert.Equal(t, pushed, sdkaws.ToString(d.ImageDigest), "the digest docker push reported is the registry's")
	assert.Equal(t, []string{"v1"}, d.ImageTags)
	assert.Positive(t, sdkaws.ToInt64(d.ImageSizeInBytes))
	assert.WithinDuration(t, time.Now(), sdkaws.ToTime(d.ImagePushedAt), time.Minute)
	assert.Equal(t, "application/vnd.docker.distribution.manifest.v2+json", sdkaws.ToString(d.ImageManifestMediaType))

	// Retag by manifest, as AWS documents it: BatchGetImage, then PutImage.
	got, err := c.BatchGetImage(ctx, &ecr.BatchGetImageInput{RepositoryName: sdkaws.String("vmctl/backend"), ImageIds: []ecrtypes.ImageIdentifier{{ImageTag: sdkaws.String("v1")}}})
	require.NoError(t, err)
	require.Len(t, got.Images, 1)
	put, err := c.PutImage(ctx, &ecr.PutImageInput{RepositoryName: sdkaws.String("vmctl/backend"), ImageManifest: got.Images[0].ImageManifest, ImageTag: sdkaws.String("staging")})
	require.NoError(t, err)
	assert.Equal(t, pushed, sdkaws.ToString(put.Image.ImageId.ImageDigest))
	out, err = c.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: sdkaws.String("vmctl/backend")})
	require.NoError(t, err)
	require.Len(t, out.ImageDetails, 1)
	assert.ElementsMatch(t, []string{"v1", "staging"}, out.ImageDetails[0].ImageTags)

	// An ECS agent pulls by digest with the simulator's own credentials.
	byDigest := sim.RegistryHost() + "/vmctl/backend@" + pushed
	rc, err := api.ImagePull(ctx, byDigest, image.PullOptions{RegistryAuth: sim.RegistryAuth()})
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = api.ImageRemove(context.Background(), byDigest, image.RemoveOptions{}) })
	pull, _ := io.ReadAll(rc)
	rc.Close()
	require.NotContains(t, string(pull), `"errorDetail"`)

	// Immutable tags hold for docker push too: another image under v1 is refused.
	_, err = c.PutImageTagMutability(ctx, &ecr.PutImageTagMutabilityInput{RepositoryName: sdkaws.String("vmctl/backend"), ImageTagMutability: ecrtypes.ImageTagMutabilityImmutable})
	require.NoError(t, err)
	variant := sim.RegistryHost() + "/vmctl/backend:v1"
	buildVariant(t, api, fixture, t.Name(), variant)
	_, err = pushWithDocker(t, api, variant, auth)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cannot be overwritten because the repository is immutable")
	other := sim.RegistryHost() + "/vmctl/backend:v2"
	tagImage(t, api, variant, other)
	v2, err := pushWithDocker(t, api, other, auth)
	require.NoError(t, err, "a new tag is fine")
	assert.NotEqual(t, pushed, v2)
	out, err = c.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: sdkaws.String("vmctl/backend"), ImageIds: []ecrtypes.ImageIdentifier{{ImageTag: sdkaws.String("v1")}}})
	require.NoError(t, err)
	assert.Equal(t, pushed, sdkaws.ToString(out.ImageDetails[0].ImageDigest), "v1 still names the first image")
}

func decodeJSON(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }
