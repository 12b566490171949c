package infra_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/infra"
)

var update = flag.Bool("update", false, "rewrite the golden templates in testdata/")

// TestGoldenTemplates pins each shipped environment's template: a change to what the stack
// holds shows up in review as a diff of testdata/<env>.template.json.
func TestGoldenTemplates(t *testing.T) {
	st := loadStack(t)
	for _, name := range envNames {
		t.Run(name, func(t *testing.T) {
			got, err := infra.TemplateJSON(render(t, st, loadEnv(t, name)))
			require.NoError(t, err)
			again, err := infra.TemplateJSON(render(t, st, loadEnv(t, name)))
			require.NoError(t, err)
			require.Equal(t, string(got), string(again), "two renders of one environment differ")
			path := filepath.Join("testdata", name+".template.json")
			if *update {
				require.NoError(t, os.WriteFile(path, got, 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "run go test ./internal/infra -run TestGoldenTemplates -update to create it")
			w, g := strings.Split(string(want), "\n"), strings.Split(string(got), "\n")
			for i := range max(len(w), len(g)) {
				if at(w, i) != at(g, i) {
					t.Fatalf("%s differs from the render at line %d:\nwant: %s\n got: %s\nif the change is intended: go test ./internal/infra -run TestGoldenTemplates -update", path, i+1, at(w, i), at(g, i))
				}
			}
		})
	}
}

func at(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return "(end of file)"
}
