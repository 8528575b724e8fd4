package router

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzPattern compiles arbitrary relativeurl patterns and matches them
// against arbitrary paths (seeds below and in testdata/fuzz/FuzzPattern).
// Whatever the input there is no panic, and:
//
//   - a pattern that does not compile is refused with an error quoting it;
//   - a pattern without variables matches its own path and no other;
//   - a match returns one value per variable, and substituting the values
//     back into the pattern's variables gives the matched path.
//
// It goes through the same split of the path that table.lookup does.
//
//	go test -run '^$' -fuzz FuzzPattern -fuzztime 60s ./internal/router
func FuzzPattern(f *testing.F) {
	for _, s := range [][2]string{
		{"/users/{id}", "/users/42"},
		{"/users/{id}/", "/users/42/"},
		{"/a/{x}/b/{y}", "/a/1/b/2"},
		{"/files/{name}.{ext}", "/files/report.pdf"},
		{"/n/{id:[0-9]+}", "/n/123"},
		{"/n/{id:[0-9]{3}}", "/n/123"},
		{"/rest/{path:.*}", "/rest/a/b/c"},
		{"/lit.txt", "/lit.txt"},
		{"/", "/"},
		{"/a/{x:(b)(c)}/{y}", "/a/bc/d"},
		{"/a/{x:(?P<n>b)}{y}", "/a/bz"},
		{"/{a}{b}", "/xy"},
		{"/users/{id", "/users/1"},
		{"/users/{}", "/users/1"},
		{"/n/{id:[}", "/n/1"},
		{"users", "users"},
		{"/x}", "/x}"},
		{"/{a:x|y}", "/x"},
		{"/{a:^x$}", "/x"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, raw, path string) {
		p, err := compilePattern(raw)
		if err != nil {
			if !strings.Contains(err.Error(), strconv.Quote(raw)) {
				t.Fatalf("error %q does not quote the pattern %q", err, raw)
			}
			return
		}
		if !p.hasVars() {
			if _, ok := matchPath(p, raw); !ok {
				t.Fatalf("pattern %q without variables does not match itself", raw)
			}
			if _, ok := matchPath(p, path); ok != (path == raw) {
				t.Fatalf("pattern %q without variables: match(%q) = %v", raw, path, ok)
			}
			return
		}
		vals, ok := matchPath(p, path)
		if !ok {
			return
		}
		if len(vals) != len(p.names) {
			t.Fatalf("pattern %q on %q: %d values %q for %d variables %q", raw, path, len(vals), vals, len(p.names), p.names)
		}
		if got := substitute(t, raw, vals); got != path {
			t.Fatalf("pattern %q on %q: values %q substitute back to %q", raw, path, vals, got)
		}
	})
}

// matchPath matches as table.lookup does: the fast form gets the path's
// segments.
func matchPath(p *pattern, path string) ([]string, bool) {
	var segs []string
	if p.re == nil {
		if !strings.HasPrefix(path, "/") {
			return nil, false // lookup's buckets hold only such paths
		}
		segs = strings.Split(path[1:], "/")
	}
	return p.match(path, segs)
}

// substitute replaces each {variable} of a compiled pattern by its value,
// finding variables as compilePattern documents them (braces may nest
// inside a variable's regexp).
func substitute(t *testing.T, raw string, vals []string) string {
	var b strings.Builder
	i := 0
	for s := raw; s != ""; {
		open := strings.IndexByte(s, '{')
		if open < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:open])
		depth, end := 0, -1
		for j := open; j < len(s) && end < 0; j++ {
			switch s[j] {
			case '{':
				depth++
			case '}':
				if depth--; depth == 0 {
					end = j
				}
			}
		}
		if end < 0 || i >= len(vals) {
			t.Fatalf("pattern %q compiled but its variables cannot be found again", raw)
		}
		b.WriteString(vals[i])
		i++
		s = s[end+1:]
	}
	return b.String()
}

// TestPatternCaptureGroups: a variable's regexp may hold its own groups;
// values still line up with the variables (found by FuzzPattern).
func TestPatternCaptureGroups(t *testing.T) {
	p, err := compilePattern("/a/{x:(b)(c)}/{y}")
	if err != nil {
		t.Fatal(err)
	}
	vals, ok := matchPath(p, "/a/bc/d")
	if !ok || strings.Join(vals, ",") != "bc,d" {
		t.Errorf("match = %v %q, want bc,d", ok, vals)
	}
}
