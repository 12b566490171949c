// Package stack loads the Compose file(s) that describe the Video Message
// App with compose-go and exposes what vmctl needs from them: services in
// dependency order, health endpoints, GPU reservations and a configuration
// hash that decides when a container must be recreated.
package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// ExtensionKey is the service-level extension vmctl reads from compose files.
const ExtensionKey = "x-vmctl"

// Extension is what a service declares under x-vmctl.
type Extension struct {
	// HealthPath is probed over HTTP from the host through the published port.
	HealthPath string `json:"health_path,omitempty"`
	// HealthPort is the container port to probe; the first published one when zero.
	HealthPort uint32 `json:"health_port,omitempty"`
	// CPUFallback says how the service runs when no GPU is handed to it.
	CPUFallback *CPUFallback `json:"cpu_fallback,omitempty"`
}

// CPUFallback is applied to a GPU service that runs without its GPU.
type CPUFallback struct {
	Environment map[string]string `json:"environment,omitempty"`
}

// LoadOptions selects the compose files and how they are interpolated.
type LoadOptions struct {
	Files       []string
	ProjectName string
	Profiles    []string
	WorkDir     string
	// Env is the interpolation environment (the OS environment, usually);
	// values from a .env file next to the first compose file are added to it.
	Env map[string]string
}

// Stack is a loaded, validated compose project.
type Stack struct {
	Project *types.Project
	// Warnings are what the compose loader had to say (an obsolete key, an
	// unset variable); the caller prints them in its own voice.
	Warnings []string
	ext      map[string]Extension
	// written is each service as the compose files write it, before interpolation; see
	// Variables. writtenErr is why it could not be read. Only rendering for AWS asks, so
	// the second read of the files happens then (readWritten), not on every local command.
	readWritten func() (map[string]map[string]any, error)
	writtenOnce sync.Once
	written     map[string]map[string]any
	writtenErr  error
}

// DefaultFiles are looked up, in order, when no -f is given.
var DefaultFiles = []string{"compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml", "compose/compose.yaml"}

// Load reads the compose files into a Stack.
func Load(ctx context.Context, opts LoadOptions) (*Stack, error) {
	files := opts.Files
	if len(files) == 0 {
		f, err := findDefault(opts.WorkDir)
		if err != nil {
			return nil, err
		}
		files = []string{f}
	}
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("load compose file %s: %w", f, unwrapPathErr(err))
		}
	}
	env := make([]string, 0, len(opts.Env))
	for k, v := range opts.Env {
		env = append(env, k+"="+v)
	}
	fns := []cli.ProjectOptionsFn{cli.WithEnv(env)}
	if opts.WorkDir != "" {
		fns = append(fns, cli.WithWorkingDirectory(opts.WorkDir))
	}
	if opts.ProjectName != "" {
		fns = append(fns, cli.WithName(opts.ProjectName))
	}
	// As docker compose does: .env is looked up in the project directory (the
	// first file's directory unless --project-directory), never in the
	// current one, and a variable of the shell wins over the file's.
	fns = append(fns,
		cli.WithEnvFiles(),
		cli.WithDotEnv,
		cli.WithProfiles(opts.Profiles),
		cli.WithResolvedPaths(true),
	)
	var project *types.Project
	warnings, err := captureWarnings(func() error {
		po, err := cli.NewProjectOptions(files, fns...)
		if err != nil {
			return err
		}
		project, err = po.LoadProject(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", strings.Join(files, ", "), err)
	}
	st, err := New(project)
	if err != nil {
		return nil, err
	}
	st.Warnings = warnings
	// Only rendering needs it, so a failure waits there rather than failing every command.
	st.readWritten = func() (map[string]map[string]any, error) {
		return loadWritten(context.WithoutCancel(ctx), files, opts, project.Name)
	}
	return st, nil
}

// New wraps an already loaded project, validating what vmctl adds to it.
func New(project *types.Project) (*Stack, error) {
	s := &Stack{Project: project, ext: map[string]Extension{}}
	for name, svc := range project.Services {
		raw, ok := svc.Extensions[ExtensionKey]
		if !ok {
			continue
		}
		b, err := json.Marshal(raw)
		if err != nil {
			return nil, fmt.Errorf("service %s: %s: %w", name, ExtensionKey, err)
		}
		var e Extension
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return nil, fmt.Errorf("service %s: %s: %w", name, ExtensionKey, err)
		}
		if e.HealthPath != "" && !strings.HasPrefix(e.HealthPath, "/") {
			return nil, fmt.Errorf("service %s: %s.health_path %q must start with /", name, ExtensionKey, e.HealthPath)
		}
		s.ext[name] = e
	}
	if _, err := s.Order(s.Names()); err != nil {
		return nil, err
	}
	return s, nil
}

func findDefault(dir string) (string, error) {
	for _, f := range DefaultFiles {
		p := filepath.Join(dir, f)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no compose file found: looked for %s in %s; pass one with -f", strings.Join(DefaultFiles, ", "), displayDir(dir))
}

func displayDir(dir string) string {
	if dir == "" {
		return "the current directory"
	}
	return dir
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// Name is the project name (containers, network and volumes are prefixed with it).
func (s *Stack) Name() string { return s.Project.Name }

// Names lists the enabled services, sorted.
func (s *Stack) Names() []string {
	names := make([]string, 0, len(s.Project.Services))
	for n := range s.Project.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Service returns one service or an error naming the ones that exist.
func (s *Stack) Service(name string) (types.ServiceConfig, error) {
	svc, ok := s.Project.Services[name]
	if !ok {
		if _, disabled := s.Project.DisabledServices[name]; disabled {
			return svc, fmt.Errorf("service %q is disabled by its profiles: enable one with --profile", name)
		}
		return svc, fmt.Errorf("no such service: %q (services: %s)", name, strings.Join(s.Names(), ", "))
	}
	return svc, nil
}

// Extension returns the x-vmctl settings of a service.
func (s *Stack) Extension(name string) Extension { return s.ext[name] }

// Select returns the named services plus everything they depend on; all
// services when none are named.
func (s *Stack) Select(names []string) ([]string, error) {
	if len(names) == 0 {
		return s.Names(), nil
	}
	seen := map[string]bool{}
	var visit func(string) error
	visit = func(n string) error {
		if seen[n] {
			return nil
		}
		svc, err := s.Service(n)
		if err != nil {
			return err
		}
		seen[n] = true
		for dep, d := range svc.DependsOn {
			if _, ok := s.Project.Services[dep]; !ok && !d.Required {
				continue // an optional dependency left out by its profile
			}
			if err := visit(dep); err != nil {
				return err
			}
		}
		return nil
	}
	for _, n := range names {
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// Dependencies returns the services that name must wait for, with conditions.
func (s *Stack) Dependencies(name string) map[string]types.ServiceDependency {
	deps := map[string]types.ServiceDependency{}
	for dep, d := range s.Project.Services[name].DependsOn {
		if _, ok := s.Project.Services[dep]; ok {
			if d.Condition == "" {
				d.Condition = types.ServiceConditionStarted
			}
			deps[dep] = d
		}
	}
	return deps
}

// Order sorts services into dependency levels: every service comes after
// all it depends on, and services of one level can start in parallel.
func (s *Stack) Order(names []string) ([][]string, error) {
	in := map[string]bool{}
	for _, n := range names {
		in[n] = true
	}
	done := map[string]bool{}
	var levels [][]string
	for len(done) < len(in) {
		var level []string
		for _, n := range names {
			if done[n] {
				continue
			}
			ready := true
			for dep := range s.Dependencies(n) {
				if in[dep] && !done[dep] {
					ready = false
					break
				}
			}
			if ready {
				level = append(level, n)
			}
		}
		if len(level) == 0 {
			var left []string
			for _, n := range names {
				if !done[n] {
					left = append(left, n)
				}
			}
			sort.Strings(left)
			return nil, fmt.Errorf("dependency cycle between services %s: break it in depends_on", strings.Join(left, ", "))
		}
		sort.Strings(level)
		for _, n := range level {
			done[n] = true
		}
		levels = append(levels, level)
	}
	return levels, nil
}

// Dependents returns the services (among names) that depend on name directly.
func (s *Stack) Dependents(name string) []string {
	var out []string
	for _, n := range s.Names() {
		if _, ok := s.Dependencies(n)[name]; ok {
			out = append(out, n)
		}
	}
	return out
}
