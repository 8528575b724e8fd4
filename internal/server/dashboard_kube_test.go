package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/router"
	isostatus "isotope.dev/isotope/internal/status"
	"isotope.dev/isotope/internal/store"
	"isotope.dev/isotope/internal/store/kubestore"
	"isotope.dev/isotope/internal/testing/kubetest"
	"isotope.dev/isotope/internal/testing/uitest"
)

// lockedBuffer is a role's log, written by the role and read by the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var dashAddrRE = regexp.MustCompile(`msg="dashboard listening" addr=(\S+)`)

// kubeDash is the dashboard role (RunDashboard) running in-process
// against the shared kube-apiserver, confined to one namespace, with a
// real router's /_stats on loopback.
type kubeDash struct {
	base  string // http://127.0.0.1:port
	ns    string
	st    store.Store
	token string
}

func startKubeDashboard(t *testing.T, prefix string) *kubeDash {
	t.Helper()
	kube := kubetest.Start(t)
	ns := kube.Namespace(t, prefix)
	st, err := kubestore.New(kube.Config, kubestore.Options{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	rt := httptest.NewServer(router.New(router.Config{Store: st}))
	t.Cleanup(rt.Close)

	const token = "dash-secret-token"
	logs := &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- RunDashboard(ctx, DashboardOptions{
			KubeOptions: KubeOptions{Kubeconfig: kube.Kubeconfig, Namespace: ns, StorageURL: "http://127.0.0.1:1", Log: logs},
			Addr:        "127.0.0.1:0",
			Token:       token,
			RouterURL:   rt.URL,
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("RunDashboard: %v", err)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := dashAddrRE.FindStringSubmatch(logs.String()); m != nil {
			return &kubeDash{base: "http://" + m[1], ns: ns, st: st, token: token}
		}
		select {
		case err := <-done:
			t.Fatalf("RunDashboard ended before listening: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dashboard did not listen within 30s:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond) // polling the role's log, with a deadline
	}
}

func dashEnv(ns string) *v1.Environment {
	env := &v1.Environment{ObjectMeta: metav1.ObjectMeta{Name: "go", Namespace: ns}}
	env.Spec.Version = 3
	env.Spec.Runtime.Image = "isotope/wasm-env:dev"
	env.Spec.Builder.Image = "isotope/go-wasm-builder:dev"
	return env
}

// The dashboard role logs in with its token only: a wrong token and a
// login without the CSRF token are refused, as is a foreign Host; once
// logged in the overview lists a function made in the apiserver, and the
// new-function form makes its Package, Function and HTTPTrigger there.
func TestKubeDashboardLoginAndCreate(t *testing.T) {
	d := startKubeDashboard(t, "dash-ui")
	ctx := kubetest.Context(t)
	if _, err := d.st.Create(ctx, dashEnv(d.ns)); err != nil {
		t.Fatal(err)
	}
	fn := &v1.Function{ObjectMeta: metav1.ObjectMeta{Name: "made-by-kubectl", Namespace: d.ns}}
	fn.Spec.Environment = v1.EnvironmentReference{Namespace: d.ns, Name: "go"}
	fn.Spec.Package.PackageRef = v1.PackageRef{Namespace: d.ns, Name: "made-by-kubectl-pkg"}
	fn.Spec.InvokeStrategy.StrategyType = v1.StrategyTypeExecution
	fn.Spec.InvokeStrategy.ExecutionStrategy.ExecutorType = v1.ExecutorTypePoolmgr
	if _, err := d.st.Create(ctx, fn); err != nil {
		t.Fatal(err)
	}

	b := uitest.New(t, d.base)
	if code, body := b.Get("/ui/"); code != http.StatusSeeOther || !strings.Contains(body, "Location: /ui/login") {
		t.Fatalf("GET /ui/ without a session: %d %s, want a redirect to the login page", code, body)
	}
	if code, body := b.Get("/ui/login"); code != http.StatusOK || !strings.Contains(body, DashboardTokenEnv) {
		t.Fatalf("login page: %d, want it to say where the token is (%s):\n%s", code, DashboardTokenEnv, body)
	}
	if code, body := b.Post("/ui/login", url.Values{"token": {d.token}, "next": {"/ui/"}}, nil); code != http.StatusForbidden || !strings.Contains(body, "CSRF") {
		t.Fatalf("login without CSRF: %d %s, want 403 naming CSRF", code, body)
	}
	if code, body := b.Login("not-the-token"); code != http.StatusUnauthorized || !strings.Contains(body, "wrong token") {
		t.Fatalf("wrong token: %d %s, want 401", code, body)
	}
	if code, body := b.Get("/ui/"); code != http.StatusSeeOther {
		t.Fatalf("after a wrong token GET /ui/: %d %s, want the login redirect", code, body)
	}
	if code, body := b.Do("GET", "/ui/login", "", nil, map[string]string{"Host": "evil.example.com"}); code != http.StatusForbidden {
		t.Fatalf("foreign Host: %d %s, want 403", code, body)
	}
	if code, body := b.Login(d.token); code != http.StatusSeeOther {
		t.Fatalf("log in: %d %s", code, body)
	}
	code, body := b.Get("/ui/")
	if code != http.StatusOK || !strings.Contains(body, "made-by-kubectl") {
		t.Fatalf("overview: %d, want it to list made-by-kubectl:\n%s", code, body)
	}
	for _, p := range []string{"/ui/environments", "/ui/timers", "/ui/functions/" + d.ns + "/made-by-kubectl"} {
		if code, body := b.Get(p); code != http.StatusOK {
			t.Errorf("GET %s: %d %s", p, code, body)
		}
	}
	// Function logs are the pods': the page's log box says how to read them.
	if code, body := b.Get("/ui/functions/" + d.ns + "/made-by-kubectl/logs"); code != http.StatusOK || !strings.Contains(body, "kubectl logs -n "+d.ns) {
		t.Errorf("function logs: %d %s, want the kubectl command", code, body)
	}

	b.Get("/ui/new")
	form := url.Values{"csrf": {b.CSRF}, "name": {"from-the-form"}, "env": {d.ns + "/go"}, "entrypoint": {"Handler"},
		"url": {"/from-form"}, "method": {"GET"}, "code": {"package main\n"}, "filename": {"handler.go"}}
	if code, body := b.Post("/ui/new", form, nil); code != http.StatusSeeOther {
		t.Fatalf("create: %d %s", code, body)
	}
	made, err := store.GetAs[*v1.Function](ctx, d.st, d.ns, "from-the-form")
	if err != nil {
		t.Fatalf("the form's Function is not in the apiserver: %v", err)
	}
	pkg, err := store.GetAs[*v1.Package](ctx, d.st, d.ns, made.Spec.Package.PackageRef.Name)
	if err != nil || pkg.Spec.Source.Literal == nil {
		t.Fatalf("the form's Package: %v (%+v), want a literal source", err, pkg)
	}
	routes, _, err := store.ListAs[*v1.HTTPTrigger](ctx, d.st, store.ListOptions{Namespace: d.ns})
	if err != nil || len(routes) != 1 || routes[0].Spec.RelativeURL != "/from-form" || routes[0].Spec.FunctionReference.Name != "from-the-form" {
		t.Fatalf("the form's HTTPTrigger: %v %+v", err, routes)
	}

	// Without the CSRF token a POST is refused even with a session.
	form.Set("csrf", "")
	form.Set("name", "no-csrf")
	if code, body := b.Post("/ui/new", form, nil); code != http.StatusForbidden {
		t.Fatalf("create without CSRF: %d %s, want 403", code, body)
	}
	if _, err := store.GetAs[*v1.Function](ctx, d.st, d.ns, "no-csrf"); !store.IsNotFound(err) {
		t.Fatalf("a POST without CSRF made a function: %v", err)
	}
}

// Hostile input: a form over 1 MiB and bad names are refused with the
// field named, and nothing is stored.
func TestKubeDashboardHostileInput(t *testing.T) {
	d := startKubeDashboard(t, "dash-hostile")
	ctx := kubetest.Context(t)
	if _, err := d.st.Create(ctx, dashEnv(d.ns)); err != nil {
		t.Fatal(err)
	}
	b := uitest.New(t, d.base)
	if code, body := b.Login(d.token); code != http.StatusSeeOther {
		t.Fatalf("log in: %d %s", code, body)
	}
	b.Get("/ui/new")
	base := url.Values{"csrf": {b.CSRF}, "env": {d.ns + "/go"}, "entrypoint": {"Handler"}, "code": {"package main\n"}, "filename": {"handler.go"}}
	for _, c := range []struct{ name, field string }{
		{"Bad_Name", "name"},
		{"", "name"},
		{strings.Repeat("a", 300), "name"},
		{"../etc", "name"},
	} {
		form := url.Values{}
		for k, v := range base {
			form[k] = v
		}
		form.Set("name", c.name)
		code, body := b.Post("/ui/new", form, nil)
		if code != http.StatusBadRequest || !strings.Contains(body, c.field) {
			t.Errorf("name %.20q: %d, want 400 naming %q:\n%.300s", c.name, code, c.field, body)
		}
	}
	form := url.Values{}
	for k, v := range base {
		form[k] = v
	}
	form.Set("name", "ok-name")
	form.Set("env", d.ns+"/no-such-env")
	if code, body := b.Post("/ui/new", form, nil); code != http.StatusBadRequest || !strings.Contains(body, "environment") {
		t.Errorf("unknown environment: %d, want 400 naming environment:\n%.300s", code, body)
	}
	form.Set("env", d.ns+"/go")
	form.Set("url", "no-slash")
	if code, body := b.Post("/ui/new", form, nil); code != http.StatusBadRequest || !strings.Contains(body, "route") {
		t.Errorf("bad route: %d, want 400 naming the route:\n%.300s", code, body)
	}
	form.Set("url", "")
	form.Set("code", strings.Repeat("x", 2<<20))
	if code, body := b.Post("/ui/new", form, nil); code != http.StatusRequestEntityTooLarge {
		t.Errorf("2 MiB form: %d, want 413:\n%.300s", code, body)
	}
	fns, _, err := store.ListAs[*v1.Function](ctx, d.st, store.ListOptions{Namespace: d.ns})
	if err != nil || len(fns) != 0 {
		t.Fatalf("hostile forms stored functions: %v %d", err, len(fns))
	}
	// A bad name in a page's path is refused, not looked up.
	if code, _ := b.Get("/ui/functions/" + d.ns + "/Bad..Name"); code != http.StatusBadRequest && code != http.StatusNotFound {
		t.Errorf("bad function name in the path: %d, want 400 or 404", code)
	}
}

// /v2/status wants the token as a bearer token, and reports the
// apiserver's functions with the router's stats.
func TestKubeDashboardStatus(t *testing.T) {
	d := startKubeDashboard(t, "dash-status")
	ctx := kubetest.Context(t)
	if _, err := d.st.Create(ctx, dashEnv(d.ns)); err != nil {
		t.Fatal(err)
	}
	fn := &v1.Function{ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: d.ns}}
	fn.Spec.Environment = v1.EnvironmentReference{Namespace: d.ns, Name: "go"}
	fn.Spec.Package.PackageRef = v1.PackageRef{Namespace: d.ns, Name: "hello-pkg"}
	fn.Spec.InvokeStrategy.StrategyType = v1.StrategyTypeExecution
	fn.Spec.InvokeStrategy.ExecutionStrategy.ExecutorType = v1.ExecutorTypePoolmgr
	if _, err := d.st.Create(ctx, fn); err != nil {
		t.Fatal(err)
	}
	get := func(auth string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", d.base+isostatus.Path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	for _, auth := range []string{"", "Bearer wrong", "Basic " + d.token, "Bearer"} {
		if resp, body := get(auth); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("status with Authorization %q: %d %s, want 401", auth, resp.StatusCode, body)
		}
	}
	resp, body := get("Bearer " + d.token)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status: %d %s", resp.StatusCode, body)
	}
	var rep isostatus.Report
	if err := json.Unmarshal(body, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.StatsError != "" || len(rep.Functions) != 1 || rep.Functions[0].Name != "hello" || rep.Functions[0].Environment == "" {
		t.Fatalf("status report: %s", body)
	}
	req, _ := http.NewRequest("GET", d.base+isostatus.Path+"?namespace=Not_A_Namespace", nil)
	req.Header.Set("Authorization", "Bearer "+d.token)
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := io.ReadAll(r2.Body)
	r2.Body.Close()
	if r2.StatusCode != http.StatusBadRequest || !strings.Contains(string(b2), "namespace") {
		t.Errorf("status with a bad namespace: %d %s, want 400 naming the parameter", r2.StatusCode, b2)
	}
}

// Build logs are what the builder manager stores in the Package's status:
// the package page's log box follows a running build and shows the log
// once the build ends; rebuild sets a built package back to pending.
func TestKubeDashboardBuildLog(t *testing.T) {
	d := startKubeDashboard(t, "dash-build")
	ctx := kubetest.Context(t)
	if _, err := d.st.Create(ctx, dashEnv(d.ns)); err != nil {
		t.Fatal(err)
	}
	pkg := &v1.Package{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: d.ns}}
	pkg.Spec.Environment = v1.EnvironmentReference{Namespace: d.ns, Name: "go"}
	pkg.Spec.Source = v1.Archive{Type: v1.ArchiveTypeLiteral, Literal: []byte("PK\x05\x06" + strings.Repeat("\x00", 18))}
	obj, err := d.st.Create(ctx, pkg)
	if err != nil {
		t.Fatal(err)
	}
	pkg = obj.(*v1.Package)
	pkg.Status.BuildStatus = v1.BuildStatusRunning
	if obj, err = d.st.UpdateStatus(ctx, pkg); err != nil {
		t.Fatal(err)
	}
	pkg = obj.(*v1.Package)

	b := uitest.New(t, d.base)
	if code, body := b.Login(d.token); code != http.StatusSeeOther {
		t.Fatalf("log in: %d %s", code, body)
	}
	type answer struct {
		code int
		body string
	}
	got := make(chan answer, 1)
	go func() {
		code, body := b.Do("GET", "/ui/packages/"+d.ns+"/p/log", "", nil, nil)
		got <- answer{code, body}
	}()
	// The follower's watch may start after this update: the update is
	// repeated until the follower answers, with a deadline.
	deadline := time.Now().Add(30 * time.Second)
	var a answer
	for done := false; !done; {
		pkg.Status.BuildStatus = v1.BuildStatusSucceeded
		pkg.Status.BuildLog = "compiled handler.go in the cluster\n"
		pkg.Status.LastUpdateTimestamp = metav1.Now()
		if obj, err := d.st.UpdateStatus(ctx, pkg); err == nil {
			pkg = obj.(*v1.Package)
		} else if p, gerr := store.GetAs[*v1.Package](ctx, d.st, d.ns, "p"); gerr == nil {
			pkg = p
		}
		select {
		case a = <-got:
			done = true
		case <-time.After(200 * time.Millisecond):
		}
		if !done && time.Now().After(deadline) {
			t.Fatal("the build log did not arrive within 30s")
		}
	}
	if a.code != http.StatusOK || !strings.Contains(a.body, "compiled handler.go in the cluster") {
		t.Fatalf("build log: %d %q", a.code, a.body)
	}
	if code, body := b.Get("/ui/packages/" + d.ns + "/p"); code != http.StatusOK || !strings.Contains(body, "rebuild") {
		t.Fatalf("package page: %d %s", code, body)
	}
	if code, body := b.Post("/ui/packages/"+d.ns+"/p/rebuild", url.Values{"csrf": {b.CSRF}}, nil); code != http.StatusSeeOther {
		t.Fatalf("rebuild: %d %s", code, body)
	}
	p, err := store.GetAs[*v1.Package](ctx, d.st, d.ns, "p")
	if err != nil || p.Status.BuildStatus != v1.BuildStatusPending {
		t.Fatalf("after rebuild: %v %q, want pending", err, p.Status.BuildStatus)
	}
}
