package environment

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoadRefusesFilesOver1MiB(t *testing.T) {
	tests := []struct {
		name string
		size int
		want string // "" when it loads
	}{
		{"2 MiB", 2 << 20, "2.0 MiB is over the 1 MiB limit for an environment file"},
		{"just over", 1<<20 + 1, "1.0 MiB is over the 1 MiB limit for an environment file"},
		{"1 MiB", 1 << 20, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A valid file padded with a comment: only its size is wrong.
			doc := base + "#" + strings.Repeat("x", tt.size-len(base)-2) + "\n"
			require.Len(t, doc, tt.size)
			path := write(t, doc)
			_, err := Load(path)
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, path+": "+tt.want)
		})
	}
}

// nestedAliases is the "billion laughs": levels anchors, each a list of width aliases
// to the one before, so a few hundred bytes stand for width^levels nodes.
func nestedAliases(indent string, levels, width int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%sl0: &l0 [x, x, x, x, x, x, x, x, x]\n", indent)
	for i := 1; i < levels; i++ {
		fmt.Fprintf(&b, "%sl%d: &l%d [%s]\n", indent, i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*l%d, ", i-1), width), ", "))
	}
	return b.String()
}

// wideAliases stays within the schema: n services alias one whose path_patterns has n
// entries, so the file is O(n) and what it stands for O(n²).
func wideAliases(n int) string {
	var b strings.Builder
	b.WriteString("kind: aws\nservices:\n  s0: &s {load_balancer: {path_patterns: [")
	b.WriteString(strings.TrimSuffix(strings.Repeat(`"/p", `, n), ", "))
	b.WriteString("]}}\n")
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "  s%d: *s\n", i)
	}
	return b.String()
}

func TestLoadRefusesAliasBombs(t *testing.T) {
	tests := []struct {
		name, doc, at string
	}{
		// The count passes 10,000 at the fifth level (9·10 + 9·91 + 9·820 + …) and the
		// error names that line.
		{"nested anchors at the top", "kind: aws\nlol:\n" + nestedAliases("  ", 10, 9), "  l4: "},
		{"nested anchors in a service", edit(t, base, "    environment:\n", "    environment:\n"+nestedAliases("      ", 10, 9)), "      l4: "},
		// 3,000 path patterns, then each alias of them is 3,003 nodes: s4 passes.
		{"many aliases of a big service", wideAliases(3000), "  s4: *s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Less(t, len(tt.doc), 256<<10, "the file is small")
			path := write(t, tt.doc)
			_, err := Load(path)
			require.EqualError(t, err, fmt.Sprintf("%s:%d: its aliases stand for over 10000 nodes: write the values out, or alias less", path, lineOf(t, tt.doc, tt.at)))
		})
	}
}

func TestLoadAllowsAFewAliases(t *testing.T) {
	doc := edit(t, base, "    health: {path: /health}\n", "    health: *health\n")
	doc = edit(t, doc, "    health: {path: /health, grace_period: 30s}", "    health: &health {path: /health, grace_period: 30s}")
	e, err := Load(write(t, doc))
	require.NoError(t, err)
	assert.Equal(t, e.Services["backend"].Health, e.Services["openvoice"].Health)
}

func TestLoadRefusesANonRegularFileOver1MiB(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "zero.yaml")
	require.NoError(t, os.Symlink("/dev/zero", path))
	_, err := Load(path)
	require.EqualError(t, err, path+": 1.0 MiB is over the 1 MiB limit for an environment file")
}
