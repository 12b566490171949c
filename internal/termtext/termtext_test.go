package termtext_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/vmctl/vmctl/internal/termtext"
)

func TestStrip(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain text is kept", "listening on :8080\n", "listening on :8080\n"},
		{"tabs and UTF-8 are kept", "a\tb — ünïcode ✓ 日本", "a\tb — ünïcode ✓ 日本"},
		{"bytes that are not UTF-8 become U+FFFD", "a\xffb", "a\uFFFDb"},
		{"no new character across a dropped control", "\xc2\b\x91", "\uFFFD\uFFFD"},
		{"SGR colour", "\x1b[31merror\x1b[0m done", "error done"},
		{"cursor movement and erase", "ok\x1b[2K\x1b[1A\x1b[?25lfake", "okfake"},
		{"CSI with intermediates", "a\x1b[1 qb", "ab"},
		{"OSC title ended by BEL", "\x1b]0;pwned\x07line", "line"},
		{"OSC hyperlink ended by ST", "\x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\", "click"},
		{"DCS ended by ST", "a\x1bPq#0;2;0;0;0\x1b\\b", "ab"},
		{"unterminated OSC drops the rest", "a\x1b]0;title", "a"},
		{"unterminated CSI at the end", "a\x1b[", "a"},
		{"charset and reset escapes", "\x1b(Ba\x1bcb\x1b7c", "abc"},
		{"escape before a non-final byte", "a\x1b\x1b[1mb", "ab"},
		{"carriage return, backspace and bell", "real\rfake\b\x07!", "realfake!"},
		{"DEL and NUL", "a\x7fb\x00c", "abc"},
		{"8-bit CSI and C1 controls", "a\u009b31mb\u0085c", "abc"},
		{"8-bit OSC ended by 8-bit ST", "a\u009d0;t\u009cb", "ab"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, termtext.Strip(tt.in))
		})
	}
}

func FuzzStrip(f *testing.F) {
	for _, s := range []string{"plain", "\x1b[31mred\x1b[0m", "\x1b]0;t\x07", "a\u009bb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := termtext.Strip(s)
		assert.Equal(t, out, termtext.Strip(out), "stripping twice changes nothing")
		for _, r := range out {
			assert.False(t, (r < 0x20 && r != '\t' && r != '\n') || (r >= 0x7f && r <= 0x9f), "control %U left in %q", r, out)
		}
	})
}
