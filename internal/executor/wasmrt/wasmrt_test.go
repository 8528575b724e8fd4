package wasmrt

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/executor/instance"
	"isotope.dev/isotope/internal/fnlog"
	"isotope.dev/isotope/internal/wasm"
)

func memLimit(q string) corev1.ResourceRequirements {
	if q == "" {
		return corev1.ResourceRequirements{}
	}
	return corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(q)}}
}

func TestLimitsFromFunctionThenEnvironment(t *testing.T) {
	cases := []struct {
		fnMem, envMem string
		pages         uint32
		recycle       uint64
		err           string
	}{
		{"", "", 0, 0, ""}, // the wasm package's default, 128 MiB
		{"", "100Mi", 1600, wasm.DefaultMaxMemoryBytes, ""}, // environment's
		{"256Mi", "100Mi", 4096, 128 << 20, ""},             // function's wins, as newdeploy sizes pods
		{"", "1000k", 16, wasm.DefaultMaxMemoryBytes, ""},   // rounded up to whole pages
		{"16Gi", "", 65536, 2 << 30, ""},                    // capped at 4 GiB
		{"1Ki", "", 0, 0, "spec.resources.limits.memory of function default/f is 1Ki"},
	}
	for _, c := range cases {
		f := instance.Function{
			Fn: &v1.Function{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "f"},
				Spec: v1.FunctionSpec{FunctionTimeout: 7, Resources: memLimit(c.fnMem)}},
			Env: &v1.Environment{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "e"},
				Spec: v1.EnvironmentSpec{Resources: memLimit(c.envMem)}},
		}
		lim, err := Limits(f)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("fn %q env %q: err %v, want %q", c.fnMem, c.envMem, err, c.err)
			}
			continue
		}
		if err != nil || lim.MemoryPages != c.pages || lim.MaxMemoryBytes != c.recycle || lim.Timeout.Seconds() != 7 {
			t.Errorf("fn %q env %q: %+v, %v; want %d pages, recycle at %d", c.fnMem, c.envMem, lim, err, c.pages, c.recycle)
		}
	}
}

func TestEnvTakesLiteralContainerEnv(t *testing.T) {
	env := &v1.Environment{Spec: v1.EnvironmentSpec{Runtime: v1.Runtime{Container: &corev1.Container{Env: []corev1.EnvVar{
		{Name: "GREETING", Value: "hi"},
		{Name: "EMPTY"},
		{Name: "FROM_SECRET", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{Key: "k"}}},
		{Name: wasm.EnvEntrypoint, Value: "not from here"},
	}}}}}
	got := Env(env)
	if len(got) != 2 || got["GREETING"] != "hi" || got["EMPTY"] != "" {
		t.Errorf("Env = %v", got)
	}
	if Env(&v1.Environment{}) != nil {
		t.Error("an environment without a container has no variables")
	}
}

// The runtime's lines reach the function log with their stream; the
// host's own ("isotope") as "host", as the text form has them.
func TestLogAdapterStreams(t *testing.T) {
	logs := fnlog.New(fnlog.Limits{})
	a := &logAdapter{logs: logs, ns: "default", name: "f"}
	a.LogLine("stderr", "greeting x")
	a.LogLine("isotope", "function default/f trapped\nwasm stack trace:\n\t.$1()")
	a.Write([]byte("2026-12-06T04:00:00.000000Z default/f stdout: printed\n"))
	var got []string
	for _, l := range logs.Tail("default", "f", 10) {
		got = append(got, l.Stream+": "+l.Text)
	}
	want := []string{"stderr: greeting x", "host: function default/f trapped", "host: wasm stack trace:", "host: \t.$1()", "stdout: printed"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("lines %q, want %q", got, want)
	}
}
