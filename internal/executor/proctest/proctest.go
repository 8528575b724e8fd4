// Package proctest helps tests of the executor drive real local-process
// environments: it builds the test environment server in
// internal/executor/testdata/envserver once per test binary and makes
// Environment objects that run it.
package proctest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
)

var (
	once    sync.Once
	binPath string
	bin     string
	binErr  error
)

// EnvServer returns the path of the built test environment server,
// building it on first use (one `go build` per test binary).
func EnvServer(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		src := filepath.Join(filepath.Dir(file), "..", "testdata", "envserver", "main.go")
		dir, err := os.MkdirTemp("", "isotope-envserver-")
		if err != nil {
			binErr = err
			return
		}
		binPath = dir
		bin = filepath.Join(dir, "envserver")
		cmd := exec.Command("go", "build", "-o", bin, src)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = &buildError{err: err, out: string(out)}
		}
	})
	if binErr != nil {
		t.Fatalf("build test env server: %v", binErr)
	}
	return bin
}

// Cleanup removes the built server; call it from TestMain after m.Run.
func Cleanup() {
	if binPath != "" {
		os.RemoveAll(binPath)
	}
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + ": " + e.out }

// Environment returns an Environment of the given version whose runtime
// is the test server, with extra container environment variables.
func Environment(t testing.TB, namespace, name string, version int, vars map[string]string) *v1.Environment {
	c := &corev1.Container{Command: []string{EnvServer(t)}}
	for k, v := range vars {
		c.Env = append(c.Env, corev1.EnvVar{Name: k, Value: v})
	}
	return &v1.Environment{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1.APIVersion, Kind: v1.KindEnvironment},
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: v1.EnvironmentSpec{
			Version:  version,
			Runtime:  v1.Runtime{Image: "example.com/test-env:1", Container: c},
			Poolsize: 1,
		},
	}
}

// ProcessGone reports whether no process with pid exists any more (not
// even a zombie waiting to be reaped).
func ProcessGone(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == syscall.ESRCH
}
