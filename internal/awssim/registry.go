package awssim

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory" // the registry's storage
)

// ociRegistry is the OCI registry behind ECR: distribution's own handlers over
// its in-memory driver, on 127.0.0.1 so that the Docker Engine pushes to it
// over plain HTTP (127.0.0.0/8 is an insecure registry by default).
//
// Like ECR it wants credentials for everything: basic auth with user "AWS"
// and a password that GetAuthorizationToken issued (or RegistryAuth's). A
// manifest pushed under an existing tag of an IMMUTABLE repository is
// refused with TAG_INVALID, as ECR refuses it.
type ociRegistry struct {
	once sync.Once
	host string
	app  http.Handler // distribution, unguarded

	mu     sync.Mutex
	tokens map[string]string               // password → account
	pushed map[string]map[string]time.Time // repository → manifest digest → first push

	write sync.Mutex // one manifest write at a time: a tag check and its write are one step

	immutable func(repo string) bool // asks ECR
}

// RegistryHost is the simulator's registry as host:port, for image
// references (RegistryHost()/repo:tag) and ECR's proxy endpoint. The
// registry starts on first use and stops when the simulator closes.
func (s *Sim) RegistryHost() string {
	g := s.registry
	g.once.Do(func() {
		if err := g.start(s); err != nil {
			panic(fmt.Sprintf("awssim: start the registry: %v", err))
		}
	})
	return g.host
}

// RegistryAuth is what the Docker Engine API takes as RegistryAuth
// (X-Registry-Auth) to push to or pull from the simulator's registry, for
// callers that don't go through ECR's GetAuthorizationToken (ECS's tasks).
func (s *Sim) RegistryAuth() string {
	host := s.RegistryHost()
	return registryAuthConfig(host, s.registry.issue(""))
}

func registryAuthConfig(host, password string) string {
	b, _ := json.Marshal(map[string]string{"username": "AWS", "password": password, "serveraddress": host})
	return base64.URLEncoding.EncodeToString(b)
}

func newRegistry() *ociRegistry {
	return &ociRegistry{tokens: map[string]string{}, pushed: map[string]map[string]time.Time{}}
}

func (g *ociRegistry) start(s *Sim) error {
	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	cfg := &configuration.Configuration{
		Storage: configuration.Storage{
			"inmemory":    configuration.Parameters{},
			"delete":      configuration.Parameters{"enabled": true},
			"maintenance": configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}},
		},
	}
	cfg.HTTP.Secret = hex.EncodeToString(secret)
	ctx, cancel := context.WithCancel(context.Background())
	app := handlers.NewApp(ctx, cfg)
	g.app = app

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		return err
	}
	g.host = ln.Addr().String()
	srv := &http.Server{Handler: g, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	s.OnClose(func() {
		_ = srv.Close()
		_ = app.Shutdown()
		cancel()
	})
	return nil
}

// issue makes a registry password for an account.
func (g *ociRegistry) issue(account string) string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	secret := base64.RawURLEncoding.EncodeToString(b)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.tokens[secret] = account
	return secret
}

func (g *ociRegistry) authorized(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	if !ok || user != "AWS" {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok = g.tokens[pass]
	return ok
}

func (g *ociRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !g.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="awssim"`)
		writeRegistryError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
		return
	}
	if name, ref, ok := manifestPath(r.URL.Path); ok && r.Method == http.MethodPut && !strings.Contains(ref, ":") {
		g.write.Lock()
		defer g.write.Unlock()
		body, err := io.ReadAll(r.Body)
		if err != nil {
			writeRegistryError(w, http.StatusBadRequest, "MANIFEST_INVALID", err.Error())
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if g.immutable != nil && g.immutable(name) {
			if cur, ok := g.tagDigest(name, ref); ok && cur != manifestDigest(body) {
				writeRegistryError(w, http.StatusBadRequest, "TAG_INVALID", fmt.Sprintf(
					"The image tag '%s' already exists in the '%s' repository and cannot be overwritten because the repository is immutable.", ref, name))
				return
			}
		}
	}
	g.serve(w, r)
}

// serve hands r to distribution and remembers when manifests arrived.
func (g *ociRegistry) serve(w http.ResponseWriter, r *http.Request) {
	name, _, isManifest := manifestPath(r.URL.Path)
	if !isManifest || r.Method != http.MethodPut {
		g.app.ServeHTTP(w, r)
		return
	}
	rec := &statusWriter{ResponseWriter: w}
	g.app.ServeHTTP(rec, r)
	if rec.status == http.StatusCreated {
		g.recordPush(name, w.Header().Get("Docker-Content-Digest"))
	}
}

func (g *ociRegistry) recordPush(repo, digest string) {
	if digest == "" {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.pushed[repo] == nil {
		g.pushed[repo] = map[string]time.Time{}
	}
	if _, ok := g.pushed[repo][digest]; !ok {
		g.pushed[repo][digest] = time.Now()
	}
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// manifestPath splits /v2/<name>/manifests/<reference>.
func manifestPath(p string) (name, ref string, ok bool) {
	rest, found := strings.CutPrefix(p, "/v2/")
	if !found {
		return "", "", false
	}
	i := strings.LastIndex(rest, "/manifests/")
	if i <= 0 {
		return "", "", false
	}
	return rest[:i], rest[i+len("/manifests/"):], true
}

func writeRegistryError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]any{{"code": code, "message": message, "detail": nil}}})
}

func manifestDigest(body []byte) string {
	sum := sha256.Sum256(body)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// manifestTypes is every manifest kind the registry stores, so that it hands
// each back as it was pushed.
var manifestTypes = []string{
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
}

// do sends one request to distribution in process, past the credential
// check and the tag guard (ECR makes its own checks).
func (g *ociRegistry) do(method, path, contentType string, body []byte) *http.Response {
	r := httptest.NewRequest(method, "http://"+g.host+path, bytes.NewReader(body))
	r.Header.Set("Accept", strings.Join(manifestTypes, ", "))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	g.serve(w, r)
	return w.Result()
}

// registryManifest is one stored manifest.
type registryManifest struct {
	Digest    string
	MediaType string
	Body      []byte
}

// manifest fetches a manifest by tag or digest.
func (g *ociRegistry) manifest(repo, ref string) (registryManifest, bool) {
	resp := g.do(http.MethodGet, "/v2/"+repo+"/manifests/"+ref, "", nil)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return registryManifest{}, false
	}
	body, _ := io.ReadAll(resp.Body)
	return registryManifest{Digest: resp.Header.Get("Docker-Content-Digest"), MediaType: resp.Header.Get("Content-Type"), Body: body}, true
}

func (g *ociRegistry) tagDigest(repo, tag string) (string, bool) {
	m, ok := g.manifest(repo, tag)
	return m.Digest, ok
}

// putManifest stores a manifest under a tag (or, with tag "", by digest
// only) and answers the registry's error code when it refuses.
func (g *ociRegistry) putManifest(repo, tag, mediaType string, body []byte) (digest string, code, message string) {
	ref := tag
	if ref == "" {
		ref = manifestDigest(body)
	}
	resp := g.do(http.MethodPut, "/v2/"+repo+"/manifests/"+ref, mediaType, body)
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusCreated {
		return resp.Header.Get("Docker-Content-Digest"), "", ""
	}
	var e struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Detail  any    `json:"detail"`
		} `json:"errors"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&e)
	if len(e.Errors) == 0 {
		return "", "UNKNOWN", resp.Status
	}
	return "", e.Errors[0].Code, fmt.Sprintf("%s %v", e.Errors[0].Message, e.Errors[0].Detail)
}

// tags lists a repository's tags; a repository never pushed to has none.
func (g *ociRegistry) tags(repo string) []string {
	resp := g.do(http.MethodGet, "/v2/"+repo+"/tags/list", "", nil)
	defer resp.Body.Close()
	var out struct {
		Tags []string `json:"tags"`
	}
	if resp.StatusCode == http.StatusOK {
		_ = json.NewDecoder(resp.Body).Decode(&out)
	}
	sort.Strings(out.Tags)
	return out.Tags
}

// registryImage is one image of a repository: a manifest and its tags.
type registryImage struct {
	registryManifest
	Tags         []string
	PushedAt     time.Time
	Size         int64
	ArtifactType string
}

// images lists a repository's images, tagged or not, oldest push first.
func (g *ociRegistry) images(repo string) []registryImage {
	byDigest := map[string]*registryImage{}
	add := func(ref, tag string) {
		m, ok := g.manifest(repo, ref)
		if !ok {
			return
		}
		img := byDigest[m.Digest]
		if img == nil {
			img = &registryImage{registryManifest: m}
			img.Size, img.ArtifactType = manifestSize(m.Body)
			byDigest[m.Digest] = img
		}
		if tag != "" {
			img.Tags = append(img.Tags, tag)
		}
	}
	for _, t := range g.tags(repo) {
		add(t, t)
	}
	g.mu.Lock()
	pushed := map[string]time.Time{}
	for d, t := range g.pushed[repo] {
		pushed[d] = t
	}
	g.mu.Unlock()
	for d := range pushed {
		if byDigest[d] == nil {
			add(d, "")
		}
	}
	out := make([]registryImage, 0, len(byDigest))
	for d, img := range byDigest {
		img.PushedAt = pushed[d]
		out = append(out, *img)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].PushedAt.Equal(out[j].PushedAt) {
			return out[i].PushedAt.Before(out[j].PushedAt)
		}
		return out[i].Digest < out[j].Digest
	})
	return out
}

// manifestSize is what ECR reports as an image's size: its layers (or, for
// an index, its manifests) added up; and the config's media type.
func manifestSize(body []byte) (int64, string) {
	var m struct {
		Config    struct{ MediaType string } `json:"config"`
		Layers    []struct{ Size int64 }     `json:"layers"`
		Manifests []struct{ Size int64 }     `json:"manifests"`
	}
	if json.Unmarshal(body, &m) != nil {
		return 0, ""
	}
	var n int64
	for _, l := range m.Layers {
		n += l.Size
	}
	for _, l := range m.Manifests {
		n += l.Size
	}
	return n, m.Config.MediaType
}
