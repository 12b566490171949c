package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/errdefs"
	"github.com/docker/docker/pkg/jsonmessage"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"golang.org/x/sync/errgroup"

	"github.com/vmctl/vmctl/internal/progress"
	"github.com/vmctl/vmctl/internal/stack"
)

// BuildOptions selects what to build.
type BuildOptions struct {
	Services []string // all buildable services when empty
	Force    bool     // rebuild even when the image exists
	Progress progress.Writer
	// Labels are added to every image built (the OCI revision label).
	Labels map[string]string
}

// ImageName is the image a service runs: its image key, or compose's default
// name for a built image.
func ImageName(project string, svc types.ServiceConfig) string {
	if svc.Image != "" {
		return svc.Image
	}
	return project + "-" + svc.Name
}

// Build builds the selected services that have a build section, in
// parallel, and returns their image IDs.
func (e *Engine) Build(ctx context.Context, st *stack.Stack, opts BuildOptions) (map[string]string, error) {
	pw := opts.Progress
	if pw == nil {
		pw = progress.Discard{}
	}
	names := opts.Services
	if len(names) == 0 {
		names = st.Names()
	}
	for _, n := range names {
		if _, err := st.Service(n); err != nil {
			return nil, err
		}
	}
	// Services that share an image (the demo's do) build it once.
	refs := map[string]string{} // image ref -> service that builds it
	var order []string
	for _, n := range names {
		svc := st.Project.Services[n]
		if svc.Build == nil {
			continue
		}
		ref := ImageName(st.Name(), svc)
		if _, ok := refs[ref]; !ok {
			refs[ref] = n
			order = append(order, ref)
		}
	}
	results := make([]string, len(order))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i, ref := range order {
		svc := st.Project.Services[refs[ref]]
		g.Go(func() error {
			id, err := e.buildOne(gctx, st.Name(), svc, opts.Force, opts.Labels, pw)
			results[i] = id
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	byRef := map[string]string{}
	for i, ref := range order {
		byRef[ref] = results[i]
	}
	ids := make(map[string]string, len(names))
	for _, n := range names {
		svc := st.Project.Services[n]
		if svc.Build != nil {
			ids[n] = byRef[ImageName(st.Name(), svc)]
		}
	}
	return ids, nil
}

func (e *Engine) buildOne(ctx context.Context, project string, svc types.ServiceConfig, force bool, extra map[string]string, pw progress.Writer) (string, error) {
	ref := ImageName(project, svc)
	if !force {
		if img, err := e.api.ImageInspect(ctx, ref); err == nil {
			return img.ID, nil
		} else if !errdefs.IsNotFound(err) {
			return "", fmt.Errorf("inspect image %s: %w", ref, err)
		}
	}
	res := "image " + ref
	pw.Event(progress.Event{Resource: res, Status: progress.Working, Text: "Building"})
	if err := e.buildAdditionalContexts(ctx, svc); err != nil {
		pw.Event(progress.Event{Resource: res, Status: progress.Error, Text: "Build failed", Detail: err.Error()})
		return "", fmt.Errorf("build %s: %w", svc.Name, err)
	}
	tarball, dockerfile, err := buildContext(svc.Build)
	if err != nil {
		pw.Event(progress.Event{Resource: res, Status: progress.Error, Text: "Build failed", Detail: err.Error()})
		return "", fmt.Errorf("build %s: %w", svc.Name, err)
	}
	labels := map[string]string{}
	for k, v := range extra {
		labels[k] = v
	}
	for k, v := range svc.Build.Labels {
		labels[k] = v
	}
	resp, err := e.api.ImageBuild(ctx, tarball, build.ImageBuildOptions{
		Tags:        append([]string{ref}, svc.Build.Tags...),
		Dockerfile:  dockerfile,
		BuildArgs:   svc.Build.Args,
		Labels:      labels,
		Target:      svc.Build.Target,
		NoCache:     svc.Build.NoCache,
		Remove:      true,
		ForceRemove: true,
		Version:     build.BuilderV1,
	})
	if err != nil {
		pw.Event(progress.Event{Resource: res, Status: progress.Error, Text: "Build failed", Detail: err.Error()})
		return "", fmt.Errorf("build %s: %w", svc.Name, err)
	}
	defer resp.Body.Close()
	if err := decodeStream(resp.Body, func(line string) {
		pw.Event(progress.Event{Resource: res, Status: progress.Working, Text: "Building", Detail: line})
	}); err != nil {
		pw.Event(progress.Event{Resource: res, Status: progress.Error, Text: "Build failed", Detail: err.Error()})
		return "", fmt.Errorf("build %s: %w", svc.Name, err)
	}
	img, err := e.api.ImageInspect(ctx, ref)
	if err != nil {
		return "", fmt.Errorf("build %s: the built image is missing: %w", svc.Name, err)
	}
	pw.Event(progress.Event{Resource: res, Status: progress.Done, Text: "Built"})
	return img.ID, nil
}

// buildAdditionalContexts gives the classic builder what BuildKit's named
// contexts give: each local directory in additional_contexts becomes a
// FROM-scratch image tagged with the context's name, which
// `COPY --from=<name>` then finds locally instead of pulling.
func (e *Engine) buildAdditionalContexts(ctx context.Context, svc types.ServiceConfig) error {
	for name, src := range svc.Build.AdditionalContexts {
		if strings.Contains(src, "://") || strings.HasPrefix(src, "docker-image:") || strings.HasPrefix(src, "service:") {
			return fmt.Errorf("additional context %s=%s: only local directories are supported", name, src)
		}
		tarball, dockerfile, err := buildContext(&types.BuildConfig{Context: src, DockerfileInline: "FROM scratch\nCOPY . /\n"})
		if err != nil {
			return fmt.Errorf("additional context %s: %w", name, err)
		}
		resp, err := e.api.ImageBuild(ctx, tarball, build.ImageBuildOptions{
			Tags: []string{name}, Dockerfile: dockerfile, Remove: true, ForceRemove: true, Version: build.BuilderV1,
			Labels: map[string]string{LabelManaged: "true"},
		})
		if err != nil {
			return fmt.Errorf("additional context %s: %w", name, err)
		}
		err = decodeStream(resp.Body, nil)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("additional context %s: %w", name, err)
		}
	}
	return nil
}

// decodeStream reads the engine's JSON message stream, reporting step lines
// and turning an error message into an error.
func decodeStream(r io.Reader, step func(string)) error {
	dec := json.NewDecoder(r)
	for {
		var m jsonmessage.JSONMessage
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if m.Error != nil {
			return errors.New(strings.TrimSpace(m.Error.Message))
		}
		if s := strings.TrimSpace(m.Stream); s != "" && step != nil {
			step(s)
		}
		if m.Status != "" && step != nil {
			step(strings.TrimSpace(m.Status + " " + m.Progress.String()))
		}
	}
}

// pull fetches an image that is not present locally.
func (e *Engine) ensureImage(ctx context.Context, ref string, pw progress.Writer) (string, error) {
	img, err := e.api.ImageInspect(ctx, ref)
	if err == nil {
		return img.ID, nil
	}
	if !errdefs.IsNotFound(err) {
		return "", fmt.Errorf("inspect image %s: %w", ref, err)
	}
	res := "image " + ref
	pw.Event(progress.Event{Resource: res, Status: progress.Working, Text: "Pulling"})
	rc, err := e.api.ImagePull(ctx, ref, image.PullOptions{})
	if err == nil {
		err = decodeStream(rc, nil)
		rc.Close()
	}
	if err != nil {
		pw.Event(progress.Event{Resource: res, Status: progress.Error, Text: "Pull failed", Detail: err.Error()})
		return "", fmt.Errorf("pull %s: %w", ref, err)
	}
	pw.Event(progress.Event{Resource: res, Status: progress.Done, Text: "Pulled"})
	img, err = e.api.ImageInspect(ctx, ref)
	if err != nil {
		return "", fmt.Errorf("pull %s: %w", ref, err)
	}
	return img.ID, nil
}

// buildContext tars the build context, honouring .dockerignore, and adds a
// Dockerfile that lives outside the context (images/<service>/Dockerfile
// builds the app's source, which lives elsewhere).
func buildContext(b *types.BuildConfig) (io.Reader, string, error) {
	root := b.Context
	if strings.Contains(root, "://") || strings.HasPrefix(root, "git@") {
		return nil, "", fmt.Errorf("remote build context %s is not supported: clone it and point build.context at the directory", root)
	}
	info, err := os.Stat(root)
	if err != nil || !info.IsDir() {
		return nil, "", fmt.Errorf("build context %s is not a directory: set the app source in environments/local.yaml (app_source) or VMCTL_APP_SOURCE", root)
	}
	dockerfile := b.Dockerfile
	if dockerfile == "" {
		dockerfile = "Dockerfile"
	}
	dfPath := dockerfile
	if !filepath.IsAbs(dfPath) {
		dfPath = filepath.Join(root, dockerfile)
	}
	df, err := os.ReadFile(dfPath)
	if err != nil && b.DockerfileInline == "" {
		return nil, "", fmt.Errorf("read Dockerfile: %w", err)
	}
	if b.DockerfileInline != "" {
		df = []byte(b.DockerfileInline)
	}
	// A <Dockerfile>.dockerignore beside the Dockerfile wins over the
	// context's .dockerignore, as with BuildKit.
	ignore := filepath.Join(root, ".dockerignore")
	if b.DockerfileInline == "" {
		if _, err := os.Stat(dfPath + ".dockerignore"); err == nil {
			ignore = dfPath + ".dockerignore"
		}
	}
	var excludes []string
	if f, err := os.Open(ignore); err == nil {
		excludes, err = ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return nil, "", fmt.Errorf("read .dockerignore: %w", err)
		}
	}
	pm, err := patternmatcher.New(excludes)
	if err != nil {
		return nil, "", fmt.Errorf("read .dockerignore: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		skip, err := pm.MatchesOrParentMatches(rel)
		if err != nil {
			return err
		}
		if skip {
			if d.IsDir() && !pm.Exclusions() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		hdr.Name = rel
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("read build context %s: %w", root, err)
	}
	// The Dockerfile travels inside the context under a name nothing else uses.
	name := ".vmctl.Dockerfile"
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(df)), Typeflag: tar.TypeReg}); err != nil {
		return nil, "", err
	}
	if _, err := tw.Write(df); err != nil {
		return nil, "", err
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	return &buf, name, nil
}

// ImageID returns the local image's ID (its config digest), or "" when the
// engine does not have it.
func (e *Engine) ImageID(ctx context.Context, ref string) (string, error) {
	img, err := e.api.ImageInspect(ctx, ref)
	if errdefs.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("inspect image %s: %w", ref, err)
	}
	return img.ID, nil
}
