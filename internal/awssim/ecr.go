package awssim

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"sync"
	"time"
)

// ECR over JSON 1.1. Repositories belong to the account that signed the
// request (or registryId); behind them is the simulator's one registry, in
// which a repository's path is its name, so the same name in two accounts
// shares images. repositoryUri and proxyEndpoint name that registry.

const ecrTarget = "AmazonEC2ContainerRegistry_V20150921"

type ecrState struct {
	mu       sync.Mutex
	repos    map[string]*ecrRepo      // by account + "/" + name
	findings map[string][]ScanFinding // by repository name + "@" + digest
	statuses map[string]ecrScanStatus // scans that ended otherwise, by the same key
}

type ecrRepo struct {
	account, region, name string
	created               time.Time
	mutability            string
	scanOnPush            bool
	encryption            ecrEncryption
	lifecyclePolicy       string
}

// ScanFinding is one vulnerability that an image scan reports; a test plants
// them with PlantScanFindings.
type ScanFinding struct {
	Name        string // e.g. CVE-2023-4911
	Severity    string // CRITICAL, HIGH, MEDIUM, LOW, INFORMATIONAL, UNDEFINED
	Description string
	URI         string
	Attributes  map[string]string // package_name, package_version, …
}

// PlantScanFindings makes repo@digest's image scan complete with these
// findings (none: a clean scan), whatever the repository's scanOnPush says.
func (s *Sim) PlantScanFindings(repo, digest string, findings []ScanFinding) {
	s.ecr.mu.Lock()
	defer s.ecr.mu.Unlock()
	s.ecr.findings[repo+"@"+digest] = append([]ScanFinding{}, findings...)
}

// PlantScanStatus makes repo@digest's scan end in a status other than COMPLETE,
// as ECR reports an image it cannot scan: FAILED, UNSUPPORTED_IMAGE, …; an empty
// status means no scan at all (ScanNotFoundException). ClearScanStatus undoes it.
func (s *Sim) PlantScanStatus(repo, digest, status, description string) {
	s.ecr.mu.Lock()
	defer s.ecr.mu.Unlock()
	s.ecr.statuses[repo+"@"+digest] = ecrScanStatus{Status: status, Description: description}
}

// ClearScanStatus gives repo@digest back the scan ECR would make of it.
func (s *Sim) ClearScanStatus(repo, digest string) {
	s.ecr.mu.Lock()
	defer s.ecr.mu.Unlock()
	delete(s.ecr.statuses, repo+"@"+digest)
}

func (s *Sim) registerECR() {
	s.ecr = &ecrState{repos: map[string]*ecrRepo{}, findings: map[string][]ScanFinding{}, statuses: map[string]ecrScanStatus{}}
	s.registry = newRegistry()
	s.registry.immutable = func(name string) bool {
		s.ecr.mu.Lock()
		defer s.ecr.mu.Unlock()
		for _, r := range s.ecr.repos {
			if r.name == name && r.mutability == "IMMUTABLE" {
				return true
			}
		}
		return false
	}
	s.RegisterJSON(ecrTarget, JSONService{Name: "ECR", Handler: s.serveECR})
}

// Wire shapes, with ECR's member names.
type (
	ecrScanning struct {
		ScanOnPush bool `json:"scanOnPush"`
	}
	ecrEncryption struct {
		EncryptionType string `json:"encryptionType"`
		KmsKey         string `json:"kmsKey,omitempty"`
	}
	ecrImageID struct {
		ImageDigest string `json:"imageDigest,omitempty"`
		ImageTag    string `json:"imageTag,omitempty"`
	}
	ecrRepository struct {
		RepositoryArn              string        `json:"repositoryArn"`
		RegistryID                 string        `json:"registryId"`
		RepositoryName             string        `json:"repositoryName"`
		RepositoryURI              string        `json:"repositoryUri"`
		CreatedAt                  jsonEpoch     `json:"createdAt"`
		ImageTagMutability         string        `json:"imageTagMutability"`
		ImageScanningConfiguration ecrScanning   `json:"imageScanningConfiguration"`
		EncryptionConfiguration    ecrEncryption `json:"encryptionConfiguration"`
	}
	ecrScanStatus struct {
		Status      string `json:"status"`
		Description string `json:"description,omitempty"`
	}
	ecrFindingsSummary struct {
		ImageScanCompletedAt         jsonEpoch      `json:"imageScanCompletedAt"`
		VulnerabilitySourceUpdatedAt jsonEpoch      `json:"vulnerabilitySourceUpdatedAt"`
		FindingSeverityCounts        map[string]int `json:"findingSeverityCounts"`
	}
	ecrImageDetail struct {
		RegistryID               string              `json:"registryId"`
		RepositoryName           string              `json:"repositoryName"`
		ImageDigest              string              `json:"imageDigest"`
		ImageTags                []string            `json:"imageTags,omitempty"`
		ImageSizeInBytes         int64               `json:"imageSizeInBytes"`
		ImagePushedAt            jsonEpoch           `json:"imagePushedAt"`
		ImageManifestMediaType   string              `json:"imageManifestMediaType,omitempty"`
		ArtifactMediaType        string              `json:"artifactMediaType,omitempty"`
		ImageScanStatus          *ecrScanStatus      `json:"imageScanStatus,omitempty"`
		ImageScanFindingsSummary *ecrFindingsSummary `json:"imageScanFindingsSummary,omitempty"`
	}
	ecrImage struct {
		RegistryID             string     `json:"registryId"`
		RepositoryName         string     `json:"repositoryName"`
		ImageID                ecrImageID `json:"imageId"`
		ImageManifest          string     `json:"imageManifest"`
		ImageManifestMediaType string     `json:"imageManifestMediaType,omitempty"`
	}
	ecrImageFailure struct {
		ImageID       ecrImageID `json:"imageId"`
		FailureCode   string     `json:"failureCode"`
		FailureReason string     `json:"failureReason"`
	}
)

// ecrRequest holds every input member the implemented operations read.
type ecrRequest struct {
	RegistryID                 string         `json:"registryId"`
	RegistryIDs                []string       `json:"registryIds"`
	RepositoryName             string         `json:"repositoryName"`
	RepositoryNames            []string       `json:"repositoryNames"`
	ImageTagMutability         string         `json:"imageTagMutability"`
	ImageScanningConfiguration *ecrScanning   `json:"imageScanningConfiguration"`
	EncryptionConfiguration    *ecrEncryption `json:"encryptionConfiguration"`
	LifecyclePolicyText        string         `json:"lifecyclePolicyText"`
	ImageIDs                   []ecrImageID   `json:"imageIds"`
	ImageID                    *ecrImageID    `json:"imageId"`
	Filter                     *struct {
		TagStatus string `json:"tagStatus"`
	} `json:"filter"`
	ImageManifest          string `json:"imageManifest"`
	ImageManifestMediaType string `json:"imageManifestMediaType"`
	ImageTag               string `json:"imageTag"`
	ImageDigest            string `json:"imageDigest"`
}

var repoNameRe = regexp.MustCompile(`^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$`)

func (s *Sim) serveECR(r *http.Request, op string, body []byte) (any, error) {
	p, err := s.signedCaller(r)
	if err != nil {
		return nil, err
	}
	var in ecrRequest
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, Errorf("SerializationException", "%v", err)
	}
	account := p.Account
	if in.RegistryID != "" {
		account = in.RegistryID
	}
	region := signingRegion(r)

	switch op {
	case "GetAuthorizationToken":
		token := s.registry.issue(account)
		return map[string]any{"authorizationData": []map[string]any{{
			"authorizationToken": base64.StdEncoding.EncodeToString([]byte("AWS:" + token)),
			"expiresAt":          jsonEpoch(time.Now().Add(12 * time.Hour)),
			"proxyEndpoint":      "http://" + s.RegistryHost(),
		}}}, nil

	case "CreateRepository":
		return s.ecrCreateRepository(account, region, in)

	case "DescribeRepositories":
		return s.ecrDescribeRepositories(account, in)

	case "PutImageScanningConfiguration":
		if in.ImageScanningConfiguration == nil {
			return nil, Errorf("InvalidParameterException", "imageScanningConfiguration is required")
		}
		repo, err := s.ecrUpdate(account, in.RepositoryName, func(r *ecrRepo) error {
			r.scanOnPush = in.ImageScanningConfiguration.ScanOnPush
			return nil
		})
		if err != nil {
			return nil, err
		}
		return map[string]any{"registryId": repo.account, "repositoryName": repo.name, "imageScanningConfiguration": ecrScanning{ScanOnPush: repo.scanOnPush}}, nil

	case "PutImageTagMutability":
		repo, err := s.ecrUpdate(account, in.RepositoryName, func(r *ecrRepo) error {
			if in.ImageTagMutability != "MUTABLE" && in.ImageTagMutability != "IMMUTABLE" {
				return invalidMutability(in.ImageTagMutability)
			}
			r.mutability = in.ImageTagMutability
			return nil
		})
		if err != nil {
			return nil, err
		}
		return map[string]any{"registryId": repo.account, "repositoryName": repo.name, "imageTagMutability": repo.mutability}, nil

	case "PutLifecyclePolicy":
		var policy struct {
			Rules []json.RawMessage `json:"rules"`
		}
		if json.Unmarshal([]byte(in.LifecyclePolicyText), &policy) != nil || len(policy.Rules) == 0 {
			return nil, Errorf("InvalidParameterException", "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation failure: a JSON object with a non-empty \"rules\" array is required'")
		}
		repo, err := s.ecrUpdate(account, in.RepositoryName, func(r *ecrRepo) error {
			r.lifecyclePolicy = in.LifecyclePolicyText
			return nil
		})
		if err != nil {
			return nil, err
		}
		return map[string]any{"registryId": repo.account, "repositoryName": repo.name, "lifecyclePolicyText": repo.lifecyclePolicy}, nil

	case "GetLifecyclePolicy":
		repo, err := s.ecrRepo(account, in.RepositoryName)
		if err != nil {
			return nil, err
		}
		if repo.lifecyclePolicy == "" {
			return nil, Errorf("LifecyclePolicyNotFoundException", "Lifecycle policy does not exist for the repository with name '%s' in the registry with id '%s'", repo.name, repo.account)
		}
		return map[string]any{"registryId": repo.account, "repositoryName": repo.name, "lifecyclePolicyText": repo.lifecyclePolicy}, nil

	case "DescribeImages":
		return s.ecrDescribeImages(account, in)

	case "BatchGetImage":
		return s.ecrBatchGetImage(account, in)

	case "PutImage":
		return s.ecrPutImage(account, in)

	case "DescribeImageScanFindings":
		return s.ecrDescribeImageScanFindings(account, in)
	}
	return nil, UnknownOperation(op)
}

func invalidMutability(v string) *Error {
	return Errorf("InvalidParameterException", "Invalid parameter at 'imageTagMutability' failed to satisfy constraint: 'Member must satisfy enum value set: [MUTABLE, IMMUTABLE]' (got %q)", v)
}

func repoNotFound(account, name string) *Error {
	return Errorf("RepositoryNotFoundException", "The repository with name '%s' does not exist in the registry with id '%s'", name, account)
}

func (s *Sim) ecrCreateRepository(account, region string, in ecrRequest) (any, error) {
	if len(in.RepositoryName) < 2 || len(in.RepositoryName) > 256 || !repoNameRe.MatchString(in.RepositoryName) {
		return nil, Errorf("InvalidParameterException", "Invalid parameter at 'repositoryName' failed to satisfy constraint: 'must satisfy regular expression '%s''", repoNameRe.String())
	}
	repo := &ecrRepo{account: account, region: region, name: in.RepositoryName, created: time.Now(), mutability: "MUTABLE", encryption: ecrEncryption{EncryptionType: "AES256"}}
	if in.ImageTagMutability != "" {
		if in.ImageTagMutability != "MUTABLE" && in.ImageTagMutability != "IMMUTABLE" {
			return nil, invalidMutability(in.ImageTagMutability)
		}
		repo.mutability = in.ImageTagMutability
	}
	if in.ImageScanningConfiguration != nil {
		repo.scanOnPush = in.ImageScanningConfiguration.ScanOnPush
	}
	if e := in.EncryptionConfiguration; e != nil {
		switch e.EncryptionType {
		case "AES256":
			if e.KmsKey != "" {
				return nil, Errorf("InvalidParameterException", "Invalid parameter: kmsKey can only be specified when encryptionType is 'KMS'")
			}
		case "KMS":
			if e.KmsKey == "" {
				e.KmsKey = fmt.Sprintf("arn:aws:kms:%s:%s:alias/aws/ecr", region, account)
			}
		default:
			return nil, Errorf("InvalidParameterException", "Invalid parameter at 'encryptionType' failed to satisfy constraint: 'Member must satisfy enum value set: [AES256, KMS]'")
		}
		repo.encryption = *e
	}
	s.ecr.mu.Lock()
	defer s.ecr.mu.Unlock()
	key := account + "/" + repo.name
	if _, ok := s.ecr.repos[key]; ok {
		return nil, Errorf("RepositoryAlreadyExistsException", "The repository with name '%s' already exists in the registry with id '%s'", repo.name, account)
	}
	s.ecr.repos[key] = repo
	return map[string]any{"repository": s.ecrWire(repo)}, nil
}

func (s *Sim) ecrWire(r *ecrRepo) ecrRepository {
	return ecrRepository{
		RepositoryArn:              fmt.Sprintf("arn:aws:ecr:%s:%s:repository/%s", r.region, r.account, r.name),
		RegistryID:                 r.account,
		RepositoryName:             r.name,
		RepositoryURI:              s.RegistryHost() + "/" + r.name,
		CreatedAt:                  jsonEpoch(r.created),
		ImageTagMutability:         r.mutability,
		ImageScanningConfiguration: ecrScanning{ScanOnPush: r.scanOnPush},
		EncryptionConfiguration:    r.encryption,
	}
}

func (s *Sim) ecrDescribeRepositories(account string, in ecrRequest) (any, error) {
	s.ecr.mu.Lock()
	defer s.ecr.mu.Unlock()
	var out []ecrRepository
	if len(in.RepositoryNames) > 0 {
		for _, name := range in.RepositoryNames {
			r, ok := s.ecr.repos[account+"/"+name]
			if !ok {
				return nil, repoNotFound(account, name)
			}
			out = append(out, s.ecrWire(r))
		}
	} else {
		for _, r := range s.ecr.repos {
			if r.account == account {
				out = append(out, s.ecrWire(r))
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].RepositoryName < out[j].RepositoryName })
	}
	if out == nil {
		out = []ecrRepository{}
	}
	return map[string]any{"repositories": out}, nil
}

// ecrRepo is a copy of a repository's settings.
func (s *Sim) ecrRepo(account, name string) (ecrRepo, error) {
	return s.ecrUpdate(account, name, func(*ecrRepo) error { return nil })
}

func (s *Sim) ecrUpdate(account, name string, f func(*ecrRepo) error) (ecrRepo, error) {
	s.ecr.mu.Lock()
	defer s.ecr.mu.Unlock()
	r, ok := s.ecr.repos[account+"/"+name]
	if !ok {
		return ecrRepo{}, repoNotFound(account, name)
	}
	if err := f(r); err != nil {
		return ecrRepo{}, err
	}
	return *r, nil
}

// scan is an image's scan as ECR reports it, or nil when it has none.
func (s *Sim) ecrScan(repo ecrRepo, img registryImage) (*ecrScanStatus, *ecrFindingsSummary, []ScanFinding) {
	s.ecr.mu.Lock()
	findings, planted := s.ecr.findings[repo.name+"@"+img.Digest]
	status, ended := s.ecr.statuses[repo.name+"@"+img.Digest]
	s.ecr.mu.Unlock()
	switch {
	case ended && status.Status == "":
		return nil, nil, nil
	case ended:
		return &status, &ecrFindingsSummary{FindingSeverityCounts: map[string]int{}}, nil
	}
	if !planted && !repo.scanOnPush {
		return nil, nil, nil
	}
	counts := map[string]int{}
	for _, f := range findings {
		counts[f.Severity]++
	}
	at := img.PushedAt
	if at.IsZero() {
		at = time.Now()
	}
	return &ecrScanStatus{Status: "COMPLETE", Description: "The scan was completed successfully."},
		&ecrFindingsSummary{ImageScanCompletedAt: jsonEpoch(at), VulnerabilitySourceUpdatedAt: jsonEpoch(at), FindingSeverityCounts: counts},
		findings
}

func (s *Sim) ecrDetail(repo ecrRepo, img registryImage) ecrImageDetail {
	d := ecrImageDetail{
		RegistryID:             repo.account,
		RepositoryName:         repo.name,
		ImageDigest:            img.Digest,
		ImageTags:              img.Tags,
		ImageSizeInBytes:       img.Size,
		ImagePushedAt:          jsonEpoch(img.PushedAt),
		ImageManifestMediaType: img.MediaType,
		ArtifactMediaType:      img.ArtifactType,
	}
	d.ImageScanStatus, d.ImageScanFindingsSummary, _ = s.ecrScan(repo, img)
	return d
}

// ecrFind finds the image an imageId names: by digest, by tag, or both
// (which must agree).
func ecrFind(images []registryImage, id ecrImageID) (registryImage, string) {
	if id.ImageDigest == "" && id.ImageTag == "" {
		return registryImage{}, "MissingDigestAndTag"
	}
	for _, img := range images {
		if id.ImageDigest != "" && img.Digest != id.ImageDigest {
			continue
		}
		if id.ImageTag == "" {
			return img, ""
		}
		for _, t := range img.Tags {
			if t == id.ImageTag {
				return img, ""
			}
		}
		if id.ImageDigest != "" {
			return registryImage{}, "ImageTagDoesNotMatchDigest"
		}
	}
	return registryImage{}, "ImageNotFound"
}

func imageNotFound(repo ecrRepo, id ecrImageID) *Error {
	return Errorf("ImageNotFoundException", "The image with imageId {imageDigest:'%s', imageTag:'%s'} does not exist within the repository with name '%s' in the registry with id '%s'",
		id.ImageDigest, id.ImageTag, repo.name, repo.account)
}

func (s *Sim) ecrDescribeImages(account string, in ecrRequest) (any, error) {
	repo, err := s.ecrRepo(account, in.RepositoryName)
	if err != nil {
		return nil, err
	}
	images := s.registry.images(repo.name)
	out := []ecrImageDetail{}
	if len(in.ImageIDs) > 0 {
		for _, id := range in.ImageIDs {
			img, failure := ecrFind(images, id)
			if failure != "" {
				return nil, imageNotFound(repo, id)
			}
			out = append(out, s.ecrDetail(repo, img))
		}
		return map[string]any{"imageDetails": out}, nil
	}
	status := "ANY"
	if in.Filter != nil && in.Filter.TagStatus != "" {
		status = in.Filter.TagStatus
	}
	for _, img := range images {
		tagged := len(img.Tags) > 0
		if (status == "TAGGED" && !tagged) || (status == "UNTAGGED" && tagged) {
			continue
		}
		out = append(out, s.ecrDetail(repo, img))
	}
	return map[string]any{"imageDetails": out}, nil
}

func (s *Sim) ecrBatchGetImage(account string, in ecrRequest) (any, error) {
	repo, err := s.ecrRepo(account, in.RepositoryName)
	if err != nil {
		return nil, err
	}
	images := s.registry.images(repo.name)
	found, failures := []ecrImage{}, []ecrImageFailure{}
	for _, id := range in.ImageIDs {
		img, failure := ecrFind(images, id)
		if failure != "" {
			reason := map[string]string{
				"MissingDigestAndTag":        "Invalid request parameters: both tag and digest cannot be null",
				"ImageTagDoesNotMatchDigest": "Invalid image digest or tag",
				"ImageNotFound":              "Requested image not found",
			}[failure]
			failures = append(failures, ecrImageFailure{ImageID: id, FailureCode: failure, FailureReason: reason})
			continue
		}
		found = append(found, ecrImage{
			RegistryID: repo.account, RepositoryName: repo.name,
			ImageID:       ecrImageID{ImageDigest: img.Digest, ImageTag: id.ImageTag},
			ImageManifest: string(img.Body), ImageManifestMediaType: img.MediaType,
		})
	}
	return map[string]any{"images": found, "failures": failures}, nil
}

func (s *Sim) ecrPutImage(account string, in ecrRequest) (any, error) {
	repo, err := s.ecrRepo(account, in.RepositoryName)
	if err != nil {
		return nil, err
	}
	body := []byte(in.ImageManifest)
	var probe struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Manifests     []any  `json:"manifests"`
	}
	if json.Unmarshal(body, &probe) != nil || probe.SchemaVersion != 2 {
		return nil, Errorf("InvalidParameterException", "Invalid parameter at 'ImageManifest' failed to satisfy constraint: 'Invalid JSON syntax'")
	}
	mediaType := in.ImageManifestMediaType
	switch {
	case mediaType != "":
	case probe.MediaType != "":
		mediaType = probe.MediaType
	case probe.Manifests != nil:
		mediaType = "application/vnd.oci.image.index.v1+json"
	default:
		mediaType = "application/vnd.oci.image.manifest.v1+json"
	}
	digest := manifestDigest(body)
	if in.ImageDigest != "" && in.ImageDigest != digest {
		return nil, Errorf("ImageDigestDoesNotMatchException", "Invalid parameter at 'imageDigest' failed to satisfy constraint: 'The digest %s does not match the digest of the manifest %s'", in.ImageDigest, digest)
	}

	// A tag check and its write are one step, as for pushes.
	g := s.registry
	g.write.Lock()
	defer g.write.Unlock()
	images := g.images(repo.name)
	for _, img := range images {
		if img.Digest != digest {
			continue
		}
		if in.ImageTag == "" {
			return nil, Errorf("ImageAlreadyExistsException", "Image with digest '%s' already exists in the repository with name '%s' in registry with id '%s'", digest, repo.name, repo.account)
		}
		for _, t := range img.Tags {
			if t == in.ImageTag {
				return nil, Errorf("ImageAlreadyExistsException", "Image with digest '%s' and tag '%s' already exists in the repository with name '%s' in registry with id '%s'", digest, t, repo.name, repo.account)
			}
		}
	}
	if in.ImageTag != "" && repo.mutability == "IMMUTABLE" {
		if img, failure := ecrFind(images, ecrImageID{ImageTag: in.ImageTag}); failure == "" && img.Digest != digest {
			return nil, Errorf("ImageTagAlreadyExistsException", "The image tag '%s' already exists in the '%s' repository and cannot be overwritten because the tag is immutable.", in.ImageTag, repo.name)
		}
	}
	stored, code, message := g.putManifest(repo.name, in.ImageTag, mediaType, body)
	switch code {
	case "":
	case "MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN":
		return nil, Errorf("LayersNotFoundException", "Layers with digests referenced by the manifest were not found in the repository: %s", message)
	case "MANIFEST_UNKNOWN":
		return nil, Errorf("ReferencedImagesNotFoundException", "Images referenced by the index were not found in the repository: %s", message)
	default:
		return nil, Errorf("InvalidParameterException", "Invalid parameter at 'ImageManifest' failed to satisfy constraint: '%s: %s'", code, message)
	}
	return map[string]any{"image": ecrImage{
		RegistryID: repo.account, RepositoryName: repo.name,
		ImageID:       ecrImageID{ImageDigest: stored, ImageTag: in.ImageTag},
		ImageManifest: in.ImageManifest, ImageManifestMediaType: mediaType,
	}}, nil
}

func (s *Sim) ecrDescribeImageScanFindings(account string, in ecrRequest) (any, error) {
	repo, err := s.ecrRepo(account, in.RepositoryName)
	if err != nil {
		return nil, err
	}
	if in.ImageID == nil {
		return nil, Errorf("InvalidParameterException", "imageId is required")
	}
	img, failure := ecrFind(s.registry.images(repo.name), *in.ImageID)
	if failure != "" {
		return nil, imageNotFound(repo, *in.ImageID)
	}
	status, summary, findings := s.ecrScan(repo, img)
	if status == nil {
		return nil, Errorf("ScanNotFoundException", "Image scan does not exist for the image with '{imageDigest:'%s', imageTag:'%s'}' in the repository with name '%s' in the registry with id '%s'",
			img.Digest, in.ImageID.ImageTag, repo.name, repo.account)
	}
	type attribute struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	}
	type finding struct {
		Name        string      `json:"name"`
		Description string      `json:"description,omitempty"`
		URI         string      `json:"uri,omitempty"`
		Severity    string      `json:"severity"`
		Attributes  []attribute `json:"attributes"`
	}
	wire := []finding{}
	for _, f := range findings {
		w := finding{Name: f.Name, Description: f.Description, URI: f.URI, Severity: f.Severity, Attributes: []attribute{}}
		keys := make([]string, 0, len(f.Attributes))
		for k := range f.Attributes {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			w.Attributes = append(w.Attributes, attribute{Key: k, Value: f.Attributes[k]})
		}
		wire = append(wire, w)
	}
	return map[string]any{
		"registryId":      repo.account,
		"repositoryName":  repo.name,
		"imageId":         ecrImageID{ImageDigest: img.Digest, ImageTag: in.ImageID.ImageTag},
		"imageScanStatus": status,
		"imageScanFindings": map[string]any{
			"imageScanCompletedAt":         summary.ImageScanCompletedAt,
			"vulnerabilitySourceUpdatedAt": summary.VulnerabilitySourceUpdatedAt,
			"findingSeverityCounts":        summary.FindingSeverityCounts,
			"findings":                     wire,
		},
	}, nil
}
