package router

import (
	"reflect"
	"strings"
	"testing"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/auth/routerauth"
)

func TestPatternMatch(t *testing.T) {
	cases := []struct {
		pattern, path string
		ok            bool
		vals          []string
		fast          bool
	}{
		{"/users/{id}", "/users/42", true, []string{"42"}, true},
		{"/users/{id}", "/users/", false, nil, true},
		{"/users/{id}/", "/users/42/", true, []string{"42"}, true},
		{"/a/{x}/b/{y}", "/a/1/b/2", true, []string{"1", "2"}, true},
		{"/a/{x}/b/{y}", "/a/1/c/2", false, nil, true},
		{"/files/{name}.{ext}", "/files/report.pdf", true, []string{"report", "pdf"}, false},
		{"/n/{id:[0-9]+}", "/n/123", true, []string{"123"}, false},
		{"/n/{id:[0-9]+}", "/n/12a", false, nil, false},
		{"/n/{id:[0-9]{3}}", "/n/123", true, []string{"123"}, false},
		{"/rest/{path:.*}", "/rest/a/b/c", true, []string{"a/b/c"}, false},
		{"/lit.txt", "/lit.txt", true, []string{}, true},
	}
	for _, c := range cases {
		p, err := compilePattern(c.pattern)
		if err != nil {
			t.Fatalf("%s: %v", c.pattern, err)
		}
		if fast := p.re == nil; fast != c.fast {
			t.Errorf("%s: fast form = %v, want %v", c.pattern, fast, c.fast)
		}
		vals, ok := p.match(c.path, strings.Split(c.path[1:], "/"))
		if ok != c.ok || (ok && !reflect.DeepEqual(vals, c.vals)) {
			t.Errorf("%s ~ %s = %v %q, want %v %q", c.pattern, c.path, ok, vals, c.ok, c.vals)
		}
	}
}

func TestPatternErrorsNameThePattern(t *testing.T) {
	for _, bad := range []string{"users/{id}", "/users/{id", "/users/{}", "/users/id}", "/n/{id:[}"} {
		_, err := compilePattern(bad)
		if err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%q: error %v should name the pattern", bad, err)
		}
	}
}

// Every path the router answers itself is reserved in validation, so no
// trigger can be stored that the router would never reach.
func TestOwnPathsAreReserved(t *testing.T) {
	if InternalPrefix != v1.InternalRoutePrefix {
		t.Errorf("InternalPrefix %q differs from v1.InternalRoutePrefix %q", InternalPrefix, v1.InternalRoutePrefix)
	}
	for _, p := range []string{HealthzPath, VersionPath, MetricsPath, InternalPrefix + "default/hello", routerauth.DefaultLoginPath, routerauth.HealthzPath} {
		if v1.ReservedRoute(p, false) == "" || v1.ReservedRoute(p, true) == "" {
			t.Errorf("%s is served by the router but not reserved in api/v1", p)
		}
	}
}
