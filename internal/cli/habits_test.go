package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/progress"
)

// A .env beside the compose file is read wherever vmctl runs from, as
// docker compose reads it (issue #12).
func TestDotEnvBesideTheComposeFile(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(`services:
  web:
    image: scratch
    volumes:
      - ${DATA_DIR:?variable is not set}:/data
`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".env"), []byte("DATA_DIR=./data\n"), 0o644))

	code, out, errOut := run(t, nil, "-f", filepath.Join(dir, "compose.yaml"), "config")
	require.Equal(t, ExitOK, code, errOut)
	assert.Contains(t, out, filepath.Join(dir, "data"))

	// The shell's value wins over .env's, as in compose.
	code, out, errOut = run(t, map[string]string{"DATA_DIR": "/srv/x"}, "-f", filepath.Join(dir, "compose.yaml"), "config")
	require.Equal(t, ExitOK, code, errOut)
	assert.Contains(t, out, "/srv/x")
}

// compose-go's warnings come out in vmctl's voice, not as logrus lines.
func TestLoaderWarningsInVmctlsVoice(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "compose.yaml")
	require.NoError(t, os.WriteFile(file, []byte("version: \"3\"\nservices:\n  web:\n    image: scratch\n    environment:\n      X: ${UNSET_FOR_TEST}\n"), 0o644))
	code, _, errOut := run(t, nil, "-f", file, "config")
	require.Equal(t, ExitOK, code, errOut)
	assert.Contains(t, errOut, "vmctl: warning: "+file+": the attribute `version` is obsolete")
	assert.Contains(t, errOut, `vmctl: warning: The "UNSET_FOR_TEST" variable is not set`)
	assert.NotContains(t, errOut, "level=")
	assert.NotContains(t, errOut, "time=")
}

// The live view honours NO_COLOR, --no-color, TERM=dumb and the width.
func TestProgressFollowsTheTerminal(t *testing.T) {
	draw := func(env map[string]string, width int, flags ...string) string {
		var errOut bytes.Buffer
		f := NewFactory(&IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &errOut, ErrIsTerminal: true, ErrWidth: func() int { return width }})
		f.LookupEnv = func(k string) (string, bool) { v, ok := env[k]; return v, ok }
		g := &globalOptions{progress: "auto"}
		root := NewRootCmd(f)
		require.NoError(t, root.ParseFlags(flags))
		g.noColor, _ = root.Flags().GetBool("no-color")
		pw, err := g.progressWriter(f)
		require.NoError(t, err)
		pw.Event(progress.Event{Resource: "api", Status: progress.Done, Text: "Built", Detail: strings.Repeat("x", 200)})
		pw.Close()
		return errOut.String()
	}
	live := draw(nil, 80)
	assert.Contains(t, live, "\x1b[32m", "colours on a terminal")
	assert.Contains(t, live, "…", "cut to the width")
	assert.NotContains(t, draw(map[string]string{"NO_COLOR": "1"}, 80), "\x1b[32m")
	assert.NotContains(t, draw(nil, 80, "--no-color"), "\x1b[32m")
	assert.Equal(t, "api Built: "+strings.Repeat("x", 200)+"\n", draw(map[string]string{"TERM": "dumb"}, 80), "dumb: plain lines")
	assert.Equal(t, "api Built: "+strings.Repeat("x", 200)+"\n", draw(nil, 39), "narrow: plain lines")
}

// Completion offers the stack's services and the environments' names.
func TestCompletion(t *testing.T) {
	code, out, _ := run(t, nil, "completion", "bash")
	require.Equal(t, ExitOK, code)
	assert.Contains(t, out, "bash completion V2 for vmctl")

	complete := func(args ...string) []string {
		code, out, errOut := run(t, nil, append([]string{"__complete"}, args...)...)
		require.Equal(t, ExitOK, code, errOut)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		return lines[:len(lines)-1] // the last line is cobra's directive
	}
	assert.Equal(t, []string{"backend", "frontend", "openvoice", "postgres", "redis", "voicevox"}, complete("-f", "../../compose/demo.yaml", "up", ""))
	assert.Equal(t, []string{"openvoice"}, complete("-f", "../../compose/demo.yaml", "logs", "o"))
	assert.Equal(t, []string{"frontend", "postgres", "redis", "voicevox"}, complete("-f", "../../compose/demo.yaml", "build", "backend", "openvoice", ""))

	envs := t.TempDir()
	for _, n := range []string{"dev", "prod", "staging"} {
		require.NoError(t, os.WriteFile(filepath.Join(envs, n+".yaml"), nil, 0o644))
	}
	assert.Equal(t, []string{"dev", "prod", "staging"}, complete("push", "--env-dir", envs, "--env", ""))
	assert.Equal(t, []string{"dev", "staging"}, complete("promote", "--env-dir", envs, "prod", ""))
	assert.Equal(t, []string{"staging"}, complete("diff", "--env-dir", envs, "s"))
	assert.Empty(t, complete("diff", "--env-dir", envs, "dev", "prod", ""))
}
