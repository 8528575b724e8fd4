package apiserver_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/apiserver"
	"isotope.dev/isotope/internal/store"
	"isotope.dev/isotope/internal/store/boltstore"
)

const fbase = "/apis/fission.io/v1/namespaces/default/"

func (f *fixture) get(t *testing.T, path, accept string) (int, string, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", f.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), data
}

// Discovery answers both forms client-go understands: aggregated v2 when
// its Accept asks for it (the response's Content-Type says so), the
// legacy lists otherwise; unknown groups and versions are 404 Status.
func TestDiscoveryNegotiation(t *testing.T) {
	f := newFixture(t, boltstore.Options{}, apiserver.Options{Token: token})
	aggAccept := discovery.AcceptV2 + "," + discovery.AcceptV1

	code, ct, body := f.get(t, "/apis", aggAccept)
	var agg apidiscoveryv2.APIGroupDiscoveryList
	if err := json.Unmarshal(body, &agg); code != 200 || err != nil || !strings.Contains(ct, "as=APIGroupDiscoveryList") {
		t.Fatalf("aggregated /apis: %d %s %v %s", code, ct, err, body)
	}
	var names []string
	for _, g := range agg.Items {
		names = append(names, g.Name)
		want := len(v1.Kinds())
		if g.Name == v1.FissionGroup {
			want += len(v1.FissionOnlyKinds) - 2 // no secrets, configmaps
		}
		if len(g.Versions) != 1 || len(g.Versions[0].Resources) != want {
			t.Errorf("aggregated group %s: %+v", g.Name, g.Versions)
		}
	}
	if strings.Join(names, ",") != "isotope.dev,fission.io" {
		t.Errorf("aggregated groups %v", names)
	}
	code, ct, body = f.get(t, "/apis", "application/json")
	var groups metav1.APIGroupList
	if err := json.Unmarshal(body, &groups); code != 200 || err != nil || ct != "application/json" || len(groups.Groups) != 2 {
		t.Errorf("legacy /apis: %d %s %v %s", code, ct, err, body)
	}
	// v2beta1 alone is not served: the plain answer, which clients take.
	if _, ct, _ := f.get(t, "/apis", "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"); ct != "application/json" {
		t.Errorf("v2beta1 request answered %s", ct)
	}
	if code, ct, body = f.get(t, "/api", aggAccept); code != 200 || !strings.Contains(ct, "as=APIGroupDiscoveryList") || !strings.Contains(string(body), `"namespaces"`) {
		t.Errorf("aggregated /api: %d %s %s", code, ct, body)
	}
	code, _, body = f.get(t, "/apis/fission.io/v1", "")
	var rl metav1.APIResourceList
	if err := json.Unmarshal(body, &rl); code != 200 || err != nil || rl.GroupVersion != "fission.io/v1" {
		t.Fatalf("/apis/fission.io/v1: %d %v %s", code, err, body)
	}
	byName := map[string]metav1.APIResource{}
	for _, r := range rl.APIResources {
		byName[r.Name] = r
	}
	if fn := byName["functions"]; fn.Kind != "Function" || !fn.Namespaced || strings.Join(fn.Verbs, ",") != "create,delete,get,list,update,watch" || strings.Join(fn.ShortNames, ",") != "fn" {
		t.Errorf("functions resource: %+v", fn)
	}
	if _, ok := byName["functions/status"]; !ok {
		t.Errorf("no functions/status subresource in %v", byName)
	}
	if code, _, body = f.get(t, "/apis/fission.io", ""); code != 200 || !strings.Contains(string(body), `"preferredVersion":{"groupVersion":"fission.io/v1"`) {
		t.Errorf("/apis/fission.io: %d %s", code, body)
	}
	if code, _, body = f.get(t, "/version", ""); code != 200 || !strings.Contains(string(body), `"gitVersion":"v1.`) {
		t.Errorf("/version: %d %s", code, body)
	}

	for _, p := range []string{"/apis/fission.io/v2", "/apis/fission.io/v2/namespaces/default/functions", "/apis/example.com/v1", "/apis/example.com/v1/namespaces/default/functions", base + "kuberneteswatchtriggers", "/openapi/v2", "/api/v2"} {
		code, body := f.call(t, "GET", p, "")
		status(t, code, body, http.StatusNotFound, store.ReasonNotFound)
	}
	code, body = f.call(t, "POST", "/apis", `{}`)
	status(t, code, body, http.StatusMethodNotAllowed, store.ReasonMethodNotAllowed)
	for _, p := range []string{"/version", "/apis", "/api", "/apis/fission.io/v1", "/api/v1/namespaces/default"} {
		code, body := f.callTok(t, "GET", p, "", "")
		status(t, code, body, http.StatusUnauthorized, store.ReasonUnauthorized)
	}
}

// The core group serves namespaces only, read-only.
func TestCoreNamespaces(t *testing.T) {
	f := newFixture(t, boltstore.Options{}, apiserver.Options{Token: token})
	env := `{"apiVersion":"fission.io/v1","kind":"Environment","metadata":{"name":"e"},"spec":{"version":1,"runtime":{"image":"x/isotope/wasm-env"},"builder":{},"resources":{},"keeparchive":false,"imagepullsecret":""}}`
	if code, body := f.call(t, "POST", "/apis/fission.io/v1/namespaces/team-a/environments", env); code != 201 {
		t.Fatalf("create in team-a: %d %s", code, body)
	}
	code, _, body := f.get(t, "/api/v1/namespaces", "")
	if code != 200 || !strings.Contains(string(body), `"name":"default"`) || !strings.Contains(string(body), `"name":"team-a"`) {
		t.Errorf("namespaces list: %d %s", code, body)
	}
	if code, _, body := f.get(t, "/api/v1/namespaces/anything", ""); code != 200 || !strings.Contains(string(body), `"phase":"Active"`) {
		t.Errorf("GET a namespace: %d %s", code, body)
	}
	for _, tc := range []struct {
		method, path string
		code         int
		reason       store.Reason
	}{
		{"GET", "/api/v1/namespaces/Not_A_Name", 404, store.ReasonNotFound},
		{"GET", "/api/v1/pods", 404, store.ReasonNotFound},
		{"GET", "/api/v1/namespaces/default/services", 404, store.ReasonNotFound},
		{"GET", "/api/v1/namespaces/default/secrets/s", 404, store.ReasonNotFound},
		{"POST", "/api/v1/namespaces", 405, store.ReasonMethodNotAllowed},
		{"DELETE", "/api/v1/namespaces/default", 405, store.ReasonMethodNotAllowed},
		{"GET", "/api/v1/namespaces?watch=true", 405, store.ReasonMethodNotAllowed},
	} {
		code, body := f.call(t, tc.method, tc.path, "")
		status(t, code, body, tc.code, tc.reason)
	}
}

// Hostile writes to fission.io/v1 are refused with a Status naming the
// problem and store nothing; a delete with a malformed DeleteOptions body
// deletes nothing.
func TestFissionGroupRefusesBadInput(t *testing.T) {
	f := newFixture(t, boltstore.Options{}, apiserver.Options{Token: token, MaxBodyBytes: 4 << 10})
	fn := func(name string) string {
		return `{"apiVersion":"fission.io/v1","kind":"Function","metadata":{"name":"` + name + `"},"spec":{"environment":{"name":"e","namespace":"default"},"package":{"packageref":{"name":"p","namespace":"default"}},"resources":{},"InvokeStrategy":{"ExecutionStrategy":{"ExecutorType":"poolmgr","MinScale":0,"MaxScale":0,"TargetCPUPercent":0,"SpecializationTimeout":120},"StrategyType":"execution"}}}`
	}
	if code, body := f.call(t, "POST", fbase+"functions", fn("ok")); code != 201 || !strings.Contains(string(body), `"apiVersion":"fission.io/v1"`) {
		t.Fatalf("create: %d %s", code, body)
	}
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		reason                   store.Reason
		field                    string
	}{
		{"malformed JSON", "POST", fbase + "functions", `{"apiVersion":"fission.io/v1",`, 400, store.ReasonBadRequest, ""},
		{"wrong kind", "POST", fbase + "functions", strings.Replace(fn("k"), `"Function"`, `"Environment"`, 1), 400, store.ReasonBadRequest, "kind"},
		{"kind Fission has, Isotope not", "POST", fbase + "functions", strings.Replace(fn("c"), `"Function"`, `"CanaryConfig"`, 1), 400, store.ReasonBadRequest, "kind"},
		{"other group", "POST", fbase + "functions", strings.Replace(fn("g"), "fission.io/v1", "apps/v1", 1), 400, store.ReasonBadRequest, "apiVersion"},
		{"unknown field", "POST", fbase + "functions", strings.Replace(fn("u"), `"resources":{}`, `"resources":{},"bogus":1`, 1), 400, store.ReasonBadRequest, ""},
		{"huge body", "POST", fbase + "functions", strings.Replace(fn("h"), `"name":"h"`, `"name":"h","annotations":{"a":"`+strings.Repeat("x", 8<<10)+`"}`, 1), 413, store.ReasonTooLarge, ""},
		{"name mismatch", "PUT", fbase + "functions/ok", fn("other"), 400, store.ReasonBadRequest, "metadata.name"},
		{"bad DeleteOptions", "DELETE", fbase + "functions/ok", `{"preconditions":`, 400, store.ReasonBadRequest, ""},
		{"stale rv precondition", "DELETE", fbase + "functions/ok", `{"kind":"DeleteOptions","apiVersion":"v1","preconditions":{"resourceVersion":"999"}}`, 409, store.ReasonConflict, ""},
		{"wrong uid precondition", "DELETE", fbase + "functions/ok", `{"preconditions":{"uid":"nope"}}`, 409, store.ReasonConflict, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := f.call(t, tc.method, tc.path, tc.body)
			st := status(t, code, body, tc.code, tc.reason)
			if tc.field != "" && !causeFields(st)[tc.field] {
				t.Errorf("causes %v do not name %s: %s", st.Details, tc.field, body)
			}
		})
	}
	if n := f.count(t, v1.KindFunction); n != 1 {
		t.Errorf("%d functions stored after refused requests, want 1", n)
	}
}

// A client-go client with the API's token (as a kubeconfig over https
// gives it) reads and writes fission.io/v1; without it, or with another,
// it gets Unauthorized.
func TestFissionGroupWithClientGoAndToken(t *testing.T) {
	f := newFixture(t, boltstore.Options{}, apiserver.Options{Token: token})
	ctx := context.Background()
	gvr := v1.SchemeGroupVersion.WithResource("environments")
	gvr.Group = v1.FissionGroup
	env := &unstructured.Unstructured{}
	if err := json.Unmarshal([]byte(`{"apiVersion":"fission.io/v1","kind":"Environment","metadata":{"name":"e"},"spec":{"version":3,"runtime":{"image":"x/isotope/wasm-env"},"builder":{},"resources":{},"poolsize":1,"keeparchive":false,"imagepullsecret":""}}`), &env.Object); err != nil {
		t.Fatal(err)
	}
	dyn := dynamic.NewForConfigOrDie(&rest.Config{Host: f.srv.URL, BearerToken: token})
	got, err := dyn.Resource(gvr).Namespace("default").Create(ctx, env, metav1.CreateOptions{})
	if err != nil || got.GetAPIVersion() != "fission.io/v1" || got.GetResourceVersion() == "" {
		t.Fatalf("create: %v %v", got, err)
	}
	// The same object is isotope.dev/v1 on the other path.
	if code, body := f.call(t, "GET", base+"environments/e", ""); code != 200 || !strings.Contains(string(body), `"apiVersion":"isotope.dev/v1"`) {
		t.Errorf("isotope.dev/v1 GET: %d %s", code, body)
	}
	for _, tok := range []string{"", "wrong"} {
		bad := dynamic.NewForConfigOrDie(&rest.Config{Host: f.srv.URL, BearerToken: tok})
		if _, err := bad.Resource(gvr).Namespace("default").Get(ctx, "e", metav1.GetOptions{}); !apierrors.IsUnauthorized(err) {
			t.Errorf("token %q: %v, want Unauthorized", tok, err)
		}
	}
}

// Fission's kinds that Isotope lacks list as empty on fission.io/v1
// (Fission's spec apply lists every kind before writing), are 404 by
// name, and refuse writes naming what is missing; discovery shows them
// read-only.
func TestFissionOnlyKinds(t *testing.T) {
	f := newFixture(t, boltstore.Options{}, apiserver.Options{Token: token})
	for _, k := range v1.FissionOnlyKinds {
		code, _, body := f.get(t, fbase+k.Plural, "")
		if code != 200 || !strings.Contains(string(body), `"kind":"`+k.Kind+`List"`) || !strings.Contains(string(body), `"items":[]`) {
			t.Errorf("list %s: %d %s", k.Plural, code, body)
		}
		if code, _, body := f.get(t, "/apis/fission.io/v1/"+k.Plural, ""); code != 200 {
			t.Errorf("list %s in all namespaces: %d %s", k.Plural, code, body)
		}
		code, body = f.call(t, "GET", fbase+k.Plural+"/x", "")
		status(t, code, body, 404, store.ReasonNotFound)
		code, body = f.call(t, "POST", fbase+k.Plural, `{"apiVersion":"fission.io/v1","kind":"`+k.Kind+`","metadata":{"name":"x"}}`)
		if st := status(t, code, body, 400, store.ReasonBadRequest); !causeFields(st)["kind"] || !strings.Contains(st.Message, k.Why) {
			t.Errorf("create %s: %s", k.Plural, body)
		}
		code, body = f.call(t, "DELETE", fbase+k.Plural+"/x", "")
		status(t, code, body, 400, store.ReasonBadRequest)
	}
	_, _, body := f.get(t, "/apis/fission.io/v1", "")
	if !strings.Contains(string(body), `{"name":"kuberneteswatchtriggers","singularName":"kuberneteswatchtrigger","namespaced":true,"kind":"KubernetesWatchTrigger","verbs":["get","list"]}`) {
		t.Errorf("discovery of fission-only kinds: %s", body)
	}
	if _, _, body := f.get(t, "/apis/isotope.dev/v1", ""); strings.Contains(string(body), "kuberneteswatchtriggers") {
		t.Errorf("isotope.dev/v1 lists Fission-only kinds: %s", body)
	}
}
