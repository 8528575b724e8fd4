package apiserver_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/apiserver"
	"isotope.dev/isotope/internal/store"
	"isotope.dev/isotope/internal/store/boltstore"
	"isotope.dev/isotope/internal/store/storetest"
)

const (
	token = "t0ken"
	base  = "/apis/isotope.dev/v1/namespaces/default/"
)

type fixture struct {
	srv *httptest.Server
	st  *boltstore.Store
}

func newFixture(t *testing.T, bopts boltstore.Options, aopts apiserver.Options) *fixture {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "isotope.db"), bopts)
	if err != nil {
		t.Fatal(err)
	}
	if aopts.Registry == nil {
		aopts.Registry = prometheus.NewRegistry()
	}
	aopts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := httptest.NewServer(apiserver.New(st, aopts))
	t.Cleanup(func() {
		_ = st.Close()
		srv.Close()
	})
	return &fixture{srv: srv, st: st}
}

// call makes one request with the test token and returns code and body.
func (f *fixture) call(t *testing.T, method, path, body string) (int, []byte) {
	return f.callTok(t, method, path, body, token)
}

func (f *fixture) callTok(t *testing.T, method, path, body, tok string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if method == "POST" || method == "PUT" {
		req.Header.Set("Content-Type", "application/json")
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
	return resp.StatusCode, data
}

// status decodes a Status answer and checks its envelope and code.
func status(t *testing.T, code int, data []byte, wantCode int, wantReason store.Reason) *metav1.Status {
	t.Helper()
	if code != wantCode {
		t.Fatalf("code %d, want %d: %s", code, wantCode, data)
	}
	var st metav1.Status
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatalf("not a Status: %v: %s", err, data)
	}
	if st.Kind != "Status" || st.APIVersion != "v1" || st.Status != metav1.StatusFailure || int(st.Code) != wantCode || st.Reason != metav1.StatusReason(wantReason) || st.Message == "" {
		t.Errorf("status %+v, want code %d reason %s", st, wantCode, wantReason)
	}
	return &st
}

func causeFields(st *metav1.Status) map[string]bool {
	out := map[string]bool{}
	if st.Details != nil {
		for _, c := range st.Details.Causes {
			out[c.Field] = true
		}
	}
	return out
}

func (f *fixture) count(t *testing.T, kind string) int {
	t.Helper()
	objs, _, err := f.st.List(storetest.Ctx(t), kind, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return len(objs)
}

func TestCRUDOverRawHTTP(t *testing.T) {
	f := newFixture(t, boltstore.Options{}, apiserver.Options{Token: token})
	body := `{"apiVersion":"fission.io/v1","kind":"Environment","metadata":{"name":"go"},"spec":{"version":2,"runtime":{"image":"isotope/wasm-env"}}}`
	code, data := f.call(t, "POST", base+"environments", body)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, data)
	}
	var env v1.Environment
	if err := json.Unmarshal(data, &env); err != nil {
		t.Fatal(err)
	}
	if env.APIVersion != v1.APIVersion || env.Kind != "Environment" || env.Namespace != "default" || env.ResourceVersion == "" {
		t.Errorf("created %s (fission.io/v1 should be normalised)", data)
	}
	// Aliases work as the plural.
	code, data = f.call(t, "GET", base+"env/go", "")
	if code != 200 || !strings.Contains(string(data), `"name":"go"`) {
		t.Errorf("get by alias: %d %s", code, data)
	}
	code, data = f.call(t, "GET", base+"environments", "")
	var list struct {
		APIVersion string
		Kind       string
		Metadata   struct{ ResourceVersion string }
		Items      []json.RawMessage
	}
	if err := json.Unmarshal(data, &list); err != nil || code != 200 {
		t.Fatalf("list: %d %s", code, data)
	}
	if list.APIVersion != v1.APIVersion || list.Kind != "EnvironmentList" || list.Metadata.ResourceVersion != env.ResourceVersion || len(list.Items) != 1 {
		t.Errorf("list %s", data)
	}
	code, data = f.call(t, "GET", "/apis/isotope.dev/v1/functions", "")
	if code != 200 || !strings.Contains(string(data), `"items":[]`) || !strings.Contains(string(data), `"kind":"FunctionList"`) {
		t.Errorf("empty list across namespaces: %d %s", code, data)
	}
	// Update with name and namespace filled from the URL.
	env.Spec.Runtime.Image = "isotope/wasm-env:2"
	env.Name, env.Namespace = "", ""
	upd, _ := json.Marshal(&env)
	code, data = f.call(t, "PUT", base+"environments/go", string(upd))
	if code != 200 || !strings.Contains(string(data), `"generation":2`) {
		t.Errorf("update: %d %s", code, data)
	}
	// Stale update: 409 Conflict.
	code, data = f.call(t, "PUT", base+"environments/go", string(upd))
	st := status(t, code, data, http.StatusConflict, store.ReasonConflict)
	if st.Details == nil || st.Details.Name != "go" || st.Details.Kind != "Environment" {
		t.Errorf("conflict details %+v", st.Details)
	}
	// Duplicate create: 409 AlreadyExists.
	code, data = f.call(t, "POST", base+"environments", body)
	status(t, code, data, http.StatusConflict, store.ReasonAlreadyExists)
	// Delete with a stale precondition, then for real.
	code, data = f.call(t, "DELETE", base+"environments/go?resourceVersion="+env.ResourceVersion, "")
	status(t, code, data, http.StatusConflict, store.ReasonConflict)
	code, data = f.call(t, "DELETE", base+"environments/go", "")
	if code != 200 || !strings.Contains(string(data), `"status":"Success"`) {
		t.Errorf("delete: %d %s", code, data)
	}
	code, data = f.call(t, "GET", base+"environments/go", "")
	st = status(t, code, data, http.StatusNotFound, store.ReasonNotFound)
	if !strings.Contains(st.Message, `"go"`) || !strings.Contains(st.Message, "Environment") || !strings.Contains(st.Message, "default") {
		t.Errorf("404 message %q", st.Message)
	}
	// Status subresource.
	pkg := `{"metadata":{"name":"p"},"spec":{"environment":{"name":"go"},"deployment":{"literal":"AGFzbQ=="}}}`
	if code, data := f.call(t, "POST", base+"packages", pkg); code != 201 {
		t.Fatalf("create package: %d %s", code, data)
	}
	code, data = f.call(t, "PUT", base+"packages/p/status", `{"metadata":{"name":"p"},"spec":{"environment":{"name":"go"}},"status":{"buildstatus":"succeeded","buildlog":"ok"}}`)
	if code != 200 || !strings.Contains(string(data), `"buildstatus":"succeeded"`) || !strings.Contains(string(data), `"literal":"AGFzbQ=="`) {
		t.Errorf("status update: %d %s", code, data)
	}
	code, data = f.call(t, "PUT", base+"environments/x/status", `{}`)
	status(t, code, data, http.StatusMethodNotAllowed, store.ReasonMethodNotAllowed)
}

func TestRefusedRequestsStoreNothing(t *testing.T) {
	f := newFixture(t, boltstore.Options{}, apiserver.Options{Token: token, MaxBodyBytes: 4096})
	cases := []struct {
		name, method, path, body string
		code                     int
		reason                   store.Reason
		fields                   []string // cause fields expected
		msg                      string   // substring of the message
	}{
		{"invalid object", "POST", base + "environments",
			`{"metadata":{"name":"Bad_Name"},"spec":{"version":7,"runtime":{"image":"x"}}}`,
			400, store.ReasonInvalid, []string{"metadata.name", "spec.version"}, `Environment "Bad_Name" is invalid`},
		{"missing required field", "POST", base + "functions",
			`{"metadata":{"name":"f"},"spec":{"environment":{"name":"go"}}}`,
			400, store.ReasonInvalid, []string{"spec.package.packageref.name"}, "is invalid"},
		{"bad cron", "POST", base + "timetriggers",
			`{"metadata":{"name":"t"},"spec":{"cron":"every tuesday","functionref":{"type":"name","name":"f"}}}`,
			400, store.ReasonInvalid, []string{"spec.cron"}, "is invalid"},
		{"bad JSON", "POST", base + "environments",
			"{\"metadata\": {\"name\": \"x\",\n  }}", 400, store.ReasonBadRequest, nil, "line 2, column 3"},
		{"wrong JSON type", "POST", base + "environments",
			`{"metadata":{"name":"x"},"spec":{"version":"two"}}`, 400, store.ReasonBadRequest, []string{"spec.version"}, "line 1"},
		{"unknown field", "POST", base + "environments",
			`{"metadata":{"name":"x"},"spec":{"version":2,"runtime":{"image":"x"},"colour":"red"}}`, 400, store.ReasonBadRequest, nil, `unknown field "colour"`},
		{"trailing data", "POST", base + "environments",
			`{"metadata":{"name":"x"},"spec":{"version":2,"runtime":{"image":"x"}}} {}`, 400, store.ReasonBadRequest, nil, "line 1, column 72 (byte 71): invalid character '{' after top-level value"},
		{"empty body", "POST", base + "environments", "", 400, store.ReasonBadRequest, nil, "request body is empty"},
		{"kind mismatch", "POST", base + "environments",
			`{"kind":"Function","metadata":{"name":"x"}}`, 400, store.ReasonBadRequest, []string{"kind"}, `"Function"`},
		{"foreign apiVersion", "POST", base + "environments",
			`{"apiVersion":"apps/v1","metadata":{"name":"x"}}`, 400, store.ReasonBadRequest, []string{"apiVersion"}, "apps/v1"},
		{"namespace mismatch", "POST", base + "environments",
			`{"metadata":{"name":"x","namespace":"other"},"spec":{"version":2,"runtime":{"image":"x"}}}`, 400, store.ReasonBadRequest, []string{"metadata.namespace"}, `"other"`},
		{"name mismatch", "PUT", base + "environments/x",
			`{"metadata":{"name":"y"},"spec":{"version":2,"runtime":{"image":"x"}}}`, 400, store.ReasonBadRequest, []string{"metadata.name"}, `"y"`},
		{"too large", "POST", base + "environments",
			`{"metadata":{"name":"x","annotations":{"a":"` + strings.Repeat("x", 5000) + `"}},"spec":{"version":2,"runtime":{"image":"x"}}}`,
			413, store.ReasonTooLarge, nil, "4096"},
		{"unknown kind", "GET", base + "gadgets", "", 404, store.ReasonNotFound, nil, "gadgets"},
		{"outside the API", "GET", "/apis/other/v1/things", "", 404, store.ReasonNotFound, nil, "/apis/other"},
		{"bad selector", "GET", base + "functions?labelSelector=a%3D%3D%3Db", "", 400, store.ReasonInvalid, []string{"labelSelector"}, "label selector"},
		{"bad resourceVersion", "GET", base + "functions?watch=true&resourceVersion=abc", "", 400, store.ReasonBadRequest, nil, `"abc"`},
		{"method not allowed", "PATCH", base + "functions/x", `{}`, 405, store.ReasonMethodNotAllowed, nil, "PATCH"},
		{"create across namespaces", "POST", "/apis/isotope.dev/v1/functions", `{}`, 405, store.ReasonMethodNotAllowed, nil, "POST"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, data := f.call(t, tc.method, tc.path, tc.body)
			st := status(t, code, data, tc.code, tc.reason)
			if !strings.Contains(st.Message, tc.msg) {
				t.Errorf("message %q lacks %q", st.Message, tc.msg)
			}
			got := causeFields(st)
			for _, fld := range tc.fields {
				if !got[fld] {
					t.Errorf("causes %+v lack field %s", st.Details, fld)
				}
			}
		})
	}
	for _, k := range v1.Kinds() {
		if n := f.count(t, k.Kind); n != 0 {
			t.Errorf("%d %s stored after refused requests", n, k.Kind)
		}
	}
	// 405 names the allowed methods.
	req, _ := http.NewRequest("PATCH", f.srv.URL+base+"functions/x", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if allow := resp.Header.Get("Allow"); allow != "GET, PUT, DELETE" {
		t.Errorf("Allow = %q", allow)
	}
}

func TestAuthHealthzMetrics(t *testing.T) {
	f := newFixture(t, boltstore.Options{}, apiserver.Options{Token: token})
	for _, tok := range []string{"", "wrong"} {
		code, data := f.callTok(t, "GET", base+"functions", "", tok)
		status(t, code, data, http.StatusUnauthorized, store.ReasonUnauthorized)
		code, data = f.callTok(t, "POST", base+"functions", `{}`, tok)
		status(t, code, data, http.StatusUnauthorized, store.ReasonUnauthorized)
	}
	if n := f.count(t, v1.KindFunction); n != 0 {
		t.Errorf("unauthorized create stored %d objects", n)
	}
	code, data := f.callTok(t, "GET", "/healthz", "", "")
	if code != 200 || string(data) != "ok" {
		t.Errorf("/healthz: %d %q", code, data)
	}
	fn, _ := json.Marshal(storetest.Sample(v1.KindFunction, "default", "hello"))
	if code, data := f.call(t, "POST", base+"functions", string(fn)); code != 201 {
		t.Fatalf("create: %d %s", code, data)
	}
	f.call(t, "GET", base+"functions/nope", "")
	code, data = f.callTok(t, "GET", "/metrics", "", "")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`isotope_apiserver_requests_total{code="201",kind="Function",verb="create"} 1`,
		`isotope_apiserver_requests_total{code="404",kind="Function",verb="get"} 1`,
		`isotope_apiserver_requests_total{code="401",kind="Function",verb="list"} 2`,
		`isotope_apiserver_request_duration_seconds_count{kind="Function",verb="create"} 3`, // two were refused 401s
		`isotope_apiserver_requests_total{code="401",kind="Function",verb="create"} 2`,
	} {
		if !strings.Contains(string(data), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// watch opens a raw watch stream and returns a reader of its lines.
func (f *fixture) watch(t *testing.T, query string) (*bufio.Reader, func()) {
	t.Helper()
	req, _ := http.NewRequest("GET", f.srv.URL+base+"functions?watch=true&"+query, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("watch: %d %s", resp.StatusCode, data)
	}
	return bufio.NewReader(resp.Body), func() { resp.Body.Close() }
}

type rawEvent struct {
	Type   string
	Object struct {
		Kind     string
		Metadata struct{ Name, ResourceVersion string }
	}
}

// nextEvent reads the next event line, counting the blank lines
// (heartbeats) before it.
func nextEvent(t *testing.T, r *bufio.Reader) (rawEvent, int) {
	t.Helper()
	blanks := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("watch stream: %v", err)
		}
		if strings.TrimSpace(line) == "" {
			blanks++
			continue
		}
		var ev rawEvent
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("watch line %q: %v", line, err)
		}
		return ev, blanks
	}
}

func TestRawWatchStream(t *testing.T) {
	f := newFixture(t, boltstore.Options{EventLogSize: 2}, apiserver.Options{Token: token, HeartbeatInterval: 10 * time.Millisecond})
	r, stop := f.watch(t, "")
	defer stop()
	if ev, _ := nextEvent(t, r); ev.Type != "BOOKMARK" || ev.Object.Kind != "Function" {
		t.Fatalf("first event %+v", ev)
	}
	var rvs []string
	for i := range 3 {
		fn, _ := json.Marshal(storetest.Sample(v1.KindFunction, "default", fmt.Sprintf("f%d", i)))
		code, data := f.call(t, "POST", base+"functions", string(fn))
		if code != 201 {
			t.Fatalf("create: %d %s", code, data)
		}
		var m struct {
			Metadata struct{ ResourceVersion string }
		}
		_ = json.Unmarshal(data, &m)
		rvs = append(rvs, m.Metadata.ResourceVersion)
	}
	for i := range 3 {
		ev, _ := nextEvent(t, r)
		if ev.Type != "ADDED" || ev.Object.Metadata.Name != fmt.Sprintf("f%d", i) || ev.Object.Metadata.ResourceVersion != rvs[i] {
			t.Errorf("event %d: %+v", i, ev)
		}
	}
	// Idle: heartbeats (blank lines) arrive, then the next event.
	deadline := time.Now().Add(10 * time.Second)
	var blanks int
	for blanks < 3 && time.Now().Before(deadline) {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line != "\n" {
			t.Fatalf("unexpected line while idle: %q", line)
		}
		blanks++
	}
	if blanks < 3 {
		t.Errorf("saw %d heartbeats", blanks)
	}
	// Replay from a version (the log holds the last 2 changes).
	r2, stop2 := f.watch(t, "resourceVersion="+rvs[0])
	defer stop2()
	for i := 1; i < 3; i++ {
		if ev, _ := nextEvent(t, r2); ev.Object.Metadata.Name != fmt.Sprintf("f%d", i) {
			t.Errorf("replay %d: %+v", i, ev)
		}
	}
	// Too old: 410 Expired.
	code, data := f.call(t, "GET", base+"functions?watch=true&resourceVersion=0", "")
	status(t, code, data, http.StatusGone, store.ReasonExpired)
	// timeoutSeconds ends the stream.
	r3, stop3 := f.watch(t, "timeoutSeconds=1&resourceVersion="+rvs[2])
	defer stop3()
	if _, err := io.Copy(io.Discard, r3); err != nil {
		t.Errorf("stream with timeoutSeconds ended with %v", err)
	}
}

// Shutdown of the listener's http.Server is not held up by watches.
func TestShutdownEndsWatches(t *testing.T) {
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "isotope.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	api := apiserver.New(st, apiserver.Options{Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: api}
	hs.RegisterOnShutdown(api.StopWatches)
	go hs.Serve(ln)
	resp, err := http.Get("http://" + ln.Addr().String() + base + "functions?watch=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ev, _ := nextEvent(t, bufio.NewReader(resp.Body)); ev.Type != "BOOKMARK" {
		t.Fatalf("first event %+v", ev)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with an open watch: %v", err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Errorf("watch stream after shutdown: %v", err)
	}
}
