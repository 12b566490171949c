package watch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/fsnotify/fsnotify"

	"github.com/vmctl/vmctl/internal/engine"
	"github.com/vmctl/vmctl/internal/progress"
	"github.com/vmctl/vmctl/internal/stack"
)

// Docker is the part of the Docker client watch uses; *client.Client
// satisfies it.
type Docker interface {
	ContainerList(ctx context.Context, options container.ListOptions) ([]container.Summary, error)
	CopyToContainer(ctx context.Context, containerID, dstPath string, content io.Reader, options container.CopyToContainerOptions) error
	ContainerRestart(ctx context.Context, containerID string, options container.StopOptions) error
}

// Engine builds images and recreates one service; *engine.Engine
// satisfies it.
type Engine interface {
	Build(ctx context.Context, st *stack.Stack, opts engine.BuildOptions) (map[string]string, error)
	Recreate(ctx context.Context, st *stack.Stack, service string, waitTimeout time.Duration, pw progress.Writer) (string, error)
}

// Options configures Run.
type Options struct {
	// Debounce is how long the files must stay quiet before a burst of
	// changes (a save, a checkout, a formatter) is applied as one: 300 ms
	// when zero.
	Debounce time.Duration
	// WaitTimeout bounds the wait for a rebuilt service to become ready.
	WaitTimeout time.Duration
	// Out gets one line per action applied.
	Out io.Writer
	// Ready, when set, is called once every path is watched and the
	// initial syncs are done: tests change files only after it.
	Ready func()
}

// Run watches the rules' paths and applies changes until ctx ends, then
// returns ctx's error; the stack is left running. A failed action is
// reported in one line and watching goes on.
func Run(ctx context.Context, st *stack.Stack, api Docker, eng Engine, rules []Rule, opts Options) error {
	if opts.Debounce <= 0 {
		opts.Debounce = 300 * time.Millisecond
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("start watching files: %w: raise fs.inotify.max_user_instances", err)
	}
	defer fsw.Close()
	w := &watcher{st: st, api: api, eng: eng, rules: rules, opts: opts, fsw: fsw, watched: map[string]bool{}}
	for _, n := range Services(rules) {
		w.width = max(w.width, len(n))
	}
	for i := range rules {
		r := &rules[i]
		dir := r.Path
		if !r.isDir {
			// Editors save by renaming a new file over the old one: only
			// the directory's watch sees that.
			dir = filepath.Dir(r.Path)
		}
		if err := w.add(dir); err != nil {
			return err
		}
	}
	if err := w.initialSync(ctx); err != nil {
		return err
	}
	if opts.Ready != nil {
		opts.Ready()
	}
	return w.loop(ctx)
}

type watcher struct {
	st      *stack.Stack
	api     Docker
	eng     Engine
	rules   []Rule
	opts    Options
	fsw     *fsnotify.Watcher
	watched map[string]bool
	width   int
	outMu   sync.Mutex
}

// add watches dir and every directory below it that some rule cares about
// (fsnotify is not recursive); ignored trees such as node_modules are
// skipped, or they would exhaust the kernel's watch limit.
func (w *watcher) add(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p != dir && errors.Is(err, fs.ErrNotExist) {
				return nil // gone between the event and the walk
			}
			return fmt.Errorf("watch %s: %w", p, err)
		}
		if !d.IsDir() {
			return nil
		}
		if p != dir && !w.wanted(p) {
			return filepath.SkipDir
		}
		if w.watched[p] {
			return nil
		}
		if err := w.fsw.Add(p); err != nil {
			return fmt.Errorf("watch %s: %w: raise fs.inotify.max_user_watches, or ignore more in develop.watch", p, err)
		}
		w.watched[p] = true
		return nil
	})
}

// wanted says whether any rule is interested in the path.
func (w *watcher) wanted(p string) bool {
	for i := range w.rules {
		if w.rules[i].Matches(p) {
			return true
		}
	}
	return false
}

func (w *watcher) loop(ctx context.Context) error {
	pending := map[int]map[string]fsnotify.Op{} // rule index -> changed host paths
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return nil
			}
			w.printf("", "watch error: %v", err)
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return nil
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			if ev.Has(fsnotify.Create) {
				if info, err := os.Lstat(ev.Name); err == nil && info.IsDir() && w.wanted(ev.Name) {
					if err := w.add(ev.Name); err != nil {
						w.printf("", "%v", err)
					}
				}
			}
			hit := false
			for i := range w.rules {
				if w.rules[i].Matches(ev.Name) {
					if pending[i] == nil {
						pending[i] = map[string]fsnotify.Op{}
					}
					pending[i][filepath.Clean(ev.Name)] |= ev.Op
					hit = true
				}
			}
			if hit {
				timer.Reset(w.opts.Debounce)
			}
		case <-timer.C:
			batch := pending
			pending = map[int]map[string]fsnotify.Op{}
			w.apply(ctx, batch)
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
}

// apply runs one debounced batch, service by service: a rebuild makes the
// service's syncs moot; otherwise files are copied, then the container
// restarted once when a rule asks for it.
func (w *watcher) apply(ctx context.Context, batch map[int]map[string]fsnotify.Op) {
	byService := map[string][]int{}
	for i := range batch {
		byService[w.rules[i].Service] = append(byService[w.rules[i].Service], i)
	}
	for _, svc := range sortedKeys(byService) {
		idx := byService[svc]
		sort.Ints(idx)
		rebuild, restart := false, false
		for _, i := range idx {
			switch w.rules[i].Action {
			case types.WatchActionRebuild:
				rebuild = true
			case types.WatchActionRestart, types.WatchActionSyncRestart:
				restart = true
			}
		}
		if rebuild {
			w.rebuild(ctx, svc)
			continue
		}
		var changes []change
		for _, i := range idx {
			r := &w.rules[i]
			if !r.Syncs() {
				continue
			}
			for _, p := range sortedKeys(batch[i]) {
				changes = append(changes, change{rule: r, host: p, removed: batch[i][p].Has(fsnotify.Remove)})
			}
		}
		w.syncAndRestart(ctx, svc, changes, restart)
	}
}

func (w *watcher) syncAndRestart(ctx context.Context, svc string, changes []change, restart bool) {
	id, err := w.containerID(ctx, svc)
	if err != nil {
		w.printf(svc, "not updated: %v", err)
		return
	}
	var parts []string
	if len(changes) > 0 {
		res, err := copyChanges(ctx, w.api, id, changes)
		if err != nil {
			if ctx.Err() == nil {
				w.printf(svc, "sync failed: %s: check the target path, then save again", oneLine(err))
			}
			return
		}
		if res.files > 0 || res.deleted > 0 {
			parts = append(parts, res.String())
		}
	}
	if restart {
		if err := w.api.ContainerRestart(ctx, id, container.StopOptions{}); err != nil {
			if ctx.Err() == nil {
				msg := fmt.Sprintf("restart failed: %s: see vmctl logs %s", oneLine(err), svc)
				if len(parts) > 0 {
					msg = strings.Join(parts, ", ") + "; " + msg
				}
				w.printf(svc, "%s", msg)
			}
			return
		}
		parts = append(parts, "restarted")
	}
	if len(parts) > 0 {
		w.printf(svc, "%s", strings.Join(parts, ", "))
	}
}

// rebuild builds the service's image and recreates that service alone. A
// failed build changes nothing: the previous container keeps serving.
func (w *watcher) rebuild(ctx context.Context, svc string) {
	start := time.Now()
	if _, err := w.eng.Build(ctx, w.st, engine.BuildOptions{Services: []string{svc}, Force: true}); err != nil {
		if ctx.Err() == nil {
			w.printf(svc, "rebuild failed, the previous container keeps running: %s: fix it and save again", oneLine(err))
		}
		return
	}
	res, err := w.eng.Recreate(ctx, w.st, svc, w.opts.WaitTimeout, nil)
	took := fmt.Sprintf("%.1f s", time.Since(start).Seconds())
	switch {
	case ctx.Err() != nil:
	case err != nil:
		w.printf(svc, "rebuilt in %s, but the new container failed: %s: see vmctl logs %s", took, oneLine(err), svc)
	case res == "unchanged":
		w.printf(svc, "rebuilt in %s, image unchanged: kept the container", took)
	default:
		w.printf(svc, "rebuilt in %s, %s", took, res)
	}
}

// initialSync copies every rule's files that asks for initial_sync, so
// the container starts from what is on disk, not what the image baked.
func (w *watcher) initialSync(ctx context.Context) error {
	byService := map[string][]change{}
	for i := range w.rules {
		r := &w.rules[i]
		if r.InitialSync && r.Syncs() {
			byService[r.Service] = append(byService[r.Service], change{rule: r, host: r.Path})
		}
	}
	for _, svc := range sortedKeys(byService) {
		w.syncAndRestart(ctx, svc, byService[svc], false)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// containerID finds the service's running container.
func (w *watcher) containerID(ctx context.Context, svc string) (string, error) {
	list, err := w.api.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(
		filters.Arg("label", engine.LabelProject+"="+w.st.Name()),
		filters.Arg("label", engine.LabelService+"="+svc),
		filters.Arg("label", engine.LabelOneOff+"=False"),
		filters.Arg("status", "running"),
	)})
	if err != nil {
		return "", fmt.Errorf("list containers: %w", err)
	}
	if len(list) == 0 {
		return "", fmt.Errorf("no running container: start it with vmctl up %s", svc)
	}
	return list[0].ID, nil
}

// printf writes one line, the service name first and aligned.
func (w *watcher) printf(svc, format string, args ...any) {
	w.outMu.Lock()
	defer w.outMu.Unlock()
	if svc == "" {
		svc = "watch"
	}
	fmt.Fprintf(w.opts.Out, "%-*s  %s\n", w.width, svc, fmt.Sprintf(format, args...))
}

// Services lists the services the rules watch, sorted.
func Services(rules []Rule) []string {
	seen := map[string]bool{}
	for _, r := range rules {
		seen[r.Service] = true
	}
	return sortedKeys(seen)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// oneLine folds a multi-line error (a build's output) into one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}
