package router

import (
	"fmt"
	"net"
	"sort"
	"strings"

	v1 "isotope.dev/isotope/api/v1"
)

// InternalPrefix is the path under which every function is reachable
// without a trigger: /fission-function/<name> (namespace default) and
// /fission-function/<namespace>/<name>, each with optional subpaths.
const InternalPrefix = "/fission-function/"

type routeKind int

const (
	kindExact routeKind = iota
	kindParam
	kindPrefix
	kindInternal
)

// target is one function a route may send a request to, with its
// canary weight.
type target struct {
	fn     *v1.Function
	weight int
}

// route is one HTTPTrigger compiled for matching. Routes are immutable
// once a table is built.
type route struct {
	trigger    *v1.HTTPTrigger
	id         string // namespace/name of the trigger, for logs and errors
	kind       routeKind
	host       string   // lower-case; "" matches any host
	hostPort   bool     // host includes a port, so the request's port must match too
	methods    []string // upper-case, never empty
	pat        *pattern // kindExact, kindParam
	prefix     string   // kindPrefix: the prefix without its trailing slash
	slashOnly  bool     // kindPrefix: the prefix ended in "/", so the bare prefix path does not match
	keepPrefix bool
	targets    []target
	total      int // sum of weights
}

// key names a function in the table's index.
type key struct{ ns, name string }

// table is an immutable snapshot of every route. The router swaps whole
// tables atomically; a request uses the table it loaded at its start.
type table struct {
	exact     map[string][]*route
	params    map[int][]*route // fast-form patterns by segment count
	slow      []*route         // regexp patterns
	prefixes  []*route         // longest prefix first
	functions map[key]*v1.Function
	rootTaken bool // some trigger claims GET /
	skipped   []string
}

// match is the outcome of a lookup.
type match struct {
	route  *route       // nil for internal routes
	fn     *v1.Function // internal routes only
	params []string     // variable values, in route.pat.names order
	// path is the rewritten path the function sees.
	path string
}

// buildTable compiles triggers and functions into a table. Triggers
// that cannot be compiled (bad pattern, no function) are skipped and
// listed in table.skipped; requests for them get 404, as in Fission.
func buildTable(triggers []*v1.HTTPTrigger, functions []*v1.Function) *table {
	t := &table{
		exact:     map[string][]*route{},
		params:    map[int][]*route{},
		functions: make(map[key]*v1.Function, len(functions)),
	}
	for _, fn := range functions {
		t.functions[key{fn.Namespace, fn.Name}] = fn
	}
	for _, tr := range triggers {
		r, err := t.compileTrigger(tr)
		if err != nil {
			t.skipped = append(t.skipped, err.Error())
			continue
		}
		switch r.kind {
		case kindExact:
			t.exact[r.pat.raw] = append(t.exact[r.pat.raw], r)
			if r.pat.raw == "/" && containsString(r.methods, "GET") {
				t.rootTaken = true
			}
		case kindParam:
			if n := r.pat.segmentCount(); n >= 0 {
				t.params[n] = append(t.params[n], r)
			} else {
				t.slow = append(t.slow, r)
			}
		case kindPrefix:
			t.prefixes = append(t.prefixes, r)
			if r.prefix == "" && containsString(r.methods, "GET") {
				t.rootTaken = true
			}
		}
	}
	for p, rs := range t.exact {
		t.exact[p] = sortRoutes(rs, nil)
	}
	for n, rs := range t.params {
		t.params[n] = sortRoutes(rs, func(a, b *route) int { return b.pat.literals - a.pat.literals })
	}
	t.slow = sortRoutes(t.slow, func(a, b *route) int { return b.pat.literals - a.pat.literals })
	t.prefixes = sortRoutes(t.prefixes, func(a, b *route) int { return len(b.prefix) - len(a.prefix) })
	return t
}

// sortRoutes orders routes by more (a more specific route first), then
// routes with a host before routes without, then trigger id, so the
// order never depends on map or watch order.
func sortRoutes(rs []*route, more func(a, b *route) int) []*route {
	sort.SliceStable(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if more != nil {
			if d := more(a, b); d != 0 {
				return d < 0
			}
		}
		if (a.host != "") != (b.host != "") {
			return a.host != ""
		}
		return a.id < b.id
	})
	return rs
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// compileTrigger turns one HTTPTrigger into a route, resolving its
// functions in the trigger's namespace.
func (t *table) compileTrigger(tr *v1.HTTPTrigger) (*route, error) {
	id := tr.Namespace + "/" + tr.Name
	s := &tr.Spec
	r := &route{trigger: tr, id: id, keepPrefix: s.KeepPrefix}

	if h := strings.ToLower(strings.TrimSpace(s.Host)); h != "" {
		r.host = h
		_, _, err := net.SplitHostPort(h)
		r.hostPort = err == nil
	}

	seen := map[string]bool{}
	for _, m := range append([]string{s.Method}, s.Methods...) {
		m = strings.ToUpper(strings.TrimSpace(m))
		if m != "" && !seen[m] {
			seen[m] = true
			r.methods = append(r.methods, m)
		}
	}
	if len(r.methods) == 0 {
		// Fission's CLI default; a trigger written without a method
		// answers GET rather than nothing.
		r.methods = []string{"GET"}
	}

	switch {
	case s.Prefix != nil && *s.Prefix != "":
		p := *s.Prefix
		if !strings.HasPrefix(p, "/") {
			return nil, fmt.Errorf("httptrigger %s: spec.prefix %q must start with /", id, p)
		}
		r.kind = kindPrefix
		r.slashOnly = strings.HasSuffix(p, "/")
		r.prefix = strings.TrimRight(p, "/")
	case s.RelativeURL != "":
		pat, err := compilePattern(s.RelativeURL)
		if err != nil {
			return nil, fmt.Errorf("httptrigger %s: spec.%v", id, err)
		}
		r.pat = pat
		r.kind = kindExact
		if pat.hasVars() {
			r.kind = kindParam
		}
	default:
		return nil, fmt.Errorf("httptrigger %s: neither spec.relativeurl nor spec.prefix is set", id)
	}

	ref := s.FunctionReference
	switch ref.Type {
	case v1.FunctionReferenceTypeFunctionWeights:
		names := make([]string, 0, len(ref.FunctionWeights))
		for n := range ref.FunctionWeights {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			w := ref.FunctionWeights[n]
			fn := t.functions[key{tr.Namespace, n}]
			if fn == nil || w < 0 {
				continue
			}
			r.targets = append(r.targets, target{fn: fn, weight: w})
			r.total += w
		}
	default: // "name" or empty
		if fn := t.functions[key{tr.Namespace, ref.Name}]; fn != nil {
			r.targets = []target{{fn: fn, weight: 1}}
			r.total = 1
		}
	}
	if len(r.targets) == 0 {
		return nil, fmt.Errorf("httptrigger %s: function %q not found in namespace %s", id, ref.Name, tr.Namespace)
	}
	return r, nil
}

// hostMatches compares the request's Host with the route's host: without
// a port in the route, the request's port is ignored.
func (r *route) hostMatches(reqHost string) bool {
	if r.host == "" {
		return true
	}
	if !r.hostPort {
		if h, _, err := net.SplitHostPort(reqHost); err == nil {
			reqHost = h
		}
	}
	return strings.EqualFold(reqHost, r.host)
}

func (r *route) methodMatches(method string) bool {
	for _, m := range r.methods {
		if m == method {
			return true
		}
	}
	return false
}

// prefixMatches applies Fission's prefix rules: "/api/" matches paths
// under /api/ only; "/api" matches /api itself and paths under /api/.
func (r *route) prefixMatches(path string) bool {
	if !strings.HasPrefix(path, r.prefix) {
		return false
	}
	rest := path[len(r.prefix):]
	if rest == "" {
		return !r.slashOnly
	}
	return rest[0] == '/'
}

// lookup finds the route for a request. It returns the match, or
// ok=false with methodMismatch set when some route matched the path and
// host but not the method (the caller answers 405 with allow).
func (t *table) lookup(method, host, path string) (m match, ok bool, allow []string) {
	var pathHit []string
	try := func(r *route, params []string, rewritten string) bool {
		if !r.hostMatches(host) {
			return false
		}
		if !r.methodMatches(method) {
			pathHit = append(pathHit, r.methods...)
			return false
		}
		m = match{route: r, params: params, path: rewritten}
		return true
	}

	if strings.HasPrefix(path, InternalPrefix) {
		if fn, sub, found := t.internal(path[len(InternalPrefix):]); found {
			return match{fn: fn, path: sub}, true, nil
		}
		return match{}, false, nil
	}

	for _, r := range t.exact[path] {
		if try(r, nil, "/") {
			return m, true, nil
		}
	}
	if len(t.params) > 0 {
		if rs := t.params[strings.Count(path, "/")]; len(rs) > 0 {
			segs := strings.Split(path[1:], "/")
			for _, r := range rs {
				if vals, hit := r.pat.match(path, segs); hit && try(r, vals, "/") {
					return m, true, nil
				}
			}
		}
	}
	for _, r := range t.slow {
		if vals, hit := r.pat.match(path, nil); hit && try(r, vals, "/") {
			return m, true, nil
		}
	}
	for _, r := range t.prefixes {
		if !r.prefixMatches(path) {
			continue
		}
		rewritten := path
		if !r.keepPrefix {
			rewritten = path[len(r.prefix):]
			if rewritten == "" {
				rewritten = "/"
			}
		}
		if try(r, nil, rewritten) {
			return m, true, nil
		}
	}
	return match{}, false, dedupe(pathHit)
}

// internal resolves the part of an internal route after
// /fission-function/: "<ns>/<name>[/sub]" when such a function exists,
// else "<name>[/sub]" in namespace default. The explicit namespace form
// wins when both exist, since that is what clients (fn test, timers)
// send.
func (t *table) internal(rest string) (*v1.Function, string, bool) {
	first, after, hasSlash := strings.Cut(rest, "/")
	if first == "" {
		return nil, "", false
	}
	if hasSlash {
		second, sub, more := strings.Cut(after, "/")
		if second != "" {
			if fn := t.functions[key{first, second}]; fn != nil {
				if more {
					return fn, "/" + sub, true
				}
				return fn, "/", true
			}
		}
	}
	if fn := t.functions[key{v1.DefaultNamespace, first}]; fn != nil {
		if hasSlash {
			return fn, "/" + after, true
		}
		return fn, "/", true
	}
	return nil, "", false
}

func dedupe(ss []string) []string {
	if len(ss) == 0 {
		return nil
	}
	sort.Strings(ss)
	out := ss[:1]
	for _, s := range ss[1:] {
		if s != out[len(out)-1] {
			out = append(out, s)
		}
	}
	return out
}
