// Command vmctl-demo is the one small program behind the bundled demo stack
// and the integration-test fixtures: an HTTP service whose port, health
// delay, response delay and failure mode come from the environment, so the Video Message
// App's topology can run from a FROM-scratch image with nothing pulled.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "healthcheck" {
		os.Exit(healthcheck(os.Args[2]))
	}
	if len(os.Args) == 2 && os.Args[1] == "cuda-check" {
		os.Exit(cudaCheck())
	}
	os.Exit(serve())
}

// healthcheck is the in-container health test: the image has no shell or curl.
func healthcheck(url string) int {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		fmt.Fprintln(os.Stderr, resp.Status)
		return 1
	}
	return 0
}

// cudaCheck stands in for OpenVoice's cuda_check.py: it prints the JSON
// the test or demo puts in DEMO_CUDA_CHECK (a CPU-only host by default) and
// exits as the real check does: 0 ok, 1 not ready.
func cudaCheck() int {
	out := env("DEMO_CUDA_CHECK", `{"torch_version":"2.0.1+cu118","torch_cuda_version":"11.8","cudnn_version":8700,"cudnn_major":8,"cuda_available":false,"device_count":0,"devices":[],"expected":{"cuda":"11.8","cudnn_major":8},"ok":false,"error":"torch sees no CUDA device"}`)
	fmt.Println(out)
	if strings.Contains(out, `"ok":true`) {
		return 0
	}
	return 1
}

func env(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

func serve() int {
	name := env("DEMO_NAME", "demo")
	logf := func(format string, args ...any) {
		fmt.Printf("%s %s: %s\n", time.Now().UTC().Format(time.RFC3339), name, fmt.Sprintf(format, args...))
	}
	delay, err := time.ParseDuration(env("DEMO_HEALTH_DELAY", "0s"))
	if err != nil {
		logf("bad DEMO_HEALTH_DELAY: %v", err)
		return 2
	}
	// DEMO_RESPONSE_DELAY slows every answer, a slow API for latency checks.
	slow, err := time.ParseDuration(env("DEMO_RESPONSE_DELAY", "0s"))
	if err != nil {
		logf("bad DEMO_RESPONSE_DELAY: %v", err)
		return 2
	}
	switch env("DEMO_FAIL", "") {
	case "exit":
		logf("failing on purpose (DEMO_FAIL=exit)")
		return 3
	case "job":
		// A one-shot task (a migration, say) for service_completed_successfully.
		time.Sleep(delay)
		logf("job done")
		code, _ := strconv.Atoi(env("DEMO_EXIT_CODE", "0"))
		return code
	}
	unhealthy := env("DEMO_FAIL", "") == "unhealthy"
	started := time.Now()
	var healthy atomic.Bool

	mux := http.NewServeMux()
	healthPath := env("DEMO_HEALTH_PATH", "/health")
	mux.HandleFunc(healthPath, func(w http.ResponseWriter, r *http.Request) {
		if unhealthy || time.Since(started) < delay {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		if !healthy.Swap(true) {
			logf("healthy after %s", time.Since(started).Round(time.Millisecond))
		}
		if healthPath == "/version" {
			fmt.Fprintf(w, "%q\n", env("DEMO_VERSION", "0.0.0-demo"))
			return
		}
		fmt.Fprintf(w, "{\"status\":\"ok\",\"service\":%q,\"device\":%q}\n", name, env("OPENVOICE_DEVICE", ""))
	})
	if healthPath != "/" {
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s (vmctl demo)\n", name)
		})
	}
	port := env("DEMO_PORT", "8080")
	handler := http.Handler(mux)
	if slow > 0 {
		handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(slow)
			mux.ServeHTTP(w, r)
		})
	}
	srv := &http.Server{Addr: ":" + port, Handler: handler, ReadHeaderTimeout: 5 * time.Second}

	// PID 1 in a scratch image gets no default signal handling: stop fast on SIGTERM.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	logf("listening on :%s (health %s, delay %s, response delay %s)", port, healthPath, delay, slow)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		logf("serve: %v", err)
		return 1
	}
	logf("stopped")
	return 0
}
