package ecs_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/release"
)

func TestCompareClassifies(t *testing.T) {
	view := func(env string, facts ...ecs.Fact) ecs.View {
		return ecs.View{Environment: env, Services: map[string][]ecs.Fact{"svc": facts}, Managed: map[string]bool{}}
	}
	tests := []struct {
		name string
		a, b ecs.View
		want []ecs.Difference
	}{
		{"equal values are no difference",
			view("a", ecs.Fact{Field: "ports", Value: "80/tcp"}), view("b", ecs.Fact{Field: "ports", Value: "80/tcp", Declared: true}), nil},
		{"a declared side makes the difference declared",
			view("a", ecs.Fact{Field: "cpu", Value: "host's"}), view("b", ecs.Fact{Field: "cpu", Value: "2 vCPU", Declared: true}),
			[]ecs.Difference{{Service: "svc", Field: "cpu", A: "host's", B: "2 vCPU", Class: ecs.Declared}}},
		{"nothing declares it: drift",
			view("a", ecs.Fact{Field: "command", Value: `["a"]`}), view("b", ecs.Fact{Field: "command", Value: `["b"]`}),
			[]ecs.Difference{{Service: "svc", Field: "command", A: `["a"]`, B: `["b"]`, Class: ecs.Drift}}},
		{"present on one side only",
			view("a", ecs.Fact{Field: "env TOKEN_TTL", Value: "set"}), view("b"),
			[]ecs.Difference{{Service: "svc", Field: "env TOKEN_TTL", A: "set", B: "-", Class: ecs.Drift}}},
		{"a digest one side cannot know is never a difference",
			view("a", ecs.Fact{Field: "digest", Unknown: true}), view("b", ecs.Fact{Field: "digest", Value: "sha256:1"}), nil},
		{"two known digests that differ are drift",
			view("a", ecs.Fact{Field: "digest", Value: "sha256:1"}), view("b", ecs.Fact{Field: "digest", Value: "sha256:2"}),
			[]ecs.Difference{{Service: "svc", Field: "digest", A: "sha256:1", B: "sha256:2", Class: ecs.Drift}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := ecs.Compare(tt.a, tt.b)
			if tt.want == nil {
				tt.want = []ecs.Difference{}
			}
			assert.Equal(t, tt.want, rep.Differences)
			drift := 0
			for _, d := range tt.want {
				if d.Class == ecs.Drift {
					drift++
				}
			}
			assert.Equal(t, drift, rep.Drift)
			assert.Equal(t, len(tt.want)-drift, rep.Declared)
		})
	}
}

func TestManagedServicesCompareOnlyHowTheyRun(t *testing.T) {
	a := ecs.View{Environment: "local", Services: map[string][]ecs.Fact{"postgres": {
		{Field: "runs", Value: "docker container"}, {Field: "image", Value: "postgres"}, {Field: "env POSTGRES_PASSWORD", Value: "set"},
	}}}
	b := ecs.View{Environment: "prod", Services: map[string][]ecs.Fact{"postgres": {{Field: "runs", Value: "RDS PostgreSQL", Declared: true}}}, Managed: map[string]bool{"postgres": true}}
	rep := ecs.Compare(a, b)
	assert.Equal(t, []ecs.Difference{{Service: "postgres", Field: "runs", A: "docker container", B: "RDS PostgreSQL", Class: ecs.Declared}}, rep.Differences)
}

// The shipped files are at parity: everything that differs between local, staging and prod
// is asked for by an environment file.
func TestShippedEnvironmentsHaveNoDrift(t *testing.T) {
	st := loadStack(t, stackFile)
	views := map[string]ecs.View{"local": ecs.LocalView(st, loadEnv(t, "local"))}
	for _, name := range []string{"dev", "staging", "prod"} {
		env := loadEnv(t, name)
		plan, err := ecs.Render(st, env, fakeRelease())
		require.NoError(t, err)
		views[name] = ecs.AWSView(st, plan, env)
	}
	find := func(rep ecs.Report, service, field string) ecs.Difference {
		for _, d := range rep.Differences {
			if d.Service == service && d.Field == field {
				return d
			}
		}
		return ecs.Difference{}
	}

	rep := ecs.Compare(views["local"], views["prod"])
	assert.Zero(t, rep.Drift, "%+v", rep.Differences)
	assert.Equal(t, ecs.Difference{Service: "backend", Field: "cpu", A: "host's", B: "2 vCPU", Class: ecs.Declared}, find(rep, "backend", "cpu"))
	assert.Equal(t, ecs.Difference{Service: "backend", Field: "env DATABASE_URL", A: "set", B: "secret", Class: ecs.Declared}, find(rep, "backend", "env DATABASE_URL"))
	assert.Equal(t, ecs.Declared, find(rep, "postgres", "runs").Class)
	assert.Equal(t, ecs.Declared, find(rep, "openvoice", "volume /models").Class)
	assert.Empty(t, find(rep, "openvoice", "gpu").Field, "1 GPU on both sides")
	assert.Empty(t, find(rep, "backend", "health").Field, "the same check on both sides")
	assert.Empty(t, find(rep, "backend", "digest").Field, "local digests are unknown offline")

	rep = ecs.Compare(views["staging"], views["prod"])
	assert.Zero(t, rep.Drift, "%+v", rep.Differences)
	assert.Equal(t, ecs.Difference{Service: ecs.EnvironmentFacts, Field: "strategy", A: "rolling", B: "blue-green", Class: ecs.Declared}, find(rep, ecs.EnvironmentFacts, "strategy"))
	assert.Empty(t, find(rep, "backend", "scaling").Field, "staging is sized like prod")

	rep = ecs.Compare(views["dev"], views["prod"])
	assert.Zero(t, rep.Drift)
	assert.Equal(t, ecs.Difference{Service: "backend", Field: "scaling", A: "1–4 tasks", B: "2–20 tasks", Class: ecs.Declared}, find(rep, "backend", "scaling"))
}

func TestDifferentReleasesAreDrift(t *testing.T) {
	st := loadStack(t, stackFile)
	render := func(env string, rel release.Release) ecs.View {
		e := loadEnv(t, env)
		plan, err := ecs.Render(st, e, rel)
		require.NoError(t, err)
		return ecs.AWSView(st, plan, e)
	}
	next := fakeRelease()
	next.Images["backend"] = release.Image{Digest: fakeDigest("backend v2")}
	rep := ecs.Compare(render("staging", fakeRelease()), render("prod", next))
	assert.Equal(t, 1, rep.Drift)
	for _, d := range rep.Differences {
		if d.Class == ecs.Drift {
			assert.Equal(t, ecs.Difference{Service: "backend", Field: "digest", A: fakeDigest("backend"), B: fakeDigest("backend v2"), Class: ecs.Drift}, d)
		}
	}
}
