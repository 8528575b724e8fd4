package v1

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func trigger(url, prefix, host string, methods ...string) *HTTPTriggerSpec {
	s := &HTTPTriggerSpec{RelativeURL: url, Host: host, Methods: methods, FunctionReference: FunctionReference{Type: FunctionReferenceTypeFunctionName, Name: "f"}}
	if prefix != "" {
		s.Prefix = &prefix
		s.RelativeURL = ""
	}
	return s
}

// A trigger on a path the router answers itself would never be reached:
// validation refuses it, naming the reserved path and the field.
func TestReservedRoutesRefused(t *testing.T) {
	cases := []struct {
		url, prefix, field, reserved string
	}{
		{"/metrics", "", "spec.relativeurl", "/metrics"},
		{"/_version", "", "spec.relativeurl", "/_version"},
		{"/router-healthz", "", "spec.relativeurl", "/router-healthz"},
		{"/auth/login", "", "spec.relativeurl", "/auth/login"},
		{"/fission-function/default/hello", "", "spec.relativeurl", "/fission-function/"},
		{"/fission-function/{name}", "", "spec.relativeurl", "/fission-function/"},
		{"/fission-function", "", "spec.relativeurl", "/fission-function/"},
		{"", "/metrics/", "spec.prefix", "/metrics"},
		{"", "/fission-function", "spec.prefix", "/fission-function/"},
		{"", "/fission-function/x/", "spec.prefix", "/fission-function/"},
	}
	for _, c := range cases {
		rt := &HTTPTrigger{ObjectMeta: nsMeta("r"), Spec: *trigger(c.url, c.prefix, "")}
		errs := Validate(rt)
		if len(errs) != 1 || errs[0].Field != c.field || !strings.Contains(errs[0].Error(), `"`+strings.TrimSuffix(c.reserved, "/")) ||
			!strings.Contains(errs[0].Error(), "reserved") {
			t.Errorf("url %q prefix %q: %v, want one error on %s naming %s", c.url, c.prefix, errs, c.field, c.reserved)
		}
	}
	for _, ok := range []*HTTPTriggerSpec{
		trigger("/metrics/app", "", ""), trigger("/METRICS", "", ""), trigger("/healthz", "", ""),
		trigger("/fission-functions", "", ""), trigger("/{x}", "", ""), trigger("", "/", ""),
		trigger("", "/auth", ""), trigger("/auth/logout", "", ""),
	} {
		if errs := Validate(&HTTPTrigger{ObjectMeta: nsMeta("r"), Spec: *ok}); len(errs) != 0 {
			t.Errorf("%+v: %v, want it valid", ok, errs)
		}
	}
}

func TestRouteConflict(t *testing.T) {
	collide := []struct{ a, b *HTTPTriggerSpec }{
		{trigger("/hello", "", ""), trigger("/hello", "", "")}, // both default to GET
		{trigger("/hello", "", "", "GET", "POST"), trigger("/hello", "", "", "post")},
		{trigger("/u/{id}", "", ""), trigger("/u/{name}", "", "")},
		{trigger("/u/{id:[0-9]{3}}", "", ""), trigger("/u/{n:[0-9]{3}}", "", "")},
		{trigger("", "/api", ""), trigger("", "/api/", "")},
		{trigger("/x", "", "Example.com"), trigger("/x", "", "example.com:8080")},
		{trigger("/x", "", "example.com:8080"), trigger("/x", "", "EXAMPLE.com:8080")},
	}
	for _, c := range collide {
		if got := RouteConflict(c.a, c.b); got == "" {
			t.Errorf("%+v and %+v: no conflict, want one", c.a, c.b)
		}
	}
	apart := []struct{ a, b *HTTPTriggerSpec }{
		{trigger("/hello", "", ""), trigger("/hello", "", "", "POST")},
		{trigger("/hello", "", ""), trigger("/hello/", "", "")},
		{trigger("/hello", "", ""), trigger("/hello", "", "example.com")}, // the host route wins for its host only
		{trigger("/x", "", "a.example"), trigger("/x", "", "b.example")},
		{trigger("/x", "", "a.example:1"), trigger("/x", "", "a.example:2")},
		{trigger("/u/{id:[0-9]+}", "", ""), trigger("/u/{id:[a-z]+}", "", "")},
		{trigger("/api", "", ""), trigger("", "/api", "")},
		{trigger("", "/api", ""), trigger("", "/api/v2", "")},
	}
	for _, c := range apart {
		if got := RouteConflict(c.a, c.b); got != "" {
			t.Errorf("%+v and %+v: conflict %q, want none", c.a, c.b, got)
		}
	}
	if got := RouteConflict(trigger("/hello", "", "shop.example", "GET", "PUT"), trigger("/hello", "", "shop.example", "PUT", "GET")); got != "GET,PUT /hello on host shop.example" {
		t.Errorf("description %q", got)
	}
}

func nsMeta(name string) metav1.ObjectMeta {
	m := meta(name)
	m.Namespace = DefaultNamespace
	return m
}
