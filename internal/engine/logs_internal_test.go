package engine

import (
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
)

// On a terminal a container's line loses its control sequences but keeps
// vmctl's coloured prefix; piped, it is written as the container wrote it.
func TestLineWriterStripsControlSequencesOnATerminal(t *testing.T) {
	const prefix = "\x1b[36mapi | \x1b[0m"
	tests := []struct {
		name  string
		strip bool
		in    string
		want  string
	}{
		{"terminal", true, "\x1b[2J\x1b[Hok \x1b]0;title\x07done\r\npartial\x1b[1A", prefix + "ok done\n" + prefix + "partial\n"},
		{"pipe", false, "\x1b[31mred\x1b[0m\n", prefix + "\x1b[31mred\x1b[0m\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			lw := &lineWriter{w: &out, mu: &sync.Mutex{}, prefix: prefix, strip: tt.strip}
			_, err := lw.Write([]byte(tt.in))
			assert.NoError(t, err)
			lw.Flush()
			assert.Equal(t, tt.want, out.String())
		})
	}
}
