package ecs_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/stack"
)

// BenchmarkPlanProd is `vmctl plan --env prod --output json` without the process: load the
// compose stack and the environment file, render, marshal.
func BenchmarkPlanProd(b *testing.B) {
	rel := fakeRelease()
	env := map[string]string{"VMCTL_APP_SOURCE": b.TempDir(), "VMCTL_IMAGES": "/images"}
	for b.Loop() {
		st, err := stack.Load(context.Background(), stack.LoadOptions{Files: []string{stackFile}, Env: env})
		if err != nil {
			b.Fatal(err)
		}
		e, err := environment.LoadNamed(envDir, "prod")
		if err != nil {
			b.Fatal(err)
		}
		plan, err := ecs.Render(st, e, rel)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := json.Marshal(plan); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRenderProd is the render alone, on an already loaded stack and environment.
func BenchmarkRenderProd(b *testing.B) {
	st, e, rel := loadStack(b, stackFile), loadEnv(b, "prod"), fakeRelease()
	for b.Loop() {
		if _, err := ecs.Render(st, e, rel); err != nil {
			b.Fatal(err)
		}
	}
}
