package registry

import (
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
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"

	"github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/progress"
)

// Registry is one OCI registry as the distribution API reaches it: ECR's
// proxy endpoint and the basic credentials its authorization token holds.
type Registry struct {
	Endpoint string // scheme://host[:port]
	Username string
	Password string
	Client   *http.Client // nil: a client with a 10-minute overall timeout per request
}

// Host is the registry's host[:port], how image references name it.
func (r Registry) Host() string {
	u, err := url.Parse(r.Endpoint)
	if err != nil {
		return r.Endpoint
	}
	return u.Host
}

// ECRRegistry reads the registry behind an ECR client from its
// authorization token.
func ECRRegistry(ctx context.Context, api aws.ECR) (Registry, error) {
	out, err := api.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		return Registry{}, fmt.Errorf("get an ECR authorization token: %w", err)
	}
	if len(out.AuthorizationData) == 0 {
		return Registry{}, errors.New("get an ECR authorization token: ECR returned none")
	}
	d := out.AuthorizationData[0]
	raw, err := base64.StdEncoding.DecodeString(sdkaws.ToString(d.AuthorizationToken))
	if err != nil {
		return Registry{}, fmt.Errorf("decode the ECR authorization token: %w", err)
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return Registry{}, errors.New("decode the ECR authorization token: not user:password")
	}
	u, err := url.Parse(sdkaws.ToString(d.ProxyEndpoint))
	if err != nil || u.Host == "" {
		return Registry{}, fmt.Errorf("ECR proxy endpoint %q is not a URL", sdkaws.ToString(d.ProxyEndpoint))
	}
	return Registry{Endpoint: u.Scheme + "://" + u.Host, Username: user, Password: pass}, nil
}

// CopyStats is what one copy did. BytesMoved counts blob bytes (layers and
// image configs) that travelled from one registry to the other; manifests
// are not counted.
type CopyStats struct {
	Manifests    int   `json:"manifests"`     // manifests written to the target
	BlobsCopied  int   `json:"blobs_copied"`  // sent, source to target
	BlobsMounted int   `json:"blobs_mounted"` // mounted from another repository of the target
	BlobsPresent int   `json:"blobs_present"` // already in the target repository
	BytesMoved   int64 `json:"bytes_moved"`
}

func (s *CopyStats) add(o CopyStats) {
	s.Manifests += o.Manifests
	s.BlobsCopied += o.BlobsCopied
	s.BlobsMounted += o.BlobsMounted
	s.BlobsPresent += o.BlobsPresent
	s.BytesMoved += o.BytesMoved
}

// CopyImage copies one image by digest from a repository of one registry to
// a repository of another over the OCI distribution API, registry to
// registry: nothing is pulled into a Docker Engine and nothing is rebuilt.
// A blob the target repository has is skipped; one that another repository
// of the target has (mountFrom) is mounted; only the rest is sent, streamed
// from the source. Tags name the image in the target once it is complete.
func CopyImage(ctx context.Context, src Registry, srcRepo string, dst Registry, dstRepo, digest string, tags []string, mountFrom []string) (CopyStats, error) {
	c := &copier{src: newRegClient(src), dst: newRegClient(dst), srcRepo: srcRepo, dstRepo: dstRepo, mountFrom: mountFrom}
	if err := c.manifest(ctx, digest, 0); err != nil {
		return c.stats, fmt.Errorf("copy %s/%s@%s to %s/%s: %w", src.Host(), srcRepo, digest, dst.Host(), dstRepo, err)
	}
	for _, tag := range tags {
		if err := c.tag(ctx, digest, tag); err != nil {
			return c.stats, fmt.Errorf("tag %s/%s@%s as %s: %w", dst.Host(), dstRepo, digest, tag, err)
		}
	}
	return c.stats, nil
}

// manifestTypes are the manifest kinds a copy accepts, as pushed.
var manifestTypes = []string{
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
}

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

type copier struct {
	src, dst         *regClient
	srcRepo, dstRepo string
	mountFrom        []string
	stats            CopyStats
	sent             []string // blobs handled in this copy
}

func (c *copier) manifest(ctx context.Context, digest string, depth int) error {
	if depth > 2 {
		return errors.New("manifests nest deeper than an index of images")
	}
	// The whole image is there already: nothing to send.
	if ok, _, err := c.dst.headManifest(ctx, c.dstRepo, digest); err != nil {
		return err
	} else if ok {
		return nil
	}
	body, mediaType, err := c.src.getManifest(ctx, c.srcRepo, digest)
	if err != nil {
		return err
	}
	if got := sha256Digest(body); got != digest {
		return fmt.Errorf("the source sent a manifest whose digest is %s", got)
	}
	var m struct {
		MediaType string       `json:"mediaType"`
		Config    *descriptor  `json:"config"`
		Layers    []descriptor `json:"layers"`
		Manifests []descriptor `json:"manifests"`
		Subject   *descriptor  `json:"subject"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return fmt.Errorf("read manifest %s: %w", digest, err)
	}
	if mediaType == "" {
		mediaType = m.MediaType
	}
	// An index's images first, then its blobs, then itself: a registry refuses
	// a manifest whose references it lacks.
	for _, child := range m.Manifests {
		if err := c.manifest(ctx, child.Digest, depth+1); err != nil {
			return err
		}
	}
	var blobs []descriptor
	if m.Config != nil {
		blobs = append(blobs, *m.Config)
	}
	blobs = append(blobs, m.Layers...)
	for _, b := range blobs {
		if err := c.blob(ctx, b); err != nil {
			return fmt.Errorf("blob %s: %w", b.Digest, err)
		}
	}
	if err := c.dst.putManifest(ctx, c.dstRepo, digest, mediaType, body); err != nil {
		return err
	}
	c.stats.Manifests++
	return nil
}

func (c *copier) blob(ctx context.Context, b descriptor) error {
	if slices.Contains(c.sent, b.Digest) {
		return nil
	}
	c.sent = append(c.sent, b.Digest)
	if ok, err := c.dst.headBlob(ctx, c.dstRepo, b.Digest); err != nil {
		return err
	} else if ok {
		c.stats.BlobsPresent++
		return nil
	}
	for _, from := range c.mountFrom {
		if from == c.dstRepo {
			continue
		}
		// Ask only where the blob is: a failed mount opens an upload session.
		if ok, err := c.dst.headBlob(ctx, from, b.Digest); err != nil || !ok {
			continue
		}
		mounted, err := c.dst.mount(ctx, c.dstRepo, from, b.Digest)
		if err != nil {
			return err
		}
		if mounted {
			c.stats.BlobsMounted++
			return nil
		}
	}
	rc, size, err := c.src.getBlob(ctx, c.srcRepo, b.Digest)
	if err != nil {
		return err
	}
	defer rc.Close()
	if size < 0 {
		size = b.Size
	}
	counted := &countingReader{r: rc}
	if err := c.dst.upload(ctx, c.dstRepo, b.Digest, size, counted); err != nil {
		return err
	}
	c.stats.BlobsCopied++
	c.stats.BytesMoved += counted.n.Load()
	return nil
}

func (c *copier) tag(ctx context.Context, digest, tag string) error {
	ok, cur, err := c.dst.headManifest(ctx, c.dstRepo, tag)
	switch {
	case err != nil:
		return err
	case ok && cur == digest:
		return nil // immutable repositories refuse even an identical re-put
	case ok && cur != "":
		return fmt.Errorf("the tag already names %s", cur)
	}
	body, mediaType, err := c.dst.getManifest(ctx, c.dstRepo, digest)
	if err != nil {
		return err
	}
	return c.dst.putManifest(ctx, c.dstRepo, tag, mediaType, body)
}

type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func sha256Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ---- the distribution API, as much as a copy needs

type regClient struct {
	Registry
	http *http.Client
}

func newRegClient(r Registry) *regClient {
	c := r.Client
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Minute}
	}
	return &regClient{Registry: r, http: c}
}

func (r *regClient) url(path string) string {
	return strings.TrimSuffix(r.Endpoint, "/") + "/v2/" + path
}

// do sends one request with the registry's credentials. Redirects (ECR
// sends blob reads to S3) are followed by the client, which drops the
// credentials when the host changes.
func (r *regClient) do(ctx context.Context, method, rawURL string, body io.Reader, size int64, header map[string]string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, rawURL, body)
	if err != nil {
		return nil, err
	}
	if size >= 0 && body != nil {
		req.ContentLength = size
	}
	if r.Username != "" || r.Password != "" {
		req.SetBasicAuth(r.Username, r.Password)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return r.http.Do(req)
}

// registryError reads the distribution API's error body into one line.
func registryError(resp *http.Response, what string) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<10))
	var e struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &e) == nil && len(e.Errors) > 0 {
		return fmt.Errorf("%s: %s %s: %s", what, resp.Status, e.Errors[0].Code, e.Errors[0].Message)
	}
	return fmt.Errorf("%s: %s", what, resp.Status)
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

func (r *regClient) headManifest(ctx context.Context, repo, ref string) (bool, string, error) {
	resp, err := r.do(ctx, http.MethodHead, r.url(repo+"/manifests/"+ref), nil, -1, map[string]string{"Accept": strings.Join(manifestTypes, ", ")})
	if err != nil {
		return false, "", err
	}
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		return true, resp.Header.Get("Docker-Content-Digest"), nil
	case http.StatusNotFound:
		return false, "", nil
	}
	return false, "", registryError(resp, "HEAD manifest "+repo+":"+ref)
}

func (r *regClient) getManifest(ctx context.Context, repo, ref string) ([]byte, string, error) {
	resp, err := r.do(ctx, http.MethodGet, r.url(repo+"/manifests/"+ref), nil, -1, map[string]string{"Accept": strings.Join(manifestTypes, ", ")})
	if err != nil {
		return nil, "", err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return nil, "", registryError(resp, "GET manifest "+repo+"@"+ref)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, "", err
	}
	mt, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";")
	return body, strings.TrimSpace(mt), nil
}

func (r *regClient) putManifest(ctx context.Context, repo, ref, mediaType string, body []byte) error {
	resp, err := r.do(ctx, http.MethodPut, r.url(repo+"/manifests/"+ref), bytes.NewReader(body), int64(len(body)), map[string]string{"Content-Type": mediaType})
	if err != nil {
		return err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return registryError(resp, "PUT manifest "+repo+":"+ref)
	}
	return nil
}

func (r *regClient) headBlob(ctx context.Context, repo, digest string) (bool, error) {
	resp, err := r.do(ctx, http.MethodHead, r.url(repo+"/blobs/"+digest), nil, -1, nil)
	if err != nil {
		return false, err
	}
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound, http.StatusUnauthorized, http.StatusForbidden:
		// Unauthorized and forbidden: a repository these credentials cannot
		// read is one to send the blob to, not one to mount from.
		return false, nil
	}
	return false, registryError(resp, "HEAD blob "+repo+"@"+digest)
}

func (r *regClient) getBlob(ctx context.Context, repo, digest string) (io.ReadCloser, int64, error) {
	resp, err := r.do(ctx, http.MethodGet, r.url(repo+"/blobs/"+digest), nil, -1, nil)
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		defer drain(resp)
		return nil, 0, registryError(resp, "GET blob "+repo+"@"+digest)
	}
	return resp.Body, resp.ContentLength, nil
}

// mount asks the registry to link a blob of another repository into repo;
// false when it opened an upload instead, which is then cancelled.
func (r *regClient) mount(ctx context.Context, repo, from, digest string) (bool, error) {
	q := url.Values{"mount": {digest}, "from": {from}}
	resp, err := r.do(ctx, http.MethodPost, r.url(repo+"/blobs/uploads/")+"?"+q.Encode(), nil, -1, nil)
	if err != nil {
		return false, err
	}
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusCreated:
		return true, nil
	case http.StatusAccepted:
		if loc, err := r.location(resp); err == nil {
			if del, err := r.do(ctx, http.MethodDelete, loc, nil, -1, nil); err == nil {
				drain(del)
			}
		}
		return false, nil
	}
	return false, registryError(resp, "mount "+digest+" from "+from)
}

func (r *regClient) location(resp *http.Response) (string, error) {
	loc, err := resp.Location()
	if err != nil {
		return "", fmt.Errorf("the registry gave no upload location: %w", err)
	}
	return loc.String(), nil
}

// upload sends one blob as docker push does: open a session, stream the
// content in one PATCH, close it with the digest.
func (r *regClient) upload(ctx context.Context, repo, digest string, size int64, body io.Reader) error {
	resp, err := r.do(ctx, http.MethodPost, r.url(repo+"/blobs/uploads/"), nil, -1, nil)
	if err != nil {
		return err
	}
	drain(resp)
	if resp.StatusCode != http.StatusAccepted {
		return registryError(resp, "start an upload to "+repo)
	}
	loc, err := r.location(resp)
	if err != nil {
		return err
	}
	resp, err = r.do(ctx, http.MethodPatch, loc, body, size, map[string]string{"Content-Type": "application/octet-stream"})
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusNoContent {
		defer drain(resp)
		return registryError(resp, "upload "+digest)
	}
	next, err := r.location(resp)
	drain(resp)
	if err != nil {
		return err
	}
	u, err := url.Parse(next)
	if err != nil {
		return err
	}
	q := u.Query()
	q.Set("digest", digest)
	u.RawQuery = q.Encode()
	resp, err = r.do(ctx, http.MethodPut, u.String(), http.NoBody, 0, nil)
	if err != nil {
		return err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusCreated {
		return registryError(resp, "complete the upload of "+digest)
	}
	return nil
}

// errNeedBlobs says the target repository lacks layers a manifest-only
// copy would reference; the blobs have to be mounted or sent first.
var errNeedBlobs = errors.New("the target repository lacks the image's layers")

// RetagImage copies an image between two repositories of one registry
// without moving a layer: BatchGetImage reads its manifest from the source
// repository and PutImage writes it, byte for byte and by digest, into the
// target under the tag. It says whether the target gained anything (false:
// the image and tag were there already).
func RetagImage(ctx context.Context, from, to aws.ECRAll, fromRepo, toRepo, digest, tag string) (bool, error) {
	got, err := from.BatchGetImage(ctx, &ecr.BatchGetImageInput{
		RepositoryName:     sdkaws.String(fromRepo),
		ImageIds:           []ecrtypes.ImageIdentifier{{ImageDigest: sdkaws.String(digest)}},
		AcceptedMediaTypes: manifestTypes,
	})
	if err != nil {
		return false, fmt.Errorf("read %s@%s: %w", fromRepo, digest, err)
	}
	if len(got.Images) == 0 {
		why := "ECR returned nothing"
		if len(got.Failures) > 0 {
			why = string(got.Failures[0].FailureCode) + ": " + sdkaws.ToString(got.Failures[0].FailureReason)
		}
		return false, fmt.Errorf("read %s@%s: %s", fromRepo, digest, why)
	}
	img := got.Images[0]
	in := &ecr.PutImageInput{
		RepositoryName: sdkaws.String(toRepo),
		ImageManifest:  img.ImageManifest,
		ImageDigest:    sdkaws.String(digest),
	}
	if img.ImageManifestMediaType != nil {
		in.ImageManifestMediaType = img.ImageManifestMediaType
	}
	if tag != "" {
		in.ImageTag = sdkaws.String(tag)
	}
	_, err = to.PutImage(ctx, in)
	var exists *ecrtypes.ImageAlreadyExistsException
	var layers *ecrtypes.LayersNotFoundException
	var refs *ecrtypes.ReferencedImagesNotFoundException
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &exists):
		return false, nil
	case errors.As(err, &layers), errors.As(err, &refs):
		return false, fmt.Errorf("put %s@%s: %w: %w", toRepo, digest, errNeedBlobs, err)
	}
	return false, fmt.Errorf("put %s@%s as %s: %w", toRepo, digest, tag, err)
}

// Copied is one image's copy to B.
type Copied struct {
	Image
	// Method: present (B had it), retag (a manifest put into B's repository),
	// or copy (blobs mounted or sent over the distribution API).
	Method string    `json:"method"`
	Stats  CopyStats `json:"stats"`
}

// CopyImages puts every image into B's repositories by digest, tagged with
// the release id.
func CopyImages(ctx context.Context, from, to aws.ECRAll, regA, regB Registry, planB *ecs.Plan, images []Image, tag string, pw progress.Writer) ([]Copied, error) {
	same := regA.Host() == regB.Host()
	var reposB []string
	for _, r := range planB.Repositories {
		reposB = append(reposB, r.Name)
	}
	var out []Copied
	for _, img := range images {
		res := "copy " + strings.Join(img.Services, ",")
		c := Copied{Image: img}
		srcRepo, dstRepo := img.From, img.To
		pw.Event(progress.Event{Resource: res, Status: progress.Working, Text: "Copying", Detail: regB.Host() + "/" + dstRepo + "@" + img.Digest})
		var err error
		if same {
			var changed bool
			changed, err = RetagImage(ctx, from, to, srcRepo, dstRepo, img.Digest, tag)
			c.Method = map[bool]string{true: "retag", false: "present"}[changed]
			if errors.Is(err, errNeedBlobs) {
				// The layers are in this registry, under A's repository: mount them.
				c.Method = "copy"
				c.Stats, err = CopyImage(ctx, regA, srcRepo, regB, dstRepo, img.Digest, []string{tag}, append([]string{srcRepo}, reposB...))
			}
		} else {
			c.Method = "copy"
			c.Stats, err = CopyImage(ctx, regA, srcRepo, regB, dstRepo, img.Digest, []string{tag}, reposB)
			if err == nil && c.Stats.Manifests == 0 {
				c.Method = "present"
			}
		}
		if err != nil {
			pw.Event(progress.Event{Resource: res, Status: progress.Error, Text: "Copy failed", Detail: err.Error()})
			return out, fmt.Errorf("copy %s to %s: %w", strings.Join(img.Services, ","), planB.Environment, err)
		}
		// B's ECR must now hold the digest, whichever way it got there.
		if _, err := to.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: sdkaws.String(dstRepo), ImageIds: []ecrtypes.ImageIdentifier{{ImageDigest: sdkaws.String(img.Digest)}}}); err != nil {
			return out, fmt.Errorf("copy %s to %s: ECR does not show %s@%s: %w", strings.Join(img.Services, ","), planB.Environment, dstRepo, img.Digest, err)
		}
		pw.Event(progress.Event{Resource: res, Status: progress.Done, Text: c.Method, Detail: fmt.Sprintf("%s, %d bytes moved", ShortDigest(img.Digest), c.Stats.BytesMoved)})
		out = append(out, c)
	}
	return out, nil
}
