package progress

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func fixedClock() func() time.Time {
	t := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	return func() time.Time { t = t.Add(500 * time.Millisecond); return t }
}

func TestModes(t *testing.T) {
	for _, s := range []string{"auto", "tty", "plain", "json", "quiet"} {
		_, err := ParseMode(s)
		require.NoError(t, err, s)
	}
	_, err := ParseMode("fancy")
	require.EqualError(t, err, `invalid --progress "fancy": use auto, tty, plain, json or quiet`)

	var buf bytes.Buffer
	assert.IsType(t, &plainWriter{}, New(ModeAuto, &buf, false, nil), "piped: plain")
	tty := New(ModeAuto, &buf, true, nil)
	assert.IsType(t, &ttyWriter{}, tty, "terminal: live view")
	tty.Close()
}

func TestPlainLines(t *testing.T) {
	var buf bytes.Buffer
	w := New(ModePlain, &buf, false, fixedClock())
	w.Event(Event{Resource: "backend", Status: Working, Text: "Creating"})
	w.Event(Event{Resource: "backend", Status: Error, Text: "Unhealthy", Detail: "503"})
	w.Close()
	assert.Equal(t, "backend Creating\nbackend Unhealthy: 503\n", buf.String())
}

func TestJSONEvents(t *testing.T) {
	var buf bytes.Buffer
	w := New(ModeJSON, &buf, false, fixedClock())
	w.Event(Event{Resource: "db", Status: Done, Text: "Healthy"})
	w.Close()
	var e Event
	require.NoError(t, json.Unmarshal(buf.Bytes(), &e))
	assert.Equal(t, "db", e.Resource)
	assert.Equal(t, Done, e.Status)
	assert.False(t, e.Time.IsZero(), "stamped by the injected clock")
}

func TestTTYRedrawsOneLinePerResource(t *testing.T) {
	var buf bytes.Buffer
	w := New(ModeTTY, &buf, true, fixedClock())
	w.Event(Event{Resource: "db", Status: Working, Text: "Starting"})
	w.Event(Event{Resource: "api", Status: Working, Text: "Waiting"})
	w.Event(Event{Resource: "db", Status: Done, Text: "Healthy"})
	w.Close()
	out := buf.String()
	assert.Contains(t, out, "\x1b[2A", "moves up over the lines it drew")
	last := out[strings.LastIndex(out, "\x1b[2A"):]
	assert.Contains(t, last, "✔\x1b[0m db  Healthy")
	assert.Contains(t, last, "api Waiting")
}

func TestDiscard(t *testing.T) {
	var buf bytes.Buffer
	w := New(ModeQuiet, &buf, true, nil)
	w.Event(Event{Resource: "x", Text: "y"})
	w.Close()
	assert.Empty(t, buf.String())
}

// visible drops the escape sequences from one drawn line.
func visible(line string) string {
	return regexp.MustCompile("\x1b\\[[0-9;]*[A-Za-z]").ReplaceAllString(line, "")
}

func TestTTYCutsLinesToTheTerminalWidth(t *testing.T) {
	var buf bytes.Buffer
	w := NewWith(ModeTTY, &buf, Options{Terminal: true, Color: true, Width: func() int { return 50 }, Now: fixedClock()})
	w.Event(Event{Resource: "api", Status: Working, Text: "Building", Detail: strings.Repeat("step 3/9: RUN make all ", 10) + "\nsecond\rline\x1b[2J"})
	w.Close()
	for _, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
		v := visible(line)
		assert.LessOrEqual(t, utf8.RuneCountInString(v), 49, "%q", v)
		assert.NotContains(t, v, "\r")
	}
	assert.NotContains(t, buf.String(), "\x1b[2J", "no escapes from build output")
	assert.Contains(t, buf.String(), "…")
}

func TestNoColorDrawsNoColours(t *testing.T) {
	var buf bytes.Buffer
	w := NewWith(ModeTTY, &buf, Options{Terminal: true, Color: false, Now: fixedClock()})
	w.Event(Event{Resource: "db", Status: Done, Text: "Healthy"})
	w.Close()
	assert.NotRegexp(t, "\x1b\\[[0-9;]*m", buf.String())
	assert.Contains(t, buf.String(), "✔ db Healthy")
}

func TestNarrowOrDumbTerminalsGetPlainLines(t *testing.T) {
	var buf bytes.Buffer
	narrow := NewWith(ModeAuto, &buf, Options{Terminal: true, Width: func() int { return 39 }})
	assert.IsType(t, &plainWriter{}, narrow)
	assert.IsType(t, &plainWriter{}, NewWith(ModeAuto, &buf, Options{Terminal: true, Dumb: true}))
	wide := NewWith(ModeAuto, &buf, Options{Terminal: true, Width: func() int { return 40 }})
	defer wide.Close()
	assert.IsType(t, &ttyWriter{}, wide)
}
