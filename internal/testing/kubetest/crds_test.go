package kubetest_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store/storetest"
	"isotope.dev/isotope/internal/testing/kubetest"
)

// Every CRD in deploy/crds is installed, established and carries the
// names, subresources and columns the CLI and kubectl rely on.
func TestCRDsInstalled(t *testing.T) {
	env := kubetest.Start(t)
	shortNames := map[string][]string{v1.KindEnvironment: {"env"}, v1.KindPackage: {"pkg"}, v1.KindFunction: {"fn"}}
	for _, k := range v1.Kinds() {
		if k.Core {
			continue // core/v1 on Kubernetes (decision 0021)
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := env.Client.Get(kubetest.Context(t), types.NamespacedName{Name: k.Plural + "." + v1.Group}, crd); err != nil {
			t.Fatalf("CRD for %s: %v", k.Kind, err)
		}
		established := false
		for _, c := range crd.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				established = true
			}
		}
		if !established {
			t.Errorf("%s: CRD not established: %+v", k.Kind, crd.Status.Conditions)
		}
		if crd.Spec.Names.Kind != k.Kind || crd.Spec.Names.Singular != k.Singular || crd.Spec.Scope != apiextensionsv1.NamespaceScoped {
			t.Errorf("%s: names %+v scope %s", k.Kind, crd.Spec.Names, crd.Spec.Scope)
		}
		for _, sn := range shortNames[k.Kind] {
			if !slices.Contains(crd.Spec.Names.ShortNames, sn) {
				t.Errorf("%s: short names %v lack %q", k.Kind, crd.Spec.Names.ShortNames, sn)
			}
		}
		if len(crd.Spec.Versions) != 1 || crd.Spec.Versions[0].Name != v1.Version {
			t.Fatalf("%s: versions %+v", k.Kind, crd.Spec.Versions)
		}
		ver := crd.Spec.Versions[0]
		if hasStatus := ver.Subresources != nil && ver.Subresources.Status != nil; hasStatus != k.HasStatus {
			t.Errorf("%s: status subresource %v, want %v", k.Kind, hasStatus, k.HasStatus)
		}
		if len(ver.AdditionalPrinterColumns) == 0 {
			t.Errorf("%s: no printer columns", k.Kind)
		}
	}
}

// toUnstructured turns a typed object (or a JSON string) into what the
// apiserver receives, so tests can also send what Go types cannot hold.
func toUnstructured(t *testing.T, obj any) *unstructured.Unstructured {
	t.Helper()
	var data []byte
	switch o := obj.(type) {
	case string:
		data = []byte(o)
	default:
		var err error
		if data, err = json.Marshal(o); err != nil {
			t.Fatal(err)
		}
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(data); err != nil {
		t.Fatalf("%s: %v", data, err)
	}
	return u
}

// wantInvalid checks that err is a 422 whose causes name field.
func wantInvalid(t *testing.T, what string, err error, field string) {
	t.Helper()
	if !apierrors.IsInvalid(err) {
		t.Errorf("%s: got %v, want Invalid", what, err)
		return
	}
	var fields []string
	if st, ok := err.(apierrors.APIStatus); ok && st.Status().Details != nil {
		for _, c := range st.Status().Details.Causes {
			fields = append(fields, c.Field)
		}
	}
	if !slices.Contains(fields, field) {
		t.Errorf("%s: causes %v lack %s (%v)", what, fields, field, err)
	}
}

// The apiserver itself enforces the CRDs' schemas: valid objects of every
// kind are stored; out-of-range, unknown-enum and missing required
// fields are refused and nothing is stored.
func TestCRDValidation(t *testing.T) {
	env := kubetest.Start(t)
	ns := env.Namespace(t, "crd")
	c := env.Client

	for _, s := range storetest.Samples(ns) {
		v1.Default(s)
		v1.SetTypeMeta(s)
		if err := c.Create(kubetest.Context(t), toUnstructured(t, s)); err != nil {
			t.Errorf("valid %s refused: %v", v1.KindOf(s), err)
		}
	}

	env7 := storetest.Sample(v1.KindEnvironment, ns, "seven").(*v1.Environment)
	env7.Spec.Version = 7
	v1.SetTypeMeta(env7)
	wantInvalid(t, "environment version 7", c.Create(kubetest.Context(t), toUnstructured(t, env7)), "spec.version")
	env7.Spec.Version = 0
	wantInvalid(t, "environment version 0", c.Create(kubetest.Context(t), toUnstructured(t, env7)), "spec.version")

	fn := storetest.Sample(v1.KindFunction, ns, "bad-executor").(*v1.Function)
	fn.Spec.InvokeStrategy.ExecutionStrategy.ExecutorType = "fastest"
	v1.SetTypeMeta(fn)
	wantInvalid(t, "unknown ExecutorType", c.Create(kubetest.Context(t), toUnstructured(t, fn)), "spec.InvokeStrategy.ExecutionStrategy.ExecutorType")

	ht := storetest.Sample(v1.KindHTTPTrigger, ns, "bad-ref").(*v1.HTTPTrigger)
	ht.Spec.FunctionReference.Type = "random"
	v1.SetTypeMeta(ht)
	wantInvalid(t, "unknown functionref type", c.Create(kubetest.Context(t), toUnstructured(t, ht)), "spec.functionref.type")

	missing := []struct{ json, field string }{
		{`{"apiVersion":"isotope.dev/v1","kind":"Environment","metadata":{"name":"no-runtime","namespace":"` + ns + `"},"spec":{"version":2}}`, "spec.runtime"},
		{`{"apiVersion":"isotope.dev/v1","kind":"Environment","metadata":{"name":"no-version","namespace":"` + ns + `"},"spec":{"runtime":{"image":"x"}}}`, "spec.version"},
		{`{"apiVersion":"isotope.dev/v1","kind":"Function","metadata":{"name":"no-package","namespace":"` + ns + `"},"spec":{"environment":{"name":"go","namespace":"` + ns + `"},"InvokeStrategy":{}}}`, "spec.package"},
		{`{"apiVersion":"isotope.dev/v1","kind":"Package","metadata":{"name":"no-spec","namespace":"` + ns + `"}}`, "spec"},
		{`{"apiVersion":"isotope.dev/v1","kind":"TimeTrigger","metadata":{"name":"no-cron","namespace":"` + ns + `"},"spec":{"functionref":{"type":"name","name":"hello"}}}`, "spec.cron"},
	}
	for _, m := range missing {
		wantInvalid(t, "missing "+m.field, c.Create(kubetest.Context(t), toUnstructured(t, m.json)), m.field)
	}

	// Only the valid samples were stored.
	for _, k := range v1.Kinds() {
		if k.Core {
			continue // core/v1 on Kubernetes: no CRD, no sample stored here
		}
		list := &unstructured.UnstructuredList{}
		list.SetAPIVersion(v1.APIVersion)
		list.SetKind(k.Kind + "List")
		if err := c.List(kubetest.Context(t), list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != 1 {
			var names []string
			for _, it := range list.Items {
				names = append(names, it.GetName())
			}
			t.Errorf("%s: stored %v, want only the valid sample", k.Kind, names)
		}
	}

	// The status subresource validates too.
	pkg := &unstructured.Unstructured{}
	pkg.SetAPIVersion(v1.APIVersion)
	pkg.SetKind(v1.KindPackage)
	if err := c.Get(kubetest.Context(t), types.NamespacedName{Namespace: ns, Name: "hello-pkg"}, pkg); err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedField(pkg.Object, "exploded", "status", "buildstatus"); err != nil {
		t.Fatal(err)
	}
	wantInvalid(t, "status buildstatus exploded", c.Status().Update(kubetest.Context(t), pkg), "status.buildstatus")
}

// Embedded Kubernetes types (container, podspec, HPA settings) are
// schemaless and keep every field, as Fission's CRDs do; unknown fields
// elsewhere are pruned by the structural schema.
func TestCRDPreservesEmbeddedKubernetesTypes(t *testing.T) {
	env := kubetest.Start(t)
	ns := env.Namespace(t, "crd-embedded")
	doc := `{"apiVersion":"isotope.dev/v1","kind":"Function","metadata":{"name":"podspec","namespace":"` + ns + `"},
	"spec":{"environment":{"name":"go","namespace":"` + ns + `"},
	  "package":{"packageref":{"name":"p","namespace":"` + ns + `"}},
	  "InvokeStrategy":{"ExecutionStrategy":{"ExecutorType":"newdeploy","hpaBehavior":{"scaleDown":{"stabilizationWindowSeconds":30,"futureKnob":true}}}},
	  "podspec":{"containers":[{"name":"c","image":"i","futureField":{"x":1}}],"nodeSelector":{"disk":"ssd"}},
	  "notASpecField":"dropped"}}`
	in := toUnstructured(t, doc)
	if err := env.Client.Create(kubetest.Context(t), in); err != nil {
		t.Fatal(err)
	}
	out := &unstructured.Unstructured{}
	out.SetAPIVersion(v1.APIVersion)
	out.SetKind(v1.KindFunction)
	if err := env.Client.Get(kubetest.Context(t), types.NamespacedName{Namespace: ns, Name: "podspec"}, out); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(out.Object["spec"])
	for _, want := range []string{`"futureField":{"x":1}`, `"futureKnob":true`, `"nodeSelector":{"disk":"ssd"}`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("stored spec lost %s: %s", want, data)
		}
	}
	if strings.Contains(string(data), "notASpecField") {
		t.Errorf("unknown spec field was not pruned: %s", data)
	}
}
