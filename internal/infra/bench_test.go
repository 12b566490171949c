package infra_test

import (
	"testing"

	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/infra"
)

// BenchmarkTemplateProd is `vmctl infra template --env prod` without the process and the
// stack loading: load the environment file, render the plan and the template, marshal.
func BenchmarkTemplateProd(b *testing.B) {
	st := loadStack(b)
	for b.Loop() {
		env, err := environment.LoadNamed(envDir, "prod")
		if err != nil {
			b.Fatal(err)
		}
		tmpl, err := infra.Render(env, planFor(b, st, env))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := infra.TemplateJSON(tmpl); err != nil {
			b.Fatal(err)
		}
	}
}
