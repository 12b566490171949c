package engine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
	"golang.org/x/sync/errgroup"

	"github.com/vmctl/vmctl/internal/stack"
	"github.com/vmctl/vmctl/internal/termtext"
)

// LogsOptions configures Logs.
type LogsOptions struct {
	Services   []string
	Follow     bool
	Tail       string // "all" or a number
	Timestamps bool
	Color      bool // colour the prefixes
	// Terminal says w is a terminal: the containers' lines lose their
	// control sequences, so one cannot redraw the screen; vmctl's colour stays.
	Terminal bool
}

var palette = []string{"36", "33", "32", "35", "34", "96", "93", "92", "95", "94"}

// Logs writes the selected services' output to w, each line prefixed with
// its service (coloured on a terminal), lines from several services kept whole.
func (e *Engine) Logs(ctx context.Context, st *stack.Stack, w io.Writer, opts LogsOptions) error {
	for _, n := range opts.Services {
		if _, err := st.Service(n); err != nil {
			return err
		}
	}
	list, err := e.api.ContainerList(ctx, container.ListOptions{All: true, Filters: projectFilter(st.Name())})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	want := map[string]bool{}
	for _, n := range opts.Services {
		want[n] = true
	}
	var picked []container.Summary
	width := 0
	for _, c := range list {
		svc := c.Labels[LabelService]
		if len(want) > 0 && !want[svc] {
			continue
		}
		picked = append(picked, c)
		width = max(width, len(svc))
	}
	if len(picked) == 0 {
		return fmt.Errorf("no containers for %s: start them with vmctl up", describe(opts.Services))
	}
	sort.Slice(picked, func(i, j int) bool { return picked[i].Labels[LabelService] < picked[j].Labels[LabelService] })
	tail := opts.Tail
	if tail == "" {
		tail = "all"
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	for i, c := range picked {
		svc := c.Labels[LabelService]
		prefix := fmt.Sprintf("%-*s | ", width, svc)
		if opts.Color {
			prefix = "\x1b[" + palette[i%len(palette)] + "m" + prefix + "\x1b[0m"
		}
		g.Go(func() error {
			rc, err := e.api.ContainerLogs(gctx, c.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: opts.Follow, Tail: tail, Timestamps: opts.Timestamps})
			if err != nil {
				return fmt.Errorf("logs of %s: %w", svc, err)
			}
			defer rc.Close()
			lw := &lineWriter{w: w, mu: &mu, prefix: prefix, strip: opts.Terminal}
			defer lw.Flush()
			if isTTY(gctx, e, c.ID) {
				_, err = io.Copy(lw, rc)
			} else {
				_, err = stdcopy.StdCopy(lw, lw, rc)
			}
			if err != nil && gctx.Err() == nil {
				return fmt.Errorf("logs of %s: %w", svc, err)
			}
			return nil
		})
	}
	return g.Wait()
}

func isTTY(ctx context.Context, e *Engine, id string) bool {
	c, err := e.api.ContainerInspect(ctx, id)
	return err == nil && c.Config != nil && c.Config.Tty
}

func describe(services []string) string {
	if len(services) == 0 {
		return "this project"
	}
	return strings.Join(services, ", ")
}

// lineWriter prefixes whole lines and writes each under a shared lock.
type lineWriter struct {
	w      io.Writer
	mu     *sync.Mutex
	prefix string
	strip  bool // drop the line's terminal control sequences
	buf    []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		l.emit(l.buf[:i+1])
		l.buf = l.buf[i+1:]
	}
}

func (l *lineWriter) Flush() {
	if len(l.buf) > 0 {
		l.emit(append(l.buf, '\n'))
		l.buf = nil
	}
}

func (l *lineWriter) emit(line []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = io.WriteString(l.w, l.prefix)
	if l.strip {
		_, _ = io.WriteString(l.w, termtext.Strip(string(line)))
		return
	}
	_, _ = l.w.Write(line)
}
