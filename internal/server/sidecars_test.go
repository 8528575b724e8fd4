package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/fetcher"
	"isotope.dev/isotope/internal/store/kubestore"
	"isotope.dev/isotope/internal/store/storetest"
	"isotope.dev/isotope/internal/testing/kubetest"
)

// On Kubernetes the fetcher role reads a function's secrets and config
// maps as core/v1 objects through its store (storeConfig, as RunFetcher
// wires it) and writes them as <dir>/<ns>/<name>/<key> files; a secret
// that does not exist fails the fetch with 404 naming spec.secrets[i].
// Real apiserver, real fetcher handler over loopback HTTP.
func TestFetcherWritesCoreSecretsAndConfigMaps(t *testing.T) {
	env := kubetest.Start(t)
	st, err := kubestore.New(env.Config, kubestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ns := env.Namespace(t, "fetchsec")
	ctx := kubetest.Context(t)
	// Made as kubectl would make them: plain core/v1 objects.
	if err := env.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns},
		Data: map[string][]byte{"password": []byte("s3cret"), "user": []byte("app")}}); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns},
		Data: map[string]string{"mode": "fast"}}); err != nil {
		t.Fatal(err)
	}
	pkg := storetest.MustCreate(t, st, storetest.Sample(v1.KindPackage, ns, "hello-pkg"))

	shared, secretDir, configDir := t.TempDir(), t.TempDir(), t.TempDir()
	f := fetcher.New(fetcher.Config{SharedDir: shared, SecretDir: secretDir, ConfigDir: configDir, Packages: st, Secrets: storeConfig{st}})
	hs := httptest.NewServer(f.Handler())
	defer hs.Close()

	fetch := func(filename string, secrets ...string) (int, string) {
		req := fetcher.FunctionFetchRequest{
			FetchType:  fetcher.FetchDeployment,
			Package:    metav1.ObjectMeta{Namespace: ns, Name: "hello-pkg", ResourceVersion: pkg.GetResourceVersion()},
			Filename:   filename,
			ConfigMaps: []v1.ConfigMapReference{{Namespace: ns, Name: "app"}},
		}
		for _, s := range secrets {
			req.Secrets = append(req.Secrets, v1.SecretReference{Namespace: ns, Name: s})
		}
		b, _ := json.Marshal(req)
		resp, err := http.Post(hs.URL+"/fetch", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	if code, body := fetch("a", "db"); code != http.StatusOK {
		t.Fatalf("fetch: %d %s", code, body)
	}
	for path, want := range map[string]string{
		filepath.Join(secretDir, ns, "db", "password"): "s3cret",
		filepath.Join(secretDir, ns, "db", "user"):     "app",
		filepath.Join(configDir, ns, "app", "mode"):    "fast",
	} {
		if b, err := os.ReadFile(path); err != nil || string(b) != want {
			t.Errorf("%s: %q %v, want %q", path, b, err, want)
		}
	}

	code, body := fetch("b", "db", "missing")
	if code != http.StatusNotFound || !strings.Contains(body, "spec.secrets[1]") || !strings.Contains(body, ns+"/missing") {
		t.Errorf("fetch naming a missing secret: %d %q, want 404 naming spec.secrets[1] and %s/missing", code, body, ns)
	}
}
