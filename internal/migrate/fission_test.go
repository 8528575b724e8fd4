package migrate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/migrate"
	"isotope.dev/isotope/internal/store"
	"isotope.dev/isotope/internal/store/kubestore"
	"isotope.dev/isotope/internal/testing/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

func fgvr(plural string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: v1.FissionGroup, Version: v1.Version, Resource: plural}
}

func create(t *testing.T, dyn dynamic.Interface, plural, ns, doc string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := json.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatalf("%s: %v", plural, err)
	}
	out, err := dyn.Resource(fgvr(plural)).Namespace(ns).Create(context.Background(), u, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create fission.io/v1 %s: %v", plural, err)
	}
	return out
}

// A cluster with Fission's CRDs and objects is migrated: a dry run
// writes nothing, --apply copies every supported object (a Package's
// build status, a Function's packageref pointing at the migrated
// Package), a second run changes nothing, a changed Fission object is
// updated, Fission's own objects stay as they were, kinds Isotope lacks
// are skipped and an object Isotope refuses is named.
func TestMigrateFission(t *testing.T) {
	env := kubetest.Start(t)
	if _, err := envtest.InstallCRDs(env.Config, envtest.CRDInstallOptions{Paths: []string{filepath.Join("testdata", "fission-crds.yaml")}, ErrorIfPathMissing: true}); err != nil {
		t.Fatalf("install the Fission CRDs (test data): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dyn := dynamic.NewForConfigOrDie(env.Config)
	st, err := kubestore.New(env.Config, kubestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ns := env.Namespace(t, "migrate")
	create(t, dyn, "environments", ns, `{"apiVersion":"fission.io/v1","kind":"Environment","metadata":{"name":"nodejs","labels":{"team":"a"}},
		"spec":{"version":3,"runtime":{"image":"fission/node-env"},"builder":{},"resources":{},"poolsize":3,"keeparchive":false,"imagepullsecret":""}}`)
	pkg := create(t, dyn, "packages", ns, `{"apiVersion":"fission.io/v1","kind":"Package","metadata":{"name":"hello-pkg"},
		"spec":{"environment":{"name":"nodejs","namespace":"`+ns+`"},"source":{"checksum":{}},"deployment":{"type":"literal","literal":"aGVsbG8=","checksum":{}}},
		"status":{"buildstatus":"succeeded","lastUpdateTimestamp":"2026-12-05T12:00:00Z"}}`)
	create(t, dyn, "functions", ns, `{"apiVersion":"fission.io/v1","kind":"Function","metadata":{"name":"hello"},
		"spec":{"environment":{"name":"nodejs","namespace":"`+ns+`"},"package":{"packageref":{"name":"hello-pkg","namespace":"`+ns+`","resourceversion":"`+pkg.GetResourceVersion()+`"}},
		"resources":{},"InvokeStrategy":{"ExecutionStrategy":{"ExecutorType":"poolmgr","MinScale":0,"MaxScale":0,"TargetCPUPercent":0,"SpecializationTimeout":120},"StrategyType":"execution"},"functionTimeout":60}}`)
	create(t, dyn, "httptriggers", ns, `{"apiVersion":"fission.io/v1","kind":"HTTPTrigger","metadata":{"name":"hello"},
		"spec":{"host":"","relativeurl":"/hello","prefix":"","method":"","methods":["GET"],"functionref":{"type":"name","name":"hello","functionweights":null},"createingress":false,"ingressconfig":{"annotations":null,"path":"/hello","host":"*","tls":""}}}`)
	create(t, dyn, "timetriggers", ns, `{"apiVersion":"fission.io/v1","kind":"TimeTrigger","metadata":{"name":"tick"},
		"spec":{"cron":"@every 1m","functionref":{"type":"name","name":"hello","functionweights":null}}}`)
	create(t, dyn, "canaryconfigs", ns, `{"apiVersion":"fission.io/v1","kind":"CanaryConfig","metadata":{"name":"c"},
		"spec":{"trigger":"hello","newfunction":"a","oldfunction":"b","weightincrement":10,"duration":"1m","failurethreshold":10}}`)
	fissionEnv, err := dyn.Resource(fgvr("environments")).Namespace(ns).Get(ctx, "nodejs", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	run := func(apply bool) (*migrate.Result, string) {
		t.Helper()
		var out bytes.Buffer
		res, err := migrate.Fission(ctx, dyn, st, migrate.Options{Namespace: ns, Apply: apply}, &out)
		if err != nil {
			t.Fatalf("migrate (apply %v): %v\n%s", apply, err, out.String())
		}
		return res, out.String()
	}

	res, out := run(false)
	if res.Counts[migrate.Create] != 6 || len(res.Failed) != 0 || !strings.Contains(out, "would create") {
		t.Fatalf("dry run: %+v\n%s", res, out)
	}
	if objs, _, err := st.List(ctx, v1.KindEnvironment, store.ListOptions{Namespace: ns}); err != nil || len(objs) != 0 {
		t.Fatalf("the dry run wrote %d environments (%v)", len(objs), err)
	}

	res, out = run(true)
	if res.Counts[migrate.Create] != 6 || len(res.Failed) != 0 || !strings.Contains(out, "CanaryConfig "+ns+"/c: created") {
		t.Fatalf("apply: %+v\n%s", res, out)
	}
	e, err := st.Get(ctx, v1.KindEnvironment, ns, "nodejs")
	if err != nil || e.GetLabels()["team"] != "a" || e.(*v1.Environment).Spec.Runtime.Image != "fission/node-env" {
		t.Errorf("migrated environment: %+v %v", e, err)
	}
	p, err := st.Get(ctx, v1.KindPackage, ns, "hello-pkg")
	if err != nil || p.(*v1.Package).Status.BuildStatus != v1.BuildStatusSucceeded || string(p.(*v1.Package).Spec.Deployment.Literal) != "hello" {
		t.Fatalf("migrated package: %+v %v", p, err)
	}
	fn, err := st.Get(ctx, v1.KindFunction, ns, "hello")
	if err != nil || fn.(*v1.Function).Spec.Package.PackageRef.ResourceVersion != p.GetResourceVersion() {
		t.Errorf("migrated function's packageref: %+v %v (package at %s)", fn, err, p.GetResourceVersion())
	}
	if c, err := st.Get(ctx, v1.KindCanaryConfig, ns, "c"); err != nil || c.(*v1.CanaryConfig).Spec.WeightIncrement != 10 || c.(*v1.CanaryConfig).Spec.WeightIncrementDuration != "1m" {
		t.Errorf("migrated canary config: %+v %v", c, err)
	}
	for _, k := range []string{v1.KindHTTPTrigger, v1.KindTimeTrigger} {
		if _, err := st.Get(ctx, k, ns, map[string]string{v1.KindHTTPTrigger: "hello", v1.KindTimeTrigger: "tick"}[k]); err != nil {
			t.Errorf("migrated %s: %v", k, err)
		}
	}

	// Idempotent: nothing changes on a second run.
	if res, out = run(true); res.Counts[migrate.Unchanged] != 6 || res.Counts[migrate.Create]+res.Counts[migrate.Update] != 0 {
		t.Errorf("second run: %+v\n%s", res, out)
	}
	// A changed Fission object is updated, the rest left alone.
	fissionEnv.Object["spec"].(map[string]any)["runtime"].(map[string]any)["image"] = "fission/node-env:2"
	if _, err := dyn.Resource(fgvr("environments")).Namespace(ns).Update(ctx, fissionEnv, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if res, out = run(true); res.Counts[migrate.Update] != 1 || res.Counts[migrate.Unchanged] != 5 {
		t.Errorf("run after a change: %+v\n%s", res, out)
	}
	if e, err := st.Get(ctx, v1.KindEnvironment, ns, "nodejs"); err != nil || e.(*v1.Environment).Spec.Runtime.Image != "fission/node-env:2" {
		t.Errorf("updated environment: %+v %v", e, err)
	}
	// Fission's objects are untouched.
	after, err := dyn.Resource(fgvr("packages")).Namespace(ns).Get(ctx, "hello-pkg", metav1.GetOptions{})
	if err != nil || after.GetResourceVersion() != pkg.GetResourceVersion() {
		t.Errorf("the Fission package changed: %v %v", after, err)
	}

	// An object Isotope refuses (a trigger on the router's own health
	// path) is named and not written; the others still migrate.
	bad := env.Namespace(t, "migrate-bad")
	create(t, dyn, "httptriggers", bad, `{"apiVersion":"fission.io/v1","kind":"HTTPTrigger","metadata":{"name":"health"},
		"spec":{"host":"","relativeurl":"/router-healthz","method":"GET","functionref":{"type":"name","name":"x"},"createingress":false,"ingressconfig":{"annotations":null,"path":"","host":"","tls":""}}}`)
	create(t, dyn, "timetriggers", bad, `{"apiVersion":"fission.io/v1","kind":"TimeTrigger","metadata":{"name":"tick"},"spec":{"cron":"@every 1m","functionref":{"type":"name","name":"x"}}}`)
	var buf bytes.Buffer
	res, err = migrate.Fission(ctx, dyn, st, migrate.Options{Namespace: bad, Apply: true}, &buf)
	if err != nil || len(res.Failed) != 1 || res.Failed[0] != "HTTPTrigger "+bad+"/health" || !strings.Contains(buf.String(), "relativeurl") {
		t.Errorf("invalid object: %+v %v\n%s", res, err, buf.String())
	}
	if _, err := st.Get(ctx, v1.KindHTTPTrigger, bad, "health"); !store.IsNotFound(err) {
		t.Errorf("the refused trigger was written: %v", err)
	}
	if _, err := st.Get(ctx, v1.KindTimeTrigger, bad, "tick"); err != nil {
		t.Errorf("the valid object next to a refused one: %v", err)
	}
}
