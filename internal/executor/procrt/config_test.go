package procrt_test

import (
	"context"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/executor/proctest"
)

// A local process finds its secrets and config maps under SECRETS_DIR
// and CONFIGS_DIR in Fission's layout, read-only, and Close removes them.
func TestSecretsAndConfigsAsFiles(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	env := proctest.Environment(t, "default", "cfgenv", 2, nil)
	inst, err := f.rt.Start(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	fn := f.function(t, env, []byte("x"))
	meta := metav1.ObjectMeta{Namespace: "default", Name: "db"}
	fn.Secrets = []*v1.Secret{{ObjectMeta: meta, Data: map[string][]byte{"password": []byte("pw")}}}
	fn.ConfigMaps = []*v1.ConfigMap{{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "app"}, Data: map[string]string{"mode": "fast"}}}
	if err := inst.Specialize(ctx, fn); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(inst)
	defer srv.Close()
	for path, want := range map[string]string{
		"$SECRETS_DIR/default/db/password": "pw",
		"$CONFIGS_DIR/default/app/mode":    "fast",
	} {
		if got := get(t, srv.URL+"/?file="+url.QueryEscape(path)); got != want {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
	}
	dir := get(t, srv.URL+"/?env=SECRETS_DIR")
	st, err := os.Stat(filepath.Join(dir, "default", "db", "password"))
	if err != nil || st.Mode().Perm() != 0o400 {
		t.Errorf("secret file: %v %v, want mode 0400", err, st)
	}
	inst.Close()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("after Close the secrets directory is still there: %v", err)
	}
}
