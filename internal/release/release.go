// Package release holds release manifests: the immutable set of image digests built from one
// source revision. Every environment runs a release by digest, and promotion copies digests,
// never rebuilds, so the image in a prod task is provably the one built and tested locally.
package release

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Release is one manifest.
type Release struct {
	ID       string           `json:"id"`       // also the tag pushed beside each digest
	Revision string           `json:"revision"` // the app's source revision
	Created  time.Time        `json:"created,omitzero"`
	By       string           `json:"by,omitempty"`
	Images   map[string]Image `json:"images"` // keyed by compose service
	// Overrides record each time images of this release shipped past the scan gate.
	Overrides []Override `json:"overrides,omitempty"`
}

// Override is one decision to ship this release's images although the scan gate
// blocked them: where, by whom, why, and which images.
type Override struct {
	Environment string    `json:"environment"`
	Action      string    `json:"action"` // deploy, promote, rollback
	Reason      string    `json:"reason"`
	By          string    `json:"by,omitempty"`
	At          time.Time `json:"at"`
	Blocked     []string  `json:"blocked"` // "service sha256:…: why"
}

// Image is one service's image in a release.
type Image struct {
	// Repository is the repository path inside a registry (vmapp/backend); empty means the
	// default, the stack's project name and the service name.
	Repository string `json:"repository,omitempty"`
	// ImageID is the image's config digest as built locally. It never changes on push, so it
	// ties a registry manifest back to the image that ran and passed locally.
	ImageID string `json:"image_id,omitempty"`
	// LocalRef is the image as the local engine knows it (vmapp-backend:local).
	LocalRef string `json:"local_ref,omitempty"`
	Digest   string `json:"digest,omitempty"` // the registry manifest's sha256:…; empty before a push
}

var (
	digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	// An ID becomes an ECR tag and a file name, so it follows ECR's tag rules, which leave
	// out slashes and a leading dot.
	idRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	// ECR repository names: lowercase path components joined by /.
	repoRE = regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$`)
)

// Load reads a manifest strictly: unknown fields and malformed digests are errors.
func Load(path string) (*Release, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read release: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var r Release
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("read release %s: %w", path, err)
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("read release %s: %w", path, err)
	}
	return &r, nil
}

// ValidateID checks that id has the shape of a release id (20261130T041500Z-3f9c2a1b7d4e).
// An id names a manifest file and an image tag, so one from a flag or an ECS tag must pass
// before it is used: "../x" would otherwise reach outside the release directory.
func ValidateID(id string) error {
	if !idRE.MatchString(id) || strings.Contains(id, "..") {
		return fmt.Errorf("release %q: not a release id: it must be letters, digits, _ . - (at most 128, no ..), as vmctl releases lists them", id)
	}
	return nil
}

// Validate checks the ID, every repository and every digest.
func (r Release) Validate() error {
	var errs []error
	if r.ID != "" && (!idRE.MatchString(r.ID) || strings.Contains(r.ID, "..")) {
		errs = append(errs, fmt.Errorf("id %q is not a valid image tag (letters, digits, _ . -; at most 128, no ..)", r.ID))
	}
	for _, svc := range slices.Sorted(maps.Keys(r.Images)) {
		img := r.Images[svc]
		if img.ImageID != "" && !digestRE.MatchString(img.ImageID) {
			errs = append(errs, fmt.Errorf("images.%s.image_id %q is not sha256: and 64 hex digits", svc, img.ImageID))
		}
		if img.Digest != "" && !digestRE.MatchString(img.Digest) {
			errs = append(errs, fmt.Errorf("images.%s.digest %q is not sha256: and 64 hex digits", svc, img.Digest))
		}
		if img.Repository != "" && (len(img.Repository) > 256 || !repoRE.MatchString(img.Repository)) {
			errs = append(errs, fmt.Errorf("images.%s.repository %q is not a repository name (lowercase, digits, . _ - and /)", svc, img.Repository))
		}
	}
	return errors.Join(errs...)
}
