package watch_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/dockertest"
	"github.com/vmctl/vmctl/internal/stack"
	"github.com/vmctl/vmctl/internal/watch"
)

// dirs makes the sync directory, a build context with a .dockerignore and
// the restart rule's file, and the environment testdata/watch.yaml reads.
func dirs(t *testing.T) (syncDir, ctxDir string, env map[string]string) {
	t.Helper()
	syncDir, ctxDir, confDir := t.TempDir(), t.TempDir(), t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(ctxDir, ".dockerignore"), []byte("*.log\nbuild/\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM scratch\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(confDir, "app.conf"), nil, 0o644))
	return syncDir, ctxDir, map[string]string{"WATCH_IMAGE": "x", "WATCH_CONTEXT": ctxDir, "SYNC_DIR": syncDir, "CONF_DIR": confDir, "APP_PORT": "1"}
}

func load(t *testing.T, file string, env map[string]string) *stack.Stack {
	t.Helper()
	st, err := stack.Load(context.Background(), stack.LoadOptions{Files: []string{file}, ProjectName: "watchunit", Env: env})
	require.NoError(t, err)
	return st
}

func TestRulesMatchWhatTheImageAndTheRuleKeep(t *testing.T) {
	syncDir, ctxDir, env := dirs(t)
	st := load(t, "testdata/watch.yaml", env)

	rules, err := watch.Rules(st, nil)
	require.NoError(t, err)
	require.Len(t, rules, 3, "only app declares rules")
	assert.Equal(t, []string{"app"}, watch.Services(rules))
	syncRule, restart, rebuild := rules[0], rules[1], rules[2]
	assert.Equal(t, types.WatchActionSyncRestart, restart.Action)
	assert.True(t, restart.Matches(filepath.Join(env["CONF_DIR"], "app.conf")))
	assert.False(t, restart.Matches(filepath.Join(env["CONF_DIR"], "other.conf")), "a file rule is that file only")
	assert.Equal(t, types.WatchActionSync, syncRule.Action)
	assert.Equal(t, "/srv/sync", syncRule.Target)
	assert.Equal(t, types.WatchActionRebuild, rebuild.Action)

	for p, want := range map[string]bool{
		filepath.Join(syncDir, "a.txt"):             true,
		filepath.Join(syncDir, "sub", "b.txt"):      true,
		filepath.Join(syncDir, "a.tmp"):             false, // the rule's ignore
		filepath.Join(syncDir, "cache", "x"):        false, // an ignored directory
		filepath.Join(syncDir, ".main.go.swp"):      false, // editor noise
		filepath.Join(syncDir, ".git", "index"):     false,
		filepath.Join(ctxDir, "a.txt"):              false, // another rule's path
		filepath.Join(filepath.Dir(syncDir), "out"): false,
	} {
		assert.Equal(t, want, syncRule.Matches(p), p)
	}
	for p, want := range map[string]bool{
		filepath.Join(ctxDir, "version.txt"):       true,
		filepath.Join(ctxDir, "Dockerfile"):        true,
		filepath.Join(ctxDir, "debug.log"):         false, // the context's .dockerignore
		filepath.Join(ctxDir, "build", "artifact"): false,
	} {
		assert.Equal(t, want, rebuild.Matches(p), p)
	}
}

func TestRulesRefuseWhatWatchCannotDo(t *testing.T) {
	syncDir, _, _ := dirs(t)
	st := load(t, "testdata/bad.yaml", map[string]string{"SYNC_DIR": syncDir})
	for svc, want := range map[string]string{
		"exec":    `action "sync+exec" is not supported by vmctl: use sync, sync+restart, restart or rebuild`,
		"nobuild": "rebuild needs a build section",
		"missing": "does-not-exist: no such file or directory: create it or fix develop.watch.path",
		"plain":   "service plain declares no develop.watch rules",
		"nosuch":  "no such service",
	} {
		_, err := watch.Rules(st, []string{svc})
		require.Error(t, err, svc)
		assert.Contains(t, err.Error(), want, svc)
	}
}

func TestTheShippedStacksDeclareRulesWatchAccepts(t *testing.T) {
	dockertest.DemoBinary(t) // the demo's rule watches the built program
	root := dockertest.RepoRoot()
	demo := load(t, filepath.Join(root, "compose", "demo.yaml"), nil)
	rules, err := watch.Rules(demo, nil)
	require.NoError(t, err)
	require.Len(t, rules, 1)
	assert.Equal(t, "backend", rules[0].Service)
	assert.Equal(t, types.WatchActionRebuild, rules[0].Action)
	assert.Equal(t, filepath.Join(root, "images", "demo", "vmctl-demo"), rules[0].Path)

	app := t.TempDir()
	for _, d := range []string{"backend/app", "frontend/src", "openvoice"} {
		require.NoError(t, os.MkdirAll(filepath.Join(app, d), 0o755))
	}
	require.NoError(t, os.WriteFile(filepath.Join(app, "backend", "requirements.txt"), nil, 0o644))
	st := load(t, filepath.Join(root, "compose", "compose.yaml"), map[string]string{"VMCTL_APP_SOURCE": app, "VMCTL_IMAGES": filepath.Join(root, "images")})
	rules, err = watch.Rules(st, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"backend", "frontend"}, watch.Services(rules))
	byPath := map[string]watch.Rule{}
	for _, r := range rules {
		byPath[r.Path] = r
	}
	code := byPath[filepath.Join(app, "backend", "app")]
	assert.Equal(t, types.WatchActionSyncRestart, code.Action)
	assert.Equal(t, "/app/app", code.Target)
	assert.False(t, code.Matches(filepath.Join(app, "backend", "app", "__pycache__", "main.cpython-311.pyc")), "Dockerfile.dockerignore applies")
	assert.True(t, code.Matches(filepath.Join(app, "backend", "app", "main.py")))
	front := byPath[filepath.Join(app, "frontend")]
	assert.Equal(t, types.WatchActionRebuild, front.Action)
	assert.False(t, front.Matches(filepath.Join(app, "frontend", "node_modules", "vite", "index.js")))
	assert.True(t, front.Matches(filepath.Join(app, "frontend", "src", "App.tsx")))
	assert.Equal(t, types.WatchActionSyncRestart, byPath[filepath.Join(root, "images", "frontend", "nginx.conf")].Action)
}
