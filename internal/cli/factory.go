package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/docker/docker/client"
	"golang.org/x/term"

	vmaws "github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/engine"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/gpu"
	"github.com/vmctl/vmctl/internal/stack"
)

// IOStreams are the command's standard streams and what they are attached to.
type IOStreams struct {
	In            io.Reader
	Out           io.Writer
	ErrOut        io.Writer
	OutIsTerminal bool
	ErrIsTerminal bool
	// ErrWidth reads the error stream's terminal width (0 when unknown); it is
	// read at every redraw, so a resized terminal is followed.
	ErrWidth func() int
}

// SystemIO returns the process's streams.
func SystemIO() *IOStreams {
	return &IOStreams{
		In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr,
		OutIsTerminal: term.IsTerminal(int(os.Stdout.Fd())),
		ErrIsTerminal: term.IsTerminal(int(os.Stderr.Fd())),
		ErrWidth: func() int {
			w, _, err := term.GetSize(int(os.Stderr.Fd()))
			if err != nil {
				return 0
			}
			return w
		},
	}
}

// Factory builds clients lazily: `vmctl --help` or `vmctl config` never
// touch the Docker Engine.
type Factory struct {
	IO        *IOStreams
	LookupEnv func(string) (string, bool)
	Environ   func() []string
	// DockerClient is replaceable so tests can point at a particular engine.
	DockerClient func(ctx context.Context) (*client.Client, error)
	// GPU reads the host's NVIDIA GPUs (NVML); tests give it a mock server.
	GPU func() gpu.Inventory
	// AWSConfig resolves credentials for an AWS environment (its region, and
	// its profile when it names one); tests point it at awssim.
	AWSConfig func(ctx context.Context, env *environment.Environment) (sdkaws.Config, error)

	once   sync.Once
	docker *client.Client
	err    error
}

// NewFactory returns a Factory over the real environment.
func NewFactory(io *IOStreams) *Factory {
	return &Factory{
		IO: io, LookupEnv: os.LookupEnv, Environ: os.Environ, DockerClient: connectDocker, GPU: gpu.ReadHost,
		AWSConfig: defaultAWSConfig,
	}
}

// defaultAWSConfig resolves credentials the standard way, through the
// environment's profile when it names one, so one command can reach
// staging and prod in their own accounts.
func defaultAWSConfig(ctx context.Context, env *environment.Environment) (sdkaws.Config, error) {
	var opts []func(*config.LoadOptions) error
	if env.AWS.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(env.AWS.Profile))
	}
	return vmaws.LoadConfig(ctx, env.AWS.Region, opts...)
}

// Docker returns a connected Docker client, created on first use.
func (f *Factory) Docker(ctx context.Context) (*client.Client, error) {
	f.once.Do(func() { f.docker, f.err = f.DockerClient(ctx) })
	return f.docker, f.err
}

// Engine returns the local runtime over the Docker client.
func (f *Factory) Engine(ctx context.Context) (*engine.Engine, error) {
	c, err := f.Docker(ctx)
	if err != nil {
		return nil, err
	}
	return engine.New(c), nil
}

// connectDocker connects with API version negotiation (engine 20.10 / API
// 1.41 and newer) and fails early, with the fix, when no engine answers.
func connectDocker(ctx context.Context) (*client.Client, error) {
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("configure the Docker client: %w: check DOCKER_HOST", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.Ping(pctx); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("cannot reach the Docker Engine at %s: %s: start it (sudo systemctl start docker, or run dockerd) or point DOCKER_HOST at a running engine", c.DaemonHost(), firstLine(err.Error()))
	}
	c.NegotiateAPIVersion(ctx)
	return c, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// loadStack reads the compose files selected by the global flags. The app
// source for build contexts comes from VMCTL_APP_SOURCE or, failing that,
// from the local environment file.
func (f *Factory) loadStack(ctx context.Context, g *globalOptions) (*stack.Stack, error) {
	return f.loadStackTo(ctx, g, f.IO.ErrOut)
}

// loadStackTo is loadStack with the loader's warnings written to warn
// (completion discards them: the shell would print them mid-line).
func (f *Factory) loadStackTo(ctx context.Context, g *globalOptions, warn io.Writer) (*stack.Stack, error) {
	env := map[string]string{}
	for _, kv := range f.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	if _, ok := env["VMCTL_APP_SOURCE"]; !ok {
		src, err := localAppSource(g.envDir, f.LookupEnv)
		if err != nil {
			return nil, err
		}
		if src != "" {
			env["VMCTL_APP_SOURCE"] = src
		}
	}
	if _, ok := env["VMCTL_IMAGES"]; !ok {
		env["VMCTL_IMAGES"] = imagesDir(g)
	}
	st, err := stack.Load(ctx, stack.LoadOptions{
		Files:       g.files,
		ProjectName: g.projectName,
		Profiles:    g.profiles,
		WorkDir:     g.projectDir,
		Env:         env,
	})
	if err != nil {
		return nil, err
	}
	for _, w := range st.Warnings {
		fmt.Fprintf(warn, "vmctl: warning: %s\n", oneLine(errors.New(w)))
	}
	return st, nil
}

// imagesDir is where the stack's Dockerfiles live: images/ beside the
// directory of the first compose file (compose/compose.yaml -> images/).
func imagesDir(g *globalOptions) string {
	base := g.projectDir
	if len(g.files) > 0 {
		base = filepath.Dir(g.files[0])
	} else if base == "" || base == "." {
		if _, err := os.Stat("compose"); err == nil {
			base = "compose"
		}
	}
	dir, err := filepath.Abs(filepath.Join(base, "..", "images"))
	if err != nil {
		return filepath.Join(base, "..", "images")
	}
	return dir
}

// stateDir is where vmctl keeps what it observed ($XDG_STATE_HOME, else the
// user cache directory); empty when neither is known, and then nothing is kept.
func (f *Factory) stateDir() string {
	if d, ok := f.LookupEnv("XDG_STATE_HOME"); ok && filepath.IsAbs(d) {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return d
}
