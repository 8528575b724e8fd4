package router

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/executor"
)

func TestRouteParamsAndHeaders(t *testing.T) {
	e := newTestEnv(t)
	fn := e.create(function("default", "users")).(*v1.Function)
	e.create(trigger("default", "users-route", v1.HTTPTriggerSpec{
		RelativeURL: "/users/{id}/posts/{postId}", Methods: []string{"GET"}, FunctionReference: ref("users"),
	}))
	e.waitStatus("GET", "/users/42/posts/7", 200)

	ec := e.echoOf("GET", "/users/42/posts/7?x=1&y=2", "Host", "example.test:8080")
	if ec.Fn != "users" || ec.Path != "/" || ec.Query != "x=1&y=2" {
		t.Fatalf("function saw fn=%q path=%q query=%q; want users, /, x=1&y=2", ec.Fn, ec.Path, ec.Query)
	}
	h := http.Header(ec.Header)
	want := map[string]string{
		"X-Fission-Params-Id":                "42",
		"X-Fission-Params-Postid":            "7",
		"X-Fission-Function-Name":            "users",
		"X-Fission-Function-Namespace":       "default",
		"X-Fission-Function-Uid":             string(fn.UID),
		"X-Fission-Function-Resourceversion": fn.ResourceVersion,
		"X-Fission-Full-Url":                 "/users/42/posts/7?x=1&y=2",
		"X-Forwarded-Host":                   "example.test:8080",
		"Forwarded":                          "host=example.test:8080;",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if fn.UID == "" {
		t.Error("stored function has no uid")
	}

	// A client's own forwarding headers are kept.
	ec = e.echoOf("GET", "/users/1/posts/2", "X-Forwarded-Host", "outer.example", "Forwarded", "host=outer.example")
	if got := ec.Header.Get("X-Forwarded-Host"); got != "outer.example" {
		t.Errorf("X-Forwarded-Host overwritten: %q", got)
	}
	if got := ec.Header.Get("Forwarded"); got != "host=outer.example" {
		t.Errorf("Forwarded overwritten: %q", got)
	}

	// Wrong shapes do not match.
	for _, p := range []string{"/users/42/posts", "/users//posts/7", "/users/42/posts/7/extra"} {
		if code, _, _ := e.do("GET", p); code != 404 {
			t.Errorf("GET %s = %d, want 404", p, code)
		}
	}
}

func TestPrefixAndKeepPrefix(t *testing.T) {
	e := newTestEnv(t)
	e.create(function("default", "api"))
	e.create(function("default", "admin"))
	e.create(function("default", "kept"))
	e.create(trigger("default", "api", v1.HTTPTriggerSpec{Prefix: strPtr("/api/"), FunctionReference: ref("api")}))
	e.create(trigger("default", "admin", v1.HTTPTriggerSpec{Prefix: strPtr("/api/admin"), FunctionReference: ref("admin")}))
	e.create(trigger("default", "kept", v1.HTTPTriggerSpec{Prefix: strPtr("/keep"), KeepPrefix: true, FunctionReference: ref("kept")}))
	e.waitStatus("GET", "/keep", 200)

	cases := []struct{ path, fn, sees string }{
		{"/api/v1/items?q=1", "api", "/v1/items"},
		{"/api/", "api", "/"},
		{"/api/admin", "admin", "/"},            // prefix without slash: the bare path matches
		{"/api/admin/users", "admin", "/users"}, // longest prefix wins
		{"/api/administrator", "api", "/administrator"},
		{"/keep", "kept", "/keep"},
		{"/keep/a/b", "kept", "/keep/a/b"},
	}
	for _, c := range cases {
		ec := e.echoOf("GET", c.path)
		if ec.Fn != c.fn || ec.Path != c.sees {
			t.Errorf("GET %s → fn %q path %q, want fn %q path %q", c.path, ec.Fn, ec.Path, c.fn, c.sees)
		}
	}
	if ec := e.echoOf("GET", "/api/x?q=1"); ec.Query != "q=1" {
		t.Errorf("query lost through prefix route: %q", ec.Query)
	}
	// "/api/" ends in a slash: /api itself is not under it; "/keep"
	// does not claim /keeper.
	for _, p := range []string{"/api", "/keeper"} {
		if code, _, _ := e.do("GET", p); code != 404 {
			t.Errorf("GET %s = %d, want 404", p, code)
		}
	}
}

func TestMethodsHostAndPrecedence(t *testing.T) {
	e := newTestEnv(t)
	for _, n := range []string{"exact", "param", "prefix", "hosted", "writer"} {
		e.create(function("default", n))
	}
	e.create(trigger("default", "t-exact", v1.HTTPTriggerSpec{RelativeURL: "/items/new", FunctionReference: ref("exact")}))
	e.create(trigger("default", "t-param", v1.HTTPTriggerSpec{RelativeURL: "/items/{id}", Methods: []string{"GET", "DELETE"}, FunctionReference: ref("param")}))
	e.create(trigger("default", "t-prefix", v1.HTTPTriggerSpec{Prefix: strPtr("/items"), FunctionReference: ref("prefix")}))
	e.create(trigger("default", "t-hosted", v1.HTTPTriggerSpec{RelativeURL: "/items/new", Host: "Shop.Example", FunctionReference: ref("hosted")}))
	e.create(trigger("default", "t-writer", v1.HTTPTriggerSpec{RelativeURL: "/write", Method: "post", Methods: []string{"PUT"}, FunctionReference: ref("writer")}))
	e.waitStatus("PUT", "/write", 200)

	cases := []struct{ method, path, host, fn string }{
		{"GET", "/items/new", "", "exact"},
		{"GET", "/items/new", "shop.example:1234", "hosted"}, // host routes first; the port is ignored
		{"GET", "/items/7", "", "param"},
		{"DELETE", "/items/7", "", "param"},
		{"GET", "/items", "", "prefix"},
		{"GET", "/items/7/reviews", "", "prefix"},
		{"POST", "/write", "", "writer"}, // legacy method merged with methods
		{"PUT", "/write", "", "writer"},
	}
	for _, c := range cases {
		var hdr []string
		if c.host != "" {
			hdr = []string{"Host", c.host}
		}
		ec := e.echoOf(c.method, c.path, hdr...)
		if ec.Fn != c.fn || ec.Method != c.method {
			t.Errorf("%s %s (host %q) → %s %s, want %s", c.method, c.path, c.host, ec.Fn, ec.Method, c.fn)
		}
	}
	code, _, hdr := e.do("GET", "/write")
	if code != http.StatusMethodNotAllowed || hdr.Get("Allow") != "POST, PUT" {
		t.Errorf("GET /write = %d Allow %q, want 405 with Allow: POST, PUT", code, hdr.Get("Allow"))
	}
	// PATCH /items/7 is not the param route's, but the prefix route
	// (GET only) doesn't take it either.
	if code, _, _ := e.do("PATCH", "/items/7"); code != http.StatusMethodNotAllowed {
		t.Errorf("PATCH /items/7 = %d, want 405", code)
	}
}

func TestInternalRoutesFixedRoutesAnd404(t *testing.T) {
	e := newTestEnv(t)
	e.create(function("default", "hello"))
	e.create(function("other", "fn"))
	e.waitFunctions("default/hello", "other/fn")

	cases := []struct{ path, fn, sees string }{
		{"/fission-function/hello", "hello", "/"},
		{"/fission-function/hello/", "hello", "/"},
		{"/fission-function/hello/a/b?x=1", "hello", "/a/b"},
		{"/fission-function/default/hello", "hello", "/"},
		{"/fission-function/default/hello/sub", "hello", "/sub"},
		{"/fission-function/other/fn", "fn", "/"},
		{"/fission-function/other/fn/deep/path", "fn", "/deep/path"},
	}
	for _, c := range cases {
		ec := e.echoOf("POST", c.path)
		if ec.Fn != c.fn || ec.Path != c.sees {
			t.Errorf("POST %s → fn %q path %q, want %q %q", c.path, ec.Fn, ec.Path, c.fn, c.sees)
		}
		if ec.Header.Get("X-Fission-Function-Name") != c.fn {
			t.Errorf("POST %s: X-Fission-Function-Name = %q", c.path, ec.Header.Get("X-Fission-Function-Name"))
		}
	}
	for _, p := range []string{"/fission-function/nope", "/fission-function/other/nope", "/fission-function/", "/fn"} {
		if code, _, _ := e.do("GET", p); code != 404 {
			t.Errorf("GET %s = %d, want 404", p, code)
		}
	}
	code, body, hdr := e.do("GET", "/nowhere", "Accept", "application/json")
	var je struct {
		Code  int    `json:"code"`
		Error string `json:"error"`
	}
	if code != 404 || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") || json.Unmarshal([]byte(body), &je) != nil || je.Code != 404 {
		t.Errorf("JSON 404: %d %q %q", code, hdr.Get("Content-Type"), body)
	}
	if code, body, _ := e.do("GET", "/nowhere"); code != 404 || !strings.Contains(body, "no route for GET /nowhere") {
		t.Errorf("text 404: %d %q", code, body)
	}

	if code, _, _ := e.do("GET", "/router-healthz"); code != 200 {
		t.Errorf("/router-healthz = %d", code)
	}
	if code, body, _ := e.do("GET", "/_version"); code != 200 || !strings.Contains(body, `"version":"test"`) {
		t.Errorf("/_version = %d %q", code, body)
	}
	if code, _, _ := e.do("GET", "/"); code != 200 {
		t.Errorf("GET / = %d, want 200 when no trigger claims it", code)
	}
	// A trigger on / takes it over.
	e.create(trigger("default", "root", v1.HTTPTriggerSpec{RelativeURL: "/", FunctionReference: ref("hello")}))
	e.poll("GET / served by hello", func() bool {
		_, body, _ := e.do("GET", "/")
		return strings.Contains(body, `"Fn":"hello"`)
	})
}

func TestCanaryWeights(t *testing.T) {
	e := newTestEnv(t)
	e.create(function("default", "v1"))
	e.create(function("default", "v2"))
	e.create(trigger("default", "canary", v1.HTTPTriggerSpec{RelativeURL: "/canary", FunctionReference: v1.FunctionReference{
		Type: v1.FunctionReferenceTypeFunctionWeights, FunctionWeights: map[string]int{"v1": 80, "v2": 20},
	}}))
	e.waitFunctions("default/v1", "default/v2")
	e.waitStatus("GET", "/canary", 200)
	const n = 1000
	counts := map[string]int{}
	for range n {
		counts[e.echoOf("GET", "/canary").Fn]++
	}
	// With a fixed seed the split is deterministic; the bounds are those
	// of an 80/20 binomial at about 4 standard deviations.
	if counts["v1"]+counts["v2"] != n || counts["v2"] < 150 || counts["v2"] > 250 {
		t.Fatalf("canary split %v, want about 800/200", counts)
	}
}

func TestFunctionTimeoutIs504(t *testing.T) {
	e := newTestEnv(t)
	slow := function("default", "slow")
	slow.Spec.FunctionTimeout = 1
	e.create(slow)
	proxy := function("default", "proxy")
	proxy.Spec.FunctionTimeout = 1
	e.create(proxy)
	// A function that runs until its context ends and writes nothing.
	e.exec.handle("default", "slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	// A lease that, like a reverse proxy, answers 502 when its upstream
	// call is cancelled: the router turns that into the timeout it is.
	e.exec.handle("default", "proxy", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		http.Error(w, "upstream: context deadline exceeded", http.StatusBadGateway)
	}))
	e.waitFunctions("default/slow", "default/proxy")
	e.waitStatus("GET", "/fission-function/default/slow", http.StatusGatewayTimeout)
	code, body, _ := e.do("GET", "/fission-function/proxy")
	if code != http.StatusGatewayTimeout || strings.Contains(body, "upstream") {
		t.Fatalf("proxy lease after deadline: %d %q, want 504 without the lease's body", code, body)
	}
	rel := e.exec.releases()
	if len(rel) == 0 || !errors.Is(rel[len(rel)-1], context.DeadlineExceeded) {
		t.Fatalf("lease released with %v, want context.DeadlineExceeded", rel)
	}
}

func TestExecutorErrorsPassThrough(t *testing.T) {
	e := newTestEnv(t)
	e.create(function("default", "busy"))
	e.create(function("default", "broken"))
	e.exec.fail("default", "busy", &executor.Error{Code: http.StatusTooManyRequests, Message: "concurrency limit 1 reached"})
	e.exec.fail("default", "broken", errors.New("boom"))
	e.waitFunctions("default/busy", "default/broken")
	e.waitStatus("GET", "/fission-function/busy", http.StatusTooManyRequests)
	_, body, _ := e.do("GET", "/fission-function/busy")
	if !strings.Contains(body, "concurrency limit 1 reached") {
		t.Errorf("429 body %q lacks the executor's message", body)
	}
	code, body, _ := e.do("GET", "/fission-function/broken")
	if code != 500 || strings.Contains(body, "boom") {
		t.Errorf("plain error: %d %q, want 500 without internal text", code, body)
	}
}

func TestStreamingBothWays(t *testing.T) {
	e := newTestEnv(t)
	e.create(function("default", "stream"))
	// Echo each line of the request body back at once, flushed, so the
	// client sees a reply to a line before it has sent the next.
	e.exec.handle("default", "stream", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		http.NewResponseController(w).Flush()
		sc := bufio.NewScanner(r.Body)
		for sc.Scan() {
			fmt.Fprintf(w, "got %s\n", sc.Text())
			if err := http.NewResponseController(w).Flush(); err != nil {
				return
			}
		}
	}))
	e.waitStatus("GET", "/fission-function/stream", 200)

	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", e.srv.URL+"/fission-function/stream", pr)
	respc := make(chan *http.Response, 1)
	errc := make(chan error, 1)
	go func() {
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			errc <- err
			return
		}
		respc <- resp
	}()
	fmt.Fprintln(pw, "one")
	var resp *http.Response
	select {
	case resp = <-respc:
	case err := <-errc:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatal("no response headers while the request body is still open")
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	for _, word := range []string{"one", "two", "three"} {
		if word != "one" {
			fmt.Fprintln(pw, word)
		}
		line, err := rd.ReadString('\n')
		if err != nil || line != "got "+word+"\n" {
			t.Fatalf("read %q, %v; want the reply to %q before the request ends", line, err, word)
		}
	}
	pw.Close()
	if rest, _ := io.ReadAll(rd); len(rest) != 0 {
		t.Fatalf("unexpected trailing body %q", rest)
	}
}

func TestRouteTableFollowsStore(t *testing.T) {
	e := newTestEnv(t)
	e.create(function("default", "a"))
	tr := e.create(trigger("default", "moving", v1.HTTPTriggerSpec{RelativeURL: "/old", FunctionReference: ref("a")})).(*v1.HTTPTrigger)
	e.waitStatus("GET", "/old", 200)

	tr.Spec.RelativeURL = "/new"
	if _, err := e.st.Update(context.Background(), tr); err != nil {
		t.Fatal(err)
	}
	e.waitStatus("GET", "/new", 200)
	if code, _, _ := e.do("GET", "/old"); code != 404 {
		t.Errorf("old path still routed: %d", code)
	}

	// A trigger whose function disappears stops routing; it comes back
	// when the function does.
	if err := e.st.Delete(context.Background(), v1.KindFunction, "default", "a", ""); err != nil {
		t.Fatal(err)
	}
	e.waitStatus("GET", "/new", 404)
	e.create(function("default", "a"))
	e.waitStatus("GET", "/new", 200)

	if err := e.st.Delete(context.Background(), v1.KindHTTPTrigger, "default", "moving", ""); err != nil {
		t.Fatal(err)
	}
	e.waitStatus("GET", "/new", 404)
}

func TestMetricsCountRequests(t *testing.T) {
	e := newTestEnv(t)
	e.create(function("default", "counted"))
	e.create(function("default", "limited"))
	e.exec.fail("default", "limited", &executor.Error{Code: 429, Message: "busy"})
	e.waitFunctions("default/counted", "default/limited")
	e.waitStatus("GET", "/fission-function/counted", 200)
	e.exec.setCold("default", "counted")
	for range 5 {
		e.do("GET", "/fission-function/counted")
	}
	e.do("GET", "/fission-function/limited")

	_, body, _ := e.do("GET", "/metrics")
	// The waitStatus polls also counted, so read the 200 count first.
	n := metricValue(t, body, `isotope_router_requests_total{code="200",function="counted",namespace="default"}`)
	if n < 6 {
		t.Errorf("requests_total for counted = %v, want >= 6", n)
	}
	if v := metricValue(t, body, `isotope_router_requests_total{code="429",function="limited",namespace="default"}`); v != 1 {
		t.Errorf("429 count = %v, want 1", v)
	}
	if v := metricValue(t, body, `isotope_router_errors_total{code="429",function="limited",namespace="default"}`); v != 1 {
		t.Errorf("errors_total 429 = %v, want 1", v)
	}
	if v := metricValue(t, body, `isotope_router_cold_starts_total{function="counted",namespace="default"}`); v != 1 {
		t.Errorf("cold starts = %v, want 1", v)
	}
	if v := metricValue(t, body, `isotope_router_request_duration_seconds_count{function="counted",namespace="default"}`); v != n {
		t.Errorf("latency histogram count = %v, want %v", v, n)
	}
}

func TestClientGoneIs499(t *testing.T) {
	e := newTestEnv(t)
	e.create(function("default", "hang"))
	started := make(chan struct{}, 1)
	e.exec.handle("default", "hang", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-r.Context().Done()
	}))
	e.poll("function known", func() bool {
		_, ok, _ := e.rt.table.Load().lookup("GET", "", "/fission-function/hang")
		return ok
	})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/fission-function/hang", nil)
	go func() { <-started; cancel() }()
	if _, err := e.srv.Client().Do(req); err == nil {
		t.Fatal("request succeeded after cancel")
	}
	e.poll("499 recorded", func() bool {
		_, body, _ := e.do("GET", "/metrics")
		return strings.Contains(body, `isotope_router_requests_total{code="499",function="hang",namespace="default"} 1`)
	})
}

func metricValue(t *testing.T, body, series string) float64 {
	t.Helper()
	re := regexp.MustCompile("(?m)^" + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("metric %s not found in /metrics", series)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A burst of route updates is coalesced: a hundred updates rebuild the
// table far fewer than a hundred times, and the last one is served.
// (Past a few rebuilds in a row they are paced one per Debounce: the
// test's is long, so that updates slowed down by a busy machine, each a
// bbolt fsync, are still a burst.)
func TestRouteTableBurstCoalesced(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.Debounce = 200 * time.Millisecond })
	e.create(function("default", "a"))
	tr := e.create(trigger("default", "moving", v1.HTTPTriggerSpec{RelativeURL: "/p", FunctionReference: ref("a")})).(*v1.HTTPTrigger)
	e.waitStatus("GET", "/p", 200)
	_, body, _ := e.do("GET", "/metrics")
	before := metricValue(t, body, "isotope_router_route_table_rebuilds_total")
	for i := range 100 {
		tr.Spec.RelativeURL = fmt.Sprintf("/p%d", i)
		out, err := e.st.Update(context.Background(), tr)
		if err != nil {
			t.Fatal(err)
		}
		tr = out.(*v1.HTTPTrigger)
	}
	e.waitStatus("GET", "/p99", 200)
	_, body, _ = e.do("GET", "/metrics")
	n := metricValue(t, body, "isotope_router_route_table_rebuilds_total") - before
	t.Logf("100 updates, %v rebuilds", n)
	if n >= 50 {
		t.Errorf("100 updates rebuilt the table %v times, want them coalesced", n)
	}
}

// Before its table is loaded the router cannot say a route does not
// exist: an unknown path is 503 with Retry-After, not 404, and Ready is
// still open.
func TestUnloadedRouterAnswersRetry(t *testing.T) {
	rt := New(Config{})
	select {
	case <-rt.Ready():
		t.Fatal("Ready closed before any table was built")
	default:
	}
	w := httptest.NewRecorder()
	rt.ServeHTTP(w, httptest.NewRequest("POST", "/fission-function/default/hello", nil))
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" || !strings.Contains(w.Body.String(), "still loading its routes") {
		t.Errorf("unloaded router: %d %q %q", w.Code, w.Header().Get("Retry-After"), w.Body.String())
	}
	h := httptest.NewRecorder()
	rt.ServeHTTP(h, httptest.NewRequest("GET", HealthzPath, nil))
	if h.Code != 200 {
		t.Errorf("%s = %d while loading", HealthzPath, h.Code)
	}
}
