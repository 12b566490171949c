package stack

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
)

// WrittenKeys are the service keys Variables answers for besides environment.NAME: the ones
// a task definition carries in clear.
var WrittenKeys = []string{"command", "entrypoint", "healthcheck.test", "labels"}

// loadWritten reads the compose files again as written: no interpolation and no
// environment, so a ${VAR} stays a reference and a bare environment name stays unresolved.
// compose-go interpolates while it loads, and this is the only way to tell afterwards which
// values came from the operator's shell or .env file.
func loadWritten(ctx context.Context, files []string, opts LoadOptions, name string) (map[string]map[string]any, error) {
	fns := []cli.ProjectOptionsFn{
		cli.WithName(name),
		cli.WithInterpolation(false),
		cli.WithNormalization(false),
		cli.WithResolvedPaths(false),
		cli.WithLoadOptions(func(o *loader.Options) {
			// a value written as ${VAR} need not match its type's schema yet
			o.SkipValidation = true
			o.SkipDefaultValues = true
		}),
	}
	if opts.WorkDir != "" {
		fns = append(fns, cli.WithWorkingDirectory(opts.WorkDir))
	}
	var model map[string]any
	// Load already reported what the loader warns about; a second read repeats it.
	_, err := captureWarnings(func() error {
		po, err := cli.NewProjectOptions(files, fns...)
		if err != nil {
			return err
		}
		model, err = po.LoadModel(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]any{}
	services, _ := model["services"].(map[string]any)
	for n, svc := range services {
		if m, ok := svc.(map[string]any); ok {
			out[n] = m
		}
	}
	return out, nil
}

// Written says why the compose files could not be read as written, if they could not:
// without that, nothing tells a literal value from an interpolated one.
func (s *Stack) Written() error {
	s.writtenOnce.Do(func() {
		if s.readWritten != nil {
			s.written, s.writtenErr = s.readWritten()
		}
	})
	switch {
	case s.writtenErr != nil:
		return fmt.Errorf("read the compose files without interpolation, to tell literal values from ${VAR}: %w", s.writtenErr)
	case s.written == nil:
		return fmt.Errorf("the stack was not loaded from compose files, so which values were interpolated is unknown: load it with stack.Load")
	}
	return nil
}

// Variables names the variables service's key was written with in the compose files, before
// interpolation; none means the value is literal ($$ is compose's literal dollar). key is
// one of WrittenKeys or environment.NAME. A variable with no value in the compose files — a
// bare name inherited from the shell, or one only an env_file sets — is named after itself,
// since its value came from outside them too.
func (s *Stack) Variables(service, key string) ([]string, error) {
	if err := s.Written(); err != nil {
		return nil, err
	}
	svc := s.written[service]
	if k, ok := strings.CutPrefix(key, "environment."); ok {
		v, ok := writtenEnv(svc["environment"], k)
		if !ok || v == nil {
			return []string{k}, nil
		}
		return variables(v), nil
	}
	switch key {
	case "command", "entrypoint", "labels":
		return variables(svc[key]), nil
	case "healthcheck.test":
		hc, _ := svc["healthcheck"].(map[string]any)
		return variables(hc["test"]), nil
	}
	return nil, fmt.Errorf("stack.Variables: key %q is not one of %s or environment.NAME", key, strings.Join(WrittenKeys, ", "))
}

// writtenEnv finds NAME in an environment written as a map or a list; a nil value is a name
// without a value.
func writtenEnv(env any, name string) (any, bool) {
	switch env := env.(type) {
	case map[string]any:
		v, ok := env[name]
		return v, ok
	case []any:
		for _, e := range env {
			k, v, hasValue := strings.Cut(fmt.Sprint(e), "=")
			if k == name {
				if !hasValue {
					return nil, true
				}
				return v, true
			}
		}
	}
	return nil, false
}

// variables lists, sorted, the variables a written value references, defaults included
// (${A:-$B} reads B when A is unset).
func variables(v any) []string {
	seen := map[string]bool{}
	var walk func(map[string]template.Variable)
	walk = func(vars map[string]template.Variable) {
		for name, v := range vars {
			if seen[name] {
				continue
			}
			seen[name] = true
			walk(template.ExtractVariables(map[string]any{"d": v.DefaultValue, "p": v.PresenceValue}, nil))
		}
	}
	walk(template.ExtractVariables(map[string]any{"v": v}, nil))
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Reinterpolate interpolates service's key as written with values instead of the operator's
// environment, so a value the environment file declares is the one a task definition
// carries. key is one of WrittenKeys; the result is what compose would have loaded.
func (s *Stack) Reinterpolate(service, key string, values map[string]string) (Written, error) {
	var w Written
	if err := s.Written(); err != nil {
		return w, err
	}
	svc := s.written[service]
	raw := svc[key]
	if key == "healthcheck.test" {
		hc, _ := svc["healthcheck"].(map[string]any)
		raw = hc["test"]
	}
	lookup := func(k string) (string, bool) { v, ok := values[k]; return v, ok }
	v, err := substitute(raw, lookup)
	if err != nil {
		return w, fmt.Errorf("service %s: %s: %w", service, key, err)
	}
	if v == nil {
		return w, nil
	}
	switch key {
	case "command", "entrypoint":
		err = w.Command.DecodeMapstructure(v)
	case "healthcheck.test":
		err = w.Test.DecodeMapstructure(v)
	case "labels":
		err = w.Labels.DecodeMapstructure(v)
	default:
		err = fmt.Errorf("key %q is not one of %s", key, strings.Join(WrittenKeys, ", "))
	}
	if err != nil {
		return w, fmt.Errorf("service %s: %s: %w", service, key, err)
	}
	return w, nil
}

// Written is a reinterpolated key: Command for command and entrypoint, Test for
// healthcheck.test, Labels for labels.
type Written struct {
	Command types.ShellCommand
	Test    types.HealthCheckTest
	Labels  types.Labels
}

func substitute(v any, lookup template.Mapping) (any, error) {
	switch v := v.(type) {
	case string:
		return template.Substitute(v, lookup)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			s, err := substitute(e, lookup)
			if err != nil {
				return nil, err
			}
			out[i] = s
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			s, err := substitute(e, lookup)
			if err != nil {
				return nil, err
			}
			out[k] = s
		}
		return out, nil
	case nil:
		return nil, nil
	}
	return fmt.Sprint(v), nil // compose's decoders take a command's or label's words as strings
}
