package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery"
	cachedmemory "k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/executor/proctest"
)

var fissionGV = schema.GroupVersion{Group: v1.FissionGroup, Version: v1.Version}

// fissionObject reads a testdata/fission object (what Fission's CLI v1.21
// sends, see its README) with the placeholders replaced.
func fissionObject(t *testing.T, file string, replace ...string) *unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "fission", file))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.NewReplacer(replace...).Replace(string(data))
	u := &unstructured.Unstructured{}
	if err := json.Unmarshal([]byte(s), &u.Object); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return u
}

// TestFissionClientAgainstEmbeddedAPI drives the embedded API the way
// Fission's CLI v1.21 does: a kubeconfig from `isotope kubeconfig`,
// client-go, and fission.io/v1 objects only, shaped as its env create,
// fn create --code, route create, pkg info and spec apply make them; the
// function then answers through the router (fn test's path and the
// route's).
func TestFissionClientAgainstEmbeddedAPI(t *testing.T) {
	envserver := proctest.EnvServer(t)
	// client-go sends a kubeconfig's token over https only, so a Fission
	// CLI reaches the embedded API over plain http when it needs no token:
	// the loopback API, the default. (The token itself is checked in
	// package apiserver's tests.)
	p := startPlatform(t, "")
	kc := p.ok("kubeconfig")
	cfg, err := clientcmd.RESTConfigFromKubeConfig([]byte(kc))
	if err != nil {
		t.Fatalf("isotope kubeconfig printed no usable kubeconfig: %v\n%s", err, kc)
	}
	if cfg.Host != p.api {
		t.Fatalf("kubeconfig points at %s, want %s:\n%s", cfg.Host, p.api, kc)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Discovery as kubectl and RESTMapper-based clients read it: the
	// aggregated form client-go asks for first, and the legacy one.
	for _, legacy := range []bool{false, true} {
		dc := discovery.NewDiscoveryClientForConfigOrDie(cfg)
		dc.UseLegacyDiscovery = legacy
		_, lists, err := dc.ServerGroupsAndResources()
		if err != nil {
			t.Fatalf("discovery (legacy %v): %v", legacy, err)
		}
		found := map[string]metav1.APIResource{}
		for _, l := range lists {
			if l.GroupVersion == v1.FissionAPIVersion {
				for _, r := range l.APIResources {
					found[r.Name] = r
				}
			}
		}
		for _, k := range v1.Kinds() {
			r, ok := found[k.Plural]
			if k.Core {
				// Secrets and config maps are core/v1 objects to
				// Fission's clients: fission.io/v1 must not claim them.
				if ok {
					t.Errorf("discovery (legacy %v) lists fission.io/v1 %s; Fission reads them as core/v1", legacy, k.Plural)
				}
				continue
			}
			if !ok || r.Kind != k.Kind || !r.Namespaced || !strings.Contains(strings.Join(r.Verbs, ","), "watch") {
				t.Errorf("discovery (legacy %v) of fission.io/v1 %s: %+v", legacy, k.Plural, r)
			}
		}
		if sv, err := dc.ServerVersion(); err != nil || sv.Major != "1" {
			t.Errorf("/version: %+v %v", sv, err)
		}
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(cachedmemory.NewMemCacheClient(discovery.NewDiscoveryClientForConfigOrDie(cfg)))
	dyn := dynamic.NewForConfigOrDie(cfg)
	res := func(kind string) dynamic.ResourceInterface {
		m, err := mapper.RESTMapping(schema.GroupKind{Group: v1.FissionGroup, Kind: kind}, v1.Version)
		if err != nil {
			t.Fatalf("RESTMapping %s: %v", kind, err)
		}
		return dyn.Resource(m.Resource).Namespace("default")
	}
	// kubectl's short names: fn is functions (in one of the two groups).
	short := restmapper.NewShortcutExpander(mapper, discovery.NewDiscoveryClientForConfigOrDie(cfg), nil)
	if r, err := short.ResourceFor(schema.GroupVersionResource{Resource: "fn"}); err != nil || r.Resource != "functions" {
		t.Errorf("short name fn maps to %v, %v", r, err)
	}

	// The core client Fission's CLI also builds: its namespace is there.
	kube := kubernetes.NewForConfigOrDie(cfg)
	if ns, err := kube.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err != nil || ns.Status.Phase != "Active" {
		t.Errorf("GET namespace default: %+v %v", ns, err)
	}
	if _, err := kube.CoreV1().Pods("default").List(ctx, metav1.ListOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("listing pods: %v, want a NotFound Status", err)
	}

	// fission env create: list environments, then create.
	if _, err := res("Environment").List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := res("Environment").Create(ctx, fissionObject(t, "environment.json", "RUNTIME_COMMAND", envserver), metav1.CreateOptions{}); err != nil {
		t.Fatalf("env create: %v", err)
	}
	// fission fn create --code: get the environment, create the package
	// with the code inline, then the function naming its resourceVersion.
	if _, err := res("Environment").Get(ctx, "nodejs", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	code := base64.StdEncoding.EncodeToString([]byte("hello from fission's client"))
	pkg, err := res("Package").Create(ctx, fissionObject(t, "package.json", "LITERAL", code), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("package create: %v", err)
	}
	if pkg.GetAPIVersion() != v1.FissionAPIVersion || pkg.GetKind() != "Package" {
		t.Errorf("package answered as %s %s, want fission.io/v1 Package", pkg.GetAPIVersion(), pkg.GetKind())
	}
	if _, err := res("Function").Create(ctx, fissionObject(t, "function.json", "PKGRV", pkg.GetResourceVersion()), metav1.CreateOptions{}); err != nil {
		t.Fatalf("function create: %v", err)
	}
	// fission route create: get the trigger (must be NotFound), check the
	// function exists, list every trigger for duplicates, create.
	if _, err := res("HTTPTrigger").Get(ctx, "hello", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("get of a missing trigger: %v, want NotFound", err)
	}
	if _, err := dyn.Resource(fissionGV.WithResource("httptriggers")).List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("list triggers in all namespaces: %v", err)
	}
	if _, err := res("HTTPTrigger").Create(ctx, fissionObject(t, "httptrigger.json"), metav1.CreateOptions{}); err != nil {
		t.Fatalf("route create: %v", err)
	}
	if _, err := res("HTTPTrigger").Create(ctx, fissionObject(t, "httptrigger.json"), metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		t.Errorf("creating the trigger twice: %v, want AlreadyExists", err)
	}

	// fission pkg info, with the typed decoding Fission's generated
	// clientset does: the answer must decode as fission.io/v1 Package.
	typed := fissionRESTClient(t, cfg)
	var info v1.Package
	if err := typed.Get().Namespace("default").Resource("packages").Name(pkg.GetName()).Do(ctx).Into(&info); err != nil {
		t.Fatalf("pkg info (typed): %v", err)
	}
	if info.Status.BuildStatus != v1.BuildStatusSucceeded || string(info.Spec.Deployment.Literal) != "hello from fission's client" {
		t.Errorf("pkg info: status %q, literal %q", info.Status.BuildStatus, info.Spec.Deployment.Literal)
	}

	// fission fn test: the router's internal path for the function; the
	// route answers too.
	if body := p.waitServes(t, "/fission-function/default/hello", 200); body != "hello from fission's client" {
		t.Errorf("fn test path answered %q", body)
	}
	if body := p.waitServes(t, "/fission-hello", 200); body != "hello from fission's client" {
		t.Errorf("route answered %q", body)
	}

	// Watch from a list's resourceVersion (an informer's list+watch), see
	// an update and a delete, each as fission.io/v1.
	fns, err := res("Function").List(ctx, metav1.ListOptions{LabelSelector: "team notin (x)"})
	if err != nil || len(fns.Items) != 1 {
		t.Fatalf("list functions with a label selector: %v %v", fns, err)
	}
	w, err := res("Function").Watch(ctx, metav1.ListOptions{ResourceVersion: fns.GetResourceVersion()})
	if err != nil {
		t.Fatalf("watch functions: %v", err)
	}
	defer w.Stop()
	fn := fns.Items[0]
	fn.SetLabels(map[string]string{"team": "a"})
	if _, err := res("Function").Update(ctx, &fn, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update function: %v", err)
	}
	if _, err := res("Function").Update(ctx, &fn, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Errorf("update with a stale resourceVersion: %v, want Conflict", err)
	}
	if l, err := res("Function").List(ctx, metav1.ListOptions{LabelSelector: "team=a"}); err != nil || len(l.Items) != 1 {
		t.Errorf("list team=a: %v %v", l, err)
	}
	expectEvent(t, w, watch.Modified, "hello")

	// fission spec apply: list each kind in all namespaces (the kinds
	// Isotope lacks too: empty), then update what exists (with its
	// resourceVersion) and create what does not.
	for _, plural := range []string{"kuberneteswatchtriggers", "messagequeuetriggers", "timetriggers", "packages"} {
		if _, err := dyn.Resource(fissionGV.WithResource(plural)).List(ctx, metav1.ListOptions{}); err != nil {
			t.Errorf("spec apply: list %s: %v", plural, err)
		}
	}
	for _, o := range []*unstructured.Unstructured{
		fissionObject(t, "environment.json", "RUNTIME_COMMAND", envserver),
		fissionObject(t, "httptrigger.json"),
	} {
		kind := o.GetKind()
		all, err := dyn.Resource(fissionGV.WithResource(strings.ToLower(kind)+"s")).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatalf("spec apply: list %s: %v", kind, err)
		}
		for _, cur := range all.Items {
			if cur.GetName() == o.GetName() {
				o.SetResourceVersion(cur.GetResourceVersion())
			}
		}
		if _, err := res(kind).Update(ctx, o, metav1.UpdateOptions{}); err != nil {
			t.Errorf("spec apply: update %s: %v", kind, err)
		}
	}
	second := fissionObject(t, "httptrigger.json", `"name": "hello", "namespace"`, `"name": "hello2", "namespace"`, "/fission-hello", "/fission-hello2")
	if _, err := res("HTTPTrigger").Create(ctx, second, metav1.CreateOptions{}); err != nil {
		t.Errorf("spec apply: create a new trigger: %v", err)
	}
	if body := p.waitServes(t, "/fission-hello2", 200); body != "hello from fission's client" {
		t.Errorf("applied route answered %q", body)
	}

	// fission fn delete, as client-go sends it (a DeleteOptions body),
	// with a uid precondition that does not match, then one that does.
	cur, err := res("Function").Get(ctx, "hello", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wrong := metav1.Preconditions{UID: ptr(types.UID("0000"))}
	if err := res("Function").Delete(ctx, "hello", metav1.DeleteOptions{Preconditions: &wrong}); !apierrors.IsConflict(err) {
		t.Errorf("delete with a wrong uid precondition: %v, want Conflict", err)
	}
	if err := res("Function").Delete(ctx, "hello", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: ptr(cur.GetUID())}}); err != nil {
		t.Fatalf("delete function: %v", err)
	}
	expectEvent(t, w, watch.Deleted, "hello")
	if _, err := res("Function").Get(ctx, "hello", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get after delete: %v", err)
	}

	// The web guard covers the new paths: a rebinding page's Host and a
	// cross-origin write are refused.
	for _, c := range []struct{ method, path, host, origin string }{
		{"GET", "/apis", "evil.example", ""},
		{"GET", "/api/v1/namespaces/default", "evil.example", ""},
		{"POST", "/apis/fission.io/v1/namespaces/default/environments", "", "http://evil.example"},
	} {
		req, _ := http.NewRequest(c.method, p.api+c.path, strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		if c.host != "" {
			req.Host = c.host
		}
		if c.origin != "" {
			req.Header.Set("Origin", c.origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s %s (Host %q, Origin %q) answered %d, want 403", c.method, c.path, c.host, c.origin, resp.StatusCode)
		}
	}

	// The same objects are Isotope's: the isotope CLI lists them.
	if out := p.ok("route", "list"); !strings.Contains(out, "/fission-hello2") {
		t.Errorf("isotope route list does not show the trigger made through fission.io/v1:\n%s", out)
	}
}

func ptr[T any](v T) *T { return &v }

// fissionRESTClient is a typed client like Fission's generated
// clientset: a REST client for fission.io/v1 whose scheme knows the
// kinds under that group only, so an answer with another apiVersion
// fails to decode.
func fissionRESTClient(t *testing.T, cfg *rest.Config) *rest.RESTClient {
	t.Helper()
	scheme := runtime.NewScheme()
	scheme.AddKnownTypes(fissionGV,
		&v1.Environment{}, &v1.EnvironmentList{}, &v1.Package{}, &v1.PackageList{},
		&v1.Function{}, &v1.FunctionList{}, &v1.HTTPTrigger{}, &v1.HTTPTriggerList{},
		&v1.TimeTrigger{}, &v1.TimeTriggerList{})
	metav1.AddToGroupVersion(scheme, fissionGV)
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &fissionGV
	c.APIPath = "/apis"
	c.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func expectEvent(t *testing.T, w watch.Interface, typ watch.EventType, name string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatalf("watch ended before a %s event for %s", typ, name)
			}
			u, _ := ev.Object.(*unstructured.Unstructured)
			if u == nil {
				t.Fatalf("watch event %s carries %T: %v", ev.Type, ev.Object, ev.Object)
			}
			if u.GetAPIVersion() != v1.FissionAPIVersion {
				t.Errorf("watch event object apiVersion %q, want %s", u.GetAPIVersion(), v1.FissionAPIVersion)
			}
			if ev.Type == typ && u.GetName() == name {
				return
			}
		case <-timeout:
			t.Fatal(fmt.Sprintf("no %s event for %s within 30s", typ, name))
		}
	}
}
