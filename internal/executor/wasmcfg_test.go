package executor

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/wasm/wasmtest"
)

// An embedded WebAssembly function gets its Environment's
// runtime.container.env as WASI environment variables, and its memory
// cap from the function's spec.resources.limits.memory, else the
// Environment's.
func TestWasmFunctionGetsEnvironmentVariablesAndMemoryLimit(t *testing.T) {
	wagi, err := wasmtest.BuildWAGI()
	if err != nil {
		t.Fatal(err)
	}
	f, _ := wasmFixture(t)
	ctx := context.Background()
	env := f.create(&v1.Environment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "small"},
		Spec: v1.EnvironmentSpec{
			Version: 3,
			Runtime: v1.Runtime{Image: "isotope/wasm-env", Container: &corev1.Container{Env: []corev1.EnvVar{{Name: "GREETING", Value: "hello from the environment"}}}},
			// Far below what a Go guest needs at start.
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Mi")}},
		},
	}).(*v1.Environment)
	f.create(&v1.Package{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "echo"},
		Spec:       v1.PackageSpec{Environment: v1.EnvironmentReference{Namespace: "default", Name: env.Name}, Deployment: urlArchive(t, wagi)},
		Status:     v1.PackageStatus{BuildStatus: v1.BuildStatusSucceeded},
	})
	inEnv := func(s *v1.FunctionSpec) { s.Environment.Name = env.Name }

	// The environment's 1 MiB (16 pages) applies: the module is refused.
	capped := f.fn("capped", "echo", inEnv)
	_, err = f.m.Acquire(ctx, capped)
	if err == nil || !strings.Contains(err.Error(), "above the function's limit of 16 pages") {
		t.Fatalf("under the environment's 1Mi: %v", err)
	}

	// The function's own limit overrides the environment's.
	roomy := f.fn("roomy", "echo", func(s *v1.FunctionSpec) {
		inEnv(s)
		s.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")}
	})
	body, _ := acquireServe(t, f, roomy, "/")
	if !strings.Contains(body, `"GREETING":"hello from the environment"`) {
		t.Fatalf("the guest did not see the environment's variable: %s", body)
	}
	if !strings.Contains(body, `"ISOTOPE_ENTRYPOINT":"roomy"`) {
		t.Fatalf("ISOTOPE_ENTRYPOINT is not the function's entry point: %s", body)
	}
}
