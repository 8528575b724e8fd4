package fnconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
)

func TestLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cfg")
	s := &v1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "db"}, Data: map[string][]byte{"pw": []byte("x"), ".hidden": []byte("y")}}
	c := &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "app"}, Data: map[string]string{"a.json": "{}"}}
	if err := Write(dir, []*v1.Secret{s}, []*v1.ConfigMap{c}); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"secrets/ns/db/pw": "x", "secrets/ns/db/.hidden": "y", "configs/ns/app/a.json": "{}"} {
		if b, err := os.ReadFile(filepath.Join(dir, p)); err != nil || string(b) != want {
			t.Errorf("%s: %q %v", p, b, err)
		}
	}
	if st, _ := os.Stat(filepath.Join(dir, "secrets", "ns", "db")); st.Mode().Perm() != 0o500 {
		t.Errorf("secret directory mode %v, want 0500", st.Mode().Perm())
	}
	if err := Remove(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("Remove left %s: %v", dir, err)
	}
}

// Names and keys that would leave the directory are refused, whatever
// got past the store's validation, and nothing is written outside it.
func TestTraversalRefused(t *testing.T) {
	base := t.TempDir()
	for _, s := range []*v1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "db"}, Data: map[string][]byte{"../../../escape": []byte("x")}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: ".."}, Data: map[string][]byte{"k": []byte("x")}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "../..", Name: "db"}, Data: map[string][]byte{"k": []byte("x")}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "db"}, Data: map[string][]byte{"a/b": []byte("x")}},
	} {
		err := Write(filepath.Join(base, "cfg"), []*v1.Secret{s}, nil)
		if err == nil || !strings.Contains(err.Error(), "secrets") {
			t.Errorf("%s/%s %v: %v, want a refusal", s.Namespace, s.Name, s.Data, err)
		}
		Remove(filepath.Join(base, "cfg"))
	}
	entries, _ := os.ReadDir(base)
	if len(entries) != 0 {
		t.Errorf("files written outside the directory: %v", entries)
	}
}
