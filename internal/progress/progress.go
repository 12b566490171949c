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
	if now == nil {
		now = time.Now
	}
	if mode == ModeAuto {
		mode = ModePlain
		if isTerminal {
			mode = ModeTTY
		}
	}
	switch mode {
	case ModeJSON:
		return &jsonWriter{enc: json.NewEncoder(w), now: now}
	case ModeTTY:
		return newTTY(w, now)
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

func newTTY(w io.Writer, now func() time.Time) *ttyWriter {
	t := &ttyWriter{w: w, now: now, lines: map[string]*ttyLine{}, stop: make(chan struct{}), stopped: make(chan struct{})}
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
		fmt.Fprintf(&b, "\x1b[2K %s%s\x1b[0m %-*s %s \x1b[2m%.1fs\x1b[0m\n", color, mark, width, r, text, end.Sub(l.start).Seconds())
	}
	t.drawn = len(t.order)
	_, _ = io.WriteString(t.w, b.String())
}
