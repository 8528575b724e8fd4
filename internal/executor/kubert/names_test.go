package kubert_test

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/executor/kubert"
)

// Fission's naming rules, including its truncation of long names; every
// name is a valid DNS label (≤ 63, lowercase, no trailing '-').
func TestNames(t *testing.T) {
	env := &v1.Environment{ObjectMeta: metav1.ObjectMeta{Name: "Go", Namespace: "default", ResourceVersion: "1234"}}
	if got := kubert.PoolName(env); got != "poolmgr-go-default-1234" {
		t.Errorf("PoolName = %q", got)
	}
	env.Name, env.Namespace = strings.Repeat("e", 30), strings.Repeat("n", 30)
	if got, want := kubert.PoolName(env), "poolmgr-"+strings.Repeat("e", 18)+"-"+strings.Repeat("n", 18)+"-1234"; got != want {
		t.Errorf("long PoolName = %q, want %q", got, want)
	}
	fn := &v1.Function{ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default", UID: "0a1b2c3d-4e5f-6789-abcd-ef0123456789"}}
	if got := kubert.NewdeployName(fn); got != "newdeploy-hello-default-abcd-ef0123456789" {
		t.Errorf("NewdeployName = %q", got)
	}
	fn.Name, fn.Namespace = strings.Repeat("f", 40), strings.Repeat("n", 40)
	got := kubert.NewdeployName(fn)
	if len(got) > 63 || strings.HasSuffix(got, "-") || got != "newdeploy-"+strings.Repeat("f", 17)+"-"+strings.Repeat("n", 17)+"-"+"abcd-ef0123456789" {
		t.Errorf("long NewdeployName = %q (%d characters)", got, len(got))
	}
}
