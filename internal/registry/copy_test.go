package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"testing"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/awssim"
	"github.com/vmctl/vmctl/internal/awssim/simtest"
	"github.com/vmctl/vmctl/internal/progress"
)

// copySim is a simulator with one account's user; its registry is reached
// with that account's ECR token.
func copySim(t testing.TB, key, account string) (*awssim.Sim, *ecr.Client, Registry) {
	t.Helper()
	sim := awssim.New()
	t.Cleanup(sim.Close)
	sim.AddUser(key, awssim.Principal{Account: account, ARN: "arn:aws:iam::" + account + ":role/ci"})
	api := ecr.NewFromConfig(simtest.Config(t, sim, key))
	reg, err := ECRRegistry(context.Background(), api)
	require.NoError(t, err)
	return sim, api, reg
}

// testImage is an image made of random blobs, pushed over the
// distribution API: the registry checks digests, not layer contents.
type testImage struct {
	digest string
	layers [][]byte
	config []byte
	size   int64 // config and layers
}

func randomBlob(t testing.TB, n int) []byte {
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

// pushTestImage uploads the blobs and an OCI manifest under tag.
func pushTestImage(t testing.TB, reg Registry, repo, tag string, layers ...[]byte) testImage {
	t.Helper()
	ctx := context.Background()
	rc := newRegClient(reg)
	img := testImage{layers: layers, config: []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"nonce":"` + sha256Digest(randomBlob(t, 8)) + `"}`)}
	type desc struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int    `json:"size"`
	}
	m := struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Config        desc   `json:"config"`
		Layers        []desc `json:"layers"`
	}{SchemaVersion: 2, MediaType: "application/vnd.oci.image.manifest.v1+json"}
	put := func(b []byte, mediaType string) desc {
		d := sha256Digest(b)
		if ok, err := rc.headBlob(ctx, repo, d); err == nil && !ok {
			require.NoError(t, rc.upload(ctx, repo, d, int64(len(b)), bytes.NewReader(b)))
		}
		img.size += int64(len(b))
		return desc{MediaType: mediaType, Digest: d, Size: len(b)}
	}
	m.Config = put(img.config, "application/vnd.oci.image.config.v1+json")
	for _, l := range layers {
		m.Layers = append(m.Layers, put(l, "application/vnd.oci.image.layer.v1.tar+gzip"))
	}
	body, err := json.Marshal(m)
	require.NoError(t, err)
	img.digest = sha256Digest(body)
	require.NoError(t, rc.putManifest(ctx, repo, tag, m.MediaType, body))
	return img
}

// Across registries only the blobs the target lacks travel: the first copy
// sends every blob, a second sends nothing, and an image that shares layers
// with one already in another repository of the target mounts them.
func TestCopyImageAcrossRegistries(t *testing.T) {
	ctx := context.Background()
	_, _, staging := copySim(t, "AKIASTAGING", "222222222222")
	_, _, prod := copySim(t, "AKIAPROD", "333333333333")
	require.NotEqual(t, staging.Host(), prod.Host(), "two registries")

	base := randomBlob(t, 512<<10)
	app := randomBlob(t, 256<<10)
	backend := pushTestImage(t, staging, "vmapp/backend", "r1", base, app)

	first, err := CopyImage(ctx, staging, "vmapp/backend", prod, "vmapp/backend", backend.digest, []string{"r1"}, nil)
	require.NoError(t, err)
	assert.Equal(t, backend.size, first.BytesMoved, "every blob once")
	assert.Equal(t, 3, first.BlobsCopied, "config and two layers")
	assert.Equal(t, 1, first.Manifests)

	rc := newRegClient(prod)
	ok, digest, err := rc.headManifest(ctx, "vmapp/backend", "r1")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, backend.digest, digest, "the same digest, byte for byte")

	again, err := CopyImage(ctx, staging, "vmapp/backend", prod, "vmapp/backend", backend.digest, []string{"r1"}, nil)
	require.NoError(t, err)
	assert.Zero(t, again.BytesMoved, "a second copy moves nothing")
	assert.Zero(t, again.Manifests)

	// The frontend shares the base layer: mounted from vmapp/backend, only its own layer and config travel.
	web := randomBlob(t, 128<<10)
	frontend := pushTestImage(t, staging, "vmapp/frontend", "r1", base, web)
	st, err := CopyImage(ctx, staging, "vmapp/frontend", prod, "vmapp/frontend", frontend.digest, []string{"r1"}, []string{"vmapp/backend"})
	require.NoError(t, err)
	assert.Equal(t, 1, st.BlobsMounted, "the shared base layer")
	assert.Equal(t, int64(len(web)+len(frontend.config)), st.BytesMoved)

	// A tag that names another image in the target is refused, not moved.
	_, err = CopyImage(ctx, staging, "vmapp/frontend", prod, "vmapp/backend", frontend.digest, []string{"r1"}, nil)
	assert.ErrorContains(t, err, "the tag already names "+backend.digest)
}

// An index is copied with its images.
func TestCopyImageIndex(t *testing.T) {
	ctx := context.Background()
	_, _, a := copySim(t, "AKIAA", "222222222222")
	_, _, b := copySim(t, "AKIAB", "333333333333")
	img := pushTestImage(t, a, "vmapp/openvoice", "amd64", randomBlob(t, 64<<10))
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
		"manifests": []map[string]any{{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": img.digest, "size": 0, "platform": map[string]string{"os": "linux", "architecture": "amd64"}}},
	})
	require.NoError(t, err)
	// The registry wants the child's real size in the index.
	body, _, err := newRegClient(a).getManifest(ctx, "vmapp/openvoice", img.digest)
	require.NoError(t, err)
	index = bytes.Replace(index, []byte(`"size":0`), []byte(`"size":`+itoa(len(body))), 1)
	require.NoError(t, newRegClient(a).putManifest(ctx, "vmapp/openvoice", "r1", "application/vnd.oci.image.index.v1+json", index))

	st, err := CopyImage(ctx, a, "vmapp/openvoice", b, "vmapp/openvoice", sha256Digest(index), []string{"r1"}, nil)
	require.NoError(t, err)
	assert.Equal(t, 2, st.Manifests, "the image and the index")
	assert.Equal(t, img.size, st.BytesMoved)
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// Within one registry an image is retagged into another repository by its
// manifest alone; where that repository lacks the layers, they are mounted
// from the source repository, so no layer byte moves either way.
func TestRetagWithinOneRegistry(t *testing.T) {
	ctx := context.Background()
	sim := awssim.New()
	t.Cleanup(sim.Close)
	sim.AddUser("AKIASTAGING", awssim.Principal{Account: "222222222222", ARN: "arn:aws:iam::222222222222:role/ci"})
	sim.AddUser("AKIAPROD", awssim.Principal{Account: "333333333333", ARN: "arn:aws:iam::333333333333:role/ci"})
	from := ecr.NewFromConfig(simtest.Config(t, sim, "AKIASTAGING"))
	to := ecr.NewFromConfig(simtest.Config(t, sim, "AKIAPROD"))
	for _, c := range []struct {
		api  *ecr.Client
		repo string
	}{{from, "vmapp/api"}, {to, "vmapp/api"}, {to, "vmapp-prod/api"}} {
		_, err := c.api.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: sdkaws.String(c.repo)})
		require.NoError(t, err)
	}
	regA, err := ECRRegistry(ctx, from)
	require.NoError(t, err)
	regB, err := ECRRegistry(ctx, to)
	require.NoError(t, err)
	require.Equal(t, regA.Host(), regB.Host(), "one registry for every account")
	img := pushTestImage(t, regA, "vmapp/api", "r1", randomBlob(t, 64<<10))

	// The same repository name: the image and the tag are there already.
	changed, err := RetagImage(ctx, from, to, "vmapp/api", "vmapp/api", img.digest, "r1")
	require.NoError(t, err)
	assert.False(t, changed)
	changed, err = RetagImage(ctx, from, to, "vmapp/api", "vmapp/api", img.digest, "r1-approved")
	require.NoError(t, err)
	assert.True(t, changed, "a new tag on the same manifest")

	// Another repository lacks the layers: PutImage says so, mounting fills them in.
	_, err = RetagImage(ctx, from, to, "vmapp/api", "vmapp-prod/api", img.digest, "r1")
	require.ErrorIs(t, err, errNeedBlobs)
	st, err := CopyImage(ctx, regA, "vmapp/api", regB, "vmapp-prod/api", img.digest, []string{"r1"}, []string{"vmapp/api"})
	require.NoError(t, err)
	assert.Zero(t, st.BytesMoved)
	assert.Equal(t, 2, st.BlobsMounted)
	out, err := to.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: sdkaws.String("vmapp-prod/api")})
	require.NoError(t, err)
	require.Len(t, out.ImageDetails, 1)
	assert.Equal(t, img.digest, sdkaws.ToString(out.ImageDetails[0].ImageDigest))
	assert.Equal(t, []string{"r1"}, out.ImageDetails[0].ImageTags)
}

// Promote's copy step across registries: the shared base layer travels
// once and is mounted into the other repositories; a second run moves nothing.
func TestCopyReleaseAcrossRegistries(t *testing.T) {
	ctx := context.Background()
	_, from, regA := copySim(t, "AKIASTAGING", "222222222222")
	_, to, regB := copySim(t, "AKIAPROD", "333333333333")
	rel := pushBenchRelease(t, from, regA)
	planB := benchPlanB(t, to, rel.images)

	copies, err := CopyImages(ctx, from, to, regA, regB, planB, rel.images, "r1", progress.Discard{})
	require.NoError(t, err)
	var moved int64
	var mounted int
	for _, c := range copies {
		assert.Equal(t, "copy", c.Method)
		moved += c.Stats.BytesMoved
		mounted += c.Stats.BlobsMounted
	}
	assert.Equal(t, rel.size, moved, "every distinct blob exactly once")
	assert.Equal(t, 3, mounted, "the base layer, into the three repositories after the first")

	copies, err = CopyImages(ctx, from, to, regA, regB, planB, rel.images, "r1", progress.Discard{})
	require.NoError(t, err)
	for _, c := range copies {
		assert.Equal(t, "present", c.Method)
		assert.Zero(t, c.Stats.BytesMoved)
	}
}
