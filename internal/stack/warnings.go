package stack

import (
	"io"
	"sync"

	"github.com/sirupsen/logrus"
)

// logMu serialises loads: compose-go logs its warnings through logrus's
// global logger, so capturing them means borrowing that logger for a while.
var logMu sync.Mutex

// captureWarnings runs load with logrus's standard logger silenced and
// returns the warnings it logged, so that vmctl can say them in its own
// voice instead of as raw `time=… level=warning` lines.
func captureWarnings(load func() error) ([]string, error) {
	logMu.Lock()
	defer logMu.Unlock()
	std := logrus.StandardLogger()
	out, hooks, level := std.Out, std.ReplaceHooks(logrus.LevelHooks{}), std.GetLevel()
	h := &warningHook{}
	std.AddHook(h)
	std.SetOutput(io.Discard)
	if level < logrus.WarnLevel {
		std.SetLevel(logrus.WarnLevel)
	}
	defer func() {
		std.SetOutput(out)
		std.ReplaceHooks(hooks)
		std.SetLevel(level)
	}()
	err := load()
	return h.lines(), err
}

type warningHook struct {
	mu   sync.Mutex
	seen map[string]bool
	msgs []string
}

func (h *warningHook) Levels() []logrus.Level {
	return []logrus.Level{logrus.PanicLevel, logrus.FatalLevel, logrus.ErrorLevel, logrus.WarnLevel}
}

func (h *warningHook) Fire(e *logrus.Entry) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.seen[e.Message] {
		if h.seen == nil {
			h.seen = map[string]bool{}
		}
		h.seen[e.Message] = true
		h.msgs = append(h.msgs, e.Message)
	}
	return nil
}

func (h *warningHook) lines() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.msgs
}
