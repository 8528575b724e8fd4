package kube_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"isotope.dev/isotope/internal/testing/kubetest"
)

// rbacKinds are the objects of deploy/manifests/isotope.yaml that say who
// may do what; the rest (CRDs, Deployments, Services, the claim) is the
// test's to play, with processes on this machine.
var rbacKinds = []string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}

// applyChartRBAC creates the identities and RBAC rules of the chart's
// default rendering, with the control plane's namespace system.
func applyChartRBAC(t *testing.T, kube *kubetest.Env, system string) {
	t.Helper()
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "deploy", "manifests", "isotope.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: system}}
	if err := kube.Client.Create(kubetest.Context(t), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	n := 0
	for _, doc := range bytes.Split(data, []byte("\n---\n")) {
		var obj map[string]any
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			t.Fatalf("deploy/manifests/isotope.yaml: %v", err)
		}
		u := &unstructured.Unstructured{Object: obj}
		if obj == nil || !slices.Contains(rbacKinds, u.GetKind()) {
			continue
		}
		if err := kube.Client.Create(kubetest.Context(t), u); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create %s %s: %v", u.GetKind(), u.GetName(), err)
		}
		n++
	}
	if n < 10 {
		t.Fatalf("deploy/manifests/isotope.yaml has only %d RBAC objects", n)
	}
}

// impersonating writes a kubeconfig that acts as the ServiceAccount
// namespace/name (the admin of the test control plane may impersonate
// anyone), so a process using it gets exactly that account's rights.
func impersonating(t *testing.T, kube *kubetest.Env, namespace, name string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(kube.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	user := "system:serviceaccount:" + namespace + ":" + name
	for _, ai := range cfg.AuthInfos {
		ai.Impersonate = user
		ai.ImpersonateGroups = []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"}
	}
	path := filepath.Join(t.TempDir(), strings.ReplaceAll(namespace+"-"+name, ":", "-")+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}
