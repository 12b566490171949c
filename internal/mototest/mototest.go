// Package mototest starts moto_server — an AWS emulator written by others (moto) — for
// tests that need AWS's control-plane semantics from someone other than vmctl: what
// CloudFormation, ECS, CloudWatch Logs and the rest accept, refuse and answer. Each
// server listens on 127.0.0.1 only, serves one account (MOTO_ACCOUNT_ID), and stops
// with the test. Without moto_server the test skips on a developer machine and fails
// when CI is set (make test installs it).
package mototest

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"

	vmaws "github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/dockertest"
)

// Server is one running moto_server.
type Server struct {
	URL     string // http://127.0.0.1:PORT
	Account string
	Region  string
}

// Start runs moto_server for account on a free loopback port and waits until it
// answers. It is stopped, and its output shown on failure, when the test ends.
func Start(t testing.TB, account string) *Server {
	t.Helper()
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set and moto_server is not installed (make test installs it: pip install 'moto[server]'): %v", err)
		}
		t.Skipf("moto_server is not installed: %v", err)
	}
	port := dockertest.FreePort(t)
	var out syncBuffer
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", port)
	cmd.Env = append(os.Environ(), "MOTO_ACCOUNT_ID="+account)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its workers go with it
	if err := cmd.Start(); err != nil {
		t.Fatalf("start moto_server: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("moto_server output:\n%s", out.String())
		}
	})
	s := &Server{URL: "http://127.0.0.1:" + port, Account: account, Region: "ap-northeast-1"}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			return s
		}
		select {
		case err := <-done:
			t.Fatalf("moto_server exited before it answered: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("moto_server did not answer on %s within 60 s:\n%s", s.URL, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Config is an SDK configuration whose clients reach this server, with vmctl's
// retryer, in the server's region.
func (s *Server) Config(t testing.TB) sdkaws.Config {
	t.Helper()
	cfg, err := vmaws.LoadConfig(context.Background(), s.Region, config.WithBaseEndpoint(s.URL),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIAMOTO", "moto", "")))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// syncBuffer collects the server's output from its two streams.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
