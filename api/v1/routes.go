package v1

import (
	"fmt"
	"net"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Paths the router answers itself, before any HTTPTrigger. A trigger on
// one of them would never be reached, so validation refuses it. The
// router's own constants must stay in this list (a router test checks).
var reservedRoutes = []struct{ path, why string }{
	{"/router-healthz", "the router's health check"},
	{"/_version", "the router's version"},
	{"/metrics", "the router's Prometheus metrics"},
	{"/auth/login", "the router's login when router auth is on"},
}

// InternalRoutePrefix is where the router serves every function without a
// trigger (/fission-function/[<ns>/]<name>); no trigger may claim it.
const InternalRoutePrefix = "/fission-function/"

// ReservedRoute returns why the router keeps path for itself, or "".
// Prefix routes pass prefix true: a prefix claims the path and
// everything under it.
func ReservedRoute(path string, prefix bool) string {
	if prefix {
		path = strings.TrimRight(path, "/")
	}
	for _, r := range reservedRoutes {
		if path == r.path {
			return fmt.Sprintf("%q is reserved: the router answers it itself (%s); choose another path", r.path, r.why)
		}
	}
	internal := strings.TrimSuffix(InternalRoutePrefix, "/")
	if path == internal || strings.HasPrefix(path, InternalRoutePrefix) {
		return fmt.Sprintf("%q is reserved: the router serves every function under %s<namespace>/<name> without a trigger; choose another path", path, InternalRoutePrefix)
	}
	return ""
}

func validateReservedRoute(path string, prefix bool, p *field.Path) field.ErrorList {
	if msg := ReservedRoute(path, prefix); msg != "" {
		return field.ErrorList{field.Invalid(p, path, msg)}
	}
	return nil
}

// RouteMethods are the methods a trigger answers: spec.method and
// spec.methods, upper-cased and deduplicated; GET when none is given, as
// the router does.
func RouteMethods(s *HTTPTriggerSpec) []string {
	var out []string
	for _, m := range append([]string{s.Method}, s.Methods...) {
		m = strings.ToUpper(strings.TrimSpace(m))
		if m != "" && !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		out = []string{"GET"}
	}
	return out
}

// RouteConflict reports how two triggers would answer the same requests,
// so that the router would send them all to one and the other would
// never be reached; "" when they do not collide. They collide when they
// have the same host (a host without a port collides with the same host
// with any port), share a method, and have the same relativeurl (variable
// names aside: /u/{id} and /u/{name} are one route) or the same prefix
// (a trailing slash aside).
func RouteConflict(a, b *HTTPTriggerSpec) string {
	if !hostsCollide(a.Host, b.Host) {
		return ""
	}
	var shared []string
	for _, m := range RouteMethods(a) {
		if slices.Contains(RouteMethods(b), m) {
			shared = append(shared, m)
		}
	}
	if len(shared) == 0 {
		return ""
	}
	var what string
	ap, bp := derefPrefix(a.Prefix), derefPrefix(b.Prefix)
	switch {
	case ap != "" && bp != "":
		if strings.TrimRight(ap, "/") != strings.TrimRight(bp, "/") {
			return ""
		}
		what = "prefix " + ap
	case ap == "" && bp == "" && a.RelativeURL != "":
		if routeShape(a.RelativeURL) != routeShape(b.RelativeURL) {
			return ""
		}
		what = a.RelativeURL
	default:
		return ""
	}
	if h := strings.TrimSpace(a.Host); h != "" {
		what += " on host " + h
	}
	return strings.Join(shared, ",") + " " + what
}

func derefPrefix(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// hostsCollide compares two trigger hosts the way the router matches
// them: case-insensitive; a host without a port matches every port.
func hostsCollide(a, b string) bool {
	a, b = strings.ToLower(strings.TrimSpace(a)), strings.ToLower(strings.TrimSpace(b))
	if a == "" || b == "" {
		return a == b
	}
	an, aport := splitHost(a)
	bn, bport := splitHost(b)
	return an == bn && (aport == "" || bport == "" || aport == bport)
}

func splitHost(h string) (name, port string) {
	if n, p, err := net.SplitHostPort(h); err == nil {
		return n, p
	}
	return h, ""
}

// routeShape is a relativeurl with its variables' names dropped and
// their patterns kept: /u/{id} and /u/{name} give /u/{}, /u/{id:[0-9]+}
// gives /u/{:[0-9]+}. Braces nest inside a pattern, as validation allows.
func routeShape(path string) string {
	var b strings.Builder
	depth := 0
	for i := 0; i < len(path); i++ {
		c := path[i]
		switch {
		case c == '{':
			if depth == 0 {
				b.WriteByte('{')
				// Skip the name up to ':' or the closing brace.
				j := i + 1
				for j < len(path) && path[j] != ':' && path[j] != '}' {
					j++
				}
				i = j - 1
				depth++
				continue
			}
			depth++
		case c == '}':
			depth--
		}
		b.WriteByte(c)
	}
	return b.String()
}
