package kubetest_test

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"isotope.dev/isotope/internal/testing/kubetest"
)

// The versions kubetest looks for are the ones the build script and its
// module pin: a mismatch would make every Kubernetes test fail with
// "run make kube-assets" right after running it.
func TestAssetVersionsMatchBuildScript(t *testing.T) {
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	read := func(rel string) string {
		data, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	gomod := read("hack/kube-assets/go.mod")
	script := read("hack/kube-assets/build.sh")
	for _, c := range []struct{ text, pattern, want string }{
		{gomod, `(?m)^\s*k8s\.io/kubernetes (v\S+)( // indirect)?$`, kubetest.KubernetesVersion},
		{gomod, `(?m)^\s*go\.etcd\.io/etcd/server/v3 (v\S+)( // indirect)?$`, kubetest.EtcdVersion},
		{script, `(?m)^K8S_VERSION=(\S+)$`, kubetest.KubernetesVersion},
		{script, `(?m)^ETCD_VERSION=(\S+)$`, kubetest.EtcdVersion},
	} {
		m := regexp.MustCompile(c.pattern).FindStringSubmatch(c.text)
		if m == nil || m[1] != c.want {
			t.Errorf("%s: got %v, want %s", c.pattern, m, c.want)
		}
	}
	// Every staging module k8s.io/kubernetes replaces locally must be
	// pinned to the matching v0 release.
	staging := "v0" + kubetest.KubernetesVersion[2:]
	for _, m := range regexp.MustCompile(`(?m)^\s*(k8s\.io/\S+) => \S+ (\S+)$`).FindAllStringSubmatch(gomod, -1) {
		if m[2] != staging {
			t.Errorf("replace %s => %s, want %s", m[1], m[2], staging)
		}
	}
}

// Missing binaries fail with the hint that says how to build them.
func TestCheckAssetsNamesTheFix(t *testing.T) {
	t.Setenv("ISOTOPE_KUBE_ASSETS", t.TempDir())
	err := kubetest.CheckAssets(true)
	if err == nil {
		t.Fatal("CheckAssets on an empty directory succeeded")
	}
	for _, want := range []string{kubetest.MissingAssetsHint, "kube-apiserver", "etcd", "kube-scheduler"} {
		if !regexp.MustCompile(regexp.QuoteMeta(want)).MatchString(err.Error()) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
