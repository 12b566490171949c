// Package progress carries what long operations are doing (building,
// creating, waiting for health) as events, and draws them three ways: a
// live view on a terminal, plain lines when piped, JSON lines on request.
package progress

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/vmctl/vmctl/internal/termtext"
)

// Status is where one resource is in its lifecycle.
type Status string

// The statuses an operation reports.
const (
	Working Status = "working" // in progress: building, creating, waiting
	Done    Status = "done"    // finished well
	Warning Status = "warning" // finished, with something to say
	Error   Status = "error"   // failed
)

// Event is one step of one resource (a service, the network, a volume).
type Event struct {
	Time     time.Time `json:"time"`
	Resource string    `json:"resource"`
	Status   Status    `json:"status"`
	Text     string    `json:"text"`
	Detail   string    `json:"detail,omitempty"`
}

// Writer receives events; implementations are safe for concurrent use.
type Writer interface {
	Event(Event)
	// Close draws the final state; no events follow.
	Close()
}

// Mode picks a renderer.
type Mode string

// The renderers.
const (
	ModeAuto  Mode = "auto"
	ModeTTY   Mode = "tty"
	ModePlain Mode = "plain"
	ModeJSON  Mode = "json"
	ModeQuiet Mode = "quiet"
)

// ParseMode validates a --progress value.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeAuto, ModeTTY, ModePlain, ModeJSON, ModeQuiet:
		return m, nil
	}
	return "", fmt.Errorf("invalid --progress %q: use auto, tty, plain, json or quiet", s)
}

// New returns the renderer for mode; auto picks tty on a terminal.
func New(mode Mode, w io.Writer, isTerminal bool, now func() time.Time) Writer {
	return NewWith(mode, w, Options{Terminal: isTerminal, Color: true, Now: now})
}

// MinWidth is the narrowest terminal the live view is drawn on: below it
// every line would be cut to nothing useful, so auto falls back to plain.
const MinWidth = 40

// Options describe the terminal a renderer draws on.
type Options struct {
	// Terminal says w is a terminal; auto draws the live view only then.
	Terminal bool
	// Dumb is a terminal without cursor movement (TERM=dumb): auto draws plain lines.
	Dumb bool
	// Color allows colours (off for NO_COLOR or --no-color).
	Color bool
	// Width reads the terminal's columns at each redraw (it may be resized);
	// 0, or a nil Width, means unknown and lines are not cut.
	Width func() int
	Now   func() time.Time
}

// NewWith returns the renderer for mode on the terminal opts describe. Auto
// picks the live view only on a terminal that can redraw it: a dumb one, or
// one narrower than MinWidth, gets plain lines.
func NewWith(mode Mode, w io.Writer, opts Options) Writer {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	if mode == ModeAuto {
		mode = ModePlain
		if opts.Terminal && !opts.Dumb && !tooNarrow(opts.Width) {
			mode = ModeTTY
		}
	}
	switch mode {
	case ModeJSON:
		return &jsonWriter{enc: json.NewEncoder(w), now: now}
	case ModeTTY:
		return newTTY(w, now, opts)
	case ModeQuiet:
		return Discard{}
	default:
		return &plainWriter{w: w, now: now}
	}
}

// Discard drops every event.
type Discard struct{}

// Event implements Writer.
func (Discard) Event(Event) {}

// Close implements Writer.
func (Discard) Close() {}

type jsonWriter struct {
	mu  sync.Mutex
	enc *json.Encoder
	now func() time.Time
}

func (j *jsonWriter) Event(e Event) {
	if e.Time.IsZero() {
		e.Time = j.now()
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	_ = j.enc.Encode(e)
}

func (j *jsonWriter) Close() {}

type plainWriter struct {
	mu  sync.Mutex
	w   io.Writer
	now func() time.Time
}

func (p *plainWriter) Event(e Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	line := fmt.Sprintf("%s %s", e.Resource, e.Text)
	if e.Detail != "" {
		line += ": " + e.Detail
	}
	fmt.Fprintln(p.w, line)
}

func (p *plainWriter) Close() {}

// ttyWriter redraws one line per resource in place, with a spinner and the
// time each step has taken, as docker compose does.
type ttyWriter struct {
	mu      sync.Mutex
	w       io.Writer
	now     func() time.Time
	color   bool
	width   func() int
	lines   map[string]*ttyLine
	order   []string
	drawn   int
	frame   int
	stop    chan struct{}
	stopped chan struct{}
}

type ttyLine struct {
	ev    Event
	start time.Time
	end   time.Time
}

var spinner = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

func tooNarrow(width func() int) bool {
	if width == nil {
		return false
	}
	n := width()
	return n > 0 && n < MinWidth
}

func newTTY(w io.Writer, now func() time.Time, opts Options) *ttyWriter {
	t := &ttyWriter{w: w, now: now, color: opts.Color, width: opts.Width, lines: map[string]*ttyLine{}, stop: make(chan struct{}), stopped: make(chan struct{})}
	go t.tick()
	return t
}

func (t *ttyWriter) tick() {
	defer close(t.stopped)
	tk := time.NewTicker(100 * time.Millisecond)
	defer tk.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tk.C:
			t.mu.Lock()
			t.frame++
			t.draw()
			t.mu.Unlock()
		}
	}
}

func (t *ttyWriter) Event(e Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	l, ok := t.lines[e.Resource]
	if !ok {
		l = &ttyLine{start: now}
		t.lines[e.Resource] = l
		t.order = append(t.order, e.Resource)
	}
	if l.ev.Status != Working && e.Status == Working {
		l.start = now // a new step begins
	}
	l.ev = e
	l.end = time.Time{}
	if e.Status != Working {
		l.end = now
	}
	t.draw()
}

func (t *ttyWriter) Close() {
	close(t.stop)
	<-t.stopped
	t.mu.Lock()
	defer t.mu.Unlock()
	t.draw()
}

func (t *ttyWriter) draw() {
	var b strings.Builder
	if t.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", t.drawn)
	}
	width := 0
	for _, r := range t.order {
		width = max(width, len(r))
	}
	cols := 0
	if t.width != nil {
		cols = t.width()
	}
	for _, r := range t.order {
		l := t.lines[r]
		mark, color := spinner[t.frame%len(spinner)], "\x1b[34m"
		switch l.ev.Status {
		case Done:
			mark, color = "✔", "\x1b[32m"
		case Warning:
			mark, color = "!", "\x1b[33m"
		case Error:
			mark, color = "✘", "\x1b[31m"
		}
		end := l.end
		if end.IsZero() {
			end = t.now()
		}
		text := l.ev.Text
		if l.ev.Detail != "" {
			text += ": " + l.ev.Detail
		}
		// Build output and error text may carry newlines or escapes: either
		// would break the count of lines the next redraw moves up over.
		text = strings.Join(strings.Fields(termtext.Strip(text)), " ")
		name := fmt.Sprintf(" %-*s ", width, r)
		elapsed := fmt.Sprintf(" %.1fs", end.Sub(l.start).Seconds())
		if cols > 0 {
			// One column short of the edge: writing the last one wraps on some terminals.
			room := cols - 1 - 2 - utf8.RuneCountInString(name) - utf8.RuneCountInString(elapsed)
			text = cut(text, room)
			if room < 0 {
				elapsed = ""
				name = cut(name, cols-1-2)
			}
		}
		b.WriteString("\x1b[2K ")
		if t.color {
			fmt.Fprintf(&b, "%s%s\x1b[0m%s%s\x1b[2m%s\x1b[0m\n", color, mark, name, text, elapsed)
		} else {
			fmt.Fprintf(&b, "%s%s%s%s\n", mark, name, text, elapsed)
		}
	}
	t.drawn = len(t.order)
	_, _ = io.WriteString(t.w, b.String())
}

// cut shortens s to n runes, marking the cut with an ellipsis.
func cut(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
