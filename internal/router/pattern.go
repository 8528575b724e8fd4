package router

import (
	"fmt"
	"regexp"
	"strings"
)

// pattern is a compiled HTTPTrigger relativeurl in gorilla/mux syntax:
// literal text with {name} or {name:regexp} variables.
//
// Most patterns have every path segment either fully literal or a whole
// {name} variable ("/users/{id}/posts"); those match by comparing
// segments, with no regexp and no allocation beyond the parameter slice.
// Anything else (a variable inside a segment such as "/file.{ext}", or a
// variable with its own regexp) is compiled once into one anchored
// regexp, as gorilla/mux does, and only such routes pay for it.
type pattern struct {
	raw      string
	segs     []segment      // fast form; nil when re is used
	re       *regexp.Regexp // slow form
	groups   []int          // slow form: the submatch index of each variable
	names    []string       // variable names, in order
	literals int            // literal segments (fast form) or literal bytes (slow form): more is more specific
}

type segment struct {
	lit   string // literal text, when name == ""
	name  string // variable name
	isVar bool
}

// compilePattern parses a relativeurl. It fails on unbalanced braces,
// empty variable names and bad regexps, naming the pattern.
func compilePattern(raw string) (*pattern, error) {
	if !strings.HasPrefix(raw, "/") {
		return nil, fmt.Errorf("relativeurl %q: must start with /", raw)
	}
	p := &pattern{raw: raw}
	fast := true
	parts := strings.Split(raw[1:], "/")
	for _, part := range parts {
		open := strings.IndexByte(part, '{')
		switch {
		case open < 0 && !strings.Contains(part, "}"):
			p.segs = append(p.segs, segment{lit: part})
			p.literals++
		case open == 0 && strings.IndexByte(part, '}') == len(part)-1 && !strings.Contains(part[1:len(part)-1], "{"):
			inner := part[1 : len(part)-1]
			if strings.Contains(inner, ":") {
				fast = false
			}
			p.segs = append(p.segs, segment{name: inner, isVar: true})
		default:
			fast = false
		}
	}
	if fast {
		for _, s := range p.segs {
			if s.isVar {
				if s.name == "" {
					return nil, fmt.Errorf("relativeurl %q: empty variable name", raw)
				}
				p.names = append(p.names, s.name)
			}
		}
		return p, nil
	}
	p.segs = nil
	return p, p.compileRegexp()
}

// compileRegexp builds the anchored regexp for the slow form: literal
// text is quoted, {name} matches one segment ([^/]+), {name:re} matches re.
func (p *pattern) compileRegexp() error {
	var b strings.Builder
	b.WriteString("^")
	s := p.raw
	group := 1 // submatch index of the next variable
	for len(s) > 0 {
		open := strings.IndexByte(s, '{')
		if open < 0 {
			if strings.Contains(s, "}") {
				return fmt.Errorf("relativeurl %q: unbalanced braces", p.raw)
			}
			b.WriteString(regexp.QuoteMeta(s))
			p.literals += len(s)
			break
		}
		lit := s[:open]
		if strings.Contains(lit, "}") {
			return fmt.Errorf("relativeurl %q: unbalanced braces", p.raw)
		}
		b.WriteString(regexp.QuoteMeta(lit))
		p.literals += len(lit)
		// Find the matching close brace, allowing braces inside the
		// variable's regexp ({id:[0-9]{3}}).
		depth, end := 0, -1
		for i := open; i < len(s); i++ {
			if s[i] == '{' {
				depth++
			} else if s[i] == '}' {
				depth--
				if depth == 0 {
					end = i
					break
				}
			}
		}
		if end < 0 {
			return fmt.Errorf("relativeurl %q: unbalanced braces", p.raw)
		}
		name, expr, hasExpr := strings.Cut(s[open+1:end], ":")
		if name == "" {
			return fmt.Errorf("relativeurl %q: empty variable name", p.raw)
		}
		if !hasExpr {
			expr = "[^/]+"
		}
		vre, err := regexp.Compile(expr)
		if err != nil {
			return fmt.Errorf("relativeurl %q: variable %q: %v", p.raw, name, err)
		}
		b.WriteString("(" + expr + ")")
		p.names = append(p.names, name)
		// A variable's regexp may hold groups of its own ({id:(a|b)c}):
		// its value is its outer group, and the next variable's group
		// comes after all of them.
		p.groups = append(p.groups, group)
		group += 1 + vre.NumSubexp()
		s = s[end+1:]
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return fmt.Errorf("relativeurl %q: %v", p.raw, err)
	}
	p.re = re
	return nil
}

// hasVars reports whether the pattern has variables; one without is an
// exact path.
func (p *pattern) hasVars() bool { return len(p.names) > 0 }

// segmentCount is the number of segments of the fast form (-1 for the
// slow form), used to bucket patterns.
func (p *pattern) segmentCount() int {
	if p.re != nil {
		return -1
	}
	return len(p.segs)
}

// match matches path and returns the variable values in name order.
// segs is path split by "/" without its leading slash (fast form only).
func (p *pattern) match(path string, segs []string) ([]string, bool) {
	if p.re != nil {
		m := p.re.FindStringSubmatch(path)
		if m == nil {
			return nil, false
		}
		vals := make([]string, len(p.groups))
		for i, g := range p.groups {
			vals[i] = m[g]
		}
		return vals, true
	}
	if len(segs) != len(p.segs) {
		return nil, false
	}
	for i, s := range p.segs {
		if s.isVar {
			if segs[i] == "" {
				return nil, false
			}
		} else if segs[i] != s.lit {
			return nil, false
		}
	}
	vals := make([]string, 0, len(p.names))
	for i, s := range p.segs {
		if s.isVar {
			vals = append(vals, segs[i])
		}
	}
	return vals, true
}
