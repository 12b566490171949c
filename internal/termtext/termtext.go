// Package termtext makes text that vmctl did not write (container output,
// CloudWatch Logs lines) safe to print on a terminal: a line that carries
// escape sequences could otherwise move the cursor, retitle the window,
// rewrite what vmctl printed before it or hide a line from the reader.
package termtext

import "unicode/utf8"

const (
	esc = 0x1b
	bel = 0x07
	csi = 0x9b // the 8-bit form of ESC [
	st  = 0x9c // the 8-bit string terminator
)

// Strip drops terminal control sequences from s: CSI (ESC [ … final byte),
// OSC and the other string commands (ESC ] P X ^ _ … up to BEL or ESC \),
// other escapes, and every C0 and C1 control character except tab and
// newline. Plain text, UTF-8 included, is kept byte for byte, bytes that
// are not UTF-8 become U+FFFD, and a sequence the line ends inside of is
// dropped to the end of the line.
func Strip(s string) string {
	if clean(s) {
		return s // the common case costs no allocation
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == esc:
			i = skipEscape(s, i+1)
		case r == csi:
			i = skipCSI(s, i+size)
		case r == 0x90 || r == 0x98 || r == 0x9d || r == 0x9e || r == 0x9f: // DCS SOS OSC PM APC
			i = skipString(s, i+size)
		case r == utf8.RuneError && size == 1:
			// A stray byte could join with the next one once the control
			// between them is gone; print what a terminal would.
			out = append(out, "\uFFFD"...)
			i++
		case r == '\t' || r == '\n':
			out = append(out, s[i])
			i++
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f):
			i += size
		default:
			out = append(out, s[i:i+size]...)
			i += size
		}
	}
	return string(out)
}

// clean reports whether s has nothing Strip would drop.
func clean(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if (r < 0x20 && r != '\t' && r != '\n') || (r >= 0x7f && r <= 0x9f) {
			return false
		}
	}
	return true
}

// skipEscape returns the index after the escape sequence whose ESC ends at i-1.
func skipEscape(s string, i int) int {
	if i >= len(s) {
		return i
	}
	switch s[i] {
	case '[':
		return skipCSI(s, i+1)
	case ']', 'P', 'X', '^', '_':
		return skipString(s, i+1)
	}
	// Other escapes (ESC c, ESC ( B): intermediates 0x20–0x2F, then a final
	// byte 0x30–0x7E; anything else is left for the caller to judge.
	for i < len(s) && s[i] >= 0x20 && s[i] <= 0x2f {
		i++
	}
	if i < len(s) && s[i] >= 0x30 && s[i] <= 0x7e {
		i++
	}
	return i
}

// skipCSI returns the index after a CSI's parameter and intermediate bytes
// and its final byte (0x40–0x7E); anything else ends it early.
func skipCSI(s string, i int) int {
	for i < len(s) && s[i] >= 0x20 && s[i] <= 0x3f {
		i++
	}
	if i < len(s) && s[i] >= 0x40 && s[i] <= 0x7e {
		i++
	}
	return i
}

// skipString returns the index after a string command's terminator: BEL,
// ESC \ or the 8-bit ST; without one, the end of s.
func skipString(s string, i int) int {
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == bel || r == st:
			return i + size
		case r == esc && i+1 < len(s) && s[i+1] == '\\':
			return i + 2
		}
		i += size
	}
	return i
}
