// Package registry is vmctl's side of ECR: it pushes a release's images and
// proves that what landed is what was built (push.go), copies images between
// repositories and registries by digest (copy.go), and reads the images' ECR
// scans for the scan gate that every write into an environment passes
// (scan.go).
package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/docker/docker/api/types/image"
	dockerregistry "github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/pkg/jsonmessage"

	"github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/progress"
	"github.com/vmctl/vmctl/internal/release"
)

// Docker is the part of the Docker client push uses.
type Docker interface {
	ImageTag(ctx context.Context, source, target string) error
	ImagePush(ctx context.Context, ref string, options image.PushOptions) (io.ReadCloser, error)
}

// Pushed is one image in the registry.
type Pushed struct {
	Service    string `json:"service"`
	Repository string `json:"repository"`
	Reference  string `json:"reference"` // registry/repo@sha256:…
	Digest     string `json:"digest"`
	ImageID    string `json:"image_id"`
}

// Push makes the plan's repositories exist with their settings, pushes each
// image of the release through the Docker Engine (which sends only the
// layers the registry lacks), and checks that each manifest in ECR is the
// release's image: its config digest equals the image ID built locally.
func Push(ctx context.Context, ecrAPI aws.ECR, docker Docker, plan *ecs.Plan, rel *release.Release, pw progress.Writer) ([]Pushed, error) {
	if err := EnsureRepositories(ctx, ecrAPI, plan.Repositories); err != nil {
		return nil, err
	}
	host, auth, err := registryAuth(ctx, ecrAPI)
	if err != nil {
		return nil, err
	}
	var out []Pushed
	for _, repo := range plan.Repositories {
		for _, svc := range repo.Services {
			img, ok := rel.Images[svc]
			if !ok || img.ImageID == "" {
				return out, fmt.Errorf("push %s: release %s has no local image for it: build it with vmctl build", svc, rel.ID)
			}
			p, err := pushOne(ctx, ecrAPI, docker, host, auth, repo.Name, svc, rel, img, pw)
			if err != nil {
				return out, err
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// EnsureRepositories creates missing repositories and brings existing ones
// to the rendered settings.
func EnsureRepositories(ctx context.Context, api aws.ECR, repos []ecs.Repository) error {
	for _, r := range repos {
		_, err := api.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{RepositoryNames: []string{r.Name}})
		var nf *ecrtypes.RepositoryNotFoundException
		switch {
		case errors.As(err, &nf):
			in := r.Settings
			in.RepositoryName = sdkaws.String(r.Name)
			if _, err := api.CreateRepository(ctx, &in); err != nil {
				return fmt.Errorf("create ECR repository %s: %w", r.Name, err)
			}
		case err != nil:
			return fmt.Errorf("describe ECR repository %s: %w", r.Name, err)
		default:
			if r.Settings.ImageScanningConfiguration != nil {
				if _, err := api.PutImageScanningConfiguration(ctx, &ecr.PutImageScanningConfigurationInput{RepositoryName: sdkaws.String(r.Name), ImageScanningConfiguration: r.Settings.ImageScanningConfiguration}); err != nil {
					return fmt.Errorf("set scanning on %s: %w", r.Name, err)
				}
			}
			if r.Settings.ImageTagMutability != "" {
				if _, err := api.PutImageTagMutability(ctx, &ecr.PutImageTagMutabilityInput{RepositoryName: sdkaws.String(r.Name), ImageTagMutability: r.Settings.ImageTagMutability}); err != nil {
					return fmt.Errorf("set tag mutability on %s: %w", r.Name, err)
				}
			}
		}
		if r.Lifecycle.LifecyclePolicyText != nil {
			in := r.Lifecycle
			in.RepositoryName = sdkaws.String(r.Name)
			if _, err := api.PutLifecyclePolicy(ctx, &in); err != nil {
				return fmt.Errorf("set the lifecycle policy of %s: %w", r.Name, err)
			}
		}
	}
	return nil
}

// registryAuth turns ECR's token into the registry host and the Docker
// Engine's X-Registry-Auth value.
func registryAuth(ctx context.Context, api aws.ECR) (string, string, error) {
	out, err := api.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		return "", "", fmt.Errorf("get an ECR authorization token: %w", err)
	}
	if len(out.AuthorizationData) == 0 {
		return "", "", errors.New("get an ECR authorization token: ECR returned none")
	}
	d := out.AuthorizationData[0]
	raw, err := base64.StdEncoding.DecodeString(sdkaws.ToString(d.AuthorizationToken))
	if err != nil {
		return "", "", fmt.Errorf("decode the ECR authorization token: %w", err)
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", "", errors.New("decode the ECR authorization token: not user:password")
	}
	u, err := url.Parse(sdkaws.ToString(d.ProxyEndpoint))
	if err != nil || u.Host == "" {
		return "", "", fmt.Errorf("ECR proxy endpoint %q is not a URL", sdkaws.ToString(d.ProxyEndpoint))
	}
	b, err := json.Marshal(dockerregistry.AuthConfig{Username: user, Password: pass, ServerAddress: u.Host})
	if err != nil {
		return "", "", err
	}
	return u.Host, base64.URLEncoding.EncodeToString(b), nil
}

func pushOne(ctx context.Context, api aws.ECR, docker Docker, host, auth, repo, svc string, rel *release.Release, img release.Image, pw progress.Writer) (Pushed, error) {
	target := fmt.Sprintf("%s/%s:%s", host, repo, rel.ID)
	res := "push " + svc
	pw.Event(progress.Event{Resource: res, Status: progress.Working, Text: "Pushing", Detail: target})
	// Tag the image ID itself, so the pushed image is the release's even if
	// the local tag has since moved to a newer build.
	if err := docker.ImageTag(ctx, img.ImageID, target); err != nil {
		return Pushed{}, fmt.Errorf("push %s: tag %s: %w: is the image still on this engine? (vmctl build)", svc, img.ImageID, err)
	}
	// The registry tag stays on the engine, as after a docker push: removing
	// it could delete the release's image when no other tag holds it.
	rc, err := docker.ImagePush(ctx, target, image.PushOptions{RegistryAuth: auth})
	if err != nil {
		return Pushed{}, fmt.Errorf("push %s: %w", svc, err)
	}
	digest, err := readPush(rc, func(layer, status string) {
		pw.Event(progress.Event{Resource: res, Status: progress.Working, Text: "Pushing", Detail: layer + " " + status})
	})
	rc.Close()
	if err != nil {
		pw.Event(progress.Event{Resource: res, Status: progress.Error, Text: "Push failed", Detail: err.Error()})
		return Pushed{}, fmt.Errorf("push %s to %s: %w", svc, target, err)
	}
	if img.Digest != "" && img.Digest != digest {
		return Pushed{}, fmt.Errorf("push %s: the registry has %s, release %s says %s: the image is not the release's", svc, digest, rel.ID, img.Digest)
	}
	if err := checkConfig(ctx, api, repo, digest, img.ImageID); err != nil {
		return Pushed{}, fmt.Errorf("push %s: %w", svc, err)
	}
	pw.Event(progress.Event{Resource: res, Status: progress.Done, Text: "Pushed", Detail: digest})
	return Pushed{Service: svc, Repository: repo, Reference: fmt.Sprintf("%s/%s@%s", host, repo, digest), Digest: digest, ImageID: img.ImageID}, nil
}

// readPush follows the engine's push stream and returns the manifest
// digest it reports at the end.
func readPush(r io.Reader, layer func(id, status string)) (string, error) {
	dec := json.NewDecoder(r)
	digest := ""
	for {
		var m jsonmessage.JSONMessage
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return "", err
		}
		if m.Error != nil {
			return "", errors.New(m.Error.Message)
		}
		if m.Aux != nil {
			var aux struct{ Digest string }
			if json.Unmarshal(*m.Aux, &aux) == nil && aux.Digest != "" {
				digest = aux.Digest
			}
		}
		if m.ID != "" && m.Status != "" && layer != nil {
			layer(m.ID, m.Status)
		}
	}
	if digest == "" {
		return "", errors.New("the engine reported no digest")
	}
	return digest, nil
}

// checkConfig reads the manifest back from ECR and proves it is the
// release's image: the manifest's config digest is the local image ID.
func checkConfig(ctx context.Context, api aws.ECR, repo, digest, imageID string) error {
	out, err := api.BatchGetImage(ctx, &ecr.BatchGetImageInput{
		RepositoryName:     sdkaws.String(repo),
		ImageIds:           []ecrtypes.ImageIdentifier{{ImageDigest: sdkaws.String(digest)}},
		AcceptedMediaTypes: []string{"application/vnd.docker.distribution.manifest.v2+json", "application/vnd.oci.image.manifest.v1+json"},
	})
	if err != nil {
		return fmt.Errorf("read back %s@%s from ECR: %w", repo, digest, err)
	}
	if len(out.Images) == 0 {
		return fmt.Errorf("ECR does not have %s@%s after the push", repo, digest)
	}
	var m struct {
		Config struct{ Digest string } `json:"config"`
	}
	if err := json.Unmarshal([]byte(sdkaws.ToString(out.Images[0].ImageManifest)), &m); err != nil {
		return fmt.Errorf("read the manifest of %s@%s: %w", repo, digest, err)
	}
	if m.Config.Digest != imageID {
		return fmt.Errorf("ECR's %s@%s is image %s, not the release's %s", repo, digest, m.Config.Digest, imageID)
	}
	return nil
}

// Digests maps service to pushed digest, for the release manifest.
func Digests(pushed []Pushed) map[string]string {
	out := map[string]string{}
	for _, p := range pushed {
		out[p.Service] = p.Digest
	}
	return out
}

// Services lists the services pushed, sorted.
func Services(pushed []Pushed) []string {
	var out []string
	for _, p := range pushed {
		out = append(out, p.Service)
	}
	sort.Strings(out)
	return out
}
