package dockertest

import (
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// fatalRecorder is a testing.TB whose Fatal records and ends the goroutine,
// as the real one does, so a test can see whether a helper failed.
type fatalRecorder struct {
	testing.TB
	mu     sync.Mutex
	failed []string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatal(args ...any) {
	r.mu.Lock()
	r.failed = append(r.failed, fmt.Sprint(args...))
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *fatalRecorder) run(f func(testing.TB)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
}

// A failed build of the demo program fails every test that needs it, not
// only the first one to ask.
func TestDemoBinaryFailureReachesEveryCaller(t *testing.T) {
	saved := demoBuild
	t.Cleanup(func() { demoBuild = saved })
	demoBuild = &onceErr{}
	t.Setenv("GOFLAGS", "-mod=no-such-mode") // makes `go build` fail at once
	r := &fatalRecorder{TB: t}
	r.run(DemoBinary)
	r.run(DemoBinary)
	require.Len(t, r.failed, 2, "both callers must fail")
	require.Contains(t, r.failed[1], "build images/demo")
}

func TestOnceErrRunsOnce(t *testing.T) {
	var o onceErr
	calls := 0
	for range 3 {
		require.EqualError(t, o.Do(func() error { calls++; return fmt.Errorf("boom") }), "boom")
	}
	require.Equal(t, 1, calls)
}
