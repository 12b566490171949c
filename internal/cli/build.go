package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmctl/vmctl/internal/engine"
	"github.com/vmctl/vmctl/internal/release"
	"github.com/vmctl/vmctl/internal/stack"
)

type buildOptions struct {
	services []string
	output   string
	revision string
	noRecord bool
}

func newBuildCmd(f *Factory, g *globalOptions) *cobra.Command {
	o := &buildOptions{}
	cmd := &cobra.Command{
		Use:   "build [SERVICE...]",
		Short: "Build the stack's images and record them as a release",
		Long: `Builds the images and records a release: the image of every service, by digest, with
the source revision, when and by whom (.vmctl/releases/<id>.json, listed by vmctl releases).
A release is immutable; push, deploy and promote move exactly those images.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.services = args
			return runBuild(cmd.Context(), f, g, o)
		},
	}
	cmd.Flags().StringVarP(&o.output, "output", "o", "table", "table or json")
	cmd.Flags().StringVar(&o.revision, "revision", "", "source revision to record (default: git HEAD of the build context, or VMCTL_REVISION)")
	cmd.Flags().BoolVar(&o.noRecord, "no-release", false, "build without recording a release")
	return cmd
}

type builtImage struct {
	Service string `json:"service"`
	Image   string `json:"image"`
	ID      string `json:"id"`
}

type buildResult struct {
	Release *release.Release `json:"release,omitempty"`
	Images  []builtImage     `json:"images"`
}

func runBuild(ctx context.Context, f *Factory, g *globalOptions, o *buildOptions) error {
	format, err := parseOutput(o.output)
	if err != nil {
		return err
	}
	pw, err := g.progressWriter(f)
	if err != nil {
		return err
	}
	st, err := f.loadStack(ctx, g)
	if err != nil {
		return err
	}
	for _, n := range o.services {
		if _, err := st.Service(n); err != nil {
			return err
		}
	}
	eng, err := f.Engine(ctx)
	if err != nil {
		return err
	}
	rev := o.revision
	if rev == "" {
		rev = sourceRevision(f, st)
	}
	labels := map[string]string{"org.opencontainers.image.revision": rev}
	ids, err := eng.Build(ctx, st, engine.BuildOptions{Services: o.services, Force: true, Progress: pw, Labels: labels})
	pw.Close()
	if err != nil {
		return err
	}
	var res buildResult
	for _, n := range st.Names() {
		if id, ok := ids[n]; ok {
			res.Images = append(res.Images, builtImage{Service: n, Image: engine.ImageName(st.Name(), st.Project.Services[n]), ID: id})
		}
	}
	if !o.noRecord {
		r, err := recordRelease(ctx, f, g, st, eng, rev)
		if err != nil {
			return err
		}
		res.Release = r
	}
	if format == outputJSON {
		return writeJSON(f.IO.Out, res)
	}
	t := newTable(f.IO.Out, f.IO.OutIsTerminal, "SERVICE", "IMAGE", "ID")
	for _, r := range res.Images {
		t.add(r.Service, r.Image, r.ID)
	}
	if err := t.flush(); err != nil {
		return err
	}
	if res.Release != nil {
		fmt.Fprintf(f.IO.ErrOut, "release %s recorded (%d images, revision %s)\n", res.Release.ID, len(res.Release.Images), res.Release.Revision)
	}
	return nil
}

// releaseStore is the project's release directory.
func releaseStore(g *globalOptions) release.Store {
	return release.Store{Dir: g.releaseDir}
}

// recordRelease writes a release of every service image the engine has:
// built ones and the pulled upstream ones (voicevox) alike.
func recordRelease(ctx context.Context, f *Factory, g *globalOptions, st *stack.Stack, eng *engine.Engine, rev string) (*release.Release, error) {
	now := time.Now().UTC()
	short := rev
	if len(short) > 12 {
		short = short[:12]
	}
	r := release.Release{
		ID:       now.Format("20060102T150405Z") + "-" + sanitizeTag(short),
		Revision: rev,
		Created:  now,
		By:       whoAmI(),
		Images:   map[string]release.Image{},
	}
	var missing []string
	for _, n := range st.Names() {
		ref := engine.ImageName(st.Name(), st.Project.Services[n])
		id, err := eng.ImageID(ctx, ref)
		if err != nil {
			return nil, err
		}
		if id == "" {
			missing = append(missing, n)
			continue
		}
		r.Images[n] = release.Image{LocalRef: ref, ImageID: id}
	}
	if len(missing) > 0 {
		fmt.Fprintf(f.IO.ErrOut, "release %s leaves out %s: no local image (build or pull them first)\n", r.ID, strings.Join(missing, ", "))
	}
	if err := releaseStore(g).Save(r); err != nil {
		return nil, err
	}
	return &r, nil
}

// sourceRevision is VMCTL_REVISION, or git HEAD of the first build context.
func sourceRevision(f *Factory, st *stack.Stack) string {
	if v, ok := f.LookupEnv("VMCTL_REVISION"); ok && v != "" {
		return v
	}
	for _, n := range st.Names() {
		if b := st.Project.Services[n].Build; b != nil {
			out, err := exec.Command("git", "-C", b.Context, "rev-parse", "HEAD").Output()
			if err == nil {
				return strings.TrimSpace(string(out))
			}
		}
	}
	return "unknown"
}

func sanitizeTag(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			return r
		}
		return '-'
	}, s)
}

func whoAmI() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	if h, err := os.Hostname(); err == nil {
		name += "@" + h
	}
	return name
}
