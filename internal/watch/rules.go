// Package watch is `vmctl watch`: it follows the files a stack's services
// declare under compose's develop.watch and applies each change to the
// running stack (copy into the container, restart it, or rebuild and
// recreate that one service), so compose users iterate as they do with
// `docker compose watch`, through the Docker API only.
package watch

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/vmctl/vmctl/internal/stack"
)

// editorNoise is never worth a sync: editors' swap, backup and probe files
// and VCS metadata change on every keystroke or commit.
var editorNoise = []string{".git", "*.swp", "*.swx", "*~", ".#*", "#*#", "4913", ".DS_Store"}

// Rule is one develop.watch trigger of one service, with its ignore
// patterns compiled.
type Rule struct {
	Service     string
	Action      types.WatchAction
	Path        string // absolute host path, a directory or a file
	Target      string // container path (sync actions)
	InitialSync bool

	isDir   bool
	ignore  *patternmatcher.PatternMatcher // relative to Path
	include *patternmatcher.PatternMatcher // relative to Path; nil: everything
	ctxRoot string                         // the service's build context
	ctxIgn  *patternmatcher.PatternMatcher // its .dockerignore, relative to ctxRoot
}

// Syncs says whether the rule copies files into the container.
func (r *Rule) Syncs() bool {
	return r.Action == types.WatchActionSync || r.Action == types.WatchActionSyncRestart
}

// Rules compiles the develop.watch rules of the named services, or of
// every service that declares some when none are named. It checks
// everything watch will rely on, so a bad rule fails before the stack is
// touched.
func Rules(st *stack.Stack, services []string) ([]Rule, error) {
	names := services
	if len(names) == 0 {
		for _, n := range st.Names() {
			if svc := st.Project.Services[n]; svc.Develop != nil && len(svc.Develop.Watch) > 0 {
				names = append(names, n)
			}
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("no service declares develop.watch rules: add some to a service (develop: watch: - path: ./src, action: sync, target: /app/src)")
		}
	}
	var rules []Rule
	for _, n := range names {
		svc, err := st.Service(n)
		if err != nil {
			return nil, err
		}
		if svc.Develop == nil || len(svc.Develop.Watch) == 0 {
			return nil, fmt.Errorf("service %s declares no develop.watch rules: add some to it, or name services that have them", n)
		}
		ctxRoot, ctxIgn, err := dockerignore(svc)
		if err != nil {
			return nil, fmt.Errorf("service %s: %w", n, err)
		}
		for i, t := range svc.Develop.Watch {
			r, err := compile(svc, t)
			if err != nil {
				return nil, fmt.Errorf("service %s: develop.watch[%d]: %w", n, i, err)
			}
			r.ctxRoot, r.ctxIgn = ctxRoot, ctxIgn
			rules = append(rules, r)
		}
	}
	sort.SliceStable(rules, func(i, j int) bool { return rules[i].Service < rules[j].Service })
	return rules, nil
}

func compile(svc types.ServiceConfig, t types.Trigger) (Rule, error) {
	r := Rule{Service: svc.Name, Action: t.Action, Path: filepath.Clean(t.Path), Target: t.Target, InitialSync: t.InitialSync}
	switch t.Action {
	case types.WatchActionSync, types.WatchActionSyncRestart:
		if !strings.HasPrefix(t.Target, "/") {
			return r, fmt.Errorf("%s needs an absolute target in the container, got %q: set target: /path/in/container", t.Action, t.Target)
		}
	case types.WatchActionRebuild:
		if svc.Build == nil {
			return r, fmt.Errorf("rebuild needs a build section: add build: to the service or use sync")
		}
	case types.WatchActionRestart:
	default:
		return r, fmt.Errorf("action %q is not supported by vmctl: use sync, sync+restart, restart or rebuild", t.Action)
	}
	if !filepath.IsAbs(r.Path) {
		return r, fmt.Errorf("path %q is not absolute: the compose file was loaded without resolved paths", t.Path)
	}
	info, err := os.Stat(r.Path)
	if err != nil {
		return r, fmt.Errorf("path %s: %w: create it or fix develop.watch.path", r.Path, unwrapPathErr(err))
	}
	r.isDir = info.IsDir()
	if r.ignore, err = patternmatcher.New(append(append([]string{}, editorNoise...), t.Ignore...)); err != nil {
		return r, fmt.Errorf("ignore: %w", err)
	}
	if len(t.Include) > 0 {
		if r.include, err = patternmatcher.New(t.Include); err != nil {
			return r, fmt.Errorf("include: %w", err)
		}
	}
	return r, nil
}

// dockerignore reads the ignore file the build uses (a <Dockerfile>.dockerignore
// beside the Dockerfile wins over the context's .dockerignore, as in
// engine.Build): what the image never sees is not worth a sync or rebuild.
func dockerignore(svc types.ServiceConfig) (string, *patternmatcher.PatternMatcher, error) {
	if svc.Build == nil || svc.Build.Context == "" || strings.Contains(svc.Build.Context, "://") {
		return "", nil, nil
	}
	root := svc.Build.Context
	df := svc.Build.Dockerfile
	if df == "" {
		df = "Dockerfile"
	}
	if !filepath.IsAbs(df) {
		df = filepath.Join(root, df)
	}
	file := filepath.Join(root, ".dockerignore")
	if _, err := os.Stat(df + ".dockerignore"); err == nil && svc.Build.DockerfileInline == "" {
		file = df + ".dockerignore"
	}
	f, err := os.Open(file)
	if os.IsNotExist(err) {
		return root, nil, nil
	}
	if err != nil {
		return "", nil, fmt.Errorf("read %s: %w", file, err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return "", nil, fmt.Errorf("read %s: %w", file, err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return "", nil, fmt.Errorf("read %s: %w", file, err)
	}
	return root, pm, nil
}

// Matches says whether a change to the host path concerns the rule.
func (r *Rule) Matches(p string) bool {
	rel, ok := r.rel(p)
	if !ok {
		return false
	}
	if rel != "." {
		if skip, _ := r.ignore.MatchesOrParentMatches(rel); skip {
			return false
		}
		if r.include != nil {
			in, _ := r.include.MatchesOrParentMatches(rel)
			if !in {
				in, _ = r.include.MatchesOrParentMatches(filepath.Base(rel))
			}
			if !in {
				return false
			}
		}
	}
	if r.ctxIgn != nil {
		if crel, err := filepath.Rel(r.ctxRoot, p); err == nil && crel != "." && !strings.HasPrefix(crel, "..") {
			if skip, _ := r.ctxIgn.MatchesOrParentMatches(filepath.ToSlash(crel)); skip {
				return false
			}
		}
	}
	return true
}

// rel is p relative to the rule's path, in slash form; false when p is
// outside it.
func (r *Rule) rel(p string) (string, bool) {
	p = filepath.Clean(p)
	if !r.isDir {
		return ".", p == r.Path
	}
	rel, err := filepath.Rel(r.Path, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", false
	}
	return filepath.ToSlash(rel), true
}

// containerPath is where a host path under the rule lands in the container.
func (r *Rule) containerPath(p string) string {
	rel, _ := r.rel(p)
	if rel == "." {
		return r.Target
	}
	return strings.TrimSuffix(r.Target, "/") + "/" + rel
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
