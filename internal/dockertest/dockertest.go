// Package dockertest is shared test plumbing for packages whose tests run
// against the real Docker Engine: connecting (skip locally, fail in CI),
// building the FROM-scratch fixture image's context, and free ports.
package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/client"
)

// FixtureImage is the tag the fixture stacks give the demo program's image.
const FixtureImage = "vmctl-fixture:test"

var (
	contextOnce sync.Once
	contextDir  string
	contextErr  error
)

// Client connects to the real engine. Without one the test is skipped on a
// developer machine but fails when CI is set, where the engine must be up.
// Under -short (make unit) every engine test skips, engine or not.
func Client(t testing.TB) *client.Client {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: this test needs the Docker Engine")
	}
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Ping(ctx); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set and the Docker Engine is unreachable: %v", err)
		}
		t.Skipf("no Docker Engine: %v", err)
	}
	return c
}

// RepoRoot is the repository's root directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// FixtureContext builds the demo program (images/demo) into a FROM-scratch
// build context, once per test binary, and returns its directory.
func FixtureContext(t testing.TB) string {
	t.Helper()
	contextOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vmctl-fixture-")
		if err != nil {
			contextErr = err
			return
		}
		src := filepath.Join(RepoRoot(), "images", "demo")
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "vmctl-demo"), ".")
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			contextErr = fmt.Errorf("build the demo program: %v: %s", err, out)
			return
		}
		df, err := os.ReadFile(filepath.Join(src, "Dockerfile"))
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, "Dockerfile"), df, 0o644)
		}
		contextDir, contextErr = dir, err
	})
	if contextErr != nil {
		t.Fatal(contextErr)
	}
	return contextDir
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

var (
	imageOnce sync.Once
	imageErr  error
)

// FixtureImageBuilt builds FixtureImage from FixtureContext, once per test
// binary, for tests that run the demo program without a compose stack.
func FixtureImageBuilt(t testing.TB, api *client.Client) string {
	t.Helper()
	dir := FixtureContext(t)
	imageOnce.Do(func() {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, name := range []string{"Dockerfile", "vmctl-demo"} {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				imageErr = err
				return
			}
			if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(b))}); err != nil {
				imageErr = err
				return
			}
			if _, err := tw.Write(b); err != nil {
				imageErr = err
				return
			}
		}
		if imageErr = tw.Close(); imageErr != nil {
			return
		}
		resp, err := api.ImageBuild(context.Background(), &buf, build.ImageBuildOptions{Tags: []string{FixtureImage}, Remove: true, Version: build.BuilderV1})
		if err != nil {
			imageErr = err
			return
		}
		defer resp.Body.Close()
		var out bytes.Buffer
		_, _ = io.Copy(&out, resp.Body)
		if strings.Contains(out.String(), `"errorDetail"`) {
			imageErr = fmt.Errorf("build %s: %s", FixtureImage, out.String())
		}
	})
	if imageErr != nil {
		t.Fatal(imageErr)
	}
	return FixtureImage
}

// demoBuild remembers the demo program's build, failure included, so every
// test that needs the binary fails after a failed build, not just the first.
var demoBuild = &onceErr{}

// DemoBinary builds images/demo/vmctl-demo in place (as `make demo` does),
// so tests can build compose/demo.yaml on a clean checkout.
func DemoBinary(t testing.TB) {
	t.Helper()
	if err := demoBuild.Do(func() error {
		cmd := exec.Command("go", "build", "-o", "vmctl-demo", ".")
		cmd.Dir = filepath.Join(RepoRoot(), "images", "demo")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build images/demo: %v: %s", err, out)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// onceErr runs a function once and hands its error to every caller.
type onceErr struct {
	once sync.Once
	err  error
}

func (o *onceErr) Do(f func() error) error {
	o.once.Do(func() { o.err = f() })
	return o.err
}
