package ecs_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/infra"
	"github.com/vmctl/vmctl/internal/release"
	"github.com/vmctl/vmctl/internal/stack"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const (
	stackFile = "../../compose/compose.yaml"
	envDir    = "../../environments"
)

// loadStack loads the real stack; build contexts mean nothing to a render.
func loadStack(t testing.TB, file string) *stack.Stack {
	t.Helper()
	st, err := stack.Load(context.Background(), stack.LoadOptions{
		Files: []string{file},
		Env:   map[string]string{"VMCTL_APP_SOURCE": t.TempDir(), "VMCTL_IMAGES": "/images"},
	})
	require.NoError(t, err)
	return st
}

// loadEnv loads a shipped environment as plan renders it offline: the ids its foundation
// stack supplies are placeholders naming their outputs.
func loadEnv(t testing.TB, name string) *environment.Environment {
	t.Helper()
	env, err := environment.LoadNamed(envDir, name)
	require.NoError(t, err)
	return infra.Offline(env)
}

// liveEnv loads prod as deploy renders it: resolved from its stack's outputs, here fixed ids.
func liveEnv(t testing.TB) *environment.Environment {
	t.Helper()
	env, err := environment.LoadNamed(envDir, "prod")
	require.NoError(t, err)
	outputs := map[string]string{
		infra.OutVPC:                           "vpc-03333333333333333",
		infra.OutPublicSubnets:                 "subnet-03333333333330001,subnet-03333333333330002",
		infra.OutPrivateSubnets:                "subnet-03333333333330011,subnet-03333333333330012",
		infra.OutDatabaseSubnets:               "subnet-03333333333330021,subnet-03333333333330022",
		infra.OutPostgres:                      "vmctl-prod.c0example.ap-northeast-1.rds.amazonaws.com:5432",
		infra.OutRedis:                         "vmctl-prod.example.ng.0001.apne1.cache.amazonaws.com:6379",
		infra.OutFileSystem:                    "fs-03333333333333333",
		infra.OutAccessPoint("voice_profiles"): "fsap-03333333333330001",
		infra.OutAccessPoint("model_cache"):    "fsap-03333333333330002",
	}
	for i, role := range []string{"alb", "frontend", "backend", "voicevox", "openvoice"} {
		outputs[infra.OutSecurityGroup(role)] = fmt.Sprintf("sg-0333333333333000%d", i+1)
	}
	live, err := infra.Resolve(env, outputs)
	require.NoError(t, err)
	return live
}

// fakeDigest is a fixed, well-formed digest per service.
func fakeDigest(service string) string {
	sum := sha256.Sum256([]byte(service))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// fakeRelease pins every service the AWS environments run.
func fakeRelease() release.Release {
	rel := release.Release{ID: "r20260101-1", Revision: "0123456789abcdef0123456789abcdef01234567", Images: map[string]release.Image{}}
	for _, s := range []string{"frontend", "backend", "voicevox", "openvoice"} {
		rel.Images[s] = release.Image{Digest: fakeDigest(s)}
	}
	return rel
}

func TestGolden(t *testing.T) {
	st := loadStack(t, stackFile)
	for _, name := range []string{"dev", "staging", "prod"} {
		t.Run(name, func(t *testing.T) {
			plan, err := ecs.Render(st, loadEnv(t, name), fakeRelease())
			require.NoError(t, err)
			got, err := json.MarshalIndent(plan, "", "  ")
			require.NoError(t, err)
			byValue, err := json.MarshalIndent(*plan, "", "  ")
			require.NoError(t, err)
			require.Equal(t, string(got), string(byValue), "a Plan marshals the same by value")
			got = append(got, '\n')
			path := filepath.Join("testdata", name+".golden.json")
			if *update {
				require.NoError(t, os.WriteFile(path, got, 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "run go test ./internal/ecs -update to create it")
			w, g := strings.Split(string(want), "\n"), strings.Split(string(got), "\n")
			for i := range max(len(w), len(g)) {
				if at(w, i) != at(g, i) {
					t.Fatalf("%s differs from the render at line %d:\nwant: %s\n got: %s\nif the change is intended: go test ./internal/ecs -update", path, i+1, at(w, i), at(g, i))
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
